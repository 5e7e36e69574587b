//! Workloads, their sizes and metrics, and the drivers shared by every system.
//!
//! A system that can answer the echo RPC implements [`Caller`]; the three RPC
//! workloads are then the same code for all of them. One-way messages and streams
//! differ per system and live in the system modules, built on [`Arrivals`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::cpu::{CpuSnap, CpuUse};
use crate::proto::{Request, Response};

/// What every request carries.
pub(crate) const REQUEST_MSG: &str = "sniperHW";
/// What every reply must carry.
pub(crate) const EXPECTED_REPLY: &str = "hello world:sniperHW";
/// The longest one measured run may take before it counts as failed.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The request every system sends.
pub(crate) fn request() -> Request {
    Request {
        msg: REQUEST_MSG.to_owned(),
    }
}

/// The server side of the echo, the same for every system.
pub(crate) fn reply_to(req: &Request) -> Response {
    Response {
        msg: format!("hello world:{}", req.msg),
    }
}

/// One benchmark workload. A workload may report more than one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Workload {
    /// 500 calls in flight from one task.
    RpcInflight,
    /// 25 tasks, each awaiting its calls one after another.
    RpcTasks,
    /// One task, one call at a time; reports p50 and p99 latency.
    RpcSeq,
    /// One-way protobuf messages, counted on the receiving side.
    Oneway,
    /// One-way bytes over a stream in 64 KiB writes.
    Stream,
    /// RPC relayed through harbors (cross-cluster), beside the direct call.
    Harbor,
    /// One server-streaming RPC call, its messages counted as the caller reads them.
    StreamRpc,
    /// Memory: RSS after the RPC workloads, bytes per link, stream, call and gate
    /// connection ([`crate::memory`]).
    Memory,
}

/// Whether bigger or smaller is better, and the DESIGN.md target, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metric {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) higher_is_better: bool,
    /// The target for clustergo as a ratio to raw (`≥` if higher is better, else `≤`).
    pub(crate) target_ratio: Option<f64>,
    /// An absolute floor for clustergo, if DESIGN.md sets one.
    pub(crate) target_abs: Option<f64>,
    /// Another metric of the same system this one is also compared with.
    pub(crate) relative_to: Option<&'static str>,
}

const fn throughput(name: &'static str, unit: &'static str, target: Option<f64>) -> Metric {
    Metric {
        name,
        unit,
        higher_is_better: true,
        target_ratio: target,
        target_abs: None,
        relative_to: None,
    }
}

/// Bytes or megabytes: lower is better; `target` is an absolute ceiling.
const fn memory(name: &'static str, unit: &'static str, target: Option<f64>) -> Metric {
    Metric {
        name,
        unit,
        higher_is_better: false,
        target_ratio: None,
        target_abs: target,
        relative_to: None,
    }
}

const fn latency(name: &'static str, target: Option<f64>) -> Metric {
    Metric {
        name,
        unit: "µs",
        higher_is_better: false,
        target_ratio: target,
        target_abs: None,
        relative_to: None,
    }
}

impl Workload {
    /// Every workload, in report order.
    pub(crate) const ALL: [Workload; 8] = [
        Workload::RpcInflight,
        Workload::RpcTasks,
        Workload::RpcSeq,
        Workload::Oneway,
        Workload::Stream,
        Workload::Harbor,
        Workload::StreamRpc,
        Workload::Memory,
    ];

