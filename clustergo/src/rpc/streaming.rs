//! Streaming RPC calls: server-streaming, client-streaming and bidirectional,
//! each carried by one node stream (`stream.rs`, kind byte `RPC_STREAM`), framed by
//! `stream_frame.rs`.
//!
//! Each side runs one task (`pump`) that owns the node stream and bridges it to the
//! typed halves the user holds: a [`Streaming`] of incoming messages and a
//! [`StreamSender`] of outgoing ones. Both halves are queues bounded in bytes
//! ([`QUEUE_BYTES`], `stream_queue.rs`, each with a batch taken out beside it);
//! with the stream's yamux window that bounds a call's memory,
//! and a reader that stops reading stops the pump, which stops granting window,
//! which blocks the other side's pump, whose full queue blocks its producer.
//!
//! How a call ends — exactly once, recorded in its [`Outcome`]:
//! - the server's `end` frame carries the handler's result (`Ok`, or its
//!   `RpcError`, with the unary codes); the caller's stream yields its messages,
//!   then the error or the end;
//! - the caller's deadline (sent as the unary timeout is) ends it on both sides
//!   with [`RpcError::Timeout`];
//! - dropping the caller's [`Streaming`] (or the response future of a
//!   client-streaming call) cancels: the node stream is reset, the server's
//!   handler is dropped. The server's end going away (handler panic, node killed,
//!   session lost) reads on the caller as [`RpcError::Disconnected`];
//! - a stopping (or leaving) server drains its calls with its unary requests
//!   ([`ServedCalls`]); those still running after `drain_timeout` end
//!   [`RpcError::ServiceUnavailable`] ("node stopped");
//! - dropping a [`StreamSender`] ends that direction cleanly.
//!
//! Interceptors see a streaming call as one call: `before_send`/`before_dispatch`
//! when it opens, `after_reply` once when it ends.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::stream_frame::{self, StreamFrame, StreamFrameCodec, StreamFrameError};
pub use super::stream_queue::QUEUE_BYTES;
use super::stream_queue::{FrameRx, FrameTx, Item, MsgRx, MsgTx, frame_queue, msg_queue};
use super::wire::RequestView;
use super::{Codec, ProstCodec, RpcContext, RpcError, client_done, client_meta, expiry, trace};
use crate::addr::LogicAddr;
use crate::node::{Inflight, Node, NodeInner};
use crate::stream::{Stream, StreamError};

/// How a call ended: set once, by whichever ending came first.
type Outcome = Arc<OnceLock<Result<(), RpcError>>>;

/// Incoming messages of a streaming call (`futures::Stream` of
/// `Result<T, RpcError>`): the messages, then the end (`None`) or one error. It ends
/// exactly once and stays ended. On the caller, dropping it cancels the call.
pub struct Streaming<T, C = ProstCodec> {
    rx: MsgRx,
    peer: LogicAddr,
    ended: bool,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<T, C> std::fmt::Debug for Streaming<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("peer", &self.peer)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<T, C: Codec<T>> Streaming<T, C> {
    fn new(rx: MsgRx, peer: LogicAddr) -> Self {
        Self {
            rx,
            peer,
            ended: false,
            _types: PhantomData,
        }
    }

    /// The node at the other end.
    pub fn peer(&self) -> LogicAddr {
        self.peer
    }

    /// The next message; `Ok(None)` at the end.
    pub async fn message(&mut self) -> Result<Option<T>, RpcError> {
        self.next().await.transpose()
    }

    /// The one message this stream must carry (the request of a server-streaming
    /// call, the response of a client-streaming one).
    pub async fn single(mut self) -> Result<T, RpcError> {
        let first = self.message().await?;
        let first =
            first.ok_or_else(|| RpcError::Codec("stream ended without a message".into()))?;
        match self.message().await? {
            None => Ok(first),
            Some(_) => Err(RpcError::Codec(
                "stream carried more than one message".into(),
            )),
        }
    }
}

impl<T, C: Codec<T>> futures::Stream for Streaming<T, C> {
    type Item = Result<T, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(self.rx.poll_recv(cx));
        let out = match item {
            Some(Item::Message(b)) => match C::decode(b) {
                Ok(m) => return Poll::Ready(Some(Ok(m))),
                Err(e) => Some(Err(RpcError::Codec(format!("cannot decode message: {e}")))),
            },
            Some(Item::End(Ok(()))) => None,
            Some(Item::End(Err(e))) => Some(Err(e)),
            // The pump is gone without an end: only a panic does that.
            None => Some(Err(RpcError::Disconnected(self.peer))),
        };
        self.ended = true;
        // Closing the queue tells the pump nobody reads any more.
        self.rx.close();
        Poll::Ready(out)
    }
}

