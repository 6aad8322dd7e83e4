//! The HTTP/JSON API under `/v1` (axum). Every route turns its JSON into the proto
//! request, calls [`Api`] — the same code the gRPC service runs — and turns the answer
//! back into JSON. Payloads and filters are plain JSON (the filter language of
//! `vectron_engine::filter`).
//!
//! Errors are JSON too: `{"error": {"code": "DIMENSION_MISMATCH", "message": …,
//! "retryable": false}}` with the HTTP status of `vectron_common::status::http_status`
//! and `retry-after` when the server knows. Malformed JSON is a 400 INVALID_ARGUMENT.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vectron_common::convert::{
    distance_to_pb, filter_to_pb, point_id_from_pb, point_id_to_pb, struct_from_pb, struct_to_pb,
};
use vectron_common::status::{WireError, http_status};
use vectron_engine::types::{PayloadIndexKind, PayloadIndexSpec};
use vectron_engine::{Distance, Filter, PointId};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::admin::Admin;
use crate::api::Api;

/// Largest HTTP request body (a batch of 10k × 768-d vectors as JSON is ~80 MiB).
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError(pub WireError);

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(http_status(e.code)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = serde_json::json!({
            "code": e.code.as_str_name(),
            "message": e.message,
            "retryable": e.retryable,
        });
        if let Some(l) = &e.leader {
            error["leader"] = serde_json::json!({"id": l.id, "address": l.address});
        }
        let mut response = (status, Json(serde_json::json!({ "error": error }))).into_response();
        if let Some(after) = e.retry_after {
            let secs = after.as_secs_f64().ceil() as u64;
            response.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(WireError::new(ErrorCode::InvalidArgument, message, false))
}

type Reply<T> = Result<Json<T>, ApiError>;

/// A JSON body whose rejection (malformed JSON, wrong types, too large) is a typed
/// INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                let message = match &rejection {
                    JsonRejection::JsonDataError(e) => format!("invalid JSON body: {}", e.body_text()),
                    JsonRejection::JsonSyntaxError(e) => format!("malformed JSON: {}", e.body_text()),
                    JsonRejection::MissingJsonContentType(_) => "expected content-type: application/json".into(),
                    other => format!("unreadable body: {}", other.body_text()),
                };
                Err(invalid(message))
            }
        }
    }
}

// ---- JSON shapes ----

/// A collection's configuration as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionJson {
    pub name: String,
    pub dimension: u32,
    pub distance: Distance,
    #[serde(default)]
    pub shard_count: u32,
    #[serde(default)]
    pub replication_factor: u32,
    #[serde(default)]
    pub hnsw: Option<HnswJson>,
    #[serde(default)]
    pub payload_indexes: Vec<PayloadIndexSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnswJson {
    #[serde(default)]
    pub m: u32,
    #[serde(default)]
    pub ef_construction: u32,
}

impl CollectionJson {
    fn to_pb(&self) -> pb::CollectionConfig {
        pb::CollectionConfig {
            name: self.name.clone(),
            dimension: self.dimension,
            distance: distance_to_pb(self.distance) as i32,
            shard_count: self.shard_count,
            replication_factor: self.replication_factor,
            hnsw: self.hnsw.as_ref().map(|h| pb::HnswConfig { m: h.m, ef_construction: h.ef_construction }),
            payload_indexes: self
                .payload_indexes
                .iter()
                .map(|p| pb::PayloadIndex {
                    key: p.key.clone(),
                    kind: match p.kind {
                        PayloadIndexKind::Keyword => pb::PayloadIndexKind::Keyword,
                        PayloadIndexKind::Integer => pb::PayloadIndexKind::Integer,
                        PayloadIndexKind::Float => pb::PayloadIndexKind::Float,
                        PayloadIndexKind::Bool => pb::PayloadIndexKind::Bool,
                    } as i32,
                })
                .collect(),
        }
    }

    fn from_pb(c: &pb::CollectionConfig) -> Result<CollectionJson, ApiError> {
        let config = vectron_common::convert::shard_config(c).map_err(|e| ApiError(WireError::from(&e)))?;
        Ok(CollectionJson {
            name: c.name.clone(),
            dimension: c.dimension,
            distance: config.distance,
            shard_count: c.shard_count,
            replication_factor: c.replication_factor,
            hnsw: c.hnsw.as_ref().map(|h| HnswJson { m: h.m, ef_construction: h.ef_construction }),
            payload_indexes: config.payload_indexes,
        })
    }
}

