//! OpenTelemetry traces across processes: a gateway, a placement node and a worker given
//! an OTLP endpoint export their spans to it (a collector this test serves), and a
//! search through the gateway is one trace — the gateway's operation span, and the
//! worker's span for the call it made, a child of it (the context travelled in
//! `traceparent`); creating a collection likewise reaches the placement driver.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use parking_lot::Mutex;
use std::sync::Arc;
use vectron_sdk::{Client, Collection, Distance, Point};
use vectron_tests::client::must_create;
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};
use vectron_tests::crash_vector;

const DIM: usize = 8;

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<Received>>>);

fn text<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.as_str()),
        _ => None,
    })
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| text(&r.attributes, "service.name"))
                .unwrap_or_default()
                .to_owned();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                got.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace: span.trace_id,
                    id: span.span_id,
                    parent: span.parent_span_id,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_from_the_gateway_to_the_worker_or_placement() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let collector = Collector::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let traced = vec!["--otlp-endpoint".to_owned(), endpoint.clone()];
    let spec = ClusterSpec { workers: 1, worker_args: traced.clone(), placement_args: traced, ..Default::default() };
    let cluster = Cluster::start(spec);
    let gateway = cluster.start_gateway_with("traced", &["--otlp-endpoint", &endpoint]);
    let client = eventually(Duration::from_secs(30), "the traced gateway", || async {
        Client::connect(&format!("http://{}", gateway.grpc)).await.ok()
    })
    .await;
    must_create(&client, Collection::new("traced", DIM as u32, Distance::Euclid).shards(1), &cluster).await;
    let points: Vec<Point> = (0..20u64).map(|i| Point::new(i, crash_vector(i))).collect();
    client.upsert("traced", points).await.expect("upsert");
    let answer = client.search("traced", crash_vector(3), 3).send().await.expect("search");
    assert_eq!(answer.hits.first().map(|h| h.id.clone()), Some(3u64.into()));

    // The spans of `service` in the trace of the gateway's first `operation` span.
    let spans_under = |operation: &'static str, service: &'static str| {
        let collector = collector.clone();
        eventually(Duration::from_secs(30), "both processes' spans", move || {
            let got = collector.0.lock().clone();
            async move {
                let root = got.iter().find(|s| s.service == "vectron-gateway" && s.name == operation)?.clone();
                let in_trace: Vec<Received> =
                    got.iter().filter(|s| s.service == service && s.trace == root.trace).cloned().collect();
                (!in_trace.is_empty()).then_some((root, in_trace))
            }
        })
    };
    let (create, placement_spans) = spans_under("create_collection", "vectron-placement").await;
    assert!(
        placement_spans.iter().any(|s| s.parent == create.id && s.name.contains("Placement/CreateCollection")),
        "the placement driver's span for the call the gateway made: {placement_spans:?}"
    );
    let (search, worker_spans) = spans_under("search", "vectron-worker").await;
    assert_eq!(search.trace.len(), 16, "a real trace id");
    assert!(search.parent.is_empty(), "the gateway's operation span is the root: {search:?}");
    let by_id: HashMap<&[u8], &Received> = worker_spans.iter().map(|s| (s.id.as_slice(), s)).collect();
    let called = worker_spans
        .iter()
        .find(|s| s.parent == search.id)
        .unwrap_or_else(|| panic!("a worker span whose parent is the gateway's search span: {worker_spans:?}"));
    assert!(called.name.contains("Worker"), "the worker's span names the method called: {called:?}");
    assert!(by_id.contains_key(called.id.as_slice()));
}
