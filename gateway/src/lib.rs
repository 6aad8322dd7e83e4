//! The gateway: the public gRPC (`vectron.v1.VectronService`) and HTTP/JSON API, routing
//! through the placement driver's table, fan-out and merge.
//!
//! Layout:
//! - [`routing`]: the cached routing table and retrying calls to shard replicas.
//! - [`api`]: the operations, shared by both transports; [`error`]: [`GatewayError`],
//!   why one failed; [`rerank`]: the reranker's client, and a search's fallback to the
//!   vector order when it cannot help; [`search_cache`]: answers kept while their shards'
//!   versions hold, and identical searches in flight run once; [`feedback`]: feedback kept in a companion
//!   collection, its statistics and the feedback models' training; [`learned`]: the
//!   feedback models as kept, and their training examples.
//! - [`grpc`]: the tonic service; [`grpc_accounts`]: `vectron.v1.AuthService` on the
//!   same port, forwarded to the auth service with the caller's credential;
//!   [`grpc_admin`]: `vectron.v1.AdminService`, the [`cluster`]'s status, workers and
//!   alerts (shared with the HTTP admin routes); [`http`]: the axum routes under `/v1`, one module per
//!   resource (collections, points, search, admin, accounts) over a leaf of error and
//!   body types.
//! - [`policy`]: what each route and gRPC method needs (scope, target, body limit) and
//!   which are public, decided before a body is read; [`auth`]: the layer admitting
//!   requests (both transports) on it, and the scope checks; [`grpc_limits`]:
//!   per-method message limits;
//! - [`metrics`]: the Prometheus metrics and the HTTP layer recording them;
//!   [`grpc_metrics`]: the tower layer recording gRPC calls.
//!
//! Layering (no module imports one that imports it back): `policy` and `error` are
//! leaves and `http::extract` uses only them; `auth` uses those; `rerank` uses
//! `routing`; `search_cache` and `learned` use `error`; `api` uses `auth`, `policy`,
//! `routing`, `rerank`, `search_cache`, `learned`, `metrics` and `error`; `feedback` extends
//! `api`'s `Api` (and uses `learned`); `cluster` uses `api`; the transports (`grpc`,
//! `grpc_admin`, `http`'s route modules) use `api`, `cluster` and `auth`.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod feedback;
pub mod grpc;
pub mod grpc_accounts;
pub mod grpc_admin;
pub mod grpc_limits;
pub mod grpc_metrics;
pub mod http;
pub mod learned;
pub mod metrics;
pub mod policy;
pub mod rerank;
pub mod routing;
pub mod search_cache;

use std::future::Future;
use std::sync::Arc;

use vectron_common::placement_client::PlacementClient;
use vectron_proto::v1::admin_service_server::AdminServiceServer;
use vectron_proto::v1::auth_service_server::AuthServiceServer;
use vectron_proto::v1::vectron_service_server::VectronServiceServer;

pub use api::{Api, ApiConfig};
pub use error::GatewayError;

/// Largest gRPC answer (a page of points with their vectors and payloads).
pub const MAX_ANSWER_BYTES: usize = 128 << 20;

/// The HTTP port's connections, as axum takes them.
struct HttpListener(vectron_common::net::Incoming);

impl axum::serve::Listener for HttpListener {
    type Io = vectron_common::net::Conn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.next().await {
                Some(conn) => match conn.remote_addr() {
                    Some(addr) => return (conn, addr),
                    // Reset by the client before it was served.
                    None => continue,
                },
                // The accept loop ends only when this listener is dropped.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The gateway's shared state.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub api: Api,
    pub metrics: Arc<metrics::Metrics>,
    pub auth: Arc<auth::Authenticator>,
    /// Load balancers in front of the gateway, whose `x-forwarded-for` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The console's built files, served at `/console` (none: not installed).
    pub console_dir: Option<std::path::PathBuf>,
}

impl Gateway {
    /// A gateway routing through the placement driver at `placement`, admitting
    /// requests with `auth`; `local` is a worker in the same process (`vectron dev`),
    /// called without a network hop.
    pub fn new(
        placement: Vec<String>,
        config: ApiConfig,
        auth: auth::Authenticator,
        local: Option<routing::LocalWorker>,
    ) -> Gateway {
        Gateway::on(placement, config, auth, local, None)
    }

    /// [`Gateway::new`] for a node of a test network: its calls to the placement driver
    /// and the workers go through the network's faults.
    pub fn on(
        placement: Vec<String>,
        config: ApiConfig,
        auth: auth::Authenticator,
        local: Option<routing::LocalWorker>,
        network: Option<vectron_common::faults::NodeNetwork>,
    ) -> Gateway {
        let placement = PlacementClient::on(placement, network.clone());
        let router = Arc::new(routing::Router::on(placement, local, network.clone()));
        let metrics = Arc::new(metrics::Metrics::new());
        Gateway {
            api: Api::new(router, config, metrics.registry(), network),
            metrics,
            auth: Arc::new(auth),
            trusted_proxies: Vec::new(),
            console_dir: None,
        }
    }

