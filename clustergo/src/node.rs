//! The [`Node`]: one member of a cluster, and everything it runs.
//!
//! `Node` is a cheap handle (`Arc` inside). Registration may happen before
//! [`Node::start`]; sending needs a started node.
//!
//! Shutdown protocol (fields of the private `NodeInner`):
//! 1. `stopping` is set: new RPC requests are refused, new sends fail;
//! 2. `accepting` is cancelled: the listener and membership watcher end;
//! 3. in-flight requests (`inflight`) are waited for, up to `drain_timeout`, so their
//!    replies are queued;
//! 4. `links` is cancelled: every peer writes what is queued and closes;
//! 5. `tasks` is waited for, then `stopped` is set and [`Node::wait`] returns.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::addr::LogicAddr;
use crate::codec::{DEFAULT_MAX_FRAME, Frame, FrameKind};
use crate::fastmap::IntMap;
use crate::handshake::{self, AcceptorId, ConnKind, Refusal};
use crate::membership::{Membership, MembershipChange, MembershipError, View};
use crate::message::Registry;
use crate::peer::{Inbound, Peer};
use crate::rpc::{self, RpcError};

/// The secret used when none is configured. Fine for examples and tests; a node
/// started with it logs a warning. Set `CLUSTERGO_SECRET` or [`Config::secret`].
pub const DEV_SECRET: &[u8] = b"clustergo-dev-secret-do-not-use-in-production";

/// Node settings.
#[derive(Clone)]
pub struct Config {
    /// Cluster secret both sides of a connection must know. Default: the
    /// `CLUSTERGO_SECRET` environment variable, else [`DEV_SECRET`] (with a warning).
    pub secret: Vec<u8>,
    /// Largest frame accepted or sent (the length field's value).
    pub max_frame: usize,
    /// Frames a peer queues before sends fail with `Busy`.
    pub pending_queue: usize,
    /// How long a message may wait for a connection before it is dropped.
    pub send_timeout: Duration,
    /// Timeout of [`Node::call`].
    pub call_timeout: Duration,
    /// Time allowed to connect and authenticate.
    pub handshake_timeout: Duration,
    /// How long [`Node::stop`] waits for in-flight requests to be answered.
    pub drain_timeout: Duration,
    /// How long [`Node::start`] waits for the first membership snapshot.
    pub membership_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let secret = std::env::var("CLUSTERGO_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .map(String::into_bytes)
            .unwrap_or_else(|| DEV_SECRET.to_vec());
        Self {
            secret,
            max_frame: DEFAULT_MAX_FRAME,
            pending_queue: 1024,
            send_timeout: Duration::from_millis(200),
            call_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("secret", &"<redacted>")
            .field("max_frame", &self.max_frame)
            .field("pending_queue", &self.pending_queue)
            .field("send_timeout", &self.send_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was called twice.
    #[error("node already started")]
    AlreadyStarted,
    /// Membership could not be read.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// Membership gave no snapshot in time.
    #[error("membership gave no snapshot within {0:?}")]
    MembershipTimeout(Duration),
    /// The node's own address is not in membership.
    #[error("{0} is not listed in membership")]
    NotInMembership(LogicAddr),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from membership.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `start` needs a tokio runtime.
    #[error("start must be called within a tokio runtime")]
    NoRuntime,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The node is not started.
    #[error("node not started")]
    NotStarted,
    /// The node is stopping or stopped.
    #[error("node stopped")]
    Stopped,
    /// The peer's pending queue is full; retry later.
    #[error("busy: pending queue full")]
    Busy,
    /// No such node in membership.
    #[error("unknown peer {0}")]
    UnknownPeer(LogicAddr),
    /// No route reaches the target (no harbor available).
    #[error("no route to {0}")]
    Unreachable(LogicAddr),
    /// The message type has no cmd: register it first.
    #[error("message type {0} is not registered")]
    Unregistered(&'static str),
    /// The frame is larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
}

impl From<SendError> for RpcError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NotStarted => RpcError::NotStarted,
            SendError::Stopped => RpcError::ServiceUnavailable("node stopped".into()),
            SendError::Busy => RpcError::Busy,
            SendError::UnknownPeer(a) => RpcError::UnknownPeer(a),
            SendError::Unreachable(a) => RpcError::Unreachable(a),
            e
            @ (SendError::Unregistered(_) | SendError::TooLarge { .. } | SendError::Encode(_)) => {
                RpcError::Codec(e.to_string())
            }
        }
    }
}

/// What a started node knows about itself.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) local: LogicAddr,
    pub(crate) listen: SocketAddr,
    pub(crate) handle: Handle,
    local_tx: mpsc::Sender<Bytes>,
}

