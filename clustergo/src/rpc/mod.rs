//! Remote procedure calls between nodes.
//!
//! A call ends exactly once: with the reply, or with an [`RpcError`] (remote error,
//! timeout, cancel, lost link, unknown peer, busy). Timeouts, awaited or callback,
//! are enforced by the node's sweeper, not a timer per call: a call times out up to
//! 5 ms after its deadline. The functions here are generic
//! over a [`Codec`]; [`crate::Node`]'s `call`/`register_rpc` methods are their
//! prost-typed shorthands, and generated service modules call them.
//!
//! Layout: [`wire`] (request and response frames: the only code that knows their
//! layout), `client` (pending calls), `server` (method table, replyers), `codec`
//! (argument encodings, [`CodecError`]), `error`, `streaming` (streaming calls:
//! [`Streaming`], [`StreamSender`]) and `stream_frame` (their frames).

pub(crate) mod client;
mod codec;
mod error;
mod handler;
mod intercept;
mod meta;
pub(crate) mod server;
pub(crate) mod stream_frame;
mod stream_queue;
pub(crate) mod streaming;
pub mod trace;
pub mod wire;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::Instrument;

pub use client::CallHandle;
use client::Completion;
pub use codec::{BytesCodec, Codec, CodecError, JsonCodec, ProstCodec};
pub use error::{ErrorCode, RpcError};
pub(crate) use handler::LinkCancels;
pub use handler::register_async;
pub(crate) use intercept::Interceptors;
pub use intercept::{ClientInterceptor, ServerInterceptor};
pub use server::{RawReplyer, RpcContext};
pub use streaming::{
    QUEUE_BYTES, StreamResponse, StreamSender, Streaming, call_bidi, call_client_stream,
    call_server_stream, register_bidi, register_client_stream, register_server_stream,
};
pub use trace::TraceContext;

use crate::addr::LogicAddr;
use crate::clock;
use crate::node::{Node, NodeInner, Route};

/// Answers one call with a `Resp`. May be moved to another task and used later;
/// dropping it unanswered replies with [`RpcError::ServiceUnavailable`].
pub struct Replyer<Resp, C = ProstCodec> {
    raw: RawReplyer,
    _types: PhantomData<fn(Resp) -> C>,
}

impl<Resp, C> std::fmt::Debug for Replyer<Resp, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.raw.fmt(f)
    }
}

impl<Resp, C: Codec<Resp>> Replyer<Resp, C> {
    /// Wraps a raw replyer.
    pub fn new(raw: RawReplyer) -> Self {
        Self {
            raw,
            _types: PhantomData,
        }
    }

    /// Replies with `resp`.
    pub fn reply(self, resp: Resp) {
        self.raw.reply_with(|buf| C::encode(&resp, buf));
    }

    /// Replies with a method error carrying `msg`.
    pub fn error(self, msg: impl Into<String>) {
        self.raw.error(RpcError::Method(msg.into()));
    }

    /// Replies with `result`: `Ok` as [`reply`](Self::reply), `Err` as
    /// [`error`](Self::error) — the Go seed's `Reply(result, err)`.
    pub fn reply_result<E: std::fmt::Display>(self, result: Result<Resp, E>) {
        match result {
            Ok(resp) => self.reply(resp),
            Err(e) => self.error(e.to_string()),
        }
    }

    /// The caller.
    pub fn peer(&self) -> LogicAddr {
        self.raw.peer()
    }

    /// The method being answered.
    pub fn method(&self) -> &str {
        self.raw.method()
    }

    /// The untyped replyer inside.
    pub fn into_raw(self) -> RawReplyer {
        self.raw
    }
}

/// Registers `method` on `node`, decoding requests and encoding replies with `C`.
/// A request that does not decode is answered with [`RpcError::Codec`].
pub fn register<C, Req, Resp, F>(node: &Node, method: &str, handler: F)
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(RpcContext, Replyer<Resp, C>, Req) + Send + Sync + 'static,
{
    node.inner.rpc_server().register(
        method,
        Arc::new(
            move |ctx, raw: RawReplyer, arg: Bytes| match <C as Codec<Req>>::decode(arg) {
                Ok(req) => handler(ctx, Replyer::new(raw), req),
                Err(e) => raw.error(RpcError::Codec(format!("cannot decode request: {e}"))),
            },
        ),
    );
}

/// Registers `method` with a handler of raw bytes.
pub fn register_raw<F>(node: &Node, method: &str, handler: F)
where
    F: Fn(RpcContext, RawReplyer, Bytes) + Send + Sync + 'static,
{
    node.inner.rpc_server().register(method, Arc::new(handler));
}