/// Outgoing messages of a streaming call. [`send`](Self::send) waits while the
/// other side is not reading (flow control); dropping the sender ends this
/// direction cleanly.
pub struct StreamSender<T, C = ProstCodec> {
    tx: FrameTx,
    outcome: Outcome,
    _types: PhantomData<fn(T) -> C>,
}

impl<T, C> std::fmt::Debug for StreamSender<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSender").finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> StreamSender<T, C> {
    /// Sends one message, waiting for room. Fails once the call has ended, with
    /// the call's error (or [`RpcError::Cancelled`] if it ended otherwise).
    pub async fn send(&mut self, msg: T) -> Result<(), RpcError> {
        // Encoded straight into the pump's next write.
        if self.tx.send::<T, C>(msg).await? {
            Ok(())
        } else {
            Err(self.ended())
        }
    }

    /// Why sending fails once the call has ended.
    fn ended(&self) -> RpcError {
        match self.outcome.get() {
            Some(Err(e)) => e.clone(),
            _ => RpcError::Cancelled,
        }
    }
}

/// The response of a client-streaming call: a future of the one message the
/// server answers with. Dropping it cancels the call.
pub struct StreamResponse<T, C = ProstCodec> {
    fut: Pin<Box<dyn Future<Output = Result<T, RpcError>> + Send>>,
    _types: PhantomData<fn() -> C>,
}

impl<T, C> std::fmt::Debug for StreamResponse<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResponse").finish_non_exhaustive()
    }
}

impl<T, C> Future for StreamResponse<T, C> {
    type Output = Result<T, RpcError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// Which end of the call a pump serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Server,
}

/// How reading a call's stream ended.
#[derive(Debug)]
enum ReadEnd {
    /// The peer's `end` frame (the caller's only; the server keeps reading).
    Ended(Result<(), RpcError>),
    /// The stream broke: reset, lost, malformed or oversize.
    Broken(RpcError),
    /// Our reader dropped its [`Streaming`] (the caller's only).
    Dropped,
}

/// Reads frames into `inbound` while it has room. The caller stops at the
/// server's `end`; the server reads on after the caller's, to notice a reset.
async fn read_loop<R: AsyncRead + Unpin>(
    frames: &mut FramedRead<R, StreamFrameCodec>,
    inbound: &MsgTx,
    side: Side,
    peer: LogicAddr,
) -> ReadEnd {
    // The server's handler may drop its `Streaming` early; it stops being fed.
    let mut feeding = true;
    loop {
        let frame = match frames.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(StreamFrameError::Malformed(why))) => {
                return ReadEnd::Broken(RpcError::Codec(why));
            }
            Some(Err(StreamFrameError::Io(_))) => {
                return ReadEnd::Broken(RpcError::Disconnected(peer));
            }
            None if side == Side::Server => {
                // The caller shut down after its end: nothing more will come.
                return std::future::pending().await;
            }
            None => return ReadEnd::Broken(RpcError::Disconnected(peer)),
        };
        match frame {
            StreamFrame::Message(msg) if feeding => {
                if !inbound.send(msg).await {
                    if side == Side::Caller {
                        return ReadEnd::Dropped;
                    }
                    feeding = false;
                }
            }
            StreamFrame::Message(_) => {}
            // After the first `end`, one the peer repeats is skipped here (the
            // queue would keep only the first anyway).
            StreamFrame::End(_) if !feeding => {}
            StreamFrame::End(status) => {
                inbound.end(status.clone());
                if side == Side::Caller {
                    return ReadEnd::Ended(status);
                }
                feeding = false;
            }
            StreamFrame::Open(_) => {
                return ReadEnd::Broken(RpcError::Codec("second open frame".into()));
            }
        }
    }
}

/// Writes what `outbound` queues, everything queued in one write. Returns once it
/// wrote an `end` — the caller's own when its sender is dropped.
async fn write_loop<W: AsyncWrite + Unpin>(wr: &mut W, outbound: &mut FrameRx) -> io::Result<()> {
    let mut buf = BytesMut::new();
    loop {
        let ended = outbound.take(&mut buf).await;
        wr.write_all(&buf).await?;
        buf.clear();
        if ended {
            return wr.flush().await;
        }
    }
}

