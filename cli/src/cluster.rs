//! `vectron cluster …` (admins): the cluster's status, workers (drain, remove) and
//! alerts (list, resolve), through `vectron.v1.AdminService`.

use clap::Subcommand;
use serde_json::{Value, json};
use vectron_proto::v1 as pb;

use crate::output::{Table, confirm, emit, time_ms};
use crate::profile::{Target, connect};
use crate::{Exit, Outcome};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The placement driver's leader and the cluster's totals; exits 5 when some shard
    /// has no leader or a worker is down (a draining one is planned, not a fault).
    Status,
    /// The workers: state, zone, replicas held and led.
    Workers,
    /// Marks a worker draining: it keeps serving while its replicas move away.
    Drain { worker_id: u64 },
    /// Forgets a worker for good (refused while a shard would lose its last live
    /// replica, unless --force).
    Remove {
        worker_id: u64,
        /// Even if a shard is left without a live replica (its data is then no longer
        /// served); asks first unless --yes.
        #[arg(long)]
        force: bool,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The open alerts (--all: resolved ones too).
    Alerts {
        #[arg(long)]
        all: bool,
    },
    /// Resolves an alert.
    Resolve { alert_id: u64 },
}

fn worker_json(w: &pb::Worker) -> Value {
    json!({"id": w.id, "address": w.address, "zone": w.zone, "state": w.state, "replicas": w.replicas,
           "leaders": w.leaders, "registered_at_ms": w.registered_at_ms, "state_since_ms": w.state_since_ms})
}

fn workers_table(workers: &[pb::Worker]) -> Table {
    let mut t = Table::new(&["id", "address", "zone", "state", "replicas", "leaders", "since"]);
    for w in workers {
        t.row(vec![
            w.id.to_string(),
            w.address.clone(),
            w.zone.clone(),
            w.state.clone(),
            w.replicas.to_string(),
            w.leaders.to_string(),
            time_ms(w.state_since_ms),
        ]);
    }
    t
}

fn alert_json(a: &pb::Alert) -> Value {
    json!({"id": a.id, "kind": a.kind, "subject": a.subject, "message": a.message,
           "raised_at_ms": a.raised_at_ms, "resolved_at_ms": (a.resolved_at_ms != 0).then_some(a.resolved_at_ms)})
}

fn alerts_table(alerts: &[pb::Alert]) -> Table {
    let mut t = Table::new(&["id", "kind", "subject", "raised", "resolved", "message"]);
    for a in alerts {
        t.row(vec![
            a.id.to_string(),
            a.kind.clone(),
            a.subject.clone(),
            time_ms(a.raised_at_ms),
            time_ms(a.resolved_at_ms),
            a.message.clone(),
        ]);
    }
    t
}

/// Runs a `vectron cluster` command.
pub async fn run(target: Target, command: ClusterCommand) -> Outcome {
    let client = connect(&target).await?;
    match command {
        ClusterCommand::Status => {
            let s = client.cluster_status().await?;
            let healthy = s.shards_with_leader == s.shards && s.workers_down == 0;
            let value = json!({
                "healthy": healthy, "placement_leader": s.placement_leader, "placement_term": s.placement_term,
                "epoch": s.epoch, "workers": s.workers, "workers_up": s.workers_up, "workers_down": s.workers_down,
                "collections": s.collections,
                "shards": s.shards, "shards_with_leader": s.shards_with_leader, "replicas": s.replicas,
                "points": s.points, "alerts_open": s.alerts_open,
            });
            emit(target.output, &value, || {
                Table::fields(&[
                    ("health", if healthy { "ok".into() } else { "degraded".into() }),
                    ("placement leader", format!("{} (term {})", s.placement_leader, s.placement_term)),
                    ("workers", format!("{} up, {} down, of {}", s.workers_up, s.workers_down, s.workers)),
                    ("collections", s.collections.to_string()),
                    (
                        "shards",
                        format!("{} ({} with a leader), {} replicas", s.shards, s.shards_with_leader, s.replicas),
                    ),
                    ("points", s.points.to_string()),
                    ("open alerts", s.alerts_open.to_string()),
                ])
            });
            if !healthy {
                return Err(crate::Failure::new(Exit::Unavailable, "the cluster is degraded"));
            }
        }
        ClusterCommand::Workers => {
            let workers = client.list_workers().await?;
            let value = json!({"workers": workers.iter().map(worker_json).collect::<Vec<_>>()});
            emit(target.output, &value, || workers_table(&workers));
        }
        ClusterCommand::Drain { worker_id } => {
            let w = client.drain_worker(worker_id).await?;
            emit(target.output, &worker_json(&w), || workers_table(std::slice::from_ref(&w)));
        }
        ClusterCommand::Remove { worker_id, force, yes } => {
            if force && !yes {
                confirm(&format!("Remove worker {worker_id} even if a shard loses its last live replica?"))?;
            }
            let w = client.remove_worker(worker_id, force).await?;
            emit(target.output, &json!({"removed": worker_json(&w)}), || workers_table(std::slice::from_ref(&w)));
        }
        ClusterCommand::Alerts { all } => {
            let alerts = client.list_alerts(all).await?;
            let value = json!({"alerts": alerts.iter().map(alert_json).collect::<Vec<_>>()});
            emit(target.output, &value, || alerts_table(&alerts));
        }
        ClusterCommand::Resolve { alert_id } => {
            let a = client.resolve_alert(alert_id).await?;
            emit(target.output, &alert_json(&a), || alerts_table(std::slice::from_ref(&a)));
        }
    }
    Ok(())
}
