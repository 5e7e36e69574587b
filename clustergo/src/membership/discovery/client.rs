//! The discovery client: a [`Membership`] backed by a remote [`DiscoveryServer`].
//!
//! [`DiscoveryServer`]: super::DiscoveryServer

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::debug;

use super::auth;
use super::proto::{self, DISCOVERY_MAX_FRAME, Request, Response};
use super::tls::{self, Stream};
use crate::addr::LogicAddr;
use crate::backoff::Backoff;
use crate::handshake::HandshakeError;
use crate::membership::resync::{self, Feed, Source};
use crate::membership::{
    BoxFuture, Member, Membership, MembershipAdmin, MembershipChange, MembershipError,
};
use crate::node::Secret;

type Conn = Framed<Stream, LengthDelimitedCodec>;

/// Membership from a discovery server.
///
/// [`subscribe`](Membership::subscribe) connects (failing with
/// [`MembershipError::Unreachable`] if the server cannot be reached within the
/// connect timeout), publishes the server's snapshot as the first change, then
/// every change the server announces. If the connection is lost it reconnects
/// with backoff and publishes the difference between what it had and the server's
/// new snapshot, so no change is lost or repeated. A server that stops answering
/// heartbeats without closing the connection counts as lost too. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DiscoveryClient {
    config: Arc<ClientConfig>,
}

#[derive(Debug, Clone)]
struct ClientConfig {
    server: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    max_frame: usize,
    heartbeat: Duration,
    /// `None`: anonymous (see [`DiscoveryClient::insecure_anonymous_reads`]).
    secret: Option<Secret>,
    /// Older secrets still accepted from the server while a new one rolls out.
    accepted_secrets: Vec<Secret>,
    /// TLS trust anchors and the name the server's certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl DiscoveryClient {
    /// A client of the server at `server` (`"host:port"` or a `SocketAddr`), with a
    /// 2 s connect timeout, 5 s request timeout, 10 s heartbeat and 100 ms–5 s
    /// reconnect backoff. It authenticates with the secret a default
    /// [`Config`](crate::Config) has (`CLUSTERGO_SECRET`, else the development
    /// secret); see [`with_secret`](Self::with_secret).
    pub fn new(server: impl ToString) -> Self {
        Self {
            config: Arc::new(ClientConfig {
                server: server.to_string(),
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                backoff_min: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                max_frame: DISCOVERY_MAX_FRAME,
                heartbeat: Duration::from_secs(10),
                secret: Some(auth::default_secret()),
                accepted_secrets: Vec::new(),
                tls: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut ClientConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Sets how long one connection attempt may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().connect_timeout = timeout;
        self
    }

    /// Sets how long the server may take to answer a subscribe, put or remove.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().request_timeout = timeout;
        self
    }

    /// Sets the reconnect backoff: `min` doubling up to `max`, with jitter.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        let config = self.config_mut();
        config.backoff_min = min;
        config.backoff_max = max;
        self
    }

    /// Sets the largest frame accepted or sent (must match the server's).
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.config_mut().max_frame = max_frame;
        self
    }

