//! One placement driver process: its Raft node, the worker liveness it tracks while it
//! leads, and the proposals the service and scheduler make.
//!
//! Liveness is not replicated: heartbeats land in the leader's memory (last seen, the
//! shards each worker reports leading). Only changes of state — a worker going down or
//! coming back, a replica being replaced — are Raft commands, so an idle cluster writes
//! nothing to the placement log. A new leader starts every worker's clock afresh, so a
//! leader change never marks healthy workers down. A leader that stops cleanly hands its
//! leadership to a caught-up member first.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::{BasicNode, Raft};
use parking_lot::Mutex;
use vectron_common::faults::NodeNetwork;
use vectron_common::now_ms;
use vectron_common::raft::handover::{Handover, LeaderSince, hand_over, lease_over};
use vectron_common::raft::log_store::RocksLogStore;
use vectron_common::raft::network::{GrpcNetworkFactory, PeerChannels, RaftRouter};
use vectron_common::raft::timing::{GroupKind, raft_config};
use vectron_common::raft::{NodeId, PLACEMENT_GROUP, leader_hint, open_storage, raft_error_to_wire};
use vectron_engine::store::Durability;
use vectron_model::status::{LeaderHint, WireError};
use vectron_proto::internal::placement_command::Command;
use vectron_proto::internal::placement_command_result::Result as Outcome;
use vectron_proto::internal::{PlacementCommand, RoutingTable, ShardReport};
use vectron_proto::v1::ErrorCode;

use crate::store::{ClusterView, PlacementStateMachine, PlacementTypes, Request};

/// How a placement node is set up.
#[derive(Debug, Clone)]
pub struct PlacementConfig {
    /// This node's id among the placement members.
    pub node_id: NodeId,
    /// Every member's id and `host:port` (this node's included). The lowest id
    /// initialises the group on first start.
    pub members: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// A worker silent this long is marked down.
    pub down_after: Duration,
    /// A worker down this long has its replicas replaced elsewhere.
    pub replace_after: Duration,
    /// How often the scheduler looks at the cluster.
    pub tick: Duration,
    /// The node's test network (in-process clusters); `None` in production.
    pub network: Option<NodeNetwork>,
}

impl PlacementConfig {
    /// A single-node driver (dev mode) at `addr`.
    pub fn single(addr: &str, data_dir: PathBuf) -> PlacementConfig {
        PlacementConfig {
            node_id: 1,
            members: BTreeMap::from([(1, addr.to_owned())]),
            data_dir,
            durability: Durability::Process,
            down_after: Duration::from_secs(5),
            replace_after: Duration::from_secs(60),
            tick: Duration::from_millis(500),
            network: None,
        }
    }
}

/// What the leader knows of a worker from its heartbeats.
#[derive(Debug, Clone)]
pub struct Liveness {
    pub last_seen: Instant,
    pub shards: Vec<ShardReport>,
}

/// A running placement node.
#[derive(Clone)]
pub struct PlacementNode {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft<PlacementTypes>,
    pub(crate) view: ClusterView,
    pub(crate) config: Arc<PlacementConfig>,
    /// Heartbeat data, kept while this node leads (cleared when it stops leading).
    pub(crate) liveness: Arc<Mutex<HashMap<u64, Liveness>>>,
    /// The term in which `liveness` was collected.
    pub(crate) liveness_term: Arc<Mutex<u64>>,
    /// The Raft transport's channels to the other members.
    channels: PeerChannels,
    /// Since when this node leads (noted by [`PlacementNode::ensure_leader`], which the
    /// scheduler calls every tick), for the hand-over.
    leader_since: Arc<LeaderSince>,
    /// Set once the node begins to stop: it proposes nothing more (see `shutdown`).
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for PlacementNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementNode").field("id", &self.id).field("epoch", &self.view.epoch()).finish()
    }
}

pub use vectron_common::StartError;

/// How long a stopping leader tries to hand its leadership over.
const HANDOVER_WITHIN: Duration = Duration::from_secs(5);

impl PlacementNode {
    /// Opens the node's storage, starts its Raft node and registers it with `router`
    /// (served by the caller's gRPC server). The lowest member id initialises a new
    /// group.
    pub async fn start(config: PlacementConfig, router: &RaftRouter) -> Result<PlacementNode, StartError> {
        if !config.members.contains_key(&config.node_id) {
            return Err(StartError::NotAMember(config.node_id));
        }
        let storage = open_storage(&config.data_dir.join("placement-db"), config.durability)?;
        let sync = config.durability == Durability::Machine;
        let log = RocksLogStore::<PlacementTypes>::new(storage.db().clone(), PLACEMENT_GROUP, sync);
        let fresh = !log.is_initialized()?;
        let sm = PlacementStateMachine::open(&log)?;
        let view = sm.view();
        let channels = PeerChannels::on(config.network.clone());
        let network = GrpcNetworkFactory::new(PLACEMENT_GROUP, channels.clone());
        let raft = Raft::new(config.node_id, Arc::new(raft_config(GroupKind::Placement)), network, log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        router.register(PLACEMENT_GROUP, raft.clone());
        let lowest = config.members.keys().next().copied();
        if fresh && lowest == Some(config.node_id) {
            let members: BTreeMap<NodeId, BasicNode> =
                config.members.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(node = config.node_id, "initialised the placement group"),
                Err(e) => tracing::info!(node = config.node_id, "placement group already initialised: {e}"),
            }
        }
        Ok(PlacementNode {
            id: config.node_id,
            raft,
            view,
            config: Arc::new(config),
            liveness: Default::default(),
            liveness_term: Default::default(),
            channels,
            leader_since: Default::default(),
            stopping: Default::default(),
        })
    }

