//! The discovery server: holds the member list and serves it over TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::{Framed, FramedParts, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::auth;
use super::proto::{self, DISCOVERY_MAX_FRAME, Request, Response};
use super::tls::{self, Stream};
use crate::addr::LogicAddr;
use crate::handshake::HandshakeError;
use crate::membership::{
    BoxFuture, Member, MemberSet, MembershipAdmin, MembershipChange, MembershipError,
};

/// Largest frame an anonymous reader may send (its requests are a few dozen bytes).
const ANONYMOUS_MAX_FRAME: usize = 4096;

/// The answer to an anonymous put or remove.
const ANONYMOUS_WRITE: &str =
    "anonymous clients may only read: prove the cluster secret to change the list";

/// Settings of a [`DiscoveryServer`].
///
/// The defaults suit a cluster of up to a few thousand nodes whose nodes and server
/// share a default [`Config`](crate::Config)'s secret.
#[derive(Clone, Debug)]
pub struct DiscoveryServerConfig {
    /// Largest frame accepted or sent, in bytes after the length field.
    pub max_frame: usize,
    /// Changes queued for one subscriber; a subscriber that falls this far behind is
    /// disconnected (it reconnects and resynchronises from a snapshot).
    pub subscriber_queue: usize,
    /// Longest time one frame may take to write before the connection is closed.
    pub write_timeout: Duration,
    /// The cluster secret every client must prove before any request, read or
    /// write. Default: as [`Config::secret`](crate::Config::secret)
    /// (`CLUSTERGO_SECRET`, else the development secret).
    pub secret: crate::node::Secret,
    /// Older secrets still accepted from clients while a new one rolls out (as
    /// [`Config::accepted_secrets`](crate::Config::accepted_secrets)). Default: a
    /// none.
    pub accepted_secrets: Vec<crate::node::Secret>,
    /// Time a new connection has to complete the handshake. Default 5 s.
    pub handshake_timeout: Duration,
    /// A connection that delivers no complete frame for this long (silent, or stuck
    /// in the middle of a frame) is closed. Subscribed
    /// [`DiscoveryClient`](super::DiscoveryClient)s ping every heartbeat (10 s by
    /// default): keep this above twice their heartbeat. Default 30 s.
    pub idle_timeout: Duration,
    /// Most members the list may hold: a client's put of a new member beyond it is
    /// refused (updates of listed members are not). The server handle's own
    /// [`put`](DiscoveryServer::put) is not limited. Default 10 000 (a snapshot of
    /// that many fits in the default frame limit).
    pub max_members: usize,
    /// Most connections served at once, authenticated or not; more are closed as
    /// soon as they are accepted. Default 1024.
    pub max_connections: usize,
    /// INSECURE: also serve clients that skip the handshake
    /// ([`DiscoveryClient::insecure_anonymous_reads`](super::DiscoveryClient::insecure_anonymous_reads)),
    /// read-only: they may subscribe (and so read every member's address) but their
    /// puts and removes are refused. Default `false`.
    pub insecure_anonymous_reads: bool,
    /// TLS for every connection (clients then need
    /// [`DiscoveryClient::with_tls`](super::DiscoveryClient::with_tls)); the secret
    /// handshake runs inside it. The TLS handshake shares
    /// [`handshake_timeout`](Self::handshake_timeout). Default `None` (plain TCP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for DiscoveryServerConfig {
    fn default() -> Self {
        Self {
            max_frame: DISCOVERY_MAX_FRAME,
            subscriber_queue: 1024,
            write_timeout: Duration::from_secs(10),
            secret: auth::default_secret(),
            accepted_secrets: Vec::new(),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_members: 10_000,
            max_connections: 1024,
            insecure_anonymous_reads: false,
            tls: None,
        }
    }
}