    /// Sets the heartbeat: a subscription pings the server this often and treats
    /// two intervals without any message from it as a lost connection (a server
    /// that vanished without closing the socket). Keep it under half the server's
    /// [`idle_timeout`](super::DiscoveryServerConfig::idle_timeout) (30 s by
    /// default), or the server closes the subscription as idle.
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.config_mut().heartbeat = interval.max(Duration::from_millis(10));
        self
    }

    /// Older secrets this client still accepts from the server while a new secret
    /// rolls out (as [`Config::accepted_secrets`](crate::Config::accepted_secrets));
    /// it proves [`with_secret`](Self::with_secret)'s.
    pub fn with_accepted_secrets(mut self, secrets: Vec<Secret>) -> Self {
        self.config_mut().accepted_secrets = secrets;
        self
    }

    /// Sets the cluster secret this client proves to the server (and checks the
    /// server knows): the nodes' [`Config::secret`](crate::Config::secret).
    pub fn with_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.config_mut().secret = Some(Secret::new(secret));
        self
    }

    /// Connects over TLS (for a server with
    /// [`DiscoveryServerConfig::tls`](super::DiscoveryServerConfig::tls)), trusting
    /// `config`'s roots; the certificate must name the host of the server address.
    /// The secret handshake still runs, inside TLS. Fails if that host is not a valid
    /// TLS name.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Result<Self, MembershipError> {
        let name = tls::server_name(&self.config.server).map_err(MembershipError::Invalid)?;
        self.config_mut().tls = Some((config, name));
        Ok(self)
    }

    /// INSECURE: skips authentication. Only a server that set
    /// [`insecure_anonymous_reads`](super::DiscoveryServerConfig::insecure_anonymous_reads)
    /// serves such a client, and only for reading (subscribe); its puts and
    /// removes are refused. For monitoring tools that must not hold the secret.
    pub fn insecure_anonymous_reads(mut self) -> Self {
        self.config_mut().secret = None;
        self
    }

    /// The server this client talks to.
    pub fn server(&self) -> &str {
        &self.config.server
    }
}

impl ClientConfig {
    fn unreachable(&self, e: impl std::fmt::Display) -> MembershipError {
        MembershipError::Unreachable(format!("discovery server {}: {e}", self.server))
    }

    /// Connects and authenticates. A server that does not know our secret (or that
    /// refuses us) is [`MembershipError::Refused`]: retrying will not help.
    async fn dial(&self) -> Result<Conn, MembershipError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.server))
            .await
            .map_err(|_| {
                self.unreachable(format!(
                    "connect timed out after {:?}",
                    self.connect_timeout
                ))
            })?
            .map_err(|e| self.unreachable(format!("connect failed: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut stream = tls::connect(stream, self.tls.as_ref(), self.request_timeout)
            .await
            .map_err(|e| self.unreachable(e))?;
        let refused = |why: String| {
            MembershipError::Refused(format!("discovery server {}: {why}", self.server))
        };
        let Some(secret) = &self.secret else {
            return Ok(Framed::new(stream, proto::codec(self.max_frame)));
        };
        let secrets: Vec<&[u8]> = std::iter::once(secret)
            .chain(&self.accepted_secrets)
            .map(Secret::expose)
            .collect();
        match auth::client(&mut stream, &secrets, self.request_timeout).await {
            Ok(()) => {}
            Err(HandshakeError::BadMac) => {
                return Err(refused(
                    "authentication failed: the server does not know this client's cluster \
                     secret (set the same secret on both: CLUSTERGO_SECRET, \
                     DiscoveryClient::with_secret, DiscoveryServerConfig::secret)"
                        .into(),
                ));
            }
            Err(e @ (HandshakeError::Refused(_) | HandshakeError::WrongPeer { .. })) => {
                return Err(refused(format!(
                    "not a discovery server, or it refused us: {e}"
                )));
            }
            Err(e) => return Err(self.unreachable(format!("authentication: {e}"))),
        }
        Ok(Framed::new(stream, proto::codec(self.max_frame)))
    }

    async fn send(&self, conn: &mut Conn, request: &Request) -> Result<(), String> {
        tokio::time::timeout(self.request_timeout, conn.send(proto::encode(request)))
            .await
            .map_err(|_| "write timed out".to_string())?
            .map_err(|e| format!("write failed: {e}"))
    }

    /// Reads the next server message, within the request timeout.
    async fn receive(&self, conn: &mut Conn) -> Result<Response, String> {
        let frame = tokio::time::timeout(self.request_timeout, conn.next())
            .await
            .map_err(|_| format!("no answer within {:?}", self.request_timeout))?
            .ok_or_else(|| "connection closed by server".to_string())?
            .map_err(|e| format!("bad frame: {e}"))?;
        serde_json::from_slice(&frame).map_err(|e| format!("malformed message: {e}"))
    }

    /// Connects, subscribes, and reads the snapshot.
    async fn open_subscription(&self) -> Result<(Conn, Vec<Member>), MembershipError> {
        let mut conn = self.dial().await?;
        let unreachable = |e| self.unreachable(e);
        self.send(&mut conn, &Request::Subscribe)
            .await
            .map_err(unreachable)?;
        let received = self
            .receive(&mut conn)
            .await
            .map_err(|e| match self.secret {
                Some(_) => e,
                None => format!("{e} (anonymous: does the server allow anonymous reads?)"),
            });
        match received.map_err(unreachable)? {
            Response::Snapshot { members } => Ok((conn, members)),
            other => Err(unreachable(format!("expected a snapshot, got {other:?}"))),
        }
    }

    /// One put or remove on a short-lived connection.
    async fn request(&self, request: Request) -> Result<(), MembershipError> {
        let unreachable = |e| self.unreachable(e);
        let id = match &request {
            Request::Put { id, .. } | Request::Remove { id, .. } | Request::Ping { id } => *id,
            Request::Subscribe => 0,
        };
        let mut conn = self.dial().await?;
        self.send(&mut conn, &request).await.map_err(unreachable)?;
        loop {
            match self.receive(&mut conn).await.map_err(unreachable)? {
                Response::Reply { id: got, error } if got == id => {
                    return match error {
                        None => Ok(()),
                        Some(e) => Err(MembershipError::Refused(e)),
                    };
                }
                other => debug!("discovery: ignoring {other:?} while waiting for reply {id}"),
            }
        }
    }
}

impl Membership for DiscoveryClient {
    fn subscribe(
        &self,
    ) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError>> {
        Box::pin(resync::subscribe(self.config.clone()))
    }
}

impl MembershipAdmin for DiscoveryClient {
    fn put(&self, member: Member) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(self.config.request(Request::Put { id: 1, member }))
    }

    fn remove(&self, logic: LogicAddr) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(self.config.request(Request::Remove { id: 1, logic }))
    }
}

