//! clustergo: two [`clustergo::Node`]s in this process on loopback, found through
//! [`InProcess`] membership. RPC through `register_rpc` / `call` (and
//! `call_with_callback` for the in-flight workload's callback variant), one-way
//! messages through `send_pb` / `register_pb_handler`, bytes through
//! `open_stream` / `on_new_stream`, and a cross-cluster call through two harbors.
//! The `clustergo-tls` system runs the in-flight RPC and stream workloads over
//! mutual TLS 1.3 ([`Config::tls`]), with certificates made at start by rcgen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, Config, LogicAddr, Node, NodeTls, ProstCodec, SendError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Outcome;
use crate::memory::free_ports;
use crate::proto::{Request, Response};
use crate::workload::{
    self, Arrivals, Caller, Checker, REQUEST_MSG, Run, Sizes, Stopwatch, Workload,
};

/// Wire method name of the echo RPC.
pub(crate) const METHOD: &str = "echo";
/// Message command of the one-way workload.
const ONEWAY_CMD: u16 = 1;

pub(crate) async fn run(w: Workload, s: Sizes) -> Result<Outcome, String> {
    match w {
        Workload::RpcInflight | Workload::RpcTasks | Workload::RpcSeq => {
            rpc(w, s, Security::Plain, Form::Replyer).await
        }
        Workload::Oneway => oneway(s).await.map(Outcome::Done),
        Workload::Stream => stream(s, Security::Plain).await.map(Outcome::Done),
        Workload::Harbor => harbor(s).await.map(Outcome::Done),
        Workload::StreamRpc => stream_rpc(s).await.map(Outcome::Done),
        Workload::Memory => crate::memory::run(super::System::Clustergo, s).await,
    }
}

/// The in-flight RPC and stream workloads over mutual TLS.
pub(crate) async fn run_tls(w: Workload, s: Sizes) -> Result<Outcome, String> {
    match w {
        Workload::RpcInflight => rpc(w, s, Security::Tls, Form::Replyer).await,
        Workload::Stream => stream(s, Security::Tls).await.map(Outcome::Done),
        _ => Ok(Outcome::NotApplicable(
            "TLS variants of rpc_inflight500 and stream_64k only",
        )),
    }
}

/// An RPC workload between a pair of nodes.
async fn rpc(w: Workload, s: Sizes, security: Security, form: Form) -> Result<Outcome, String> {
    let pair = Pair::start(security, form).await?;
    let caller = ClustergoClient {
        node: pair.client.clone(),
        to: pair.server_addr,
    };
    let run = workload::run_rpc(w, caller, s).await;
    pair.shutdown().await;
    run.map(Outcome::Done)
}

/// Whether node links run over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    Tls,
}

/// Node settings for `security`: mutual TLS with a fresh CA, or the defaults.
fn configs(security: Security, addrs: [LogicAddr; 2]) -> Result<[Config; 2], String> {
    if security == Security::Plain {
        return Ok([Config::default(), Config::default()]);
    }
    let err = |e: rcgen::Error| e.to_string();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).map_err(err)?;
    let one = |addr: LogicAddr| -> Result<Config, String> {
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let params = rcgen::CertificateParams::new(vec![clustergo::tls::node_dns_name(addr)])
            .map_err(err)?;
        let cert = params.signed_by(&key, &ca).map_err(err)?;
        let tls = NodeTls::new(vec![cert.der().clone()], key.into(), vec![ca.der().clone()])
            .map_err(|e| e.to_string())?;
        Ok(Config {
            tls: Some(tls),
            ..Config::default()
        })
    };
    Ok([one(addrs[0])?, one(addrs[1])?])
}

/// Starts a node for each address and shuts them all down together.
struct Nodes(Vec<Node>);

impl Nodes {
    async fn shutdown(self) {
        for n in self.0 {
            n.shutdown().await;
        }
    }
}

