//! The [`Node`]: one member of a cluster, and everything it runs.
//!
//! `Node` is a cheap handle (`Arc` inside). Registration may happen before
//! [`Node::start`]; sending needs a started node.
//!
//! This file holds the handle and the shared state; each concept of a node has its
//! own file: `config` ([`Config`], [`Secret`]), `error` ([`StartError`],
//! [`SendError`]), `start`, `messages` (the pb/binary message API), `route` (the
//! pure routing rule, and sending), `dispatch` (arriving frames, relay, self-sends),
//! `dial` and `accept` (connection setup), `admission` (the cap on pending
//! handshakes), `members` (membership changes), `shutdown` (the stop protocol),
//! `inflight`, `metrics` and `throttle` (rate-limited warnings).

mod accept;
mod admission;
mod config;
mod dial;
mod dialect;
mod dispatch;
mod error;
mod inflight;
mod members;
mod messages;
mod metrics;
mod route;
mod shutdown;
mod start;
mod throttle;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Config, DEV_SECRET, Secret};
pub use dialect::Dialect;
pub(crate) use dispatch::Arrivals;
pub use error::{SendError, StartError};
pub(crate) use inflight::Inflight;
pub(crate) use metrics::Counters;
pub use metrics::Metrics;
pub(crate) use route::{Route, is_direct};

use crate::addr::LogicAddr;
use crate::fastmap::IntMap;
use crate::membership::View;
use crate::message::Registry;
use crate::peer::Peer;
use crate::rpc;

/// What a started node knows about itself.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) local: LogicAddr,
    pub(crate) listen: SocketAddr,
    pub(crate) handle: Handle,
    /// Where the admin listener is bound, if it is on.
    admin: Option<SocketAddr>,
    local_tx: mpsc::Sender<Bytes>,
}

/// Everything a node shares among its tasks. Other modules use it through
/// methods; the shutdown fields are described in `shutdown.rs`.
pub(crate) struct NodeInner {
    config: Config,
    /// Random per start: tells a restarted peer from a second link of the same one.
    incarnation: u64,
    messages: Registry,
    rpc_server: rpc::server::Server,
    rpc_client: rpc::client::Client,
    /// Async handlers to cancel when the link their request came on is lost.
    async_cancels: rpc::LinkCancels,
    client_interceptors: rpc::Interceptors<dyn rpc::ClientInterceptor>,
    server_interceptors: rpc::Interceptors<dyn rpc::ServerInterceptor>,
    run: OnceLock<Running>,
    view: RwLock<View>,
    peers: RwLock<IntMap<LogicAddr, Arc<Peer>>>,
    /// Set at step 1 of stop: requests and inbound connections are refused.
    stopping: AtomicBool,
    /// Cancelled at step 2 of stop: listener and membership watcher.
    accepting: CancellationToken,
    /// Cancelled at step 4 of stop, after draining: peers flush and close.
    links: CancellationToken,
    tasks: TaskTracker,
    inflight: Inflight,
    /// When draining ends, set by the first drain (`leave` or stop): the two
    /// share one `drain_timeout` (`shutdown.rs`).
    drain_deadline: OnceLock<tokio::time::Instant>,
    counters: Counters,
    /// Call statistics and gate counters for the admin listener.
    admin: crate::admin::Admin,
    /// Inbound connections not authenticated yet (`accept.rs`).
    admission: parking_lot::Mutex<accept::Admission>,
    streams: crate::stream::Streams,
    stopped: watch::Sender<bool>,
}

impl fmt::Debug for NodeInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("local", &self.run.get().map(|r| r.local))
            .field("peers", &self.peers.read().len())
            .field("stopping", &self.stopping.load(Ordering::Relaxed))
            .finish()
    }
}