    /// The name used in filters and reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::RpcInflight => "rpc_inflight500",
            Workload::RpcTasks => "rpc_25tasks",
            Workload::RpcSeq => "rpc_seq",
            Workload::Oneway => "oneway_pb",
            Workload::Stream => "stream_64k",
            Workload::Harbor => "harbor_rpc",
            Workload::StreamRpc => "stream_rpc",
            Workload::Memory => "memory",
        }
    }

    /// The metrics this workload reports, in report order.
    pub(crate) fn metrics(self) -> &'static [Metric] {
        const INFLIGHT: [Metric; 1] = [throughput("rpc_inflight500", "calls/s", Some(0.7))];
        const TASKS: [Metric; 1] = [throughput("rpc_25tasks", "calls/s", Some(0.7))];
        const SEQ: [Metric; 2] = [
            latency("rpc_seq_p50", Some(1.3)),
            latency("rpc_seq_p99", None),
        ];
        const ONEWAY: [Metric; 1] = [Metric {
            target_abs: Some(3.0e6),
            ..throughput("oneway_pb", "msgs/s", Some(0.7))
        }];
        const STREAM: [Metric; 1] = [throughput("stream_64k", "GB/s", Some(0.6))];
        const HARBOR: [Metric; 2] = [
            throughput("harbor_rpc_direct", "calls/s", None),
            Metric {
                relative_to: Some("harbor_rpc_direct"),
                ..throughput("harbor_rpc_relayed", "calls/s", None)
            },
        ];
        // Issue 13's target: ≥ 0.7 × the one-way messages of the same system.
        const STREAM_RPC: [Metric; 1] = [Metric {
            relative_to: Some("oneway_pb"),
            ..throughput("stream_rpc", "msgs/s", None)
        }];
        // Go clustergo's two-node process: 14–18 MB; the target is well under it.
        const MEMORY: [Metric; 5] = [
            memory("rss_after_rpc", "MB", Some(10.0)),
            memory("bytes_per_link", "B", None),
            memory("bytes_per_stream", "B", None),
            memory("bytes_per_call", "B", None),
            memory("bytes_per_gate_conn", "B", None),
        ];
        match self {
            Workload::RpcInflight => &INFLIGHT,
            Workload::RpcTasks => &TASKS,
            Workload::RpcSeq => &SEQ,
            Workload::Oneway => &ONEWAY,
            Workload::Stream => &STREAM,
            Workload::Harbor => &HARBOR,
            Workload::StreamRpc => &STREAM_RPC,
            Workload::Memory => &MEMORY,
        }
    }
}

/// How much work each workload does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) rpc_calls: usize,
    pub(crate) inflight: usize,
    pub(crate) tasks: usize,
    pub(crate) seq_calls: usize,
    pub(crate) oneway_msgs: u64,
    pub(crate) stream_bytes: u64,
    pub(crate) stream_chunk: usize,
    /// Untimed calls (or messages) before each timed run.
    pub(crate) warmup: usize,
    /// N of the memory workload: links, streams, calls, gate connections opened.
    pub(crate) memory_items: usize,
}

impl Sizes {
    /// The sizes in the benchmark issue.
    pub(crate) const FULL: Sizes = Sizes {
        rpc_calls: 100_000,
        inflight: 500,
        tasks: 25,
        seq_calls: 20_000,
        oneway_msgs: 1_000_000,
        stream_bytes: 2 << 30,
        stream_chunk: 64 << 10,
        warmup: 2_000,
        memory_items: 10_000,
    };

    /// A smoke run: same shapes, a tenth of the work or less.
    pub(crate) const QUICK: Sizes = Sizes {
        rpc_calls: 10_000,
        inflight: 500,
        tasks: 25,
        seq_calls: 2_000,
        oneway_msgs: 100_000,
        stream_bytes: 256 << 20,
        stream_chunk: 64 << 10,
        warmup: 500,
        memory_items: 500,
    };
}

/// The measured values of one run and the CPU use while it was timed.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) values: Vec<(&'static str, f64)>,
    pub(crate) cpu: Option<CpuUse>,
    /// Something worth knowing about this run, shown in the progress log.
    pub(crate) note: Option<String>,
}

/// Wall clock and CPU counters around the timed part of a run.
#[derive(Debug)]
pub(crate) struct Stopwatch {
    start: Instant,
    cpu: Option<CpuSnap>,
}

impl Stopwatch {
    pub(crate) fn start() -> Self {
        let cpu = CpuSnap::now();
        Self {
            start: Instant::now(),
            cpu,
        }
    }

    /// Elapsed time and CPU use since [`Stopwatch::start`].
    pub(crate) fn stop(self) -> (Duration, Option<CpuUse>) {
        let elapsed = self.start.elapsed();
        let cpu = match (self.cpu, CpuSnap::now()) {
            (Some(a), Some(b)) => Some(a.until(&b)),
            _ => None,
        };
        (elapsed, cpu)
    }
}