/// The error a failed open turns into.
fn open_error(e: StreamError, to: LogicAddr) -> RpcError {
    match e {
        StreamError::NotRunning => RpcError::NotStarted,
        StreamError::UnknownPeer(p) => RpcError::UnknownPeer(p),
        StreamError::NotDirect(p) => RpcError::NotRelayed(p),
        StreamError::SelfStream => {
            RpcError::Other("streaming calls to the local node are not supported".into())
        }
        StreamError::Connect { peer, .. } => RpcError::Unreachable(peer),
        StreamError::Session { .. } => RpcError::Disconnected(to),
        StreamError::TooManyPending { .. } => RpcError::Busy,
    }
}

/// Opens a streaming call: both typed halves of the caller's side. The lower-level
/// door under the three shapes; `timeout: None` means no deadline.
pub async fn call_bidi<C, Req, Resp>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    timeout: Option<Duration>,
) -> Result<(StreamSender<Req, C>, Streaming<Resp, C>), RpcError>
where
    C: Codec<Req> + Codec<Resp>,
{
    let inner = &node.inner;
    let started = Instant::now();
    let deadline = timeout.map(|t| super::deadline_after(started, t));
    let span = trace::call_span(to, method, false);
    let tctx = trace::begin(&span, None);
    let opened = open_call(node, to, method, deadline, tctx)
        .instrument(span.clone())
        .await;
    let (stream, open) = match opened {
        Ok(s) => s,
        Err(e) => {
            let result = Err::<(), _>(e.clone());
            trace::end(&span, super::outcome(&result), started);
            client_done(inner, to, method, &result, started);
            return Err(e);
        }
    };
    let outcome: Outcome = Arc::default();
    let (in_tx, in_rx) = msg_queue();
    // The open frame goes out with the first messages.
    let (out_tx, out_rx) = frame_queue(open, inner.config().max_frame);
    let pump = CallerPump {
        node: inner.clone(),
        to,
        method: method.into(),
        started,
        deadline,
        outcome: outcome.clone(),
        span: span.clone(),
    };
    inner.spawn_detached(pump.run(stream, in_tx, out_rx).instrument(span));
    let sender = StreamSender {
        tx: out_tx,
        outcome,
        _types: PhantomData,
    };
    Ok((sender, Streaming::new(in_rx, to)))
}

/// Opens the node stream of a call and encodes its open frame.
async fn open_call(
    node: &Node,
    to: LogicAddr,
    method: &str,
    deadline: Option<Instant>,
    tctx: Option<super::TraceContext>,
) -> Result<(Stream, BytesMut), RpcError> {
    let inner = &node.inner;
    inner.running().ok_or(RpcError::NotStarted)?;
    if !matches!(inner.config().dialect, crate::node::Dialect::Native) {
        return Err(RpcError::Other(
            "streaming calls are not part of the Go seed's dialect".into(),
        ));
    }
    let meta = client_meta(inner, to, method, tctx)?;
    let timeout_ms = deadline.map_or(0, |d| {
        super::timeout_ms(d.saturating_duration_since(Instant::now()))
    });
    let head = super::request_head(0, false, timeout_ms, method, &meta)?;
    let mut open = BytesMut::new();
    stream_frame::put_open(&mut open, &head);
    let opening = node.open_rpc_stream(to);
    let stream = match deadline {
        Some(d) => tokio::time::timeout_at(d, opening)
            .await
            .map_err(|_| RpcError::Timeout)?,
        None => opening.await,
    };
    Ok((stream.map_err(|e| open_error(e, to))?, open))
}

/// Calls a server-streaming method: sends `req`, returns the responses.
pub async fn call_server_stream<C, Req, Resp>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    req: Req,
    timeout: Option<Duration>,
) -> Result<Streaming<Resp, C>, RpcError>
where
    C: Codec<Req> + Codec<Resp>,
{
    let (tx, rx) = call_bidi::<C, Req, Resp>(node, to, method, timeout).await?;
    // The queue holds only the open frame: this waits for nothing. A request the
    // codec or the frame limit refuses fails here (dropping `rx` cancels the
    // call), not at the server as a call without its request; a call that
    // already ended shows in `rx`.
    tx.tx.send::<Req, C>(req).await?;
    Ok(rx)
}