/// Requests being served; [`Node::stop`] waits for zero.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    count: AtomicUsize,
    idle: Notify,
}

impl Inflight {
    pub(crate) fn enter(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn leave(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counters of a node's links, for monitoring and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) links_established: AtomicU64,
    pub(crate) links_lost: AtomicU64,
    pub(crate) frames_expired: AtomicU64,
}

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Node-to-node connections that came up (dialed or accepted).
    pub links_established: u64,
    /// Connections that went down other than by stop or removal.
    pub links_lost: u64,
    /// Frames dropped because their deadline passed before they could be written.
    pub frames_expired: u64,
}

/// Everything a node shares among its tasks.
pub(crate) struct NodeInner {
    pub(crate) config: Config,
    /// Random per start: tells a restarted peer from a second link of the same one.
    pub(crate) incarnation: u64,
    pub(crate) messages: Registry,
    pub(crate) rpc_server: rpc::server::Server,
    pub(crate) rpc_client: rpc::client::Client,
    pub(crate) client_interceptors: rpc::Interceptors<dyn rpc::ClientInterceptor>,
    pub(crate) server_interceptors: rpc::Interceptors<dyn rpc::ServerInterceptor>,
    run: OnceLock<Running>,
    view: RwLock<View>,
    peers: RwLock<IntMap<LogicAddr, Arc<Peer>>>,
    pub(crate) stopping: AtomicBool,
    /// Cancelled first on stop: listener and membership watcher.
    accepting: CancellationToken,
    /// Cancelled after draining: peers flush and close.
    pub(crate) links: CancellationToken,
    tasks: TaskTracker,
    pub(crate) inflight: Inflight,
    pub(crate) counters: Counters,
    pub(crate) streams: crate::stream::Streams,
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

/// Where a frame goes next.
pub(crate) enum Route {
    /// To this node itself.
    Local,
    /// Through this peer (the target, or a harbor on the way).
    Peer(Arc<Peer>),
}

impl Node {
    /// A node with [`Config::default`].
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A node with `config`.
    pub fn with_config(config: Config) -> Self {
        let (stopped, _) = watch::channel(false);
        Self {
            inner: Arc::new(NodeInner {
                config,
                incarnation: fastrand::u64(1..),
                messages: Registry::default(),
                rpc_server: rpc::server::Server::default(),
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
                counters: Counters::default(),
                streams: Default::default(),
                stopped,
            }),
        }
    }

    /// This node's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Starts the node: reads membership, finds its own listen address there by
    /// `local`, binds it, and serves. Fails if `local` is not listed.
    pub async fn start(
        &self,
        membership: impl Membership,
        local: LogicAddr,
    ) -> Result<(), StartError> {
        self.start_inner(Box::new(membership), local, None).await
    }

    /// Like [`start`](Self::start), on a listener bound by the caller (tests bind
    /// `127.0.0.1:0` first, then publish the port in membership). Membership must
    /// list `local` at the listener's address.
    pub async fn start_on(
        &self,
        listener: TcpListener,
        membership: impl Membership,
        local: LogicAddr,
    ) -> Result<(), StartError> {
        self.start_inner(Box::new(membership), local, Some(listener))
            .await
    }

    async fn start_inner(
        &self,
        membership: Box<dyn Membership>,
        local: LogicAddr,
        listener: Option<TcpListener>,
    ) -> Result<(), StartError> {
        let handle = Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        if self.inner.run.get().is_some() || self.inner.stopping.load(Ordering::Acquire) {
            return Err(StartError::AlreadyStarted);
        }
        let mut changes = membership.subscribe().await?;
        let timeout = self.inner.config.membership_timeout;
        let first = tokio::time::timeout(timeout, changes.recv())
            .await
            .map_err(|_| StartError::MembershipTimeout(timeout))?
            .ok_or_else(|| MembershipError::Unreachable("subscription closed".into()))?;
        let mut view = View::new(local);
        view.apply(&first);
        let me = view
            .get(local)
            .ok_or(StartError::NotInMembership(local))?
            .clone();
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(me.addr.net)
                .await
                .map_err(|source| StartError::Bind {
                    addr: me.addr.net,
                    source,
                })?,
        };
        let listen = listener.local_addr().map_err(|source| StartError::Bind {
            addr: me.addr.net,
            source,
        })?;
        if self.inner.config.secret == DEV_SECRET {
            tracing::warn!(node = %local, "using the development secret: set CLUSTERGO_SECRET in production");
        }
        let (local_tx, local_rx) = mpsc::channel(self.inner.config.pending_queue.max(1));
        let running = Running {
            local,
            listen,
            handle,
            local_tx,
        };
        *self.inner.view.write() = view;
        self.inner
            .run
            .set(running)
            .map_err(|_| StartError::AlreadyStarted)?;
        let inner = &self.inner;
        inner.spawn(accept_loop(inner.clone(), listener));
        inner.spawn(local_loop(inner.clone(), local_rx));
        inner.spawn(membership_loop(inner.clone(), changes, membership));
        inner.spawn(rpc::client::sweeper(inner.clone()));
        tracing::info!(node = %local, %listen, "node started");
        Ok(())
    }

