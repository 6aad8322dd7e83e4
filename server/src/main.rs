//! `vectron`: one binary for every Vectron process.
//!
//! - `vectron placement`: a placement driver node (1 in dev, 3 in production);
//! - `vectron worker`: a worker hosting shard replicas;
//! - `vectron gateway`: the public gRPC + HTTP API;
//! - `vectron auth`: the auth service (users, API keys, tokens) on etcd;
//! - `vectron reranker`: the reranker service gateways call to re-order candidates;
//! - `vectron dev`: all of them in one process, data under `./data` — the zero-set-up
//!   way to try Vectron, with auth on (an admin API key is created on first start);
//! - `vectron login|collections|points|search|import|export|keys|users|cluster`: the
//!   client commands, for people and scripts ([`vectron_cli`]).
//!
//! Settings come from defaults, a TOML file (`--config`), `VECTRON__SECTION__KEY`
//! environment variables and flags, in that order (see [`config`]). Servers bind their
//! listeners first and stop cleanly on SIGINT/SIGTERM.

mod config;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use vectron_auth::service::{AuthGrpc, bootstrap_admin};
use vectron_auth::setup::{self, StoreLocation};
use vectron_common::cluster_auth::ClusterToken;
use vectron_common::lifecycle::{Health, Starting};
use vectron_common::raft::network::RaftRouter;
use vectron_common::raft::timing::LogCompaction;
use vectron_common::telemetry;
use vectron_engine::store::Durability;
use vectron_gateway::auth::Authenticator;
use vectron_gateway::rerank::RerankerConfig;
use vectron_gateway::routing::LocalWorker;
use vectron_gateway::search_cache::SearchCacheConfig;
use vectron_gateway::{ApiConfig, Gateway};
use vectron_placement::{PlacementConfig, PlacementNode};
use vectron_worker::{WorkerConfig, WorkerHost};

use crate::config::{
    AuthSection, Config, DevSection, GatewaySection, PlacementSection, RerankerSection, WorkerSection,
};

#[derive(Debug, Parser)]
#[command(name = "vectron", version, about = "Vectron: a distributed, sharded vector database")]
struct Cli {
    /// TOML config file (see vectron.example.toml); flags and VECTRON__SECTION__KEY
    /// environment variables override it.
    #[arg(long, global = true, env = "VECTRON_CONFIG")]
    config: Option<PathBuf>,
    /// File holding the cluster secret every process of the cluster shares (internal
    /// APIs refuse calls without it); `vectron dev` creates one under its data dir.
    #[arg(long, global = true)]
    cluster_secret_file: Option<PathBuf>,
    /// This process's TLS certificate (PEM): TLS on every port, mutual TLS inside the
    /// cluster (with --tls-key-file and --tls-ca-file).
    #[arg(long, global = true)]
    tls_cert_file: Option<PathBuf>,
    #[arg(long, global = true)]
    tls_key_file: Option<PathBuf>,
    /// The CA that signs the cluster's certificates.
    #[arg(long, global = true)]
    tls_ca_file: Option<PathBuf>,
    /// How log lines (stderr) are written; filter them with RUST_LOG.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VECTRON_LOG_FORMAT")]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector (e.g. http://otel-collector:4317);
    /// none: no traces are exported.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a placement driver node.
    Placement(PlacementArgs),
    /// Runs a worker.
    Worker(WorkerArgs),
    /// Runs a gateway.
    Gateway(GatewayArgs),
    /// Runs the auth service.
    Auth(AuthArgs),
    /// Runs the reranker service (gateways call it to re-order search candidates).
    Reranker(RerankerArgs),
    /// Runs placement + one worker + auth + reranker + gateway in one process (data under
    /// --data-dir).
    Dev(DevArgs),
    #[command(flatten)]
    Client(vectron_cli::Command),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 500ms or 5s: {e}"))
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "process" => Ok(Durability::Process),
        "machine" => Ok(Durability::Machine),
        other => Err(format!("durability must be process or machine, got {other:?}")),
    }
}