/// Calls a client-streaming method: returns the sender of requests and the future
/// of the response (drop the sender to end the requests).
pub async fn call_client_stream<C, Req, Resp>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    timeout: Option<Duration>,
) -> Result<(StreamSender<Req, C>, StreamResponse<Resp, C>), RpcError>
where
    C: Codec<Req> + Codec<Resp> + 'static,
    Resp: Send + 'static,
{
    let (tx, rx) = call_bidi::<C, Req, Resp>(node, to, method, timeout).await?;
    let resp = StreamResponse {
        fut: Box::pin(rx.single()),
        _types: PhantomData,
    };
    Ok((tx, resp))
}

/// The caller's pump and what it reports when the call ends.
struct CallerPump {
    node: Arc<NodeInner>,
    to: LogicAddr,
    method: Box<str>,
    started: Instant,
    deadline: Option<Instant>,
    outcome: Outcome,
    span: tracing::Span,
}

impl CallerPump {
    async fn run(self, stream: Stream, in_tx: MsgTx, mut out_rx: FrameRx) {
        let max = self.node.config().max_frame;
        let (rd, mut wr) = tokio::io::split(stream);
        let mut frames = FramedRead::new(rd, StreamFrameCodec::new(max, self.to));
        let status = {
            let write = async {
                // A write error is a reset: the read side reports why.
                let _ = write_loop(&mut wr, &mut out_rx).await;
                std::future::pending::<std::convert::Infallible>().await
            };
            let read = read_loop(&mut frames, &in_tx, Side::Caller, self.to);
            // `write` never completes: after its end frame (or a failed write,
            // which the read side reports) it waits with the rest.
            tokio::select! {
                end = read => match end {
                    ReadEnd::Ended(status) => Some(status),
                    ReadEnd::Broken(e) => {
                        in_tx.end(Err(e.clone()));
                        Some(Err(e))
                    }
                    ReadEnd::Dropped => None,
                },
                never = write => match never {},
                () = in_tx.closed() => None,
                // The node stopped under the call, as pending unary calls do.
                () = self.node.links().cancelled() => {
                    in_tx.end(Err(stopped()));
                    Some(Err(stopped()))
                }
                () = expiry(self.deadline) => {
                    in_tx.end(Err(RpcError::Timeout));
                    Some(Err(RpcError::Timeout))
                }
            }
        };
        let status = status.unwrap_or(Err(RpcError::Cancelled));
        // Set before the sender's queue closes, so a failing `send` reports it.
        let _ = self.outcome.set(status.clone());
        drop(out_rx);
        if status.is_ok() {
            // A clean end both ways: close without a reset.
            let _ = wr.shutdown().await;
        }
        // Otherwise the halves drop unshut: the stream is reset, the server's
        // handler dropped.
        trace::end(&self.span, super::outcome(&status), self.started);
        client_done(&self.node, self.to, &self.method, &status, self.started);
    }
}

/// A streaming method as the server stores it: incoming and outgoing raw
/// messages, the handler's result becoming the call's status.
pub(crate) type RawStreamHandler = Arc<
    dyn Fn(
            RpcContext,
            Streaming<Bytes, super::BytesCodec>,
            StreamSender<Bytes, super::BytesCodec>,
        ) -> Pin<Box<dyn Future<Output = Result<(), RpcError>> + Send>>
        + Send
        + Sync,
>;

