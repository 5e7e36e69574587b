//! Floods of clients that never finish their handshake: what they may cost the gate.
//!
//! - KCP: one datagram per spoofed source used to open a tokio_kcp session each (3000
//!   sources: +263 MB, +12,000 tasks for 10 s). Now at most `kcp_max_pending` sessions
//!   wait for a first packet, for `kcp_first_packet_timeout`.
//! - WebSocket: a partial request head used to be re-peeked every 5 ms until the
//!   handshake timeout. Now the head is read, so an idle half-open connection waits on
//!   the socket (the no-polling property itself is tested in `gate::http_head`), and is
//!   closed at the handshake timeout.

mod gate_common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use clustergo::gate::{self, GateConfig, Transport};
use gate_common::{EchoServer, within};

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Waits (bounded by [`STEP`]) until `cond` holds, checking every 20 ms.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[cfg(feature = "kcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcp_phantom_session_flood_is_bounded_and_real_clients_get_in() {
    gate_common::init_tracing();
    const CAP: usize = 64;
    const SOURCES: usize = 100;
    const PER_SOURCE: u32 = 30; // 3000 datagrams in all
    let config = GateConfig {
        kcp_max_pending: CAP,
        kcp_first_packet_timeout: Duration::from_millis(800),
        ..GateConfig::default()
    };
    let server = EchoServer::start(Transport::Kcp, config.clone()).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let rss_before = rss();

    // 24-byte KCP headers (PUSH, sn 0, no data), each with a new conversation id, so
    // that tokio_kcp opens a new session for every one of them.
    let addr = server.addr;
    let flood = tokio::spawn(async move {
        let mut sockets = Vec::new();
        for _ in 0..SOURCES {
            sockets.push(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        for round in 0..PER_SOURCE {
            for (i, udp) in sockets.iter().enumerate() {
                let conv = 1 + round * SOURCES as u32 + i as u32;
                let mut datagram = [0u8; 24];
                datagram[..4].copy_from_slice(&conv.to_le_bytes());
                datagram[4] = 81; // IKCP_CMD_PUSH
                datagram[6..8].copy_from_slice(&256u16.to_le_bytes()); // window
                let _ = udp.send_to(&datagram, addr).await;
            }
            tokio::task::yield_now().await;
        }
        sockets
    });

    // A real client in the middle of the flood is served.
    let mut client = within("connect", gate::connect_kcp(server.addr, &config))
        .await
        .expect("connect");
    client.send(Bytes::from_static(b"login")).await.unwrap();
    let max_pending = Arc::new(AtomicUsize::new(0));
    let max_tasks = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let stats = server.stats.clone();
        let (max_pending, max_tasks, metrics) =
            (max_pending.clone(), max_tasks.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                max_pending.fetch_max(stats.pending_handshakes(), Relaxed);
                max_tasks.fetch_max(metrics.num_alive_tasks(), Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    assert_eq!(
        within("echo during the flood", client.recv())
            .await
            .unwrap()
            .unwrap(),
        &b"login"[..]
    );
    let _sockets = within("flood sent", flood).await.unwrap();

    // While the flood's sessions wait: at most CAP of them (each is about four tasks:
    // three of tokio_kcp, one of the gate), not one per datagram (which would be
    // 12,000 tasks). The task bound is loose because sessions just evicted, or still
    // queued inside tokio_kcp, live on briefly; the cap itself is checked on the
    // pending counter.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = rss().saturating_sub(rss_before);
    eprintln!(
        "kcp flood: {} datagrams, pending peak {}, tasks {} -> peak {}, RSS +{} KiB",
        SOURCES as u32 * PER_SOURCE,
        max_pending.load(Relaxed),
        tasks_before,
        max_tasks.load(Relaxed),
        grown / 1024
    );
    assert!(
        max_tasks.load(Relaxed) < tasks_before + (SOURCES * PER_SOURCE as usize),
        "fewer tasks than datagrams (unbounded: four per datagram)"
    );
    assert!(
        server.stats.handshake_failures() > 0,
        "phantoms were dropped"
    );
    // Loose sanity bound (the unbounded gate took 263 MB for this flood).
    assert!(grown < 100 << 20, "RSS grew by {} MiB", grown >> 20);

    // After the first-packet timeout every phantom is gone; the real client stays.
    eventually("phantoms reaped", || server.stats.pending_handshakes() == 0).await;
    sampler.abort();
    assert!(max_pending.load(Relaxed) <= CAP);
    eventually("tasks back to normal", || {
        metrics.num_alive_tasks() <= tasks_before + 20
    })
    .await;
    client
        .send(Bytes::from_static(b"still here"))
        .await
        .unwrap();
    assert_eq!(
        within("echo after the flood", client.recv())
            .await
            .unwrap()
            .unwrap(),
        &b"still here"[..]
    );
}

#[cfg(feature = "ws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_partial_heads_wait_idle_and_close_at_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    gate_common::init_tracing();
    const CONNS: usize = 200;
    let timeout = Duration::from_millis(800);
    let config = GateConfig {
        handshake_timeout: timeout,
        ..GateConfig::default()
    };
    let server = EchoServer::start(Transport::Ws, config.clone()).await;
    let mut half_open = Vec::new();
    for _ in 0..CONNS {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
            .await
            .unwrap();
        half_open.push(s);
    }
    eventually("all upgrades pending", || {
        server.stats.pending_handshakes() == CONNS
    })
    .await;

    // A real client is served meanwhile.
    let mut client = within(
        "connect",
        gate::connect_ws(&format!("ws://{}/", server.addr), &config),
    )
    .await
    .expect("connect");
    client.send(Bytes::from_static(b"hi")).await.unwrap();
    assert_eq!(
        within("echo", client.recv()).await.unwrap().unwrap(),
        &b"hi"[..]
    );

    // Every half-open connection is closed by the server at the handshake timeout.
    for mut s in half_open {
        let mut buf = [0u8; 64];
        let n = within("server closes the half-open socket", s.read(&mut buf))
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "no reply to a partial head");
    }
    eventually("failures counted", || {
        server.stats.handshake_failures() == CONNS as u64
    })
    .await;
    assert_eq!(server.stats.pending_handshakes(), 0);
}

/// CPU time of this process so far (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after_name = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100
}

/// The probe with the default settings: one 24-byte datagram from each of
/// 3000 source ports. Prints what it cost; run with
/// `cargo test -p clustergo --test gate_floods -- --ignored --nocapture`.
#[cfg(feature = "kcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: RSS and CPU of a 3000-source KCP flood"]
async fn kcp_flood_cost_probe() {
    let sources: usize = std::env::var("PROBE_SOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let config = GateConfig::default();
    let server = EchoServer::start(Transport::Kcp, config.clone()).await;
    let (rss_before, cpu_before) = (rss(), cpu_time());
    let mut peak = 0u64;
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut peak_tasks = 0;
    let mut sockets = Vec::with_capacity(sources);
    for i in 0..sources {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut datagram = [0u8; 24];
        datagram[4] = 81; // IKCP_CMD_PUSH, conv 0: "allocate me a conversation"
        let _ = udp.send_to(&datagram, server.addr);
        sockets.push(udp);
        // Paced, so that the kernel's receive buffer does not drop most of them.
        if i % 50 == 0 {
            peak = peak.max(rss());
            peak_tasks = peak_tasks.max(metrics.num_alive_tasks());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut client = within("connect", gate::connect_kcp(server.addr, &config))
        .await
        .expect("connect");
    client.send(Bytes::from_static(b"login")).await.unwrap();
    assert_eq!(
        within("echo", client.recv()).await.unwrap().unwrap(),
        &b"login"[..]
    );
    let window = config.kcp_first_packet_timeout + Duration::from_secs(1);
    let start = tokio::time::Instant::now();
    while start.elapsed() < window {
        peak = peak.max(rss());
        peak_tasks = peak_tasks.max(metrics.num_alive_tasks());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_time().saturating_sub(cpu_before);
    eprintln!(
        "{sources} sources: RSS peak +{} KiB, tasks peak {peak_tasks}, CPU {:?} over {:?}, pending now {}, failures {}",
        peak.saturating_sub(rss_before) / 1024,
        cpu,
        window,
        server.stats.pending_handshakes(),
        server.stats.handshake_failures(),
    );
    // Unbounded, this flood cost 263 MB. With the cap, 35-50 MB peak were measured:
    // live sessions are capped, but tokio_kcp still creates (and the gate drops) one per
    // datagram, and that churn is what remains. The target is 20 MB; reaching
    // it needs a UDP front end that admits sources before tokio_kcp sees them.
    assert!(
        peak.saturating_sub(rss_before) < 100 << 20,
        "flood cost over 100 MB"
    );
    assert_eq!(server.stats.pending_handshakes(), 0);
}