/// A cluster node. Clones share one node.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    /// A node with [`Config::default`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A node with `config`.
    pub fn with_config(mut config: Config) -> Self {
        config.max_frame = config.dialect.max_frame(config.max_frame);
        let (stopped, _) = watch::channel(false);
        let admission =
            parking_lot::Mutex::new(accept::Admission::new(config.max_pending_handshakes));
        Self {
            inner: Arc::new(NodeInner {
                config,
                incarnation: fastrand::u64(1..),
                messages: Registry::default(),
                rpc_server: rpc::server::Server::default(),
                async_cancels: rpc::LinkCancels::default(),
                rpc_client: rpc::client::Client::default(),
                client_interceptors: Default::default(),
                server_interceptors: Default::default(),
                run: OnceLock::new(),
                view: RwLock::new(View::new(LogicAddr::default())),
                peers: RwLock::default(),
                stopping: AtomicBool::new(false),
                accepting: CancellationToken::new(),
                links: CancellationToken::new(),
                tasks: TaskTracker::new(),
                inflight: Inflight::default(),
                drain_deadline: OnceLock::new(),
                counters: Counters::default(),
                admin: Default::default(),
                admission,
                streams: Default::default(),
                stopped,
            }),
        }
    }

    /// This node's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Begins shutdown: new requests and inbound connections are refused at once;
    /// requests being served get up to [`Config::drain_timeout`] to be answered
    /// (sends still work meanwhile); then every link writes what is queued (within
    /// [`Config::write_stall_timeout`]) and closes, and from then on sends fail
    /// with [`SendError::Stopped`]. The node is stopped within `drain_timeout` plus
    /// `write_stall_timeout + handshake_timeout`, whatever peers do. Returns at
    /// once: [`wait`](Self::wait) for the end. Calling it again does nothing.
    ///
    /// `stop` does not touch membership, so callers may still pick this node until
    /// it is removed; [`leave`](Self::leave) drains first, then removes and stops.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Returns when the node has stopped.
    pub async fn wait(&self) {
        let mut rx = self.inner.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// [`stop`](Self::stop), then [`wait`](Self::wait).
    pub async fn shutdown(&self) {
        self.stop();
        self.wait().await;
    }

    /// Whether the node is started and not stopping.
    pub fn is_running(&self) -> bool {
        self.inner.run.get().is_some() && !self.inner.stopping.load(Ordering::Acquire)
    }

    /// A snapshot of this node's counters.
    pub fn metrics(&self) -> Metrics {
        self.inner.counters.snapshot()
    }

    /// Where the admin listener ([`Config::admin_addr`]) is bound, once started
    /// (useful after binding port 0).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.inner.run.get().and_then(|r| r.admin)
    }

    /// Adds a gate listener's counters (connections, failed and pending
    /// handshakes, by transport) to this node's `/metrics`.
    pub fn export_gate(&self, listener: &crate::gate::Listener) {
        self.inner
            .admin
            .add_gate(listener.transport(), listener.stats());
    }

    /// This node's logical address, once started.
    pub fn local_addr(&self) -> Option<LogicAddr> {
        self.inner.run.get().map(|r| r.local)
    }

    /// The address this node listens on, once started.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner.run.get().map(|r| r.listen)
    }

    /// A random available node of type `typ` this node may see (own cluster first,
    /// then exported nodes of other clusters).
    pub fn get_addr_by_type(&self, typ: u32) -> Option<LogicAddr> {
        self.inner.view.read().addr_by_type(typ)
    }

    /// Like [`get_addr_by_type`](Self::get_addr_by_type), picking `n % count`: the
    /// same `n` keeps reaching the same node while membership holds.
    pub fn get_addr_by_type_n(&self, typ: u32, n: u64) -> Option<LogicAddr> {
        self.inner.view.read().addr_by_type_n(typ, n)
    }

    /// Every member this node's membership view lists, visible or not.
    pub fn members(&self) -> Vec<crate::membership::Member> {
        self.inner.members_snapshot()
    }

    /// The member at `logic` as this node's membership view lists it.
    pub fn member(&self, logic: LogicAddr) -> Option<crate::membership::Member> {
        self.inner.view.read().get(logic).cloned()
    }
}

