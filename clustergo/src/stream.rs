//! Multiplexed byte streams between nodes.
//!
//! Streams to one peer share a dedicated, authenticated TCP connection (handshake
//! kind `Streams`), multiplexed by yamux, which gives each stream its own flow
//! control window: a stream whose reader stalls does not hold up the others.
//! The session is made on the first [`Node::open_stream`] to a peer; either side
//! may then open streams on it. A broken session is dropped and rebuilt on the next
//! open. Streams reach nodes linked directly (same cluster, or harbor to harbor);
//! they are not relayed through harbors.
//!
//! yamux 0.14 has no keepalive, so sessions keep their own: the dialer opens the
//! session's first stream (id 1) as a keepalive stream; each side writes a byte on
//! it when no stream wrote for `keepalive_interval`, and a session that reads
//! nothing from its socket for `keepalive_timeout` is declared dead. A session that
//! ends cuts its streams, and a stream cut (reset by the peer, or its session lost)
//! reads as an error (`ConnectionReset`, `ConnectionAborted`), never as a clean
//! end-of-stream: only a `shutdown()` by the peer reads as end-of-stream.
//!
//! Streaming RPC calls (`rpc/streaming.rs`) ride the same sessions. To tell them
//! apart on accept, the opener of every stream writes one kind byte first —
//! `USER_STREAM` (0) for `open_stream`, `RPC_STREAM` (1) for a call — and the acceptor
//! reads it before handing the stream over, so a user's `Stream` carries exactly
//! the bytes the other user wrote, as before.
//!
//! In the Go seed's dialect sessions are smux v1 instead (`gocompat/session.rs`):
//! the dialer opens streams, the acceptor serves them, smux's own NOPs keep the
//! session alive, and a stream dropped without `shutdown()` sends FIN (smux v1 has
//! no reset), so the other end reads end-of-stream; a lost session may read as
//! end-of-stream too (as on the Go side), not as an error.
//! Go streams carry no kind byte and no streaming calls: every inbound smux stream
//! is a user stream.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use tracing::Instrument;

use crate::addr::LogicAddr;
use crate::coalesce::{self, Coalesce};
use crate::conn::Conn;
#[cfg(feature = "go-compat")]
use crate::gocompat::session as smux;
use crate::handshake::{ConnKind, HandshakeError};
use crate::keepalive::{self, Heard, Tick, Watchdog};
use crate::node::{Dialect, Node, NodeInner, is_direct};
use crate::rpc::trace;

/// Streams one session carries at most.
const MAX_STREAMS: usize = 4096;

/// First byte of a stream opened by [`Node::open_stream`].
const USER_STREAM: u8 = 0;
/// First byte of a stream carrying a streaming RPC call.
const RPC_STREAM: u8 = 1;

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The node is not started, or stopping.
    #[error("node not running")]
    NotRunning,
    /// The peer is not in membership.
    #[error("unknown peer {0}")]
    UnknownPeer(LogicAddr),
    /// Streams do not cross clusters through harbors.
    #[error("{0} is in another cluster: streams are not relayed through harbors")]
    NotDirect(LogicAddr),
    /// Opening a stream to yourself is not supported.
    #[error("cannot open a stream to the local node")]
    SelfStream,
    /// Connecting or authenticating failed.
    #[error("cannot connect to {peer}: {source}")]
    Connect {
        /// The peer.
        peer: LogicAddr,
        /// Why.
        source: HandshakeError,
    },
    /// The session did not take a new stream within `Config::stream_open_timeout`:
    /// it holds 256 streams the peer has not acknowledged yet (it has not written
    /// on them), yamux's limit. Close streams, or have the peer write on them.
    #[error(
        "stream to {peer} not opened within the stream_open_timeout: \
         256 streams await the peer's acknowledgement"
    )]
    TooManyPending {
        /// The peer.
        peer: LogicAddr,
    },
    /// The multiplexed session failed.
    #[error("stream session to {peer} failed: {reason}")]
    Session {
        /// The peer.
        peer: LogicAddr,
        /// Why.
        reason: String,
    },
}

