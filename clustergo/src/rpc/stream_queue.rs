//! The two queues between a streaming call's pump and its user, each bounded in
//! bytes ([`QUEUE_BYTES`]) so a reader that stops reading stops its producer.
//!
//! - Outgoing ([`frame_queue`]): the user's `send` encodes its message as a frame
//!   straight into one shared buffer; the pump swaps the whole buffer out and writes
//!   it in one write. No allocation or hand-off per message, and the pump is woken
//!   only when it waits for work, not per message. The codec runs under the
//!   queue's lock (it writes into the shared buffer), so a slow encoder of a big
//!   message holds the pump's next take for that long.
//! - Incoming ([`msg_queue`]): the pump queues each decoded message; the reader
//!   takes everything queued at once into a local batch, so the lock and the
//!   wake-ups are per batch, not per message.
//!
//! Each queue ends exactly once: the first `end` wins, and a side that goes away
//! is seen by the other (`closed`, or `None` from the reader).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::stream_frame;
use super::{Codec, RpcError};

/// Bytes of messages one direction of a call queues beside the stream's window
/// (each of its two queues may go one message over). The other end of a queue
/// may hold as much again, taken out but not yet done with: the reader's batch,
/// the write in progress.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// What a queued incoming message costs beside its bytes: its handle in the
/// queue. Charged so that a flood of empty or tiny messages is bounded in the
/// memory it takes, not only in its payload.
const ITEM_COST: usize = std::mem::size_of::<Bytes>();

/// The capacity an outgoing buffer keeps between batches. A larger one (a big
/// message, a refused huge one) is let go instead of being held for the
/// rest of the call.
const KEEP_CAPACITY: usize = 2 * QUEUE_BYTES;

/// Lets go of `buf`'s memory if it grew beyond [`KEEP_CAPACITY`], keeping its bytes.
fn shed(buf: &mut BytesMut) {
    if buf.capacity() > KEEP_CAPACITY {
        *buf = BytesMut::from(&buf[..]);
    }
}

/// What the reader of an incoming queue takes out.
#[derive(Debug)]
pub(crate) enum Item {
    Message(Bytes),
    End(Result<(), RpcError>),
}

/// Remembers `cx`'s waker in `slot` (cloned only when it changed).
fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// An outgoing queue: frames encoded by the senders, taken by the pump.
#[derive(Debug)]
struct Out {
    buf: BytesMut,
    /// The end, until the pump takes it.
    end: Option<Result<(), RpcError>>,
    /// An end was queued (taken or not), or the pump is gone: later ends, and
    /// sends, are refused.
    ended: bool,
    /// The frame limit (the node's `max_frame`): a message's body is refused
    /// beyond it, the `end` frame's text cut to it.
    max: usize,
    /// Live [`FrameTx`] handles; the last one dropped ends the queue `Ok`.
    senders: usize,
    pump: Option<Waker>,
    sender: Option<Waker>,
}

/// The sending end of an outgoing queue (one task sends messages at a time).
#[derive(Debug)]
pub(crate) struct FrameTx(Arc<Mutex<Out>>);

/// The pump's end of an outgoing queue.
#[derive(Debug)]
pub(crate) struct FrameRx(Arc<Mutex<Out>>);

/// An outgoing queue whose first bytes are `first` (the caller's `open` frame),
/// for a stream whose frames are limited to `max`.
pub(crate) fn frame_queue(first: BytesMut, max: usize) -> (FrameTx, FrameRx) {
    let out = Arc::new(Mutex::new(Out {
        buf: first,
        end: None,
        ended: false,
        max,
        senders: 1,
        pump: None,
        sender: None,
    }));
    (FrameTx(out.clone()), FrameRx(out))
}

impl FrameTx {
    /// Queues `msg` as a `message` frame once there is room: `Ok(false)` if the
    /// pump is gone, an error if it does not encode or its body exceeds the frame
    /// limit.
    /// `msg` is owned by the future so that it need only be `Send`.
    pub(crate) async fn send<T, C: Codec<T>>(&self, msg: T) -> Result<bool, RpcError> {
        poll_fn(move |cx| {
            let mut out = self.0.lock();
            // Ended (the handler returned while a task it left still sends): the
            // call's status is decided, nothing may follow it.
            if out.ended {
                return Poll::Ready(Ok(false));
            }
            if out.buf.len() >= QUEUE_BYTES {
                park(&mut out.sender, cx);
                return Poll::Pending;
            }
            let (at, max) = (out.buf.len(), out.max);
            let refused = match stream_frame::put_message_with(&mut out.buf, |b| C::encode(&msg, b))
            {
                Err(e) => RpcError::Codec(format!("cannot encode message: {e}")),
                Ok(len) if len > max => {
                    out.buf.truncate(at);
                    RpcError::Codec(format!(
                        "message of {len} bytes exceeds the frame limit of {max}"
                    ))
                }
                Ok(_) => {
                    // The pump's waker is there only while it waits: one wake per batch.
                    let pump = out.pump.take();
                    drop(out);
                    wake(pump);
                    return Poll::Ready(Ok(true));
                }
            };
            // What the refused message grew the buffer to is not kept.
            shed(&mut out.buf);
            Poll::Ready(Err(refused))
        })
        .await
    }

