//! Memory figures (workload `memory`): the RSS of a process after the three RPC
//! workloads, and what one idle link, open stream, pending call or gate connection
//! costs, as the RSS growth over N of them divided by N.
//!
//! Each figure comes from a fresh child process ([`crate::child`]): in a process that
//! already ran other workloads, freed memory would be reused and hide the growth.
//! Growth is read after the process settled (a short sleep), from `VmRSS` in
//! `/proc/self/status`; it includes everything the N items cost in this process —
//! both ends where both ends are here (said per figure in BENCHMARKS.md), allocator
//! slack included — but not kernel socket buffers, which are not in RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clustergo::gate::{GateConfig, Listener, Transport};
use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, Config, LogicAddr, Node, Replyer};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proto::{Request, Response};
use crate::systems::clustergo::METHOD;
use crate::systems::{Outcome, System};
use crate::workload::{self, Run, Sizes, Workload};

pub(crate) mod links;

/// How long a child may take, setup and teardown included.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Time given to tasks to finish their work before RSS is read.
const SETTLE: Duration = Duration::from_millis(300);
/// Descriptors kept free for everything else in the process.
const SPARE_FDS: u64 = 256;
/// Streams per yamux session (clustergo's limit is 4096).
const STREAMS_PER_SESSION: usize = 4000;
/// Items made at once (connects, calls) while growing.
const BATCH: usize = 64;

/// `VmRSS` of this process, in bytes.
pub(crate) fn rss_bytes() -> Option<u64> {
    status_kb("VmRSS:").map(|kb| kb * 1024)
}

/// `VmHWM` (peak RSS) of this process, in bytes.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    status_kb("VmHWM:").map(|kb| kb * 1024)
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, field)
}

/// The `kB` value of `field` in `/proc/<pid>/status` text.
fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// RSS after letting tasks settle.
pub(crate) async fn settled_rss() -> Result<u64, String> {
    tokio::time::sleep(SETTLE).await;
    rss_bytes().ok_or_else(|| "cannot read VmRSS from /proc/self/status".to_owned())
}

/// Raises `RLIMIT_NOFILE` to at least `want` if it can (raising the hard limit needs
/// privilege) and returns the soft limit in force afterwards.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    let raised = Rlimit {
        current: Some(want),
        maximum: Some(hard.max(want)),
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        return want;
    }
    // Without privilege: up to the hard limit.
    let to_hard = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    if hard > soft && setrlimit(Resource::Nofile, to_hard).is_ok() {
        return hard;
    }
    soft
}

/// How many of `want` items fit in the descriptor limit at `fds_each` descriptors
/// per item, after raising the limit as far as possible; with a note when fewer.
pub(crate) fn fit_items(want: usize, fds_each: u64) -> (usize, Option<String>) {
    let limit = raise_nofile(want as u64 * fds_each + SPARE_FDS);
    let fit = (limit.saturating_sub(SPARE_FDS) / fds_each) as usize;
    if fit >= want {
        (want, None)
    } else {
        (
            fit.max(1),
            Some(format!(
                "N = {} instead of {want}: RLIMIT_NOFILE is {limit} and could not be raised",
                fit.max(1)
            )),
        )
    }
}

/// What one probe measures; each runs in a child of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// RSS after the in-flight, 25-task and sequential RPC workloads of a system.
    Rpc(System),
    /// Per connected pair of plain tokio `TcpStream`s (the raw baseline of a link).
    RawPairs,
    /// Per idle clustergo link (both ends).
    Links,
    /// Per open stream (both ends, one byte carried).
    Streams,
    /// Per call waiting for its reply (both ends).
    Calls,
    /// Per gate TCP connection, with a plain tokio `TcpStream` as the client.
    GateConns,
}