/// A bidirectional byte stream to another node (`AsyncRead + AsyncWrite`).
/// `shutdown()` half-closes: the other end reads end-of-stream. Dropping it without
/// `shutdown()` resets it: the other end reads an error (`ConnectionReset`), as it
/// does when the session is lost (`ConnectionAborted`).
pub struct Stream {
    inner: StreamInner,
    peer: LogicAddr,
    session: Arc<Liveness>,
    /// Our side was shut down: the stream may close with no reset.
    shut: bool,
    /// End-of-stream was read once: later reads read it again.
    eof: bool,
}

/// The multiplexer's stream under a [`Stream`]: the dialect's.
pub(crate) enum StreamInner {
    Yamux(Compat<yamux::Stream>),
    #[cfg(feature = "go-compat")]
    Smux(crate::gocompat::session::SmuxStream),
}

/// What a session's streams and its driver share: activity for the keepalive, and
/// whether the session was lost.
#[derive(Debug, Default)]
struct Liveness {
    /// A stream wrote since the last keepalive tick.
    wrote: AtomicBool,
    /// The socket delivered bytes since the last keepalive tick.
    heard: Arc<AtomicBool>,
    /// The session ended under its streams.
    lost: AtomicBool,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("peer", &self.peer).finish()
    }
}

impl Stream {
    fn new(inner: StreamInner, peer: LogicAddr, session: &Arc<Liveness>) -> Self {
        Self {
            inner,
            peer,
            session: session.clone(),
            shut: false,
            eof: false,
        }
    }

    /// The node at the other end.
    pub fn peer(&self) -> LogicAddr {
        self.peer
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Without `go-compat` the match has one arm.
        #[cfg_attr(
            not(feature = "go-compat"),
            allow(clippy::infallible_destructuring_match)
        )]
        let yamux = match &mut self.inner {
            StreamInner::Yamux(s) => s,
            #[cfg(feature = "go-compat")]
            StreamInner::Smux(s) => return Pin::new(s).poll_read(cx, buf),
        };
        let before = buf.filled().len();
        std::task::ready!(Pin::new(yamux).poll_read(cx, buf))?;
        if buf.filled().len() > before || buf.remaining() == 0 || self.eof {
            return Poll::Ready(Ok(()));
        }
        // yamux reads a reset, or a session gone, as end-of-stream: tell them apart
        // from the peer's shutdown, which leaves the stream half-open (or closed by
        // our own shutdown as well).
        if self.session.lost.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "stream session lost",
            )));
        }
        let closed = matches!(&self.inner, StreamInner::Yamux(s) if s.get_ref().is_closed());
        if closed && !self.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "stream reset by the peer",
            )));
        }
        self.eof = true;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        keepalive::mark(&self.session.wrote);
        match &mut self.inner {
            StreamInner::Yamux(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "go-compat")]
            StreamInner::Smux(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            StreamInner::Yamux(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "go-compat")]
            StreamInner::Smux(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(match &mut self.inner {
            StreamInner::Yamux(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "go-compat")]
            StreamInner::Smux(s) => Pin::new(s).poll_shutdown(cx),
        })?;
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

type OpenReply = oneshot::Sender<Result<yamux::Stream, String>>;
type Handler = Arc<dyn Fn(Stream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One live session: where to send open requests.
#[derive(Clone)]
struct Session {
    id: u64,
    opener: Opener,
    liveness: Arc<Liveness>,
}

/// How a session opens streams: a request to its yamux driver, or smux's opener.
#[derive(Clone)]
enum Opener {
    Yamux(mpsc::UnboundedSender<OpenReply>),
    #[cfg(feature = "go-compat")]
    Smux(crate::gocompat::session::Opener),
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish()
    }
}

