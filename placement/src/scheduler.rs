//! The scheduler: runs on the placement leader every tick and keeps the cluster's
//! target placement healthy. It only changes the *target* (`ShardInfo::replicas`); each
//! shard's Raft leader moves its group's membership towards it (add learner → catch up
//! → change membership), so a shard is never left without a quorum by the scheduler.
//!
//! Each tick:
//! 1. marks workers that stopped heartbeating down (and raises `worker_down`, resolved
//!    once they are up again);
//! 2. replaces replicas on workers that have been down past the grace period, that were
//!    removed, or that are draining, with replicas on the least-loaded up workers
//!    (distinct zones first);
//! 3. raises and resolves `shard_under_replicated` and `shard_without_leader`;
//! 4. when nothing else is moving, evens the load: moves one replica from the most to
//!    the least loaded worker when they differ by more than one.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use vectron_common::now_ms;
use vectron_proto::internal::placement_command::Command;
use vectron_proto::internal::{Alert, ClusterState, SetReplicas, SetWorkerState, WorkerState};

use crate::node::PlacementNode;
use crate::state::{place, replica_load};

/// How long a shard may go without a reported leader before it is an alert.
const LEADERLESS_ALERT_AFTER: Duration = Duration::from_secs(10);

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(node: PlacementNode, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut leaderless_since: HashMap<u64, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(node.config.tick) => {}
        }
        if node.ensure_leader().is_err() {
            leaderless_since.clear();
            continue;
        }
        if let Err(e) = tick(&node, &mut leaderless_since).await {
            tracing::debug!("scheduler tick: {e:?}");
        }
    }
}

fn is(w: i32, s: WorkerState) -> bool {
    w == s as i32
}

async fn tick(
    node: &PlacementNode,
    leaderless_since: &mut HashMap<u64, Instant>,
) -> Result<(), vectron_model::status::WireError> {
    let now = Instant::now();
    let state = node.view.snapshot();
    let workers = state.routing.as_ref().map(|r| r.workers.clone()).unwrap_or_default();

    // 1. Liveness.
    let silent: Vec<u64> = {
        let mut live = node.liveness.lock();
        workers
            .iter()
            .filter(|w| !is(w.state, WorkerState::Down))
            .filter(|w| {
                let seen = live.entry(w.id).or_insert_with(|| crate::node::Liveness { last_seen: now, shards: vec![] });
                now.duration_since(seen.last_seen) > node.config.down_after
            })
            .map(|w| w.id)
            .collect()
    };
    for &id in &silent {
        tracing::warn!(worker = id, "worker stopped heartbeating; marking it down");
        node.propose(Command::SetWorkerState(SetWorkerState { worker_id: id, state: WorkerState::Down as i32 }))
            .await?;
        raise(node, "worker_down", format!("worker {id}"), format!("worker {id} stopped heartbeating")).await?;
    }
    // Workers back up (by heartbeat or by registering again) end their alerts (one scan
    // of the alerts per tick, not one per worker).
    let down_alerts: BTreeSet<String> = node.view.read(|s| {
        s.alerts
            .iter()
            .filter(|a| a.resolved_at_ms == 0 && a.kind == "worker_down")
            .map(|a| a.subject.clone())
            .collect()
    });
    for w in workers.iter().filter(|w| is(w.state, WorkerState::Up) && !silent.contains(&w.id)) {
        let subject = format!("worker {}", w.id);
        if down_alerts.contains(&subject) {
            resolve_alerts(node, "worker_down", &subject).await;
        }
    }

    // 2. Replacements.
    let state = node.view.snapshot();
    let moved = replace_replicas(node, &state).await?;

    // 3. Shard alerts.
    let state = node.view.snapshot();
    let routing = node.routing_table();
    let up: BTreeSet<u64> = workers.iter().filter(|w| is(w.state, WorkerState::Up)).map(|w| w.id).collect();
    for c in &routing.collections {
        let rf = c.config.as_ref().map_or(1, |x| x.replication_factor as usize);
        for shard in &c.shards {
            let subject = format!("shard {}", shard.id);
            let healthy = shard.replicas.iter().filter(|w| up.contains(w)).count();
            if healthy < rf {
                let msg = format!("shard {} has {healthy} of {rf} replicas on live workers", shard.id);
                raise(node, "shard_under_replicated", subject.clone(), msg).await?;
            } else {
                resolve_alerts(node, "shard_under_replicated", &subject).await;
            }
            // Only live workers' reports count: a dead leader's last report still says
            // it leads.
            let led = node
                .liveness
                .lock()
                .iter()
                .filter(|(id, _)| up.contains(id))
                .any(|(_, l)| l.shards.iter().any(|r| r.shard_id == shard.id && r.leader));
            if led {
                leaderless_since.remove(&shard.id);
                resolve_alerts(node, "shard_without_leader", &subject).await;
            } else {
                let since = *leaderless_since.entry(shard.id).or_insert(now);
                if now.duration_since(since) > LEADERLESS_ALERT_AFTER {
                    let msg = format!("no replica of shard {} reports leading it", shard.id);
                    raise(node, "shard_without_leader", subject, msg).await?;
                }
            }
        }
    }

    // 4. Rebalance, one move at a time, only when every shard has settled.
    if !moved && settled(&routing) {
        rebalance(node, &state).await?;
    }
    Ok(())
}

