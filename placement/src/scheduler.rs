//! The scheduler: runs on the placement leader every tick and keeps the cluster's
//! target placement healthy. It only changes the *target* (`ShardInfo::replicas`); each
//! shard's Raft leader moves its group's membership towards it (add learner → catch up
//! → change membership), so a shard is never left without a quorum by the scheduler.
//!
//! [`plan`] decides and [`run`] proposes: `plan` is a pure function of what the leader
//! observes (the replicated state, the workers' heartbeats, the clock) and of what the
//! scheduler remembers between ticks, and returns the commands of one tick in order. It
//! applies each command it plans to its own copy of the state (with the state machine's
//! own [`apply`](crate::state::apply)), so later steps of a tick see earlier ones, as the
//! proposals will. Each tick:
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
use vectron_proto::internal::{
    Alert, ClusterState, PlacementCommand, RoutingTable, SetReplicas, SetWorkerState, WorkerState,
};

use crate::node::{Liveness, PlacementNode, with_reports};
use crate::state::{apply, place, replica_load};

/// How long a shard may go without a reported leader before it is an alert.
const LEADERLESS_ALERT_AFTER: Duration = Duration::from_secs(10);

/// What one tick knows.
#[derive(Debug)]
pub struct Observation<'a> {
    /// The replicated cluster state.
    pub state: &'a ClusterState,
    /// Per worker: when it was last heard from and the shards it reports (every
    /// registered worker has an entry: one never heard from counts from when this
    /// leader started watching).
    pub liveness: &'a HashMap<u64, Liveness>,
    pub now: Instant,
    /// The wall clock, for the replicated timestamps (`state_since_ms`).
    pub now_ms: u64,
}

/// The scheduler's grace periods.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A worker silent this long is marked down.
    pub down_after: Duration,
    /// A worker down this long has its replicas replaced.
    pub replace_after: Duration,
}

/// What the scheduler remembers between ticks of one leadership.
#[derive(Debug, Default)]
pub struct Memory {
    /// Since when each shard has had no live worker reporting that it leads it.
    leaderless_since: HashMap<u64, Instant>,
}

/// One planned command and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub command: Command,
    pub reason: String,
}

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(node: PlacementNode, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut memory = Memory::default();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(node.config.tick) => {}
        }
        if node.ensure_leader().is_err() {
            memory = Memory::default();
            continue;
        }
        if let Err(e) = tick(&node, &mut memory).await {
            tracing::debug!("scheduler tick: {e:?}");
        }
    }
}

