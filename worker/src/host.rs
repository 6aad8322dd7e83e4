//! A worker process's replicas and its conversation with the placement driver.
//!
//! [`WorkerHost`] owns the process's RocksDB (engine column families + Raft's), the
//! replicas it hosts (one openraft group each, all registered with one [`RaftRouter`]),
//! and the loop that heartbeats to the placement driver and reconciles:
//! - a shard whose target replicas name this worker and that is not hosted here gets a
//!   replica (the first of its initial replicas initialises the group, once: a group's
//!   Raft records outlive a dropped replica, so it is never initialised twice);
//! - a hosted shard that no longer exists is dropped; one this worker is no longer a
//!   target of is dropped once the group's membership no longer includes it;
//! - on shards this worker leads, the group's membership is moved to the target
//!   (add learners, wait for them to catch up, change membership).
//!
//! Readiness: the worker reports ready (gRPC health, see
//! [`vectron_common::lifecycle`]) once it is registered, heard by the placement driver
//! and every replica it opened has caught up with its leader. Stopping
//! ([`WorkerHost::stop`]): it proposes nothing more, hands each group it leads to a
//! caught-up voter, stops the groups and saves each shard's graph.
//!
//! The worker's id is assigned by the placement driver at first start and kept in
//! `<data>/worker-id`; it is never reused. A worker whose stored id an operator removed
//! moves its data to `<data>/retired/` and joins as a new worker: its replicas belonged
//! to groups that no longer count it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use openraft::{BasicNode, Raft, ServerState};
use parking_lot::RwLock;
use vectron_common::faults::NodeNetwork;
use vectron_common::lifecycle::Health;
use vectron_common::placement_client::PlacementClient;
use vectron_common::raft::handover::{Handover, LeaderSince, hand_over, lease_over};
use vectron_common::raft::leaders::LeaderChanges;
use vectron_common::raft::network::{GrpcNetworkFactory, PeerChannels, RaftRouter};
use vectron_common::raft::timing::{GroupKind, LogCompaction, raft_config_with};
use vectron_common::raft::{NodeId, leader_hint, open_storage};
use vectron_engine::store::Durability;
use vectron_engine::{Shard, ShardId, Storage};
use vectron_model::convert::shard_config;
use vectron_model::status::WireError;

use crate::error::WorkerError;
use vectron_proto::internal as pi;
use vectron_proto::internal::worker_client::WorkerClient;
use vectron_proto::v1::ErrorCode;

use crate::replica::{ShardLog, ShardSlot, ShardStateMachine, ShardTypes};

/// How a worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `host:port` other nodes and gateways reach this worker at.
    pub advertise: String,
    /// Placement driver addresses.
    pub placement: Vec<String>,
    pub data_dir: PathBuf,
    pub zone: String,
    pub heartbeat: Duration,
    pub durability: Durability,
    /// When shard groups compact their logs.
    pub compaction: LogCompaction,
    /// How often shards with unsaved writes save their graph file in the background.
    pub graph_save_interval: Duration,
    /// The worker's test network (in-process clusters); `None` in production.
    pub network: Option<NodeNetwork>,
}

/// A leader that heard from no quorum for this long cannot commit: it is not reported as
/// leading (so a shard whose majority is gone shows as leaderless).
const QUORUM_ACK_STALE_MS: u64 = 3_000;

/// A leader serves writes and LEADER reads only while a quorum acknowledged it within the
/// minimum election timeout: past that the others may have elected a new leader, so a
/// leader cut off from its group stops serving (stale LEADER reads for about a second at
/// most; the metric it is judged by is refreshed every heartbeat). LINEARIZABLE reads
/// confirm with a quorum at read time and are never stale.
const LEADER_LEASE_MS: u64 = vectron_common::raft::timing::SHARD_ELECTION_TIMEOUT_MIN_MS;