/// Flags override the config file and environment; only the flags given are set.
#[derive(Debug, Args, Serialize)]
struct PlacementArgs {
    /// This node's id (must appear in --initial-members) [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<u64>,
    /// This node's ordinal in a StatefulSet (the pod-index label): the node id is the
    /// ordinal + 1, whatever --node-id says.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_ordinal: Option<u64>,
    /// Address to listen on (Raft and the placement API) [default: 127.0.0.1:6001].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// Address other nodes reach this one at [default: --listen].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise: Option<String>,
    /// Every member as `id=host:port`, comma-separated [default: this node alone].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    initial_members: Vec<String>,
    /// [default: ./data/placement]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Silence after which a worker is marked down [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde::option")]
    down_after: Option<Duration>,
    /// Time a worker stays down before its replicas are replaced elsewhere [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde::option")]
    replace_after: Option<Duration>,
    /// `process` (WAL without fsync: survives kill -9) or `machine` (fsync every write).
    #[arg(long, value_parser = parse_durability)]
    #[serde(skip_serializing_if = "Option::is_none")]
    durability: Option<Durability>,
    /// The ops port: GET /metrics, /livez, /readyz without credentials, for scrapers
    /// and probes [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<SocketAddr>,
}

#[derive(Debug, Args, Serialize)]
struct WorkerArgs {
    /// Address to listen on (Raft and the worker API) [default: 127.0.0.1:9090].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise: Option<String>,
    /// Placement driver addresses, comma-separated [default: 127.0.0.1:6001].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    placement: Vec<String>,
    /// [default: ./data/worker]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Failure-domain label; replicas of a shard go to distinct zones when possible.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
    /// Time between heartbeats [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde::option")]
    heartbeat: Option<Duration>,
    #[arg(long, value_parser = parse_durability)]
    #[serde(skip_serializing_if = "Option::is_none")]
    durability: Option<Durability>,
    /// A shard group snapshots (and may drop its log) after this many entries [default: 20000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_after_entries: Option<u64>,
    /// Entries kept behind a snapshot for lagging replicas [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_entries_kept: Option<u64>,
    /// The ops port: GET /metrics, /livez, /readyz without credentials, for scrapers
    /// and probes [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<SocketAddr>,
}