    /// Begins shutdown; see the module docs. Returns at once: [`wait`](Self::wait)
    /// for the end. Calling it again does nothing.
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
        let c = &self.inner.counters;
        Metrics {
            links_established: c.links_established.load(Ordering::Relaxed),
            links_lost: c.links_lost.load(Ordering::Relaxed),
            frames_expired: c.frames_expired.load(Ordering::Relaxed),
        }
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
        self.inner.view.read().members().cloned().collect()
    }

    /// The member at `logic` as this node's membership view lists it.
    pub fn member(&self, logic: LogicAddr) -> Option<crate::membership::Member> {
        self.inner.view.read().get(logic).cloned()
    }

    /// Registers prost type `M` under `cmd`, for sending with [`send_pb`](Self::send_pb).
    pub fn register_pb_message<M: prost::Message + Default + 'static>(&self, cmd: u16) {
        self.inner.messages.register_type::<M>(cmd);
    }

    /// Registers `M` under `cmd` and the handler for received `M`s.
    pub fn register_pb_handler<M, F>(&self, cmd: u16, handler: F)
    where
        M: prost::Message + Default + 'static,
        F: Fn(LogicAddr, M) + Send + Sync + 'static,
    {
        self.inner.messages.register_pb(cmd, handler);
    }

    /// Registers the handler for binary messages with `cmd`.
    pub fn register_bin_handler<F>(&self, cmd: u16, handler: F)
    where
        F: Fn(LogicAddr, u16, Bytes) + Send + Sync + 'static,
    {
        self.inner.messages.register_bin(cmd, handler);
    }

    /// Sends a protobuf message (its type registered first) to `to`.
    pub fn send_pb<M: prost::Message + 'static>(
        &self,
        to: LogicAddr,
        msg: &M,
    ) -> Result<(), SendError> {
        let cmd = self
            .inner
            .messages
            .cmd_of::<M>()
            .ok_or(SendError::Unregistered(std::any::type_name::<M>()))?;
        let run = self.inner.running().ok_or(SendError::NotStarted)?;
        let len = msg.encoded_len();
        let mut buf = BytesMut::with_capacity(Frame::HEADER_MAX + len);
        Frame::put_header(&mut buf, FrameKind::Pb, to, run.local, cmd, len);
        msg.encode(&mut buf)
            .map_err(|e| SendError::Encode(e.to_string()))?;
        self.inner.send_frame(to, buf.freeze(), None)
    }

    /// Sends a binary message to `to`.
    pub fn send_bin(&self, to: LogicAddr, cmd: u16, body: &[u8]) -> Result<(), SendError> {
        let run = self.inner.running().ok_or(SendError::NotStarted)?;
        let mut buf = BytesMut::with_capacity(Frame::HEADER_MAX + body.len());
        Frame::put_header(&mut buf, FrameKind::Binary, to, run.local, cmd, body.len());
        buf.put_slice(body);
        self.inner.send_frame(to, buf.freeze(), None)
    }
}