/// Counts replies and remembers the first wrong one.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    ok: AtomicU64,
    bad: AtomicU64,
    first_bad: Mutex<Option<String>>,
}

impl Checker {
    /// Records one reply.
    pub(crate) fn check(&self, reply: Result<Response, String>) {
        match reply {
            Ok(r) if r.msg == EXPECTED_REPLY => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                self.bad.fetch_add(1, Ordering::Relaxed);
                let what = match other {
                    Ok(r) => format!("wrong reply {:?}", r.msg),
                    Err(e) => format!("error: {e}"),
                };
                self.first_bad.lock().get_or_insert(what);
            }
        }
    }

    /// `Ok` if exactly `expected` replies arrived and all were right.
    pub(crate) fn finish(&self, expected: usize) -> Result<(), String> {
        let ok = self.ok.load(Ordering::Relaxed);
        let bad = self.bad.load(Ordering::Relaxed);
        if ok == expected as u64 && bad == 0 {
            return Ok(());
        }
        let first = self.first_bad.lock().clone().unwrap_or_default();
        Err(format!(
            "expected {expected} good replies, got {ok} good and {bad} bad {first}"
        ))
    }
}

/// The receiving side of a one-way workload: counts what arrived and wakes the
/// sender when a goal is reached.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    count: AtomicU64,
    bad: AtomicU64,
    goal: AtomicU64,
    reached: Notify,
}

impl Arrivals {
    /// Records `n` arrivals (messages or bytes); `ok = false` marks them as wrong.
    pub(crate) fn arrived(&self, n: u64, ok: bool) {
        if !ok {
            self.bad.fetch_add(n, Ordering::Relaxed);
        }
        let before = self.count.fetch_add(n, Ordering::AcqRel);
        let goal = self.goal.load(Ordering::Acquire);
        if before < goal && before + n >= goal {
            self.reached.notify_one();
        }
    }

    /// Waits until at least `goal` arrivals have been counted in total.
    pub(crate) async fn wait_for(&self, goal: u64) -> Result<(), String> {
        self.goal.store(goal, Ordering::Release);
        let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
        while self.count.load(Ordering::Acquire) < goal {
            // A permit left by an earlier goal only costs one more trip round the loop.
            if tokio::time::timeout_at(deadline, self.reached.notified())
                .await
                .is_err()
            {
                return Err(format!(
                    "timed out: {} of {goal} arrived",
                    self.count.load(Ordering::Acquire)
                ));
            }
        }
        Ok(())
    }

    /// `Ok` if exactly `expected` arrived and none was wrong.
    pub(crate) fn finish(&self, expected: u64) -> Result<(), String> {
        let count = self.count.load(Ordering::Acquire);
        let bad = self.bad.load(Ordering::Acquire);
        if count == expected && bad == 0 {
            Ok(())
        } else {
            Err(format!(
                "expected {expected} arrivals, got {count} ({bad} wrong)"
            ))
        }
    }
}

/// A client of the echo RPC, cheap to clone.
pub(crate) trait Caller: Clone + Send + Sync + 'static {
    /// One echo call.
    fn rpc(&self, req: Request) -> impl Future<Output = Result<Response, String>> + Send + 'static;
}

/// Runs one of the RPC workloads against `caller`: a warm-up, then the timed part in
/// a spawned task (so it runs on a runtime worker like every other task).
pub(crate) async fn run_rpc<C: Caller>(w: Workload, caller: C, s: Sizes) -> Result<Run, String> {
    let task = async move {
        inflight(caller.clone(), s.warmup, 100.min(s.inflight))
            .await
            .map_err(|e| format!("warm-up: {e}"))?;
        match w {
            Workload::RpcInflight => {
                let (d, cpu) = inflight(caller, s.rpc_calls, s.inflight).await?;
                Ok(Run {
                    values: vec![("rpc_inflight500", per_sec(s.rpc_calls as u64, d))],
                    cpu,
                    note: None,
                })
            }
            Workload::RpcTasks => {
                let (d, cpu) = tasks(caller, s.rpc_calls, s.tasks).await?;
                Ok(Run {
                    values: vec![("rpc_25tasks", per_sec(s.rpc_calls as u64, d))],
                    cpu,
                    note: None,
                })
            }
            Workload::RpcSeq => sequential(caller, s.seq_calls).await,
            other => Err(format!("{} is not an RPC workload", other.name())),
        }
    };
    spawn_timed(task).await
}