/// A running discovery server. Dropping it (or calling
/// [`shutdown`](Self::shutdown)) stops the server and closes its connections.
///
/// It is also the admin interface of the list it holds ([`put`](Self::put),
/// [`remove`](Self::remove), or [`MembershipAdmin`]), so a process can embed
/// the server and let its nodes subscribe with a
/// [`DiscoveryClient`](super::DiscoveryClient) at [`local_addr`](Self::local_addr).
///
/// # Protocol
///
/// A connection starts with the node handshake ([`crate::handshake`]), in which
/// both sides claim the identity [`DISCOVERY_ID`](super::DISCOVERY_ID) (`0.0.0`,
/// incarnation 0) and prove the cluster secret; the server then answers the verdict.
/// A client that fails it, or does not finish it within
/// [`handshake_timeout`](DiscoveryServerConfig::handshake_timeout), is disconnected
/// before any frame is read. Only if
/// [`insecure_anonymous_reads`](DiscoveryServerConfig::insecure_anonymous_reads) is
/// set may a connection start directly with a frame; it is then read-only.
///
/// Then: frames of a big-endian `u32` length followed by that many bytes of JSON, one
/// message per frame; at most [`DISCOVERY_MAX_FRAME`] bytes by default.
///
/// Client to server (`"op"` tag):
/// - `{"op":"subscribe"}`: the server answers with a `snapshot`, then sends a
///   `change` for every membership change until the connection closes;
/// - `{"op":"put","id":7,"member":{"logic":"1.1.1","net":"127.0.0.1:9001"}}`;
/// - `{"op":"remove","id":8,"logic":"1.1.1"}`;
/// - `{"op":"ping","id":9}`: a liveness check (subscribed clients send one every
///   heartbeat interval and reconnect if the server stays silent).
///
/// Server to client (`"type"` tag):
/// - `{"type":"snapshot","members":[..]}`;
/// - `{"type":"change","added":[..],"removed":[..],"updated":[..]}`;
/// - `{"type":"reply","id":7}` on success, with `"error":"…"` on failure.
///
/// A frame longer than the maximum, a frame that is not one of these messages, or a
/// second `subscribe` on one connection closes that connection (logged); other
/// connections are unaffected. A subscriber that falls more than
/// [`subscriber_queue`](DiscoveryServerConfig::subscriber_queue) changes behind is
/// disconnected; [`DiscoveryClient`](super::DiscoveryClient) then reconnects and
/// catches up from a snapshot. A connection that sends no complete frame for
/// [`idle_timeout`](DiscoveryServerConfig::idle_timeout) is closed; a `put` of a new
/// member beyond [`max_members`](DiscoveryServerConfig::max_members) is answered with
/// an error; connections beyond
/// [`max_connections`](DiscoveryServerConfig::max_connections) are closed at once.
///
/// What is protected: only holders of the cluster secret can read or change the
/// list. What is not: frames after the handshake are neither encrypted nor
/// integrity-protected, so an on-path attacker can read the list and could alter a
/// connection it relays; and any secret holder may change any entry.
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use clustergo::membership::{DiscoveryServer, Member, Membership};
/// use clustergo::Addr;
///
/// let game = Member::new(Addr::new("1.2.1".parse()?, "127.0.0.1:9001".parse()?));
/// let server = DiscoveryServer::bind("127.0.0.1:0", [game.clone()]).await?;
/// // Nodes subscribe through a client (here in the same process).
/// let mut changes = server.client().subscribe().await?;
/// let first = changes.recv().await.unwrap(); // every member, as `added`
/// assert_eq!(first.added, vec![game]);
/// server.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct DiscoveryServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    /// Cancelled on shutdown: the accept loop and every connection task watch it.
    token: CancellationToken,
    /// Tracks the accept loop and connection tasks, so shutdown can wait for them.
    tracker: TaskTracker,
}

#[derive(Debug)]
struct Shared {
    config: DiscoveryServerConfig,
    state: Mutex<State>,
    /// One permit per open connection.
    connections: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct State {
    set: MemberSet,
    /// Encoded frames queued for each subscribed connection.
    subscribers: Vec<mpsc::Sender<Bytes>>,
}

impl Shared {
    /// Registers a subscriber: its queue starts with the snapshot, and every later
    /// change is queued after it, under the same lock.
    fn subscribe(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(self.config.subscriber_queue.max(1));
        let mut state = self.state.lock();
        let snapshot = Response::Snapshot {
            members: state.set.members().cloned().collect(),
        };
        // A fresh channel with capacity >= 1 has room for the snapshot.
        let _ = tx.try_send(proto::encode(&snapshot));
        state.subscribers.push(tx);
        rx
    }

