//! Trace context across calls: W3C `traceparent`-compatible ids carried in the
//! request metadata (record key 1, see `rpc/meta.rs`), and the `tracing` spans the RPC
//! paths open (target [`TARGET`], level DEBUG).
//!
//! Spans: `rpc.call` (an outgoing call, awaited or with a callback), `rpc.post`,
//! `rpc.serve` (a handled request, from arrival to answer), `rpc.relay` (a frame a
//! harbor forwards), `stream.open` / `stream.serve`. Fields: `method`, `peer`,
//! `outcome` (an [`super::ErrorCode`] name, or a stream error), `duration_us`, and the ids `trace_id`,
//! `span_id`, `parent_id` (lower-case hex as in `traceparent`).
//!
//! When no subscriber wants these spans, each costs one callsite-interest check and
//! nothing travels. When they are enabled, each span gets a [`TraceContext`]: the
//! remote one a request carried (serve, relay), or the nearest one among the
//! current span and its parents (a call made inside a handler, or inside any span
//! with an RPC span above it), or a new trace. The context is kept in the span's
//! extensions when the subscriber is built on `tracing_subscriber`'s `Registry`
//! (the usual `fmt()` and `registry().with(..)` setups); with another subscriber
//! each call starts its own trace.

use std::fmt;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::Span;
use tracing_subscriber::registry::{LookupSpan, Registry};

use super::meta;
use super::wire::RequestView;
use crate::addr::LogicAddr;
use crate::codec::{Frame, FrameKind};

/// The `tracing` target of every span this crate opens: filter on it (e.g.
/// `clustergo::trace=debug`) to trace calls without enabling debug logs.
pub const TARGET: &str = "clustergo::trace";

/// Bytes of an encoded context: trace id, span id, flags.
const ENCODED_LEN: usize = 16 + 8 + 1;

/// The position of a span in a distributed trace, as W3C Trace Context names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace every span of one action shares. Never all zero.
    pub trace_id: [u8; 16],
    /// This span. Never all zero.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

impl TraceContext {
    /// The sampled flag.
    pub const SAMPLED: u8 = 1;

    /// A context starting a new trace.
    pub fn new_root() -> Self {
        Self {
            trace_id: fastrand::u128(1..).to_be_bytes(),
            span_id: fastrand::u64(1..).to_be_bytes(),
            flags: Self::SAMPLED,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            span_id: fastrand::u64(1..).to_be_bytes(),
            ..*self
        }
    }

    /// The `traceparent` header value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    /// Parses a version-00 `traceparent` value; `None` if malformed or an id is zero.
    pub fn from_traceparent(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() || flags.len() != 2 {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Self::valid(Self {
            trace_id: unhex(trace)?,
            span_id: unhex(span)?,
            flags,
        })
    }

    /// The metadata encoding: trace id, span id, flags (25 bytes).
    pub fn to_bytes(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0; ENCODED_LEN];
        out[..16].copy_from_slice(&self.trace_id);
        out[16..24].copy_from_slice(&self.span_id);
        out[24] = self.flags;
        out
    }

    /// Reads [`to_bytes`](Self::to_bytes)' encoding; `None` if malformed.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != ENCODED_LEN {
            return None;
        }
        Self::valid(Self {
            trace_id: b[..16].try_into().ok()?,
            span_id: b[16..24].try_into().ok()?,
            flags: b[24],
        })
    }

    fn valid(self) -> Option<Self> {
        (self.trace_id != [0; 16] && self.span_id != [0; 8]).then_some(self)
    }

    /// The context of the current span (or its nearest ancestor that has one).
    pub fn current() -> Option<Self> {
        Self::of(&Span::current())
    }

    /// The context of `span` (or its nearest ancestor that has one).
    pub fn of(span: &Span) -> Option<Self> {
        in_registry(span, |s| {
            s.scope()
                .find_map(|s| s.extensions().get::<TraceContext>().copied())
        })
        .flatten()
    }

    /// The context a request's metadata carries.
    pub(crate) fn from_meta(meta: &Bytes) -> Option<Self> {
        meta::get(meta, meta::TRACE).and_then(|b| Self::from_bytes(&b))
    }
}

/// The span of an outgoing call (`rpc.call`) or post (`rpc.post`).
pub(crate) fn call_span(to: LogicAddr, method: &str, one_way: bool) -> Span {
    use tracing::field::Empty;
    if one_way {
        tracing::debug_span!(target: TARGET, "rpc.post", method, peer = %to, outcome = Empty,
            duration_us = Empty, trace_id = Empty, span_id = Empty, parent_id = Empty)
    } else {
        tracing::debug_span!(target: TARGET, "rpc.call", method, peer = %to, outcome = Empty,
            duration_us = Empty, trace_id = Empty, span_id = Empty, parent_id = Empty)
    }
}

