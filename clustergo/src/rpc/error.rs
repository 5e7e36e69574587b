//! RPC errors: how a call can end other than with a reply.

use crate::addr::LogicAddr;

/// Wire codes of [`RpcError`]s that travel in a response (compatible in spirit with
/// the Go seed's rpcgo codes), plus local-only ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// Success (not an error).
    Ok = 0,
    /// The server has no such method.
    InvalidMethod = 1,
    /// The call's deadline passed.
    Timeout = 2,
    /// The caller cancelled.
    Cancelled = 3,
    /// The method answered with an error.
    Method = 4,
    /// Anything else.
    Other = 5,
    /// The server is stopping or cannot serve.
    ServiceUnavailable = 6,
    /// The connection to the peer was lost.
    Disconnected = 7,
    /// Queues are full; retry later.
    Busy = 8,
    /// No route reaches the target.
    Unreachable = 9,
    /// The request or reply could not be decoded.
    Codec = 10,
}

impl ErrorCode {
    /// The code for a wire value; unknown values read as [`ErrorCode::Other`].
    pub fn from_u16(v: u16) -> Self {
        match v {
            0 => Self::Ok,
            1 => Self::InvalidMethod,
            2 => Self::Timeout,
            3 => Self::Cancelled,
            4 => Self::Method,
            6 => Self::ServiceUnavailable,
            7 => Self::Disconnected,
            8 => Self::Busy,
            9 => Self::Unreachable,
            10 => Self::Codec,
            _ => Self::Other,
        }
    }
}

/// Why a call ended without a reply. Every call ends exactly once: with a reply or
/// with one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The server has no method of that name.
    #[error("invalid method {0:?}")]
    InvalidMethod(String),
    /// No reply before the deadline.
    #[error("call timed out")]
    Timeout,
    /// Cancelled by the caller.
    #[error("call cancelled")]
    Cancelled,
    /// The method replied with an error.
    #[error("method error: {0}")]
    Method(String),
    /// The server is stopping, or the method panicked, or dropped its replyer.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// The connection carrying the call was lost.
    #[error("disconnected from {0}")]
    Disconnected(LogicAddr),
    /// The pending or send queue is full: retry later.
    #[error("busy: send queue full")]
    Busy,
    /// No node with that address is known.
    #[error("unknown peer {0}")]
    UnknownPeer(LogicAddr),
    /// No route reaches the target (no harbor, the target is gone, or the next hop
    /// is known down): the request never reached the target.
    #[error("unreachable target {0}")]
    Unreachable(LogicAddr),
    /// The request or reply could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// A streaming call to another cluster: streams are not relayed through harbors.
    #[error("{0} is in another cluster: streaming calls are not relayed through harbors")]
    NotRelayed(LogicAddr),
    /// The local node is not running.
    #[error("node not started")]
    NotStarted,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl RpcError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidMethod(_) => ErrorCode::InvalidMethod,
            Self::Timeout => ErrorCode::Timeout,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Method(_) => ErrorCode::Method,
            Self::ServiceUnavailable(_) | Self::NotStarted => ErrorCode::ServiceUnavailable,
            Self::Disconnected(_) => ErrorCode::Disconnected,
            Self::Busy => ErrorCode::Busy,
            Self::UnknownPeer(_) | Self::Unreachable(_) | Self::NotRelayed(_) => {
                ErrorCode::Unreachable
            }
            Self::Codec(_) => ErrorCode::Codec,
            Self::Other(_) => ErrorCode::Other,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Busy | Self::Timeout | Self::Disconnected(_) | Self::ServiceUnavailable(_)
        )
    }

    /// The text sent on the wire with [`code`](Self::code).
    pub(crate) fn wire_text(&self) -> String {
        match self {
            Self::InvalidMethod(s)
            | Self::Method(s)
            | Self::ServiceUnavailable(s)
            | Self::Codec(s)
            | Self::Other(s) => s.clone(),
            Self::Disconnected(a)
            | Self::UnknownPeer(a)
            | Self::Unreachable(a)
            | Self::NotRelayed(a) => a.to_string(),
            _ => String::new(),
        }
    }

    /// Rebuilds an error from a response's code and text.
    pub(crate) fn from_wire(code: u16, text: String, peer: LogicAddr) -> Self {
        let addr = || text.parse().unwrap_or(peer);
        match ErrorCode::from_u16(code) {
            ErrorCode::Ok | ErrorCode::Other => Self::Other(text),
            ErrorCode::InvalidMethod => Self::InvalidMethod(text),
            ErrorCode::Timeout => Self::Timeout,
            ErrorCode::Cancelled => Self::Cancelled,
            ErrorCode::Method => Self::Method(text),
            ErrorCode::ServiceUnavailable => Self::ServiceUnavailable(text),
            ErrorCode::Disconnected => Self::Disconnected(addr()),
            ErrorCode::Busy => Self::Busy,
            ErrorCode::Unreachable => Self::Unreachable(addr()),
            ErrorCode::Codec => Self::Codec(text),
        }
    }
}