    /// The cluster token this node's servers expect: its test network's, else the
    /// process's installed one.
    pub fn cluster_token(&self) -> vectron_common::cluster_auth::ClusterToken {
        let installed = vectron_common::cluster_auth::ClusterToken::installed;
        self.config.network.as_ref().map_or_else(installed, |n| n.token.clone())
    }

    pub fn raft(&self) -> &Raft<PlacementTypes> {
        &self.raft
    }

    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// The leader as this node knows it: id and address.
    pub fn leader(&self) -> Option<LeaderHint> {
        leader_hint(&self.raft.metrics().borrow())
    }

    /// Ok when this node leads; NOT_LEADER pointing at the leader otherwise. Also
    /// resets the liveness table when leadership is new.
    pub fn ensure_leader(&self) -> Result<(), WireError> {
        let (leader, current_term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        if leader == Some(self.id) {
            self.leader_since.leading(current_term);
            let mut term = self.liveness_term.lock();
            if *term != current_term {
                *term = current_term;
                let now = Instant::now();
                let mut live = self.liveness.lock();
                live.clear();
                // Every known worker gets a fresh clock under the new leader.
                self.view.read(|s| {
                    for w in s.routing.iter().flat_map(|r| r.workers.iter()) {
                        live.insert(w.id, Liveness { last_seen: now, shards: vec![] });
                    }
                });
            }
            return Ok(());
        }
        Err(WireError::not_leader("placement: this node is not the leader", self.leader()))
    }

    /// Proposes a command and waits for it to be applied; a refused command comes back
    /// as its typed error.
    pub async fn propose(&self, command: Command) -> Result<Outcome, WireError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(WireError::not_leader("placement: this node is stopping", None));
        }
        let cmd = PlacementCommand { now_ms: now_ms(), command: Some(command) };
        let response =
            self.raft.client_write(Request::new(&cmd)).await.map_err(|e| raft_error_to_wire("placement write", &e))?;
        let result = response
            .data
            .decode()
            .map_err(|e| WireError::new(ErrorCode::Internal, format!("undecodable placement result: {e}"), false))?;
        match result.result {
            Some(Outcome::Error(e)) => {
                let code = ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Internal);
                let retryable = code == ErrorCode::Unavailable;
                Err(WireError::new(code, e.message, retryable))
            }
            Some(outcome) => Ok(outcome),
            None => Err(WireError::new(ErrorCode::Internal, "empty placement result", false)),
        }
    }

    /// The routing table with what heartbeats say about leaders and sizes filled in.
    pub fn routing_table(&self) -> RoutingTable {
        let table = self.view.read(|s| s.routing.clone().unwrap_or_default());
        with_reports(table, &self.liveness.lock())
    }

    /// Whether this node knows a leader of the placement group (itself or another).
    pub fn has_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// Stops the Raft node; a leader first hands its leadership to a caught-up member
    /// (see [`vectron_common::raft::handover`]), so the group does not wait out an
    /// election timeout.
    pub async fn shutdown(&self) {
        // Serve on until the lease in office is over, then propose nothing more and never
        // stand again (proposals already in the log are the successor's to commit).
        if self.raft.metrics().borrow().current_leader == Some(self.id) {
            let at = lease_over(&self.raft, &self.leader_since);
            tokio::time::sleep_until(at.min(tokio::time::Instant::now() + HANDOVER_WITHIN)).await;
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.raft.runtime_config().elect(false);
        let handover =
            hand_over(&self.raft, self.id, PLACEMENT_GROUP, &self.leader_since, &self.channels, HANDOVER_WITHIN);
        match handover.await {
            Handover::To(next) => tracing::info!(node = self.id, next, "handed placement leadership over"),
            Handover::Failed(why) => tracing::warn!(node = self.id, "placement leadership not handed over: {why}"),
            Handover::NotLeading | Handover::Alone => {}
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("placement raft shutdown: {e}");
        }
    }
}

/// `table` with what the workers' heartbeats report filled in: each shard's leader (the
/// highest term reported), its voters and its size.
pub fn with_reports(mut table: RoutingTable, liveness: &HashMap<u64, Liveness>) -> RoutingTable {
    for shard in table.collections.iter_mut().flat_map(|c| c.shards.iter_mut()) {
        for (worker, l) in liveness.iter() {
            for r in l.shards.iter().filter(|r| r.shard_id == shard.id) {
                if r.leader && r.term >= shard.leader_term {
                    shard.leader = *worker;
                    shard.leader_term = r.term;
                    shard.voters = r.voters.clone();
                    shard.points_count = r.points_count;
                }
            }
        }
    }
    table
}