#[derive(Debug, Args, Serialize)]
struct GatewayArgs {
    /// [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<SocketAddr>,
    /// [default: 127.0.0.1:8081]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc: Option<SocketAddr>,
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    placement: Vec<String>,
    /// Default read deadline; a search past it answers partial [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde::option")]
    read_timeout: Option<Duration>,
    /// Auth service addresses (comma-separated).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    auth: Vec<String>,
    /// The reranker service's address [default: none: reranks are skipped].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    reranker: Option<String>,
    /// Serve without checking credentials (tests and trusted networks only).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_auth: bool,
    /// On SIGTERM, how long to report not ready while still serving, before closing
    /// [default: 0s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde::option")]
    drain_delay: Option<Duration>,
    /// The ops port: GET /metrics, /livez, /readyz without credentials, for scrapers
    /// and probes [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<SocketAddr>,
    /// The console's built files (console/dist), served at /console [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    console_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Serialize)]
struct AuthArgs {
    /// [default: 127.0.0.1:8090]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// etcd endpoints, comma-separated [default: none: the embedded store under --data-dir].
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    etcd: Vec<String>,
    /// [default: ./data/auth]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// File holding the JWT signing secret (at least 32 bytes).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_key_file: Option<PathBuf>,
    /// Anyone may create a (non-admin) user.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    open_signup: bool,
    /// Create an admin API key in this file if it is missing (mode 0600).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_key_file: Option<PathBuf>,
    /// The ops port: GET /metrics, /livez, /readyz without credentials, for scrapers
    /// and probes [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<SocketAddr>,
}

#[derive(Debug, Args, Serialize)]
struct RerankerArgs {
    /// [default: 127.0.0.1:50051]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// The ops port: GET /metrics, /livez, /readyz without credentials, for scrapers
    /// and probes [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<SocketAddr>,
}

#[derive(Debug, Args, Serialize)]
struct DevArgs {
    /// [default: ./data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<SocketAddr>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc: Option<SocketAddr>,
    #[arg(long = "placement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    placement_listen: Option<SocketAddr>,
    #[arg(long = "worker")]
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_listen: Option<SocketAddr>,
    #[arg(long = "auth")]
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_listen: Option<SocketAddr>,
    #[arg(long = "reranker")]
    #[serde(skip_serializing_if = "Option::is_none")]
    reranker_listen: Option<SocketAddr>,
    /// Serve without credentials (no auth service).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_auth: bool,
    /// The console's built files (console/dist), served at /console [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    console_dir: Option<PathBuf>,
    /// TLS on every port, with a CA and certificate made under <data-dir>/tls on first
    /// start (clients trust <data-dir>/tls/ca.crt); --tls-*-file flags name others.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
}

/// A shutdown signal every server of the process waits on.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// How long a server may take to close after it was told to: its graceful close waits
/// for every connection, and a client may hold a stream open (a `SearchStream`, a health
/// `Watch`) for as long as it likes.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Runs `server` to its end; once `closing` turns true it has [`CLOSE_WITHIN`] to finish,
/// after which it is dropped (closing the connections left).
async fn close_within<E: std::fmt::Display>(
    server: impl std::future::Future<Output = Result<(), E>>,
    mut closing: watch::Receiver<bool>,
    what: &str,
) {
    tokio::pin!(server);
    let late = async {
        let _ = closing.wait_for(|c| *c).await;
        tokio::time::sleep(CLOSE_WITHIN).await;
    };
    tokio::select! {
        result = &mut server => {
            if let Err(e) = result {
                tracing::error!("{what}: {e}");
            }
        }
        _ = late => tracing::warn!("{what}: connections still open {CLOSE_WITHIN:?} after closing; dropped"),
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding {what} to {addr}"))
}

/// The process's metrics registry (process CPU, memory and threads in it; callers add
/// their collectors), served on the ops port at `addr` if one is configured: `GET
/// /metrics`, `/livez`, `/readyz` for `health` (see [`vectron_common::ops`]), until `stop`
/// turns true (or its sender is gone): the moment the process's API port has closed, so
/// probes and scrapes go on through a hand-over or a drain. Bound before the process's
/// service starts, so probes see it starting.
async fn start_ops(
    addr: Option<SocketAddr>,
    what: &'static str,
    health: &Health,
    stop: watch::Receiver<bool>,
) -> Result<prometheus::Registry> {
    let registry = prometheus::Registry::new();
    let process = vectron_common::ops::ProcessMetrics::new(&registry);
    if let Some(addr) = addr {
        let listener = bind(addr, what).await?;
        let ops = vectron_common::ops::Ops::new(registry.clone(), process, health.clone());
        tokio::spawn(async move {
            close_within(vectron_common::ops::serve(listener, ops, stopped(stop.clone())), stop, what).await;
        });
    }
    Ok(registry)
}

/// `stop`, then `health` reported not ready for `delay` while serving goes on: the
/// moment a process's servers should close (load balancers and peers have had `delay` to
/// stop sending it requests).
fn drained(stop: watch::Receiver<bool>, health: Health, delay: Duration) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        stopped(stop).await;
        health.stop().await;
        tokio::time::sleep(delay).await;
        let _ = tx.send(true);
    });
    rx
}

