//! A tower layer that counts every gRPC request of the gateway in the Prometheus
//! metrics, by method (`/vectron.v1.VectronService/Search`; any path that is not a method of the gateway counts as
//! `unknown`, so anonymous calls on random paths add no series) and `grpc-status` (a
//! failed call answers trailers-only, so its status is in the response headers; a
//! successful one has none there and counts as `0`; a value outside gRPC's codes counts
//! as `unknown`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// gRPC status codes as label values.
const GRPC_CODES: [&str; 17] =
    ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"];

/// Wraps a service so each request is counted and timed.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> GrpcMetricsLayer {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner, metrics: self.metrics.clone() }
    }
}

/// The counting service.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> Service<Request<B>> for GrpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (_, route) = crate::policy::grpc(req.uri().path(), Default::default());
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let status = match &result {
                Ok(r) => {
                    match r.headers().get("grpc-status").map(|v| v.to_str().ok().and_then(|s| s.parse::<u8>().ok())) {
                        None => "0",
                        Some(Some(code)) if code <= 16 => GRPC_CODES[code as usize],
                        Some(_) => "unknown",
                    }
                }
                Err(_) => "transport-error",
            };
            metrics.observe("grpc", route, status, started);
            result
        })
    }
}
