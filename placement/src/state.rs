//! The placement state machine's logic: how each [`PlacementCommand`] changes the
//! [`ClusterState`]. Pure and deterministic (every replica of the placement group
//! applies the same commands to the same state and must reach the same result), so it
//! is tested without Raft.
//!
//! Every change to workers, collections or shards bumps the routing epoch, so a
//! gateway's cached routing table can tell it is stale.

use std::collections::{BTreeMap, BTreeSet};

use vectron_common::routing::split_ranges;
use vectron_model::convert::normalize_collection;
use vectron_model::feedback::{feedback_collection, parent_of};
use vectron_proto::internal::placement_command::Command;
use vectron_proto::internal::placement_command_result::Result as Outcome;
use vectron_proto::internal::{
    Alert, ClusterState, CollectionInfo, Empty, PlacementCommand, PlacementCommandResult, PlacementError, RoutingTable,
    ShardInfo, WorkerInfo, WorkerState,
};
use vectron_proto::v1::ErrorCode;

/// Why a command was refused; becomes the command's result (not a Raft failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// A fresh cluster: no workers, no collections; ids start at 1.
pub fn initial_state() -> ClusterState {
    ClusterState {
        routing: Some(RoutingTable { epoch: 1, workers: vec![], collections: vec![] }),
        alerts: vec![],
        next_worker_id: 1,
        next_shard_id: 1,
        next_alert_id: 1,
    }
}

/// Applies one command. Refused commands leave the state untouched.
pub fn apply(state: &mut ClusterState, cmd: &PlacementCommand) -> PlacementCommandResult {
    let mut draft = state.clone();
    let outcome = match apply_inner(&mut draft, cmd) {
        Ok(outcome) => {
            *state = draft;
            outcome
        }
        Err(r) => Outcome::Error(PlacementError { code: r.code as i32, message: r.message }),
    };
    PlacementCommandResult { result: Some(outcome) }
}

fn routing(state: &mut ClusterState) -> &mut RoutingTable {
    state.routing.get_or_insert_with(Default::default)
}

fn bump(state: &mut ClusterState) {
    routing(state).epoch += 1;
}

fn worker_mut(state: &mut ClusterState, id: u64) -> Result<&mut WorkerInfo, Refusal> {
    routing(state)
        .workers
        .iter_mut()
        .find(|w| w.id == id)
        .ok_or_else(|| refuse(ErrorCode::NotFound, format!("worker {id} is not registered")))
}

