//! The ops port every process may serve (`<section>.metrics`, `--metrics ADDR`): plain
//! HTTP without credentials, for scrapers and the kubelet, kept off the clients'
//! network —
//! - `GET /metrics`: the process's Prometheus registry (with its CPU, memory and
//!   threads), refreshed just before it is rendered;
//! - `GET /livez`: 200 while the process runs;
//! - `GET /readyz`: 200 while it can serve (its [`Health`] readiness), else 503.
//!
//! The API ports may speak mutual TLS, which a kubelet probe cannot; this port is what
//! probes and scrapers reach instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Counter, Encoder, IntGauge, Registry, TextEncoder};

use crate::lifecycle::Health;

/// The process's CPU time, memory and threads, read from /proc when updated (the
/// prometheus crate's own collector rounds CPU time down to whole seconds, too coarse to
/// tell the CPU cost of a request).
#[derive(Debug, Clone)]
pub struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_bytes: IntGauge,
    threads: IntGauge,
}

impl ProcessMetrics {
    /// Registers the process metrics in `registry`.
    pub fn new(registry: &Registry) -> ProcessMetrics {
        let cpu_seconds = Counter::new("process_cpu_seconds_total", "User and system CPU time spent, in seconds")
            .expect("valid metric");
        let resident_bytes =
            IntGauge::new("process_resident_memory_bytes", "Resident memory size in bytes").expect("valid metric");
        let threads = IntGauge::new("process_threads", "Number of OS threads").expect("valid metric");
        registry.register(Box::new(cpu_seconds.clone())).expect("unique metric");
        registry.register(Box::new(resident_bytes.clone())).expect("unique metric");
        registry.register(Box::new(threads.clone())).expect("unique metric");
        ProcessMetrics { cpu_seconds, resident_bytes, threads }
    }

    /// Reads /proc now.
    pub fn update(&self) {
        let Ok(stat) = procfs::process::Process::myself().and_then(|p| p.stat()) else {
            return;
        };
        let cpu = (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64;
        self.cpu_seconds.inc_by((cpu - self.cpu_seconds.get()).max(0.0));
        self.resident_bytes.set((stat.rss * procfs::page_size()) as i64);
        self.threads.set(stat.num_threads);
    }
}

/// `registry` in Prometheus's text format.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out).ok();
    String::from_utf8(out).unwrap_or_default()
}

/// Brings gauges up to date before a scrape renders them.
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What one process's ops port shows.
#[derive(Clone)]
pub struct Ops {
    registry: Registry,
    process: ProcessMetrics,
    health: Health,
    refresh: Option<Refresh>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").finish_non_exhaustive()
    }
}

impl Ops {
    /// The ops of a process whose metrics are in `registry` (`process` registered in
    /// it) and whose readiness is `health`'s.
    pub fn new(registry: Registry, process: ProcessMetrics, health: Health) -> Ops {
        Ops { registry, process, health, refresh: None }
    }

    /// Runs `refresh` before each scrape.
    pub fn with_refresh(mut self, refresh: Refresh) -> Ops {
        self.refresh = Some(refresh);
        self
    }

    /// The metrics, refreshed, as Prometheus text.
    pub async fn scrape(&self) -> String {
        if let Some(refresh) = &self.refresh {
            refresh().await;
        }
        // Collectors read locks a graph save may hold for a while: off the runtime.
        let (process, registry) = (self.process.clone(), self.registry.clone());
        tokio::task::spawn_blocking(move || {
            process.update();
            render(&registry)
        })
        .await
        .unwrap_or_default()
    }

    /// The port's routes.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .route(
                "/metrics",
                get(|State(ops): State<Ops>| async move {
                    ([("content-type", "text/plain; version=0.0.4")], ops.scrape().await)
                }),
            )
            .route("/livez", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(|State(ops): State<Ops>| async move {
                    if ops.health.is_ready() {
                        (StatusCode::OK, "ready\n").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
                    }
                }),
            )
            .with_state(self)
    }
}

/// Serves `ops` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ops: Ops,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, ops.router()).with_graceful_shutdown(shutdown).await
}
