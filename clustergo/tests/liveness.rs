//! Links that cannot wedge: a peer that stops reading, a member that is down, a
//! stuck peer's queue (frames, bytes, expiry), and a network that goes silent.

mod support;

use std::time::Duration;

use clustergo::handshake::{self, AcceptorId};
use clustergo::{Config, Node, RpcError, SendError};
use support::proxy::{fast_keepalive, start_behind_proxy};
use support::*;
use tokio::net::{TcpListener, TcpStream};

const BIN: u16 = 7;
const PB: u16 = 100;

/// Calls wait longer than any test waits: a call that ends inside [`within`] ended
/// for a reason, not by its timeout.
fn patient() -> Config {
    Config {
        call_timeout: Duration::from_secs(60),
        ..config()
    }
}

/// Accepts connections as `logic` and completes the handshake, then never reads.
/// The connections are kept open in the returned task.
fn deaf_peer(listener: TcpListener, logic: &str) -> tokio::task::JoinHandle<()> {
    let me = AcceptorId {
        logic: addr(logic),
        incarnation: 1,
    };
    tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let secret = b"test-secret";
            if handshake::accept(&mut s, secret, me, WAIT).await.is_ok()
                && handshake::answer(&mut s, Ok(())).await.is_ok()
            {
                held.push(s);
            }
        }
    })
}

