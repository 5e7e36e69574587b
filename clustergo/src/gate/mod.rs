//! The client gate: game clients reach the cluster over TCP, WebSocket or KCP, all
//! behind one packet API.
//!
//! A *packet* is an opaque byte string of at most [`GateConfig::max_packet_size`]
//! bytes (64 KiB by default). Every transport delivers packets whole and in order:
//!
//! | transport | wire | clean close |
//! | --- | --- | --- |
//! | [`Transport::Tcp`] | `u32 BE length \| payload` | TCP FIN at a packet boundary |
//! | [`Transport::Ws`] (feature `ws`) | one binary message = one packet | WebSocket close frame |
//! | [`Transport::Kcp`] (feature `kcp`) | `u32 BE length \| payload` over a KCP stream | length `0xFFFF_FFFF` (close marker) |
//!
//! # Use
//!
//! ```no_run
//! use clustergo::gate::{GateConfig, Listener, Transport};
//!
//! # async fn run() -> Result<(), clustergo::gate::GateError> {
//! let mut listener = Listener::bind(Transport::Ws, "0.0.0.0:9000", GateConfig::default()).await?;
//! loop {
//!     let mut conn = listener.accept().await?;
//!     tokio::spawn(async move {
//!         // Echo until the client goes away.
//!         while let Ok(Some(packet)) = conn.recv().await {
//!             if conn.send(packet).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! Clients written in Rust (and tests) use [`connect`], [`connect_tcp`], [`connect_ws`]
//! or [`connect_kcp`]: they return the same [`ClientConn`].
//!
//! # Connections
//!
//! A [`ClientConn`] is a [`PacketReceiver`] plus a [`PacketSender`]. The sender is a
//! cheap clone that can move to other tasks (a game loop pushing updates while another
//! task reads input); packets go through a bounded queue ([`GateConfig::send_queue`]) to
//! one writer task per connection that batches them into as few writes as possible.
//! [`PacketSender::send`] waits for room in that queue; [`PacketSender::try_send`]
//! returns [`GateError::Busy`] instead, so a slow client can be dropped rather than
//! slowing the game down.
//!
//! The connection closes gracefully (queued packets are written first) on
//! [`ClientConn::close`], [`PacketSender::close`], or when the last sender and the
//! connection are dropped. The writer task then completes the close handshake in the
//! background, bounded by [`GateConfig::close_timeout`]: it waits for the peer's close
//! frame (WebSocket), FIN (TCP) or reply marker (KCP), so that neither a TCP reset nor
//! a dropped KCP session destroys the close before the peer has seen it.
//!
//! A connection whose peer stays silent can be ended with
//! [`GateConfig::idle_timeout`] (off by default; clients then send heartbeats).
//!
//! Not provided (left to the application or later work): server-sent keep-alive
//! pings, connection limits, and the WebSocket request path / headers (any path is
//! accepted).
//!
//! # TLS
//!
//! [`GateConfig::tls`] (a rustls `ServerConfig`) turns on TLS for TCP listeners (TLS
//! around the same length-prefixed packets) and WebSocket listeners (`wss://`;
//! browsers connect to it as to any HTTPS site, so the certificate must be one they
//! trust). The TLS handshake runs in the listener's background task like a WebSocket
//! upgrade, bounded by [`GateConfig::handshake_timeout`] and counted in
//! [`Listener::handshake_failures`] when it fails. Connectors take
//! [`GateConfig::tls_connect`].
//!
//! **KCP has no TLS**, and a KCP listener refuses a config with `tls` set: KCP runs over
//! UDP datagrams that may be lost, repeated or reordered below KCP's own reliability
//! layer, while TLS needs an ordered byte stream underneath it. Encrypting KCP takes a
//! datagram scheme (DTLS-like, or the application's own authenticated encryption of
//! each packet, with keys agreed over a TLS login on TCP/WebSocket); the gate leaves
//! that to the application.
//!
//! # Errors and limits
//!
//! - A packet above the maximum is refused on send ([`GateError::PacketTooLarge`],
//!   nothing sent, connection kept). A peer announcing one gets its connection closed
//!   ([`GateError::IncomingTooLarge`]); the length is checked before allocating.
//! - Malformed input (bad WebSocket frames, a WebSocket *text* message, EOF in the
//!   middle of a packet) ends that connection with an error from
//!   [`ClientConn::recv`]; the listener and the other connections carry on. WebSocket
//!   peers receive a close frame with the matching code (1009 too big, 1003 text,
//!   1002 protocol error).
//! - WebSocket text messages are **rejected**, not surfaced: packets are binary data,
//!   and silently converting text would hide client bugs.
//! - The WebSocket request head is read into a buffer of at most 8 KiB (then replayed
//!   to the upgrade), so a client that sends part of a head and stops costs a waiting
//!   read, no CPU, until [`GateConfig::handshake_timeout`] closes it.
//! - A failed WebSocket handshake (a plain HTTP request, garbage, a client that sends
//!   nothing within [`GateConfig::handshake_timeout`]) only closes that socket; it is
//!   logged and counted in [`Listener::handshake_failures`], and never returned from
//!   [`Listener::accept`]. A complete HTTP request that is not an upgrade is answered
//!   `400 Bad Request` first, so a person with a browser or `curl` sees why.
//! - WebSocket pings are answered by the transport; they are not packets.
//! - A client that stops reading is dropped once a batch of writes has made no progress
//!   for [`GateConfig::write_timeout`]: senders then get [`GateError::Closed`] and
//!   [`ClientConn::recv`] returns [`GateError::WriteTimeout`], so the task serving the
//!   client ends too.
//!
//! # KCP specifics
//!
//! KCP has neither connection setup nor FIN, so the gate adds its own rules:
//! - an accepted KCP connection is handed out by [`Listener::accept`] only once its
//!   first packet has arrived (within [`GateConfig::kcp_first_packet_timeout`], 3 s by
//!   default); stray datagrams from unknown addresses would otherwise appear as phantom
//!   connections. A KCP client must therefore speak first (a game client's login
//!   packet). Delivering that first packet is what "proven" means to the gate; the
//!   application's login then decides whether the client is who it says.
//! - UDP sources can be spoofed, so the server keeps no state for an address until it
//!   sends the *start* of a conversation: a datagram holding a data segment with
//!   sequence number 0 whose data begins with a packet length field. Anything else from
//!   an address without a session is dropped and counted in
//!   [`Listener::refused_datagrams`]. (The server side is the gate's own front end over
//!   the `kcp` crate, one task per session; tokio_kcp's listener opened a session per
//!   datagram. Clients use tokio_kcp.)
//! - forged starts still open sessions, so sessions waiting for their first packet are
//!   capped ([`GateConfig::kcp_max_pending`], 256 by default; past the cap the oldest
//!   waiting one is dropped) and [`Listener::pending_handshakes`] shows the count. A
//!   real client, whose first packet arrives within a round trip, still gets in (if a
//!   flood evicts it first, KCP's retransmission of its first segment opens a new
//!   session). One 24-byte datagram from each of 3000 sources now costs about 2 MB
//!   and no task (test `kcp_flood_cost_probe`, ignored by default), against 263 MB
//!   and 12,000 tasks before.
//! - a clean close is a length field of `0xFFFF_FFFF` (so
//!   [`GateConfig::max_packet_size`] must be below that), answered by the peer's own
//!   marker when it closes in turn. Because a session's unacknowledged data may go
//!   with its stream, a closing writer lingers until the peer has
//!   acknowledged everything (bounded by [`GateConfig::close_timeout`]). A session that
//!   ends without the marker (the peer vanished and the server session expired after
//!   `KcpConfig::session_expire`, or a new conversation from the same address replaced
//!   it) is reported as [`GateError::SessionExpired`]. A late marker from an already
//!   closed conversation opens no connection.
//! - dropping a KCP [`Listener`] ends all of its connections: they share its UDP socket
//!   and receive task.
//! - a KCP *client* session never expires (tokio_kcp expires server sessions only): a
//!   client whose server vanished waits in `recv` until the application gives up, so
//!   KCP clients should set [`GateConfig::idle_timeout`] and have heartbeats.
//!
//! # Features
//!
//! `ws` (tokio-tungstenite) and `kcp` (tokio_kcp) are default features; without them
//! [`Transport::Ws`] / [`Transport::Kcp`] still exist but binding or connecting returns
//! [`GateError::TransportDisabled`].

