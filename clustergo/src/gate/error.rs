//! Errors of the client gate.

use std::io;
use std::time::Duration;

use super::Transport;

/// Why a gate operation failed.
///
/// Errors returned by [`ClientConn::recv`](super::ClientConn::recv) end that connection
/// (later calls return `Ok(None)`); they never affect other connections or the listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The socket failed (reset, broken pipe, EOF in the middle of a packet, ...).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),

    /// [`send`](super::PacketSender::send) was given a packet above the configured
    /// maximum. Nothing was sent; the connection stays open.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Size of the rejected packet.
        size: usize,
        /// The configured maximum ([`GateConfig::max_packet_size`](super::GateConfig)).
        max: usize,
    },

    /// The peer announced or sent a packet above the configured maximum. The length is
    /// checked before anything is allocated; the connection is closed.
    #[error("peer sent a packet larger than the maximum packet size of {max} bytes")]
    IncomingTooLarge {
        /// The configured maximum.
        max: usize,
    },

    /// The peer sent a WebSocket text message. Packets are binary messages only; the
    /// connection is closed with close code 1003 (unsupported data).
    #[error("peer sent a WebSocket text message; only binary messages carry packets")]
    TextMessage,

    /// The peer broke the transport's protocol (bad WebSocket frame, ...). The connection
    /// is closed.
    #[error("protocol violation by peer: {0}")]
    Protocol(String),

    /// The WebSocket upgrade failed (plain HTTP request, garbage, wrong version, ...).
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),

    /// The WebSocket upgrade (or, for KCP, the first packet; for connectors, the
    /// connection setup) did not complete in time.
    #[error("handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),

    /// A KCP session ended without the peer's close marker: the peer vanished and the
    /// session expired (KCP has no FIN of its own).
    #[error("KCP session expired without a close from the peer")]
    SessionExpired,

    /// The connection's writer has stopped (closed locally, by the peer, or after an
    /// error): the packet was not sent.
    #[error("connection closed")]
    Closed,

    /// Writing to the peer made no progress for
    /// [`GateConfig::write_timeout`](super::GateConfig): the client stopped reading and
    /// the connection was dropped.
    #[error("peer did not take our data within {0:?}; connection dropped")]
    WriteTimeout(Duration),

    /// No packet arrived within [`GateConfig::idle_timeout`](super::GateConfig); the
    /// connection was closed.
    #[error("no packet from the peer within {0:?}; connection closed")]
    IdleTimeout(Duration),

    /// [`try_send`](super::PacketSender::try_send) found the connection's send queue
    /// full (a slow client). Nothing was queued.
    #[error("send queue full")]
    Busy,

    /// The listener's background task has stopped; it accepts nothing more.
    #[error("listener closed")]
    ListenerClosed,

    /// The transport was compiled out (cargo features `ws` / `kcp`).
    #[error("transport {0} is not enabled (cargo feature missing)")]
    TransportDisabled(Transport),

    /// The configuration or an address argument is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl GateError {
    /// Whether the peer went away or fell silent (reset, broken pipe, EOF mid-packet,
    /// expired KCP session, idle timeout) rather than breaking the protocol.
    pub fn is_disconnect(&self) -> bool {
        match self {
            Self::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            Self::SessionExpired | Self::Closed | Self::IdleTimeout(_) => true,
            _ => false,
        }
    }
}