/// Encodes a whole request frame, the argument written by `C` in place.
#[allow(clippy::too_many_arguments)]
fn encode_request<C: Codec<Req>, Req>(
    form: wire::Form,
    local: LogicAddr,
    to: LogicAddr,
    seq: u64,
    one_way: bool,
    timeout_ms: u32,
    method: &str,
    meta: &[u8],
    req: &Req,
) -> Result<Bytes, RpcError> {
    let head = request_head(seq, one_way, timeout_ms, method, meta)?;
    wire::request_frame(form, to, local, &head, |buf| C::encode(req, buf))
        .map_err(|e| RpcError::Codec(format!("cannot encode request: {e}")))
}

/// A request's head; `InvalidMethod` if the name is too long for the wire.
fn request_head<'a>(
    seq: u64,
    one_way: bool,
    timeout_ms: u32,
    method: &'a str,
    meta: &'a [u8],
) -> Result<wire::RequestHead<'a>, RpcError> {
    wire::RequestHead::new(seq, one_way, timeout_ms, method, meta)
        .ok_or_else(|| RpcError::InvalidMethod(method.chars().take(64).collect()))
}

/// The longest wait a request carries (`u32` milliseconds, ~49.7 days).
const MAX_WAIT: Duration = Duration::from_millis(u32::MAX as u64);

/// When a wait of `timeout` from `start` ends. A longer timeout than a request can
/// carry is cut to [`MAX_WAIT`], so the sum cannot overflow the clock (a caller's
/// `Duration::MAX` is "wait as long as you can", not a panic).
pub(crate) fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start + timeout.min(MAX_WAIT)
}

/// How long a caller waits, as a request carries it: whole milliseconds, rounded
/// up so that the server's deadline (counted from the request's arrival) is never
/// before the caller's own — the caller times out first and reads `Timeout`, not
/// the server's reaction to its deadline. At least 1 (0 would mean no deadline).
fn timeout_ms(wait: Duration) -> u32 {
    wait.as_nanos()
        .div_ceil(1_000_000)
        .clamp(1, u32::MAX as u128) as u32
}

/// Runs the client interceptors' `before_send`; returns the metadata to send:
/// their bytes and the trace context, as [`meta`] records (in the Go seed's
/// dialect: their bytes alone, as rpcgo's userdata).
fn client_meta(
    inner: &NodeInner,
    to: LogicAddr,
    method: &str,
    trace: Option<TraceContext>,
) -> Result<Vec<u8>, RpcError> {
    let mut out = Vec::new();
    if let Some(list) = inner.client_interceptors().get() {
        let mut app = Vec::new();
        for i in list {
            i.before_send(to, method, &mut app)?;
        }
        if inner.rpc_form() != wire::Form::Native {
            return Ok(app);
        }
        if !app.is_empty() {
            meta::put(&mut out, meta::APP, &app);
        }
    }
    if let Some(ctx) = trace.filter(|_| inner.rpc_form() == wire::Form::Native) {
        meta::put(&mut out, meta::TRACE, &ctx.to_bytes());
    }
    Ok(out)
}

/// Runs the client interceptors' `after_reply`.
fn client_done<T>(
    inner: &NodeInner,
    to: LogicAddr,
    method: &str,
    result: &Result<T, RpcError>,
    started: Instant,
) {
    if let Some(list) = inner.client_interceptors().get() {
        let elapsed = started.elapsed();
        for i in list {
            i.after_reply(to, method, result.as_ref().map(|_| ()), elapsed);
        }
    }
}

/// Registers and sends a call whose ending goes to `done`; `wait` is the time left
/// until `deadline` (the caller knows it, or reads it from [`clock::now`]: one clock
/// reading fewer per call). On failure the completion is handed back unrun, with
/// the error.
#[allow(clippy::too_many_arguments)]
fn start_call<C: Codec<Req>, Req>(
    inner: &Arc<NodeInner>,
    to: LogicAddr,
    method: &str,
    req: &Req,
    deadline: Instant,
    wait: Duration,
    trace: Option<TraceContext>,
    done: Completion,
) -> Result<u64, (RpcError, Completion)> {
    let prepared = (|| {
        let run = inner.running().ok_or(RpcError::NotStarted)?;
        let route = inner.route(to)?;
        let meta = client_meta(inner, to, method, trace)?;
        Ok::<_, RpcError>((run.local, route, meta))
    })();
    let (local, route, meta) = match prepared {
        Ok(p) => p,
        Err(e) => return Err((e, done)),
    };
    let via = match &route {
        Route::Local => 0,
        Route::Peer(p) => p.id(),
    };
    let timeout_ms = timeout_ms(wait);
    let seq = match inner.rpc_client().begin(to, via, deadline, done) {
        Ok(seq) => seq,
        Err(done) => return Err((crate::SendError::Stopped.into(), done)),
    };
    let form = inner.rpc_form();
    let sent =
        encode_request::<C, Req>(form, local, to, seq, false, timeout_ms, method, &meta, req)
            // The request waits for a connection no longer than the caller waits for it.
            .and_then(|frame| Ok(inner.send_on(&route, frame, Some(deadline))?));
    match sent {
        Ok(()) => Ok(seq),
        Err(e) => match inner.rpc_client().abandon(seq) {
            Some(done) => Err((e, done)),
            // Already ended (a lost link failed it): that ending stands.
            None => Ok(seq),
        },
    }
}