async fn start_placement(c: &PlacementSection, stop: watch::Receiver<bool>) -> Result<tokio::task::JoinHandle<()>> {
    let members = c.members()?;
    let listener = bind(c.listen, "placement").await?;
    let config = PlacementConfig {
        node_id: c.id(),
        members,
        data_dir: c.data_dir.clone(),
        durability: c.durability,
        down_after: c.down_after,
        replace_after: c.replace_after,
        tick: Duration::from_millis(500),
        network: None,
    };
    let router = RaftRouter::default();
    let node = PlacementNode::start(config, &router).await.context("starting the placement node")?;
    tracing::info!(node = c.id(), listen = %c.listen, "placement node started");
    tokio::spawn(vectron_placement::scheduler::run(node.clone(), stopped(stop.clone())));
    let health = Health::new("placement").await;
    // The ports stay open while a stopping leader hands its leadership over.
    let (close, closed) = watch::channel(false);
    let registry = start_ops(c.metrics, "placement ops", &health, closed.clone()).await?;
    registry
        .register(Box::new(vectron_placement::metrics::PlacementCollector::new(node.clone())))
        .expect("unique metrics");
    let serving =
        vectron_placement::service::serve(listener, node.clone(), router, health.clone(), stopped(closed.clone()));
    let server = tokio::spawn(close_within(serving, closed, "placement server"));
    Ok(tokio::spawn(async move {
        // Ready while the group has a leader (this node or another).
        let mut stop = stop;
        loop {
            health.set_ready(node.has_leader()).await;
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        health.stop().await;
        node.shutdown().await;
        let _ = close.send(true);
        let _ = server.await;
    }))
}

/// Starts a worker; the returned [`LocalWorker`] lets a gateway in this process call it
/// without a network hop. The port serves from the start (UNAVAILABLE until the worker
/// has registered and opened its shards, see [`Starting`]).
async fn start_worker(
    c: &WorkerSection,
    stop: watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, LocalWorker)> {
    let listener = bind(c.listen, "worker").await?;
    let advertise = c.advertise.clone().unwrap_or_else(|| c.listen.to_string());
    let config = WorkerConfig {
        advertise: advertise.clone(),
        placement: c.placement.clone(),
        data_dir: c.data_dir.clone(),
        zone: c.zone.clone(),
        heartbeat: c.heartbeat,
        durability: c.durability,
        compaction: LogCompaction { snapshot_after: c.snapshot_after_entries, keep: c.log_entries_kept },
        graph_save_interval: c.graph_save_interval,
        network: None,
    };
    let router = RaftRouter::default();
    let health = Health::new("worker").await;
    // The ports stay open while the stopping worker hands its shards over.
    let (close, closed) = watch::channel(false);
    let registry = start_ops(c.metrics, "worker ops", &health, closed.clone()).await?;
    let service = Starting::new("the worker");
    let serving = vectron_worker::service::serve(
        listener,
        service.clone(),
        router.clone(),
        ClusterToken::installed(),
        health.clone(),
        stopped(closed.clone()),
    );
    let server = tokio::spawn(close_within(serving, closed, "worker server"));
    let host = tokio::select! {
        host = WorkerHost::start(config, router) => host.context("starting the worker")?,
        _ = stopped(stop.clone()) => anyhow::bail!("stopped before the worker had started"),
    };
    service.set(vectron_worker::service::worker_server(host.clone()));
    let collector = vectron_worker::metrics::WorkerCollector::new(Arc::downgrade(&host));
    registry.register(Box::new(collector)).expect("unique metrics");
    tracing::info!(worker = host.id(), listen = %c.listen, "worker started");
    let local =
        LocalWorker { address: advertise, service: Arc::new(vectron_worker::service::WorkerGrpc::new(host.clone())) };
    let task = tokio::spawn(async move {
        host.run(health, stopped(stop)).await;
        let _ = close.send(true);
        let _ = server.await;
    });
    Ok((task, local))
}

/// How long the auth service waits for its store to answer at start.
const STORE_WAIT: Duration = Duration::from_secs(120);

/// Starts the auth service; creates the first admin on first start (printing a
/// generated password once) and, when configured, the admin API key file (printing the
/// key once).
async fn start_auth(c: &AuthSection, stop: watch::Receiver<bool>) -> Result<tokio::task::JoinHandle<()>> {
    let tokens = c.token_config()?;
    let listener = bind(c.listen, "auth").await?;
    if !vectron_common::cluster_auth::installed() && c.trusted_proxies.is_empty() {
        tracing::warn!(
            "no cluster secret and no auth.trusted_proxies: the gateways' x-forwarded-for is not believed, so \
             log-in throttling counts every client behind a gateway as that gateway"
        );
    }
    let location = c.store_location();
    if matches!(location, StoreLocation::Embedded { .. }) {
        tracing::info!("auth records in the embedded store under {} (one auth process only)", c.data_dir.display());
    }
    let health = Health::new("auth").await;
    // Open until the auth server has closed (through its drain).
    let (ops_close, ops_closed) = watch::channel(false);
    start_ops(c.metrics, "auth ops", &health, ops_closed).await?;
    let store = setup::open_store(&location).await.context("opening the auth store")?;
    // The store (etcd) may start after this process, as pods of a cluster do: wait for
    // it a while instead of failing at once.
    let waiting_since = std::time::Instant::now();
    let created = loop {
        match bootstrap_admin(store.clone(), &c.admin_user, c.admin_password.as_deref()).await {
            Err(e) if e.is_retryable() && waiting_since.elapsed() < STORE_WAIT => {
                tracing::warn!("waiting for the auth store: {e}");
                let mut stopping = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopping.wait_for(|s| *s) => anyhow::bail!("stopped while waiting for the auth store"),
                }
            }
            other => break other.context("creating the first admin")?,
        }
    };
    match created {
        Some(password) if c.admin_password.is_none() => {
            println!("Created admin user {:?} with password {password} (shown once; change it)", c.admin_user);
        }
        Some(_) => tracing::info!(user = c.admin_user, "created the admin user from the configuration"),
        None => {}
    }
    if let Some(path) = &c.admin_key_file {
        let (key, created) =
            setup::admin_key_file(store.clone(), &c.admin_user, path).await.context("creating the admin API key")?;
        if created {
            println!("Admin API key (shown once; kept in {}, mode 0600):\n    {key}", path.display());
        }
    }
    let service = AuthGrpc::new(store, tokens, c.service_config());
    tracing::info!(listen = %c.listen, "auth service started");
    health.set_ready(true).await;
    let closing = drained(stop, health.clone(), c.drain_delay);
    Ok(tokio::spawn(async move {
        let serving = vectron_auth::service::serve(listener, service, health, stopped(closing.clone()));
        close_within(serving, closing, "auth server").await;
        let _ = ops_close.send(true);
    }))
}

