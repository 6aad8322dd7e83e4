//! The gateway's Prometheus metrics: request counts and latencies by protocol, route
//! and status (labels from a closed set: route templates and known gRPC methods, else
//! `unknown`), per-shard leader, Raft term and size gauges (set from the routing table
//! at scrape time), and the process's CPU seconds, resident memory and threads;
//! [`CollectionMetrics`]: the data operations per collection, which `Api` records.
//! [`track`] records HTTP requests; `grpc_metrics` records gRPC calls.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::sync::Arc;
use vectron_common::ops::ProcessMetrics;
use vectron_proto::internal as pi;

/// The gateway's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    shard_leader: IntGaugeVec,
    shard_term: IntGaugeVec,
    shard_points: IntGaugeVec,
    process: ProcessMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("vectron_requests_total", "Requests by protocol, route and status"),
            &["protocol", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("vectron_request_seconds", "Request latency by protocol and route")
                .buckets(prometheus::exponential_buckets(0.0002, 2.0, 16).expect("valid buckets")),
            &["protocol", "route"],
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["collection", "shard"]).expect("valid metric")
        };
        let shard_leader = gauge("vectron_shard_leader", "Worker id leading each shard (0: none known)");
        let shard_term = gauge("vectron_shard_raft_term", "Raft term of each shard's leader");
        let shard_points = gauge("vectron_shard_points", "Points in each shard, as its leader reports");
        registry.register(Box::new(requests.clone())).expect("unique metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        for g in [&shard_leader, &shard_term, &shard_points] {
            registry.register(Box::new(g.clone())).expect("unique metric");
        }
        let process = ProcessMetrics::new(&registry);
        Metrics { registry, requests, latency, shard_leader, shard_term, shard_points, process }
    }

    /// The registry other parts of the gateway (reranks) add their metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one request.
    pub fn observe(&self, protocol: &str, route: &str, status: &str, started: Instant) {
        self.requests.with_label_values(&[protocol, route, status]).inc();
        self.latency.with_label_values(&[protocol, route]).observe(started.elapsed().as_secs_f64());
    }

    pub(crate) fn update_shards(&self, table: &pi::RoutingTable) {
        self.shard_leader.reset();
        self.shard_term.reset();
        self.shard_points.reset();
        for c in &table.collections {
            let name = c.config.as_ref().map(|x| x.name.as_str()).unwrap_or("");
            for s in &c.shards {
                let shard = s.id.to_string();
                self.shard_leader.with_label_values(&[name, &shard]).set(s.leader as i64);
                self.shard_term.with_label_values(&[name, &shard]).set(s.leader_term as i64);
                self.shard_points.with_label_values(&[name, &shard]).set(s.points_count as i64);
            }
        }
    }

    pub(crate) fn render(&self) -> String {
        self.process.update();
        vectron_common::ops::render(&self.registry)
    }

    /// The process metrics (for the ops port).
    pub fn process(&self) -> &ProcessMetrics {
        &self.process
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The data operations per collection, both transports together: counts by
/// collection, operation and answer code (`OK` or the error's code), and latency by
/// collection and operation. The collection label is a name the routing table holds
/// when the operation ends, else `unknown`, so made-up names cannot add series; a
/// deleted collection's series stay until the gateway restarts.
#[derive(Debug)]
pub struct CollectionMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl CollectionMetrics {
    pub fn new(registry: &Registry) -> CollectionMetrics {
        let requests = IntCounterVec::new(
            Opts::new(
                "vectron_collection_requests_total",
                "Data operations by collection, operation (upsert, delete, get, count, scroll, search) and answer code",
            ),
            &["collection", "operation", "code"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "vectron_collection_request_seconds",
                "Data operation latency by collection and operation",
            )
            .buckets(prometheus::exponential_buckets(0.0002, 2.0, 16).expect("valid buckets")),
            &["collection", "operation"],
        )
        .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("unique metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        CollectionMetrics { requests, latency }
    }

    /// Counts one operation on `collection` (a name the routing table holds, or
    /// `unknown`) that answered `code` after `elapsed`.
    pub fn observe(&self, collection: &str, operation: &'static str, code: &str, elapsed: std::time::Duration) {
        self.requests.with_label_values(&[collection, operation, code]).inc();
        self.latency.with_label_values(&[collection, operation]).observe(elapsed.as_secs_f64());
    }
}

/// Records every HTTP request in the metrics, by matched route.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    // Labels from a closed set: the routes' templates, or `unknown`.
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unknown".into());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe("http", &route, response.status().as_str(), started);
    response
}