/// Calls `method` on `to` and waits for the reply, at most `timeout`
/// (`None`: [`crate::Config::call_timeout`]). The node's sweeper enforces the
/// timeout, so it fires up to 5 ms late (no timer per call). Dropping the future
/// forgets the call.
pub async fn call<C, Req, Resp>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    req: &Req,
    timeout: Option<Duration>,
) -> Result<Resp, RpcError>
where
    C: Codec<Req> + Codec<Resp>,
{
    let inner = &node.inner;
    let timeout = timeout.unwrap_or(inner.config().call_timeout);
    let started = Instant::now();
    let deadline = deadline_after(started, timeout);
    let span = trace::call_span(to, method, false);
    let trace = trace::begin(&span, None);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = span.in_scope(|| {
        start_call::<C, Req>(
            inner,
            to,
            method,
            req,
            deadline,
            timeout,
            trace,
            Completion::Wait(tx),
        )
    });
    let result = match sent {
        Ok(seq) => {
            let wait = client::Waiter::new(inner.rpc_client(), seq, rx);
            // No span wrapper at all when tracing is off: the hot path stays as it was.
            let reply = if span.is_disabled() {
                wait.await
            } else {
                wait.instrument(span.clone()).await
            };
            reply.and_then(decode_reply::<C, Resp>)
        }
        Err((e, _)) => Err(e),
    };
    trace::end(&span, outcome(&result), started);
    client_done(inner, to, method, &result, started);
    result
}

/// Sleeps until `deadline`, or forever without one (a served call's end).
async fn expiry(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How a call ended, for its span.
fn outcome<T>(result: &Result<T, RpcError>) -> ErrorCode {
    result
        .as_ref()
        .map_or_else(RpcError::code, |_| ErrorCode::Ok)
}

fn decode_reply<C: Codec<Resp>, Resp>(bytes: Bytes) -> Result<Resp, RpcError> {
    C::decode(bytes).map_err(|e| RpcError::Codec(format!("cannot decode reply: {e}")))
}

/// Calls `method` on `to`; `cb` runs once with the ending, unless the returned
/// handle cancels the call first.
///
/// `cb` never runs inside this function (except when there is no runtime at all to
/// run it on: a node never started, called from outside tokio). It runs where the
/// call ends: on the
/// receive path of the link that brought the reply (like message handlers — keep
/// it short, spawn for long work), on the node's sweeper for a timeout (which fires
/// up to 5 ms after `deadline`), or where a lost link or stop is noticed.
pub fn call_with_callback<C, Req, Resp, F>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    req: &Req,
    deadline: Instant,
    cb: F,
) -> CallHandle
where
    C: Codec<Req> + Codec<Resp>,
    Resp: Send + 'static,
    F: FnOnce(Result<Resp, RpcError>) + Send + 'static,
{
    let inner = &node.inner;
    // Interceptors see the ending too; the common no-interceptor case costs nothing.
    let observe = inner
        .client_interceptors()
        .get()
        .map(|list| (list, Box::<str>::from(method), Instant::now()));
    let span = trace::call_span(to, method, false);
    let trace = trace::begin(&span, None);
    let traced = trace::started(&span).map(|at| (span.clone(), at));
    let done = Completion::Callback(Box::new(move |reply: client::Reply| {
        let result = reply.and_then(decode_reply::<C, Resp>);
        if let Some((list, method, started)) = observe {
            let elapsed = started.elapsed();
            for i in list {
                i.after_reply(to, &method, result.as_ref().map(|_| ()), elapsed);
            }
        }
        match traced {
            Some((span, at)) => {
                trace::end(&span, outcome(&result), at);
                span.in_scope(|| cb(result));
            }
            None => cb(result),
        }
    }));
    // On a reply's receive path (a callback making the next call) this is the
    // reading its link's reader lent, not another clock read.
    let wait = deadline.saturating_duration_since(clock::now());
    let sent =
        span.in_scope(|| start_call::<C, Req>(inner, to, method, req, deadline, wait, trace, done));
    match sent {
        Ok(seq) => CallHandle::new(inner.clone(), seq),
        Err((e, done)) => {
            // Ended before it started: still not inside the caller, when a runtime
            // is at hand (the node's, or the caller's for a node never started).
            let handle = inner
                .running()
                .map(|run| run.handle.clone())
                .or_else(|| tokio::runtime::Handle::try_current().ok());
            match handle {
                Some(h) => drop(h.spawn(async move { done.finish(Err(e)) })),
                None => done.finish(Err(e)),
            }
            CallHandle::finished()
        }
    }
}