mod conn;
mod error;
#[cfg(feature = "ws")]
pub(crate) mod http_head;
mod io;
#[cfg(feature = "kcp")]
pub(crate) mod kcp;
#[cfg(feature = "kcp")]
pub(crate) mod kcp_server;
mod listener;
mod pending;
pub(crate) mod tcp;
mod tls;
#[cfg(feature = "ws")]
pub(crate) mod ws;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use conn::{ClientConn, PacketReceiver, PacketSender};
pub use error::GateError;
pub use listener::{Listener, ListenerStats};
pub use tls::TlsConnect;

#[cfg(feature = "kcp")]
pub use tokio_kcp::{KcpConfig, KcpNoDelayConfig};

/// Default [`GateConfig::max_packet_size`]: 64 KiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 64 * 1024;

/// Largest allowed [`GateConfig::max_packet_size`]: `0xFFFF_FFFF` is KCP's close marker.
pub const MAX_PACKET_SIZE_LIMIT: usize = (u32::MAX - 1) as usize;

/// The client-facing transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP with a `u32` big-endian length prefix per packet.
    Tcp,
    /// WebSocket, one binary message per packet (feature `ws`).
    Ws,
    /// KCP over UDP with a `u32` big-endian length prefix per packet (feature `kcp`).
    Kcp,
}