/// Whether the group's metrics show `me` leading with a quorum that acknowledged it less
/// than `max_ack_age_ms` ago (a group of one needs none).
fn leads(m: &openraft::RaftMetrics<NodeId, BasicNode>, me: NodeId, max_ack_age_ms: u64) -> bool {
    let leader = m.current_leader == Some(me) && m.state == ServerState::Leader;
    let alone = m.membership_config.membership().voter_ids().count() <= 1;
    leader && (alone || m.millis_since_quorum_ack.is_some_and(|ms| ms < max_ack_age_ms))
}

/// A hosted replica.
pub struct Replica {
    pub shard_id: u64,
    pub raft: Raft<ShardTypes>,
    pub slot: ShardSlot,
    /// A membership change is being driven (one at a time per group).
    changing: AtomicBool,
    /// Since when this worker leads the group (noted each heartbeat), for hand-overs.
    leader_since: LeaderSince,
    /// Leaders seen elected in the group since the replica opened (for the metrics).
    pub leader_changes: LeaderChanges,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("shard_id", &self.shard_id).finish()
    }
}

impl Replica {
    /// The shard's data, or UNAVAILABLE while a snapshot is being installed.
    pub fn shard(&self) -> Result<Arc<Shard>, WorkerError> {
        self.slot.get().ok_or(WorkerError::Restoring { shard_id: self.shard_id })
    }
}

/// The worker's replicas and placement state.
#[derive(Debug)]
pub struct WorkerHost {
    id: NodeId,
    config: WorkerConfig,
    storage: Storage,
    router: RaftRouter,
    channels: PeerChannels,
    placement: PlacementClient,
    replicas: RwLock<HashMap<u64, Arc<Replica>>>,
    routing: RwLock<pi::RoutingTable>,
    /// Set when the worker begins to stop: it proposes no more writes and hands its
    /// groups over.
    stopping: AtomicBool,
    /// Writes between their leadership check and the log (see [`WorkerHost::write_permit`]).
    writes_in_flight: AtomicUsize,
}

/// A write admitted by [`WorkerHost::write_permit`]; dropped once it is in the log.
#[derive(Debug)]
pub struct WritePermit<'a>(&'a AtomicUsize);

impl Drop for WritePermit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub use vectron_common::StartError;

/// How long a stopping worker tries to hand each group it leads to a caught-up voter.
const HANDOVER_WITHIN: Duration = Duration::from_secs(5);

/// A follower is caught up (for readiness) when its log is at most this many entries
/// behind what its leader has applied.
const CATCH_UP_SLACK: u64 = 64;

fn id_path(data_dir: &Path) -> PathBuf {
    data_dir.join("worker-id")
}

fn read_id(data_dir: &Path) -> Result<Option<u64>, StartError> {
    let path = id_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map(Some).map_err(|e| StartError::IdFile {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StartError::IdFile { path: path.display().to_string(), source }),
    }
}

/// What a worker keeps under its data dir (everything but the retired folders); the id
/// last, so a crash part-way leaves the old id with what is left of its data (the next
/// start retires the rest), never a new id over the old data.
const DATA_ENTRIES: &[&str] = &["worker-db", "graphs", "snapshots", "worker-id"];

/// Moves the data of worker `old` to `<data>/retired/worker-<old>-<ms>/`; returns it.
fn retire_data(data_dir: &Path, old: u64) -> Result<PathBuf, StartError> {
    let target = data_dir.join("retired").join(format!("worker-{old}-{}", vectron_common::now_ms()));
    let err = |source| StartError::IdFile { path: target.display().to_string(), source };
    std::fs::create_dir_all(&target).map_err(err)?;
    for entry in DATA_ENTRIES {
        let from = data_dir.join(entry);
        if from.exists() {
            std::fs::rename(&from, target.join(entry)).map_err(err)?;
        }
    }
    std::fs::File::open(&target).and_then(|d| d.sync_all()).map_err(err)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(target)
}

