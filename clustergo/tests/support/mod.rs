//! Shared helpers of the integration tests: nodes on loopback with in-process
//! membership, prost test messages, bounded waits.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use clustergo::handshake::{self, ConnKind, Hello};
use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, Config, LogicAddr, Node, Replyer, RpcError};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, PartialEq, prost::Message)]
pub struct Echo {
    #[prost(string, tag = "1")]
    pub msg: String,
    #[prost(uint64, tag = "2")]
    pub n: u64,
    #[prost(bytes = "vec", tag = "3")]
    pub blob: Vec<u8>,
}

pub fn echo(msg: &str, n: u64) -> Echo {
    Echo {
        msg: msg.into(),
        n,
        blob: Vec::new(),
    }
}

pub fn addr(s: &str) -> LogicAddr {
    s.parse().unwrap()
}

pub fn config() -> Config {
    Config {
        secret: b"test-secret".into(),
        ..Config::default()
    }
}

/// Awaits `fut`, failing the test after [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` every 5 ms until it holds, failing after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

pub fn member(logic: &str, net: SocketAddr, export: bool) -> Member {
    Member {
        addr: Addr::new(addr(logic), net),
        export,
        available: true,
    }
}

/// A free loopback port: bound and released (for nodes that start later).
pub async fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Lists `logic` in `membership` on a fresh loopback listener and starts a node there.
pub async fn start_node_with(
    membership: &InProcess,
    logic: &str,
    export: bool,
    config: Config,
) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let net = listener.local_addr().unwrap();
    membership.put_now(member(logic, net, export));
    let node = Node::with_config(config);
    node.start_on(listener, membership.clone(), addr(logic))
        .await
        .unwrap();
    node
}

/// A raw frame link into `to`, as node `logic` listed at `listen`: the real
/// handshake with the test secret, and then whatever bytes the test writes.
/// Membership must list `logic` at `listen` (the acceptor checks it).
pub async fn raw_link(logic: &str, listen: SocketAddr, to: &Node) -> TcpStream {
    let mut s = TcpStream::connect(to.listen_addr().unwrap()).await.unwrap();
    let hello = Hello {
        kind: ConnKind::Frames,
        logic: addr(logic),
        incarnation: 1,
        listen,
    };
    let dialed = handshake::dial(
        &mut s,
        b"test-secret",
        &hello,
        to.local_addr().unwrap(),
        Duration::from_secs(1),
    );
    within("the raw link's handshake", dialed).await.unwrap();
    s
}

/// Echoes every stream back until the writer half-closes, then closes.
pub fn echo_streams(node: &Node) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    node.on_new_stream(|mut s| async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            if s.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
        let _ = s.shutdown().await;
    });
}

/// Records the pb (`Echo` under `pb`) and binary (`bin`) messages `node` receives,
/// as `"pb FROM MSG"` / `"bin FROM BODY"`.
pub fn inbox(node: &Node, pb: u16, bin: u16) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    node.register_pb_handler(pb, move |from, m: Echo| {
        g.lock().push(format!("pb {from} {}", m.msg))
    });
    let g = got.clone();
    node.register_bin_handler(bin, move |from, _, body: bytes::Bytes| {
        g.lock()
            .push(format!("bin {from} {}", String::from_utf8_lossy(&body)))
    });
    got
}

/// A membership and the nodes started on it; starting a node waits until every
/// node of the cluster knows every member (membership spreads asynchronously).
#[derive(Default)]
pub struct Cluster {
    pub m: InProcess,
    nodes: parking_lot::Mutex<Vec<Node>>,
}

impl Cluster {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn start(&self, logic: &str) -> Node {
        self.start_with(logic, false, config()).await
    }

    pub async fn start_with(&self, logic: &str, export: bool, config: Config) -> Node {
        let node = start_node_with(&self.m, logic, export, config).await;
        self.add(node.clone()).await;
        node
    }

    /// Tracks a node started by the test itself and waits for membership to settle.
    pub async fn add(&self, node: Node) {
        self.nodes.lock().push(node);
        self.settle().await;
    }

    /// Waits until every tracked, running node's view matches membership.
    pub async fn settle(&self) {
        let members = self.m.members();
        let nodes = self.nodes.lock().clone();
        eventually("membership to settle", || {
            nodes.iter().all(|n| {
                !n.is_running()
                    || (n.members().len() == members.len()
                        && members
                            .iter()
                            .all(|m| n.member(m.logic()).as_ref() == Some(m)))
            })
        })
        .await;
    }
}

/// Requests to the method `"hold"` that a server keeps unanswered until the test
/// releases them.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<Vec<HeldCall>>>);

/// A held request: its replyer and argument.
pub type HeldCall = (Replyer<Echo>, Echo);

impl Held {
    /// Registers `"hold"` on `node`, keeping every request here.
    pub fn serve(node: &Node) -> Self {
        let held = Self::default();
        let h = held.clone();
        node.register_rpc("hold", move |_c, r: Replyer<Echo>, req: Echo| {
            h.0.lock().push((r, req))
        });
        held
    }

    /// How many requests are held.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// Starts `n` calls of `"hold"` from `caller` to `to` (each waiting up to
    /// `timeout`) and returns once the server holds them all.
    pub async fn calls(
        &self,
        caller: &Node,
        to: &str,
        n: u64,
        timeout: Duration,
    ) -> JoinSet<Result<Echo, RpcError>> {
        let before = self.len();
        let mut calls = JoinSet::new();
        for i in 0..n {
            let (caller, to) = (caller.clone(), addr(to));
            calls.spawn(async move {
                caller
                    .call_with_timeout::<_, Echo>(to, "hold", &echo("held", i), timeout)
                    .await
            });
        }
        eventually("requests held", || self.len() == before + n as usize).await;
        calls
    }

    /// Answers every held request with its own argument.
    pub fn release(&self) {
        for (r, req) in self.0.lock().drain(..) {
            r.reply(req);
        }
    }

    /// Drops every held request unanswered.
    pub fn forget(&self) {
        self.0.lock().clear();
    }
}

/// Waits for every call in `calls` and returns their results.
pub async fn results<T: 'static>(mut calls: JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(r) = within("calls end", calls.join_next()).await {
        out.push(r.unwrap());
    }
    out
}

pub mod proxy;