/// The span of a request this node serves: a child of the caller's span.
pub(crate) fn serve_span(from: LogicAddr, method: &str) -> Span {
    use tracing::field::Empty;
    tracing::debug_span!(target: TARGET, parent: None, "rpc.serve", method, peer = %from, outcome = Empty,
        duration_us = Empty, trace_id = Empty, span_id = Empty, parent_id = Empty)
}

/// The span of a stream this node opens to `peer` (opening it).
pub(crate) fn stream_open_span(peer: LogicAddr) -> Span {
    use tracing::field::Empty;
    tracing::debug_span!(target: TARGET, "stream.open", %peer, outcome = Empty,
        duration_us = Empty, trace_id = Empty, span_id = Empty, parent_id = Empty)
}

/// The span of a stream `peer` opened to this node: its handler runs inside.
pub(crate) fn stream_serve_span(peer: LogicAddr) -> Span {
    use tracing::field::Empty;
    tracing::debug_span!(target: TARGET, parent: None, "stream.serve", %peer,
        trace_id = Empty, span_id = Empty, parent_id = Empty)
}

/// The span of a frame a harbor relays, begun: for an RPC request, a child of
/// the caller's span, with the method (read in place from the body, not copied).
pub(crate) fn relay_span(frame: &Frame, form: super::wire::Form) -> Span {
    use tracing::field::Empty;
    let span = tracing::debug_span!(target: TARGET, parent: None, "rpc.relay", from = %frame.from,
        to = %frame.to, kind = ?frame.kind, method = Empty, outcome = Empty,
        trace_id = Empty, span_id = Empty, parent_id = Empty);
    if span.is_disabled() {
        return span;
    }
    // Only a request joins a trace: its context is in its body (a response or a
    // message carries none, and a new trace per frame would be noise).
    if frame.kind == FrameKind::RpcRequest {
        if let Ok(req) = RequestView::parse_as(form, &frame.body) {
            span.record("method", req.method);
            begin(&span, TraceContext::from_meta(&req.meta));
        }
    }
    span
}

/// Runs `f` on `span`'s data in the `Registry` behind the current subscriber.
fn in_registry<R>(
    span: &Span,
    f: impl FnOnce(tracing_subscriber::registry::SpanRef<'_, Registry>) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        Some(f(registry.span(id)?))
    })
    .flatten()
}

/// With an OpenTelemetry layer its ids are the ones that travel, so the exported
/// spans of every node join up.
#[cfg(feature = "otel")]
fn otel_join(span: &Span, remote: Option<TraceContext>) -> Option<TraceContext> {
    crate::otel::join(span, remote)
}

/// Without the `otel` feature the ids are our own.
#[cfg(not(feature = "otel"))]
fn otel_join(_span: &Span, _remote: Option<TraceContext>) -> Option<TraceContext> {
    None
}

/// Gives a just-opened span its context: a child of `remote` when a request
/// carried one, else of the nearest context above it, else a new trace. Records
/// the ids as fields. `None` (and no work) when the span is disabled.
pub(crate) fn begin(span: &Span, remote: Option<TraceContext>) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let parent = remote.or_else(|| {
        in_registry(span, |s| {
            s.scope()
                .skip(1)
                .find_map(|s| s.extensions().get::<TraceContext>().copied())
        })
        .flatten()
    });
    let ctx = otel_join(span, remote)
        .unwrap_or_else(|| parent.map_or_else(TraceContext::new_root, |p| p.child()));
    in_registry(span, |s| s.extensions_mut().insert(ctx));
    span.record("trace_id", hex(&ctx.trace_id));
    span.record("span_id", hex(&ctx.span_id));
    if let Some(p) = parent {
        span.record("parent_id", hex(&p.span_id));
    }
    Some(ctx)
}

/// Records how a span's operation ended and how long it took.
pub(crate) fn end(span: &Span, outcome: impl fmt::Debug, started: Instant) {
    if span.is_disabled() {
        return;
    }
    span.record("outcome", tracing::field::debug(outcome));
    span.record("duration_us", started.elapsed().as_micros() as u64);
}

/// The time an operation starts, if its span is enabled (no clock read otherwise).
pub(crate) fn started(span: &Span) -> Option<Instant> {
    (!span.is_disabled()).then(Instant::now)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_malformed() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_traceparent(tp).unwrap();
        assert_eq!(ctx.traceparent(), tp);
        assert_eq!(ctx.flags, TraceContext::SAMPLED);
        assert_eq!(TraceContext::from_bytes(&ctx.to_bytes()), Some(ctx));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
        assert_eq!(TraceContext::from_bytes(&[1; 24]), None);
        assert_eq!(TraceContext::from_bytes(&[0; 25]), None);
    }

    #[test]
    fn child_keeps_the_trace_and_meta_carries_it() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!((child.trace_id, child.flags), (root.trace_id, root.flags));
        assert_ne!(child.span_id, root.span_id);
        let mut m = Vec::new();
        meta::put(&mut m, meta::APP, b"x");
        meta::put(&mut m, meta::TRACE, &child.to_bytes());
        assert_eq!(TraceContext::from_meta(&Bytes::from(m)), Some(child));
    }
}