    /// Ends the queue with `status` after what it holds; only the first end counts.
    pub(crate) fn end(&self, status: Result<(), RpcError>) {
        let mut out = self.0.lock();
        if !out.ended {
            out.ended = true;
            out.end = Some(status);
        }
        let pump = out.pump.take();
        drop(out);
        wake(pump);
    }
}

impl Clone for FrameTx {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Self(self.0.clone())
    }
}

impl Drop for FrameTx {
    fn drop(&mut self) {
        let last = {
            let mut out = self.0.lock();
            out.senders -= 1;
            out.senders == 0
        };
        if last {
            // Every sender dropped: this direction ends cleanly (unless it ended).
            self.end(Ok(()));
        }
    }
}

impl FrameRx {
    /// Moves everything queued into `dst` (empty), waiting for something; `true`
    /// when that ends with the `end` frame (nothing follows it).
    pub(crate) async fn take(&mut self, dst: &mut BytesMut) -> bool {
        poll_fn(|cx| {
            let mut out = self.0.lock();
            if out.buf.is_empty() && out.end.is_none() {
                park(&mut out.pump, cx);
                return Poll::Pending;
            }
            // Swapped, not split: both buffers keep their capacity for the next
            // batch, unless a big message grew the one handed back.
            shed(dst);
            std::mem::swap(&mut out.buf, dst);
            let ended = match out.end.take() {
                Some(status) => {
                    // Nothing follows the end: `ended` refuses later sends.
                    stream_frame::put_end(dst, &status, out.max);
                    true
                }
                None => false,
            };
            let sender = out.sender.take();
            drop(out);
            wake(sender);
            Poll::Ready(ended)
        })
        .await
    }
}

impl Drop for FrameRx {
    fn drop(&mut self) {
        let mut out = self.0.lock();
        out.ended = true;
        let sender = out.sender.take();
        drop(out);
        wake(sender);
    }
}

/// An incoming queue: messages from the pump, taken by the reader.
#[derive(Debug, Default)]
struct In {
    items: VecDeque<Bytes>,
    bytes: usize,
    /// The end, until the reader takes it.
    end: Option<Result<(), RpcError>>,
    /// An end was queued (taken or not): later ones are dropped.
    ended: bool,
    /// The pump is gone (with or without an end).
    pump_gone: bool,
    /// The reader is gone or closed its end.
    reader_gone: bool,
    reader: Option<Waker>,
    /// The pump waits for room.
    room: Option<Waker>,
    /// The pump waits for the reader to go.
    gone: Option<Waker>,
}

/// The pump's end of an incoming queue.
#[derive(Debug)]
pub(crate) struct MsgTx(Arc<Mutex<In>>);

/// The reader's end of an incoming queue, with the batch it took out last.
#[derive(Debug)]
pub(crate) struct MsgRx {
    shared: Arc<Mutex<In>>,
    batch: VecDeque<Bytes>,
}

/// An empty incoming queue.
pub(crate) fn msg_queue() -> (MsgTx, MsgRx) {
    let shared = Arc::new(Mutex::new(In::default()));
    let rx = MsgRx {
        shared: shared.clone(),
        batch: VecDeque::new(),
    };
    (MsgTx(shared), rx)
}

impl MsgTx {
    /// Queues a message once there is room; `false` if the reader is gone.
    pub(crate) async fn send(&self, msg: Bytes) -> bool {
        let mut msg = Some(msg);
        poll_fn(|cx| {
            let mut q = self.0.lock();
            if q.reader_gone {
                return Poll::Ready(false);
            }
            if q.bytes >= QUEUE_BYTES {
                park(&mut q.room, cx);
                return Poll::Pending;
            }
            if let Some(m) = msg.take() {
                q.bytes += m.len() + ITEM_COST;
                q.items.push_back(m);
            }
            let reader = q.reader.take();
            drop(q);
            wake(reader);
            Poll::Ready(true)
        })
        .await
    }

    /// Ends the queue after what it holds; only the first end counts. It takes no
    /// room.
    pub(crate) fn end(&self, status: Result<(), RpcError>) {
        let mut q = self.0.lock();
        if !q.ended {
            q.ended = true;
            q.end = Some(status);
        }
        let reader = q.reader.take();
        drop(q);
        wake(reader);
    }