/// The stream sessions of a node, its handler for inbound streams, and the
/// streaming calls it serves on them.
#[derive(Default)]
pub(crate) struct Streams {
    /// Streaming RPC calls being served, which stop drains.
    pub(crate) calls: crate::rpc::streaming::ServedCalls,
    sessions: Mutex<HashMap<LogicAddr, Session>>,
    /// One dial at a time per peer.
    dialing: Mutex<HashMap<LogicAddr, Arc<tokio::sync::Mutex<()>>>>,
    handler: RwLock<Option<Handler>>,
    next_id: AtomicU64,
}

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streams")
            .field("sessions", &self.sessions.lock().len())
            .finish()
    }
}

impl Streams {
    /// Peers with a live stream session.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Forgets the session to `peer` (removed from membership), so no new stream
    /// is opened on it; its connection ends when the peer goes away or on stop.
    pub(crate) fn drop_peer(&self, peer: LogicAddr) {
        self.sessions.lock().remove(&peer);
    }
}

impl Node {
    /// Sets what runs for each stream another node opens to this one. Each stream
    /// gets its own task.
    pub fn on_new_stream<F, Fut>(&self, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: Handler = Arc::new(move |s| Box::pin(handler(s)));
        *self.inner.streams().handler.write() = Some(h);
    }

    /// Opens a stream to `peer`, making the session on first use.
    pub async fn open_stream(&self, peer: LogicAddr) -> Result<Stream, StreamError> {
        let span = trace::stream_open_span(peer);
        trace::begin(&span, None);
        let started = trace::started(&span);
        let result = self
            .open_stream_untraced(peer)
            .instrument(span.clone())
            .await;
        if let Some(at) = started {
            match &result {
                Ok(_) => trace::end(&span, "Ok", at),
                Err(e) => trace::end(&span, format_args!("{e}"), at),
            }
        }
        result
    }

    /// Opens a stream carrying a streaming RPC call (its kind byte written).
    pub(crate) async fn open_rpc_stream(&self, peer: LogicAddr) -> Result<Stream, StreamError> {
        self.open_tagged(peer, RPC_STREAM).await
    }

    async fn open_stream_untraced(&self, peer: LogicAddr) -> Result<Stream, StreamError> {
        self.open_tagged(peer, USER_STREAM).await
    }

    /// Opens a stream and, in the native dialect, writes its kind byte (a fresh
    /// stream has window for it; Go peers expect none).
    async fn open_tagged(&self, peer: LogicAddr, kind: u8) -> Result<Stream, StreamError> {
        use tokio::io::AsyncWriteExt;
        let mut s = self.open_untagged(peer).await?;
        if !matches!(self.inner.config().dialect, Dialect::Native) {
            return Ok(s);
        }
        s.write_all(&[kind])
            .await
            .map_err(|e| StreamError::Session {
                peer,
                reason: e.to_string(),
            })?;
        Ok(s)
    }

    async fn open_untagged(&self, peer: LogicAddr) -> Result<Stream, StreamError> {
        let inner = &self.inner;
        let run = inner.running().ok_or(StreamError::NotRunning)?;
        if peer == run.local {
            return Err(StreamError::SelfStream);
        }
        if !is_direct(run.local, peer) {
            return Err(StreamError::NotDirect(peer));
        }
        // An existing session first; if it turns out dead, one fresh attempt.
        for _ in 0..2 {
            let session = session_to(inner, peer).await?;
            // Bounded: yamux holds back a new stream while 256 wait for the peer's
            // acknowledgement. An abandoned request is dropped by the driver unopened.
            let wait = inner.config().stream_open_timeout;
            let opened = tokio::time::timeout(wait, open_on(&session))
                .await
                .map_err(|_| StreamError::TooManyPending { peer })?;
            match opened {
                Ok(s) => return Ok(Stream::new(s, peer, &session.liveness)),
                Err(reason) => {
                    tracing::debug!(%peer, %reason, "stream session dead; rebuilding");
                    remove_session(inner, peer, session.id);
                }
            }
        }
        Err(StreamError::Session {
            peer,
            reason: "session closed while opening".into(),
        })
    }
}

