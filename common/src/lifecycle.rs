//! What a server process tells probes and peers about itself while it starts, serves and
//! stops.
//!
//! - [`Health`]: the standard `grpc.health.v1.Health` service every gRPC port serves,
//!   open to anyone (probes carry no credentials; it says nothing but up or not). Service
//!   [`READINESS`] (and the overall `""`) is SERVING while the process can serve — what
//!   "can serve" means is the process's own call ([`Health::set_ready`]); [`LIVENESS`]
//!   is SERVING for as long as the process answers at all.
//! - [`Starting`]: what a port serves in place of a service that is not there yet. A
//!   worker binds its port at once but needs time to register and open its shards; in
//!   that time every call is answered at once with UNAVAILABLE (retryable, with a
//!   retry-after hint) instead of waiting in the listen backlog, so callers move on to
//!   another replica.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use vectron_model::status::{WireError, to_status};
use vectron_proto::v1::ErrorCode;

/// The health service name that is SERVING while the process can serve requests.
pub const READINESS: &str = "readiness";
/// The health service name that is SERVING while the process runs.
pub const LIVENESS: &str = "liveness";

/// A process's health, as its gRPC ports report it.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    ready: Arc<AtomicBool>,
    /// Set once the process begins to stop: it never reports ready again.
    stopping: Arc<AtomicBool>,
    what: &'static str,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("what", &self.what).field("ready", &self.is_ready()).finish()
    }
}

impl Health {
    /// A live process of kind `what` (for logs) that is not ready yet.
    pub async fn new(what: &'static str) -> Health {
        let reporter = HealthReporter::new();
        reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
        for name in ["", READINESS] {
            reporter.set_service_status(name, ServingStatus::NotServing).await;
        }
        Health { reporter, ready: Arc::new(AtomicBool::new(false)), stopping: Arc::new(AtomicBool::new(false)), what }
    }

    /// The gRPC service to add to each of the process's servers (outside any credential
    /// check).
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }

    /// Reports whether the process can serve now; logs changes. Once [`Health::stop`]
    /// was called it stays not ready.
    pub async fn set_ready(&self, ready: bool) {
        let ready = ready && !self.stopping.load(Ordering::Acquire);
        if self.ready.swap(ready, Ordering::AcqRel) == ready {
            return;
        }
        tracing::info!(process = self.what, ready, "readiness changed");
        let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
        for name in ["", READINESS] {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// The process begins to stop: not ready from now on, whatever is reported later.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.set_ready(false).await;
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// How long a caller refused by a starting service is told to wait.
const STARTING_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A gRPC service that is not there yet: until [`Starting::set`] it answers every call
/// with UNAVAILABLE at once; then it is the service. Clones share the slot.
pub struct Starting<S> {
    slot: Arc<OnceLock<S>>,
    what: &'static str,
}

impl<S> Clone for Starting<S> {
    fn clone(&self) -> Self {
        Starting { slot: self.slot.clone(), what: self.what }
    }
}

impl<S> Starting<S> {
    /// An empty slot for `what` (named in the refusal, e.g. "worker 3").
    pub fn new(what: &'static str) -> Starting<S> {
        Starting { slot: Arc::new(OnceLock::new()), what }
    }

    /// Puts the service in place (once; a second call is ignored).
    pub fn set(&self, service: S) {
        let _ = self.slot.set(service);
    }
}

impl<S: NamedService> NamedService for Starting<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Starting<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is polled when a call reaches it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.slot.get() {
            Some(service) => {
                let mut service = service.clone();
                Box::pin(async move {
                    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(request).await
                })
            }
            None => {
                let refusal = WireError::new(ErrorCode::Unavailable, format!("{} is starting", self.what), true)
                    .with_retry_after(STARTING_RETRY_AFTER);
                Box::pin(std::future::ready(Ok(to_status(&refusal).into_http())))
            }
        }
    }
}