/// Registers a bidirectional streaming method: `handler` gets the requests and a
/// sender of responses; its result is the call's status.
pub fn register_bidi<C, Req, Resp, F, Fut>(node: &Node, method: &str, handler: F)
where
    C: Codec<Req> + Codec<Resp> + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(RpcContext, Streaming<Req, C>, StreamSender<Resp, C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
{
    let raw: RawStreamHandler =
        Arc::new(move |ctx, rx, tx| Box::pin(handler(ctx, retype(rx), retype_sender(tx))));
    node.inner.rpc_server().register_stream(method, raw);
}

/// Registers a server-streaming method: `handler` gets the one request and a
/// sender of responses.
pub fn register_server_stream<C, Req, Resp, F, Fut>(node: &Node, method: &str, handler: F)
where
    C: Codec<Req> + Codec<Resp> + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(RpcContext, Req, StreamSender<Resp, C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RpcError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    register_bidi::<C, Req, Resp, _, _>(node, method, move |ctx, rx, tx| {
        let handler = handler.clone();
        async move {
            let req = rx.single().await?;
            handler(ctx, req, tx).await
        }
    });
}

/// Registers a client-streaming method: `handler` gets the requests and answers
/// with one response.
pub fn register_client_stream<C, Req, Resp, F, Fut>(node: &Node, method: &str, handler: F)
where
    C: Codec<Req> + Codec<Resp> + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(RpcContext, Streaming<Req, C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    register_bidi::<C, Req, Resp, _, _>(node, method, move |ctx, rx, mut tx| {
        let handler = handler.clone();
        async move {
            let resp = handler(ctx, rx).await?;
            tx.send(resp).await
        }
    });
}

fn retype<T, C>(s: Streaming<Bytes, super::BytesCodec>) -> Streaming<T, C> {
    Streaming {
        rx: s.rx,
        peer: s.peer,
        ended: s.ended,
        _types: PhantomData,
    }
}

fn retype_sender<T, C>(s: StreamSender<Bytes, super::BytesCodec>) -> StreamSender<T, C> {
    StreamSender {
        tx: s.tx,
        outcome: s.outcome,
        _types: PhantomData,
    }
}

/// The streaming calls a node serves: stop drains them as it drains requests
/// (`node/shutdown.rs`), then ends those still running.
#[derive(Debug, Default)]
pub(crate) struct ServedCalls {
    live: Inflight,
    /// Cancelled when the drain is over: handlers still running are dropped and
    /// their calls end `ServiceUnavailable`.
    cut: CancellationToken,
}

/// One served call, counted until dropped.
#[derive(Debug)]
struct Served<'a>(&'a ServedCalls);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.live.leave();
    }
}

impl ServedCalls {
    fn enter(&self) -> Served<'_> {
        self.live.enter();
        Served(self)
    }

    /// Returns when no call is being served.
    pub(crate) async fn wait_idle(&self) {
        self.live.wait_idle().await;
    }

    /// Ends the calls still served and gives their `end` frames up to `bound` to
    /// be written.
    pub(crate) async fn end_all(&self, bound: Duration) {
        self.cut.cancel();
        if tokio::time::timeout(bound, self.wait_idle()).await.is_err() {
            tracing::warn!("stop: streaming calls still ending after the write stall bound");
        }
    }
}

/// How a streaming call ends when its node stops under it (served past the
/// drain, or waiting as a caller): what pending unary calls and sends get.
fn stopped() -> RpcError {
    crate::SendError::Stopped.into()
}

/// Serves one inbound streaming call (its kind byte already read).
pub(crate) async fn serve(node: Arc<NodeInner>, stream: Stream) {
    let peer = stream.peer();
    let max = node.config().max_frame;
    let (rd, mut wr) = tokio::io::split(stream);
    let mut frames = FramedRead::new(rd, StreamFrameCodec::new(max, peer));
    let wait = node.config().handshake_timeout;
    let open = match tokio::time::timeout(wait, frames.next()).await {
        Ok(Some(Ok(StreamFrame::Open(open)))) => open,
        _ => {
            tracing::debug!(%peer, "streaming call without an open frame; resetting it");
            return;
        }
    };
    let head = match RequestView::parse(&open) {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "dropping malformed streaming call");
            return;
        }
    };
    // Counted before the stopping check, so a drain that began cannot miss it.
    let _served = node.streams().calls.enter();
    let span = trace::serve_span(peer, head.method);
    let started = Instant::now();
    let tctx = trace::started(&span)
        .and_then(|_| trace::begin(&span, super::TraceContext::from_meta(&head.meta)));
    let accepted = node.rpc_server().accept_stream(&node, peer, &head, tctx);
    let (ctx, handler, observed) = match accepted {
        Ok(a) => a,
        Err(e) => {
            let mut buf = BytesMut::new();
            let status = Err(e);
            stream_frame::put_end(&mut buf, &status, max);
            if wr.write_all(&buf).await.is_ok() {
                let _ = wr.shutdown().await;
            }
            trace::end(&span, super::outcome(&status), started);
            return;
        }
    };
    let method = ctx.method().to_owned();
    let run = ServerCall {
        node: &node,
        peer,
        deadline: ctx.deadline(),
    };
    let status = run
        .run(ctx, handler, &mut frames, &mut wr)
        .instrument(span.clone())
        .await;
    let code = super::outcome(&status);
    trace::end(&span, code, started);
    super::server::observed_end(observed, peer, &method, code);
}

