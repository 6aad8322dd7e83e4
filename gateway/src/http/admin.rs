//! Operations endpoints: health, cluster stats, workers, collections' placement, alerts,
//! and Prometheus metrics.
//!
//! - `GET /v1/system/health`: 200 when the placement driver answers, 503 otherwise;
//! - `GET /v1/admin/stats`, `/v1/admin/workers`, `/v1/admin/collections`: JSON views of
//!   the routing table (with leaders and sizes from heartbeats);
//! - `POST /v1/admin/workers/{id}/drain`, `DELETE /v1/admin/workers/{id}`: move replicas
//!   off a worker, or forget it;
//! - `GET /v1/alerts` (`?all=true` includes resolved ones), `POST /v1/alerts/{id}/resolve`;
//! - `GET /metrics`: the gateway's [`Metrics`], per-shard gauges refreshed from the
//!   routing table at scrape time.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;

use super::extract::{ApiError, ErrorReply, PathParams, QueryParams};
use crate::api::Api;
use crate::auth::Administrator;
use crate::cluster;
use crate::metrics::Metrics;

/// Admin routes' state.
#[derive(Debug, Clone)]
pub struct Admin {
    api: Api,
    metrics: Arc<Metrics>,
}

impl Admin {
    pub fn new(api: Api, metrics: Arc<Metrics>) -> Admin {
        Admin { api, metrics }
    }

    /// The admin routes with their OpenAPI description.
    pub fn routes(self) -> OpenApiRouter<Admin> {
        OpenApiRouter::new()
            .routes(routes!(health))
            .routes(routes!(stats))
            .routes(routes!(workers))
            .routes(routes!(drain_worker))
            .routes(routes!(remove_worker))
            .routes(routes!(collections))
            .routes(routes!(alerts))
            .routes(routes!(resolve_alert))
            .routes(routes!(render_metrics))
    }

    /// The admin routes, serving.
    pub fn router(self) -> Router {
        let (routes, _) = self.clone().routes().split_for_parts();
        routes.with_state(self)
    }
}

type Reply = Result<Json<Value>, ApiError>;

async fn table(admin: &Admin) -> Result<Arc<pi::RoutingTable>, ApiError> {
    Ok(admin.api.router().refresh_now().await?)
}

fn worker_json(w: &pb::Worker) -> Value {
    json!({"id": w.id, "address": w.address, "zone": w.zone, "state": w.state,
           "last_heartbeat_ms": w.registered_at_ms, "state_since_ms": w.state_since_ms,
           "replicas": w.replicas, "leaders": w.leaders})
}

#[utoipa::path(get, path = "/v1/system/health", tag = "ops", responses((status = 200, body = serde_json::Value), (status = 503, body = serde_json::Value)))]
async fn health(State(admin): State<Admin>) -> Response {
    match admin.api.router().placement().call(|mut c| async move { c.get_leader(pi::GetLeaderRequest {}).await }).await
    {
        Ok(l) if l.leader_id != 0 => {
            Json(json!({"status": "ok", "placement_leader": l.leader_address, "placement_term": l.term}))
                .into_response()
        }
        Ok(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "no placement leader"})))
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", responses((status = 200, body = serde_json::Value)))]
async fn stats(_: Administrator, State(admin): State<Admin>) -> Reply {
    let s = cluster::status(&admin.api).await?;
    Ok(Json(json!({
        "epoch": s.epoch,
        "workers": s.workers,
        "workers_up": s.workers_up,
        "workers_down": s.workers_down,
        "collections": s.collections,
        "shards": s.shards,
        "shards_with_leader": s.shards_with_leader,
        "replicas": s.replicas,
        "points": s.points,
        "alerts_open": s.alerts_open,
        "placement_leader": s.placement_leader,
    })))
}

#[utoipa::path(get, path = "/v1/admin/workers", tag = "admin", responses((status = 200, body = serde_json::Value)))]
async fn workers(_: Administrator, State(admin): State<Admin>) -> Reply {
    let workers = cluster::workers(&admin.api).await?;
    Ok(Json(json!({"workers": workers.iter().map(worker_json).collect::<Vec<_>>()})))
}