    /// Waits until the reader is gone (or closed its end).
    pub(crate) async fn closed(&self) {
        poll_fn(|cx| {
            let mut q = self.0.lock();
            if q.reader_gone {
                return Poll::Ready(());
            }
            park(&mut q.gone, cx);
            Poll::Pending
        })
        .await
    }
}

impl Drop for MsgTx {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.pump_gone = true;
        let reader = q.reader.take();
        drop(q);
        wake(reader);
    }
}

impl MsgRx {
    /// The next message, then the end once; `None` if the pump went away without
    /// one.
    pub(crate) fn poll_recv(&mut self, cx: &Context<'_>) -> Poll<Option<Item>> {
        if let Some(m) = self.batch.pop_front() {
            return Poll::Ready(Some(Item::Message(m)));
        }
        let mut q = self.shared.lock();
        if !q.items.is_empty() {
            std::mem::swap(&mut q.items, &mut self.batch);
            q.bytes = 0;
            let room = q.room.take();
            drop(q);
            wake(room);
            return Poll::Ready(self.batch.pop_front().map(Item::Message));
        }
        if let Some(status) = q.end.take() {
            return Poll::Ready(Some(Item::End(status)));
        }
        if q.pump_gone {
            return Poll::Ready(None);
        }
        park(&mut q.reader, cx);
        Poll::Pending
    }

    /// Stops reading: the pump sees the reader gone, what is queued is dropped.
    pub(crate) fn close(&mut self) {
        self.batch.clear();
        let mut q = self.shared.lock();
        q.reader_gone = true;
        q.items.clear();
        q.bytes = 0;
        let (room, gone) = (q.room.take(), q.gone.take());
        drop(q);
        wake(room);
        wake(gone);
    }
}

impl Drop for MsgRx {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::BytesCodec;
    use crate::rpc::stream_frame::{StreamFrame, StreamFrameCodec};
    use futures::FutureExt;
    use tokio_util::codec::Decoder;

