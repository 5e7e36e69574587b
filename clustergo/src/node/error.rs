//! Why a node could not start, and why a message could not be sent.

use std::net::SocketAddr;
use std::time::Duration;

use crate::addr::LogicAddr;
use crate::membership::MembershipError;
use crate::rpc::RpcError;

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
    /// [`Config::tls`](crate::Config::tls) holds a certificate that does not name
    /// the node's address ([`node_dns_name`](crate::tls::node_dns_name)).
    #[error("the TLS certificate does not name {0}")]
    Certificate(LogicAddr),
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
    /// No route reaches the target: no harbor available, or the next hop is known
    /// down (its last dial failed; see ARCHITECTURE.md, "Dead links and down peers").
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