#[utoipa::path(post, path = "/v1/admin/workers/{id}/drain", tag = "admin", params(("id" = u64, Path)), responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorReply)))]
/// Marks a worker draining: it keeps serving while the scheduler moves its replicas.
async fn drain_worker(_: Administrator, State(admin): State<Admin>, PathParams(id): PathParams<u64>) -> Reply {
    Ok(Json(json!({"worker": worker_json(&cluster::drain(&admin.api, id).await?)})))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    /// Remove even if a shard is left without a live replica: that shard's data is then
    /// no longer served (the worker, started again, keeps it under `retired/` and joins
    /// as a new worker).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/v1/admin/workers/{id}", tag = "admin", params(("id" = u64, Path), RemoveQuery), responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorReply), (status = 409, body = ErrorReply)))]
/// Forgets a worker for good (its id is never reused); its replicas are replaced.
/// Refused (409 FAILED_PRECONDITION) when a shard would be left without a live replica,
/// unless `force=true`.
async fn remove_worker(
    _: Administrator,
    State(admin): State<Admin>,
    PathParams(id): PathParams<u64>,
    QueryParams(q): QueryParams<RemoveQuery>,
) -> Reply {
    Ok(Json(json!({"removed": worker_json(&cluster::remove(&admin.api, id, q.force).await?)})))
}

#[utoipa::path(get, path = "/v1/admin/collections", tag = "admin", responses((status = 200, body = serde_json::Value)))]
async fn collections(_: Administrator, State(admin): State<Admin>) -> Reply {
    let t = table(&admin).await?;
    let list: Vec<Value> = t
        .collections
        .iter()
        .map(|c| {
            let shards: Vec<Value> = c
                .shards
                .iter()
                .map(|s| {
                    json!({"id": s.id, "range_start": s.range_start, "range_end": s.range_end,
                           "replicas": s.replicas, "voters": s.voters, "leader": s.leader,
                           "leader_term": s.leader_term, "points": s.points_count})
                })
                .collect();
            json!({"name": c.config.as_ref().map(|x| x.name.clone()), "shards": shards})
        })
        .collect();
    Ok(Json(json!({"epoch": t.epoch, "collections": list})))
}

fn alert_json(a: &pb::Alert) -> Value {
    json!({"id": a.id, "kind": a.kind, "subject": a.subject, "message": a.message,
           "raised_at_ms": a.raised_at_ms, "resolved_at_ms": (a.resolved_at_ms != 0).then_some(a.resolved_at_ms)})
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    /// Include resolved alerts.
    #[serde(default)]
    all: bool,
}

#[utoipa::path(get, path = "/v1/alerts", tag = "ops", params(AlertsQuery), responses((status = 200, body = serde_json::Value)))]
async fn alerts(_: Administrator, State(admin): State<Admin>, QueryParams(q): QueryParams<AlertsQuery>) -> Reply {
    let alerts = cluster::alerts(&admin.api, q.all).await?;
    Ok(Json(json!({"alerts": alerts.iter().map(alert_json).collect::<Vec<_>>()})))
}

#[utoipa::path(post, path = "/v1/alerts/{id}/resolve", tag = "ops", params(("id" = u64, Path)), responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorReply)))]
async fn resolve_alert(_: Administrator, State(admin): State<Admin>, PathParams(id): PathParams<u64>) -> Reply {
    Ok(Json(json!({"alert": alert_json(&cluster::resolve_alert(&admin.api, id).await?)})))
}

#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn render_metrics(_: Administrator, State(admin): State<Admin>) -> Response {
    scrape(&admin).await
}

/// The metrics in Prometheus' text format, the shard gauges refreshed first (the API
/// port's `GET /metrics`, for admins, and the scrape port's, for anyone who reaches it).
pub async fn scrape(admin: &Admin) -> Response {
    if let Ok(t) = admin.api.router().refresh_now().await {
        admin.metrics.update_shards(&t);
    }
    ([("content-type", "text/plain; version=0.0.4")], admin.metrics.render()).into_response()
}