    fn frames(mut buf: BytesMut) -> Vec<StreamFrame> {
        let mut codec = StreamFrameCodec::new(1 << 20, "1.1.1".parse().unwrap());
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn msg(s: &'static str) -> StreamFrame {
        StreamFrame::Message(Bytes::from_static(s.as_bytes()))
    }

    async fn send(tx: &FrameTx, m: &'static [u8]) -> Result<bool, RpcError> {
        tx.send::<Bytes, BytesCodec>(Bytes::from_static(m)).await
    }

    #[tokio::test]
    async fn frames_go_out_in_one_batch_then_the_end() {
        let mut first = BytesMut::new();
        stream_frame::put_message(&mut first, b"open");
        let (tx, mut rx) = frame_queue(first, 8);
        assert!(send(&tx, b"a").await.unwrap());
        assert!(send(&tx, b"b").await.unwrap());
        let err = send(&tx, b"too long!").await.unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        let mut dst = BytesMut::new();
        assert!(!rx.take(&mut dst).await);
        assert_eq!(frames(dst.split()), vec![msg("open"), msg("a"), msg("b")]);
        // Nothing queued: the pump waits.
        assert!(rx.take(&mut dst).now_or_never().is_none());
        let tx2 = tx.clone();
        drop(tx);
        assert!(
            rx.take(&mut dst).now_or_never().is_none(),
            "a sender is left"
        );
        drop(tx2);
        assert!(rx.take(&mut dst).await);
        assert_eq!(frames(dst.split()), vec![StreamFrame::End(Ok(()))]);
    }

    #[tokio::test]
    async fn a_full_frame_queue_waits_and_a_gone_pump_fails_sends() {
        let (tx, mut rx) = frame_queue(BytesMut::new(), QUEUE_BYTES);
        let big = Bytes::from(vec![1u8; QUEUE_BYTES]);
        assert!(tx.send::<Bytes, BytesCodec>(big).await.unwrap());
        let mut next = Box::pin(send(&tx, b"x"));
        assert!((&mut next).now_or_never().is_none(), "no room");
        let mut dst = BytesMut::new();
        assert!(!rx.take(&mut dst).await);
        assert!(next.await.unwrap(), "room again");
        tx.end(Err(RpcError::Cancelled));
        tx.end(Ok(()));
        dst.clear();
        assert!(rx.take(&mut dst).await);
        assert_eq!(
            frames(dst.split()),
            vec![msg("x"), StreamFrame::End(Err(RpcError::Cancelled))]
        );
        drop(rx);
        assert!(!send(&tx, b"y").await.unwrap());
    }

    /// A handler that returned left a task sending: the call's status is decided,
    /// so that send fails instead of slipping a message in before the `end`.
    #[tokio::test]
    async fn a_send_after_the_end_fails() {
        let (tx, mut rx) = frame_queue(BytesMut::new(), 64);
        let left = tx.clone();
        assert!(send(&left, b"a").await.unwrap());
        tx.end(Err(RpcError::Cancelled));
        assert!(!send(&left, b"late").await.unwrap());
        let mut dst = BytesMut::new();
        assert!(rx.take(&mut dst).await);
        assert_eq!(
            frames(dst.split()),
            vec![msg("a"), StreamFrame::End(Err(RpcError::Cancelled))]
        );
    }

    /// A huge message, refused or sent, must not keep its memory for the rest of
    /// the call: a call's buffers stay within what a normal batch needs.
    #[tokio::test]
    async fn a_huge_message_does_not_keep_its_memory() {
        let huge = || Bytes::from(vec![0u8; 8 * KEEP_CAPACITY]);
        let (tx, mut rx) = frame_queue(BytesMut::new(), 64);
        assert!(send(&tx, b"a").await.unwrap());
        let err = tx.send::<Bytes, BytesCodec>(huge()).await.unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(tx.0.lock().buf.capacity() <= KEEP_CAPACITY, "refused");
        let mut dst = BytesMut::new();
        assert!(!rx.take(&mut dst).await);
        assert_eq!(frames(dst.split()), vec![msg("a")]);

        let (tx, mut rx) = frame_queue(BytesMut::new(), usize::MAX);
        assert!(tx.send::<Bytes, BytesCodec>(huge()).await.unwrap());
        let mut dst = BytesMut::new();
        assert!(!rx.take(&mut dst).await);
        dst.clear();
        assert!(send(&tx, b"b").await.unwrap());
        assert!(!rx.take(&mut dst).await);
        // The buffer that carried the huge message came back to the queue.
        assert!(tx.0.lock().buf.capacity() <= KEEP_CAPACITY, "sent");
    }

    /// A peer sending empty messages fills the queue too: each costs its handle.
    #[tokio::test]
    async fn empty_messages_fill_the_queue() {
        let (tx, _rx) = msg_queue();
        let mut queued = 0usize;
        while tx.send(Bytes::new()).now_or_never() == Some(true) {
            queued += 1;
            assert!(queued <= QUEUE_BYTES, "the queue never filled");
        }
        let held = queued * std::mem::size_of::<Bytes>();
        assert!(held <= QUEUE_BYTES + ITEM_COST, "{queued} messages");
    }

    fn recv(rx: &mut MsgRx) -> Option<Option<Item>> {
        poll_fn(|cx| rx.poll_recv(cx)).now_or_never()
    }

    /// An end after the first was taken (the pump's own after the peer's, a
    /// sender dropped after the server's end) is not delivered a second time.
    #[tokio::test]
    async fn an_end_after_the_first_was_taken_is_not_delivered() {
        let (tx, mut rx) = msg_queue();
        tx.end(Ok(()));
        assert!(matches!(recv(&mut rx), Some(Some(Item::End(Ok(()))))));
        tx.end(Err(RpcError::Timeout));
        assert!(recv(&mut rx).is_none(), "one end only");

        let (tx, mut rx) = frame_queue(BytesMut::new(), 64);
        let left = tx.clone();
        tx.end(Err(RpcError::Cancelled));
        let mut dst = BytesMut::new();
        assert!(rx.take(&mut dst).await);
        drop((tx, left));
        dst.clear();
        assert!(rx.take(&mut dst).now_or_never().is_none(), "one end only");
    }

    #[tokio::test]
    async fn messages_then_one_end_and_room_frees_per_batch() {
        let (tx, mut rx) = msg_queue();
        assert!(recv(&mut rx).is_none(), "empty: the reader waits");
        assert!(tx.send(Bytes::from(vec![0u8; QUEUE_BYTES])).await);
        let mut blocked = Box::pin(tx.send(Bytes::from_static(b"b")));
        assert!((&mut blocked).now_or_never().is_none(), "no room");
        assert!(matches!(recv(&mut rx), Some(Some(Item::Message(m))) if m.len() == QUEUE_BYTES));
        assert!(blocked.await, "the batch taken frees the room");
        tx.end(Ok(()));
        tx.end(Err(RpcError::Cancelled));
        assert!(matches!(recv(&mut rx), Some(Some(Item::Message(m))) if &m[..] == b"b"));
        assert!(matches!(recv(&mut rx), Some(Some(Item::End(Ok(()))))));
        assert!(recv(&mut rx).is_none(), "one end only");
        drop(tx);
        assert!(matches!(recv(&mut rx), Some(None)));
    }

    #[tokio::test]
    async fn a_closed_reader_is_seen_by_the_pump() {
        let (tx, mut rx) = msg_queue();
        assert!(tx.closed().now_or_never().is_none());
        rx.close();
        tx.closed().await;
        assert!(!tx.send(Bytes::from_static(b"late")).await);
    }
}