/// Cross-cluster RPC through harbors beside a direct call, with the in-flight
/// workload's shape. Cluster 1 has the client, a direct server and a harbor;
/// cluster 2 a harbor and the remote server. A relayed call goes
/// client → harbor 1 → harbor 2 → server and its reply back the same way.
async fn harbor(s: Sizes) -> Result<Run, String> {
    let addr = |c, t, n| LogicAddr::new(c, t, n).map_err(|e| e.to_string());
    let harbor = |c, n| LogicAddr::harbor(c, n).map_err(|e| e.to_string());
    let client = addr(1, 2, 1)?;
    let direct = addr(1, 1, 1)?;
    let remote = addr(2, 1, 1)?;
    let all = [client, direct, harbor(1, 1)?, harbor(2, 1)?, remote];
    let ports = free_ports(all.len())?;
    let membership = InProcess::with_members(
        all.iter()
            .zip(ports)
            .map(|(&a, port)| Member::new(Addr::new(a, port))),
    );
    let mut nodes = Vec::new();
    for a in all {
        let node = node(Config::default());
        if a == direct || a == remote {
            node.register_rpc(METHOD, |_ctx, replyer, req: Request| {
                replyer.reply(workload::reply_to(&req));
            });
        }
        if let Err(e) = node.start(membership.clone(), a).await {
            Nodes(nodes).shutdown().await;
            return Err(format!("start node {a}: {e}"));
        }
        nodes.push(node);
    }
    let node = nodes[0].clone();
    let task = async move {
        let direct = ClustergoClient {
            node: node.clone(),
            to: direct,
        };
        let relayed = ClustergoClient { node, to: remote };
        for c in [&direct, &relayed] {
            workload::inflight(c.clone(), s.warmup, 100.min(s.inflight))
                .await
                .map_err(|e| format!("warm-up to {}: {e}", c.to))?;
        }
        let watch = Stopwatch::start();
        let (d_direct, _) = workload::inflight(direct, s.rpc_calls, s.inflight).await?;
        let (d_relayed, _) = workload::inflight(relayed, s.rpc_calls, s.inflight).await?;
        let (_, cpu) = watch.stop();
        let (a, b) = (
            workload::per_sec(s.rpc_calls as u64, d_direct),
            workload::per_sec(s.rpc_calls as u64, d_relayed),
        );
        Ok(Run {
            values: vec![("harbor_rpc_direct", a), ("harbor_rpc_relayed", b)],
            cpu,
            note: Some(format!("relayed/direct = {:.2}", b / a)),
        })
    };
    let run = workload::spawn_timed(task).await;
    Nodes(nodes).shutdown().await;
    run
}

/// The in-flight workload against an async-form handler (`register_async`):
/// the same client, the server spawning a task per request.
pub(crate) async fn run_async(w: Workload, s: Sizes) -> Result<Outcome, String> {
    if w != Workload::RpcInflight {
        return Ok(Outcome::NotApplicable(
            "async variant of rpc_inflight500 only",
        ));
    }
    rpc(w, s, Security::Plain, Form::Async).await
}

/// The server's handler form.
#[derive(Debug, Clone, Copy)]
enum Form {
    Replyer,
    Async,
}

/// The in-flight workload driven by `call_with_callback` instead of futures.
pub(crate) async fn run_callbacks(w: Workload, s: Sizes) -> Result<Outcome, String> {
    if w != Workload::RpcInflight {
        return Ok(Outcome::NotApplicable(
            "callback variant of rpc_inflight500 only",
        ));
    }
    // Same warm-up and timed part as the futures variant, through callbacks.
    let pair = Pair::start(Security::Plain, Form::Replyer).await?;
    let (node, to) = (pair.client.clone(), pair.server_addr);
    let task = async move {
        inflight_callbacks(&node, to, s.warmup, 100.min(s.inflight))
            .await
            .map_err(|e| format!("warm-up: {e}"))?;
        let watch = Stopwatch::start();
        inflight_callbacks(&node, to, s.rpc_calls, s.inflight).await?;
        let (d, cpu) = watch.stop();
        Ok(Run {
            values: vec![("rpc_inflight500", workload::per_sec(s.rpc_calls as u64, d))],
            cpu,
            note: None,
        })
    };
    let run = workload::spawn_timed(task).await;
    pair.shutdown().await;
    run.map(Outcome::Done)
}

/// `calls` calls keeping `window` in flight with callbacks only: `window` chains are
/// started, and each callback checks its reply and makes the next call, as a
/// callback-style user would.
async fn inflight_callbacks(
    node: &Node,
    to: LogicAddr,
    calls: usize,
    window: usize,
) -> Result<(), String> {
    let chains = Arc::new(Chains {
        node: node.clone(),
        to,
        calls,
        issued: AtomicUsize::new(0),
        deadline: clustergo::Instant::now() + workload::RUN_TIMEOUT,
        checker: Checker::default(),
        done: Arrivals::default(),
    });
    for _ in 0..window.min(calls) {
        chains.clone().next();
    }
    chains.done.wait_for(calls as u64).await?;
    chains.checker.finish(calls)
}

