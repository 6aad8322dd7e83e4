//! `vectron`: one binary for every Vectron process.
//!
//! - `vectron placement`: a placement driver node (1 in dev, 3 in production);
//! - `vectron worker`: a worker hosting shard replicas;
//! - `vectron gateway`: the public gRPC + HTTP API;
//! - `vectron dev`: all three in one process, data under `./data` — the zero-set-up way
//!   to try Vectron.
//!
//! Every flag can also be set from the environment (`VECTRON_…`, shown by `--help`).
//! Servers bind their listeners first and stop cleanly on SIGINT/SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::watch;
use vectron_common::raft::network::RaftRouter;
use vectron_engine::store::Durability;
use vectron_gateway::{ApiConfig, Gateway};
use vectron_placement::{PlacementConfig, PlacementNode};
use vectron_worker::{WorkerConfig, WorkerHost};

#[derive(Debug, Parser)]
#[command(name = "vectron", version, about = "Vectron: a distributed, sharded vector database")]
struct Cli {
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
    /// Runs placement + one worker + gateway in one process (data under --data-dir).
    Dev(DevArgs),
}

#[derive(Debug, Args)]
struct PlacementArgs {
    /// This node's id (must appear in --initial-members).
    #[arg(long, env = "VECTRON_NODE_ID", default_value_t = 1)]
    node_id: u64,
    /// Address to listen on (Raft and the placement API).
    #[arg(long, env = "VECTRON_LISTEN", default_value = "127.0.0.1:6001")]
    listen: SocketAddr,
    /// Address other nodes reach this one at (defaults to --listen).
    #[arg(long, env = "VECTRON_ADVERTISE")]
    advertise: Option<String>,
    /// Every member as `id=host:port`, comma-separated; one member (this one) if omitted.
    #[arg(long, env = "VECTRON_INITIAL_MEMBERS", value_delimiter = ',')]
    initial_members: Vec<String>,
    #[arg(long, env = "VECTRON_DATA_DIR", default_value = "./data/placement")]
    data_dir: PathBuf,
    /// Seconds without heartbeats before a worker is marked down.
    #[arg(long, env = "VECTRON_DOWN_AFTER_SECS", default_value_t = 5.0)]
    down_after_secs: f64,
    /// Seconds a worker stays down before its replicas are replaced elsewhere.
    #[arg(long, env = "VECTRON_REPLACE_AFTER_SECS", default_value_t = 60.0)]
    replace_after_secs: f64,
    #[command(flatten)]
    durability: DurabilityArg,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Address to listen on (Raft and the worker API).
    #[arg(long, env = "VECTRON_LISTEN", default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    #[arg(long, env = "VECTRON_ADVERTISE")]
    advertise: Option<String>,
    /// Placement driver addresses, comma-separated.
    #[arg(long, env = "VECTRON_PLACEMENT", value_delimiter = ',', default_value = "127.0.0.1:6001")]
    placement: Vec<String>,
    #[arg(long, env = "VECTRON_DATA_DIR", default_value = "./data/worker")]
    data_dir: PathBuf,
    /// Failure-domain label; replicas of a shard go to distinct zones when possible.
    #[arg(long, env = "VECTRON_ZONE", default_value = "")]
    zone: String,
    /// Milliseconds between heartbeats.
    #[arg(long, env = "VECTRON_HEARTBEAT_MS", default_value_t = 1000)]
    heartbeat_ms: u64,
    #[command(flatten)]
    durability: DurabilityArg,
}

#[derive(Debug, Args)]
struct GatewayArgs {
    #[arg(long, env = "VECTRON_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    #[arg(long, env = "VECTRON_GRPC", default_value = "127.0.0.1:8081")]
    grpc: SocketAddr,
    #[arg(long, env = "VECTRON_PLACEMENT", value_delimiter = ',', default_value = "127.0.0.1:6001")]
    placement: Vec<String>,
    /// Default read deadline in milliseconds (a search past it answers partial).
    #[arg(long, env = "VECTRON_READ_TIMEOUT_MS", default_value_t = 5000)]
    read_timeout_ms: u64,
}

#[derive(Debug, Args)]
struct DevArgs {
    #[arg(long, env = "VECTRON_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[arg(long, env = "VECTRON_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    #[arg(long, env = "VECTRON_GRPC", default_value = "127.0.0.1:8081")]
    grpc: SocketAddr,
    #[arg(long, env = "VECTRON_PLACEMENT_LISTEN", default_value = "127.0.0.1:6001")]
    placement: SocketAddr,
    #[arg(long, env = "VECTRON_WORKER_LISTEN", default_value = "127.0.0.1:9090")]
    worker: SocketAddr,
}

#[derive(Debug, Args)]
struct DurabilityArg {
    /// `process` (WAL without fsync: survives kill -9) or `machine` (fsync every write).
    #[arg(long, env = "VECTRON_DURABILITY", default_value = "process", value_parser = parse_durability)]
    durability: Durability,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "process" => Ok(Durability::Process),
        "machine" => Ok(Durability::Machine),
        other => Err(format!("durability must be process or machine, got {other:?}")),
    }
}