async fn start_gateway(
    c: &GatewaySection,
    stop: watch::Receiver<bool>,
    local: Option<LocalWorker>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let http = bind(c.http, "gateway HTTP").await?;
    let grpc = bind(c.grpc, "gateway gRPC").await?;
    let metrics = match c.metrics {
        Some(addr) => Some(bind(addr, "gateway ops").await?),
        None => None,
    };
    let config = ApiConfig {
        read_timeout: c.read_timeout,
        write_timeout: c.write_timeout,
        body_limits: vectron_gateway::policy::BodyLimits { upsert: c.max_upsert_bytes },
        reranker: c.reranker.clone().map(|address| RerankerConfig { address, timeout: c.rerank_timeout }),
        search_cache: SearchCacheConfig { max_bytes: c.search_cache_bytes, ttl: c.search_cache_ttl },
        ..ApiConfig::default()
    };
    let auth = if c.no_auth {
        tracing::warn!("gateway started with --no-auth: every request has full access");
        Authenticator::Disabled
    } else {
        let rate = std::num::NonZeroU32::new(c.rate_limit_per_sec);
        Authenticator::service(&c.auth, c.auth_cache_ttl, rate).map_err(|e| {
            anyhow::anyhow!("the gateway needs auth service addresses (gateway.auth / --auth), or --no-auth: {e}")
        })?
    };
    let gateway = Arc::new(
        Gateway::new(c.placement.clone(), config, auth, local)
            .with_trusted_proxies(c.trusted_proxies.clone())
            .with_console(c.console_dir.clone()),
    );
    let health = Health::new("gateway").await;
    // On SIGTERM: not ready, serving on for the drain delay, then no new connections and
    // the requests in flight finished.
    let drained = drained(stop.clone(), health.clone(), c.drain_delay);
    let ready = {
        let (gateway, health) = (gateway.clone(), health.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = gateway.await_routing(&health) => {}
                _ = stopped(stop) => {}
            }
        })
    };
    let mut tasks = vec![ready];
    if let Some(listener) = metrics {
        let (g, s, h) = (gateway.clone(), drained.clone(), health.clone());
        tasks.push(tokio::spawn(async move {
            close_within(g.serve_ops(listener, h, stopped(s.clone())), s, "gateway ops").await;
        }));
    }
    let (g1, g2) = (gateway.clone(), gateway);
    let (s1, s2) = (drained.clone(), drained);
    tasks.extend([
        tokio::spawn(async move {
            close_within(g1.serve_http(http, stopped(s1.clone())), s1, "gateway HTTP").await;
        }),
        tokio::spawn(async move {
            close_within(g2.serve_grpc(grpc, health, stopped(s2.clone())), s2, "gateway gRPC").await;
        }),
    ]);
    Ok(tasks)
}