/// Shared state of the callback chains.
struct Chains {
    node: Node,
    to: LogicAddr,
    calls: usize,
    issued: AtomicUsize,
    deadline: clustergo::Instant,
    checker: Checker,
    done: Arrivals,
}

impl Chains {
    /// Makes the next call of a chain, unless all calls are made.
    fn next(self: Arc<Self>) {
        if self.issued.fetch_add(1, Ordering::Relaxed) >= self.calls {
            return;
        }
        let this = self.clone();
        // The handle is only needed to cancel; these calls run to the end.
        let _ = self.node.call_with_callback(
            self.to,
            METHOD,
            &workload::request(),
            self.deadline,
            move |r: Result<Response, _>| {
                this.checker.check(r.map_err(|e| e.to_string()));
                this.done.arrived(1, true);
                this.next();
            },
        );
    }
}

/// A server node and a client node sharing one in-process membership.
struct Pair {
    server: Node,
    client: Node,
    server_addr: LogicAddr,
    client_addr: LogicAddr,
}

impl Pair {
    async fn start(security: Security, form: Form) -> Result<Self, String> {
        let server_addr = LogicAddr::new(1, 1, 1).map_err(|e| e.to_string())?;
        let client_addr = LogicAddr::new(1, 2, 1).map_err(|e| e.to_string())?;
        let [server_config, client_config] = configs(security, [server_addr, client_addr])?;
        let ports = free_ports(2)?;
        let members = InProcess::with_members([
            Member::new(Addr::new(server_addr, ports[0])),
            Member::new(Addr::new(client_addr, ports[1])),
        ]);
        let server = node(server_config);
        match form {
            Form::Replyer => server.register_rpc(METHOD, |_ctx, replyer, req: Request| {
                replyer.reply(workload::reply_to(&req));
            }),
            Form::Async => clustergo::rpc::register_async::<ProstCodec, Request, Response, _, _>(
                &server,
                METHOD,
                |_ctx, req| async move { Ok(workload::reply_to(&req)) },
            ),
        }
        let client = node(client_config);
        server
            .start(members.clone(), server_addr)
            .await
            .map_err(|e| format!("start server node: {e}"))?;
        client
            .start(members, client_addr)
            .await
            .map_err(|e| format!("start client node: {e}"))?;
        Ok(Self {
            server,
            client,
            server_addr,
            client_addr,
        })
    }

    async fn shutdown(self) {
        self.client.shutdown().await;
        self.server.shutdown().await;
    }
}

#[derive(Debug, Clone)]
struct ClustergoClient {
    node: Node,
    to: LogicAddr,
}

