//! What a transport provides to [`super::ClientConn`]: a packet read half and a packet
//! write half that knows its read half's type (in the spirit of tokio-util's `Framed`,
//! but split, because the caller reads while the writer task writes).
//!
//! The connection is generic over the transport only inside: the writer task is
//! `write_loop::<W>`, and the read half travels to it and back as `W::Reader`, so no
//! transport enum is matched and nothing is downcast. The public [`super::PacketReceiver`]
//! holds the read half as a [`ReadEnd`] trait object (one allocation per connection;
//! reading is poll-based, so none per packet).

use std::future::Future;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::GateError;
use super::conn::{CloseReason, Confirm};

/// The read half of one transport.
pub(crate) trait PacketRead: Send + Sync + 'static {
    /// Next packet; `Ready(Ok(None))` when the peer closed cleanly. Cancel safe: partial
    /// input stays buffered in the reader.
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GateError>>;
}

/// The write half of one transport, owned by the connection's writer task.
pub(crate) trait PacketWrite: Send + 'static {
    /// The matching read half, handed back to the writer for the close handshake.
    type Reader: PacketRead;

    /// Buffers one packet (writing only when buffers fill up).
    fn feed(&mut self, packet: Bytes) -> impl Future<Output = Result<(), GateError>> + Send;

    /// Writes everything buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), GateError>> + Send;

    /// Tells the peer the connection ends (FIN, close frame or close marker), fires
    /// `confirm` once that is written, then finishes the close handshake if the read
    /// half was handed back (`reader`): waits for the peer's close frame, FIN or reply
    /// marker. Holding the read half matters: closing a TCP socket with unread input
    /// makes the kernel send RST, which can destroy our close frame before the peer
    /// reads it, and a dropped KCP session loses what it has not yet delivered.
    ///
    /// `after_error` is set when a read error ended the connection: WebSocket then
    /// sends the matching close code and, the stream being possibly mid-frame, discards
    /// raw input; KCP skips the handshake. The caller bounds the whole call.
    fn close(
        self,
        after_error: Option<CloseReason>,
        reader: Option<Self::Reader>,
        confirm: Confirm,
    ) -> impl Future<Output = Result<(), GateError>> + Send;
}

/// The read half going back to the writer task: on a read error (`error` set: close at
/// once with that reason) or when the receiver is dropped (the writer keeps it for the
/// close handshake).
#[derive(Debug)]
pub(crate) struct Handoff<R> {
    pub(crate) reader: R,
    pub(crate) error: Option<CloseReason>,
}

/// A read half plus the way back to its writer task, type-erased for
/// [`super::PacketReceiver`].
pub(crate) trait ReadEnd: Send + Sync {
    /// See [`PacketRead::poll_packet`].
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GateError>>;

    /// Gives the read half to the writer task.
    fn hand_off(self: Box<Self>, error: Option<CloseReason>);
}

/// The one [`ReadEnd`]: a transport's reader and the channel to its writer task.
pub(crate) struct Returnable<R> {
    pub(crate) reader: R,
    pub(crate) back: oneshot::Sender<Handoff<R>>,
}

impl<R: PacketRead> ReadEnd for Returnable<R> {
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GateError>> {
        self.reader.poll_packet(cx)
    }

    fn hand_off(self: Box<Self>, error: Option<CloseReason>) {
        let Returnable { reader, back } = *self;
        // Fails only if the writer task has ended; the reader then just drops.
        let _ = back.send(Handoff { reader, error });
    }
}

/// Reads the next packet from any read half.
#[cfg_attr(not(any(feature = "ws", feature = "kcp")), allow(dead_code))]
pub(crate) async fn next_packet<R: PacketRead + ?Sized>(
    reader: &mut R,
) -> Result<Option<Bytes>, GateError> {
    std::future::poll_fn(|cx| reader.poll_packet(cx)).await
}
