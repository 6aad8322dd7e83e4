//! Logs and OpenTelemetry traces.
//!
//! Every server process logs to stderr (text, or JSON lines with the spans they
//! happened in). Given an OTLP endpoint (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), it also exports its spans over OTLP/gRPC in batches
//! (every 500 ms, on a thread of the SDK's own) with `service.name` = `vectron-<role>`;
//! without one nothing is exported and nothing is propagated.
//!
//! Traces cross processes in W3C `traceparent` metadata: every internal call carries
//! the caller's current span ([`inject`], run by the cluster-token interceptor every
//! internal channel has), and the internal servers open a span per call whose parent
//! is the caller's ([`GrpcServerSpans`]). So a search is one trace from the gateway's
//! operation span to each worker that answered it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Set once an exporter is installed: until then propagation costs nothing on the
/// internal calls' path (Raft heartbeats included).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line, with the spans it happened in.
    Json,
}

/// The process's trace exporter, flushed and stopped by [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Flushes the spans not yet exported and stops the exporter (blocking: call it off
    /// the async threads, or after the runtime's work is done).
    pub fn shutdown(self) {
        if let Some(provider) = self.0
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: stopping the trace exporter: {e}");
        }
    }
}

/// Installs the process's logger (filtered by `RUST_LOG`, default `info`) and, with an
/// `otlp_endpoint`, the trace exporter. Must run inside a Tokio runtime (the exporter's
/// channel lives on it).
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>, service: &str) -> Result<Telemetry, String> {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"))
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().with_current_span(false).with_span_list(true).boxed(),
    };
    let provider = otlp_endpoint.map(|endpoint| provider(endpoint, service)).transpose()?;
    // The exporter's own connections are not traced (they would trace their own exports).
    let traces = provider.as_ref().map(|p| {
        let quiet = tracing_subscriber::EnvFilter::new("info,openraft=warn,h2=off,hyper=off,tonic=off,tower=off");
        tracing_opentelemetry::layer().with_tracer(p.tracer("vectron")).with_filter(quiet)
    });
    tracing_subscriber::registry().with(logs.with_filter(filter())).with(traces).init();
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry(provider))
}

fn provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("the OTLP endpoint {endpoint}: {e}"))?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(500)).build())
        .build();
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_resource(resource).with_span_processor(batches).build())
}

/// Puts the current span's context into an outgoing call's metadata (nothing when no
/// exporter is installed: the propagator is then a no-op).
pub fn inject(metadata: &mut MetadataMap) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MetadataInjector(metadata)));
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (MetadataKey::<Ascii>::from_bytes(key.as_bytes()), MetadataValue::try_from(value)) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// A gRPC server's span per call (`otel.name` its method path), child of the caller's
/// span when the call carries one: a `tower_http` trace layer for
/// `Server::builder().layer(..)`.
pub type GrpcServerSpans = tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::GrpcErrorsAsFailures>,
    fn(&http::Request<tonic::body::Body>) -> tracing::Span,
>;

/// See [`GrpcServerSpans`].
pub fn grpc_server_spans() -> GrpcServerSpans {
    tower_http::trace::TraceLayer::new_for_grpc().make_span_with(server_span as fn(&_) -> _)
}

/// Calls that get no span: Raft's own traffic (heartbeats and appends, many per second
/// per group, outside any request's trace) and health probes.
const UNTRACED: [&str; 2] = ["/vectron.internal.v1.RaftTransport/", "/grpc.health.v1.Health/"];

fn server_span(request: &http::Request<tonic::body::Body>) -> tracing::Span {
    let path = request.uri().path();
    if UNTRACED.iter().any(|p| path.starts_with(p)) {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("grpc", otel.name = path, otel.kind = "server");
    if !EXPORTING.load(Ordering::Relaxed) {
        return span;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    // Err without an exporter (no layer to take it): then there is nothing to link.
    let _ = span.set_parent(parent);
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;

    #[test]
    fn a_context_travels_in_metadata_and_back() {
        let propagator = TraceContextPropagator::new();
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        let cx = propagator.extract(&HeaderExtractor(&headers));
        let mut metadata = MetadataMap::new();
        propagator.inject_context(&cx, &mut MetadataInjector(&mut metadata));
        assert_eq!(
            metadata.get("traceparent").and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }
}