/// Whether every shard's reported voters are exactly its target replicas.
fn settled(routing: &vectron_proto::internal::RoutingTable) -> bool {
    routing.collections.iter().flat_map(|c| c.shards.iter()).all(|s| {
        let voters: BTreeSet<u64> = s.voters.iter().copied().collect();
        let target: BTreeSet<u64> = s.replicas.iter().copied().collect();
        voters == target
    })
}

/// Proposes new targets for shards with replicas on gone, long-down or draining
/// workers, or with too few replicas. Returns whether anything changed.
async fn replace_replicas(
    node: &PlacementNode,
    state: &ClusterState,
) -> Result<bool, vectron_model::status::WireError> {
    let Some(routing) = &state.routing else { return Ok(false) };
    let grace_ms = node.config.replace_after.as_millis() as u64;
    let now = now_ms();
    let mut load = replica_load(state);
    let mut changed = false;
    for c in &routing.collections {
        let rf = c.config.as_ref().map_or(1, |x| x.replication_factor as usize);
        for shard in &c.shards {
            let bad = |id: &u64| match routing.workers.iter().find(|w| w.id == *id) {
                None => true,
                Some(w) if is(w.state, WorkerState::Draining) => true,
                Some(w) if is(w.state, WorkerState::Down) => now.saturating_sub(w.state_since_ms) > grace_ms,
                Some(_) => false,
            };
            let keep: Vec<u64> = shard.replicas.iter().copied().filter(|w| !bad(w)).collect();
            if keep.len() == shard.replicas.len() && keep.len() >= rf {
                continue;
            }
            let need = rf.saturating_sub(keep.len());
            // Never pick a worker the shard already has (even a bad one); the zones of
            // the replicas replaced are free again.
            let new = match place(state, &load, need, &keep, &shard.replicas) {
                Ok(new) => new,
                Err(refusal) => {
                    tracing::debug!(shard = shard.id, "cannot replace replicas yet: {refusal}");
                    continue;
                }
            };
            let mut replicas = keep.clone();
            replicas.extend(&new);
            if replicas.is_empty() {
                continue;
            }
            for w in &new {
                *load.entry(*w).or_default() += 1;
            }
            tracing::info!(shard = shard.id, from = ?shard.replicas, to = ?replicas, "replacing replicas");
            node.propose(Command::SetReplicas(SetReplicas { shard_id: shard.id, replicas })).await?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Moves one replica from the most to the least loaded up worker when they differ by
/// more than one.
async fn rebalance(node: &PlacementNode, state: &ClusterState) -> Result<(), vectron_model::status::WireError> {
    let Some(routing) = &state.routing else { return Ok(()) };
    let up: Vec<u64> = routing.workers.iter().filter(|w| is(w.state, WorkerState::Up)).map(|w| w.id).collect();
    let load = replica_load(state);
    let by_load = |id: &u64| (load.get(id).copied().unwrap_or(0), *id);
    let (Some(&most), Some(&least)) = (up.iter().max_by_key(|id| by_load(id)), up.iter().min_by_key(|id| by_load(id)))
    else {
        return Ok(());
    };
    if by_load(&most).0 <= by_load(&least).0 + 1 {
        return Ok(());
    }
    let zone = |id: u64| routing.workers.iter().find(|w| w.id == id).map(|w| w.zone.clone()).unwrap_or_default();
    for shard in routing.collections.iter().flat_map(|c| c.shards.iter()) {
        if !shard.replicas.contains(&most) || shard.replicas.contains(&least) {
            continue;
        }
        // Keep zones distinct when they were.
        let others: BTreeSet<String> = shard.replicas.iter().filter(|&&w| w != most).map(|&w| zone(w)).collect();
        if !zone(least).is_empty() && others.contains(&zone(least)) && zone(least) != zone(most) {
            continue;
        }
        let replicas: Vec<u64> = shard.replicas.iter().map(|&w| if w == most { least } else { w }).collect();
        tracing::info!(shard = shard.id, from = most, to = least, "rebalancing a replica");
        node.propose(Command::SetReplicas(SetReplicas { shard_id: shard.id, replicas })).await?;
        return Ok(());
    }
    Ok(())
}

/// Raises an alert unless the same one is active.
async fn raise(
    node: &PlacementNode,
    kind: &str,
    subject: String,
    message: String,
) -> Result<(), vectron_model::status::WireError> {
    let active =
        node.view.read(|s| s.alerts.iter().any(|a| a.resolved_at_ms == 0 && a.kind == kind && a.subject == subject));
    if !active {
        let alert = Alert { kind: kind.into(), subject, message, ..Default::default() };
        node.propose(Command::RaiseAlert(alert)).await?;
    }
    Ok(())
}

/// Resolves the active alerts of `kind` about `subject` (best effort).
pub async fn resolve_alerts(node: &PlacementNode, kind: &str, subject: &str) {
    let open: Vec<u64> = node.view.read(|s| {
        s.alerts
            .iter()
            .filter(|a| a.resolved_at_ms == 0 && a.kind == kind && a.subject == subject)
            .map(|a| a.id)
            .collect()
    });
    for id in open {
        if let Err(e) = node.propose(Command::ResolveAlert(id)).await {
            tracing::debug!("resolving alert {id}: {e:?}");
        }
    }
}
