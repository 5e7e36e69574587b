//! The serving side: the method table, request dispatch, and replyers.
//!
//! Handlers run on the receive path of the calling peer, in order. A handler
//! answers through its [`RawReplyer`] (typed: [`super::Replyer`]), now or later from
//! another task. A replyer dropped unanswered replies with an error, so the caller
//! never waits for nothing; if it is dropped by a panic, the error says so.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::time::Instant;

use super::streaming::RawStreamHandler;
use super::wire::{RequestView, ResponseFrame};
use super::{CodecError, ErrorCode, RpcError, ServerInterceptor, TraceContext, meta, trace};
use crate::addr::LogicAddr;
use crate::fastmap::IntMap;
use crate::message::panic_text;
use crate::node::NodeInner;

/// A method as the server stores it: bytes in, reply through the replyer.
pub(crate) type RawHandler = Arc<dyn Fn(RpcContext, RawReplyer, Bytes) + Send + Sync>;

/// Methods by name: unary ones, and streaming ones (`streaming.rs`). Looked up on
/// every request, so hashed with the cheap
/// [`IntHasher`](crate::fastmap::IntHasher): the names are
/// registered by this process, the network only looks them up.
#[derive(Default)]
pub(crate) struct Server {
    methods: RwLock<NameMap<RawHandler>>,
    streams: RwLock<NameMap<RawStreamHandler>>,
}

type NameMap<V> = IntMap<Arc<str>, V>;

/// Server interceptors to tell when a call ends, and when it arrived.
pub(crate) type Observed = Option<(Vec<Arc<dyn ServerInterceptor>>, Instant)>;

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("methods", &self.methods.read().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Server {
    pub(crate) fn register(&self, method: &str, handler: RawHandler) {
        self.methods.write().insert(Arc::from(method), handler);
    }

    pub(crate) fn register_stream(&self, method: &str, handler: RawStreamHandler) {
        self.streams.write().insert(Arc::from(method), handler);
    }

    /// Admits a streaming call as `dispatch` admits a request: refused while
    /// stopping, looked up, passed through the server interceptors.
    pub(crate) fn accept_stream(
        &self,
        node: &Arc<NodeInner>,
        from: LogicAddr,
        head: &RequestView<'_>,
        trace: Option<TraceContext>,
    ) -> Result<(RpcContext, RawStreamHandler, Observed), RpcError> {
        if node.is_stopping() {
            return Err(RpcError::ServiceUnavailable("node stopping".into()));
        }
        let found = self
            .streams
            .read()
            .get_key_value(head.method)
            .map(|(k, v)| (k.clone(), v.clone()));
        let Some((method, handler)) = found else {
            tracing::debug!(%from, method = head.method, "invalid streaming method");
            return Err(RpcError::InvalidMethod(head.method.to_owned()));
        };
        let (ctx, observed) = admit(node, from, method, head, trace)?;
        Ok((ctx, handler, observed))
    }

    fn lookup(&self, method: &str) -> Option<(Arc<str>, RawHandler)> {
        self.methods
            .read()
            .get_key_value(method)
            .map(|(k, v)| (k.clone(), v.clone()))
    }
}

/// What a handler knows about the call it serves.
#[derive(Debug, Clone)]
pub struct RpcContext {
    from: LogicAddr,
    method: Arc<str>,
    deadline: Option<Instant>,
    meta: Bytes,
    trace: Option<TraceContext>,
    node: Arc<NodeInner>,
}

impl RpcContext {
    /// The caller.
    pub fn from(&self) -> LogicAddr {
        self.from
    }

    /// The method called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// When the caller stops waiting, if it said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Opaque metadata the caller attached (trace context, credentials).
    pub fn meta(&self) -> &[u8] {
        &self.meta
    }

    /// The context of this request's `rpc.serve` span (a child of the caller's),
    /// when that span is enabled. Calls made inside the span carry it on.
    pub fn trace(&self) -> Option<TraceContext> {
        self.trace
    }

    /// The serving node (calls through the context: `handler.rs`).
    pub(super) fn node_inner(&self) -> &Arc<NodeInner> {
        &self.node
    }
}

/// Serves one request body from `from`.
pub(crate) fn dispatch(node: &Arc<NodeInner>, from: LogicAddr, body: Bytes) {
    let head = match RequestView::parse_as(node.rpc_form(), &body) {
        Ok(head) => head,
        Err(e) => {
            // Without a readable header there is no sequence number to answer.
            tracing::warn!(%from, error = %e, "dropping malformed rpc request");
            return;
        }
    };
    let span = trace::serve_span(from, head.method);
    let started = trace::started(&span);
    let trace = started.and_then(|_| trace::begin(&span, TraceContext::from_meta(&head.meta)));
    let reply_err = |err: RpcError| {
        if let Some(at) = started {
            trace::end(&span, err.code(), at);
        }
        if !head.one_way {
            send_response(node, from, head.seq, Err(&err));
        }
    };
    if node.is_stopping() {
        reply_err(RpcError::ServiceUnavailable("node stopping".into()));
        return;
    }
    let Some((method, handler)) = node.rpc_server().lookup(head.method) else {
        tracing::debug!(%from, method = head.method, "invalid method");
        reply_err(RpcError::InvalidMethod(head.method.to_owned()));
        return;
    };
    let (ctx, observed) = match admit(node, from, method.clone(), &head, trace) {
        Ok(admitted) => admitted,
        Err(e) => return reply_err(e),
    };
    let mut replyer = RawReplyer::new(node.clone(), from, head.seq, head.one_way, method);
    replyer.observed = observed;
    replyer.traced = started.map(|at| (span.clone(), at));
    // Counted in flight now; a stop that began since the check above may have
    // seen nothing in flight and finished its drain (`Inflight::enter`).
    if node.is_stopping() {
        return replyer.error(RpcError::ServiceUnavailable("node stopping".into()));
    }
    let arg = head.arg;
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| {
        span.in_scope(|| handler(ctx, replyer, arg))
    })) {
        tracing::error!(%from, method = head.method, panic = %panic_text(&*panic), "rpc handler panicked");
    }
}

