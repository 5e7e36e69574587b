//! OpenTelemetry export of the RPC spans (feature `otel`).
//!
//! Install [`layer`] in the `tracing` subscriber (with a filter letting
//! [`crate::rpc::trace::TARGET`] at DEBUG through) and the spans of
//! [`crate::rpc::trace`] become OpenTelemetry spans. The ids that travel in
//! requests are then OpenTelemetry's own, so a trace exported by several
//! processes joins up in the collector: a served request's span has the
//! caller's span as its remote parent.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let provider = SdkTracerProvider::builder()
//!     .with_batch_exporter(clustergo::otel::otlp_exporter("http://127.0.0.1:4317")?)
//!     .build();
//! let subscriber = tracing_subscriber::registry().with(clustergo::otel::layer(&provider));
//! tracing::subscriber::set_global_default(subscriber)?;
//! # Ok(()) }
//! ```

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::rpc::TraceContext;

pub use opentelemetry_otlp::ExporterBuildError;

/// An OTLP span exporter (gRPC) sending to `endpoint`, e.g.
/// `http://127.0.0.1:4317`. Build it inside a tokio runtime.
pub fn otlp_exporter(
    endpoint: &str,
) -> Result<opentelemetry_otlp::SpanExporter, ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
}

/// The `tracing` layer turning spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("clustergo"))
}

/// Makes `remote` (a context a request carried) the OpenTelemetry parent of
/// `span`, and returns the span's own OpenTelemetry context; `None` when no
/// OpenTelemetry layer sees the span.
pub(crate) fn join(span: &Span, remote: Option<TraceContext>) -> Option<TraceContext> {
    if let Some(r) = remote {
        let parent = SpanContext::new(
            TraceId::from_bytes(r.trace_id),
            SpanId::from_bytes(r.span_id),
            TraceFlags::new(r.flags),
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        // Fails only without an OpenTelemetry layer: then there is nothing to join.
        span.set_parent(cx).ok()?;
    }
    let cx = span.context();
    let own = cx.span();
    let own = own.span_context();
    own.is_valid().then(|| TraceContext {
        trace_id: own.trace_id().to_bytes(),
        span_id: own.span_id().to_bytes(),
        flags: own.trace_flags().to_u8(),
    })
}