/// Refuses to remove `worker` when a shard it holds would have no replica left on a live
/// (up or draining) worker.
fn refuse_orphaning(state: &mut ClusterState, worker: u64) -> Result<(), Refusal> {
    let table = routing(state);
    let live: BTreeSet<u64> = table
        .workers
        .iter()
        .filter(|w| w.id != worker && (w.state == WorkerState::Up as i32 || w.state == WorkerState::Draining as i32))
        .map(|w| w.id)
        .collect();
    for c in &table.collections {
        for s in c.shards.iter().filter(|s| s.replicas.contains(&worker)) {
            if !s.replicas.iter().any(|w| live.contains(w)) {
                let name = c.config.as_ref().map(|x| x.name.as_str()).unwrap_or("");
                return Err(refuse(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "removing worker {worker} would leave shard {} of collection {name:?} without a live replica \
                         (its data would be lost): drain the worker first so its replicas move, add workers, or \
                         remove it with force",
                        s.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn apply_inner(state: &mut ClusterState, cmd: &PlacementCommand) -> Result<Outcome, Refusal> {
    let now = cmd.now_ms;
    let command = cmd.command.as_ref().ok_or_else(|| refuse(ErrorCode::InvalidArgument, "empty command"))?;
    match command {
        Command::RegisterWorker(r) => {
            if r.address.is_empty() {
                return Err(refuse(ErrorCode::InvalidArgument, "a worker needs an address"));
            }
            let id = if r.worker_id == 0 {
                let id = state.next_worker_id.max(1);
                state.next_worker_id = id + 1;
                routing(state).workers.push(WorkerInfo {
                    id,
                    address: r.address.clone(),
                    zone: r.zone.clone(),
                    state: WorkerState::Up as i32,
                    last_heartbeat_ms: now,
                    state_since_ms: now,
                });
                id
            } else {
                if r.worker_id >= state.next_worker_id {
                    return Err(refuse(ErrorCode::NotFound, format!("worker id {} was never assigned", r.worker_id)));
                }
                // Its own code: the worker then retires its data and joins as a new one
                // (an id this cluster never assigned is NOT_FOUND, and its data is kept).
                let w = worker_mut(state, r.worker_id).map_err(|_| {
                    refuse(
                        ErrorCode::FailedPrecondition,
                        format!("worker {} was removed; ids are never reused", r.worker_id),
                    )
                })?;
                w.address = r.address.clone();
                w.zone = r.zone.clone();
                w.last_heartbeat_ms = now;
                if w.state == WorkerState::Down as i32 {
                    w.state = WorkerState::Up as i32;
                    w.state_since_ms = now;
                }
                r.worker_id
            };
            bump(state);
            Ok(Outcome::Worker(worker_mut(state, id)?.clone()))
        }
        Command::Heartbeat(_) => Err(refuse(ErrorCode::InvalidArgument, "heartbeats are not replicated")),
        Command::SetWorkerState(s) => {
            let target = WorkerState::try_from(s.state)
                .ok()
                .filter(|s| *s != WorkerState::Unspecified)
                .ok_or_else(|| refuse(ErrorCode::InvalidArgument, "unknown worker state"))?;
            let w = worker_mut(state, s.worker_id)?;
            if w.state != target as i32 {
                w.state = target as i32;
                w.state_since_ms = now;
            }
            let info = w.clone();
            bump(state);
            Ok(Outcome::Worker(info))
        }
        Command::RemoveWorker(r) => {
            let info = worker_mut(state, r.worker_id)?.clone();
            if !r.force {
                refuse_orphaning(state, r.worker_id)?;
            }
            let table = routing(state);
            table.workers.retain(|w| w.id != r.worker_id);
            for shard in table.collections.iter_mut().flat_map(|c| c.shards.iter_mut()) {
                shard.replicas.retain(|&w| w != r.worker_id);
            }
            bump(state);
            Ok(Outcome::Worker(info))
        }
        Command::CreateCollection(config) => {
            let config = normalize_collection(config.clone()).map_err(|e| refuse(e.code(), e.to_string()))?;
            let exists = |state: &mut ClusterState, name: &str| {
                routing(state).collections.iter().any(|c| c.config.as_ref().is_some_and(|x| x.name == name))
            };
            // A companion (feedback store) only beside its collection: one created while
            // the collection is deleted would outlive it.
            if let Some(parent) = parent_of(&config.name)
                && !exists(state, parent)
            {
                return Err(refuse(ErrorCode::CollectionNotFound, format!("collection {parent:?} does not exist")));
            }
            if exists(state, &config.name) {
                return Err(refuse(
                    ErrorCode::CollectionAlreadyExists,
                    format!("collection {:?} already exists", config.name),
                ));
            }
            let mut shards = Vec::with_capacity(config.shard_count as usize);
            let mut load = replica_load(state);
            for (start, end) in split_ranges(config.shard_count) {
                let replicas = place(state, &load, config.replication_factor as usize, &[], &[])?;
                for w in &replicas {
                    *load.entry(*w).or_default() += 1;
                }
                let id = state.next_shard_id.max(1);
                state.next_shard_id = id + 1;
                shards.push(ShardInfo {
                    id,
                    range_start: start,
                    range_end: end,
                    initial_replicas: replicas.clone(),
                    replicas,
                    ..Default::default()
                });
            }
            let info = CollectionInfo { config: Some(config), shards };
            routing(state).collections.push(info.clone());
            bump(state);
            Ok(Outcome::Collection(info))
        }
        Command::DeleteCollection(name) => {
            let table = routing(state);
            let before = table.collections.len();
            // With its companion (feedback store), if it has one.
            let companion = feedback_collection(name);
            table.collections.retain(|c| c.config.as_ref().is_none_or(|x| x.name != *name && x.name != companion));
            if table.collections.len() == before {
                return Err(refuse(ErrorCode::CollectionNotFound, format!("collection {name:?} does not exist")));
            }
            bump(state);
            Ok(Outcome::Empty(Empty {}))
        }
        Command::SetReplicas(s) => {
            let known: BTreeSet<u64> = routing(state).workers.iter().map(|w| w.id).collect();
            if let Some(w) = s.replicas.iter().find(|w| !known.contains(w)) {
                return Err(refuse(ErrorCode::NotFound, format!("worker {w} is not registered")));
            }
            let unique: BTreeSet<u64> = s.replicas.iter().copied().collect();
            if unique.len() != s.replicas.len() || unique.is_empty() {
                return Err(refuse(ErrorCode::InvalidArgument, "replicas must be distinct and non-empty"));
            }
            let shard = routing(state)
                .collections
                .iter_mut()
                .flat_map(|c| c.shards.iter_mut())
                .find(|sh| sh.id == s.shard_id)
                .ok_or_else(|| refuse(ErrorCode::NotFound, format!("shard {} does not exist", s.shard_id)))?;
            shard.replicas = s.replicas.clone();
            bump(state);
            Ok(Outcome::Empty(Empty {}))
        }
        Command::RaiseAlert(a) => {
            // One active alert per (kind, subject).
            if let Some(open) =
                state.alerts.iter().find(|x| x.resolved_at_ms == 0 && x.kind == a.kind && x.subject == a.subject)
            {
                return Ok(Outcome::Alert(open.clone()));
            }
            let alert = Alert { id: state.next_alert_id.max(1), raised_at_ms: now, resolved_at_ms: 0, ..a.clone() };
            state.next_alert_id = alert.id + 1;
            state.alerts.push(alert.clone());
            // Keep the history bounded: drop the oldest resolved alerts.
            const KEEP: usize = 1000;
            if state.alerts.len() > KEEP {
                let mut excess = state.alerts.len() - KEEP;
                state.alerts.retain(|x| {
                    let drop = excess > 0 && x.resolved_at_ms != 0;
                    excess -= usize::from(drop);
                    !drop
                });
            }
            Ok(Outcome::Alert(alert))
        }
        Command::ResolveAlert(id) => {
            let alert = state
                .alerts
                .iter_mut()
                .find(|a| a.id == *id)
                .ok_or_else(|| refuse(ErrorCode::NotFound, format!("alert {id} does not exist")))?;
            if alert.resolved_at_ms == 0 {
                alert.resolved_at_ms = now.max(1);
            }
            Ok(Outcome::Alert(alert.clone()))
        }
    }
}

/// Replicas each worker holds.
pub fn replica_load(state: &ClusterState) -> BTreeMap<u64, usize> {
    let mut load = BTreeMap::new();
    if let Some(t) = &state.routing {
        for w in &t.workers {
            load.insert(w.id, 0);
        }
        for r in t.collections.iter().flat_map(|c| c.shards.iter()).flat_map(|s| s.replicas.iter()) {
            *load.entry(*r).or_default() += 1;
        }
    }
    load
}

/// Chooses `count` distinct UP workers for a shard, none in `exclude` (the shard's
/// current replicas, kept or being replaced): least loaded first, preferring zones that
/// the replicas it `keep`s and earlier picks do not use yet (a replaced replica's zone is
/// free again). Deterministic (ties by id).
pub fn place(
    state: &ClusterState,
    load: &BTreeMap<u64, usize>,
    count: usize,
    keep: &[u64],
    exclude: &[u64],
) -> Result<Vec<u64>, Refusal> {
    let workers: Vec<&WorkerInfo> = state.routing.as_ref().map(|t| t.workers.iter().collect()).unwrap_or_default();
    let zone_of = |id: u64| workers.iter().find(|w| w.id == id).map(|w| w.zone.as_str()).unwrap_or("");
    let mut candidates: Vec<&WorkerInfo> = workers
        .iter()
        .copied()
        .filter(|w| w.state == WorkerState::Up as i32 && !exclude.contains(&w.id) && !keep.contains(&w.id))
        .collect();
    if candidates.len() < count {
        // Not retryable: it takes more workers (or a smaller replication factor), not time.
        return Err(refuse(
            ErrorCode::FailedPrecondition,
            format!("{count} more replica(s) need distinct workers that are up; {} available", candidates.len()),
        ));
    }
    candidates.sort_by_key(|w| (load.get(&w.id).copied().unwrap_or(0), w.id));
    let mut zones: BTreeSet<&str> = keep.iter().map(|&id| zone_of(id)).filter(|z| !z.is_empty()).collect();
    let mut chosen = Vec::with_capacity(count);
    while chosen.len() < count {
        let pick = candidates.iter().position(|w| w.zone.is_empty() || !zones.contains(w.zone.as_str())).unwrap_or(0);
        let w = candidates.remove(pick);
        if !w.zone.is_empty() {
            zones.insert(w.zone.as_str());
        }
        chosen.push(w.id);
    }
    Ok(chosen)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vectron_proto::internal::{RegisterWorkerRequest, SetReplicas, SetWorkerState, WorkerRef};
    use vectron_proto::v1::CollectionConfig;

    fn run(state: &mut ClusterState, command: Command) -> Result<Outcome, PlacementError> {
        match apply(state, &PlacementCommand { now_ms: 1000, command: Some(command) }).result.unwrap() {
            Outcome::Error(e) => Err(e),
            other => Ok(other),
        }
    }

    fn register(state: &mut ClusterState, zone: &str) -> u64 {
        let cmd = RegisterWorkerRequest { worker_id: 0, address: "127.0.0.1:1".into(), zone: zone.into() };
        match run(state, Command::RegisterWorker(cmd)).unwrap() {
            Outcome::Worker(w) => w.id,
            other => panic!("{other:?}"),
        }
    }

    pub(crate) fn collection_cmd(name: &str, shards: u32, rf: u32) -> Command {
        Command::CreateCollection(CollectionConfig {
            name: name.into(),
            dimension: 4,
            distance: vectron_proto::v1::Distance::Cosine as i32,
            shard_count: shards,
            replication_factor: rf,
            ..Default::default()
        })
    }

    #[test]
    fn worker_ids_are_assigned_once_and_never_reused() {
        let mut s = initial_state();
        let a = register(&mut s, "");
        let b = register(&mut s, "");
        assert_eq!((a, b), (1, 2));
        run(&mut s, Command::RemoveWorker(WorkerRef { worker_id: a, force: false })).unwrap();
        assert_eq!(register(&mut s, ""), 3, "a removed id is not handed out again");
        let again = RegisterWorkerRequest { worker_id: a, address: "x:1".into(), zone: String::new() };
        assert_eq!(run(&mut s, Command::RegisterWorker(again)).unwrap_err().code, ErrorCode::FailedPrecondition as i32);
        let never = RegisterWorkerRequest { worker_id: 99, address: "x:1".into(), zone: String::new() };
        assert_eq!(run(&mut s, Command::RegisterWorker(never)).unwrap_err().code, ErrorCode::NotFound as i32);
        // Re-registering a known id keeps it and brings it back up.
        run(&mut s, Command::SetWorkerState(SetWorkerState { worker_id: b, state: WorkerState::Down as i32 })).unwrap();
        let back = RegisterWorkerRequest { worker_id: b, address: "y:2".into(), zone: String::new() };
        match run(&mut s, Command::RegisterWorker(back)).unwrap() {
            Outcome::Worker(w) => assert_eq!((w.id, w.state, w.address.as_str()), (b, WorkerState::Up as i32, "y:2")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn removing_the_last_live_replica_of_a_shard_needs_force() {
        let mut s = initial_state();
        let (a, b) = (register(&mut s, ""), register(&mut s, ""));
        run(&mut s, collection_cmd("one", 1, 1)).unwrap();
        run(&mut s, collection_cmd("two", 1, 2)).unwrap();
        let holder = routing(&mut s).collections[0].shards[0].replicas[0];
        let other = if holder == a { b } else { a };
        let remove = |id, force| Command::RemoveWorker(WorkerRef { worker_id: id, force });
        // "one" lives on `holder` alone: refused, and nothing changed.
        let before = s.clone();
        let e = run(&mut s, remove(holder, false)).unwrap_err();
        assert_eq!(e.code, ErrorCode::FailedPrecondition as i32, "{}", e.message);
        assert!(e.message.contains("\"one\""), "{}", e.message);
        assert_eq!(s, before);
        // `other` holds only a replica of "two", which keeps one on `holder`.
        run(&mut s, remove(other, false)).unwrap();
        // A down replica is not a live one.
        let c = register(&mut s, "");
        let shard_id = routing(&mut s).collections[0].shards[0].id;
        run(&mut s, Command::SetReplicas(SetReplicas { shard_id, replicas: vec![holder, c] })).unwrap();
        run(&mut s, Command::SetWorkerState(SetWorkerState { worker_id: c, state: WorkerState::Down as i32 })).unwrap();
        assert_eq!(run(&mut s, remove(holder, false)).unwrap_err().code, ErrorCode::FailedPrecondition as i32);
        // Forced, it goes.
        run(&mut s, remove(holder, true)).unwrap();
        assert!(routing(&mut s).workers.iter().all(|w| w.id != holder));
    }

    #[test]
    fn replicas_land_on_distinct_workers_spread_over_zones_and_load() {
        let mut s = initial_state();
        for zone in ["a", "a", "b", "b", "c", "c"] {
            register(&mut s, zone);
        }
        let Outcome::Collection(c) = run(&mut s, collection_cmd("docs", 4, 3)).unwrap() else { panic!() };
        assert_eq!(c.shards.len(), 4);
        let zone = |id: u64| ["a", "a", "b", "b", "c", "c"][(id - 1) as usize];
        for shard in &c.shards {
            let distinct: BTreeSet<u64> = shard.replicas.iter().copied().collect();
            assert_eq!(distinct.len(), 3);
            let zones: BTreeSet<&str> = shard.replicas.iter().map(|&w| zone(w)).collect();
            assert_eq!(zones.len(), 3, "one replica per zone: {:?}", shard.replicas);
        }
        let load = replica_load(&s);
        assert_eq!(load.values().sum::<usize>(), 12);
        assert!(load.values().all(|&n| n == 2), "12 replicas over 6 workers: {load:?}");
    }

    #[test]
    fn a_replaced_replica_frees_its_zone_for_the_replacement() {
        let mut s = initial_state();
        for zone in ["a", "a", "b", "b", "c", "c"] {
            register(&mut s, zone);
        }
        // Shard on 1 (a), 3 (b), 5 (c); 1 is lost. Worker 2, the only other zone-a
        // worker, is the busiest, and still the right choice: zones beat load.
        let load = BTreeMap::from([(2, 5), (4, 0), (6, 0)]);
        assert_eq!(place(&s, &load, 1, &[3, 5], &[1, 3, 5]).unwrap(), vec![2]);
        // Without zones to keep distinct, load decides.
        assert_eq!(place(&s, &load, 1, &[], &[1, 3, 5]).unwrap(), vec![4]);
    }

    #[test]
    fn a_feedback_store_lives_only_beside_its_collection_and_is_deleted_with_it() {
        let mut s = initial_state();
        register(&mut s, "");
        let names = |s: &mut ClusterState| -> Vec<String> {
            routing(s).collections.iter().filter_map(|c| c.config.as_ref().map(|x| x.name.clone())).collect()
        };
        let e = run(&mut s, collection_cmd("docs.feedback", 1, 1)).unwrap_err();
        assert_eq!(e.code, ErrorCode::CollectionNotFound as i32, "{}", e.message);
        run(&mut s, collection_cmd("docs", 1, 1)).unwrap();
        run(&mut s, collection_cmd("docs.feedback", 1, 1)).unwrap();
        run(&mut s, collection_cmd("other", 1, 1)).unwrap();
        assert!(run(&mut s, collection_cmd("docs.other", 1, 1)).is_err(), "only the known companion");
        run(&mut s, Command::DeleteCollection("docs".into())).unwrap();
        assert_eq!(names(&mut s), vec!["other".to_owned()]);
    }

    #[test]
    fn refused_commands_change_nothing() {
        let mut s = initial_state();
        register(&mut s, "");
        let before = s.clone();
        let err = run(&mut s, collection_cmd("docs", 2, 3)).unwrap_err();
        assert_eq!(err.code, ErrorCode::FailedPrecondition as i32, "{}", err.message);
        assert_eq!(s, before);
        assert_eq!(run(&mut s, collection_cmd("bad name!", 1, 1)).unwrap_err().code, ErrorCode::InvalidArgument as i32);
        run(&mut s, collection_cmd("docs", 2, 1)).unwrap();
        let epoch = s.routing.as_ref().unwrap().epoch;
        let dup = run(&mut s, collection_cmd("docs", 1, 1)).unwrap_err();
        assert_eq!(dup.code, ErrorCode::CollectionAlreadyExists as i32);
        assert_eq!(s.routing.as_ref().unwrap().epoch, epoch, "a refusal does not bump the epoch");
        let missing = run(&mut s, Command::DeleteCollection("nope".into())).unwrap_err();
        assert_eq!(missing.code, ErrorCode::CollectionNotFound as i32);
        let bad = SetReplicas { shard_id: 1, replicas: vec![1, 1] };
        assert_eq!(run(&mut s, Command::SetReplicas(bad)).unwrap_err().code, ErrorCode::InvalidArgument as i32);
    }

    #[test]
    fn shards_get_fresh_ids_and_cover_the_hash_space() {
        let mut s = initial_state();
        register(&mut s, "");
        let Outcome::Collection(a) = run(&mut s, collection_cmd("a", 3, 1)).unwrap() else { panic!() };
        run(&mut s, Command::DeleteCollection("a".into())).unwrap();
        let Outcome::Collection(b) = run(&mut s, collection_cmd("a", 3, 1)).unwrap() else { panic!() };
        let ids_a: Vec<u64> = a.shards.iter().map(|x| x.id).collect();
        let ids_b: Vec<u64> = b.shards.iter().map(|x| x.id).collect();
        assert_eq!(ids_a, vec![1, 2, 3]);
        assert_eq!(ids_b, vec![4, 5, 6], "a recreated collection never reuses shard ids (old data is dropped)");
        assert_eq!(b.shards[0].range_start, 0);
        assert_eq!(b.shards[2].range_end, 0);
    }
}
