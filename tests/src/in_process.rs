//! An in-process cluster: placement nodes, workers and a gateway in this test's runtime,
//! on port-0 loopback listeners, each with its own data directory, all their internal
//! calls going through one [`Faults`] table the test controls (cut, partition, isolate,
//! slow). Nodes are named `placement-<i>`, `worker-<i>` and `gateway`.
//!
//! Tests wait on conditions (Raft metrics through the routing table, answers), never on
//! fixed sleeps. The multi-process tests (`Cluster`, SIGKILL, network namespaces) stay the
//! top of the pyramid; this is the fast layer under them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use vectron_common::cluster_auth::ClusterToken;
use vectron_common::faults::{Faults, NodeNetwork};
use vectron_common::lifecycle::{Health, Starting};
use vectron_common::raft::network::RaftRouter;
use vectron_common::raft::timing::LogCompaction;
use vectron_engine::store::Durability;
use vectron_gateway::auth::Authenticator;
use vectron_gateway::{ApiConfig, Gateway};
use vectron_placement::node::{PlacementConfig, PlacementNode};
use vectron_worker::{WorkerConfig, WorkerHost};

/// What to start.
#[derive(Debug, Clone)]
pub struct InProcessSpec {
    pub placement_nodes: usize,
    pub workers: usize,
    /// Zones, assigned to workers round-robin (none when empty).
    pub zones: Vec<String>,
    pub down_after: Duration,
    pub replace_after: Duration,
    /// The cluster token every node presents and expects.
    pub token: ClusterToken,
}

impl Default for InProcessSpec {
    fn default() -> Self {
        InProcessSpec {
            placement_nodes: 1,
            workers: 3,
            zones: Vec::new(),
            down_after: Duration::from_secs(2),
            replace_after: Duration::from_secs(4),
            token: ClusterToken::from_secret(b"the in-process test cluster's secret, 32+ bytes")
                .expect("a long secret"),
        }
    }
}

/// A running in-process cluster; dropping it stops every node.
pub struct InProcessCluster {
    pub faults: Faults,
    /// The gateway's gRPC address.
    pub grpc: String,
    pub placement: Vec<String>,
    /// Worker addresses, in start order (`worker-1` first).
    pub workers: Vec<String>,
    pub hosts: Vec<Arc<WorkerHost>>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = l.local_addr().expect("a bound address").to_string();
    (l, addr)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl InProcessCluster {
    pub async fn start(spec: InProcessSpec) -> InProcessCluster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let faults = Faults::default();
        let (stop, watch) = watch::channel(false);
        let token = spec.token.clone();
        let node =
            |name: &str| Some(NodeNetwork { name: name.to_owned(), faults: faults.clone(), token: token.clone() });

        let mut placement_listeners = Vec::new();
        for i in 1..=spec.placement_nodes {
            let (l, addr) = listener().await;
            faults.name(&format!("placement-{i}"), &addr);
            placement_listeners.push((i as u64, l, addr));
        }
        let members: BTreeMap<u64, String> = placement_listeners.iter().map(|(i, _, a)| (*i, a.clone())).collect();
        let placement: Vec<String> = members.values().cloned().collect();
        for (id, listener, _) in placement_listeners {
            let name = format!("placement-{id}");
            let config = PlacementConfig {
                node_id: id,
                members: members.clone(),
                data_dir: dir.path().join(&name),
                durability: Durability::Process,
                down_after: spec.down_after,
                replace_after: spec.replace_after,
                tick: Duration::from_millis(100),
                network: node(&name),
            };
            let router = RaftRouter::default();
            let n = PlacementNode::start(config, &router).await.expect("a placement node starts");
            tokio::spawn(vectron_placement::scheduler::run(n.clone(), stopped(watch.clone())));
            let stop = stopped(watch.clone());
            let health = Health::new("placement").await;
            health.set_ready(true).await;
            tokio::spawn(async move {
                let _ = vectron_placement::service::serve(listener, n.clone(), router, health, stop).await;
                n.shutdown().await;
            });
        }

        let mut workers = Vec::new();
        let mut hosts = Vec::new();
        for i in 1..=spec.workers {
            let name = format!("worker-{i}");
            let (listener, addr) = listener().await;
            faults.name(&name, &addr);
            let config = WorkerConfig {
                advertise: addr.clone(),
                placement: placement.clone(),
                data_dir: dir.path().join(&name),
                zone: if spec.zones.is_empty() {
                    String::new()
                } else {
                    spec.zones[(i - 1) % spec.zones.len()].clone()
                },
                heartbeat: Duration::from_millis(200),
                durability: Durability::Process,
                compaction: LogCompaction { snapshot_after: 20_000, keep: 1_000 },
                graph_save_interval: Duration::from_secs(10),
                network: node(&name),
            };
            let router = RaftRouter::default();
            let host = WorkerHost::start(config, router.clone()).await.expect("a worker starts");
            let health = Health::new("worker").await;
            tokio::spawn(host.clone().run(health.clone(), stopped(watch.clone())));
            let stop = stopped(watch.clone());
            let serving = Starting::new("the worker");
            serving.set(vectron_worker::service::worker_server(host.clone()));
            let token = host.cluster_token();
            tokio::spawn(async move {
                let _ = vectron_worker::service::serve(listener, serving, router, token, health, stop).await;
            });
            workers.push(addr);
            hosts.push(host);
        }

        let (grpc_listener, grpc) = listener().await;
        faults.name("gateway", &grpc);
        let config = ApiConfig { write_timeout: Duration::from_secs(10), ..ApiConfig::default() };
        let gateway = Gateway::on(placement.clone(), config, Authenticator::Disabled, None, node("gateway"));
        let stop_gateway = stopped(watch.clone());
        tokio::spawn(async move {
            let _ = gateway.serve_grpc(grpc_listener, Health::new("gateway").await, stop_gateway).await;
        });
        InProcessCluster { faults, grpc, placement, workers, hosts, stop, _dir: dir }
    }

    /// The name of the worker at `address`.
    pub fn worker_name(&self, address: &str) -> String {
        let i = self.workers.iter().position(|a| a == address).expect("a worker of this cluster");
        format!("worker-{}", i + 1)
    }
}

impl Drop for InProcessCluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