impl Transport {
    /// Every transport, whether compiled in or not.
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::Ws, Transport::Kcp];

    /// Whether this build supports the transport (cargo features `ws`, `kcp`).
    pub const fn is_enabled(self) -> bool {
        match self {
            Transport::Tcp => true,
            Transport::Ws => cfg!(feature = "ws"),
            Transport::Kcp => cfg!(feature = "kcp"),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Kcp => "kcp",
        })
    }
}

/// Settings shared by listeners and connectors. Start from [`Default`] and override.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Largest packet sent or accepted, in bytes (default 64 KiB; at most
    /// [`MAX_PACKET_SIZE_LIMIT`]).
    pub max_packet_size: usize,
    /// Packets queued per connection before [`PacketSender::send`] waits and
    /// [`PacketSender::try_send`] returns [`GateError::Busy`] (default 1024).
    pub send_queue: usize,
    /// Time allowed for a WebSocket upgrade and for a connector to set a connection up
    /// (default 10 s).
    pub handshake_timeout: Duration,
    /// Time a new KCP session has to deliver its first packet before it is dropped
    /// (default 3 s). Short, because until then the session may be a phantom opened by
    /// one spoofed datagram; a real client's first packet travels in its first datagram.
    pub kcp_first_packet_timeout: Duration,
    /// KCP sessions waiting for their first packet, at most (default 256). Past it the
    /// oldest waiting session is dropped (and counted in
    /// [`Listener::handshake_failures`]): this bounds what forged conversation starts
    /// from spoofed sources can pin (a few KiB and two tasks each).
    pub kcp_max_pending: usize,
    /// Time one batch of writes may take before the connection is dropped as stuck: a
    /// client that stops reading cannot pin server memory forever (default 30 s).
    pub write_timeout: Duration,
    /// Time [`ClientConn::close`] waits for queued packets and the close signal to be
    /// written, and then the budget of the close handshake (default 3 s).
    pub close_timeout: Duration,
    /// When set, [`ClientConn::recv`] fails with [`GateError::IdleTimeout`] (and the
    /// connection closes) if no packet arrives within this time of the call. Clients
    /// then send heartbeat packets; WebSocket pings do not count. Default: `None`.
    pub idle_timeout: Option<Duration>,
    /// KCP tuning (feature `kcp`). Default: `KcpNoDelayConfig::fastest()` (no delay,
    /// 10 ms interval, fast resend 2, no congestion control), `flush_write = true`,
    /// stream mode, MTU 1400, windows 256/256, server sessions expire after 90 s without
    /// traffic.
    #[cfg(feature = "kcp")]
    pub kcp: KcpConfig,
    /// Listeners: TLS for [`Transport::Tcp`] (TLS around the length-prefixed packets)
    /// and [`Transport::Ws`] (`wss://`). Binding a KCP listener with it set fails: KCP
    /// is a datagram transport that TLS cannot wrap. Default: `None` (plain).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connectors: TLS for [`connect_tcp`] and for `wss://` URLs in [`connect_ws`]
    /// (required by them). Default: `None`.
    pub tls_connect: Option<TlsConnect>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            send_queue: 1024,
            handshake_timeout: Duration::from_secs(10),
            kcp_first_packet_timeout: Duration::from_secs(3),
            kcp_max_pending: 256,
            write_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(3),
            idle_timeout: None,
            #[cfg(feature = "kcp")]
            kcp: KcpConfig {
                nodelay: KcpNoDelayConfig::fastest(),
                flush_write: true,
                stream: true,
                ..KcpConfig::default()
            },
            tls: None,
            tls_connect: None,
        }
    }
}