/// Runs `task` on a runtime worker, bounded by [`RUN_TIMEOUT`].
pub(crate) async fn spawn_timed<T: Send + 'static>(
    task: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    let handle = tokio::spawn(task);
    let abort = handle.abort_handle();
    match tokio::time::timeout(RUN_TIMEOUT, handle).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => Err(format!("task failed: {e}")),
        Err(_) => {
            abort.abort();
            Err(format!("timed out after {RUN_TIMEOUT:?}"))
        }
    }
}

/// Events per second.
pub(crate) fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// `calls` calls from one task, keeping `window` in flight.
pub(crate) async fn inflight<C: Caller>(
    caller: C,
    calls: usize,
    window: usize,
) -> Result<(Duration, Option<CpuUse>), String> {
    let checker = Checker::default();
    let watch = Stopwatch::start();
    let mut running = FuturesUnordered::new();
    let mut issued = 0;
    while issued < calls.min(window) {
        running.push(caller.rpc(request()));
        issued += 1;
    }
    while let Some(reply) = running.next().await {
        checker.check(reply);
        if issued < calls {
            running.push(caller.rpc(request()));
            issued += 1;
        }
    }
    let out = watch.stop();
    checker.finish(calls)?;
    Ok(out)
}

/// `calls` calls from `tasks` tasks, each awaiting one call at a time.
async fn tasks<C: Caller>(
    caller: C,
    calls: usize,
    tasks: usize,
) -> Result<(Duration, Option<CpuUse>), String> {
    let checker = Arc::new(Checker::default());
    let watch = Stopwatch::start();
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let n = calls / tasks + usize::from(i < calls % tasks);
            let caller = caller.clone();
            let checker = checker.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    checker.check(caller.rpc(request()).await);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|e| format!("task failed: {e}"))?;
    }
    let out = watch.stop();
    checker.finish(calls)?;
    Ok(out)
}

/// `calls` calls one after another; p50 and p99 of each call's latency.
async fn sequential<C: Caller>(caller: C, calls: usize) -> Result<Run, String> {
    let checker = Checker::default();
    let mut lat = Vec::with_capacity(calls);
    let watch = Stopwatch::start();
    for _ in 0..calls {
        let t = Instant::now();
        let reply = caller.rpc(request()).await;
        lat.push(t.elapsed());
        checker.check(reply);
    }
    let (_, cpu) = watch.stop();
    checker.finish(calls)?;
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)].as_secs_f64() * 1e6;
    Ok(Run {
        values: vec![("rpc_seq_p50", pct(50)), ("rpc_seq_p99", pct(99))],
        cpu,
        note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_counts_wrong_and_missing_replies() {
        let c = Checker::default();
        c.check(Ok(reply_to(&request())));
        assert!(c.finish(1).is_ok());
        assert!(c.finish(2).is_err(), "a missing reply fails");

        let c = Checker::default();
        c.check(Ok(Response {
            msg: "hello".into(),
        }));
        c.check(Err("timeout".into()));
        let e = c.finish(2).unwrap_err();
        assert!(e.contains("0 good and 2 bad"), "{e}");
        assert!(e.contains("hello"), "the first bad reply is named: {e}");
    }

    #[tokio::test]
    async fn arrivals_wake_the_waiter_at_each_goal() {
        let a = Arc::new(Arrivals::default());
        let b = a.clone();
        let waiter = tokio::spawn(async move { b.wait_for(3).await });
        tokio::task::yield_now().await;
        for _ in 0..3 {
            a.arrived(1, true);
        }
        waiter.await.unwrap().unwrap();
        // A second goal works, even with a permit left from the first.
        a.arrived(2, true);
        a.wait_for(5).await.unwrap();
        assert!(a.finish(5).is_ok());
        a.arrived(1, false);
        assert!(a.finish(6).is_err(), "a wrong arrival fails");
    }
}