/// Plans one tick from what the node observes and proposes the steps in order. Resolving
/// an alert is best effort; any other failed proposal ends the tick.
async fn tick(node: &PlacementNode, memory: &mut Memory) -> Result<(), vectron_model::status::WireError> {
    let now = Instant::now();
    let state = node.view.snapshot();
    let liveness = {
        let mut live = node.liveness.lock();
        for w in state.routing.iter().flat_map(|r| r.workers.iter()) {
            live.entry(w.id).or_insert_with(|| Liveness { last_seen: now, shards: vec![] });
        }
        live.clone()
    };
    let timing = Timing { down_after: node.config.down_after, replace_after: node.config.replace_after };
    let observation = Observation { state: &state, liveness: &liveness, now, now_ms: now_ms() };
    for step in plan(&observation, &timing, memory) {
        tracing::info!("scheduler: {}", step.reason);
        let best_effort = matches!(step.command, Command::ResolveAlert(_));
        match node.propose(step.command).await {
            Ok(_) => {}
            Err(e) if best_effort => tracing::debug!("resolving an alert: {e:?}"),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is(w: i32, s: WorkerState) -> bool {
    w == s as i32
}

/// The commands of one tick, in order (see the module docs). Pure: the same observation
/// and memory give the same steps.
pub fn plan(obs: &Observation<'_>, timing: &Timing, memory: &mut Memory) -> Vec<Step> {
    let mut tick = Tick { state: obs.state.clone(), now_ms: obs.now_ms, steps: Vec::new() };
    let workers = tick.routing().workers;

    // 1. Liveness.
    let silent: Vec<u64> = workers
        .iter()
        .filter(|w| !is(w.state, WorkerState::Down))
        .filter(|w| obs.liveness.get(&w.id).is_some_and(|l| obs.now.duration_since(l.last_seen) > timing.down_after))
        .map(|w| w.id)
        .collect();
    for &id in &silent {
        let down = Command::SetWorkerState(SetWorkerState { worker_id: id, state: WorkerState::Down as i32 });
        tick.push(down, format!("worker {id} stopped heartbeating; marking it down"));
        tick.raise("worker_down", format!("worker {id}"), format!("worker {id} stopped heartbeating"));
    }
    for w in workers.iter().filter(|w| is(w.state, WorkerState::Up) && !silent.contains(&w.id)) {
        tick.resolve("worker_down", &format!("worker {}", w.id));
    }

    // 2. Replacements.
    let moved = tick.replace_replicas(timing);

    // 3. Shard alerts, from the table as heartbeats fill it in.
    let routing = with_reports(tick.routing(), obs.liveness);
    let up: BTreeSet<u64> = routing.workers.iter().filter(|w| is(w.state, WorkerState::Up)).map(|w| w.id).collect();
    for c in &routing.collections {
        let rf = c.config.as_ref().map_or(1, |x| x.replication_factor as usize);
        for shard in &c.shards {
            let subject = format!("shard {}", shard.id);
            let healthy = shard.replicas.iter().filter(|w| up.contains(w)).count();
            if healthy < rf {
                let msg = format!("shard {} has {healthy} of {rf} replicas on live workers", shard.id);
                tick.raise("shard_under_replicated", subject.clone(), msg);
            } else {
                tick.resolve("shard_under_replicated", &subject);
            }
            // Only live workers' reports count: a dead leader's last report still says
            // it leads.
            let led = obs
                .liveness
                .iter()
                .filter(|(id, _)| up.contains(id))
                .any(|(_, l)| l.shards.iter().any(|r| r.shard_id == shard.id && r.leader));
            if led {
                memory.leaderless_since.remove(&shard.id);
                tick.resolve("shard_without_leader", &subject);
            } else {
                let since = *memory.leaderless_since.entry(shard.id).or_insert(obs.now);
                if obs.now.duration_since(since) > LEADERLESS_ALERT_AFTER {
                    let msg = format!("no replica of shard {} reports leading it", shard.id);
                    tick.raise("shard_without_leader", subject, msg);
                }
            }
        }
    }

    // 4. Rebalance, one move at a time, only when every shard has settled.
    if !moved && settled(&routing) {
        tick.rebalance();
    }
    tick.steps
}

/// A tick being planned: the state as the steps so far leave it.
struct Tick {
    state: ClusterState,
    now_ms: u64,
    steps: Vec<Step>,
}

impl Tick {
    /// The routing table as the steps so far leave it.
    fn routing(&self) -> RoutingTable {
        self.state.routing.clone().unwrap_or_default()
    }

    /// Plans `command` and applies it to the tick's state (a command the state machine
    /// would refuse changes nothing there either).
    fn push(&mut self, command: Command, reason: String) {
        apply(&mut self.state, &PlacementCommand { now_ms: self.now_ms, command: Some(command.clone()) });
        self.steps.push(Step { command, reason });
    }

    fn active_alerts<'a>(&'a self, kind: &'a str, subject: &'a str) -> impl Iterator<Item = &'a Alert> + 'a {
        self.state.alerts.iter().filter(move |a| a.resolved_at_ms == 0 && a.kind == kind && a.subject == subject)
    }

    /// Raises an alert unless the same one is active.
    fn raise(&mut self, kind: &str, subject: String, message: String) {
        if self.active_alerts(kind, &subject).next().is_none() {
            let reason = format!("alert {kind}: {message}");
            let alert = Alert { kind: kind.into(), subject, message, ..Default::default() };
            self.push(Command::RaiseAlert(alert), reason);
        }
    }

    /// Resolves the active alerts of `kind` about `subject`.
    fn resolve(&mut self, kind: &str, subject: &str) {
        let open: Vec<u64> = self.active_alerts(kind, subject).map(|a| a.id).collect();
        for id in open {
            self.push(Command::ResolveAlert(id), format!("resolving alert {kind} on {subject}"));
        }
    }

    /// New targets for shards with replicas on gone, long-down or draining workers, or
    /// with too few replicas. Returns whether anything changed.
    fn replace_replicas(&mut self, timing: &Timing) -> bool {
        let grace_ms = timing.replace_after.as_millis() as u64;
        let mut load = replica_load(&self.state);
        let mut changed = false;
        let routing = self.routing();
        for c in &routing.collections {
            let rf = c.config.as_ref().map_or(1, |x| x.replication_factor as usize);
            for shard in &c.shards {
                let bad = |id: &u64| match routing.workers.iter().find(|w| w.id == *id) {
                    None => true,
                    Some(w) if is(w.state, WorkerState::Draining) => true,
                    Some(w) if is(w.state, WorkerState::Down) => {
                        self.now_ms.saturating_sub(w.state_since_ms) > grace_ms
                    }
                    Some(_) => false,
                };
                let keep: Vec<u64> = shard.replicas.iter().copied().filter(|w| !bad(w)).collect();
                if keep.len() == shard.replicas.len() && keep.len() >= rf {
                    continue;
                }
                let need = rf.saturating_sub(keep.len());
                // Never pick a worker the shard already has (even a bad one); the zones
                // of the replicas replaced are free again.
                let new = match place(&self.state, &load, need, &keep, &shard.replicas) {
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
                let reason = format!("replacing replicas of shard {}: {:?} → {replicas:?}", shard.id, shard.replicas);
                self.push(Command::SetReplicas(SetReplicas { shard_id: shard.id, replicas }), reason);
                changed = true;
            }
        }
        changed
    }

    /// Moves one replica from a more to a less loaded up worker when their loads differ
    /// by more than one, keeping a shard's zones distinct when they were: the least
    /// loaded worker first, from the most loaded one that has a replica it may take (with
    /// zones, the most loaded worker's replicas may all have a copy in the least loaded
    /// one's zone already; another worker's may not).
    fn rebalance(&mut self) {
        let routing = self.routing();
        let up: Vec<u64> = routing.workers.iter().filter(|w| is(w.state, WorkerState::Up)).map(|w| w.id).collect();
        let load = replica_load(&self.state);
        let by_load = |id: &u64| (load.get(id).copied().unwrap_or(0), *id);
        let mut targets = up.clone();
        targets.sort_by_key(by_load);
        let mut sources = up;
        sources.sort_by_key(|id| std::cmp::Reverse(by_load(id)));
        let zone = |id: u64| routing.workers.iter().find(|w| w.id == id).map(|w| w.zone.clone()).unwrap_or_default();
        for &least in &targets {
            for &most in &sources {
                if by_load(&most).0 <= by_load(&least).0 + 1 {
                    break; // the sources left are lighter still
                }
                for shard in routing.collections.iter().flat_map(|c| c.shards.iter()) {
                    if !shard.replicas.contains(&most) || shard.replicas.contains(&least) {
                        continue;
                    }
                    // Keep zones distinct when they were.
                    let others: BTreeSet<String> =
                        shard.replicas.iter().filter(|&&w| w != most).map(|&w| zone(w)).collect();
                    if !zone(least).is_empty() && others.contains(&zone(least)) && zone(least) != zone(most) {
                        continue;
                    }
                    let replicas: Vec<u64> =
                        shard.replicas.iter().map(|&w| if w == most { least } else { w }).collect();
                    let reason = format!("rebalancing a replica of shard {} from worker {most} to {least}", shard.id);
                    self.push(Command::SetReplicas(SetReplicas { shard_id: shard.id, replicas }), reason);
                    return;
                }
            }
        }
    }
}

/// Whether every shard's reported voters are exactly its target replicas.
fn settled(routing: &RoutingTable) -> bool {
    routing.collections.iter().flat_map(|c| c.shards.iter()).all(|s| {
        let voters: BTreeSet<u64> = s.voters.iter().copied().collect();
        let target: BTreeSet<u64> = s.replicas.iter().copied().collect();
        voters == target
    })
}

/// Resolves the active alerts of `kind` about `subject` (best effort), outside a tick;
/// answers how many it resolved.
pub async fn resolve_alerts(node: &PlacementNode, kind: &str, subject: &str) -> u32 {
    let open: Vec<u64> = node.view.read(|s| {
        s.alerts
            .iter()
            .filter(|a| a.resolved_at_ms == 0 && a.kind == kind && a.subject == subject)
            .map(|a| a.id)
            .collect()
    });
    let mut resolved = 0;
    for id in open {
        match node.propose(Command::ResolveAlert(id)).await {
            Ok(_) => resolved += 1,
            Err(e) => tracing::debug!("resolving alert {id}: {e:?}"),
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::initial_state;
    use vectron_proto::internal::placement_command_result::Result as Outcome;
    use vectron_proto::internal::{RegisterWorkerRequest, ShardReport};

    const TIMING: Timing = Timing { down_after: Duration::from_secs(5), replace_after: Duration::from_secs(60) };
    const T0_MS: u64 = 1_000_000;

    /// A cluster state built with the state machine itself, and the clocks of a tick.
    struct World {
        state: ClusterState,
        liveness: HashMap<u64, Liveness>,
        start: Instant,
    }

    impl World {
        fn new() -> World {
            World { state: initial_state(), liveness: HashMap::new(), start: Instant::now() }
        }

        fn run(&mut self, command: Command, at_ms: u64) -> Outcome {
            let result = apply(&mut self.state, &PlacementCommand { now_ms: at_ms, command: Some(command) });
            result.result.expect("an outcome")
        }

        fn worker(&mut self, zone: &str) -> u64 {
            let r = RegisterWorkerRequest { worker_id: 0, address: "127.0.0.1:1".into(), zone: zone.into() };
            match self.run(Command::RegisterWorker(r), T0_MS) {
                Outcome::Worker(w) => {
                    self.liveness.insert(w.id, Liveness { last_seen: self.start, shards: vec![] });
                    w.id
                }
                other => panic!("{other:?}"),
            }
        }

        fn collection(&mut self, name: &str, shards: u32, rf: u32) {
            let outcome = self.run(crate::state::tests::collection_cmd(name, shards, rf), T0_MS);
            assert!(!matches!(outcome, Outcome::Error(_)), "{outcome:?}");
        }

        fn set_state(&mut self, worker: u64, state: WorkerState, at_ms: u64) {
            self.run(Command::SetWorkerState(SetWorkerState { worker_id: worker, state: state as i32 }), at_ms);
        }

        fn shards(&self) -> Vec<(u64, Vec<u64>)> {
            let r = self.state.routing.as_ref().unwrap();
            r.collections.iter().flat_map(|c| c.shards.iter()).map(|s| (s.id, s.replicas.clone())).collect()
        }

        /// Every live worker reports leading the shards it holds first, with the target
        /// as voters (a settled cluster).
        fn report_settled(&mut self) {
            let shards = self.shards();
            for (worker, l) in self.liveness.iter_mut() {
                l.shards = shards
                    .iter()
                    .filter(|(_, r)| r.first() == Some(worker))
                    .map(|(id, r)| ShardReport {
                        shard_id: *id,
                        leader: true,
                        term: 1,
                        voters: r.clone(),
                        points_count: 0,
                    })
                    .collect();
            }
        }

        fn plan_at(&self, after: Duration, memory: &mut Memory) -> Vec<Step> {
            let obs = Observation {
                state: &self.state,
                liveness: &self.liveness,
                now: self.start + after,
                now_ms: T0_MS + after.as_millis() as u64,
            };
            plan(&obs, &TIMING, memory)
        }

        /// Plans at `after` and applies the steps, as the leader would.
        fn tick(&mut self, after: Duration, memory: &mut Memory) -> Vec<Step> {
            let steps = self.plan_at(after, memory);
            for s in &steps {
                self.run(s.command.clone(), T0_MS + after.as_millis() as u64);
            }
            steps
        }

        fn heard_from(&mut self, worker: u64, after: Duration) {
            self.liveness.get_mut(&worker).unwrap().last_seen = self.start + after;
        }
    }

    fn downs(steps: &[Step]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|s| match &s.command {
                Command::SetWorkerState(w) if w.state == WorkerState::Down as i32 => Some(w.worker_id),
                _ => None,
            })
            .collect()
    }

    fn raised<'a>(steps: &'a [Step], kind: &str) -> Vec<&'a str> {
        steps
            .iter()
            .filter_map(|s| match &s.command {
                Command::RaiseAlert(a) if a.kind == kind => Some(a.subject.as_str()),
                _ => None,
            })
            .collect()
    }

    fn moves(steps: &[Step]) -> Vec<(u64, Vec<u64>)> {
        steps
            .iter()
            .filter_map(|s| match &s.command {
                Command::SetReplicas(r) => Some((r.shard_id, r.replicas.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_silent_worker_is_marked_down_once_and_alerted_once() {
        let mut w = World::new();
        let (a, b) = (w.worker("z1"), w.worker("z2"));
        w.collection("c", 1, 2);
        w.report_settled();
        let mut memory = Memory::default();
        assert!(w.tick(Duration::from_secs(4), &mut memory).is_empty(), "quiet within the grace period");
        w.heard_from(a, Duration::from_secs(6));
        let steps = w.tick(Duration::from_secs(7), &mut memory);
        assert_eq!(downs(&steps), vec![b]);
        assert_eq!(raised(&steps, "worker_down"), vec![format!("worker {b}").as_str()]);
        assert_eq!(raised(&steps, "shard_under_replicated").len(), 1, "its shard lost a live replica: {steps:?}");
        let again = w.tick(Duration::from_secs(8), &mut memory);
        assert!(downs(&again).is_empty() && raised(&again, "worker_down").is_empty(), "{again:?}");
        // Back up (it registered again): the alert resolves.
        w.set_state(b, WorkerState::Up, T0_MS + 9_000);
        w.heard_from(b, Duration::from_secs(9));
        w.heard_from(a, Duration::from_secs(9));
        let back = w.tick(Duration::from_secs(10), &mut memory);
        assert_eq!(back.iter().filter(|s| matches!(s.command, Command::ResolveAlert(_))).count(), 2, "{back:?}");
        assert!(w.state.alerts.iter().all(|a| a.resolved_at_ms != 0));
    }

    #[test]
    fn replicas_on_a_long_down_worker_move_to_another_zone_first() {
        let mut w = World::new();
        let (a, b, c) = (w.worker("z1"), w.worker("z2"), w.worker("z1"));
        let d = w.worker("z3");
        w.collection("c", 1, 2);
        let (shard, before) = w.shards()[0].clone();
        let gone = before[0];
        let kept = before[1];
        w.set_state(gone, WorkerState::Down, T0_MS);
        for x in [a, b, c, d] {
            w.heard_from(x, Duration::from_secs(30));
        }
        let mut memory = Memory::default();
        assert!(moves(&w.tick(Duration::from_secs(30), &mut memory)).is_empty(), "within replace_after");
        for x in [a, b, c, d] {
            w.heard_from(x, Duration::from_secs(61));
        }
        let steps = w.tick(Duration::from_secs(61), &mut memory);
        let planned = moves(&steps);
        assert_eq!(planned.len(), 1, "{steps:?}");
        let (moved_shard, after) = &planned[0];
        assert_eq!(*moved_shard, shard);
        assert!(after.contains(&kept) && !after.contains(&gone), "{after:?}");
        let zone =
            |id: u64| w.state.routing.as_ref().unwrap().workers.iter().find(|x| x.id == id).unwrap().zone.clone();
        let zones: BTreeSet<String> = after.iter().map(|&x| zone(x)).collect();
        assert_eq!(zones.len(), 2, "distinct zones: {after:?}");
    }

    #[test]
    fn new_workers_in_used_zones_get_replicas_from_their_own_zone() {
        // Three shards, three replicas each, one per zone; then a new worker in z1 and one
        // in z2. The most loaded worker (highest id) is in z3: its replicas all have a z1
        // and a z2 copy, so the replica the new z1 worker gets comes from the z1 one.
        let mut w = World::new();
        let old: Vec<u64> = ["z1", "z2", "z3"].iter().map(|z| w.worker(z)).collect();
        w.collection("c", 3, 3);
        w.report_settled();
        let new_z1 = w.worker("z1");
        let _new_z2 = w.worker("z2");
        for x in w.state.routing.as_ref().unwrap().workers.iter().map(|x| x.id).collect::<Vec<_>>() {
            w.heard_from(x, Duration::from_secs(1));
        }
        let mut memory = Memory::default();
        let planned = moves(&w.tick(Duration::from_secs(1), &mut memory));
        assert_eq!(planned.len(), 1, "{planned:?}");
        let (_, after) = &planned[0];
        assert!(
            after.contains(&new_z1) && !after.contains(&old[0]),
            "z1's replica moves to the new z1 worker: {after:?}"
        );
        let zone =
            |id: u64| w.state.routing.as_ref().unwrap().workers.iter().find(|x| x.id == id).unwrap().zone.clone();
        let zones: BTreeSet<String> = after.iter().map(|&x| zone(x)).collect();
        assert_eq!(zones.len(), 3, "still one replica per zone: {after:?}");
    }

    #[test]
    fn a_draining_worker_is_emptied_and_nothing_rebalances_while_moving() {
        let mut w = World::new();
        let ids: Vec<u64> = (0..3).map(|_| w.worker("")).collect();
        w.collection("c", 3, 1);
        w.report_settled();
        let holder = w.shards()[0].1[0];
        w.set_state(holder, WorkerState::Draining, T0_MS);
        let mut memory = Memory::default();
        let steps = w.tick(Duration::from_secs(1), &mut memory);
        let planned = moves(&steps);
        assert!(!planned.is_empty(), "{steps:?}");
        assert!(planned.iter().all(|(_, r)| !r.contains(&holder)), "{planned:?}");
        assert!(ids.contains(&planned[0].1[0]));
        // The shards have not caught up (voters differ from the new targets): no
        // rebalancing on top.
        let next = w.tick(Duration::from_secs(2), &mut memory);
        assert!(moves(&next).is_empty(), "{next:?}");
    }

    #[test]
    fn a_settled_uneven_cluster_moves_one_replica_per_tick() {
        let mut w = World::new();
        let a = w.worker("");
        w.collection("c", 4, 1);
        let b = w.worker("");
        w.report_settled();
        let mut memory = Memory::default();
        let steps = w.tick(Duration::from_secs(1), &mut memory);
        assert_eq!(moves(&steps).len(), 1, "{steps:?}");
        assert_eq!(moves(&steps)[0].1, vec![b], "from {a} to the empty worker");
        // Not settled until the move is reported done.
        assert!(moves(&w.tick(Duration::from_secs(2), &mut memory)).is_empty());
        w.report_settled();
        assert_eq!(moves(&w.tick(Duration::from_secs(3), &mut memory)).len(), 1);
        w.report_settled();
        assert!(moves(&w.tick(Duration::from_secs(4), &mut memory)).is_empty(), "2 and 2: even");
    }

    #[test]
    fn a_shard_nobody_leads_is_alerted_after_ten_seconds_and_resolved_when_led() {
        let mut w = World::new();
        w.worker("");
        w.collection("c", 1, 1);
        let mut memory = Memory::default();
        let quiet = |w: &mut World, s: u64, m: &mut Memory| {
            for id in w.liveness.keys().copied().collect::<Vec<_>>() {
                w.heard_from(id, Duration::from_secs(s));
            }
            w.tick(Duration::from_secs(s), m)
        };
        assert!(raised(&quiet(&mut w, 1, &mut memory), "shard_without_leader").is_empty());
        assert!(raised(&quiet(&mut w, 10, &mut memory), "shard_without_leader").is_empty());
        assert_eq!(raised(&quiet(&mut w, 12, &mut memory), "shard_without_leader").len(), 1);
        assert!(raised(&quiet(&mut w, 13, &mut memory), "shard_without_leader").is_empty(), "raised once");
        w.report_settled();
        let led = quiet(&mut w, 14, &mut memory);
        assert!(led.iter().any(|s| matches!(s.command, Command::ResolveAlert(_))), "{led:?}");
    }

    #[test]
    fn planning_is_pure() {
        let mut w = World::new();
        let (_, b) = (w.worker("z1"), w.worker("z2"));
        w.collection("c", 2, 2);
        w.set_state(b, WorkerState::Down, T0_MS);
        let once = w.plan_at(Duration::from_secs(90), &mut Memory::default());
        let twice = w.plan_at(Duration::from_secs(90), &mut Memory::default());
        assert!(!once.is_empty(), "a down worker's shards are under-replicated: {once:?}");
        assert_eq!(once, twice);
    }
}