impl NodeInner {
    pub(crate) fn running(&self) -> Option<&Running> {
        self.run.get()
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

    /// The next hop toward `to`: itself, same cluster (and harbor to harbor)
    /// direct, otherwise a harbor — of the own cluster, or if this node is a harbor,
    /// of the target's cluster.
    pub(crate) fn route(self: &Arc<Self>, to: LogicAddr) -> Result<Route, SendError> {
        let run = self.run.get().ok_or(SendError::NotStarted)?;
        if self.stopping.load(Ordering::Relaxed) && self.links.is_cancelled() {
            return Err(SendError::Stopped);
        }
        let local = run.local;
        if to == local {
            return Ok(Route::Local);
        }
        let view = self.view.read();
        let hop = if to.same_cluster(local) || (local.is_harbor() && to.is_harbor()) {
            to
        } else {
            let cluster = if local.is_harbor() {
                to.cluster()
            } else {
                local.cluster()
            };
            view.harbor_for(cluster, to)
                .ok_or(SendError::Unreachable(to))?
        };
        if let Some(peer) = self.peers.read().get(&hop) {
            return Ok(Route::Peer(peer.clone()));
        }
        let member = view.get(hop).ok_or(SendError::UnknownPeer(hop))?;
        let net = member.addr.net;
        drop(view);
        Ok(Route::Peer(self.peer_or_spawn(hop, net)))
    }

    fn peer_or_spawn(self: &Arc<Self>, logic: LogicAddr, net: SocketAddr) -> Arc<Peer> {
        let mut peers = self.peers.write();
        peers
            .entry(logic)
            .or_insert_with(|| Peer::spawn(self, logic, net))
            .clone()
    }

    /// Sends an encoded frame toward `to`. `deadline` defaults to now + send_timeout.
    pub(crate) fn send_frame(
        self: &Arc<Self>,
        to: LogicAddr,
        frame: Bytes,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let route = self.route(to)?;
        self.send_on(&route, frame, deadline)
    }

    pub(crate) fn send_on(
        &self,
        route: &Route,
        frame: Bytes,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let max = self.config.max_frame + crate::codec::LEN_SIZE;
        if frame.len() > max {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max,
            });
        }
        match route {
            Route::Local => {
                let run = self.run.get().ok_or(SendError::NotStarted)?;
                run.local_tx.try_send(frame).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => SendError::Busy,
                    mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
                })
            }
            Route::Peer(peer) => {
                let deadline =
                    deadline.unwrap_or_else(|| Instant::now() + self.config.send_timeout);
                peer.send(frame, deadline)
            }
        }
    }

    /// Handles a frame that arrived from a peer or from this node itself.
    pub(crate) fn dispatch(self: &Arc<Self>, frame: Frame) {
        let Some(run) = self.run.get() else { return };
        if frame.to != run.local {
            self.relay(frame, run.local);
            return;
        }
        match frame.kind {
            FrameKind::Pb => self.messages.dispatch_pb(frame.from, frame.cmd, frame.body),
            FrameKind::Binary => self
                .messages
                .dispatch_bin(frame.from, frame.cmd, frame.body),
            FrameKind::RpcRequest => rpc::server::dispatch(self, frame.from, frame.body),
            FrameKind::RpcResponse => self.rpc_client.complete(frame.from, frame.body),
        }
    }

    /// Forwards a frame addressed to another node (harbors only). The body is not
    /// decoded. An RPC request that cannot be forwarded is answered with an error.
    fn relay(self: &Arc<Self>, frame: Frame, local: LogicAddr) {
        let result = if local.is_harbor() {
            self.send_frame(frame.to, frame.to_bytes(), None)
        } else {
            Err(SendError::Unreachable(frame.to))
        };
        if let Err(e) = result {
            tracing::debug!(to = %frame.to, from = %frame.from, error = %e, "cannot relay frame");
            if frame.kind == FrameKind::RpcRequest {
                let err = match e {
                    SendError::Busy => RpcError::Busy,
                    _ => RpcError::Unreachable(frame.to),
                };
                rpc::server::reject(self, frame.from, &frame.body, err);
            }
        }
    }

    /// A live connection to `remote` ended: calls through it cannot be answered.
    pub(crate) fn link_lost(&self, remote: LogicAddr) {
        self.rpc_client.fail_hop(remote);
    }

    fn apply_membership(self: &Arc<Self>, change: &MembershipChange) {
        let Some(run) = self.run.get() else { return };
        self.view.write().apply(change);
        let mut gone = Vec::new();
        {
            let mut peers = self.peers.write();
            for m in &change.removed {
                self.streams.drop_peer(m.logic());
                if let Some(peer) = peers.remove(&m.logic()) {
                    peer.close();
                    gone.push(m.logic());
                }
            }
            for m in &change.updated {
                if let Some(peer) = peers.get(&m.logic()) {
                    peer.set_net(m.addr.net);
                }
            }
        }
        for logic in gone {
            self.rpc_client.fail_hop(logic);
        }
        if change.removed.iter().any(|m| m.logic() == run.local) {
            tracing::warn!(node = %run.local, "removed from membership: stopping");
            self.stop();
        }
    }

    fn stop(self: &Arc<Self>) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(run) = self.run.get() else {
            self.stopped.send_replace(true);
            return;
        };
        tracing::info!(node = %run.local, "stopping");
        let inner = self.clone();
        run.handle.spawn(async move {
            inner.accepting.cancel();
            if tokio::time::timeout(inner.config.drain_timeout, inner.inflight.wait_idle())
                .await
                .is_err()
            {
                tracing::warn!("stop: in-flight requests still unanswered after the drain timeout");
            }
            inner.links.cancel();
            inner.peers.write().clear();
            inner
                .rpc_client
                .fail_all(RpcError::ServiceUnavailable("node stopped".into()));
            inner.tasks.close();
            inner.tasks.wait().await;
            inner.stopped.send_replace(true);
        });
    }
}