/// Writes the id atomically (temp file, fsync, rename, fsync dir).
fn write_id(data_dir: &Path, id: u64) -> Result<(), StartError> {
    use std::io::Write;
    let path = id_path(data_dir);
    let err = |source| StartError::IdFile { path: path.display().to_string(), source };
    let tmp = data_dir.join("worker-id.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    writeln!(f, "{id}").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(err)
}

impl WorkerHost {
    /// Opens storage, registers with the placement driver (or re-registers with the
    /// stored id), and reopens the replicas found on disk.
    pub async fn start(config: WorkerConfig, router: RaftRouter) -> Result<Arc<WorkerHost>, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| StartError::IdFile { path: config.data_dir.display().to_string(), source })?;
        let placement =
            PlacementClient::on(config.placement.clone(), config.network.clone()).with_budget(Duration::from_secs(30));
        let register = |worker_id: u64| {
            let request =
                pi::RegisterWorkerRequest { worker_id, address: config.advertise.clone(), zone: config.zone.clone() };
            let placement = &placement;
            async move {
                placement
                    .call(|mut c| {
                        let r = request.clone();
                        async move { c.register_worker(r).await }
                    })
                    .await
                    .map(|r| r.worker_id)
            }
        };
        let stored = read_id(&config.data_dir)?;
        let id = match (register(stored.unwrap_or(0)).await, stored) {
            (Ok(id), _) => id,
            // An operator removed this worker: what is on this disk belongs to Raft groups
            // that no longer count it as a member. Keep it out of the way and join as a new
            // worker. (An id the cluster never assigned — another cluster's disk, a wiped
            // placement driver — is NOT_FOUND: the start fails and the data stays.)
            (Err(e), Some(old)) if e.code == ErrorCode::FailedPrecondition => {
                let kept = retire_data(&config.data_dir, old)?;
                tracing::warn!(
                    worker = old,
                    "the placement driver does not know this worker ({}); its data was moved to {} and it joins \
                     as a new worker",
                    e.message,
                    kept.display()
                );
                register(0).await.map_err(StartError::Register)?
            }
            (Err(e), _) => return Err(StartError::Register(e)),
        };
        if stored != Some(id) {
            write_id(&config.data_dir, id)?;
        }
        let storage = open_storage(&config.data_dir.join("worker-db"), config.durability)?;
        tracing::info!(worker = id, address = %config.advertise, "worker registered");
        let channels = PeerChannels::on(config.network.clone());
        let host = Arc::new(WorkerHost {
            id,
            config,
            storage,
            router,
            channels,
            placement,
            replicas: RwLock::new(HashMap::new()),
            routing: RwLock::new(pi::RoutingTable::default()),
            stopping: AtomicBool::new(false),
            writes_in_flight: AtomicUsize::new(0),
        });
        // The shards on disk open side by side (as many at once as there are cores).
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let opening = futures::stream::iter(host.storage.shard_ids()?)
            .map(|shard| {
                let host = host.clone();
                async move { host.open_replica(shard.0, None).await.map(|_| ()) }
            })
            .buffer_unordered(parallel);
        opening.try_collect::<Vec<()>>().await?;
        Ok(host)
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The cluster token this worker's calls carry and its servers expect.
    pub fn cluster_token(&self) -> vectron_common::cluster_auth::ClusterToken {
        self.channels.token()
    }

    /// The hosted replica of `shard_id`, or SHARD_NOT_HOSTED.
    pub fn replica(&self, shard_id: u64) -> Result<Arc<Replica>, WorkerError> {
        self.replicas.read().get(&shard_id).cloned().ok_or_else(|| WorkerError::ShardNotHosted {
            shard_id,
            worker: self.id,
            epoch: self.routing.read().epoch,
        })
    }

    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().values().cloned().collect()
    }

    /// Shard id → its collection's name, as the routing table has them.
    pub fn collection_names(&self) -> HashMap<u64, String> {
        let table = self.routing.read();
        let mut names = HashMap::new();
        for c in &table.collections {
            let name = c.config.as_ref().map(|x| x.name.clone()).unwrap_or_default();
            for s in &c.shards {
                names.insert(s.id, name.clone());
            }
        }
        names
    }

    /// Admits a write to `replica`'s group: Ok while this worker leads it and is not
    /// stopping. The permit is held until the write is in the log; a stopping worker
    /// waits for every permit before it hands its groups over, so the voter it picks
    /// has every write this worker accepted.
    pub fn write_permit(&self, replica: &Replica) -> Result<WritePermit<'_>, WorkerError> {
        // Counted before `stopping` is read (and `stop` sets `stopping` before it reads
        // the count, both SeqCst): a write either sees the stop or is waited for.
        self.writes_in_flight.fetch_add(1, Ordering::SeqCst);
        let permit = WritePermit(&self.writes_in_flight);
        self.ensure_leading(replica)?;
        Ok(permit)
    }

    /// Ok when this worker leads `replica`'s group; NOT_LEADER with the leader otherwise.
    pub fn ensure_leading(&self, replica: &Replica) -> Result<(), WorkerError> {
        // PERF: on every read and write; borrows the metrics instead of cloning them.
        let metrics = replica.raft.metrics();
        let m = metrics.borrow();
        let stopping = self.stopping.load(Ordering::SeqCst);
        if !stopping && leads(&m, self.id, LEADER_LEASE_MS) {
            return Ok(());
        }
        if stopping && m.current_leader == Some(self.id) {
            return Err(WorkerError::NotLeader {
                shard_id: replica.shard_id,
                leader: None,
                detail: format!("worker {} is stopping and hands shard {} over", self.id, replica.shard_id),
            });
        }
        if m.current_leader == Some(self.id) {
            // Leading without a recent quorum: no hint (it would point here).
            return Err(WorkerError::NotLeader {
                shard_id: replica.shard_id,
                leader: None,
                detail: format!(
                    "worker {} leads shard {} but heard from no quorum for {} ms",
                    self.id,
                    replica.shard_id,
                    m.millis_since_quorum_ack.unwrap_or(u64::MAX)
                ),
            });
        }
        Err(WorkerError::NotLeader {
            shard_id: replica.shard_id,
            leader: leader_hint(&m),
            detail: format!("worker {} does not lead shard {}", self.id, replica.shard_id),
        })
    }

    async fn open_replica(
        &self,
        shard_id: u64,
        create: Option<&pi::CollectionInfo>,
    ) -> Result<Arc<Replica>, StartError> {
        let config = match create.and_then(|c| c.config.as_ref()) {
            Some(c) => Some(shard_config(c).map_err(vectron_engine::EngineError::from)?),
            None => None,
        };
        let sync = self.config.durability == Durability::Machine;
        let log = ShardLog::new(self.storage.db().clone(), shard_id, sync);
        // Loading a shard (its graph file, reconciled with RocksDB) is CPU and disk work:
        // off the async threads, so a worker opens its shards side by side.
        let (storage, graphs, snapshots) =
            (self.storage.clone(), self.config.data_dir.join("graphs"), self.config.data_dir.join("snapshots"));
        let opening = log.clone();
        let sm = tokio::task::spawn_blocking(move || {
            ShardStateMachine::open(ShardId(shard_id), storage, graphs, snapshots, opening, config)
        })
        .await
        .map_err(|e| StartError::Raft(format!("opening shard {shard_id}: {e}")))??;
        let slot = sm.slot();
        let started = sm.clone();
        let network = GrpcNetworkFactory::new(shard_id, self.channels.clone());
        let raft =
            Raft::new(self.id, Arc::new(raft_config_with(GroupKind::Shard, self.config.compaction)), network, log, sm)
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?;
        started.group_started();
        self.router.register(shard_id, raft.clone());
        let leader_changes = LeaderChanges::watch(raft.metrics());
        let replica = Arc::new(Replica {
            shard_id,
            raft,
            slot,
            changing: AtomicBool::new(false),
            leader_since: LeaderSince::default(),
            leader_changes,
        });
        self.replicas.write().insert(shard_id, replica.clone());
        tracing::info!(worker = self.id, shard = shard_id, "replica opened");
        Ok(replica)
    }

    async fn drop_replica(&self, shard_id: u64) {
        let Some(replica) = self.replicas.write().remove(&shard_id) else { return };
        self.router.unregister(shard_id);
        if let Err(e) = replica.raft.shutdown().await {
            tracing::warn!(shard = shard_id, "raft shutdown: {e}");
        }
        let slot = replica.slot.clone();
        drop(replica);
        let log = ShardLog::new(self.storage.db().clone(), shard_id, false);
        let result = tokio::task::spawn_blocking(move || crate::replica::retire(&slot, &log)).await;
        match result {
            Ok(Ok(())) => tracing::info!(worker = self.id, shard = shard_id, "replica dropped"),
            Ok(Err(e)) => tracing::error!(shard = shard_id, "dropping replica: {e}"),
            Err(e) => tracing::error!(shard = shard_id, "dropping replica: {e}"),
        }
    }

    /// Heartbeats and reconciles until `shutdown` resolves, reporting readiness to
    /// `health`; then stops cleanly ([`WorkerHost::stop`]).
    pub async fn run(self: Arc<Self>, health: Health, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let saver = tokio::spawn(self.clone().save_graphs());
        loop {
            let beat = self.heartbeat().await;
            if let Err(e) = &beat {
                tracing::warn!(worker = self.id, "heartbeat: {e:?}");
            }
            self.reconcile().await;
            // Ready once registered, heard by the placement driver and with every replica
            // caught up with its leader; from then on until it stops (a replica created
            // later catches up while the others serve).
            if !health.is_ready() && beat.is_ok() && self.replicas_caught_up().await {
                health.set_ready(true).await;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.heartbeat) => {}
            }
        }
        health.stop().await;
        saver.abort();
        self.stop().await;
    }

    /// Every `graph_save_interval`, saves the graph file of each shard with unsaved
    /// writes, one shard at a time, in the background (writes wait only while the
    /// snapshot is taken; see `Shard::persist`). A worker that is killed then re-inserts
    /// at most that interval's writes when it starts, instead of up to
    /// `persist_every_writes`. A save rewrites the whole file, so on large shards the
    /// rounds are spaced to spend at most a tenth of the time saving.
    async fn save_graphs(self: Arc<Self>) {
        let mut pause = self.config.graph_save_interval;
        loop {
            tokio::time::sleep(pause).await;
            let round = std::time::Instant::now();
            for r in self.replicas() {
                let Some(shard) = r.slot.get().filter(|s| s.unsaved_writes() > 0) else { continue };
                let started = std::time::Instant::now();
                let saved = tokio::task::spawn_blocking(move || shard.persist()).await;
                let counters = &crate::metrics::COUNTERS;
                crate::metrics::add_time(&counters.graph_save_micros, started.elapsed());
                match saved {
                    Ok(Ok(())) => {
                        counters.graph_saves.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            shard = r.shard_id,
                            took_ms = started.elapsed().as_millis() as u64,
                            "graph saved"
                        );
                    }
                    Ok(Err(e)) => {
                        counters.graph_save_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(shard = r.shard_id, "saving the graph: {e}");
                    }
                    Err(e) => {
                        counters.graph_save_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(shard = r.shard_id, "saving the graph: {e}");
                    }
                }
            }
            pause = self.config.graph_save_interval.max(round.elapsed() * 9);
        }
    }

    /// Stops cleanly: once the groups it leads are past the leader lease, no more writes
    /// are proposed here, those admitted are waited for, and each group this worker leads
    /// is handed to a caught-up voter (so its writes pause for a round trip, not an
    /// election timeout); then the groups stop and each shard's graph is saved so the next
    /// start need not rebuild it. Raft messages are served throughout; the caller closes
    /// the port afterwards.
    pub async fn stop(&self) {
        let started = std::time::Instant::now();
        let replicas = self.replicas();
        // Serve on until every group this worker leads is past the leader's own lease in
        // office (before it the leader would refuse its successor's vote); then stop
        // proposing, and wait for the writes already admitted.
        let lease_over = replicas
            .iter()
            .filter(|r| self.ensure_leading(r).is_ok())
            .map(|r| lease_over(&r.raft, &r.leader_since))
            .max();
        if let Some(at) = lease_over {
            tokio::time::sleep_until(at.min(tokio::time::Instant::now() + HANDOVER_WITHIN)).await;
        }
        self.stopping.store(true, Ordering::SeqCst);
        // No replica here stands for election any more: a group that was not handed over
        // elects among the others.
        for r in &replicas {
            r.raft.runtime_config().elect(false);
        }
        let drained = tokio::time::Instant::now() + HANDOVER_WITHIN;
        while self.writes_in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let handovers = replicas.iter().map(|r| async move {
            let outcome =
                hand_over(&r.raft, self.id, r.shard_id, &r.leader_since, &self.channels, HANDOVER_WITHIN).await;
            match &outcome {
                Handover::To(next) => tracing::info!(worker = self.id, shard = r.shard_id, next, "handed shard over"),
                Handover::Failed(why) => {
                    tracing::warn!(worker = self.id, shard = r.shard_id, "shard not handed over: {why}")
                }
                Handover::NotLeading | Handover::Alone => {}
            }
            outcome
        });
        let outcomes = futures::future::join_all(handovers).await;
        let handed = outcomes.iter().filter(|o| matches!(o, Handover::To(_))).count();
        let failed = outcomes.iter().filter(|o| matches!(o, Handover::Failed(_))).count();
        for r in &replicas {
            let _ = r.raft.shutdown().await;
        }
        let saves = replicas.iter().filter_map(|r| r.slot.get().map(|shard| (r.shard_id, shard))).map(
            |(shard_id, shard)| async move {
                match tokio::task::spawn_blocking(move || shard.persist()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(shard = shard_id, "saving the graph: {e}"),
                    Err(e) => tracing::warn!(shard = shard_id, "saving the graph: {e}"),
                }
            },
        );
        futures::future::join_all(saves).await;
        tracing::info!(
            worker = self.id,
            handed_over = handed,
            not_handed_over = failed,
            replicas = replicas.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "worker stopped cleanly"
        );
    }

    /// Whether every hosted replica is caught up: it leads, or its log is within
    /// [`CATCH_UP_SLACK`] entries of what its leader has applied (asked over the worker
    /// API). A replica without a leader or restoring a snapshot is not.
    async fn replicas_caught_up(&self) -> bool {
        let checks = self.replicas().into_iter().map(|r| async move {
            if r.slot.get().is_none() {
                return false;
            }
            let m = r.raft.metrics().borrow().clone();
            if leads(&m, self.id, LEADER_LEASE_MS) {
                return true;
            }
            let Some(leader) = m.current_leader.filter(|l| *l != self.id) else { return false };
            let recorded = m.membership_config.membership().get_node(&leader).map(|n| n.addr.clone());
            let address = self.channels.address_of(leader, &recorded.unwrap_or_default());
            let Ok(channel) = self.channels.get(&address) else { return false };
            let request = pi::ShardVersionRequest { shard_id: r.shard_id };
            let mut client = WorkerClient::new(channel);
            let call = client.get_shard_version(request);
            match tokio::time::timeout(self.config.heartbeat, call).await {
                Ok(Ok(v)) => m.last_log_index.unwrap_or(0) + CATCH_UP_SLACK >= v.into_inner().applied_index,
                _ => false,
            }
        });
        futures::future::join_all(checks).await.into_iter().all(|ok| ok)
    }

    fn reports(&self) -> Vec<pi::ShardReport> {
        self.replicas()
            .iter()
            .map(|r| {
                let m = r.raft.metrics().borrow().clone();
                if m.state == ServerState::Leader && m.current_leader == Some(self.id) {
                    r.leader_since.leading(m.current_term);
                }
                pi::ShardReport {
                    shard_id: r.shard_id,
                    leader: leads(&m, self.id, QUORUM_ACK_STALE_MS),
                    term: m.current_term,
                    voters: m.membership_config.membership().voter_ids().collect(),
                    points_count: r.slot.get().map_or(0, |s| s.len() as u64),
                }
            })
            .collect()
    }

    async fn heartbeat(&self) -> Result<(), WireError> {
        let request = pi::HeartbeatRequest {
            worker_id: self.id,
            shards: self.reports(),
            address: self.config.advertise.clone(),
            known_epoch: self.routing.read().epoch,
        };
        let response = self
            .placement
            .call(|mut c| {
                let r = request.clone();
                async move { c.heartbeat(r).await }
            })
            .await?;
        if let Some(table) = response.routing {
            *self.routing.write() = table;
        }
        Ok(())
    }

    /// Brings the hosted replicas in line with the routing table.
    async fn reconcile(&self) {
        let table = self.routing.read().clone();
        if table.epoch == 0 {
            return;
        }
        let addr_of: BTreeMap<u64, String> = table.workers.iter().map(|w| (w.id, w.address.clone())).collect();
        self.channels.set_addresses(addr_of.iter().map(|(id, a)| (*id, a.clone())));
        let mut existing: BTreeSet<u64> = BTreeSet::new();
        for c in &table.collections {
            for shard in &c.shards {
                existing.insert(shard.id);
                let target = shard.replicas.contains(&self.id);
                let hosted = self.replicas.read().get(&shard.id).cloned();
                match (target, hosted) {
                    (true, None) => {
                        if let Err(e) = self.create_replica(c, shard, &addr_of).await {
                            tracing::warn!(shard = shard.id, "creating replica: {e}");
                        }
                    }
                    (true, Some(r)) => self.drive_membership(&r, shard, &addr_of),
                    (false, Some(r)) => {
                        let m = r.raft.metrics().borrow().clone();
                        let member = m.membership_config.membership().get_node(&self.id).is_some();
                        if !member {
                            self.drop_replica(shard.id).await;
                        } else {
                            // Still a member while the leader moves the group: if this
                            // worker leads, it moves it (and steps down at the end).
                            self.drive_membership(&r, shard, &addr_of);
                        }
                    }
                    (false, None) => {}
                }
            }
        }
        let gone: Vec<u64> = self.replicas.read().keys().copied().filter(|id| !existing.contains(id)).collect();
        for shard_id in gone {
            tracing::info!(worker = self.id, shard = shard_id, "shard no longer exists; dropping replica");
            self.drop_replica(shard_id).await;
        }
    }

    async fn create_replica(
        &self,
        collection: &pi::CollectionInfo,
        shard: &pi::ShardInfo,
        addr_of: &BTreeMap<u64, String>,
    ) -> Result<(), StartError> {
        let log = ShardLog::new(self.storage.db().clone(), shard.id, false);
        let retired = crate::replica::is_retired(&log)?;
        let fresh = !retired && !log.is_initialized()?;
        let replica = self.open_replica(shard.id, Some(collection)).await?;
        if fresh && shard.initial_replicas.first() == Some(&self.id) {
            let members: BTreeMap<NodeId, BasicNode> = shard
                .initial_replicas
                .iter()
                .filter_map(|id| addr_of.get(id).map(|a| (*id, BasicNode::new(a))))
                .collect();
            match replica.raft.initialize(members).await {
                Ok(()) => tracing::info!(shard = shard.id, "initialised shard group"),
                Err(e) => tracing::info!(shard = shard.id, "shard group already initialised: {e}"),
            }
        }
        Ok(())
    }

    /// On the leader: moves the group's membership towards the target replicas, in a
    /// background task (one at a time per group).
    fn drive_membership(&self, replica: &Arc<Replica>, shard: &pi::ShardInfo, addr_of: &BTreeMap<u64, String>) {
        if self.ensure_leading(replica).is_err() {
            return;
        }
        let m = replica.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let target: BTreeSet<u64> = shard.replicas.iter().copied().collect();
        if voters == target || target.is_empty() {
            return;
        }
        if replica.changing.swap(true, Ordering::AcqRel) {
            return;
        }
        let nodes: Vec<(u64, String)> = target
            .iter()
            .filter(|id| !voters.contains(id))
            .filter_map(|id| addr_of.get(id).map(|a| (*id, a.clone())))
            .collect();
        let replica = replica.clone();
        let shard_id = shard.id;
        tokio::spawn(async move {
            let result: Result<(), String> = async {
                for (id, addr) in nodes {
                    if membership.get_node(&id).is_none() || !membership.learner_ids().any(|l| l == id) {
                        replica.raft.add_learner(id, BasicNode::new(&addr), true).await.map_err(|e| e.to_string())?;
                    }
                }
                replica.raft.change_membership(target.clone(), false).await.map_err(|e| e.to_string())?;
                Ok(())
            }
            .await;
            match result {
                Ok(()) => tracing::info!(shard = shard_id, voters = ?target, "membership changed"),
                Err(e) => tracing::warn!(shard = shard_id, "membership change: {e}"),
            }
            replica.changing.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{BasicNode, Membership, RaftMetrics, ServerState, StoredMembership};

    use super::{LEADER_LEASE_MS, QUORUM_ACK_STALE_MS, leads};
    use vectron_common::raft::NodeId;

    /// Node 1's metrics in a group of `voters`, leading with its last quorum ack `ack_ms`
    /// ago.
    fn leader(voters: &[NodeId], ack_ms: Option<u64>) -> RaftMetrics<NodeId, BasicNode> {
        let nodes: BTreeMap<NodeId, BasicNode> = voters.iter().map(|&v| (v, BasicNode::new(format!("w{v}")))).collect();
        let membership = Membership::new(vec![voters.iter().copied().collect::<BTreeSet<_>>()], nodes);
        let mut m = RaftMetrics::new_initial(1);
        m.state = ServerState::Leader;
        m.current_leader = Some(1);
        m.millis_since_quorum_ack = ack_ms;
        m.membership_config = Arc::new(StoredMembership::new(None, membership));
        m
    }

    #[test]
    fn a_leader_serves_only_while_a_quorum_acknowledged_it_within_the_lease() {
        let group = [1, 2, 3];
        assert!(leads(&leader(&group, Some(150)), 1, LEADER_LEASE_MS));
        assert!(!leads(&leader(&group, Some(LEADER_LEASE_MS)), 1, LEADER_LEASE_MS), "the lease ran out");
        assert!(!leads(&leader(&group, None), 1, LEADER_LEASE_MS), "no quorum ever acknowledged it");
        // Reporting to the placement driver tolerates a longer silence than serving.
        assert!(leads(&leader(&group, Some(LEADER_LEASE_MS)), 1, QUORUM_ACK_STALE_MS));
        // Alone in its group, a leader needs no acknowledgement.
        assert!(leads(&leader(&[1], None), 1, LEADER_LEASE_MS));
        // Another node's leadership is not ours; a candidate does not lead.
        assert!(!leads(&leader(&group, Some(10)), 2, LEADER_LEASE_MS));
        let mut candidate = leader(&group, Some(10));
        candidate.state = ServerState::Candidate;
        assert!(!leads(&candidate, 1, LEADER_LEASE_MS));
    }
}