impl Probe {
    fn name(self) -> String {
        match self {
            Probe::Rpc(s) => format!("rpc:{}", s.name()),
            Probe::RawPairs => "raw-pairs".to_owned(),
            Probe::Links => "links".to_owned(),
            Probe::Streams => "streams".to_owned(),
            Probe::Calls => "calls".to_owned(),
            Probe::GateConns => "gate".to_owned(),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if let Some(sys) = s.strip_prefix("rpc:") {
            return System::ALL
                .into_iter()
                .find(|x| x.name() == sys)
                .map(Probe::Rpc);
        }
        [
            Probe::RawPairs,
            Probe::Links,
            Probe::Streams,
            Probe::Calls,
            Probe::GateConns,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }

    /// The probes that make a system's row of the memory workload.
    fn of(system: System) -> &'static [Probe] {
        match system {
            System::Raw => &[Probe::Rpc(System::Raw), Probe::RawPairs],
            System::Tonic => &[Probe::Rpc(System::Tonic)],
            System::Tarpc => &[Probe::Rpc(System::Tarpc)],
            System::Clustergo => &[
                Probe::Rpc(System::Clustergo),
                Probe::Links,
                Probe::Streams,
                Probe::Calls,
                Probe::GateConns,
            ],
            _ => &[],
        }
    }
}

/// A child's answer.
#[derive(Debug, Serialize, Deserialize)]
struct ProbeResult {
    metric: String,
    value: f64,
    note: Option<String>,
}

/// The memory workload for `system`: its probes, each in a child process.
pub(crate) async fn run(system: System, s: Sizes) -> Result<Outcome, String> {
    let probes = Probe::of(system);
    if probes.is_empty() {
        return Ok(Outcome::NotApplicable("not measured for this variant"));
    }
    let quick = if s.rpc_calls < Sizes::FULL.rpc_calls {
        "quick"
    } else {
        "full"
    };
    let mut values = Vec::new();
    let mut notes = Vec::new();
    for &p in probes {
        let args = vec![
            "memory".to_owned(),
            p.name(),
            s.memory_items.to_string(),
            quick.to_owned(),
        ];
        let r: ProbeResult = crate::child::run(&args, CHILD_TIMEOUT).await?;
        let metric = Workload::Memory
            .metrics()
            .iter()
            .find(|m| m.name == r.metric)
            .ok_or_else(|| format!("child answered unknown metric {:?}", r.metric))?;
        values.push((metric.name, r.value));
        notes.extend(r.note);
    }
    Ok(Outcome::Done(Run {
        values,
        cpu: None,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }))
}

/// The child side: `memory <probe> <N> <quick|full>`; prints a [`ProbeResult`].
pub(crate) async fn child(args: &[String]) -> Result<(), String> {
    let [probe, n, size] = args else {
        return Err(format!("memory child: bad arguments {args:?}"));
    };
    let probe = Probe::parse(probe).ok_or_else(|| format!("unknown probe {probe:?}"))?;
    let n: usize = n.parse().map_err(|_| format!("bad N {n:?}"))?;
    let sizes = if size == "quick" {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let r = match probe {
        Probe::Rpc(system) => rpc(system, sizes).await?,
        Probe::RawPairs => per_item("bytes_per_link", n, 2, raw_pairs).await?,
        // One descriptor per link here; the nodes are in children (`links.rs`).
        Probe::Links => per_item("bytes_per_link", n, 1, links::links).await?,
        Probe::Streams => per_item("bytes_per_stream", n, 1, streams).await?,
        Probe::Calls => per_item("bytes_per_call", n, 1, calls).await?,
        Probe::GateConns => per_item("bytes_per_gate_conn", n, 2, gate_conns).await?,
    };
    crate::child::print(&r);
    Ok(())
}

/// RSS after the three RPC workloads of `system`, in MB (10⁶ bytes).
async fn rpc(system: System, s: Sizes) -> Result<ProbeResult, String> {
    for w in [Workload::RpcInflight, Workload::RpcTasks, Workload::RpcSeq] {
        match system.run(w, s).await? {
            Outcome::Done(_) => {}
            Outcome::NotApplicable(why) => return Err(format!("{}: {why}", w.name())),
        }
    }
    let rss = settled_rss().await?;
    let peak = peak_rss_bytes().unwrap_or(0);
    Ok(ProbeResult {
        metric: "rss_after_rpc".to_owned(),
        value: rss as f64 / 1e6,
        note: Some(format!(
            "{}: peak RSS {:.1} MB",
            system.name(),
            peak as f64 / 1e6
        )),
    })
}

/// RSS before and after the items were made.
#[derive(Debug, Clone, Copy)]
struct Growth {
    before: u64,
    after: u64,
}

/// Runs `grower` for `want` items (fewer if descriptors run short) and reports the
/// bytes per item. A grower sets up its fixed part, then makes the `n` items
/// between two RSS readings, and returns the readings.
async fn per_item(
    metric: &str,
    want: usize,
    fds_each: u64,
    grower: impl AsyncFnOnce(usize) -> Result<Growth, String>,
) -> Result<ProbeResult, String> {
    let (n, short) = fit_items(want, fds_each);
    let g = grower(n).await?;
    let per = g.after.saturating_sub(g.before) as f64 / n as f64;
    let mut note = format!(
        "{metric}: N = {n}, RSS {:.1} → {:.1} MB",
        g.before as f64 / 1e6,
        g.after as f64 / 1e6
    );
    if let Some(s) = short {
        note = format!("{note} ({s})");
    }
    Ok(ProbeResult {
        metric: metric.to_owned(),
        value: per,
        note: Some(note),
    })
}

/// Accepts connections on a loopback port and keeps them; returns the address and
/// the count accepted so far.
async fn hold_tcp() -> Result<(std::net::SocketAddr, Arc<AtomicUsize>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
            counter.store(held.len(), Ordering::Release);
        }
    });
    Ok((addr, count))
}