async fn accept_loop(inner: Arc<NodeInner>, listener: TcpListener) {
    loop {
        tokio::select! {
            biased;
            _ = inner.accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    inner.spawn(accept_one(inner.clone(), stream, from));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Authenticates one inbound connection and hands it to its peer.
async fn accept_one(inner: Arc<NodeInner>, mut stream: TcpStream, from: SocketAddr) {
    let Some(run) = inner.running() else { return };
    let me = AcceptorId {
        logic: run.local,
        incarnation: inner.incarnation,
    };
    let timeout = inner.config.handshake_timeout;
    let pending = match handshake::accept(&mut stream, &inner.config.secret, me, timeout).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%from, error = %e, "inbound handshake failed");
            return;
        }
    };
    let hello = pending.hello;
    let verdict = check_hello(&inner, &hello, from);
    let verdict = verdict.and_then(|net| match hello.kind {
        ConnKind::Frames => {
            let peer = inner.peer_or_spawn(hello.logic, net);
            peer.offer_inbound(hello.incarnation, run.local)
                .map(|()| Some(peer))
        }
        ConnKind::Streams => Ok(None),
    });
    let answered =
        handshake::answer(&mut stream, verdict.as_ref().map(|_| ()).map_err(|r| *r)).await;
    match (verdict, answered) {
        (Ok(Some(peer)), Ok(())) => peer.adopt(Ok(Inbound {
            stream,
            incarnation: hello.incarnation,
        })),
        (Ok(None), Ok(())) => crate::stream::accept_session(&inner, hello.logic, stream),
        (Ok(None), Err(e)) => {
            tracing::debug!(%from, error = %e, "inbound stream handshake lost at the verdict")
        }
        (Ok(Some(peer)), Err(e)) => {
            tracing::debug!(%from, error = %e, "inbound handshake lost at the verdict");
            peer.adopt(Err(hello.incarnation));
        }
        (Err(refusal), _) => {
            tracing::debug!(%from, node = %hello.logic, %refusal, "inbound connection refused");
        }
    }
}

/// Checks an authenticated hello against membership; returns the member's address.
fn check_hello(
    inner: &NodeInner,
    hello: &handshake::Hello,
    from: SocketAddr,
) -> Result<SocketAddr, Refusal> {
    if inner.stopping.load(Ordering::Acquire) {
        return Err(Refusal::Stopping);
    }
    let view = inner.view.read();
    let member = view.get(hello.logic).ok_or(Refusal::UnknownNode)?;
    if member.addr.net != hello.listen || member.addr.net.ip() != from.ip() {
        tracing::warn!(node = %hello.logic, claimed = %hello.listen, %from, listed = %member.addr.net,
            "inbound connection does not match membership");
        return Err(Refusal::AddrMismatch);
    }
    Ok(member.addr.net)
}

/// Delivers frames a node sends to itself, in order, without a socket.
async fn local_loop(inner: Arc<NodeInner>, mut rx: mpsc::Receiver<Bytes>) {
    loop {
        let raw = tokio::select! {
            biased;
            raw = rx.recv() => match raw { Some(raw) => raw, None => break },
            _ = inner.links.cancelled() => break,
        };
        match Frame::parse(raw, inner.config.max_frame) {
            Ok(frame) => inner.dispatch(frame),
            Err(e) => tracing::error!(error = %e, "malformed self-sent frame"),
        }
    }
}

async fn membership_loop(
    inner: Arc<NodeInner>,
    mut changes: mpsc::UnboundedReceiver<MembershipChange>,
    membership: Box<dyn Membership>,
) {
    loop {
        tokio::select! {
            biased;
            _ = inner.accepting.cancelled() => break,
            change = changes.recv() => match change {
                Some(change) => inner.apply_membership(&change),
                None => {
                    tracing::warn!("membership subscription ended; keeping the last view");
                    inner.accepting.cancelled().await;
                    break;
                }
            }
        }
    }
    drop(membership);
}
