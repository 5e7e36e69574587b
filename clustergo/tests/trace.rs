//! Trace context across a harbor: a call from cluster 1 to cluster 2 goes through
//! both harbors, and every span of it (the call, the two relays, the served
//! request, and a call the handler makes in turn) shares one trace id.

mod support;

use std::collections::HashMap;
use std::sync::OnceLock;

use clustergo::{Replyer, TraceContext};
use parking_lot::Mutex;
use support::*;
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A closed span: its name and fields.
#[derive(Debug, Clone)]
struct Rec {
    name: &'static str,
    fields: HashMap<String, String>,
}

impl Rec {
    fn get(&self, field: &str) -> &str {
        self.fields.get(field).map_or("", String::as_str)
    }
}

static CLOSED: Mutex<Vec<Rec>> = Mutex::new(Vec::new());

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

/// Records every span's fields; a span is kept when it closes.
struct Recorder;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        ctx.span(id).unwrap().extensions_mut().insert(f);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(f) = ctx.span(id).unwrap().extensions_mut().get_mut::<Fields>() {
            values.record(f);
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let fields = span
            .extensions_mut()
            .remove::<Fields>()
            .unwrap_or_default()
            .0;
        CLOSED.lock().push(Rec {
            name: span.name(),
            fields,
        });
    }
}

/// Installs the process-wide subscriber once (the nodes' tasks may run on any
/// thread).
fn subscribe() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Recorder);
        #[cfg(feature = "otel")]
        let subscriber = subscriber.with(clustergo::otel::layer(&otel::provider()));
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// The OpenTelemetry side: spans exported to the SDK's in-memory exporter.
#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    pub(super) fn provider() -> SdkTracerProvider {
        PROVIDER
            .get_or_init(|| {
                let exporter = EXPORTER.get_or_init(InMemorySpanExporter::default).clone();
                SdkTracerProvider::builder()
                    .with_simple_exporter(exporter)
                    .build()
            })
            .clone()
    }

    /// The spans exported so far.
    pub(super) fn exported() -> Vec<SpanData> {
        EXPORTER.get().unwrap().get_finished_spans().unwrap()
    }
}

/// With OpenTelemetry, the ids that travel are its own: the exported spans form
/// one trace, each served request's span a remote child of its caller's.
#[cfg(feature = "otel")]
fn check_exported(call: &Rec, spans: &[Rec]) {
    let exported = otel::exported();
    let by_id = |id: &str| {
        exported
            .iter()
            .find(|s| s.span_context.span_id().to_string() == id)
            .unwrap_or_else(|| panic!("span {id} exported: {exported:#?}"))
    };
    let root = by_id(call.get("span_id"));
    assert_eq!(root.name, "rpc.call");
    assert_eq!(
        root.span_context.trace_id().to_string(),
        call.get("trace_id")
    );
    for r in spans {
        let s = by_id(r.get("span_id"));
        assert_eq!(s.span_context.trace_id(), root.span_context.trace_id());
        assert_eq!(s.name, r.name);
        if r.name == "rpc.serve" || r.name == "rpc.relay" {
            assert!(s.parent_span_is_remote, "{s:?}");
            assert_eq!(s.parent_span_id.to_string(), r.get("parent_id"));
        }
    }
}

/// The closed spans of the trace `trace_id`.
fn spans_of(trace_id: &str) -> Vec<Rec> {
    CLOSED
        .lock()
        .iter()
        .filter(|r| r.get("trace_id") == trace_id)
        .cloned()
        .collect()
}

fn one<'a>(spans: &'a [Rec], name: &str, peer: &str) -> &'a Rec {
    let found: Vec<_> = spans
        .iter()
        .filter(|r| r.name == name && r.get("peer") == peer)
        .collect();
    assert_eq!(found.len(), 1, "one {name} with peer {peer} in {spans:#?}");
    found[0]
}