impl GateConfig {
    /// Checks the settings; listeners and connectors call this first.
    pub fn validate(&self) -> Result<(), GateError> {
        let bad = |msg: String| Err(GateError::InvalidConfig(msg));
        if self.max_packet_size == 0 || self.max_packet_size > MAX_PACKET_SIZE_LIMIT {
            return bad(format!(
                "max_packet_size must be in 1..={MAX_PACKET_SIZE_LIMIT}, got {}",
                self.max_packet_size
            ));
        }
        if self.send_queue == 0 {
            return bad("send_queue must be at least 1".into());
        }
        if self.kcp_max_pending == 0 {
            return bad("kcp_max_pending must be at least 1".into());
        }
        for (name, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("kcp_first_packet_timeout", self.kcp_first_packet_timeout),
            ("write_timeout", self.write_timeout),
            ("close_timeout", self.close_timeout),
            ("idle_timeout", self.idle_timeout.unwrap_or(Duration::MAX)),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be positive"));
            }
        }
        #[cfg(feature = "kcp")]
        {
            // ikcp rejects an MTU below 50 (tokio_kcp would panic on it).
            if !(50..=65_000).contains(&self.kcp.mtu) {
                return bad(format!(
                    "kcp.mtu must be in 50..=65000, got {}",
                    self.kcp.mtu
                ));
            }
            if self.kcp.wnd_size.0 == 0 || self.kcp.wnd_size.1 == 0 {
                return bad("kcp.wnd_size entries must be positive".into());
            }
        }
        Ok(())
    }
}

/// Connects to a gate listener of the given transport at `addr` (WebSocket: the URL
/// `ws://{addr}/`, or `wss://{addr}/` when [`GateConfig::tls_connect`] is set; TCP
/// uses TLS then too).
pub async fn connect(
    transport: Transport,
    addr: SocketAddr,
    config: &GateConfig,
) -> Result<ClientConn, GateError> {
    match transport {
        Transport::Tcp => connect_tcp(addr, config).await,
        Transport::Ws => {
            let scheme = if config.tls_connect.is_some() {
                "wss"
            } else {
                "ws"
            };
            connect_ws(&format!("{scheme}://{addr}/"), config).await
        }
        Transport::Kcp => connect_kcp(addr, config).await,
    }
}

/// Connects to a TCP gate listener; with [`GateConfig::tls_connect`] set, over TLS
/// (the certificate must name [`TlsConnect::server_name`], or by default the IP
/// address connected to).
pub async fn connect_tcp(
    addr: impl tokio::net::ToSocketAddrs,
    config: &GateConfig,
) -> Result<ClientConn, GateError> {
    config.validate()?;
    tcp::connect(addr, config).await
}

/// Connects to a WebSocket gate listener, e.g. `ws://127.0.0.1:9000/`, or
/// `wss://gate.example:9000/` with [`GateConfig::tls_connect`] set (the certificate
/// must name the URL's host unless [`TlsConnect::server_name`] says otherwise).
pub async fn connect_ws(url: &str, config: &GateConfig) -> Result<ClientConn, GateError> {
    config.validate()?;
    #[cfg(feature = "ws")]
    {
        ws::connect(url, config).await
    }
    #[cfg(not(feature = "ws"))]
    {
        let _ = url;
        Err(GateError::TransportDisabled(Transport::Ws))
    }
}

/// Connects to a KCP gate listener. No packet is exchanged until the first send: the
/// server accepts the connection when that first packet arrives.
pub async fn connect_kcp(addr: SocketAddr, config: &GateConfig) -> Result<ClientConn, GateError> {
    config.validate()?;
    #[cfg(feature = "kcp")]
    {
        kcp::connect(addr, config).await
    }
    #[cfg(not(feature = "kcp"))]
    {
        let _ = addr;
        Err(GateError::TransportDisabled(Transport::Kcp))
    }
}
