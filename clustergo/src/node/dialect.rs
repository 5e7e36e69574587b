//! Which wire dialect a node speaks, chosen once in its [`Config`](super::Config):
//! the native one (authenticated handshake, keepalives, yamux streams), or, with
//! the `go-compat` feature, the Go seed's (`crate::gocompat`). Every place where
//! the two differ asks the dialect once: the dial and accept paths (handshake),
//! the link writer (keepalives), the RPC body layout (`rpc::wire::Form`), the
//! stream sessions, and the frame limit.

#[cfg(feature = "go-compat")]
use crate::gocompat::GoSeed;
use crate::rpc::wire::Form;

/// The wire dialect of a node. All nodes that talk directly must share it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// This crate's own: authenticated handshake, keepalives, yamux streams.
    #[default]
    Native,
    /// The Go clustergo seed's, to join a Go cluster: AES-JSON handshake (no real
    /// authentication: the node warns at start), rpcgo bodies, frames of at most
    /// 4096 bytes, smux v1 streams, no keepalive frames.
    #[cfg(feature = "go-compat")]
    GoSeed(GoSeed),
}

impl Dialect {
    /// The Go seed's dialect with the seed's key.
    #[cfg(feature = "go-compat")]
    pub fn go_seed() -> Self {
        Self::GoSeed(GoSeed::default())
    }

    /// The layout of RPC bodies.
    pub(crate) fn rpc_form(&self) -> Form {
        match self {
            Self::Native => Form::Native,
            #[cfg(feature = "go-compat")]
            Self::GoSeed(_) => Form::GoSeed,
        }
    }

    /// Whether idle links send keepalive frames and silent ones are declared dead
    /// (the Go side neither sends nor understands them).
    pub(crate) fn keepalives(&self) -> bool {
        matches!(self, Self::Native)
    }

    /// Sets up a new link's socket, dialed or accepted: the Go side relies on TCP
    /// keepalive, having no keepalive frames.
    pub(crate) fn prepare(&self, tcp: &tokio::net::TcpStream) {
        #[cfg(feature = "go-compat")]
        if let Self::GoSeed(_) = self {
            crate::gocompat::tcp_keepalive::enable(tcp);
        }
        #[cfg(not(feature = "go-compat"))]
        let _ = tcp;
    }

    /// The largest frame (length field value) this dialect allows, given the
    /// configured one.
    pub(crate) fn max_frame(&self, configured: usize) -> usize {
        match self {
            Self::Native => configured,
            #[cfg(feature = "go-compat")]
            Self::GoSeed(_) => configured.min(crate::gocompat::GO_MAX_FRAME),
        }
    }
}