/// The context of a request found in the method table, once the server
/// interceptors let it in (unary and streaming calls alike).
fn admit(
    node: &Arc<NodeInner>,
    from: LogicAddr,
    method: Arc<str>,
    head: &RequestView<'_>,
    trace: Option<TraceContext>,
) -> Result<(RpcContext, Observed), RpcError> {
    let deadline = (head.timeout_ms > 0)
        .then(|| crate::clock::now() + Duration::from_millis(head.timeout_ms.into()));
    let ctx = RpcContext {
        from,
        method,
        deadline,
        meta: meta::get(&head.meta, meta::APP).unwrap_or_default(),
        trace,
        node: node.clone(),
    };
    let observed = match node.server_interceptors().get() {
        None => None,
        Some(list) => {
            for i in &list {
                i.before_dispatch(&ctx)?;
            }
            Some((list, Instant::now()))
        }
    };
    Ok((ctx, observed))
}

/// Tells the server interceptors that observed a call how it ended.
pub(crate) fn observed_end(observed: Observed, from: LogicAddr, method: &str, code: ErrorCode) {
    if let Some((list, started)) = observed {
        let elapsed = started.elapsed();
        for i in list {
            i.after_reply(from, method, code, elapsed);
        }
    }
}

/// Answers a request that will not be served (unroutable) with `err` in the name
/// of its target `from`, if its sequence number can be read and it wants an answer.
pub(crate) fn reject(
    node: &Arc<NodeInner>,
    to: LogicAddr,
    from: LogicAddr,
    body: &Bytes,
    err: RpcError,
) {
    match RequestView::parse_as(node.rpc_form(), body) {
        Ok(req) if !req.one_way => send_response_from(node, from, to, req.seq, Err(&err)),
        Ok(_) => {}
        Err(e) => tracing::warn!(from = %to, error = %e, "dropping malformed rpc request"),
    }
}

/// Writes a successful result into the response frame.
type EncodeResult<'a> = dyn FnMut(&mut BytesMut) -> Result<(), CodecError> + 'a;

