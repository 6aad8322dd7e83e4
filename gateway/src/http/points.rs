//! Point routes: upsert, get (by ids or one by path), delete (by ids, by filter, one by
//! path), scroll and count.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vectron_model::request::{
    Consistency, CountRequest, DEFAULT_SCROLL_LIMIT, DeleteRequest, GetRequest, ScrollRequest, Selector, UpsertRequest,
};
use vectron_model::status::WireError;
use vectron_model::{Payload, Point, PointId};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use super::extract::{ApiError, Body, ErrorReply, PathParams, Reply, invalid};
use super::json::{
    ConsistencyJson, at_most, at_most_opt, filter_json, id_json, model_err, path_id, payload_json, whole_u32, yes,
};
use super::schema::{DeleteDoc, FilterDoc, PointIdDoc};
use crate::api::Api;
use crate::auth::Caller;

/// Adds the point routes.
pub(super) fn routes(r: OpenApiRouter<Api>) -> OpenApiRouter<Api> {
    r.routes(routes!(upsert))
        .routes(routes!(get_points))
        .routes(routes!(delete_points))
        .routes(routes!(scroll))
        .routes(routes!(count))
        .routes(routes!(get_point, delete_point))
}

/// A point as JSON: `{"id": 1 | "text", "vector": [...], "payload": {...}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PointJson {
    #[schema(value_type = PointIdDoc)]
    pub id: PointId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertJson {
    #[schema(min_items = 1, max_items = 10000)]
    #[serde(deserialize_with = "at_most::<NewPointJson, 10_000, _>")]
    pub points: Vec<NewPointJson>,
    #[serde(default)]
    pub wait: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetJson {
    #[schema(value_type = Vec<PointIdDoc>, max_items = 10000)]
    #[serde(deserialize_with = "at_most::<PointId, { vectron_model::types::MAX_IDS_PER_REQUEST }, _>")]
    pub ids: Vec<PointId>,
    #[serde(default = "yes")]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    #[serde(default)]
    pub consistency: ConsistencyJson,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteJson {
    #[serde(default, deserialize_with = "at_most_opt::<PointId, { vectron_model::types::MAX_IDS_PER_REQUEST }, _>")]
    #[schema(value_type = Option<Vec<PointIdDoc>>, min_items = 1, max_items = 10000)]
    pub ids: Option<Vec<PointId>>,
    #[serde(default)]
    #[schema(value_type = Option<FilterDoc>)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub wait: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrollJson {
    #[serde(default)]
    #[schema(value_type = Option<FilterDoc>)]
    pub filter: Option<Value>,
    /// 0 or absent: 100.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 10000)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountJson {
    #[serde(default)]
    #[schema(value_type = Option<FilterDoc>)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub consistency: ConsistencyJson,
}

/// A point to write: its id, a vector of the collection's dimension, an optional
/// payload (a JSON object of at most 64 KiB, nested at most 32 deep).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NewPoint)]
#[serde(deny_unknown_fields)]
pub struct NewPointJson {
    #[schema(value_type = PointIdDoc)]
    id: PointId,
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 65536)]
    vector: Vec<f32>,
    /// Kept as its text (checked, not parsed into a tree).
    #[serde(default, deserialize_with = "vectron_model::payload::deserialize_raw")]
    #[schema(value_type = Option<Object>)]
    payload: Option<Payload>,
}