/// The session to `peer`, dialing it if there is none. Concurrent opens wait for
/// one dial instead of each making their own.
async fn session_to(inner: &Arc<NodeInner>, peer: LogicAddr) -> Result<Session, StreamError> {
    if let Some(s) = inner.streams().sessions.lock().get(&peer).cloned() {
        return Ok(s);
    }
    let lock = inner
        .streams()
        .dialing
        .lock()
        .entry(peer)
        .or_default()
        .clone();
    let _dialing = lock.lock().await;
    if let Some(s) = inner.streams().sessions.lock().get(&peer).cloned() {
        return Ok(s);
    }
    let result = dial_session(inner, peer).await;
    inner.streams().dialing.lock().remove(&peer);
    result
}

async fn open_on(session: &Session) -> Result<StreamInner, String> {
    match &session.opener {
        Opener::Yamux(open_tx) => {
            let (tx, rx) = oneshot::channel();
            open_tx.send(tx).map_err(|_| "session closed".to_string())?;
            let stream = rx.await.map_err(|_| "session closed".to_string())??;
            Ok(StreamInner::Yamux(stream.compat()))
        }
        #[cfg(feature = "go-compat")]
        Opener::Smux(opener) => opener
            .connect()
            .map(StreamInner::Smux)
            .map_err(|e| e.to_string()),
    }
}

fn remove_session(inner: &NodeInner, peer: LogicAddr, id: u64) {
    let mut sessions = inner.streams().sessions.lock();
    if sessions.get(&peer).is_some_and(|s| s.id == id) {
        sessions.remove(&peer);
    }
}

async fn dial_session(inner: &Arc<NodeInner>, peer: LogicAddr) -> Result<Session, StreamError> {
    inner.running().ok_or(StreamError::NotRunning)?;
    let net = inner
        .member_net(peer)
        .ok_or(StreamError::UnknownPeer(peer))?;
    let (tcp, _) = inner
        .dial(ConnKind::Streams, peer, net)
        .await
        .map_err(|source| StreamError::Connect { peer, source })?;
    Ok(match inner.config().dialect {
        Dialect::Native => start_session(inner, peer, tcp, yamux::Mode::Client),
        #[cfg(feature = "go-compat")]
        Dialect::GoSeed(_) => start_smux(inner, peer, tcp, smux::Role::Client),
    })
}

/// Serves an authenticated inbound stream connection.
pub(crate) fn accept_session(inner: &Arc<NodeInner>, peer: LogicAddr, tcp: Conn) {
    match inner.config().dialect {
        Dialect::Native => drop(start_session(inner, peer, tcp, yamux::Mode::Server)),
        #[cfg(feature = "go-compat")]
        Dialect::GoSeed(_) => drop(start_smux(inner, peer, tcp, smux::Role::Server)),
    }
}

/// Starts an smux session (Go dialect); a dialed one is registered for opens.
#[cfg(feature = "go-compat")]
fn start_smux(inner: &Arc<NodeInner>, peer: LogicAddr, tcp: Conn, role: smux::Role) -> Session {
    let id = inner.streams().next_id.fetch_add(1, Ordering::Relaxed);
    let liveness = Arc::new(Liveness::default());
    let node = inner.clone();
    let lost = liveness.clone();
    let opener = smux::start(inner, peer, tcp, role, move || {
        lost.lost.store(true, Ordering::Relaxed);
        remove_session(&node, peer, id);
    });
    let session = Session {
        id,
        opener: Opener::Smux(opener),
        liveness,
    };
    if role == smux::Role::Client {
        inner
            .streams()
            .sessions
            .lock()
            .entry(peer)
            .or_insert_with(|| session.clone());
    }
    session
}

