//! The worker's Prometheus metrics, computed when scraped: per hosted replica its Raft
//! state (term, leaders seen, leadership, log, apply and replication lag, snapshot) and
//! its shard's
//! engine state (points, graph nodes and tombstones, writes not yet in the graph file),
//! and worker-wide counters of graph-file saves and snapshot installs. Labels are the
//! collection and shard of each replica the worker hosts (bounded by the shards it
//! holds).

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::ServerState;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::host::WorkerHost;

/// Counters the worker's parts add to as they work.
#[derive(Debug, Default)]
pub struct Counters {
    pub graph_saves: AtomicU64,
    pub graph_save_failures: AtomicU64,
    /// Microseconds spent saving graph files.
    pub graph_save_micros: AtomicU64,
    pub snapshots_installed: AtomicU64,
    pub snapshot_points_installed: AtomicU64,
    /// Microseconds spent installing snapshots.
    pub snapshot_install_micros: AtomicU64,
}

/// The process's counters (one worker per process; in-process test clusters share them).
pub static COUNTERS: Counters = Counters {
    graph_saves: AtomicU64::new(0),
    graph_save_failures: AtomicU64::new(0),
    graph_save_micros: AtomicU64::new(0),
    snapshots_installed: AtomicU64::new(0),
    snapshot_points_installed: AtomicU64::new(0),
    snapshot_install_micros: AtomicU64::new(0),
};

/// Adds `elapsed` to a microseconds counter.
pub fn add_time(counter: &AtomicU64, elapsed: std::time::Duration) {
    counter.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
}

/// The collector registered in the ops port's registry.
pub struct WorkerCollector {
    host: Weak<WorkerHost>,
    replicas: IntGauge,
    per_replica: Vec<IntGaugeVec>,
    leader_changes: IntCounterVec,
    descs: Vec<Desc>,
    collecting: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for WorkerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerCollector").finish_non_exhaustive()
    }
}

/// Per-replica gauges, in the order [`WorkerCollector::collect`] sets them.
const PER_REPLICA: [(&str, &str); 11] = [
    ("vectron_replica_raft_term", "Raft term this replica is in"),
    ("vectron_replica_leader", "1 while this worker leads the shard's group"),
    ("vectron_replica_raft_last_log_index", "Index of the last entry in this replica's log"),
    ("vectron_replica_raft_applied_index", "Index of the last entry applied to the shard"),
    ("vectron_replica_raft_apply_lag", "Entries in the log not yet applied"),
    ("vectron_replica_raft_log_entries", "Entries kept in the log (since the last purge)"),
    ("vectron_replica_raft_snapshot_index", "Last log index the latest snapshot covers"),
    ("vectron_replica_raft_replication_lag", "Leader only: entries the furthest-behind follower lacks"),
    ("vectron_replica_points", "Live points in the shard replica"),
    ("vectron_replica_graph_nodes", "Nodes in the replica's HNSW graph, tombstones included"),
    ("vectron_replica_graph_tombstones", "Deleted nodes still in the graph (a rebuild drops them)"),
];

/// The per-replica counter: leaders seen elected (see `vectron_common::raft::leaders`).
const LEADER_CHANGES: (&str, &str) = (
    "vectron_replica_raft_leader_changes_total",
    "Leaders this replica has seen elected (each new term with a leader), since it was opened",
);

/// One more: writes not yet in the graph file (re-inserted if the worker is killed).
const UNSAVED: (&str, &str) = ("vectron_replica_graph_unsaved_writes", "Writes applied since the graph file was saved");

impl WorkerCollector {
    pub fn new(host: Weak<WorkerHost>) -> WorkerCollector {
        let replicas = IntGauge::new("vectron_worker_replicas", "Shard replicas this worker hosts").expect("valid");
        let per_replica: Vec<IntGaugeVec> = PER_REPLICA
            .iter()
            .chain([&UNSAVED])
            .map(|(name, help)| IntGaugeVec::new(Opts::new(*name, *help), &["collection", "shard"]).expect("valid"))
            .collect();
        let leader_changes =
            IntCounterVec::new(Opts::new(LEADER_CHANGES.0, LEADER_CHANGES.1), &["collection", "shard"]).expect("valid");
        let mut descs: Vec<Desc> = replicas.desc().into_iter().chain(leader_changes.desc()).cloned().collect();
        for g in &per_replica {
            descs.extend(g.desc().into_iter().cloned());
        }
        for (name, help) in COUNTER_HELP {
            descs.push(Desc::new(name.into(), help.into(), Vec::new(), Default::default()).expect("valid"));
        }
        WorkerCollector { host, replicas, per_replica, leader_changes, descs, collecting: Default::default() }
    }
}

