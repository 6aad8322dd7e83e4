//! The cluster's operations as admins see them, shared by the HTTP admin routes
//! ([`crate::http::admin`]) and `vectron.v1.AdminService` ([`crate::grpc_admin`]): the
//! cluster's status, its workers (drain, remove) and alerts (list, resolve), each in
//! the public API's terms (`vectron.v1` messages), from the placement driver and the
//! routing table.

use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;

use crate::api::Api;
use crate::error::GatewayError;

/// The placement leader, the routing table's totals and the open alerts.
pub async fn status(api: &Api) -> Result<pb::ClusterStatus, GatewayError> {
    let placement = api.router().placement();
    let leader = placement
        .call(|mut c| async move { c.get_leader(pi::GetLeaderRequest {}).await })
        .await
        .map_err(GatewayError::Placement)?;
    let alerts = placement_alerts(api, false).await?;
    let t = api.router().refresh_now().await?;
    let shards: Vec<&pi::ShardInfo> = t.collections.iter().flat_map(|c| c.shards.iter()).collect();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(pb::ClusterStatus {
        placement_leader: leader.leader_address,
        placement_term: leader.term,
        epoch: t.epoch,
        workers: count(t.workers.len()),
        workers_up: count(t.workers.iter().filter(|w| w.state == pi::WorkerState::Up as i32).count()),
        workers_down: count(t.workers.iter().filter(|w| w.state == pi::WorkerState::Down as i32).count()),
        collections: count(t.collections.len()),
        shards: count(shards.len()),
        shards_with_leader: count(shards.iter().filter(|s| s.leader != 0).count()),
        replicas: count(shards.iter().map(|s| s.replicas.len()).sum()),
        points: shards.iter().map(|s| s.points_count).sum(),
        alerts_open: count(alerts.len()),
    })
}

/// Every worker the routing table knows, with the replicas it holds and leads.
pub async fn workers(api: &Api) -> Result<Vec<pb::Worker>, GatewayError> {
    let t = api.router().refresh_now().await?;
    Ok(t.workers.iter().map(|w| worker(w, &t)).collect())
}

/// Marks worker `id` draining.
pub async fn drain(api: &Api, id: u64) -> Result<pb::Worker, GatewayError> {
    let placement = api.router().placement();
    let w = placement
        .call(|mut c| async move { c.drain_worker(pi::WorkerRef { worker_id: id, force: false }).await })
        .await
        .map_err(GatewayError::Placement)?;
    Ok(worker(&w, &api.router().table()))
}

/// Forgets worker `id` (refused while a shard would be left without a live replica,
/// unless `force`).
pub async fn remove(api: &Api, id: u64, force: bool) -> Result<pb::Worker, GatewayError> {
    let placement = api.router().placement();
    let w = placement
        .call(|mut c| async move { c.remove_worker(pi::WorkerRef { worker_id: id, force }).await })
        .await
        .map_err(GatewayError::Placement)?;
    Ok(worker(&w, &api.router().table()))
}

/// The open alerts, and the resolved ones too when `include_resolved`.
pub async fn alerts(api: &Api, include_resolved: bool) -> Result<Vec<pb::Alert>, GatewayError> {
    Ok(placement_alerts(api, include_resolved).await?.iter().map(alert).collect())
}

async fn placement_alerts(api: &Api, include_resolved: bool) -> Result<Vec<pi::Alert>, GatewayError> {
    let placement = api.router().placement();
    let r = placement
        .call(|mut c| async move { c.list_alerts(pi::ListAlertsRequest { include_resolved }).await })
        .await
        .map_err(GatewayError::Placement)?;
    Ok(r.alerts)
}

pub async fn resolve_alert(api: &Api, id: u64) -> Result<pb::Alert, GatewayError> {
    let placement = api.router().placement();
    let a = placement
        .call(|mut c| async move { c.resolve_alert(pi::ResolveAlertRequest { alert_id: id }).await })
        .await
        .map_err(GatewayError::Placement)?;
    Ok(alert(&a))
}

fn worker(w: &pi::WorkerInfo, table: &pi::RoutingTable) -> pb::Worker {
    let state = pi::WorkerState::try_from(w.state).unwrap_or(pi::WorkerState::Unspecified);
    let shards = table.collections.iter().flat_map(|c| c.shards.iter());
    let (mut replicas, mut leaders) = (0u32, 0u32);
    for s in shards {
        replicas += u32::from(s.replicas.contains(&w.id));
        leaders += u32::from(s.leader == w.id);
    }
    pb::Worker {
        id: w.id,
        address: w.address.clone(),
        zone: w.zone.clone(),
        state: match state {
            pi::WorkerState::Unspecified => "unknown".to_owned(),
            s => s.as_str_name().to_lowercase(),
        },
        registered_at_ms: w.last_heartbeat_ms,
        state_since_ms: w.state_since_ms,
        replicas,
        leaders,
    }
}

fn alert(a: &pi::Alert) -> pb::Alert {
    pb::Alert {
        id: a.id,
        kind: a.kind.clone(),
        subject: a.subject.clone(),
        message: a.message.clone(),
        raised_at_ms: a.raised_at_ms,
        resolved_at_ms: a.resolved_at_ms,
    }
}
