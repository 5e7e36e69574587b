//! One client connection: a reader owned by the caller, a writer task fed by a queue.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{GateConfig, GateError, Transport, tcp};

/// Packets written per flush at most: bounds the latency one busy connection adds.
const WRITE_BATCH: usize = 64;

/// Why the writer closes the connection; WebSocket turns it into a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// Ordinary close (WebSocket 1000).
    Normal,
    /// The peer sent an oversize packet (WebSocket 1009).
    TooLarge,
    /// The peer sent a text message (WebSocket 1003).
    Unsupported,
    /// The peer broke the protocol (WebSocket 1002).
    Protocol,
}

impl CloseReason {
    fn for_error(err: &GateError) -> Self {
        match err {
            GateError::IncomingTooLarge { .. } => Self::TooLarge,
            GateError::TextMessage => Self::Unsupported,
            GateError::Protocol(_) => Self::Protocol,
            _ => Self::Normal,
        }
    }
}

/// Why the writer task gave up on a connection (kept so the receiver can report it).
#[derive(Debug, Clone)]
enum WriteFailure {
    Timeout(Duration),
    Io(std::io::ErrorKind, String),
}

/// State the writer task shares with the receiver: when writing fails, the receiver
/// stops too, so the task serving a dropped slow client learns it from `recv`.
#[derive(Debug, Default)]
struct ConnShared {
    writer_failed: CancellationToken,
    failure: parking_lot::Mutex<Option<WriteFailure>>,
}

impl ConnShared {
    fn fail(&self, failure: WriteFailure) {
        *self.failure.lock() = Some(failure);
        self.writer_failed.cancel();
    }

    fn error(&self) -> GateError {
        match self.failure.lock().clone() {
            Some(WriteFailure::Timeout(d)) => GateError::WriteTimeout(d),
            Some(WriteFailure::Io(kind, msg)) => GateError::Io(std::io::Error::new(kind, msg)),
            None => GateError::Closed,
        }
    }
}

/// What the senders queue for the writer task.
#[derive(Debug)]
pub(crate) enum Outbound {
    Packet(Bytes),
    Close,
}

/// The read side of one transport.
#[derive(Debug)]
pub(crate) enum Reader {
    Tcp(tcp::TcpReader),
    #[cfg(feature = "ws")]
    Ws(super::ws::WsReader),
    #[cfg(feature = "kcp")]
    Kcp(super::kcp::KcpReader),
}

impl Reader {
    /// Next packet; `Ok(None)` when the peer closed cleanly.
    async fn next(&mut self) -> Result<Option<Bytes>, GateError> {
        match self {
            Reader::Tcp(r) => r.next().await,
            #[cfg(feature = "ws")]
            Reader::Ws(r) => r.next().await,
            #[cfg(feature = "kcp")]
            Reader::Kcp(r) => r.next().await,
        }
    }
}

/// The write side of one transport, owned by the writer task.
#[derive(Debug)]
pub(crate) enum Writer {
    Tcp(tcp::TcpWriter),
    #[cfg(feature = "ws")]
    Ws(super::ws::WsWriter),
    #[cfg(feature = "kcp")]
    Kcp(super::kcp::KcpWriter),
}

impl Writer {
    /// Buffers one packet (writing only when buffers fill up).
    async fn feed(&mut self, packet: Bytes) -> Result<(), GateError> {
        match self {
            Writer::Tcp(w) => w.feed(packet).await,
            #[cfg(feature = "ws")]
            Writer::Ws(w) => w.feed(packet).await,
            #[cfg(feature = "kcp")]
            Writer::Kcp(w) => w.feed(packet).await,
        }
    }

    /// Writes everything buffered.
    async fn flush(&mut self) -> Result<(), GateError> {
        match self {
            Writer::Tcp(w) => w.flush().await,
            #[cfg(feature = "ws")]
            Writer::Ws(w) => w.flush().await,
            #[cfg(feature = "kcp")]
            Writer::Kcp(w) => w.flush().await,
        }
    }