fn parse_members(raw: &[String], node_id: u64, advertise: &str) -> Result<BTreeMap<u64, String>> {
    if raw.is_empty() {
        return Ok(BTreeMap::from([(node_id, advertise.to_owned())]));
    }
    let mut members = BTreeMap::new();
    for m in raw {
        let (id, addr) = m.split_once('=').with_context(|| format!("member {m:?} is not id=host:port"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("member id in {m:?}"))?;
        if id == 0 {
            bail!("member ids start at 1");
        }
        members.insert(id, addr.trim().to_owned());
    }
    Ok(members)
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

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding {what} to {addr}"))
}

async fn start_placement(args: &PlacementArgs, stop: watch::Receiver<bool>) -> Result<tokio::task::JoinHandle<()>> {
    let listener = bind(args.listen, "placement").await?;
    let advertise = args.advertise.clone().unwrap_or_else(|| args.listen.to_string());
    let config = PlacementConfig {
        node_id: args.node_id,
        members: parse_members(&args.initial_members, args.node_id, &advertise)?,
        data_dir: args.data_dir.clone(),
        durability: args.durability.durability,
        down_after: Duration::from_secs_f64(args.down_after_secs),
        replace_after: Duration::from_secs_f64(args.replace_after_secs),
        tick: Duration::from_millis(500),
    };
    let router = RaftRouter::default();
    let node = PlacementNode::start(config, &router).await.context("starting the placement node")?;
    tracing::info!(node = args.node_id, listen = %args.listen, "placement node started");
    tokio::spawn(vectron_placement::scheduler::run(node.clone(), stopped(stop.clone())));
    Ok(tokio::spawn(async move {
        if let Err(e) = vectron_placement::service::serve(listener, node.clone(), router, stopped(stop)).await {
            tracing::error!("placement server: {e}");
        }
        node.shutdown().await;
    }))
}

async fn start_worker(args: &WorkerArgs, stop: watch::Receiver<bool>) -> Result<tokio::task::JoinHandle<()>> {
    let listener = bind(args.listen, "worker").await?;
    let config = WorkerConfig {
        advertise: args.advertise.clone().unwrap_or_else(|| args.listen.to_string()),
        placement: args.placement.clone(),
        data_dir: args.data_dir.clone(),
        zone: args.zone.clone(),
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        durability: args.durability.durability,
    };
    let router = RaftRouter::default();
    // Serve Raft before registering, so peers reach the reopened replicas at once.
    let host = WorkerHost::start(config, router.clone()).await.context("starting the worker")?;
    tracing::info!(worker = host.id(), listen = %args.listen, "worker started");
    tokio::spawn(host.clone().run(stopped(stop.clone())));
    Ok(tokio::spawn(async move {
        if let Err(e) = vectron_worker::service::serve(listener, host, router, stopped(stop)).await {
            tracing::error!("worker server: {e}");
        }
    }))
}

async fn start_gateway(args: &GatewayArgs, stop: watch::Receiver<bool>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let http = bind(args.http, "gateway HTTP").await?;
    let grpc = bind(args.grpc, "gateway gRPC").await?;
    let config = ApiConfig { read_timeout: Duration::from_millis(args.read_timeout_ms), ..ApiConfig::default() };
    let gateway = Arc::new(Gateway::new(args.placement.clone(), config));
    let (g1, g2) = (gateway.clone(), gateway);
    let (s1, s2) = (stop.clone(), stop);
    Ok(vec![
        tokio::spawn(async move {
            if let Err(e) = g1.serve_http(http, stopped(s1)).await {
                tracing::error!("gateway HTTP: {e}");
            }
        }),
        tokio::spawn(async move {
            if let Err(e) = g2.serve_grpc(grpc, stopped(s2)).await {
                tracing::error!("gateway gRPC: {e}");
            }
        }),
    ])
}

async fn run(cli: Cli) -> Result<()> {
    let stop = shutdown_signal();
    let mut tasks = Vec::new();
    match cli.command {
        Command::Placement(args) => tasks.push(start_placement(&args, stop).await?),
        Command::Worker(args) => tasks.push(start_worker(&args, stop).await?),
        Command::Gateway(args) => {
            tasks.extend(start_gateway(&args, stop).await?);
            tracing::info!(http = %args.http, grpc = %args.grpc, "gateway started");
        }
        Command::Dev(args) => {
            let placement = PlacementArgs {
                node_id: 1,
                listen: args.placement,
                advertise: None,
                initial_members: vec![],
                data_dir: args.data_dir.join("placement"),
                down_after_secs: 5.0,
                replace_after_secs: 60.0,
                durability: DurabilityArg { durability: Durability::Process },
            };
            tasks.push(start_placement(&placement, stop.clone()).await?);
            let worker = WorkerArgs {
                listen: args.worker,
                advertise: None,
                placement: vec![args.placement.to_string()],
                data_dir: args.data_dir.join("worker"),
                zone: String::new(),
                heartbeat_ms: 500,
                durability: DurabilityArg { durability: Durability::Process },
            };
            tasks.push(start_worker(&worker, stop.clone()).await?);
            let gateway = GatewayArgs {
                http: args.http,
                grpc: args.grpc,
                placement: vec![args.placement.to_string()],
                read_timeout_ms: 5000,
            };
            tasks.extend(start_gateway(&gateway, stop).await?);
            println!("Vectron dev cluster is up (data in {}):", args.data_dir.display());
            println!("  HTTP  http://{}/v1/collections", args.http);
            println!("  gRPC  {} (vectron.v1.VectronService)", args.grpc);
            println!("  try:  curl -s http://{}/v1/system/health", args.http);
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}