/// A point as JSON: `{"id": 1 | "text", "vector": [...], "payload": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointJson {
    pub id: PointId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
}

/// A search hit as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HitJson {
    pub id: PointId,
    pub score: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyJson {
    Linearizable,
    #[default]
    Leader,
    Any,
}

impl ConsistencyJson {
    fn to_pb(self) -> i32 {
        let c = match self {
            ConsistencyJson::Linearizable => pb::Consistency::Linearizable,
            ConsistencyJson::Leader => pb::Consistency::Leader,
            ConsistencyJson::Any => pb::Consistency::Any,
        };
        c as i32
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertJson {
    pub points: Vec<PointJson>,
    #[serde(default)]
    pub wait: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchJson {
    pub vector: Vec<f32>,
    #[serde(default = "default_top_k")]
    pub top_k: u32,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub ef: u32,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    #[serde(default)]
    pub consistency: ConsistencyJson,
    #[serde(default)]
    pub timeout_ms: u32,
    #[serde(default)]
    pub rerank: bool,
}

fn default_top_k() -> u32 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBatchJson {
    pub searches: Vec<SearchJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetJson {
    pub ids: Vec<PointId>,
    #[serde(default = "yes")]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    #[serde(default)]
    pub consistency: ConsistencyJson,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteJson {
    #[serde(default)]
    pub ids: Option<Vec<PointId>>,
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub wait: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrollJson {
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub limit: u32,
    /// Hex cursor from the previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default = "yes")]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    #[serde(default)]
    pub consistency: ConsistencyJson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountJson {
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub consistency: ConsistencyJson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackJson {
    pub collection: String,
    pub query_id: String,
    pub point_id: PointId,
    pub relevance: f32,
}

// ---- conversions ----

fn engine_err(e: vectron_engine::EngineError) -> ApiError {
    ApiError(WireError::from(&e))
}

fn filter_pb(v: Option<&Value>) -> Result<Option<pb::Filter>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let f = Filter::from_json(v).map_err(engine_err)?;
            Ok(Some(filter_to_pb(&f).map_err(engine_err)?))
        }
    }
}

fn id_json(id: Option<&pb::PointId>) -> Result<PointId, ApiError> {
    point_id_from_pb(id).map_err(engine_err)
}

fn payload_json(s: Option<&pb::Struct>) -> Result<Option<Map<String, Value>>, ApiError> {
    s.map(struct_from_pb).transpose().map_err(engine_err)
}

fn retrieved_json(p: &pb::RetrievedPoint, with_vector: bool) -> Result<PointJson, ApiError> {
    Ok(PointJson {
        id: id_json(p.id.as_ref())?,
        vector: with_vector.then(|| p.vector.clone()),
        payload: payload_json(p.payload.as_ref())?,
    })
}

fn search_pb(collection: &str, s: &SearchJson) -> Result<pb::SearchRequest, ApiError> {
    Ok(pb::SearchRequest {
        collection: collection.to_owned(),
        vector: s.vector.clone(),
        top_k: s.top_k,
        filter: filter_pb(s.filter.as_ref())?,
        ef: s.ef,
        score_threshold: s.score_threshold,
        with_payload: s.with_payload,
        with_vector: s.with_vector,
        consistency: s.consistency.to_pb(),
        timeout_ms: s.timeout_ms,
        rerank: s.rerank,
    })
}

fn search_json(r: pb::SearchResponse, with_vector: bool) -> Result<Value, ApiError> {
    let hits = r
        .hits
        .iter()
        .map(|h| {
            Ok(HitJson {
                id: id_json(h.id.as_ref())?,
                score: h.score,
                vector: with_vector.then(|| h.vector.clone()),
                payload: payload_json(h.payload.as_ref())?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(serde_json::json!({"hits": hits, "partial": r.partial, "missing_shards": r.missing_shards}))
}

/// A point id from a URL segment: digits are a numeric id, anything else a string id.
fn path_id(raw: &str) -> PointId {
    raw.parse::<u64>().map(PointId::Num).unwrap_or_else(|_| PointId::Str(raw.to_owned()))
}

// ---- handlers ----

async fn create_collection(State(api): State<Api>, Body(c): Body<CollectionJson>) -> Reply<Value> {
    let r = api.create_collection(pb::CreateCollectionRequest { config: Some(c.to_pb()) }).await?;
    let config = r.config.as_ref().map(CollectionJson::from_pb).transpose()?;
    Ok(Json(serde_json::json!({ "collection": config })))
}

async fn list_collections(State(api): State<Api>) -> Reply<Value> {
    let r = api.list_collections().await?;
    let list = r.collections.iter().map(CollectionJson::from_pb).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({ "collections": list })))
}

async fn get_collection(State(api): State<Api>, Path(name): Path<String>) -> Reply<Value> {
    let r = api.get_collection(pb::GetCollectionRequest { name }).await?;
    let config = r.config.as_ref().map(CollectionJson::from_pb).transpose()?;
    Ok(Json(serde_json::json!({ "collection": config, "points_count": r.points_count })))
}

async fn delete_collection(State(api): State<Api>, Path(name): Path<String>) -> Reply<Value> {
    api.delete_collection(pb::DeleteCollectionRequest { name }).await?;
    Ok(Json(serde_json::json!({ "deleted": true })))
}

async fn collection_status(State(api): State<Api>, Path(name): Path<String>) -> Reply<Value> {
    let r = api.collection_status(pb::GetCollectionStatusRequest { name }).await?;
    let config = r.config.as_ref().map(CollectionJson::from_pb).transpose()?;
    let shards: Vec<Value> = r
        .shards
        .iter()
        .map(|s| {
            let replicas: Vec<Value> = s
                .replicas
                .iter()
                .map(|x| {
                    let state = pb::ReplicaState::try_from(x.state).unwrap_or(pb::ReplicaState::Unspecified);
                    serde_json::json!({"worker_id": x.worker_id, "address": x.worker_address,
                                       "state": state.as_str_name().to_lowercase(), "leader": x.is_leader})
                })
                .collect();
            serde_json::json!({"shard_id": s.shard_id, "range_start": s.range_start, "range_end": s.range_end,
                               "points_count": s.points_count, "replicas": replicas})
        })
        .collect();
    Ok(Json(serde_json::json!({"collection": config, "epoch": r.epoch, "shards": shards})))
}

async fn upsert(State(api): State<Api>, Path(c): Path<String>, Body(body): Body<UpsertJson>) -> Reply<Value> {
    let points = body
        .points
        .iter()
        .map(|p| pb::Point {
            id: Some(point_id_to_pb(&p.id)),
            vector: p.vector.clone().unwrap_or_default(),
            payload: p.payload.as_ref().map(struct_to_pb),
        })
        .collect();
    let r = api.upsert(pb::UpsertRequest { collection: c, points, wait: body.wait }).await?;
    Ok(Json(serde_json::json!({ "upserted": r.upserted })))
}

async fn search(State(api): State<Api>, Path(c): Path<String>, Body(s): Body<SearchJson>) -> Reply<Value> {
    let r = api.search(search_pb(&c, &s)?).await?;
    Ok(Json(search_json(r, s.with_vector)?))
}

async fn search_batch(State(api): State<Api>, Path(c): Path<String>, Body(b): Body<SearchBatchJson>) -> Reply<Value> {
    let searches = b.searches.iter().map(|s| search_pb(&c, s)).collect::<Result<Vec<_>, _>>()?;
    let r = api.search_batch(pb::SearchBatchRequest { searches }).await?;
    let results = r
        .results
        .into_iter()
        .zip(&b.searches)
        .map(|(r, s)| search_json(r, s.with_vector))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({ "results": results })))
}

async fn get_points(State(api): State<Api>, Path(c): Path<String>, Body(g): Body<GetJson>) -> Reply<Value> {
    let r = api
        .get(pb::GetRequest {
            collection: c,
            ids: g.ids.iter().map(point_id_to_pb).collect(),
            with_payload: g.with_payload,
            with_vector: g.with_vector,
            consistency: g.consistency.to_pb(),
        })
        .await?;
    let points = r.points.iter().map(|p| retrieved_json(p, g.with_vector)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({ "points": points })))
}

async fn get_point(State(api): State<Api>, Path((c, id)): Path<(String, String)>) -> Reply<Value> {
    let id = path_id(&id);
    let r = api
        .get(pb::GetRequest {
            collection: c,
            ids: vec![point_id_to_pb(&id)],
            with_payload: true,
            with_vector: true,
            consistency: pb::Consistency::Leader as i32,
        })
        .await?;
    match r.points.first() {
        Some(p) => Ok(Json(serde_json::json!({ "point": retrieved_json(p, true)? }))),
        None => Err(ApiError(WireError::new(ErrorCode::PointNotFound, format!("point {id} does not exist"), false))),
    }
}

async fn delete_point(State(api): State<Api>, Path((c, id)): Path<(String, String)>) -> Reply<Value> {
    let ids = pb::PointIdList { ids: vec![point_id_to_pb(&path_id(&id))] };
    let r = api
        .delete(pb::DeleteRequest { collection: c, selector: Some(pb::delete_request::Selector::Ids(ids)), wait: None })
        .await?;
    Ok(Json(serde_json::json!({ "deleted": r.deleted })))
}

async fn delete_points(State(api): State<Api>, Path(c): Path<String>, Body(d): Body<DeleteJson>) -> Reply<Value> {
    let selector = match (d.ids, d.filter) {
        (Some(ids), None) => {
            pb::delete_request::Selector::Ids(pb::PointIdList { ids: ids.iter().map(point_id_to_pb).collect() })
        }
        (None, Some(f)) => pb::delete_request::Selector::Filter(
            filter_pb(Some(&f))?.ok_or_else(|| invalid("delete by filter needs a filter"))?,
        ),
        _ => return Err(invalid("delete takes exactly one of \"ids\" or \"filter\"")),
    };
    let r = api.delete(pb::DeleteRequest { collection: c, selector: Some(selector), wait: d.wait }).await?;
    Ok(Json(serde_json::json!({ "deleted": r.deleted })))
}

async fn scroll(State(api): State<Api>, Path(c): Path<String>, Body(s): Body<ScrollJson>) -> Reply<Value> {
    let cursor = match &s.cursor {
        None => Vec::new(),
        Some(hex_cursor) => hex::decode(hex_cursor).map_err(|_| invalid("cursor is not a cursor this API issued"))?,
    };
    let r = api
        .scroll(pb::ScrollRequest {
            collection: c,
            filter: filter_pb(s.filter.as_ref())?,
            limit: s.limit,
            cursor,
            with_payload: s.with_payload,
            with_vector: s.with_vector,
            consistency: s.consistency.to_pb(),
        })
        .await?;
    let points = r.points.iter().map(|p| retrieved_json(p, s.with_vector)).collect::<Result<Vec<_>, _>>()?;
    let next = (!r.next_cursor.is_empty()).then(|| hex::encode(&r.next_cursor));
    Ok(Json(serde_json::json!({ "points": points, "next_cursor": next })))
}

async fn count(State(api): State<Api>, Path(c): Path<String>, Body(q): Body<CountJson>) -> Reply<Value> {
    let r = api
        .count(pb::CountRequest {
            collection: c,
            filter: filter_pb(q.filter.as_ref())?,
            consistency: q.consistency.to_pb(),
        })
        .await?;
    Ok(Json(serde_json::json!({ "count": r.count })))
}

async fn feedback(State(api): State<Api>, Body(f): Body<FeedbackJson>) -> Reply<Value> {
    api.submit_feedback(pb::SubmitFeedbackRequest {
        collection: f.collection,
        query_id: f.query_id,
        point_id: Some(point_id_to_pb(&f.point_id)),
        relevance: f.relevance,
    })
    .await?;
    Ok(Json(serde_json::json!({ "accepted": true })))
}

async fn not_found() -> ApiError {
    ApiError(WireError::new(ErrorCode::NotFound, "no such route", false))
}

/// The public HTTP API (data routes). Admin and ops routes come from [`Admin`].
pub fn router(api: Api, admin: Admin) -> Router {
    let data = Router::new()
        .route("/v1/collections", post(create_collection).get(list_collections))
        .route("/v1/collections/{name}", get(get_collection).delete(delete_collection))
        .route("/v1/collections/{name}/status", get(collection_status))
        .route("/v1/collections/{name}/points", post(upsert))
        .route("/v1/collections/{name}/points/search", post(search))
        .route("/v1/collections/{name}/points/search/batch", post(search_batch))
        .route("/v1/collections/{name}/points/get", post(get_points))
        .route("/v1/collections/{name}/points/delete", post(delete_points))
        .route("/v1/collections/{name}/points/scroll", post(scroll))
        .route("/v1/collections/{name}/points/count", post(count))
        .route("/v1/collections/{name}/points/{id}", get(get_point).delete(delete_point))
        .route("/v1/feedback", post(feedback))
        .with_state(api);
    data.merge(admin.router()).fallback(not_found).layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