#[tokio::test]
async fn one_trace_from_client_through_harbors_to_server_and_on() {
    subscribe();
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let h1 = c.start("1.255.1").await;
    let h2 = c.start("2.255.1").await;
    let b = c.start_with("2.1.1", true, config()).await;
    a.register_rpc("echo", |_, replyer: Replyer<Echo>, req: Echo| {
        replyer.reply(req)
    });
    // b answers by calling a back: a call made inside the handler's span.
    let b2 = b.clone();
    b.register_rpc("fwd", move |ctx, replyer: Replyer<Echo>, req: Echo| {
        assert!(ctx.trace().is_some(), "the serve span has a context");
        let node = b2.clone();
        tokio::spawn(
            async move {
                let r: Result<Echo, _> = node.call(addr("1.1.1"), "echo", &req).await;
                replyer.reply_result(r);
            }
            .in_current_span(),
        );
    });
    c.settle().await;

    let action = tracing::info_span!("game_action");
    let reply: Echo = within(
        "call through the harbors",
        a.call(addr("2.1.1"), "fwd", &echo("hi", 1))
            .instrument(action.clone()),
    )
    .await
    .unwrap();
    assert_eq!(reply.msg, "hi");
    drop(action);

    // The outer call span is the root of the trace: find it among a's spans.
    eventually("the outer call span closes", || {
        CLOSED
            .lock()
            .iter()
            .any(|r| r.name == "rpc.call" && r.get("method") == "fwd")
    })
    .await;
    let call = CLOSED
        .lock()
        .iter()
        .find(|r| r.name == "rpc.call" && r.get("method") == "fwd")
        .cloned()
        .unwrap();
    let trace_id = call.get("trace_id").to_owned();
    assert_eq!(trace_id.len(), 32, "{call:?}");
    // Spans close as their holders let go: wait for the whole tree.
    // Call, two relays, serve; then the handler's call, two relays, serve.
    const TREE: usize = 8;
    eventually("every span of the trace closes", || {
        spans_of(&trace_id).len() >= TREE
    })
    .await;
    let spans = spans_of(&trace_id);

    assert_eq!(call.get("peer"), "2.1.1");
    assert_eq!(call.get("outcome"), "Ok");
    assert!(call.get("duration_us").parse::<u64>().is_ok(), "{call:?}");
    assert_eq!(
        call.get("parent_id"),
        "",
        "a new trace: no RPC span above it"
    );

    let served = one(&spans, "rpc.serve", "1.1.1");
    assert_eq!(served.get("method"), "fwd");
    assert_eq!(served.get("outcome"), "Ok");
    assert_eq!(served.get("parent_id"), call.get("span_id"));

    // The harbors relay the request unchanged: their spans hang off the caller's.
    let relays: Vec<_> = spans.iter().filter(|r| r.name == "rpc.relay").collect();
    let outbound: Vec<_> = relays.iter().filter(|r| r.get("method") == "fwd").collect();
    assert_eq!(
        outbound.len(),
        2,
        "h1 and h2 relay the request: {relays:#?}"
    );
    for r in &outbound {
        assert_eq!(r.get("parent_id"), call.get("span_id"));
        assert_eq!((r.get("from"), r.get("to")), ("1.1.1", "2.1.1"));
        assert_eq!(r.get("outcome"), "relayed");
    }

    // The handler's own call continues the trace, as a child of its serve span.
    let inner = one(&spans, "rpc.call", "1.1.1");
    assert_eq!(inner.get("method"), "echo");
    assert_eq!(inner.get("parent_id"), served.get("span_id"));
    let inner_served = one(&spans, "rpc.serve", "2.1.1");
    assert_eq!(inner_served.get("parent_id"), inner.get("span_id"));
    let back: Vec<_> = relays
        .iter()
        .filter(|r| r.get("method") == "echo")
        .collect();
    assert_eq!(back.len(), 2, "the inner call crosses back: {relays:#?}");

    // `traceparent` matches the ids the spans carry.
    let ctx =
        TraceContext::from_traceparent(&format!("00-{}-{}-01", trace_id, call.get("span_id")))
            .unwrap();
    assert_eq!(ctx.traceparent().len(), 55);
    #[cfg(feature = "otel")]
    check_exported(&call, &spans);

    for n in [a, h1, h2, b] {
        n.shutdown().await;
    }
}