/// Sends 60 KiB binary frames to `to` until its link's socket buffers are full
/// and the writer is stuck (sends keep being accepted into the queue).
fn flood(node: &Node, to: &str, frames: usize) {
    let blob = vec![7u8; 60 * 1024];
    for _ in 0..frames {
        match node.send_bin(addr(to), BIN, &blob) {
            Ok(()) | Err(SendError::Busy) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Issue 10.3: an authenticated peer that never reads. The write stalls; after
/// `write_stall_timeout` the link is declared dead (the call queued behind the
/// flood ends `Disconnected`, the queue is dropped and counted), and `shutdown`
/// with a stuck link ends within its bound instead of never.
#[tokio::test]
async fn peer_that_stops_reading_cannot_wedge_the_link_or_stop() {
    let c = Cluster::new();
    let deaf = TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.m.put_now(member("1.2.1", deaf.local_addr().unwrap(), false));
    let _deaf = deaf_peer(deaf, "1.2.1");
    let cfg = Config {
        write_stall_timeout: Duration::from_millis(300),
        drain_timeout: Duration::from_millis(100),
        send_timeout: Duration::from_secs(60),
        pending_bytes: 64 * 1024 * 1024,
        ..patient()
    };
    let a = c.start_with("1.1.1", false, cfg).await;

    flood(&a, "1.2.1", 600); // 36 MB: more than loopback socket buffers hold
    let call = within(
        "the call behind a stalled write to end",
        a.call::<Echo, Echo>(addr("1.2.1"), "echo", &echo("x", 1)),
    )
    .await;
    assert_eq!(call, Err(RpcError::Disconnected(addr("1.2.1"))));
    let m = a.metrics();
    assert!(m.links_stalled >= 1, "{m:?}");
    assert!(m.frames_dropped >= 1, "{m:?}");

    // Stuck again, then stop: drain (100 ms) + stall bound (300 ms) + handshake
    // timeout (1 s) at most; `within` would fail at 10 s.
    flood(&a, "1.2.1", 600);
    eventually("the link to be up again", || {
        a.metrics().links_established >= 2
    })
    .await;
    within("shutdown with a peer that does not read", a.shutdown()).await;
}

/// Issue 10.4: a member whose process is gone. The first send queues (lazy
/// connect); once the dial is refused, sends fail `Unreachable` and calls end
/// `Unreachable` at once, until a later probe finds the member back.
#[tokio::test]
async fn member_that_is_down_fails_fast_until_it_is_back() {
    let c = Cluster::new();
    let b_net = free_addr().await; // listed, nobody listens
    c.m.put_now(member("1.2.1", b_net, false));
    let a = c.start_with("1.1.1", false, patient()).await;
    a.register_pb_message::<Echo>(PB);

    a.send_pb(addr("1.2.1"), &echo("first", 1))
        .expect("the first send queues: no dial has failed yet");
    eventually("sends to fail fast", || {
        a.send_pb(addr("1.2.1"), &echo("again", 2)) == Err(SendError::Unreachable(addr("1.2.1")))
    })
    .await;
    assert!(
        a.metrics().frames_dropped >= 1,
        "the first frame was dropped, counted"
    );
    let call = within(
        "a call to a member that is down",
        a.call::<Echo, Echo>(addr("1.2.1"), "echo", &echo("x", 1)),
    )
    .await;
    assert_eq!(call, Err(RpcError::Unreachable(addr("1.2.1"))));

    // The member comes back: a backoff probe finds it and sends work again.
    let b = Node::with_config(config());
    b.register_rpc("echo", |_ctx, r: clustergo::Replyer<Echo>, req: Echo| {
        r.reply(req)
    });
    b.start_on(
        TcpListener::bind(b_net).await.unwrap(),
        c.m.clone(),
        addr("1.2.1"),
    )
    .await
    .unwrap();
    c.add(b.clone()).await;
    eventually("sends to work again", || {
        a.send_pb(addr("1.2.1"), &echo("back", 3)).is_ok()
    })
    .await;
    let back = within("a call after the member is back", async {
        a.call::<Echo, Echo>(addr("1.2.1"), "echo", &echo("y", 2))
            .await
    })
    .await;
    assert_eq!(back.map(|e| e.n), Ok(2));
    a.shutdown().await;
    b.shutdown().await;
}

/// A peer that accepts connections but never answers the handshake: dials to it
/// hang (within a long handshake timeout), so frames wait in its queue.
async fn stuck_peer(c: &Cluster, logic: &str) -> TcpListener {
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.m.put_now(member(logic, stuck.local_addr().unwrap(), false));
    stuck
}

/// Issue 10.5: the queue is bounded in bytes as well as frames.
#[tokio::test]
async fn pending_queue_is_bounded_in_bytes() {
    let c = Cluster::new();
    let _stuck = stuck_peer(&c, "1.2.1").await;
    let cfg = Config {
        pending_bytes: 1024 * 1024,
        send_timeout: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(60),
        ..config()
    };
    let a = c.start_with("1.1.1", false, cfg).await;
    let blob = vec![0u8; 60 * 1024];
    let frame = blob.len() + 15; // length field, route, cmd
    let mut ok = 0;
    for _ in 0..100 {
        match a.send_bin(addr("1.2.1"), BIN, &blob) {
            Ok(()) => ok += 1,
            Err(SendError::Busy) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1024 * 1024 / frame, "frames that fit in 1 MiB");
    a.shutdown().await;
}

/// Issue 17.4: frames that expired while queued for a stuck peer are dropped when
/// their deadline passes, so a full queue of them does not answer `Busy`.
#[tokio::test(start_paused = true)]
async fn expired_frames_free_the_queue_at_their_deadline() {
    let c = Cluster::new();
    let _stuck = stuck_peer(&c, "1.2.1").await;
    let send_timeout = Duration::from_millis(100);
    let cfg = Config {
        pending_queue: 8,
        send_timeout,
        handshake_timeout: Duration::from_secs(3600),
        ..config()
    };
    let a = c.start_with("1.1.1", false, cfg).await;
    let send = |n: u64| a.send_bin(addr("1.2.1"), BIN, &n.to_be_bytes());
    for n in 0..8 {
        send(n).unwrap();
    }
    assert_eq!(send(8), Err(SendError::Busy));
    tokio::time::sleep(send_timeout + Duration::from_millis(1)).await;
    assert_eq!(
        send(9),
        Ok(()),
        "the expired frames no longer hold the queue"
    );
    assert_eq!(a.metrics().frames_expired, 8);
    a.shutdown().await;
}

/// Issue 17.2: the network between two nodes stops delivering while both sockets
/// stay open. Keepalives stop arriving, the link is declared dead within the
/// keepalive timeout, and the call waiting on it ends `Disconnected`.
#[tokio::test]
async fn silent_link_is_declared_dead() {
    let c = Cluster::new();
    let a = c
        .start_with("1.1.1", false, fast_keepalive(patient()))
        .await;
    let b = Node::with_config(fast_keepalive(patient()));
    let held = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = held.clone();
    b.register_rpc(
        "hang",
        move |_ctx, r: clustergo::Replyer<Echo>, _req: Echo| h.lock().push(r),
    );
    let proxy = start_behind_proxy(&c, &b, "1.2.1").await;

    let call = tokio::spawn({
        let a = a.clone();
        async move {
            a.call::<Echo, Echo>(addr("1.2.1"), "hang", &echo("h", 1))
                .await
        }
    });
    eventually("the request to be held", || held.lock().len() == 1).await;
    // Idle but healthy for several keepalive timeouts: the link stays up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(a.metrics().links_silent, 0);
    proxy.freeze();
    let r = within("the call on a silent link to end", call)
        .await
        .unwrap();
    assert_eq!(r, Err(RpcError::Disconnected(addr("1.2.1"))));
    assert!(a.metrics().links_silent >= 1);
    held.lock().clear();
    within("a shutdown", a.shutdown()).await;
    within("b shutdown", b.shutdown()).await;
}