impl NewPointJson {
    fn into_point(self) -> Point {
        Point { id: self.id, vector: self.vector, payload: self.payload }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertReply {
    pub upserted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointsReply {
    pub points: Vec<PointJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointReply {
    pub point: PointJson,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteReply {
    pub deleted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScrollReply {
    pub points: Vec<PointJson>,
    /// Pass back as `cursor` for the next page; absent at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountReply {
    pub count: u64,
}

fn retrieved_json(p: &pb::RetrievedPoint, with_vector: bool) -> Result<PointJson, ApiError> {
    Ok(PointJson {
        id: id_json(p.id.as_ref())?,
        vector: with_vector.then(|| p.vector.clone()),
        payload: payload_json(p.payload.as_ref())?,
    })
}

/// Upserts points (all or nothing).
#[utoipa::path(post, path = "/v1/collections/{name}/points", tag = "points", params(("name" = String, Path)),
    request_body = UpsertJson, responses((status = 200, body = UpsertReply), (status = 400, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn upsert(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
    Body(body): Body<UpsertJson>,
) -> Reply<UpsertReply> {
    let points = body.points.into_iter().map(NewPointJson::into_point).collect();
    let r = api.upsert(&access, UpsertRequest { collection: c, points, wait: body.wait.unwrap_or(true) }).await?;
    Ok(Json(UpsertReply { upserted: r.upserted }))
}

/// Reads points by id, in request order (missing ids are left out).
#[utoipa::path(post, path = "/v1/collections/{name}/points/get", tag = "points", params(("name" = String, Path)),
    request_body = GetJson, responses((status = 200, body = PointsReply), (status = 400, body = ErrorReply)))]
async fn get_points(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
    Body(g): Body<GetJson>,
) -> Reply<PointsReply> {
    let with_vector = g.with_vector;
    let request = GetRequest {
        collection: c,
        ids: g.ids,
        with_payload: g.with_payload,
        with_vector,
        consistency: g.consistency.into(),
    };
    let r = api.get(&access, request.checked().map_err(model_err)?).await?;
    let points = r.points.iter().map(|p| retrieved_json(p, with_vector)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(PointsReply { points }))
}

/// One point with its vector and payload (digits are a numeric id).
#[utoipa::path(get, path = "/v1/collections/{name}/points/{id}", tag = "points",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PointReply), (status = 404, body = ErrorReply)))]
async fn get_point(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams((c, id)): PathParams<(String, String)>,
) -> Reply<PointReply> {
    let id = path_id(&id);
    let request = GetRequest {
        collection: c,
        ids: vec![id.clone()],
        with_payload: true,
        with_vector: true,
        consistency: Consistency::Leader,
    };
    let r = api.get(&access, request.checked().map_err(model_err)?).await?;
    match r.points.first() {
        Some(p) => Ok(Json(PointReply { point: retrieved_json(p, true)? })),
        None => Err(ApiError(WireError::new(ErrorCode::PointNotFound, format!("point {id} does not exist"), false))),
    }
}

/// Deletes one point.
#[utoipa::path(delete, path = "/v1/collections/{name}/points/{id}", tag = "points",
    params(("name" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = DeleteReply), (status = 404, body = ErrorReply)))]
async fn delete_point(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams((c, id)): PathParams<(String, String)>,
) -> Reply<DeleteReply> {
    let request = DeleteRequest { collection: c, selector: Selector::Ids(vec![path_id(&id)]), wait: true };
    let r = api.delete(&access, request.checked().map_err(model_err)?).await?;
    Ok(Json(DeleteReply { deleted: r.deleted }))
}

/// Deletes points by ids or by filter.
#[utoipa::path(post, path = "/v1/collections/{name}/points/delete", tag = "points", params(("name" = String, Path)),
    request_body = DeleteDoc, responses((status = 200, body = DeleteReply), (status = 400, body = ErrorReply)))]
async fn delete_points(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
    Body(d): Body<DeleteJson>,
) -> Reply<DeleteReply> {
    let selector = match (d.ids, d.filter) {
        (Some(ids), None) => Selector::Ids(ids),
        (None, Some(f)) => {
            Selector::Filter(filter_json(Some(&f))?.ok_or_else(|| invalid("delete by filter needs a filter"))?)
        }
        _ => return Err(invalid("delete takes exactly one of \"ids\" or \"filter\"")),
    };
    let request = DeleteRequest { collection: c, selector, wait: d.wait.unwrap_or(true) };
    let r = api.delete(&access, request.checked().map_err(model_err)?).await?;
    Ok(Json(DeleteReply { deleted: r.deleted }))
}

/// Pages through points (optionally filtered).
#[utoipa::path(post, path = "/v1/collections/{name}/points/scroll", tag = "points", params(("name" = String, Path)),
    request_body = ScrollJson, responses((status = 200, body = ScrollReply), (status = 400, body = ErrorReply)))]
async fn scroll(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
    Body(s): Body<ScrollJson>,
) -> Reply<ScrollReply> {
    let cursor = match &s.cursor {
        None => Vec::new(),
        Some(hex_cursor) => hex::decode(hex_cursor).map_err(|_| invalid("cursor is not a cursor this API issued"))?,
    };
    let request = ScrollRequest {
        collection: c,
        filter: filter_json(s.filter.as_ref())?,
        limit: if s.limit == 0 { DEFAULT_SCROLL_LIMIT } else { s.limit as usize },
        cursor,
        with_payload: s.with_payload,
        with_vector: s.with_vector,
        consistency: s.consistency.into(),
    };
    let r = api.scroll(&access, request.checked().map_err(model_err)?).await?;
    let points = r.points.iter().map(|p| retrieved_json(p, s.with_vector)).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (!r.next_cursor.is_empty()).then(|| hex::encode(&r.next_cursor));
    Ok(Json(ScrollReply { points, next_cursor }))
}

/// Counts points (optionally filtered).
#[utoipa::path(post, path = "/v1/collections/{name}/points/count", tag = "points", params(("name" = String, Path)),
    request_body = CountJson, responses((status = 200, body = CountReply), (status = 400, body = ErrorReply)))]
async fn count(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
    Body(q): Body<CountJson>,
) -> Reply<CountReply> {
    let request =
        CountRequest { collection: c, filter: filter_json(q.filter.as_ref())?, consistency: q.consistency.into() };
    let r = api.count(&access, request.checked().map_err(model_err)?).await?;
    Ok(Json(CountReply { count: r.count }))
}
