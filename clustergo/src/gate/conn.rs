//! One client connection: a reader owned by the caller, a writer task fed by a queue.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::io::{Handoff, PacketWrite, ReadEnd, Returnable};
use super::{GateConfig, GateError, Transport};

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
    /// Close after the packets queued before; the sender learns when the close signal
    /// has been written.
    Close(Option<oneshot::Sender<()>>),
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
        let _ = self.tx.send(Outbound::Close(None)).await;
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
    /// The read half; `None` once the connection ended (clean close or error) or it
    /// was handed to the writer task.
    reader: Option<Box<dyn ReadEnd>>,
    /// A packet read before the connection was handed out (KCP's first packet).
    first: Option<Bytes>,
    shared: Arc<ConnShared>,
    idle_timeout: Option<Duration>,
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
        let next = async {
            tokio::select! {
                biased;
                next = std::future::poll_fn(|cx| reader.poll_packet(cx)) => next,
                () = self.shared.writer_failed.cancelled() => Err(self.shared.error()),
            }
        };
        let next = match self.idle_timeout {
            Some(idle) => tokio::time::timeout(idle, next)
                .await
                .unwrap_or(Err(GateError::IdleTimeout(idle))),
            None => next.await,
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
                self.hand_off(Some(CloseReason::for_error(&err)));
                Err(err)
            }
        }
    }

    /// Gives the reader (if still open) to the writer task.
    fn hand_off(&mut self, error: Option<CloseReason>) {
        if let Some(reader) = self.reader.take() {
            reader.hand_off(error);
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

impl Drop for PacketReceiver {
    /// The writer keeps the read half for the close handshake (reading the peer's close
    /// reply, not leaving unread input that would turn our close into a reset).
    fn drop(&mut self) {
        self.hand_off(None);
    }
}

/// One client connection: receive with [`recv`](Self::recv), send with
/// [`send`](Self::send) or a [`PacketSender`] from [`sender`](Self::sender).
pub struct ClientConn {
    receiver: PacketReceiver,
    sender: PacketSender,
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
    pub(crate) fn new<W: PacketWrite>(
        reader: W::Reader,
        writer: W,
        first: Option<Bytes>,
        peer_addr: SocketAddr,
        transport: Transport,
        config: &GateConfig,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.send_queue);
        let (handoff_tx, handoff_rx) = oneshot::channel();
        let shared = Arc::new(ConnShared::default());
        tokio::spawn(write_loop(
            writer,
            rx,
            handoff_rx,
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
                reader: Some(Box::new(Returnable {
                    reader,
                    back: handoff_tx,
                })),
                first,
                shared,
                idle_timeout: config.idle_timeout,
                peer_addr,
                transport,
            },
            sender: PacketSender {
                tx,
                max_packet_size: config.max_packet_size,
                peer_addr,
                transport,
            },
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

    /// Closes gracefully: writes what is queued, tells the peer, and waits until that
    /// close signal is written (bounded by [`GateConfig::close_timeout`]). The writer
    /// task then finishes the close handshake in the background (reads until the peer
    /// closes too, or the close timeout passes).
    pub async fn close(self) -> Result<(), GateError> {
        let Self {
            receiver,
            sender,
            close_timeout,
        } = self;
        let (confirm_tx, confirm_rx) = oneshot::channel();
        // The reader goes to the writer before the close request: it is there for the
        // handshake.
        drop(receiver);
        let finish = async {
            sender
                .tx
                .send(Outbound::Close(Some(confirm_tx)))
                .await
                .map_err(|_| GateError::Closed)?;
            confirm_rx.await.map_err(|_| GateError::Closed)
        };
        match tokio::time::timeout(close_timeout, finish).await {
            Ok(result) => result,
            Err(_) => {
                debug!(peer = %sender.peer_addr, "gate: close timed out");
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

/// Tells [`ClientConn::close`] that the close signal has been written.
#[derive(Debug, Default)]
pub(crate) struct Confirm(Option<oneshot::Sender<()>>);

impl Confirm {
    pub(crate) fn done(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Writes `item` and whatever else is queued, flushing every [`WRITE_BATCH`] packets
/// and at the end. `Some` when a close request was reached.
async fn write_batch<W: PacketWrite>(
    writer: &mut W,
    rx: &mut mpsc::Receiver<Outbound>,
    mut item: Outbound,
) -> Result<Option<Confirm>, GateError> {
    let mut n = 0;
    loop {
        match item {
            Outbound::Packet(p) => writer.feed(p).await?,
            Outbound::Close(confirm) => {
                writer.flush().await?;
                return Ok(Some(Confirm(confirm)));
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
    Ok(None)
}

/// The writer task: drains the queue in batches, one flush per batch; closes on
/// [`Outbound::Close`], when every sender is gone, or at once after a read error.
async fn write_loop<W: PacketWrite>(
    mut writer: W,
    mut rx: mpsc::Receiver<Outbound>,
    mut handoff: oneshot::Receiver<Handoff<W::Reader>>,
    shared: Arc<ConnShared>,
    info: WriterInfo,
) {
    let mut handoff_open = true;
    let mut reader = None;
    let mut after_error = None;
    let confirm = 'conn: loop {
        let first = tokio::select! {
            biased;
            h = &mut handoff, if handoff_open => {
                handoff_open = false;
                if let Ok(h) = h {
                    reader = Some(h.reader);
                    if h.error.is_some() {
                        // A read error: close at once, skipping what is queued.
                        after_error = h.error;
                        break 'conn Confirm::default();
                    }
                }
                continue;
            },
            item = rx.recv() => item,
        };
        let Some(item) = first else {
            break Confirm::default();
        };
        let batch = write_batch(&mut writer, &mut rx, item);
        match tokio::time::timeout(info.write_timeout, batch).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(confirm))) => break confirm,
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
    if handoff_open {
        // The receiver may have been dropped while the last batch was written.
        if let Ok(h) = handoff.try_recv() {
            reader = Some(h.reader);
            after_error = h.error;
        }
    }
    let close = writer.close(after_error, reader, confirm);
    match tokio::time::timeout(info.close_timeout, close).await {
        Ok(Ok(())) => {
            debug!(peer = %info.peer_addr, transport = %info.transport, reason = ?after_error, "gate: closed");
        }
        Ok(Err(err)) => {
            debug!(peer = %info.peer_addr, transport = %info.transport, error = %err, "gate: close failed");
        }
        Err(_) => {
            debug!(peer = %info.peer_addr, transport = %info.transport, "gate: close handshake timed out");
        }
    }
}