    /// Believes `x-forwarded-for` from these networks (the load balancers in front).
    pub fn with_trusted_proxies(mut self, nets: Vec<ipnet::IpNet>) -> Gateway {
        self.trusted_proxies = nets;
        self
    }

    /// Serves the console's built files (`console/dist`) from `dir` at `/console`.
    pub fn with_console(mut self, dir: Option<std::path::PathBuf>) -> Gateway {
        self.console_dir = dir;
        self
    }

    /// The HTTP application: every route behind the auth layer, and every request
    /// (refused ones included) counted in the metrics.
    pub fn http_app(&self) -> axum::Router {
        let admin = http::admin::Admin::new(self.api.clone(), self.metrics.clone());
        let accounts = http::accounts::Accounts::new(self.auth.clone(), self.trusted_proxies.clone());
        let routes = auth::HttpRoutes {
            limits: self.api.config().body_limits,
            trusted_proxies: Arc::new(self.trusted_proxies.clone()),
        };
        http::router(self.api.clone(), admin, accounts, self.console_dir.as_deref())
            .layer(auth::AuthLayer::new(self.auth.clone(), routes))
            .layer(axum::middleware::from_fn_with_state(self.metrics.clone(), metrics::track))
    }

    /// Serves HTTP on `listener` until `shutdown`.
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        // TCP_NODELAY and TLS as on every port; the empty tap makes the peer address reach
        // handlers (log-ins are throttled per client) through axum's impl for tapped
        // listeners.
        let listener =
            HttpListener(vectron_common::net::incoming(listener, vectron_common::tls::Port::Public)).tap_io(|_| {});
        let app = self.http_app().into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    }

    /// Serves the ops port ([`vectron_common::ops`]: `GET /metrics`, `/livez`,
    /// `/readyz`) on `listener` without credentials, until `shutdown`: a port for
    /// scrapers and probes, to keep off the clients' network (the API port's `/metrics`
    /// asks for an admin credential).
    pub async fn serve_ops(
        &self,
        listener: tokio::net::TcpListener,
        health: vectron_common::lifecycle::Health,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (metrics, api) = (self.metrics.clone(), self.api.clone());
        let refresh: vectron_common::ops::Refresh = Arc::new(move || {
            let (metrics, api) = (metrics.clone(), api.clone());
            Box::pin(async move {
                if let Ok(t) = api.router().refresh_now().await {
                    metrics.update_shards(&t);
                }
            })
        });
        let ops =
            vectron_common::ops::Ops::new(self.metrics.registry().clone(), self.metrics.process().clone(), health)
                .with_refresh(refresh);
        vectron_common::ops::serve(listener, ops, shutdown).await
    }

    /// Reports the gateway ready on `health` once it has a routing table (retrying
    /// every half second while the placement driver cannot be reached); from then on it
    /// can route every request. Returns when ready.
    pub async fn await_routing(&self, health: &vectron_common::lifecycle::Health) {
        loop {
            match self.api.router().refresh_now().await {
                Ok(_) => {
                    health.set_ready(true).await;
                    return;
                }
                Err(e) => tracing::debug!("no routing table yet: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Serves gRPC (the public service, and `health` to anyone) on `listener` until
    /// `shutdown`.
    pub async fn serve_grpc(
        &self,
        listener: tokio::net::TcpListener,
        health: vectron_common::lifecycle::Health,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        let health_service = health.service();
        let limits = self.api.config().body_limits;
        let methods = auth::GrpcMethods { limits, trusted_proxies: Arc::new(self.trusted_proxies.clone()) };
        let max_message = policy::grpc_max_message(limits);
        tonic::transport::Server::builder()
            .layer(grpc_metrics::GrpcMetricsLayer::new(self.metrics.clone()))
            .layer(auth::AuthLayer::new(self.auth.clone(), methods))
            .layer(grpc_limits::GrpcLimitLayer::new(limits))
            .add_service(health_service)
            .add_service(
                AuthServiceServer::new(grpc_accounts::AccountsGrpc::new(
                    self.auth.clone(),
                    Arc::new(self.trusted_proxies.clone()),
                ))
                .max_decoding_message_size(policy::SMALL_BODY_BYTES),
            )
            .add_service(
                AdminServiceServer::new(grpc_admin::AdminGrpc::new(self.api.clone()))
                    .max_decoding_message_size(policy::SMALL_BODY_BYTES),
            )
            .add_service(
                VectronServiceServer::new(grpc::VectronGrpc::new(self.api.clone(), self.auth.clone()))
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(MAX_ANSWER_BYTES),
            )
            .serve_with_incoming_shutdown(
                vectron_common::net::incoming(listener, vectron_common::tls::Port::Public),
                shutdown,
            )
            .await
    }
}