/// Starts the reranker service.
async fn start_reranker(c: &RerankerSection, stop: watch::Receiver<bool>) -> Result<tokio::task::JoinHandle<()>> {
    let cross_encoders = c.cross_encoders()?;
    let listener = bind(c.listen, "reranker").await?;
    let service = vectron_reranker::service::RerankGrpc::new(cross_encoders);
    tracing::info!(listen = %c.listen, endpoints = c.cross_encoders.len(), "reranker started");
    let health = Health::new("reranker").await;
    health.set_ready(true).await;
    let closing = drained(stop, health.clone(), c.drain_delay);
    let (ops_close, ops_closed) = watch::channel(false);
    start_ops(c.metrics, "reranker ops", &health, ops_closed).await?;
    Ok(tokio::spawn(async move {
        let token = ClusterToken::installed();
        let serving = vectron_reranker::service::serve(listener, service, token, health, stopped(closing.clone()));
        close_within(serving, closing, "reranker server").await;
        let _ = ops_close.send(true);
    }))
}

/// `vectron dev`'s auth service: the embedded store, a signing secret and an admin API
/// key kept under the data dir (created on first start, mode 0600). Returns the key file.
async fn start_dev_auth(
    dev: &DevSection,
    base: &AuthSection,
    stop: watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, PathBuf)> {
    let dir = dev.data_dir.join("auth");
    let secret = dir.join("jwt.secret");
    setup::signing_key_or_create(&base.signing_key_id, &secret).context("creating the dev signing secret")?;
    let key_file = dev.data_dir.join("admin.key");
    let auth = AuthSection {
        listen: dev.auth_listen,
        etcd: Vec::new(),
        data_dir: dir,
        signing_key_file: Some(secret),
        signing_secret: None,
        admin_key_file: Some(key_file.clone()),
        ..base.clone()
    };
    Ok((start_auth(&auth, stop).await?, key_file))
}

fn print_dev_banner(dev: &DevSection, admin_key_file: Option<&PathBuf>, console_dir: Option<&Path>, ca: Option<&Path>) {
    let scheme = if ca.is_some() { "https" } else { "http" };
    println!("Vectron dev cluster is up (data in {}):", dev.data_dir.display());
    println!("  HTTP  {scheme}://{}/v1/collections", dev.http);
    if let Some(dir) = console_dir {
        println!("  console {scheme}://{}/console/ (files from {})", dev.http, dir.display());
    }
    if let Some(ca) = ca {
        println!("  TLS on every port; clients trust {}", ca.display());
    }
    let curl = match ca {
        Some(ca) => format!("curl -s --cacert {}", ca.display()),
        None => "curl -s".to_owned(),
    };
    println!("  gRPC  {} (vectron.v1.VectronService)", dev.grpc);
    println!("  reranker {} (searches with \"rerank\")", dev.reranker_listen);
    let Some(key_file) = admin_key_file else {
        println!("  auth is off (--no-auth): every request has full access");
        println!("  try:  {curl} {scheme}://{}/v1/collections", dev.http);
        return;
    };
    println!("  auth  {} (vectron.v1.AuthService); admin API key in {}", dev.auth_listen, key_file.display());
    println!("  try:  {curl} -H \"x-api-key: $(cat {})\" {scheme}://{}/v1/collections", key_file.display(), dev.http);
}