impl NodeInner {
    /// What the node knows about itself once started.
    pub(crate) fn running(&self) -> Option<&Running> {
        self.run.get()
    }

    /// This node's settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Whether stop has begun (step 1): new requests are refused.
    pub(crate) fn is_stopping(&self) -> bool {
        // SeqCst: pairs with `Inflight::enter` (see there).
        self.stopping.load(Ordering::SeqCst)
    }

    /// Cancelled at step 4 of stop: every link flushes and closes.
    pub(crate) fn links(&self) -> &CancellationToken {
        &self.links
    }

    /// The methods this node serves.
    pub(crate) fn rpc_server(&self) -> &rpc::server::Server {
        &self.rpc_server
    }

    /// The calls this node waits on.
    pub(crate) fn rpc_client(&self) -> &rpc::client::Client {
        &self.rpc_client
    }

    /// The layout of RPC bodies on this node's links (its dialect's).
    pub(crate) fn rpc_form(&self) -> rpc::wire::Form {
        self.config.dialect.rpc_form()
    }

    /// Hooks around outgoing calls.
    pub(crate) fn client_interceptors(&self) -> &rpc::Interceptors<dyn rpc::ClientInterceptor> {
        &self.client_interceptors
    }

    /// Hooks around served requests.
    pub(crate) fn server_interceptors(&self) -> &rpc::Interceptors<dyn rpc::ServerInterceptor> {
        &self.server_interceptors
    }

    /// Requests being served, which stop waits for.
    pub(crate) fn inflight(&self) -> &Inflight {
        &self.inflight
    }

    /// Link counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// What the admin listener keeps.
    pub(crate) fn admin(&self) -> &crate::admin::Admin {
        &self.admin
    }

    /// Every member of the membership view.
    pub(crate) fn members_snapshot(&self) -> Vec<crate::membership::Member> {
        self.view.read().members().cloned().collect()
    }

    /// Each peer's link state and queue depth, for monitoring.
    pub(crate) fn peer_links(&self) -> Vec<crate::admin::PeerLink> {
        let peers: Vec<Arc<Peer>> = self.peers.read().values().cloned().collect();
        peers
            .iter()
            .map(|p| crate::admin::PeerLink {
                addr: p.remote(),
                link: p.link_label(),
                queue: p.queue_depth(),
            })
            .collect()
    }

    /// Stream sessions and the inbound stream handler.
    pub(crate) fn streams(&self) -> &crate::stream::Streams {
        &self.streams
    }

    /// A live connection of `peer` ended: calls through it cannot be answered.
    pub(crate) fn link_lost(&self, peer: &Peer) {
        self.rpc_client.fail_via(peer.id());
        self.async_cancels.link_lost(peer.id());
    }

    pub(crate) fn async_cancels(&self) -> &rpc::LinkCancels {
        &self.async_cancels
    }

    /// A dial to `peer` failed and no link is up: calls through it were never
    /// written and cannot be.
    pub(crate) fn link_unreachable(&self, peer: &Peer) {
        self.rpc_client.fail_via_unreachable(peer.id());
    }

    /// The listen address membership gives for `logic`.
    pub(crate) fn member_net(&self, logic: LogicAddr) -> Option<SocketAddr> {
        self.view.read().get(logic).map(|m| m.addr.net)
    }

    /// Spawns user code (stream handlers) that `stop` should not wait for.
    pub(crate) fn spawn_detached<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.run.get() {
            Some(run) => drop(run.handle.spawn(fut)),
            None => drop(tokio::spawn(fut)),
        }
    }

    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.run.get() {
            Some(run) => {
                self.tasks.spawn_on(fut, &run.handle);
            }
            None => {
                self.tasks.spawn(fut);
            }
        }
    }
}
