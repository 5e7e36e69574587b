//! Full meshes: every node sends one-way protobuf messages (`send_pb`) to every
//! other node, round-robin, and every node counts what it receives.
//!
//! In one process (a fresh child per size, so its RSS is its own): K nodes on
//! `InProcess` membership, K×(K−1) directed pairs over K×(K−1)/2 links. Across
//! processes: P children of this binary, one node each, on a discovery server run
//! by the parent; the parent starts the timed part on every child at once (a line
//! on their stdin) and stops the clock when the last child has received all its
//! messages.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clustergo::membership::{DiscoveryClient, DiscoveryServer, InProcess, Member};
use clustergo::{Addr, Config, LogicAddr, Node, SendError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{ScaleSizes, Series, median};
use crate::memory::{addr, fit_items, free_ports, rss_bytes, settled_rss};
use crate::proto::Request;
use crate::workload::{self, Arrivals, REQUEST_MSG, Stopwatch};

/// Message command of the mesh traffic.
const CMD: u16 = 1;
/// The warm-up message's text (the timed ones carry [`REQUEST_MSG`]).
const WARM: &str = "warm";
/// How long one size may take in all.
const SIZE_TIMEOUT: Duration = Duration::from_secs(300);

/// A child's answer.
#[derive(Debug, Serialize, Deserialize)]
struct MeshResult {
    /// Messages per second over the timed part (in-process only).
    msgs_per_sec: f64,
    /// RSS at the end, MB.
    rss_mb: f64,
}

pub(crate) async fn run_in_process(s: ScaleSizes) -> Result<Vec<Series>, String> {
    let mut rate = Series::new("mesh, one process: messages/s", "msgs/s", "nodes");
    let mut rss = Series::new("mesh, one process: RSS", "MB", "nodes");
    let mut notes = vec![format!(
        "{} one-way messages in all per size, spread evenly over the directed pairs",
        s.mesh_msgs
    )];
    for &want in s.mesh_nodes {
        // A listener per node and both ends of every link: about K² descriptors.
        let k = want.max(2);
        if fit_items(k * k, 1).1.is_some() {
            notes.push(format!(
                "{k} nodes do not fit the descriptor limit: skipped"
            ));
            continue;
        }
        let args = ["mesh".to_owned(), k.to_string(), s.mesh_msgs.to_string()];
        match crate::child::run::<MeshResult>(&args, SIZE_TIMEOUT).await {
            Ok(r) => {
                rate.points.push((k, r.msgs_per_sec));
                rss.points.push((k, r.rss_mb));
            }
            Err(e) => rate.failed.push(format!("{k} nodes: {e}")),
        }
    }
    rate.note = Some(notes.join("; "));
    Ok(vec![rate, rss])
}

/// One node's count of the peers heard from during the warm-up, and the timed
/// messages (shared by the nodes of one process).
#[derive(Debug, Default)]
struct Counts {
    timed: Arc<Arrivals>,
    warm_from: Mutex<HashSet<LogicAddr>>,
}

/// A node counting mesh messages into `counts`, on the default `Config` (with
/// the old 200 ms `send_timeout` dozens of nodes on a busy 2-core machine lost
/// most messages: see BENCHMARKS.md).
fn counting_node(counts: &Arc<Counts>) -> Node {
    let node = Node::with_config(Config::default());
    let counts = counts.clone();
    node.register_pb_handler::<Request, _>(CMD, move |from, msg| {
        if msg.msg == WARM {
            counts.warm_from.lock().insert(from);
        } else {
            counts.timed.arrived(1, msg.msg == REQUEST_MSG);
        }
    });
    node
}

/// Sends `per_peer` messages to each of `peers`, round-robin; a full queue
/// (`Busy`) is waited out, never dropped.
async fn send_round_robin(node: &Node, peers: &[LogicAddr], per_peer: usize) -> Result<(), String> {
    let msg = workload::request();
    for _ in 0..per_peer {
        for &to in peers {
            loop {
                match node.send_pb(to, &msg) {
                    Ok(()) => break,
                    Err(SendError::Busy) => tokio::task::yield_now().await,
                    Err(e) => return Err(format!("send_pb to {to}: {e}")),
                }
            }
        }
    }
    Ok(())
}

/// One warm-up message to each of `peers`; a peer known down (its dials failed)
/// or busy is skipped this round, and counted in the result; the driver keeps
/// dialing it.
fn send_warm(node: &Node, peers: &[LogicAddr]) -> Result<usize, String> {
    let msg = Request {
        msg: WARM.to_owned(),
    };
    let mut refused = 0;
    for &to in peers {
        match node.send_pb(to, &msg) {
            Ok(()) => {}
            Err(SendError::Busy | SendError::Unreachable(_)) => refused += 1,
            Err(e) => return Err(format!("send_pb to {to}: {e}")),
        }
    }
    Ok(refused)
}

/// Pairs heard from during the warm-up, over all nodes.
fn warm_heard(warm: &[Arc<Counts>]) -> usize {
    warm.iter().map(|c| c.warm_from.lock().len()).sum()
}

/// The child side of `mesh K total`: K nodes in this process, full mesh.
pub(crate) async fn child_mesh(args: &[String]) -> Result<(), String> {
    let [k, total] = args else {
        return Err(format!("mesh: bad arguments {args:?}"));
    };
    let k: usize = k.parse().map_err(|_| format!("bad K {k:?}"))?;
    let total: usize = total.parse().map_err(|_| format!("bad total {total:?}"))?;
    fit_items(k * k, 1);
    let pairs = k * (k - 1);
    let per_pair = total.div_ceil(pairs).max(1);
    let addrs = (0..k)
        .map(|i| addr(1, 1, i as u32))
        .collect::<Result<Vec<_>, _>>()?;
    let ports = free_ports(k)?;
    let membership = InProcess::with_members(
        addrs
            .iter()
            .zip(ports)
            .map(|(&a, p)| Member::new(Addr::new(a, p))),
    );
    let timed = Arc::new(Arrivals::default());
    let mut nodes = Vec::with_capacity(k);
    let mut warm = Vec::with_capacity(k);
    for &a in &addrs {
        let counts = Arc::new(Counts {
            timed: timed.clone(),
            ..Counts::default()
        });
        let node = counting_node(&counts);
        warm.push(counts);
        node.register_pb_message::<Request>(CMD);
        node.start(membership.clone(), a)
            .await
            .map_err(|e| format!("start node {a}: {e}"))?;
        nodes.push(node);
    }
    let peers_of = |i: usize| -> Vec<LogicAddr> {
        let mut p: Vec<LogicAddr> = addrs.iter().copied().filter(|&a| a != addrs[i]).collect();
        // Start each node's round at a different peer.
        let shift = i % p.len().max(1);
        p.rotate_left(shift);
        p
    };
    // Warm-up: first one message per directed pair, all at once on the fresh nodes
    // (the figure BENCHMARKS.md reports: every one should arrive); then rounds
    // repeat until a message crossed every pair, so every link is up.
    let first = Instant::now();
    let mut refused = 0;
    for (i, node) in nodes.iter().enumerate() {
        refused += send_warm(node, &peers_of(i))?;
    }
    while warm_heard(&warm) < pairs && first.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "mesh {k}: warm-up, one message per pair at once: {} of {pairs} arrived \
         within {:?}, {refused} refused; {}",
        warm_heard(&warm),
        first.elapsed(),
        losses(&nodes)
    );
    let deadline = Instant::now() + workload::RUN_TIMEOUT;
    while warm_heard(&warm) < pairs {
        if Instant::now() >= deadline {
            let heard = warm_heard(&warm);
            return Err(format!(
                "warm-up: {heard} of {pairs} pairs after {:?}",
                workload::RUN_TIMEOUT
            ));
        }
        for (i, node) in nodes.iter().enumerate() {
            send_warm(node, &peers_of(i))?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let watch = Stopwatch::start();
    let mut senders = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let (node, peers) = (node.clone(), peers_of(i));
        senders.spawn(async move { send_round_robin(&node, &peers, per_pair).await });
    }
    while let Some(r) = senders.join_next().await {
        r.map_err(|e| format!("sender: {e}"))??;
    }
    let sent = (pairs * per_pair) as u64;
    if let Err(e) = timed.wait_for(sent).await {
        return Err(format!("{e}; {}", losses(&nodes)));
    }
    let (d, _) = watch.stop();
    timed.finish(sent)?;
    let rss = settled_rss().await?;
    crate::child::print(&MeshResult {
        msgs_per_sec: workload::per_sec(sent, d),
        rss_mb: rss as f64 / 1e6,
    });
    // Exit without a graceful stop of every node: the figures are out.
    Ok(())
}

/// What the nodes' metrics say about lost messages, summed over `nodes`.
fn losses(nodes: &[Node]) -> String {
    let mut m = [0u64; 6];
    for n in nodes {
        let x = n.metrics();
        for (slot, v) in m.iter_mut().zip([
            x.frames_expired,
            x.frames_dropped,
            x.links_lost,
            x.links_stalled,
            x.links_silent,
            x.dials_failed,
        ]) {
            *slot += v;
        }
    }
    format!(
        "frames expired {}, dropped {}; links lost {}, stalled {}, silent {}; dials failed {}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

pub(crate) async fn run_processes(s: ScaleSizes) -> Result<Vec<Series>, String> {
    let mut rate = Series::new("processes on loopback: messages/s", "msgs/s", "processes");
    let mut rss = Series::new("processes: RSS of one process", "MB", "processes");
    rate.note = Some(format!(
        "one node per process, discovery server in the parent; {} one-way messages in all",
        s.mesh_msgs
    ));
    rss.note = Some("median over the processes".into());
    for &p in s.processes {
        match tokio::time::timeout(SIZE_TIMEOUT, processes(p, s.mesh_msgs)).await {
            Ok(Ok((msgs, mb))) => {
                rate.points.push((p, msgs));
                rss.points.push((p, mb));
            }
            Ok(Err(e)) => rate.failed.push(format!("{p} processes: {e}")),
            Err(_) => rate
                .failed
                .push(format!("{p} processes: timed out after {SIZE_TIMEOUT:?}")),
        }
    }
    Ok(vec![rate, rss])
}

/// One size of the multi-process mesh: messages per second and the median RSS.
async fn processes(p: usize, total: usize) -> Result<(f64, f64), String> {
    let pairs = p * (p - 1);
    let per_pair = total.div_ceil(pairs).max(1);
    let ports = free_ports(p)?;
    let members = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| Ok(Member::new(Addr::new(addr(1, 1, i as u32)?, port))))
        .collect::<Result<Vec<_>, String>>()?;
    let server = DiscoveryServer::bind("127.0.0.1:0", members)
        .await
        .map_err(|e| format!("bind discovery server: {e}"))?;
    let mut children = Vec::with_capacity(p);
    for i in 0..p {
        let args = [
            "proc".to_owned(),
            i.to_string(),
            p.to_string(),
            server.local_addr().to_string(),
            per_pair.to_string(),
        ];
        let mut child = crate::child::spawn(&args)?;
        let stdin = child.stdin.take().ok_or("child has no stdin")?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        children.push((child, stdin, BufReader::new(stdout).lines()));
    }
    let expect = async |lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
                        what: &str|
           -> Result<String, String> {
        lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("a child ended before {what}"))
    };
    for (_, _, lines) in &mut children {
        let line = expect(lines, "ready").await?;
        if line != "ready" {
            return Err(format!("a child said {line:?} instead of ready"));
        }
    }
    let t = Instant::now();
    for (_, stdin, _) in &mut children {
        stdin
            .write_all(b"go\n")
            .await
            .map_err(|e| format!("go: {e}"))?;
    }
    let mut rss = Vec::with_capacity(p);
    for (_, _, lines) in &mut children {
        let line = expect(lines, "its result").await?;
        let r: MeshResult =
            serde_json::from_str(&line).map_err(|e| format!("child said {line:?}: {e}"))?;
        rss.push(r.rss_mb);
    }
    let elapsed = t.elapsed();
    for (mut child, stdin, _) in children {
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    server.shutdown().await;
    let sent = (pairs * per_pair) as u64;
    Ok((workload::per_sec(sent, elapsed), median(&mut rss)))
}

/// The child side of `proc I P SERVER PER_PAIR`: node `1.1.I` of P, on the
/// discovery server at SERVER. Prints `ready` once it heard from every other node,
/// then waits for `go`, sends, prints its [`MeshResult`] once it received all it
/// should, and stops at the end of its stdin.
pub(crate) async fn child_proc(args: &[String]) -> Result<(), String> {
    let [i, p, server, per_pair] = args else {
        return Err(format!("proc: bad arguments {args:?}"));
    };
    let parse = |s: &String| s.parse::<usize>().map_err(|_| format!("bad number {s:?}"));
    let (i, p, per_pair) = (parse(i)?, parse(p)?, parse(per_pair)?);
    let me = addr(1, 1, i as u32)?;
    let peers = (0..p)
        .filter(|&j| j != i)
        .map(|j| addr(1, 1, j as u32))
        .collect::<Result<Vec<_>, _>>()?;
    let counts = Arc::new(Counts::default());
    let node = counting_node(&counts);
    node.register_pb_message::<Request>(CMD);
    node.start(DiscoveryClient::new(server), me)
        .await
        .map_err(|e| format!("start node {me}: {e}"))?;
    // Warm-up until every other node was heard from (they start at their own pace).
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.warm_from.lock().len() < peers.len() {
        if Instant::now() >= deadline {
            return Err(format!("{me}: not every peer heard from in 60 s"));
        }
        send_warm(&node, &peers)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once more: a peer that started last has now surely heard from this node.
    send_warm(&node, &peers)?;
    println!("ready");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    match stdin.next_line().await {
        Ok(Some(l)) if l == "go" => {}
        other => return Err(format!("{me}: expected go, got {other:?}")),
    }
    send_round_robin(&node, &peers, per_pair).await?;
    let expected = (per_pair * peers.len()) as u64;
    if let Err(e) = counts.timed.wait_for(expected).await {
        return Err(format!("{e}; {}", losses(std::slice::from_ref(&node))));
    }
    counts.timed.finish(expected)?;
    crate::child::print(&MeshResult {
        msgs_per_sec: 0.0,
        rss_mb: rss_bytes().unwrap_or(0) as f64 / 1e6,
    });
    // Others may still be receiving what this node sent: stay until told.
    while let Ok(Some(_)) = stdin.next_line().await {}
    node.shutdown().await;
    Ok(())
}
