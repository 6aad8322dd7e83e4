//! The placement node's Prometheus metrics, computed when scraped from the applied
//! cluster state (the same on every member) and this member's Raft state: workers by
//! state, open alerts by kind, collections and shards, and the placement group's term,
//! leadership, log and apply position. Labels come from closed sets (worker states,
//! alert kinds).

use std::collections::BTreeMap;

use openraft::ServerState;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};
use vectron_common::raft::leaders::LeaderChanges;
use vectron_proto::internal as pi;

use crate::node::PlacementNode;

/// The collector registered in the ops port's registry.
pub struct PlacementCollector {
    node: PlacementNode,
    workers: IntGaugeVec,
    alerts: IntGaugeVec,
    gauges: Vec<IntGauge>,
    leader_changes: (LeaderChanges, IntCounter),
    descs: Vec<Desc>,
    collecting: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for PlacementCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementCollector").finish_non_exhaustive()
    }
}

/// Plain gauges, in the order [`PlacementCollector::collect`] sets them.
const GAUGES: [(&str, &str); 7] = [
    ("vectron_placement_collections", "Collections in the cluster"),
    ("vectron_placement_shards", "Shards of all collections"),
    ("vectron_placement_routing_epoch", "Epoch of the routing table (bumped by every change)"),
    ("vectron_placement_raft_term", "Raft term of this placement member"),
    ("vectron_placement_leader", "1 while this member leads the placement group"),
    ("vectron_placement_raft_last_log_index", "Index of the last entry in this member's log"),
    ("vectron_placement_raft_applied_index", "Index of the last entry applied to the cluster state"),
];

/// Every alert kind the cluster raises (`pi::Alert::kind`), so each series exists at 0.
const ALERT_KINDS: [&str; 4] =
    ["worker_down", "shard_under_replicated", "shard_without_leader", "reranker_unavailable"];

impl PlacementCollector {
    /// Starts counting the leaders `node` sees (within a Tokio runtime).
    pub fn new(node: PlacementNode) -> PlacementCollector {
        let workers =
            IntGaugeVec::new(Opts::new("vectron_placement_workers", "Registered workers by state"), &["state"])
                .expect("valid metric");
        let alerts =
            IntGaugeVec::new(Opts::new("vectron_placement_alerts_open", "Unresolved alerts by kind"), &["kind"])
                .expect("valid metric");
        let gauges: Vec<IntGauge> =
            GAUGES.iter().map(|(name, help)| IntGauge::new(*name, *help).expect("valid metric")).collect();
        let mut descs: Vec<Desc> = workers.desc().into_iter().chain(alerts.desc()).cloned().collect();
        for g in &gauges {
            descs.extend(g.desc().into_iter().cloned());
        }
        let seen = IntCounter::new(
            "vectron_placement_raft_leader_changes_total",
            "Leaders this member has seen elected in the placement group (each new term with a leader), since it started",
        )
        .expect("valid metric");
        descs.extend(seen.desc().into_iter().cloned());
        let leader_changes = (LeaderChanges::watch(node.raft().metrics()), seen);
        PlacementCollector { node, workers, alerts, gauges, leader_changes, descs, collecting: Default::default() }
    }
}

fn state_name(state: i32) -> &'static str {
    match pi::WorkerState::try_from(state) {
        Ok(pi::WorkerState::Up) => "up",
        Ok(pi::WorkerState::Draining) => "draining",
        Ok(pi::WorkerState::Down) => "down",
        _ => "unknown",
    }
}

impl Collector for PlacementCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // The gauges are reset and refilled: one scrape at a time.
        let _one = self.collecting.lock();
        let (by_state, open, collections, shards, epoch) = self.node.view().read(|state| {
            let table = state.routing.clone().unwrap_or_default();
            let mut by_state: BTreeMap<&'static str, i64> = ["up", "draining", "down"].map(|s| (s, 0)).into();
            for w in &table.workers {
                *by_state.entry(state_name(w.state)).or_default() += 1;
            }
            let mut open: BTreeMap<String, i64> = ALERT_KINDS.map(|k| (k.to_owned(), 0)).into();
            for a in state.alerts.iter().filter(|a| a.resolved_at_ms == 0) {
                // Only the known kinds: the labels stay a closed set.
                if let Some(n) = open.get_mut(&a.kind) {
                    *n += 1;
                }
            }
            let shards: usize = table.collections.iter().map(|c| c.shards.len()).sum();
            (by_state, open, table.collections.len(), shards, table.epoch)
        });
        self.workers.reset();
        for (state, n) in by_state {
            self.workers.with_label_values(&[state]).set(n);
        }
        self.alerts.reset();
        for (kind, n) in open {
            self.alerts.with_label_values(&[&kind]).set(n);
        }
        let m = self.node.raft().metrics().borrow().clone();
        let leads = m.state == ServerState::Leader;
        let values = [
            collections as u64,
            shards as u64,
            epoch,
            m.current_term,
            u64::from(leads),
            m.last_log_index.unwrap_or(0),
            m.last_applied.map_or(0, |l| l.index),
        ];
        for (g, v) in self.gauges.iter().zip(values) {
            g.set(v as i64);
        }
        let mut out = self.workers.collect();
        out.extend(self.alerts.collect());
        for g in &self.gauges {
            out.extend(g.collect());
        }
        let (seen, counter) = &self.leader_changes;
        counter.inc_by(seen.get() - counter.get());
        out.extend(counter.collect());
        out
    }
}