impl Source for ClientConfig {
    type Conn = Conn;

    fn name(&self) -> String {
        format!("discovery subscription to {}", self.server)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_min, self.backoff_max)
    }

    async fn connect(&self) -> Result<(Conn, Vec<Member>), MembershipError> {
        self.open_subscription().await
    }

    async fn follow(&self, conn: &mut Conn, feed: &mut Feed) -> Option<String> {
        follow(self, conn, feed).await
    }
}

/// Applies server messages until the connection fails, pinging the server every
/// heartbeat. Returns the reason, or `None` if the subscriber went away.
async fn follow(config: &ClientConfig, conn: &mut Conn, feed: &mut Feed) -> Option<String> {
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await; // the first tick is immediate
    let mut last_heard = tokio::time::Instant::now();
    let mut ping_id = 0u64;
    loop {
        let frame = tokio::select! {
            frame = conn.next() => frame,
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= config.heartbeat * 2 {
                    return Some(format!("no message from the server for {:?}", last_heard.elapsed()));
                }
                ping_id += 1;
                if let Err(e) = config.send(conn, &Request::Ping { id: ping_id }).await {
                    return Some(e);
                }
                continue;
            }
        };
        last_heard = tokio::time::Instant::now();
        let frame = match frame {
            None => return Some("connection closed by server".into()),
            Some(Err(e)) => return Some(format!("bad frame: {e}")),
            Some(Ok(frame)) => frame,
        };
        let change = match serde_json::from_slice::<Response>(&frame) {
            Ok(Response::Change {
                added,
                removed,
                updated,
            }) => proto::apply_change(feed.set(), added, removed, updated),
            Ok(Response::Snapshot { members }) => feed.set().apply_snapshot(members),
            Ok(Response::Reply { .. }) => continue,
            Err(e) => return Some(format!("malformed message: {e}")),
        };
        if !feed.publish(change) {
            return None;
        }
    }
}