/// Sends a one-way request: no reply, no error from the server.
pub fn post<C: Codec<Req>, Req>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    req: &Req,
) -> Result<(), RpcError> {
    let span = trace::call_span(to, method, true);
    let started = trace::started(&span);
    let result =
        span.in_scope(|| post_traced::<C, Req>(node, to, method, req, trace::begin(&span, None)));
    if let Some(at) = started {
        trace::end(&span, outcome(&result), at);
    }
    result
}

fn post_traced<C: Codec<Req>, Req>(
    node: &Node,
    to: LogicAddr,
    method: &str,
    req: &Req,
    trace: Option<TraceContext>,
) -> Result<(), RpcError> {
    let inner = &node.inner;
    let run = inner.running().ok_or(RpcError::NotStarted)?;
    let timeout_ms = timeout_ms(inner.config().send_timeout);
    let meta = client_meta(inner, to, method, trace)?;
    let form = inner.rpc_form();
    let frame =
        encode_request::<C, Req>(form, run.local, to, 0, true, timeout_ms, method, &meta, req)?;
    inner.send_frame(to, frame, None)?;
    Ok(())
}

impl Node {
    /// Adds a hook around this node's outgoing calls.
    pub fn add_client_interceptor(&self, interceptor: impl ClientInterceptor) {
        self.inner.client_interceptors().add(Arc::new(interceptor));
    }

    /// Adds a hook around the requests this node serves.
    pub fn add_server_interceptor(&self, interceptor: impl ServerInterceptor) {
        self.inner.server_interceptors().add(Arc::new(interceptor));
    }

    /// Registers a prost-typed method. See [`register`].
    pub fn register_rpc<Req, Resp, F>(&self, method: &str, handler: F)
    where
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Default + Send + 'static,
        F: Fn(RpcContext, Replyer<Resp>, Req) + Send + Sync + 'static,
    {
        register::<ProstCodec, Req, Resp, F>(self, method, handler);
    }

    /// Calls a prost-typed method with [`crate::Config::call_timeout`].
    pub async fn call<Req, Resp>(
        &self,
        to: LogicAddr,
        method: &str,
        req: &Req,
    ) -> Result<Resp, RpcError>
    where
        Req: prost::Message + Default,
        Resp: prost::Message + Default,
    {
        call::<ProstCodec, Req, Resp>(self, to, method, req, None).await
    }

    /// Calls a prost-typed method, waiting at most `timeout` (plus up to 5 ms: see
    /// [`call`]).
    pub async fn call_with_timeout<Req, Resp>(
        &self,
        to: LogicAddr,
        method: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError>
    where
        Req: prost::Message + Default,
        Resp: prost::Message + Default,
    {
        call::<ProstCodec, Req, Resp>(self, to, method, req, Some(timeout)).await
    }

    /// Calls a prost-typed method; `cb` gets the ending. See [`call_with_callback`].
    pub fn call_with_callback<Req, Resp, F>(
        &self,
        to: LogicAddr,
        method: &str,
        req: &Req,
        deadline: Instant,
        cb: F,
    ) -> CallHandle
    where
        Req: prost::Message + Default,
        Resp: prost::Message + Default + Send + 'static,
        F: FnOnce(Result<Resp, RpcError>) + Send + 'static,
    {
        call_with_callback::<ProstCodec, Req, Resp, F>(self, to, method, req, deadline, cb)
    }

    /// Sends a one-way prost-typed request.
    pub fn post<Req: prost::Message + Default>(
        &self,
        to: LogicAddr,
        method: &str,
        req: &Req,
    ) -> Result<(), RpcError> {
        post::<ProstCodec, Req>(self, to, method, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request never carries less time than its caller waits: rounded up to the
    /// millisecond, so the server cannot give up first (regression: a streaming
    /// call's server ended the call a fraction of a millisecond before its caller
    /// and the caller read `Disconnected` instead of `Timeout`).
    #[test]
    fn timeout_ms_rounds_up_and_never_says_no_deadline() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(1), 1),
            (Duration::from_micros(1_001), 2),
            (Duration::from_micros(199_700), 200),
            (Duration::from_millis(200), 200),
            (Duration::from_secs(5), 5_000),
            (Duration::from_secs(u64::MAX), u32::MAX),
        ];
        for (wait, want) in cases {
            assert_eq!(timeout_ms(wait), want, "{wait:?}");
        }
    }
}