/// Waits (bounded) until `count` reaches `n`.
async fn wait_count(count: &AtomicUsize, n: usize, what: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + workload::RUN_TIMEOUT;
    while count.load(Ordering::Acquire) < n {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "{what}: {} of {n} after {:?}",
                count.load(Ordering::Acquire),
                workload::RUN_TIMEOUT
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// `n` plain tokio `TcpStream`s connected to `at`, one after another.
async fn connect_n(at: std::net::SocketAddr, n: usize) -> Result<Vec<TcpStream>, String> {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(at)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        socks.push(s);
    }
    Ok(socks)
}

/// `n` connected pairs of plain tokio `TcpStream`s, both ends in this process.
async fn raw_pairs(n: usize) -> Result<Growth, String> {
    let (addr, accepted) = hold_tcp().await?;
    let before = settled_rss().await?;
    let socks = connect_n(addr, n).await?;
    wait_count(&accepted, n, "accepted").await?;
    let after = settled_rss().await?;
    drop(socks);
    Ok(Growth { before, after })
}

/// `n` streams from one node to a few others (4000 per session), each having
/// carried one byte each way, held open by both sides. Growth is measured from the sessions
/// already made (one stream each) to the `n` streams open.
async fn streams(n: usize) -> Result<Growth, String> {
    let servers = n.div_ceil(STREAMS_PER_SESSION).max(1);
    let client_addr = addr(1, 2, 1)?;
    let ports = free_ports(servers + 1)?;
    let mut members = vec![Member::new(Addr::new(client_addr, ports[0]))];
    for (i, &port) in ports[1..].iter().enumerate() {
        members.push(Member::new(Addr::new(addr(1, 1, i as u32)?, port)));
    }
    let membership = InProcess::with_members(members.clone());
    let opened = Arc::new(AtomicUsize::new(0));
    let mut server_nodes = Vec::new();
    for m in &members[1..] {
        let node = Node::new();
        let opened = opened.clone();
        // The first byte is echoed: yamux counts a stream the remote never wrote on
        // as unacknowledged, and opens wait once 256 are (yamux's MAX_ACK_BACKLOG).
        node.on_new_stream(move |mut s| {
            let opened = opened.clone();
            async move {
                let mut b = [0u8; 1];
                if !matches!(s.read(&mut b).await, Ok(1)) {
                    return;
                }
                if s.write_all(&b).await.is_err() || s.flush().await.is_err() {
                    return;
                }
                opened.fetch_add(1, Ordering::AcqRel);
                while matches!(s.read(&mut b).await, Ok(1..)) {}
            }
        });
        node.start(membership.clone(), m.logic())
            .await
            .map_err(|e| format!("start server node: {e}"))?;
        server_nodes.push(node);
    }
    let client = Node::new();
    client
        .start(membership, client_addr)
        .await
        .map_err(|e| format!("start client node: {e}"))?;
    let mut held = Vec::with_capacity(n + servers);
    let mut open = async |to: LogicAddr| -> Result<(), String> {
        let mut s = client
            .open_stream(to)
            .await
            .map_err(|e| format!("open_stream: {e}"))?;
        s.write_all(&[1]).await.map_err(|e| format!("write: {e}"))?;
        s.flush().await.map_err(|e| format!("flush: {e}"))?;
        let mut echo = [0u8; 1];
        s.read_exact(&mut echo)
            .await
            .map_err(|e| format!("read the echo: {e}"))?;
        held.push(s);
        Ok(())
    };
    for m in &members[1..] {
        open(m.logic()).await?;
    }
    wait_count(&opened, servers, "sessions").await?;
    let before = settled_rss().await?;
    for i in 0..n {
        open(members[1 + i % servers].logic()).await?;
    }
    wait_count(&opened, servers + n, "streams seen by the servers").await?;
    let after = settled_rss().await?;
    drop(held);
    Ok(Growth { before, after })
}

/// Calls issued before waiting for the server to hold them.
const CALL_BATCH: usize = 512;
/// Method whose handler keeps the replyer and never answers.
const HOLD: &str = "hold";

/// `n` calls waiting for their replies: the client's pending entries (made with
/// `call_with_callback`, a deadline far away) and the server's kept replyers.
async fn calls(n: usize) -> Result<Growth, String> {
    let server_addr = addr(1, 1, 1)?;
    let client_addr = addr(1, 2, 1)?;
    let ports = free_ports(2)?;
    let membership = InProcess::with_members([
        Member::new(Addr::new(server_addr, ports[0])),
        Member::new(Addr::new(client_addr, ports[1])),
    ]);
    let server = Node::new();
    server.register_rpc(METHOD, |_ctx, replyer, req: Request| {
        replyer.reply(workload::reply_to(&req));
    });
    let kept: Arc<Mutex<Vec<Replyer<Response>>>> = Arc::default();
    let keep = kept.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    server.register_rpc(HOLD, move |_ctx, replyer, _req: Request| {
        keep.lock().push(replyer);
        counter.fetch_add(1, Ordering::AcqRel);
    });
    server
        .start(membership.clone(), server_addr)
        .await
        .map_err(|e| format!("start server: {e}"))?;
    let client = Node::with_config(Config {
        call_timeout: Duration::from_secs(600),
        ..Config::default()
    });
    client
        .start(membership, client_addr)
        .await
        .map_err(|e| format!("start client: {e}"))?;
    // The link is made and warm before the baseline.
    client
        .call::<Request, Response>(server_addr, METHOD, &workload::request())
        .await
        .map_err(|e| format!("warm-up call: {e}"))?;
    // Pre-size the server's keeping place so its growth is not counted.
    kept.lock().reserve(n);
    let before = settled_rss().await?;
    let deadline = clustergo::Instant::now() + Duration::from_secs(600);
    let failed = Arc::new(AtomicUsize::new(0));
    let mut issued = 0;
    while issued < n {
        // In batches the link's queue (1024 frames by default) takes whole.
        let batch = CALL_BATCH.min(n - issued);
        for _ in 0..batch {
            let failed = failed.clone();
            let _ = client.call_with_callback(
                server_addr,
                HOLD,
                &workload::request(),
                deadline,
                move |_: Result<Response, _>| {
                    failed.fetch_add(1, Ordering::AcqRel);
                },
            );
        }
        issued += batch;
        wait_count(&count, issued, "calls held by the server").await?;
    }
    let ended = failed.load(Ordering::Acquire);
    if ended > 0 {
        return Err(format!("{ended} held calls ended early"));
    }
    let after = settled_rss().await?;
    Ok(Growth { before, after })
}

/// `n` gate TCP connections, each held by the gate side as a `ClientConn` and by a
/// plain tokio `TcpStream` on the client side.
async fn gate_conns(n: usize) -> Result<Growth, String> {
    let mut listener = Listener::bind(Transport::Tcp, "127.0.0.1:0", GateConfig::default())
        .await
        .map_err(|e| format!("gate bind: {e}"))?;
    let at = listener.local_addr();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok(conn) = listener.accept().await {
            held.push(conn);
            counter.store(held.len(), Ordering::Release);
        }
    });
    // One connection first, so the gate's lazily made parts are in the baseline.
    let first = TcpStream::connect(at)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    wait_count(&count, 1, "gate accepted").await?;
    let before = settled_rss().await?;
    let socks = connect_n(at, n).await?;
    wait_count(&count, n + 1, "gate accepted").await?;
    let after = settled_rss().await?;
    drop((first, socks));
    Ok(Growth { before, after })
}