    /// Tells the peer the connection ends (FIN, close frame or close marker).
    ///
    /// `reader` is the read half handed back after a read error: the peer may still be
    /// sending (the rest of an oversize packet), and closing a TCP socket with unread
    /// data makes the kernel send RST, which would destroy our close frame before the
    /// peer reads it. So TCP and WebSocket half-close and then discard input until the
    /// peer closes too (bounded by the caller).
    #[allow(unreachable_patterns)] // with features off, Reader has one variant
    async fn close(self, reason: CloseReason, reader: Option<Reader>) -> Result<(), GateError> {
        match self {
            Writer::Tcp(w) => {
                let _ = reason; // TCP has no close codes
                let reader = reader.and_then(|r| match r {
                    Reader::Tcp(r) => Some(r),
                    _ => None,
                });
                w.close(reader).await
            }
            #[cfg(feature = "ws")]
            Writer::Ws(w) => {
                let reader = reader.and_then(|r| match r {
                    Reader::Ws(r) => Some(r),
                    _ => None,
                });
                w.close(reason, reader).await
            }
            #[cfg(feature = "kcp")]
            Writer::Kcp(mut w) => {
                let _ = (reason, reader);
                w.close().await
            }
        }
    }
}

/// The cloneable sending half of a [`ClientConn`].
///
/// Packets from one sender are written in the order they were queued. Dropping every
/// sender and the [`ClientConn`] closes the connection gracefully.
#[derive(Clone)]
pub struct PacketSender {
    tx: mpsc::Sender<Outbound>,
    max_packet_size: usize,
    peer_addr: SocketAddr,
    transport: Transport,
}

impl fmt::Debug for PacketSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketSender")
            .field("transport", &self.transport)
            .field("peer_addr", &self.peer_addr)
            .field("closed", &self.tx.is_closed())
            .finish_non_exhaustive()
    }
}

impl PacketSender {
    fn check_size(&self, packet: &Bytes) -> Result<(), GateError> {
        if packet.len() > self.max_packet_size {
            return Err(GateError::PacketTooLarge {
                size: packet.len(),
                max: self.max_packet_size,
            });
        }
        Ok(())
    }

    /// Queues a packet, waiting while the connection's send queue is full.
    ///
    /// `Ok` means queued, not delivered. Errors: [`GateError::PacketTooLarge`] (nothing
    /// sent, connection kept) and [`GateError::Closed`].
    pub async fn send(&self, packet: Bytes) -> Result<(), GateError> {
        self.check_size(&packet)?;
        self.tx
            .send(Outbound::Packet(packet))
            .await
            .map_err(|_| GateError::Closed)
    }

    /// Queues a packet without waiting: [`GateError::Busy`] if the send queue is full.
    pub fn try_send(&self, packet: Bytes) -> Result<(), GateError> {
        self.check_size(&packet)?;
        self.tx
            .try_send(Outbound::Packet(packet))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => GateError::Busy,
                mpsc::error::TrySendError::Closed(_) => GateError::Closed,
            })
    }

    /// Asks for a graceful close: packets queued before it are written, then the peer
    /// is told (FIN / close frame / close marker). Packets queued after it are dropped.
    /// Does not wait for the writes; see [`ClientConn::close`] for that.
    pub async fn close(&self) {
        let _ = self.tx.send(Outbound::Close).await;
    }

    /// Whether the writer has stopped: nothing sent now would reach the peer.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The transport of this connection.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

/// The receiving half of a [`ClientConn`].
pub struct PacketReceiver {
    /// `None` once the connection ended (clean close or error).
    reader: Option<Reader>,
    /// A packet read before the connection was handed out (KCP's first packet).
    first: Option<Bytes>,
    /// Tells the writer to close at once after a read error (skipping queued packets).
    abort: Option<oneshot::Sender<(CloseReason, Reader)>>,
    shared: Arc<ConnShared>,
    peer_addr: SocketAddr,
    transport: Transport,
}

impl fmt::Debug for PacketReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketReceiver")
            .field("transport", &self.transport)
            .field("peer_addr", &self.peer_addr)
            .field("open", &self.reader.is_some())
            .finish_non_exhaustive()
    }
}