/// Starts the task driving a yamux session and registers it for opens, unless a
/// session to that peer already exists (then this one only serves inbound streams).
fn start_session(inner: &Arc<NodeInner>, peer: LogicAddr, tcp: Conn, mode: yamux::Mode) -> Session {
    let mut cfg = yamux::Config::default();
    cfg.set_max_num_streams(MAX_STREAMS);
    // yamux splits writes into 16 KiB frames by default; 64 KiB frames roughly
    // tripled one-way throughput on loopback (bench stream_64k: 0.78 → 2.1 GB/s).
    cfg.set_split_send_size(64 * 1024);
    let liveness = Arc::new(Liveness::default());
    // One task drives the whole session, so the connection is not split.
    // yamux's frame headers are joined with their bodies on plain TCP only (the TLS
    // writer queues records until the flush itself: `coalesce.rs`).
    let hold = match tcp {
        Conn::Plain(_) => coalesce::HOLD,
        Conn::Tls(_) => 0,
    };
    let socket: Socket = Coalesce::new(Heard::new(tcp, liveness.heard.clone()), hold);
    let conn = yamux::Connection::new(socket.compat(), cfg, mode);
    let (open_tx, open_rx) = mpsc::unbounded_channel();
    let session = Session {
        id: inner.streams().next_id.fetch_add(1, Ordering::Relaxed),
        opener: Opener::Yamux(open_tx),
        liveness,
    };
    let registered = {
        let mut sessions = inner.streams().sessions.lock();
        sessions.entry(peer).or_insert_with(|| session.clone()).id == session.id
    };
    let node = inner.clone();
    let id = session.id;
    let liveness = session.liveness.clone();
    inner.spawn(async move {
        let closed = node.links().clone();
        let session = Driven {
            node: &node,
            peer,
            liveness: &liveness,
            dialer: mode == yamux::Mode::Client,
        };
        tokio::select! {
            end = session.drive(conn, open_rx) => match end {
                SessionEnd::Closed => {}
                SessionEnd::Failed(e) => tracing::debug!(%peer, error = %e, "stream session ended"),
                SessionEnd::Silent => {
                    tracing::warn!(%peer, "stream session: nothing heard within the keepalive timeout");
                    node.counters().link_silent();
                }
            },
            _ = closed.cancelled() => liveness.lost.store(true, Ordering::Relaxed),
        }
        if registered {
            remove_session(&node, peer, id);
        }
    });
    session
}

/// How a session ended.
enum SessionEnd {
    /// The remote closed the connection.
    Closed,
    /// The connection failed.
    Failed(yamux::ConnectionError),
    /// Nothing arrived within the keepalive timeout.
    Silent,
}

/// A session's socket: reads watched for the keepalive, yamux's frame headers
/// written together with their bodies (plain TCP).
type Socket = Coalesce<Heard<Conn>>;

/// What drives one session.
struct Driven<'a> {
    node: &'a Arc<NodeInner>,
    peer: LogicAddr,
    liveness: &'a Arc<Liveness>,
    /// The dialer opens the keepalive stream.
    dialer: bool,
}

/// Stream id of the keepalive stream: the dialer's first.
const KEEPALIVE_STREAM: u32 = 1;