const COUNTER_HELP: [(&str, &str); 6] = [
    ("vectron_worker_graph_saves_total", "Graph files saved"),
    ("vectron_worker_graph_save_failures_total", "Graph-file saves that failed"),
    ("vectron_worker_graph_save_seconds_total", "Time spent saving graph files"),
    ("vectron_worker_snapshots_installed_total", "Raft snapshots installed (a replica caught up from a copy)"),
    ("vectron_worker_snapshot_points_installed_total", "Points restored from installed snapshots"),
    ("vectron_worker_snapshot_install_seconds_total", "Time spent installing snapshots"),
];

fn counter(name: &str, help: &str, value: u64) -> MetricFamily {
    let c = IntCounter::new(name, help).expect("valid metric");
    c.inc_by(value);
    c.collect().remove(0)
}

fn seconds(name: &str, help: &str, micros: u64) -> MetricFamily {
    let c = Counter::new(name, help).expect("valid metric");
    c.inc_by(micros as f64 / 1e6);
    c.collect().remove(0)
}

impl Collector for WorkerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // The gauges are reset and refilled: one scrape at a time.
        let _one = self.collecting.lock();
        for g in &self.per_replica {
            g.reset();
        }
        self.leader_changes.reset();
        if let Some(host) = self.host.upgrade() {
            let names = host.collection_names();
            let replicas = host.replicas();
            self.replicas.set(replicas.len() as i64);
            for r in replicas {
                let m = r.raft.metrics().borrow().clone();
                let collection = names.get(&r.shard_id).map(String::as_str).unwrap_or("");
                let labels = [collection, &r.shard_id.to_string()];
                let last = m.last_log_index.unwrap_or(0);
                let applied = m.last_applied.map_or(0, |l| l.index);
                let purged = m.purged.map_or(0, |l| l.index);
                let leads = m.state == ServerState::Leader && m.current_leader == Some(host.id());
                let behind = m.replication.as_ref().filter(|_| leads).map_or(0, |followers| {
                    followers
                        .values()
                        .map(|matched| last.saturating_sub(matched.map_or(0, |l| l.index)))
                        .max()
                        .unwrap_or(0)
                });
                let shard = r.slot.get();
                let graph = shard.as_ref().map(|s| s.graph_stats());
                let values = [
                    m.current_term,
                    u64::from(leads),
                    last,
                    applied,
                    last.saturating_sub(applied),
                    last.saturating_sub(purged),
                    m.snapshot.map_or(0, |l| l.index),
                    behind,
                    shard.as_ref().map_or(0, |s| s.len() as u64),
                    graph.map_or(0, |g| g.nodes as u64),
                    graph.map_or(0, |g| g.deleted as u64),
                    shard.as_ref().map_or(0, |s| s.unsaved_writes()),
                ];
                for (g, v) in self.per_replica.iter().zip(values) {
                    g.with_label_values(&labels).set(v as i64);
                }
                self.leader_changes.with_label_values(&labels).inc_by(r.leader_changes.get());
            }
        } else {
            self.replicas.set(0);
        }
        let c = &COUNTERS;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = self.replicas.collect();
        for g in &self.per_replica {
            out.extend(g.collect());
        }
        out.extend(self.leader_changes.collect());
        let [saves, failures, save_time, installs, points, install_time] = COUNTER_HELP;
        out.push(counter(saves.0, saves.1, load(&c.graph_saves)));
        out.push(counter(failures.0, failures.1, load(&c.graph_save_failures)));
        out.push(seconds(save_time.0, save_time.1, load(&c.graph_save_micros)));
        out.push(counter(installs.0, installs.1, load(&c.snapshots_installed)));
        out.push(counter(points.0, points.1, load(&c.snapshot_points_installed)));
        out.push(seconds(install_time.0, install_time.1, load(&c.snapshot_install_micros)));
        out
    }
}