/// `n` distinct loopback addresses with ports that were free a moment ago: all
/// bound at once, so none is handed out twice.
pub(crate) fn free_ports(n: usize) -> Result<Vec<std::net::SocketAddr>, String> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    held.iter()
        .map(|l| l.local_addr().map_err(|e| e.to_string()))
        .collect()
}

pub(crate) fn addr(c: u32, t: u32, s: u32) -> Result<LogicAddr, String> {
    LogicAddr::new(c, t, s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let status = "Name:\tbench\nVmHWM:\t   20480 kB\nVmRSS:\t    9876 kB\n";
        let cases = [
            ("VmRSS:", Some(9876)),
            ("VmHWM:", Some(20480)),
            ("VmSwap:", None),
        ];
        for (field, want) in cases {
            assert_eq!(parse_status_kb(status, field), want, "{field}");
        }
        assert!(
            rss_bytes().is_some_and(|b| b > 0),
            "this process has an RSS"
        );
    }

    #[test]
    fn probe_names_round_trip() {
        for s in System::ALL {
            for &p in Probe::of(s) {
                assert_eq!(Probe::parse(&p.name()), Some(p));
            }
        }
        assert_eq!(Probe::parse("bogus"), None);
        assert_eq!(Probe::parse("rpc:bogus"), None);
    }

    #[test]
    fn descriptor_limit_is_raised_or_noted() {
        let (n, note) = fit_items(10, 2);
        assert_eq!((n, note), (10, None), "a few descriptors are always there");
        let (n, note) = fit_items(usize::MAX / 4, 2);
        assert!(n >= 1);
        assert!(note.is_some_and(|s| s.contains("RLIMIT_NOFILE")));
    }
}