/// Encodes and sends a response frame. `Ok` carries a function writing the result.
fn send_response(
    node: &Arc<NodeInner>,
    to: LogicAddr,
    seq: u64,
    result: Result<&mut EncodeResult<'_>, &RpcError>,
) {
    let Some(run) = node.running() else { return };
    send_response_from(node, run.local, to, seq, result);
}

/// [`send_response`] in the name of `from`.
fn send_response_from(
    node: &Arc<NodeInner>,
    from: LogicAddr,
    to: LogicAddr,
    seq: u64,
    result: Result<&mut EncodeResult<'_>, &RpcError>,
) {
    let mut frame = ResponseFrame::new(node.rpc_form(), to, from);
    let max = node.config().max_frame;
    match result {
        Ok(encode) => {
            let failed = match frame.put_ok(seq, encode) {
                Ok(len) if len <= max => None,
                // A result the peer would refuse as oversize becomes an error reply,
                // so the caller learns why instead of waiting for its timeout.
                Ok(len) => Some(CodecError::new(format!(
                    "result of {len} bytes exceeds the frame limit of {max}"
                ))),
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                let err = RpcError::Codec(format!("cannot encode result: {e}"));
                frame.put_error(seq, &err, max);
            }
        }
        Err(err) => frame.put_error(seq, err, max),
    }
    if let Err(e) = node.send_frame(to, frame.finish(), None) {
        tracing::debug!(%to, error = %e, "cannot send rpc response");
    }
}

/// Answers one request with bytes. Typed handlers get a [`super::Replyer`] instead.
pub struct RawReplyer {
    node: Arc<NodeInner>,
    to: LogicAddr,
    seq: u64,
    one_way: bool,
    method: Arc<str>,
    done: bool,
    /// Server interceptors to tell, and when the request arrived.
    observed: Observed,
    /// The request's span and when it arrived, when the span is enabled.
    traced: Option<(tracing::Span, Instant)>,
}

impl fmt::Debug for RawReplyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawReplyer")
            .field("to", &self.to)
            .field("seq", &self.seq)
            .field("method", &self.method)
            .field("one_way", &self.one_way)
            .finish()
    }
}

impl RawReplyer {
    fn new(node: Arc<NodeInner>, to: LogicAddr, seq: u64, one_way: bool, method: Arc<str>) -> Self {
        node.inflight().enter();
        Self {
            node,
            to,
            seq,
            one_way,
            method,
            done: false,
            observed: None,
            traced: None,
        }
    }

    fn observe(&mut self, code: ErrorCode) {
        if let Some((span, started)) = self.traced.take() {
            trace::end(&span, code, started);
        }
        observed_end(self.observed.take(), self.to, &self.method, code);
    }

    /// The caller.
    pub fn peer(&self) -> LogicAddr {
        self.to
    }

    /// The method being answered.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether the caller wants no answer (a `post`).
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// Replies with the bytes `encode` writes.
    pub fn reply_with(mut self, mut encode: impl FnMut(&mut BytesMut) -> Result<(), CodecError>) {
        self.done = true;
        if !self.one_way {
            send_response(&self.node, self.to, self.seq, Ok(&mut encode));
        }
        self.observe(ErrorCode::Ok);
    }

    /// Replies with `result`.
    pub fn reply(self, result: Bytes) {
        self.reply_with(|buf| {
            buf.put_slice(&result);
            Ok(())
        });
    }

    /// Replies with an error.
    pub fn error(mut self, err: RpcError) {
        self.done = true;
        if !self.one_way {
            send_response(&self.node, self.to, self.seq, Err(&err));
        }
        self.observe(err.code());
    }
}

impl Drop for RawReplyer {
    fn drop(&mut self) {
        if !self.done && !self.one_way {
            let why = if std::thread::panicking() {
                "method panicked"
            } else {
                "replyer dropped without reply"
            };
            send_response(
                &self.node,
                self.to,
                self.seq,
                Err(&RpcError::ServiceUnavailable(why.into())),
            );
            self.observe(ErrorCode::ServiceUnavailable);
        }
        self.observe(ErrorCode::Ok);
        self.node.inflight().leave();
    }
}