    fn publish(state: &mut State, change: &MembershipChange) {
        if change.is_empty() {
            return;
        }
        let frame = proto::encode(&Response::change(change));
        state
            .subscribers
            .retain(|tx| match tx.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!("discovery subscriber fell behind; disconnecting it");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    fn put(&self, member: Member) -> MembershipChange {
        let mut state = self.state.lock();
        let change = state.set.put(member);
        Self::publish(&mut state, &change);
        change
    }

    fn remove(&self, logic: LogicAddr) -> MembershipChange {
        let mut state = self.state.lock();
        let change = state.set.remove(logic);
        Self::publish(&mut state, &change);
        change
    }

    /// A client's put: a new member only if the list has room.
    fn put_limited(&self, member: Member) -> Result<(), String> {
        let mut state = self.state.lock();
        let max = self.config.max_members;
        if state.set.len() >= max && !state.set.contains(member.logic()) {
            return Err(format!("member limit ({max}) reached"));
        }
        let change = state.set.put(member);
        Self::publish(&mut state, &change);
        Ok(())
    }
}

impl DiscoveryServer {
    /// Binds `addr` and serves `initial` members with the default settings.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        initial: impl IntoIterator<Item = Member>,
    ) -> std::io::Result<Self> {
        Self::bind_with(addr, initial, DiscoveryServerConfig::default()).await
    }

    /// Binds `addr` and serves `initial` members with `config`.
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        initial: impl IntoIterator<Item = Member>,
        config: DiscoveryServerConfig,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let mut set = MemberSet::new();
        set.apply_snapshot(initial);
        let shared = Arc::new(Shared {
            connections: Arc::new(Semaphore::new(
                config.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            config,
            state: Mutex::new(State {
                set,
                subscribers: Vec::new(),
            }),
        });
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            shared.clone(),
            token.clone(),
            tracker.clone(),
        ));
        info!(%local_addr, "discovery server listening");
        Ok(Self {
            shared,
            local_addr,
            token,
            tracker,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A client of this server (with its secret), for nodes running in the same
    /// process.
    pub fn client(&self) -> super::DiscoveryClient {
        super::DiscoveryClient::new(self.local_addr)
            .with_secret(self.shared.config.secret.expose().to_vec())
            .with_accepted_secrets(self.shared.config.accepted_secrets.clone())
    }

    /// Current members.
    pub fn members(&self) -> Vec<Member> {
        self.shared.state.lock().set.members().cloned().collect()
    }

    /// How many connections are subscribed right now.
    pub fn subscriber_count(&self) -> usize {
        let mut state = self.shared.state.lock();
        state.subscribers.retain(|tx| !tx.is_closed());
        state.subscribers.len()
    }

    /// Adds or replaces a member, notifies subscribers, and returns the change.
    pub fn put(&self, member: Member) -> MembershipChange {
        self.shared.put(member)
    }

    /// Removes a member, notifies subscribers, and returns the change.
    pub fn remove(&self, logic: LogicAddr) -> MembershipChange {
        self.shared.remove(logic)
    }

    /// Stops accepting, closes every connection, and waits until all of the
    /// server's tasks have ended.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        info!(local_addr = %self.local_addr, "discovery server stopped");
    }
}

impl Drop for DiscoveryServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl MembershipAdmin for DiscoveryServer {
    fn put(&self, member: Member) -> BoxFuture<'_, Result<(), MembershipError>> {
        self.shared.put(member);
        Box::pin(async { Ok(()) })
    }

    fn remove(&self, logic: LogicAddr) -> BoxFuture<'_, Result<(), MembershipError>> {
        self.shared.remove(logic);
        Box::pin(async { Ok(()) })
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    debug!(%peer, "discovery connection limit reached; closing it");
                    continue;
                };
                debug!(%peer, "discovery connection accepted");
                let _ = stream.set_nodelay(true);
                tracker.spawn(serve_connection(
                    stream,
                    peer,
                    shared.clone(),
                    token.clone(),
                    permit,
                ));
            }
            Err(e) => {
                // Usually out of file descriptors: wait a little instead of spinning.
                warn!("discovery accept failed: {e}");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// Authenticates and serves one connection; holds its connection permit until done.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let config = &shared.config;
    let opened = async {
        let mut stream = tls::accept(stream, config.tls.as_ref(), config.handshake_timeout).await?;
        let session = open_session(&mut stream, config)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((stream, session))
    };
    let opened = tokio::select! {
        _ = token.cancelled() => return,
        r = opened => r,
    };
    let (stream, session) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            // Debug, not warn: anyone can connect, and logs must not grow with them.
            debug!(%peer, "discovery client not authenticated: {e}");
            return;
        }
    };
    // An anonymous reader only sends small requests: a frame length it announces is
    // capped low, so it cannot make the server reserve `max_frame` per connection.
    let max_frame = if session.anonymous {
        config.max_frame.min(ANONYMOUS_MAX_FRAME)
    } else {
        config.max_frame
    };
    let mut parts = FramedParts::new::<Bytes>(stream, proto::codec(max_frame));
    parts.read_buf = session.read;
    let framed = Framed::from_parts(parts);
    match connection_loop(framed, session.anonymous, &shared, &token).await {
        Ok(()) => debug!(%peer, "discovery connection closed"),
        Err(reason) => warn!(%peer, "closing discovery connection: {reason}"),
    }
}