impl Driven<'_> {
    /// Drives the session: opens requested streams, hands inbound ones to the
    /// handler, keeps it alive. On any end but a clean close, its streams read an
    /// error.
    async fn drive(
        &self,
        mut conn: yamux::Connection<Compat<Socket>>,
        mut open_rx: mpsc::UnboundedReceiver<OpenReply>,
    ) -> SessionEnd {
        let mut watchdog = Watchdog::new(self.node.config());
        let mut keepalive: Option<yamux::Stream> = None;
        // The dialer's keepalive stream is opened (and announced) before any other.
        let mut opening = self.dialer;
        let mut ping = false;
        let mut waiting: VecDeque<OpenReply> = VecDeque::new();
        let result = std::future::poll_fn(|cx| {
            if opening {
                match conn.poll_new_outbound(cx) {
                    Poll::Ready(Ok(stream)) => {
                        keepalive = Some(stream);
                        opening = false;
                        ping = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(SessionEnd::Failed(e)),
                    Poll::Pending => {}
                }
            }
            while let Poll::Ready(tick) = watchdog.poll_tick(cx, &self.liveness.heard) {
                if tick == Tick::Silent {
                    return Poll::Ready(SessionEnd::Silent);
                }
                ping |= !self.liveness.wrote.swap(false, Ordering::Relaxed);
            }
            if let Some(ka) = keepalive.as_mut() {
                if ping && futures::AsyncWrite::poll_write(Pin::new(&mut *ka), cx, &[0]).is_ready()
                {
                    ping = false;
                }
                // Drain what the remote pings; a closed keepalive stream is dropped.
                let mut sink = [0u8; 64];
                loop {
                    match futures::AsyncRead::poll_read(Pin::new(&mut *ka), cx, &mut sink) {
                        Poll::Ready(Ok(n)) if n > 0 => continue,
                        Poll::Ready(_) => keepalive = None,
                        Poll::Pending => {}
                    }
                    break;
                }
            }
            if !opening {
                while let Poll::Ready(Some(reply)) = open_rx.poll_recv(cx) {
                    waiting.push_back(reply);
                }
                // Opens given up (timed out) get no stream. Pruned on every request,
                // so the queue holds at most the opens still waiting.
                waiting.retain(|reply| !reply.is_closed());
                while !waiting.is_empty() {
                    match conn.poll_new_outbound(cx) {
                        Poll::Ready(Ok(stream)) => {
                            if let Some(reply) = waiting.pop_front() {
                                let _ = reply.send(Ok(stream));
                            }
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(SessionEnd::Failed(e)),
                        Poll::Pending => break,
                    }
                }
            }
            loop {
                match conn.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(stream))) => {
                        if !self.dialer && stream.id().val() == KEEPALIVE_STREAM {
                            keepalive = Some(stream);
                            continue;
                        }
                        let stream = StreamInner::Yamux(stream.compat());
                        hand_over(self.node, self.peer, stream, self.liveness);
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(SessionEnd::Failed(e)),
                    Poll::Ready(None) => return Poll::Ready(SessionEnd::Closed),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
        // Streams still open are cut when `conn` drops: they must read an error.
        self.liveness.lost.store(true, Ordering::Relaxed);
        for reply in waiting {
            let _ = reply.send(Err("session closed".into()));
        }
        result
    }
}

/// Gives an inbound native stream, on a task of its own, to the node's handler or
/// to the RPC server, by its kind byte (read within the handshake timeout; a
/// stream without one is reset).
fn hand_over(node: &Arc<NodeInner>, peer: LogicAddr, stream: StreamInner, session: &Arc<Liveness>) {
    let mut stream = Stream::new(stream, peer, session);
    let owner = node.clone();
    node.spawn_detached(async move {
        use tokio::io::AsyncReadExt;
        let wait = owner.config().handshake_timeout;
        let kind = match tokio::time::timeout(wait, stream.read_u8()).await {
            Ok(Ok(kind)) => kind,
            _ => return,
        };
        match kind {
            USER_STREAM => serve_user(&owner, stream).await,
            RPC_STREAM => crate::rpc::streaming::serve(owner, stream).await,
            other => tracing::debug!(%peer, kind = other, "stream of unknown kind; resetting it"),
        }
    });
}

/// Runs the node's `on_new_stream` handler for a user stream.
async fn serve_user(node: &Arc<NodeInner>, stream: Stream) {
    let peer = stream.peer;
    let handler = node.streams().handler.read().clone();
    match handler {
        Some(h) => {
            let span = trace::stream_serve_span(peer);
            trace::begin(&span, None);
            h(stream).instrument(span).await
        }
        None => tracing::warn!(%peer, "inbound stream but no on_new_stream handler; closing it"),
    }
}

/// Gives an inbound smux stream to the node's handler (`gocompat/session.rs`).
#[cfg(feature = "go-compat")]
pub(crate) fn hand_over_smux(node: &Arc<NodeInner>, peer: LogicAddr, stream: smux::SmuxStream) {
    // smux streams read end-of-stream when their session ends: no liveness to watch.
    // Go peers write no kind byte: every smux stream is a user stream.
    let liveness = Arc::new(Liveness::default());
    let stream = Stream::new(StreamInner::Smux(stream), peer, &liveness);
    let owner = node.clone();
    node.spawn_detached(async move { serve_user(&owner, stream).await });
}