/// One call being served.
struct ServerCall<'a> {
    node: &'a Arc<NodeInner>,
    peer: LogicAddr,
    deadline: Option<Instant>,
}

impl ServerCall<'_> {
    /// Runs the handler and the pump; returns the call's status.
    async fn run<R, W>(
        self,
        ctx: RpcContext,
        handler: RawStreamHandler,
        frames: &mut FramedRead<R, StreamFrameCodec>,
        wr: &mut W,
    ) -> Result<(), RpcError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let outcome: Outcome = Arc::default();
        let (in_tx, in_rx) = msg_queue();
        let (out_tx, mut out_rx) = frame_queue(BytesMut::new(), self.node.config().max_frame);
        let sender = StreamSender {
            tx: out_tx.clone(),
            outcome: outcome.clone(),
            _types: PhantomData,
        };
        let work =
            std::panic::AssertUnwindSafe(handler(ctx, Streaming::new(in_rx, self.peer), sender))
                .catch_unwind();
        let ended = {
            let mut read = pin!(read_loop(frames, &in_tx, Side::Server, self.peer));
            let mut write = pin!(write_loop(&mut *wr, &mut out_rx));
            let status = tokio::select! {
                r = work => match r {
                    Ok(status) => status,
                    Err(_) => {
                        tracing::error!(peer = %self.peer, "streaming rpc handler panicked");
                        Err(RpcError::ServiceUnavailable("method panicked".into()))
                    }
                },
                () = expiry(self.deadline) => {
                    self.node.counters().handler_cancelled();
                    Err(RpcError::Timeout)
                }
                () = self.node.streams().calls.cut.cancelled() => {
                    self.node.counters().handler_cancelled();
                    Err(stopped())
                }
                // The caller cancelled, or its node or session went away: the
                // handler is dropped, nothing more can reach the caller.
                _ = &mut read => return self.cancelled(&outcome),
                _ = &mut write => return self.cancelled(&outcome),
            };
            let _ = outcome.set(status.clone());
            out_tx.end(status.clone());
            // The end goes out after what the handler queued, within the deadline.
            // `biased`, the write first: when the deadline itself ended the call it
            // has passed already, and the end frame (`Timeout`) must still get its
            // one try — losing that draw would reset the stream, and the caller
            // would read `Disconnected` instead of `Timeout`.
            tokio::select! {
                biased;
                w = &mut write => match w {
                    Ok(()) => Ok(status),
                    Err(_) => Err(RpcError::Cancelled),
                },
                _ = &mut read => Err(RpcError::Cancelled),
                () = expiry(self.deadline) => Err(RpcError::Timeout),
            }
        };
        match ended {
            Ok(status) => {
                let _ = wr.shutdown().await;
                status
            }
            Err(e) => Err(e),
        }
    }

    /// The caller went away while the handler ran.
    fn cancelled(&self, outcome: &Outcome) -> Result<(), RpcError> {
        self.node.counters().handler_cancelled();
        let _ = outcome.set(Err(RpcError::Cancelled));
        Err(RpcError::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that repeats its `end` frame must not grow the server's inbound
    /// queue: ends take no room, so only the first may be queued.
    #[tokio::test(start_paused = true)]
    async fn repeated_end_frames_queue_one_end() {
        let peer: LogicAddr = "1.1.1".parse().unwrap();
        let mut wire = BytesMut::new();
        stream_frame::put_message(&mut wire, b"m");
        for _ in 0..1000 {
            stream_frame::put_end(&mut wire, &Ok(()), 64);
        }
        stream_frame::put_message(&mut wire, b"late");
        let mut frames = FramedRead::new(&wire[..], StreamFrameCodec::new(64, peer));
        let (in_tx, mut in_rx) = msg_queue();
        let read = read_loop(&mut frames, &in_tx, Side::Server, peer);
        // The server keeps reading after the caller's end: it never returns here.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), read)
                .await
                .is_err()
        );
        let mut got = Vec::new();
        while let Some(Some(item)) = std::future::poll_fn(|cx| in_rx.poll_recv(cx)).now_or_never() {
            got.push(item);
        }
        assert_eq!(got.len(), 2, "one message and one end");
        assert!(matches!(&got[0], Item::Message(m) if &m[..] == b"m"));
        assert!(matches!(&got[1], Item::End(Ok(()))));
    }
}