/// The command line's flags as a partial config, under the subcommand's section.
fn flag_layer(cli: &Cli) -> Result<serde_json::Value> {
    let (section, flags) = match &cli.command {
        Command::Placement(a) => ("placement", serde_json::to_value(a)?),
        Command::Worker(a) => ("worker", serde_json::to_value(a)?),
        Command::Gateway(a) => ("gateway", serde_json::to_value(a)?),
        Command::Auth(a) => ("auth", serde_json::to_value(a)?),
        Command::Reranker(a) => ("reranker", serde_json::to_value(a)?),
        Command::Dev(a) => ("dev", serde_json::to_value(a)?),
        Command::Client(_) => return Ok(serde_json::json!({})),
    };
    let mut layer = serde_json::json!({ section: flags });
    if let Some(path) = &cli.cluster_secret_file {
        layer["cluster"] = serde_json::json!({ "secret_file": path });
    }
    let tls = [("cert_file", &cli.tls_cert_file), ("key_file", &cli.tls_key_file), ("ca_file", &cli.tls_ca_file)];
    for (key, path) in tls {
        if let Some(path) = path {
            layer["tls"][key] = serde_json::json!(path);
        }
    }
    Ok(layer)
}

/// Installs the cluster secret, if one is configured (or, for `vectron dev`, created
/// under its data dir).
fn install_cluster_secret(config: &Config, command: &Command) -> Result<()> {
    let secret = match (config.cluster.secret()?, command) {
        (Some(s), _) => Some(s),
        (None, Command::Dev(_)) => Some(
            vectron_common::secret_file::read_or_create(&config.dev.data_dir.join("cluster.secret"))
                .map_err(anyhow::Error::msg)?,
        ),
        (None, _) => {
            tracing::warn!(
                "no cluster secret (cluster.secret_file / --cluster-secret-file): the internal APIs accept calls \
                 from anyone who can reach them"
            );
            None
        }
    };
    if let Some(secret) = secret {
        vectron_common::cluster_auth::install(&secret).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Installs TLS, if configured (or, for `vectron dev --tls`, with certificates made
/// under its data dir for the names its addresses use). Returns the CA file clients
/// are to trust.
fn install_tls(config: &Config, command: &Command) -> Result<Option<PathBuf>> {
    let files = match (config.tls.files()?, command) {
        (Some(files), _) => files,
        (None, Command::Dev(_)) if config.dev.tls => {
            let dev = &config.dev;
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
            let listens = [dev.http, dev.grpc, dev.placement_listen, dev.worker_listen, dev.auth_listen];
            for ip in listens.iter().chain([&dev.reranker_listen]).map(|a| a.ip().to_string()) {
                if !names.contains(&ip) {
                    names.push(ip);
                }
            }
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            vectron_common::tls::generate(&dev.data_dir.join("tls"), &names).context("making dev certificates")?
        }
        (None, _) => return Ok(None),
    };
    let ca = files.ca_file.clone();
    let tls = vectron_common::tls::Tls::load(files)?;
    vectron_common::tls::install(tls, config.tls.reload_interval).map_err(anyhow::Error::msg)?;
    Ok(Some(ca))
}

async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref(), flag_layer(&cli)?)?;
    install_cluster_secret(&config, &cli.command)?;
    let ca_file = install_tls(&config, &cli.command)?;
    let stop = shutdown_signal();
    let mut tasks = Vec::new();
    match cli.command {
        Command::Placement(_) => tasks.push(start_placement(&config.placement, stop).await?),
        Command::Worker(_) => tasks.push(start_worker(&config.worker, stop).await?.0),
        Command::Gateway(_) => {
            tasks.extend(start_gateway(&config.gateway, stop, None).await?);
            tracing::info!(http = %config.gateway.http, grpc = %config.gateway.grpc, "gateway started");
        }
        Command::Auth(_) => tasks.push(start_auth(&config.auth, stop).await?),
        Command::Reranker(_) => tasks.push(start_reranker(&config.reranker, stop).await?),
        Command::Client(_) => anyhow::bail!("not a server command"),
        Command::Dev(_) => {
            let dev = &config.dev;
            let placement = PlacementSection {
                node_id: 1,
                listen: dev.placement_listen,
                advertise: None,
                initial_members: vec![],
                data_dir: dev.data_dir.join("placement"),
                ..config.placement.clone()
            };
            tasks.push(start_placement(&placement, stop.clone()).await?);
            let worker = WorkerSection {
                listen: dev.worker_listen,
                advertise: None,
                placement: vec![dev.placement_listen.to_string()],
                data_dir: dev.data_dir.join("worker"),
                heartbeat: Duration::from_millis(500),
                ..config.worker.clone()
            };
            let (task, local) = start_worker(&worker, stop.clone()).await?;
            tasks.push(task);
            let admin_key_file = if dev.no_auth {
                None
            } else {
                let (task, key_file) = start_dev_auth(dev, &config.auth, stop.clone()).await?;
                tasks.push(task);
                Some(key_file)
            };
            let reranker = RerankerSection { listen: dev.reranker_listen, ..config.reranker.clone() };
            tasks.push(start_reranker(&reranker, stop.clone()).await?);
            let console_dir = dev.console_dir.clone().or_else(|| config.gateway.console_dir.clone());
            let gateway = GatewaySection {
                http: dev.http,
                grpc: dev.grpc,
                placement: vec![dev.placement_listen.to_string()],
                auth: vec![dev.auth_listen.to_string()],
                reranker: Some(dev.reranker_listen.to_string()),
                no_auth: dev.no_auth,
                console_dir: console_dir.clone(),
                ..config.gateway.clone()
            };
            tasks.extend(start_gateway(&gateway, stop, Some(local)).await?);
            print_dev_banner(dev, admin_key_file.as_ref(), console_dir.as_deref(), ca_file.as_deref());
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// For people: one aligned line per event.
    Text,
    /// For log collectors: one JSON object per line (timestamp, level, target, fields,
    /// the spans it happened in).
    Json,
}

/// The service name a process's traces carry.
fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Placement(_) => "vectron-placement",
        Command::Worker(_) => "vectron-worker",
        Command::Gateway(_) => "vectron-gateway",
        Command::Auth(_) => "vectron-auth",
        Command::Reranker(_) => "vectron-reranker",
        Command::Dev(_) | Command::Client(_) => "vectron",
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        // The client commands print for people (or -o json) and exit with their own codes.
        Command::Client(command) => {
            let server_only = [
                ("--cluster-secret-file", cli.cluster_secret_file.is_some()),
                ("--tls-cert-file", cli.tls_cert_file.is_some()),
                ("--tls-key-file", cli.tls_key_file.is_some()),
                ("--tls-ca-file", cli.tls_ca_file.is_some()),
                // Not OTEL_EXPORTER_OTLP_ENDPOINT: a client may run where it is set.
                ("--otlp-endpoint", std::env::args().any(|a| a.starts_with("--otlp-endpoint"))),
            ];
            if let Some((flag, _)) = server_only.iter().find(|(_, given)| *given) {
                eprintln!(
                    "error: {flag} is for the server commands; client commands take --ca-file (and --url, --api-key)"
                );
                std::process::exit(vectron_cli::Exit::Invalid as i32);
            }
            std::process::exit(runtime.block_on(vectron_cli::run(command)))
        }
        server => {
            let format = match cli.log_format {
                LogFormat::Text => telemetry::LogFormat::Text,
                LogFormat::Json => telemetry::LogFormat::Json,
            };
            let endpoint = cli.otlp_endpoint.as_deref().filter(|e| !e.is_empty());
            let telemetry = {
                // The exporter's channel lives on the runtime.
                let _in = runtime.enter();
                telemetry::init(format, endpoint, service_name(&server)).map_err(anyhow::Error::msg)?
            };
            let result = runtime.block_on(run(Cli { command: server, ..cli }));
            telemetry.shutdown();
            result
        }
    }
}