impl PacketReceiver {
    /// The next packet; `Ok(None)` once the peer has closed cleanly.
    ///
    /// An error ends the connection (the writer closes it, telling a WebSocket peer
    /// why); every later call returns `Ok(None)`. Cancel safe: dropping the future (in a
    /// `select!`) loses no packet, since every transport keeps partial input buffered.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, GateError> {
        if let Some(packet) = self.first.take() {
            return Ok(Some(packet));
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let next = tokio::select! {
            biased;
            next = reader.next() => next,
            () = self.shared.writer_failed.cancelled() => Err(self.shared.error()),
        };
        match next {
            Ok(Some(packet)) => Ok(Some(packet)),
            Ok(None) => {
                debug!(peer = %self.peer_addr, transport = %self.transport, "gate: peer closed");
                self.reader = None;
                Ok(None)
            }
            Err(err) => {
                if err.is_disconnect() {
                    debug!(peer = %self.peer_addr, transport = %self.transport, error = %err, "gate: connection lost");
                } else {
                    warn!(peer = %self.peer_addr, transport = %self.transport, error = %err, "gate: closing connection");
                }
                if let (Some(abort), Some(reader)) = (self.abort.take(), self.reader.take()) {
                    let _ = abort.send((CloseReason::for_error(&err), reader));
                }
                self.reader = None;
                Err(err)
            }
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The transport of this connection.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

/// One client connection: receive with [`recv`](Self::recv), send with
/// [`send`](Self::send) or a [`PacketSender`] from [`sender`](Self::sender).
pub struct ClientConn {
    receiver: PacketReceiver,
    sender: PacketSender,
    writer: JoinHandle<()>,
    close_timeout: Duration,
}

impl fmt::Debug for ClientConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConn")
            .field("transport", &self.sender.transport)
            .field("peer_addr", &self.sender.peer_addr)
            .field("open", &self.receiver.reader.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientConn {
    /// Wraps the two halves of a transport and starts the writer task.
    pub(crate) fn new(
        reader: Reader,
        writer: Writer,
        first: Option<Bytes>,
        peer_addr: SocketAddr,
        transport: Transport,
        config: &GateConfig,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.send_queue);
        let (abort_tx, abort_rx) = oneshot::channel();
        let shared = Arc::new(ConnShared::default());
        let writer = tokio::spawn(write_loop(
            writer,
            rx,
            abort_rx,
            shared.clone(),
            WriterInfo {
                peer_addr,
                transport,
                write_timeout: config.write_timeout,
                close_timeout: config.close_timeout,
            },
        ));
        debug!(peer = %peer_addr, %transport, "gate: connection open");
        Self {
            receiver: PacketReceiver {
                reader: Some(reader),
                first,
                abort: Some(abort_tx),
                shared,
                peer_addr,
                transport,
            },
            sender: PacketSender {
                tx,
                max_packet_size: config.max_packet_size,
                peer_addr,
                transport,
            },
            writer,
            close_timeout: config.close_timeout,
        }
    }

    /// The next packet; `Ok(None)` once the peer has closed cleanly. See
    /// [`PacketReceiver::recv`].
    pub async fn recv(&mut self) -> Result<Option<Bytes>, GateError> {
        self.receiver.recv().await
    }

    /// Queues a packet, waiting while the send queue is full. See [`PacketSender::send`].
    pub async fn send(&self, packet: Bytes) -> Result<(), GateError> {
        self.sender.send(packet).await
    }

    /// Queues a packet without waiting. See [`PacketSender::try_send`].
    pub fn try_send(&self, packet: Bytes) -> Result<(), GateError> {
        self.sender.try_send(packet)
    }

    /// A sender for other tasks.
    pub fn sender(&self) -> PacketSender {
        self.sender.clone()
    }

    /// Splits into halves that can live in different tasks. The writer task keeps
    /// running until the senders are dropped or one of them closes.
    pub fn split(self) -> (PacketSender, PacketReceiver) {
        (self.sender, self.receiver)
    }

    /// Closes gracefully: writes what is queued, tells the peer, and waits for that
    /// (bounded by [`GateConfig::close_timeout`], after which the writer is abandoned
    /// and the socket dropped).
    pub async fn close(self) -> Result<(), GateError> {
        let Self {
            receiver,
            sender,
            mut writer,
            close_timeout,
        } = self;
        let peer = sender.peer_addr;
        let finish = async {
            sender.close().await;
            let _ = (&mut writer).await;
        };
        let result = tokio::time::timeout(close_timeout, finish).await;
        drop(receiver);
        match result {
            Ok(()) => Ok(()),
            Err(_) => {
                writer.abort();
                debug!(%peer, "gate: close timed out");
                Err(GateError::Io(std::io::ErrorKind::TimedOut.into()))
            }
        }
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.sender.peer_addr
    }

    /// The transport of this connection.
    pub fn transport(&self) -> Transport {
        self.sender.transport
    }
}

#[derive(Debug)]
struct WriterInfo {
    peer_addr: SocketAddr,
    transport: Transport,
    write_timeout: Duration,
    close_timeout: Duration,
}

/// Writes `item` and whatever else is queued, flushing every [`WRITE_BATCH`] packets
/// and at the end. `Ok(true)` when a close request was reached.
async fn write_batch(
    writer: &mut Writer,
    rx: &mut mpsc::Receiver<Outbound>,
    mut item: Outbound,
) -> Result<bool, GateError> {
    let mut n = 0;
    loop {
        match item {
            Outbound::Packet(p) => writer.feed(p).await?,
            Outbound::Close => {
                writer.flush().await?;
                return Ok(true);
            }
        }
        n += 1;
        if n == WRITE_BATCH {
            writer.flush().await?;
            n = 0;
        }
        match rx.try_recv() {
            Ok(next) => item = next,
            Err(_) => break,
        }
    }
    writer.flush().await?;
    Ok(false)
}

/// The writer task: drains the queue in batches, one flush per batch; closes on
/// [`Outbound::Close`], when every sender is gone, or at once on a reader's abort.
async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Outbound>,
    mut abort: oneshot::Receiver<(CloseReason, Reader)>,
    shared: Arc<ConnShared>,
    info: WriterInfo,
) {
    let mut abort_open = true;
    let (reason, reader) = 'conn: loop {
        let first = tokio::select! {
            biased;
            r = &mut abort, if abort_open => match r {
                Ok((reason, reader)) => break 'conn (reason, Some(reader)),
                // The receiver went away without an error: keep writing.
                Err(_) => { abort_open = false; continue }
            },
            item = rx.recv() => item,
        };
        let Some(item) = first else {
            break (CloseReason::Normal, None);
        };
        let batch = write_batch(&mut writer, &mut rx, item);
        match tokio::time::timeout(info.write_timeout, batch).await {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => break (CloseReason::Normal, None),
            Ok(Err(err)) => {
                debug!(peer = %info.peer_addr, transport = %info.transport, error = %err, "gate: write failed");
                shared.fail(match err {
                    GateError::Io(e) => WriteFailure::Io(e.kind(), e.to_string()),
                    other => WriteFailure::Io(std::io::ErrorKind::Other, other.to_string()),
                });
                return;
            }
            Err(_) => {
                warn!(peer = %info.peer_addr, transport = %info.transport, timeout = ?info.write_timeout,
                      "gate: write timed out (client not reading); dropping connection");
                shared.fail(WriteFailure::Timeout(info.write_timeout));
                return;
            }
        }
    };
    rx.close();
    match tokio::time::timeout(info.close_timeout, writer.close(reason, reader)).await {
        Ok(Ok(())) => {
            debug!(peer = %info.peer_addr, transport = %info.transport, ?reason, "gate: closed");
        }
        Ok(Err(err)) => {
            debug!(peer = %info.peer_addr, transport = %info.transport, error = %err, "gate: close failed");
        }
        Err(_) => {
            debug!(peer = %info.peer_addr, transport = %info.transport, "gate: close timed out");
        }
    }
}