impl Caller for ClustergoClient {
    fn rpc(&self, req: Request) -> impl Future<Output = Result<Response, String>> + Send + 'static {
        let this = self.clone();
        async move {
            this.node
                .call::<Request, Response>(this.to, METHOD, &req)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// One-way: `send_pb` from the client node, counted by a pb handler on the server
/// node. A full queue (`Busy`) is waited out and counted, never dropped.
async fn oneway(s: Sizes) -> Result<Run, String> {
    let pair = Pair::start(Security::Plain, Form::Replyer).await?;
    let arrivals = Arc::new(Arrivals::default());
    let counter = arrivals.clone();
    pair.server
        .register_pb_handler::<Request, _>(ONEWAY_CMD, move |_from, msg| {
            counter.arrived(1, msg.msg == REQUEST_MSG);
        });
    pair.client.register_pb_message::<Request>(ONEWAY_CMD);
    let (node, to) = (pair.client.clone(), pair.server_addr);
    let warmup = s.warmup as u64;
    let total = warmup + s.oneway_msgs;
    let task = async move {
        let msg = workload::request();
        let mut busy = 0u64;
        let send = async |n: u64, busy: &mut u64| {
            for _ in 0..n {
                loop {
                    match node.send_pb(to, &msg) {
                        Ok(()) => break,
                        Err(SendError::Busy) => {
                            *busy += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => return Err(format!("send_pb: {e}")),
                    }
                }
            }
            Ok::<_, String>(())
        };
        send(warmup, &mut busy).await?;
        arrivals.wait_for(warmup).await?;
        let watch = Stopwatch::start();
        send(s.oneway_msgs, &mut busy).await?;
        arrivals.wait_for(total).await?;
        let (d, cpu) = watch.stop();
        arrivals.finish(total)?;
        Ok(Run {
            values: vec![("oneway_pb", workload::per_sec(s.oneway_msgs, d))],
            cpu,
            note: Some(format!("send_pb returned Busy {busy} times (retried)")),
        })
    };
    let run = workload::spawn_timed(task).await;
    let _ = pair.client_addr;
    pair.shutdown().await;
    run
}

/// Server-streaming RPC: one call whose handler sends as many messages as the
/// request's `msg` says; the caller reads and checks them (the warmup is a call of
/// its own). Compare with `oneway_pb` (issue 13: ≥ 0.7×).
async fn stream_rpc(s: Sizes) -> Result<Run, String> {
    let pair = Pair::start(Security::Plain, Form::Replyer).await?;
    clustergo::rpc::register_server_stream::<ProstCodec, Request, Request, _, _>(
        &pair.server,
        "feed",
        |_ctx, req: Request, mut tx| async move {
            let n: u64 = req.msg.parse().unwrap_or(0);
            let msg = workload::request();
            for _ in 0..n {
                tx.send(msg.clone()).await?;
            }
            Ok(())
        },
    );
    let (node, to) = (pair.client.clone(), pair.server_addr);
    let task = async move {
        let read = async |n: u64| {
            let count = Request { msg: n.to_string() };
            let mut rx = clustergo::rpc::call_server_stream::<ProstCodec, Request, Request>(
                &node, to, "feed", count, None,
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut got = 0u64;
            while let Some(m) = rx.message().await.map_err(|e| e.to_string())? {
                if m.msg != REQUEST_MSG {
                    return Err(format!("unexpected message {:?}", m.msg));
                }
                got += 1;
            }
            if got != n {
                return Err(format!("{got} of {n} messages arrived"));
            }
            Ok::<_, String>(())
        };
        read(s.warmup as u64).await?;
        let watch = Stopwatch::start();
        read(s.oneway_msgs).await?;
        let (d, cpu) = watch.stop();
        Ok(Run {
            values: vec![("stream_rpc", workload::per_sec(s.oneway_msgs, d))],
            cpu,
            note: None,
        })
    };
    let run = workload::spawn_timed(task).await;
    pair.shutdown().await;
    run
}

/// Stream: `open_stream` from the client node, `stream_chunk`-sized writes, bytes
/// counted by the server node's `on_new_stream` handler.
async fn stream(s: Sizes, security: Security) -> Result<Run, String> {
    let pair = Pair::start(security, Form::Replyer).await?;
    let arrivals = Arc::new(Arrivals::default());
    let counter = arrivals.clone();
    let chunk = s.stream_chunk;
    pair.server.on_new_stream(move |mut stream| {
        let counter = counter.clone();
        async move {
            let mut buf = vec![0u8; chunk];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                counter.arrived(n as u64, true);
            }
        }
    });
    let (node, to) = (pair.client.clone(), pair.server_addr);
    let task = async move {
        let mut stream = node
            .open_stream(to)
            .await
            .map_err(|e| format!("open_stream: {e}"))?;
        let data = vec![0xa5u8; chunk];
        let watch = Stopwatch::start();
        let mut left = s.stream_bytes;
        while left > 0 {
            let n = left.min(chunk as u64) as usize;
            stream
                .write_all(&data[..n])
                .await
                .map_err(|e| format!("write: {e}"))?;
            left -= n as u64;
        }
        stream.flush().await.map_err(|e| format!("flush: {e}"))?;
        arrivals.wait_for(s.stream_bytes).await?;
        let (d, cpu) = watch.stop();
        arrivals.finish(s.stream_bytes)?;
        Ok(Run {
            values: vec![("stream_64k", workload::per_sec(s.stream_bytes, d) / 1e9)],
            cpu,
            note: None,
        })
    };
    let run = workload::spawn_timed(task).await;
    pair.shutdown().await;
    run
}

/// A node; with `CLUSTERGO_BENCH_ADMIN=1` it runs the admin listener on loopback,
/// so the cost of the metrics on the hot path can be compared run against run.
fn node(config: Config) -> Node {
    let admin = std::env::var("CLUSTERGO_BENCH_ADMIN").is_ok_and(|v| v == "1");
    Node::with_config(Config {
        admin_addr: admin.then(|| ([127, 0, 0, 1], 0).into()),
        ..config
    })
}
