//! [`Listener`]: accepts client connections of one transport.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use super::{ClientConn, GateConfig, GateError, Transport, tcp};

/// Pause after a failed `accept()` of the OS (EMFILE and friends) before trying again.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connections that finished their handshake but were not yet taken by `accept()`.
#[cfg_attr(not(any(feature = "ws", feature = "kcp")), allow(dead_code))]
pub(crate) const ACCEPT_BACKLOG: usize = 128;

/// Accepts game clients over one [`Transport`].
///
/// [`accept`](Self::accept) only fails when the listener cannot accept anymore: failed
/// OS accepts are logged and retried after a short pause, failed handshakes are logged
/// and counted in [`handshake_failures`](Self::handshake_failures). WebSocket and KCP
/// listeners run handshakes in a background task, so one slow client never holds up
/// another; dropping the listener stops that task and aborts the pending handshakes
/// (accepted connections live on).
pub struct Listener {
    transport: Transport,
    local_addr: SocketAddr,
    stats: ListenerStats,
    inner: Inner,
}

enum Inner {
    Tcp {
        listener: TcpListener,
        config: GateConfig,
    },
    /// Connections prepared by a background task (WebSocket upgrade, KCP first packet).
    #[cfg_attr(not(any(feature = "ws", feature = "kcp")), allow(dead_code))]
    Background {
        rx: mpsc::Receiver<ClientConn>,
        task: JoinHandle<()>,
    },
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Inner::Background { task, .. } = &self.inner {
            task.abort();
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("transport", &self.transport)
            .field("local_addr", &self.local_addr)
            .field("handshake_failures", &self.handshake_failures())
            .field("pending_handshakes", &self.pending_handshakes())
            .field("refused_datagrams", &self.refused_datagrams())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds a listener (TCP socket for TCP and WebSocket, UDP socket for KCP).
    pub async fn bind(
        transport: Transport,
        addr: impl ToSocketAddrs,
        config: GateConfig,
    ) -> Result<Self, GateError> {
        config.validate()?;
        let stats = ListenerStats::default();
        let (local_addr, inner) = match transport {
            Transport::Tcp => {
                let listener = TcpListener::bind(addr).await?;
                (listener.local_addr()?, Inner::Tcp { listener, config })
            }
            Transport::Ws => {
                #[cfg(feature = "ws")]
                {
                    let listener = TcpListener::bind(addr).await?;
                    let local_addr = listener.local_addr()?;
                    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
                    let task =
                        tokio::spawn(super::ws::accept_loop(listener, config, tx, stats.clone()));
                    (local_addr, Inner::Background { rx, task })
                }
                #[cfg(not(feature = "ws"))]
                {
                    drop(addr);
                    return Err(GateError::TransportDisabled(Transport::Ws));
                }
            }
            Transport::Kcp => {
                #[cfg(feature = "kcp")]
                {
                    let (local_addr, rx, task) =
                        super::kcp::bind(addr, config, stats.clone()).await?;
                    (local_addr, Inner::Background { rx, task })
                }
                #[cfg(not(feature = "kcp"))]
                {
                    drop(addr);
                    return Err(GateError::TransportDisabled(Transport::Kcp));
                }
            }
        };
        tracing::info!(%transport, addr = %local_addr, "gate: listening");
        Ok(Self {
            transport,
            local_addr,
            stats,
            inner,
        })
    }

    /// The next client connection. Cancel safe: a connection is never lost by dropping
    /// this future.
    pub async fn accept(&mut self) -> Result<ClientConn, GateError> {
        match &mut self.inner {
            Inner::Tcp { listener, config } => loop {
                match listener.accept().await {
                    Ok((stream, peer_addr)) => return Ok(tcp::wrap(stream, peer_addr, config)),
                    Err(err) => {
                        warn!(transport = %self.transport, error = %err, "gate: accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            },
            Inner::Background { rx, .. } => rx.recv().await.ok_or(GateError::ListenerClosed),
        }
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The transport this listener accepts.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// How many connections failed their handshake so far (WebSocket upgrade errors and
    /// timeouts; KCP sessions that sent no valid first packet in time). Always 0 for TCP.
    /// (Includes pending handshakes dropped to make room at
    /// [`GateConfig::kcp_max_pending`].)
    pub fn handshake_failures(&self) -> u64 {
        self.stats.handshake_failures()
    }

    /// How many handshakes are in progress now: WebSocket upgrades, and KCP sessions
    /// waiting for their first packet (at most [`GateConfig::kcp_max_pending`]).
    /// Always 0 for TCP.
    pub fn pending_handshakes(&self) -> usize {
        self.stats.pending_handshakes()
    }

    /// KCP: datagrams from addresses without a session that did not start a
    /// conversation, dropped without keeping any state (stray or spoofed traffic, late
    /// segments of ended conversations). Always 0 for TCP and WebSocket.
    pub fn refused_datagrams(&self) -> u64 {
        self.stats.refused_datagrams()
    }

    /// A handle on this listener's counters that another task can keep (e.g. a metrics
    /// exporter) while `accept` runs elsewhere.
    pub fn stats(&self) -> ListenerStats {
        self.stats.clone()
    }
}

/// Counters of a [`Listener`], readable from any task; see [`Listener::stats`].
#[derive(Debug, Clone, Default)]
pub struct ListenerStats {
    handshake_failures: Arc<AtomicU64>,
    pending_handshakes: Arc<AtomicUsize>,
    refused_datagrams: Arc<AtomicU64>,
}

impl ListenerStats {
    /// See [`Listener::handshake_failures`].
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// See [`Listener::pending_handshakes`].
    pub fn pending_handshakes(&self) -> usize {
        self.pending_handshakes.load(Ordering::Relaxed)
    }

    /// See [`Listener::refused_datagrams`].
    pub fn refused_datagrams(&self) -> u64 {
        self.refused_datagrams.load(Ordering::Relaxed)
    }

    #[cfg_attr(not(feature = "kcp"), allow(dead_code))]
    pub(crate) fn add_refused(&self) {
        self.refused_datagrams.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg_attr(not(any(feature = "ws", feature = "kcp")), allow(dead_code))]
    pub(crate) fn add_failure(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg_attr(not(any(feature = "ws", feature = "kcp")), allow(dead_code))]
    pub(crate) fn set_pending(&self, n: usize) {
        self.pending_handshakes.store(n, Ordering::Relaxed);
    }
}