/// How a connection began.
struct Session {
    /// Skipped the handshake: may only read.
    anonymous: bool,
    /// Bytes already read that belong to the first frame.
    read: BytesMut,
}

/// Authenticates a connection. If anonymous reads are allowed, a connection that
/// starts with a frame instead is served read-only: it is recognised by its first two
/// bytes being zero (the top of a `u32` frame length below 64 KiB), which a handshake
/// message (a `u16` length, never zero) cannot start with.
async fn open_session(
    stream: &mut Stream,
    config: &DiscoveryServerConfig,
) -> Result<Session, HandshakeError> {
    let timeout = config.handshake_timeout;
    let secrets: Vec<&[u8]> = std::iter::once(&config.secret)
        .chain(&config.accepted_secrets)
        .map(crate::node::Secret::expose)
        .collect();
    let authenticated = Session {
        anonymous: false,
        read: BytesMut::new(),
    };
    if !config.insecure_anonymous_reads {
        auth::server(stream, &secrets, timeout).await?;
        return Ok(authenticated);
    }
    let mut head = [0u8; 2];
    tokio::time::timeout(timeout, stream.read_exact(&mut head))
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    if head == [0, 0] {
        return Ok(Session {
            anonymous: true,
            read: BytesMut::from(&head[..]),
        });
    }
    let (read, write) = tokio::io::split(stream);
    let mut io = tokio::io::join(std::io::Cursor::new(head).chain(read), write);
    auth::server(&mut io, &secrets, timeout).await?;
    Ok(authenticated)
}

/// Serves one connection; `Err` carries the reason it was closed by us.
async fn connection_loop(
    mut framed: Framed<Stream, LengthDelimitedCodec>,
    anonymous: bool,
    shared: &Shared,
    token: &CancellationToken,
) -> Result<(), String> {
    let write_timeout = shared.config.write_timeout;
    let idle_timeout = shared.config.idle_timeout;
    let mut subscription: Option<mpsc::Receiver<Bytes>> = None;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = &mut idle => {
                return Err(format!("no complete frame for {idle_timeout:?}"));
            }
            incoming = framed.next() => {
                idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                let frame = match incoming {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(format!("bad frame: {e}")),
                    Some(Ok(frame)) => frame,
                };
                let request: Request = serde_json::from_slice(&frame)
                    .map_err(|e| format!("malformed request: {e}"))?;
                let reply = match request {
                    Request::Subscribe => {
                        if subscription.is_some() {
                            return Err("subscribed twice".into());
                        }
                        subscription = Some(shared.subscribe());
                        continue;
                    }
                    Request::Put { id, .. } | Request::Remove { id, .. } if anonymous => {
                        Response::Reply {
                            id,
                            error: Some(ANONYMOUS_WRITE.into()),
                        }
                    }
                    Request::Put { id, member } => Response::Reply {
                        id,
                        error: shared.put_limited(member).err(),
                    },
                    Request::Remove { id, logic } => {
                        shared.remove(logic);
                        Response::Reply { id, error: None }
                    }
                    Request::Ping { id } => Response::Reply { id, error: None },
                };
                send(&mut framed, proto::encode(&reply), write_timeout).await?;
            }
            queued = next_queued(&mut subscription) => match queued {
                Some(frame) => send(&mut framed, frame, write_timeout).await?,
                None => return Err("subscriber fell behind".into()),
            },
        }
    }
}

async fn next_queued(subscription: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match subscription {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send(
    framed: &mut Framed<Stream, LengthDelimitedCodec>,
    frame: Bytes,
    write_timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(write_timeout, framed.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!("write timed out after {write_timeout:?}")),
    }
}
