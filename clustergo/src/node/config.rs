//! Node settings, and the cluster secret that `Debug` never prints.

use std::fmt;
use std::time::Duration;

use super::Dialect;
use crate::codec::DEFAULT_MAX_FRAME;
use crate::tls::NodeTls;

/// The secret used when none is configured. Fine for examples and tests; a node
/// started with it logs a warning. Set `CLUSTERGO_SECRET` or [`Config::secret`].
pub const DEV_SECRET: &[u8] = b"clustergo-dev-secret-do-not-use-in-production";

/// The cluster secret. A newtype so that `Debug` (and so any log of a [`Config`])
/// prints `<redacted>` instead of the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes, for the handshake.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Secret {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for Secret {
    fn from(bytes: &[u8; N]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

/// Node settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Cluster secret both sides of a connection must know. Default: the
    /// `CLUSTERGO_SECRET` environment variable, else [`DEV_SECRET`] (with a warning).
    /// Proofs are made with it whenever the other side knows it.
    pub secret: Secret,
    /// Other secrets still accepted, for rolling a new secret without downtime:
    /// node by node, set `secret` to the new one and list the old one here; once
    /// every node has the new one, empty this list. Default: empty. At most
    /// [`MAX_SECRETS`](crate::handshake::MAX_SECRETS) secrets are used in all.
    pub accepted_secrets: Vec<Secret>,
    /// TLS 1.3 for node links and stream sessions. `None` (default): plain TCP,
    /// authenticated by the secret but neither encrypted nor integrity-protected.
    /// Every node of a cluster must agree.
    pub tls: Option<NodeTls>,
    /// Largest frame accepted or sent (the length field's value).
    pub max_frame: usize,
    /// Frames a peer queues before sends fail with `Busy`.
    pub pending_queue: usize,
    /// Bytes a peer queues before sends fail with `Busy` (a frame alone in the
    /// queue is always taken).
    pub pending_bytes: usize,
    /// How long a one-way message (or a `notify`) may wait to be written — for its
    /// link to be dialed and authenticated, or behind other frames — before it is
    /// dropped, counted in [`Metrics::frames_expired`](crate::Metrics::frames_expired).
    /// Default 5 s: it must cover dialing a fresh link under load (with 200 ms, 28
    /// nodes starting at once in one process lost 721 of 756 first messages).
    pub send_timeout: Duration,
    /// Timeout of [`Node::call`](crate::Node::call).
    pub call_timeout: Duration,
    /// Time allowed to connect and authenticate. Default 3 s: a handshake takes a
    /// few round trips, but nodes starting at once on few cores queue thousands
    /// (a 100-node mesh in one process: 9900 dials); with 1 s a tenth timed out,
    /// and a dial the dialer gives up on may already be adopted by the acceptor,
    /// whose first frames are then lost with it.
    pub handshake_timeout: Duration,
    /// How long [`Node::open_stream`](crate::Node::open_stream) (and a streaming
    /// call) waits for a stream session to take a new stream once the session is
    /// up. A yamux session holds at most 256 outbound streams the remote has not
    /// acknowledged (it acknowledges a stream when it first writes on it): past
    /// that, an open waits for one to be acknowledged or closed, and fails with
    /// [`StreamError::TooManyPending`](crate::StreamError::TooManyPending) after
    /// this long. Connecting the session is bounded by `handshake_timeout` apart.
    pub stream_open_timeout: Duration,
    /// Inbound connections authenticating at once. Past it, a new connection takes
    /// the slot of the oldest pending one (if that one waited 100 ms) or is closed
    /// unread, so silent connections cannot keep real peers out.
    pub max_pending_handshakes: usize,
    /// How long [`Node::stop`](crate::Node::stop) (and
    /// [`Node::leave`](crate::Node::leave), before it) waits for in-flight requests
    /// to be answered and served streaming calls to end: one budget for both, from
    /// the first drain.
    pub drain_timeout: Duration,
    /// A write to a node link that makes no progress for this long declares the
    /// link dead (the peer stopped reading): its calls end `Disconnected` and what
    /// is queued for it is dropped. Also bounds the final flush at stop, and the
    /// ending of streaming calls that outlived the drain.
    pub write_stall_timeout: Duration,
    /// A node link or stream session with nothing written for this long sends a
    /// keepalive, so that the remote hears from it even when idle.
    pub keepalive_interval: Duration,
    /// A node link or stream session with nothing read for this long (at least
    /// three keepalive intervals) is declared dead: the network stopped delivering.
    pub keepalive_timeout: Duration,
    /// How long [`Node::start`](crate::Node::start) waits for the first membership snapshot.
    pub membership_timeout: Duration,
    /// How long [`Node::leave`](crate::Node::leave) waits, after marking the node
    /// unavailable, for the other nodes to see it before draining: at least the
    /// membership backend's propagation delay.
    pub leave_grace: Duration,
    /// Where to serve the admin endpoints (`/metrics`, `/healthz`, `/api/cluster`
    /// and the live cluster page at `/`), or `None` (the default) for no admin
    /// listener. Bind it to loopback (`127.0.0.1:<port>`) and reach it through the
    /// host: the endpoints have no authentication and show the cluster's layout.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// The wire dialect: [`Dialect::Native`] (default), or with the `go-compat`
    /// feature the Go seed's, to join a Go clustergo cluster. All nodes that talk
    /// directly must speak the same one. In the Go dialect `secret` and `tls` are
    /// not used and `max_frame` is at most 4092 (Go's 4096-byte packet limit).
    pub dialect: Dialect,
}

impl Default for Config {
    fn default() -> Self {
        let secret = std::env::var("CLUSTERGO_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
            .map(Secret::from)
            .unwrap_or_else(|| DEV_SECRET.into());
        Self {
            secret,
            accepted_secrets: Vec::new(),
            tls: None,
            max_frame: DEFAULT_MAX_FRAME,
            pending_queue: 1024,
            pending_bytes: 16 * 1024 * 1024,
            send_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(3),
            stream_open_timeout: Duration::from_secs(5),
            max_pending_handshakes: 256,
            drain_timeout: Duration::from_secs(5),
            write_stall_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(5),
            leave_grace: Duration::from_secs(1),
            admin_addr: None,
            dialect: Dialect::default(),
        }
    }
}

impl Config {
    /// The secrets the handshake uses, current first.
    pub(crate) fn secrets(&self) -> Vec<&[u8]> {
        std::iter::once(&self.secret)
            .chain(&self.accepted_secrets)
            .map(Secret::expose)
            .collect()
    }

    /// The TLS links use: none in the Go dialect, which has no TLS (`tls` is
    /// ignored there, with a warning at start).
    pub(crate) fn link_tls(&self) -> Option<&NodeTls> {
        self.tls
            .as_ref()
            .filter(|_| matches!(self.dialect, Dialect::Native))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret_and_lists_every_field() {
        let config = Config {
            secret: "hunter2".into(),
            accepted_secrets: vec!["hunter1".into()],
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("hunter1"), "{text}");
        assert!(text.contains("secret: <redacted>"), "{text}");
        assert!(text.contains("membership_timeout"), "{text}");
    }
}
