//! The HTTP/JSON API under `/v1` (axum). Every route turns its JSON into the proto
//! request, calls [`Api`] — the same code the gRPC service runs — and turns the answer
//! back into JSON. Payloads and filters are plain JSON (the filter language of
//! `vectron_engine::filter`).
//!
//! Errors are JSON too: `{"error": {"code": "DIMENSION_MISMATCH", "message": …,
//! "retryable": false}}` with the HTTP status of `vectron_model::status::http_status`
//! and `retry-after` when the server knows. Malformed JSON is a 400 INVALID_ARGUMENT.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vectron_engine::types::{PayloadIndexKind, PayloadIndexSpec};
use vectron_engine::{Distance, Filter, Payload, Point, PointId};
use vectron_model::convert::{distance_to_pb, filter_to_pb, point_id_from_pb, point_id_to_pb, struct_from_pb};
use vectron_model::status::{WireError, http_status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::accounts::Accounts;
use crate::admin::Admin;
use crate::api::{Api, Upsert};
use crate::auth::{BodyLimit, Caller, Spend};

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

/// A JSON body, read only up to the route's [`BodyLimit`] (413 PAYLOAD_TOO_LARGE past
/// it, refused from `content-length` before anything is read when it says so), whose
/// rejection (malformed JSON, wrong types, wrong content type) is a typed
/// INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct Body<T>(pub T);

fn too_large(limit: usize) -> ApiError {
    ApiError(WireError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body exceeds this route's limit of {limit} bytes"),
        false,
    ))
}

fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body's bytes, at most `limit` of them (`declared`, the content-length, sizes the
/// buffer once instead of doubling it as chunks arrive).
async fn read_limited(body: axum::body::Body, limit: usize, declared: Option<u64>) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| invalid(format!("unreadable body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(crate::policy::SMALL_BODY_BYTES, |l| l.0);
        if !is_json(req.headers()) {
            return Err(invalid("expected content-type: application/json"));
        }
        let declared =
            req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let bytes = read_limited(req.into_body(), limit, declared).await?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => invalid(format!("invalid JSON body: {e}")),
                Category::Syntax | Category::Eof | Category::Io => invalid(format!("malformed JSON: {e}")),
            }
        })
    }
}

/// Path parameters whose rejection (a worker id that is not a number, say) is a typed
/// INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParams(v)),
            Err(e) => Err(invalid(format!("invalid path: {}", e.body_text()))),
        }
    }
}

/// Query parameters whose rejection is a typed INVALID_ARGUMENT error.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(e) => Err(invalid(format!("invalid query: {}", e.body_text()))),
        }
    }
}

/// Turns the router's own bodiless refusals (405 for a method a route does not take)
/// into the JSON error every other answer uses.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !is_json(response.headers()) {
        let allow = response.headers().get(http::header::ALLOW).cloned();
        let mut refused =
            ApiError(WireError::new(ErrorCode::MethodNotAllowed, format!("{path} does not take {method}"), false))
                .into_response();
        if let Some(allow) = allow {
            refused.headers_mut().insert(http::header::ALLOW, allow);
        }
        return refused;
    }
    response
}

// ---- JSON shapes ----

/// JSON has one kind of number: a whole number written `10.0` is the integer 10 (JSON
/// Schema reads it so), and integer fields take it.
pub(crate) fn whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u32;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer in 0..=4294967295")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u32, E> {
            u32::try_from(n).map_err(|_| E::custom(format!("{n} is out of range 0..=4294967295")))
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u32, E> {
            u32::try_from(n).map_err(|_| E::custom(format!("{n} is out of range 0..=4294967295")))
        }

        fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<u32, E> {
            vectron_model::types::whole_u64(x)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| E::custom(format!("{x} is not an integer in 0..=4294967295")))
        }
    }
    d.deserialize_any(V)
}

/// A JSON list of at most `N` items, refused at item `N + 1`, before the rest of a
/// large body is turned into items (a 16 MiB list of ids would be ~8M of them).
fn at_most<'de, T: Deserialize<'de>, const N: usize, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Capped<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Capped<T, N> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {N} items")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N));
            while let Some(item) = seq.next_element()? {
                if items.len() == N {
                    return Err(serde::de::Error::custom(format!("more than {N} items in one request")));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    d.deserialize_seq(Capped::<T, N>(std::marker::PhantomData))
}

/// [`at_most`] for optional lists.
fn at_most_opt<'de, T: Deserialize<'de>, const N: usize, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(bound = "T: Deserialize<'de>")]
    struct Capped<T, const N: usize>(#[serde(deserialize_with = "at_most::<T, N, _>")] Vec<T>);
    Option::<Capped<T, N>>::deserialize(d).map(|c| c.map(|c| c.0))
}

/// [`whole_u32`] for optional fields.
pub(crate) fn whole_u32_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_u32")] u32);
    Option::<Whole>::deserialize(d).map(|w| w.map(|w| w.0))
}

/// A collection's configuration as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionJson {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    #[schema(minimum = 1, maximum = 65536)]
    #[serde(deserialize_with = "whole_u32")]
    pub dimension: u32,
    #[schema(value_type = DistanceDoc)]
    pub distance: Distance,
    /// 0 or absent: 1.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 256)]
    pub shard_count: u32,
    /// 0 or absent: 1. At most the number of workers that are up.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 7)]
    pub replication_factor: u32,
    #[serde(default)]
    pub hnsw: Option<HnswJson>,
    #[serde(default)]
    #[schema(value_type = Vec<PayloadIndexDoc>)]
    pub payload_indexes: Vec<PayloadIndexSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HnswJson {
    /// 0 or absent: 16; otherwise 2-128.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(schema_with = hnsw_m_schema)]
    pub m: u32,
    /// 0 or absent: 200.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 4096)]
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
        let config = vectron_model::convert::shard_config(c).map_err(|e| ApiError(WireError::from(&e)))?;
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointJson {
    #[schema(value_type = PointIdDoc)]
    pub id: PointId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
}

/// A search hit as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HitJson {
    #[schema(value_type = PointIdDoc)]
    pub id: PointId,
    pub score: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertJson {
    #[schema(min_items = 1, max_items = 10000)]
    #[serde(deserialize_with = "at_most::<NewPointJson, 10_000, _>")]
    pub points: Vec<NewPointJson>,
    #[serde(default)]
    pub wait: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchJson {
    /// As long as the collection's dimension; finite values.
    #[schema(min_items = 1, max_items = 65536)]
    pub vector: Vec<f32>,
    #[serde(default = "default_top_k", deserialize_with = "whole_u32")]
    #[schema(minimum = 1, maximum = 10000, default = 10)]
    pub top_k: u32,
    #[serde(default)]
    #[schema(value_type = Option<FilterDoc>)]
    pub filter: Option<Value>,
    /// 0 or absent: the collection's default.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 65536)]
    pub ef: u32,
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
    #[serde(default)]
    pub consistency: ConsistencyJson,
    /// 0 or absent: the gateway's read timeout.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(value_type = u64, maximum = 4294967295u64)]
    pub timeout_ms: u32,
}

fn default_top_k() -> u32 {
    10
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBatchJson {
    #[schema(max_items = 256)]
    #[serde(deserialize_with = "at_most::<SearchJson, { vectron_model::types::MAX_SEARCH_BATCH }, _>")]
    pub searches: Vec<SearchJson>,
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

fn yes() -> bool {
    true
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackJson {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub collection: String,
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub query_id: String,
    #[schema(value_type = PointIdDoc)]
    pub point_id: PointId,
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub relevance: f32,
}

// ---- documentation-only schemas (the engine's types, as JSON) ----

/// A point id: an unsigned integer (any u64, so no `int64` format) or a string of
/// 1-256 characters.
#[derive(Debug)]
pub struct PointIdDoc;

impl utoipa::PartialSchema for PointIdDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let num = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u64::MAX as f64))
            .description(Some("A numeric id."));
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(vectron_model::types::MAX_STRING_ID_CHARS))
            .description(Some("A string id."));
        OneOfBuilder::new()
            .item(num)
            .item(text)
            .description(Some("A point id: an unsigned integer or a string of 1-256 characters."))
            .into()
    }
}

/// A collection's name.
#[derive(Debug, ToSchema)]
#[schema(as = CollectionName, value_type = String, pattern = "^[a-zA-Z0-9_-]{1,64}$")]
pub struct CollectionNameDoc(#[allow(dead_code)] String);

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

impl ToSchema for PointIdDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "PointId".into()
    }
}

/// Which points a delete removes: exactly one of `ids` or `filter`.
#[derive(Debug, ToSchema)]
#[schema(as = DeleteRequest)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DeleteDoc {
    ByIds(DeleteByIdsDoc),
    ByFilter(DeleteByFilterDoc),
}

#[derive(Debug, ToSchema)]
#[schema(as = DeleteByIds)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteByIdsDoc {
    #[schema(value_type = Vec<PointIdDoc>, min_items = 1, max_items = 10000)]
    ids: Vec<PointIdDoc>,
    /// Answer only once applied (default true).
    wait: Option<bool>,
}

#[derive(Debug, ToSchema)]
#[schema(as = DeleteByFilter)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteByFilterDoc {
    filter: FilterDoc,
    wait: Option<bool>,
}

/// A payload filter: every `must` condition holds, at least one `should` (if any), no
/// `must_not`. The empty filter matches every point. At most 1,024 conditions, nested at
/// most 16 deep.
#[derive(Debug, ToSchema)]
#[schema(as = Filter)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct FilterDoc {
    #[schema(no_recursion, nullable = false)]
    must: Option<Vec<ConditionDoc>>,
    #[schema(no_recursion, nullable = false)]
    should: Option<Vec<ConditionDoc>>,
    #[schema(no_recursion, nullable = false)]
    must_not: Option<Vec<ConditionDoc>>,
}

/// One test: a field's value, presence or nullness, the point's id, or a nested filter.
#[derive(Debug, ToSchema)]
#[schema(as = Condition)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ConditionDoc {
    Match(MatchConditionDoc),
    Range(RangeConditionDoc),
    Exists(ExistsDoc),
    IsNull(IsNullDoc),
    HasId(HasIdDoc),
    #[schema(no_recursion)]
    Filter(FilterDoc),
}

#[derive(Debug, ToSchema)]
#[schema(as = MatchCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MatchConditionDoc {
    /// A dotted path into the payload (`a.b`; arrays are flattened, `a[]` says so).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
    #[serde(rename = "match")]
    matches: MatchDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = RangeCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RangeConditionDoc {
    /// A dotted path into the payload (`a.b`; arrays are flattened, `a[]` says so).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
    range: RangeDoc,
}

/// Equality with one value, or with any of up to 1,024.
#[derive(Debug, ToSchema)]
#[schema(as = Match)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MatchDoc {
    Value(MatchOneDoc),
    Any(MatchAnyDoc),
}

#[derive(Debug, ToSchema)]
#[schema(as = MatchValue)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MatchOneDoc {
    value: MatchValueDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = MatchAny)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MatchAnyDoc {
    #[schema(max_items = 1024)]
    any: Vec<MatchValueDoc>,
}

/// A keyword, an integer or a bool.
#[derive(Debug, ToSchema)]
#[schema(as = MatchOperand)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MatchValueDoc {
    Bool(bool),
    Integer(i64),
    Keyword(String),
}

/// Numeric bounds; at least one.
#[derive(Debug, ToSchema)]
#[schema(as = Range)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RangeDoc {
    #[schema(nullable = false)]
    gt: Option<f64>,
    #[schema(nullable = false)]
    gte: Option<f64>,
    #[schema(nullable = false)]
    lt: Option<f64>,
    #[schema(nullable = false)]
    lte: Option<f64>,
}

#[derive(Debug, ToSchema)]
#[schema(as = ExistsCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ExistsDoc {
    exists: KeyRefDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = IsNullCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct IsNullDoc {
    is_null: KeyRefDoc,
}

#[derive(Debug, ToSchema)]
#[schema(as = KeyRef)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct KeyRefDoc {
    /// A dotted path into the payload (`a.b`; arrays are flattened, `a[]` says so).
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
}

#[derive(Debug, ToSchema)]
#[schema(as = HasIdCondition)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HasIdDoc {
    #[schema(value_type = Vec<PointIdDoc>, max_items = 10000)]
    has_id: Vec<PointIdDoc>,
}

/// How vectors are compared.
#[derive(Debug, ToSchema)]
#[schema(as = Distance)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DistanceDoc {
    Cosine,
    Euclid,
    Dot,
}

/// An indexed payload field (each key once per collection).
#[derive(Debug, ToSchema)]
#[schema(as = PayloadIndex)]
#[allow(dead_code)]
pub struct PayloadIndexDoc {
    /// A dotted path of non-empty field names.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^.]+(\.[^.]+)*$")]
    key: String,
    kind: PayloadIndexKindDoc,
}

/// What a payload index holds.
#[derive(Debug, ToSchema)]
#[schema(as = PayloadIndexKind)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum PayloadIndexKindDoc {
    Keyword,
    Integer,
    Float,
    Bool,
}

/// HNSW's `m`: 0 (the default, 16) or 2-128.
fn hnsw_m_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(0)))
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(2)).maximum(Some(128)))
            .description(Some("0 or absent: 16; otherwise 2-128."))
            .build(),
    )
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorReply {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable `ErrorCode` name, e.g. `DIMENSION_MISMATCH`.
    pub code: String,
    pub message: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}

// ---- replies ----

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionReply {
    pub collection: CollectionJson,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionsReply {
    pub collections: Vec<CollectionJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionInfoReply {
    pub collection: CollectionJson,
    pub points_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedCollectionReply {
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaJson {
    pub worker_id: u64,
    pub address: String,
    /// active, catching_up or unreachable.
    pub state: String,
    pub leader: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardStatusJson {
    pub shard_id: u64,
    pub range_start: u64,
    /// 0 means 2^64.
    pub range_end: u64,
    pub points_count: u64,
    pub replicas: Vec<ReplicaJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusReply {
    pub collection: CollectionJson,
    pub epoch: u64,
    pub shards: Vec<ShardStatusJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertReply {
    pub upserted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchReply {
    pub hits: Vec<HitJson>,
    /// Some shard missed the deadline; `missing_shards` lists them.
    pub partial: bool,
    pub missing_shards: Vec<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchBatchReply {
    pub results: Vec<SearchReply>,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackReply {
    pub accepted: bool,
}

// ---- conversions ----

fn engine_err(e: impl Into<vectron_engine::EngineError>) -> ApiError {
    ApiError(WireError::from(&e.into()))
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
        rerank: false,
    })
}

fn search_json(r: pb::SearchResponse, with_vector: bool) -> Result<SearchReply, ApiError> {
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
    Ok(SearchReply { hits, partial: r.partial, missing_shards: r.missing_shards })
}

/// A point id from a URL segment: digits are a numeric id, anything else a string id.
fn path_id(raw: &str) -> PointId {
    raw.parse::<u64>().map(PointId::Num).unwrap_or_else(|_| PointId::Str(raw.to_owned()))
}

// ---- handlers ----

fn config_json(c: Option<&pb::CollectionConfig>) -> Result<CollectionJson, ApiError> {
    CollectionJson::from_pb(c.ok_or_else(|| ApiError(WireError::new(ErrorCode::Internal, "no config", false)))?)
}

/// Creates a collection; answers once every shard has a leader.
#[utoipa::path(post, path = "/v1/collections", tag = "collections", request_body = CollectionJson,
    responses((status = 200, body = CollectionReply), (status = 400, body = ErrorReply), (status = 409, body = ErrorReply)))]
async fn create_collection(
    State(api): State<Api>,
    Caller(access): Caller,
    Body(c): Body<CollectionJson>,
) -> Reply<CollectionReply> {
    let r = api.create_collection(&access, pb::CreateCollectionRequest { config: Some(c.to_pb()) }).await?;
    Ok(Json(CollectionReply { collection: config_json(r.config.as_ref())? }))
}

/// Lists collections.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", responses((status = 200, body = CollectionsReply)))]
async fn list_collections(State(api): State<Api>, Caller(access): Caller) -> Reply<CollectionsReply> {
    let r = api.list_collections(&access).await?;
    let collections = r.collections.iter().map(CollectionJson::from_pb).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(CollectionsReply { collections }))
}

/// A collection's configuration and point count.
#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = CollectionInfoReply), (status = 404, body = ErrorReply)))]
async fn get_collection(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(name): PathParams<String>,
) -> Reply<CollectionInfoReply> {
    let r = api.get_collection(&access, pb::GetCollectionRequest { name }).await?;
    Ok(Json(CollectionInfoReply { collection: config_json(r.config.as_ref())?, points_count: r.points_count }))
}

/// Deletes a collection and its data.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = DeletedCollectionReply), (status = 404, body = ErrorReply)))]
async fn delete_collection(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(name): PathParams<String>,
) -> Reply<DeletedCollectionReply> {
    api.delete_collection(&access, pb::DeleteCollectionRequest { name }).await?;
    Ok(Json(DeletedCollectionReply { deleted: true }))
}

/// Where a collection's shards live: replicas, their state, leaders, sizes.
#[utoipa::path(get, path = "/v1/collections/{name}/status", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = StatusReply), (status = 404, body = ErrorReply)))]
async fn collection_status(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(name): PathParams<String>,
) -> Reply<StatusReply> {
    let r = api.collection_status(&access, pb::GetCollectionStatusRequest { name }).await?;
    let shards = r
        .shards
        .iter()
        .map(|s| ShardStatusJson {
            shard_id: s.shard_id,
            range_start: s.range_start,
            range_end: s.range_end,
            points_count: s.points_count,
            replicas: s
                .replicas
                .iter()
                .map(|x| ReplicaJson {
                    worker_id: x.worker_id,
                    address: x.worker_address.clone(),
                    state: pb::ReplicaState::try_from(x.state)
                        .unwrap_or(pb::ReplicaState::Unspecified)
                        .as_str_name()
                        .to_lowercase(),
                    leader: x.is_leader,
                })
                .collect(),
        })
        .collect();
    Ok(Json(StatusReply { collection: config_json(r.config.as_ref())?, epoch: r.epoch, shards }))
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
    let r = api.upsert(&access, Upsert { collection: c, points, wait: body.wait.unwrap_or(true) }).await?;
    Ok(Json(UpsertReply { upserted: r.upserted }))
}

/// Nearest neighbours of a vector, optionally filtered.
#[utoipa::path(post, path = "/v1/collections/{name}/points/search", tag = "search", params(("name" = String, Path)),
    request_body = SearchJson, responses((status = 200, body = SearchReply), (status = 400, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn search(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
    Body(s): Body<SearchJson>,
) -> Reply<SearchReply> {
    let r = api.search(&access, search_pb(&c, &s)?).await?;
    Ok(Json(search_json(r, s.with_vector)?))
}

/// Several searches in one request.
#[utoipa::path(post, path = "/v1/collections/{name}/points/search/batch", tag = "search", params(("name" = String, Path)),
    request_body = SearchBatchJson, responses((status = 200, body = SearchBatchReply), (status = 400, body = ErrorReply)))]
async fn search_batch(
    State(api): State<Api>,
    Caller(access): Caller,
    Spend(quota): Spend,
    PathParams(c): PathParams<String>,
    Body(b): Body<SearchBatchJson>,
) -> Reply<SearchBatchReply> {
    let searches = b.searches.iter().map(|s| search_pb(&c, s)).collect::<Result<Vec<_>, _>>()?;
    let r = api.search_batch(&access, quota.as_ref(), pb::SearchBatchRequest { searches }).await?;
    let results = r
        .results
        .into_iter()
        .zip(&b.searches)
        .map(|(r, s)| search_json(r, s.with_vector))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(SearchBatchReply { results }))
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
    let r = api
        .get(
            &access,
            pb::GetRequest {
                collection: c,
                ids: g.ids.iter().map(point_id_to_pb).collect(),
                with_payload: g.with_payload,
                with_vector: g.with_vector,
                consistency: g.consistency.to_pb(),
            },
        )
        .await?;
    let points = r.points.iter().map(|p| retrieved_json(p, g.with_vector)).collect::<Result<Vec<_>, _>>()?;
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
    let r = api
        .get(
            &access,
            pb::GetRequest {
                collection: c,
                ids: vec![point_id_to_pb(&id)],
                with_payload: true,
                with_vector: true,
                consistency: pb::Consistency::Leader as i32,
            },
        )
        .await?;
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
    let ids = pb::PointIdList { ids: vec![point_id_to_pb(&path_id(&id))] };
    let r = api
        .delete(
            &access,
            pb::DeleteRequest { collection: c, selector: Some(pb::delete_request::Selector::Ids(ids)), wait: None },
        )
        .await?;
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
        (Some(ids), None) => {
            pb::delete_request::Selector::Ids(pb::PointIdList { ids: ids.iter().map(point_id_to_pb).collect() })
        }
        (None, Some(f)) => pb::delete_request::Selector::Filter(
            filter_pb(Some(&f))?.ok_or_else(|| invalid("delete by filter needs a filter"))?,
        ),
        _ => return Err(invalid("delete takes exactly one of \"ids\" or \"filter\"")),
    };
    let r = api.delete(&access, pb::DeleteRequest { collection: c, selector: Some(selector), wait: d.wait }).await?;
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
    let r = api
        .scroll(
            &access,
            pb::ScrollRequest {
                collection: c,
                filter: filter_pb(s.filter.as_ref())?,
                limit: s.limit,
                cursor,
                with_payload: s.with_payload,
                with_vector: s.with_vector,
                consistency: s.consistency.to_pb(),
            },
        )
        .await?;
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
    let r = api
        .count(
            &access,
            pb::CountRequest {
                collection: c,
                filter: filter_pb(q.filter.as_ref())?,
                consistency: q.consistency.to_pb(),
            },
        )
        .await?;
    Ok(Json(CountReply { count: r.count }))
}

/// Relevance feedback on a search result: validated, then refused (501) — nothing
/// stores feedback yet.
#[utoipa::path(post, path = "/v1/feedback", tag = "search", request_body = FeedbackJson,
    responses((status = 501, body = ErrorReply, description = "Valid feedback; not stored yet."), (status = 400, body = ErrorReply)))]
async fn feedback(State(api): State<Api>, Caller(access): Caller, Body(f): Body<FeedbackJson>) -> Reply<FeedbackReply> {
    api.submit_feedback(
        &access,
        pb::SubmitFeedbackRequest {
            collection: f.collection,
            query_id: f.query_id,
            point_id: Some(point_id_to_pb(&f.point_id)),
            relevance: f.relevance,
        },
    )
    .await?;
    Ok(Json(FeedbackReply { accepted: true }))
}

async fn not_found() -> ApiError {
    ApiError(WireError::new(ErrorCode::NotFound, "no such route", false))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vectron HTTP API",
        description = "Vectron's public HTTP/JSON API; the gRPC service vectron.v1.VectronService offers the same operations."
    ),
    // The filter language is recursive: its schemas are listed here, not collected.
    components(schemas(
        FilterDoc, ConditionDoc, MatchConditionDoc, RangeConditionDoc, MatchDoc, MatchOneDoc, MatchAnyDoc,
        MatchValueDoc, RangeDoc, ExistsDoc, IsNullDoc, KeyRefDoc, HasIdDoc, PointIdDoc
    ))
)]
struct ApiDoc;

/// The data routes, with their OpenAPI description (built from the same handlers, so
/// the two cannot drift).
fn data_routes() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_collection, list_collections))
        .routes(routes!(get_collection, delete_collection))
        .routes(routes!(collection_status))
        .routes(routes!(upsert))
        .routes(routes!(search))
        .routes(routes!(search_batch))
        .routes(routes!(get_points))
        .routes(routes!(delete_points))
        .routes(routes!(scroll))
        .routes(routes!(count))
        .routes(routes!(get_point, delete_point))
        .routes(routes!(feedback))
}

/// The OpenAPI document of every HTTP route (data, admin and accounts), each operation
/// declaring the error answers it can give ([`declare_errors`]).
pub fn openapi(admin: &Admin) -> Value {
    let (_, mut doc) = data_routes().split_for_parts();
    let (_, admin_doc) = admin.clone().routes().split_for_parts();
    let (_, accounts_doc) = Accounts::routes().split_for_parts();
    doc.merge(admin_doc);
    doc.merge(accounts_doc);
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serialises");
    declare_errors(&mut doc);
    // JSON Schema bounds are numbers: the largest id as the exact integer, not the f64
    // utoipa writes (2^64, which would admit ids past u64::MAX).
    if let Some(num) = doc.pointer_mut("/components/schemas/PointId/oneOf/0") {
        num["maximum"] = Value::from(u64::MAX);
    }
    // At least one bound (utoipa 5.5 writes its `min_properties` as `maxProperties`).
    if let Some(range) = doc.pointer_mut("/components/schemas/Range").and_then(Value::as_object_mut) {
        range.insert("minProperties".into(), Value::from(1));
    }
    doc
}

/// Adds to every operation the error answers any request can get, with the error
/// schema: 400 (malformed), 413 (body too large) and 429 (rate limited) everywhere they
/// apply, 401/403 on every route that needs credentials, 404 where the path names
/// something, 503 where the cluster must answer. Answers a handler declares itself are
/// kept.
fn declare_errors(doc: &mut Value) {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorReply"}}},
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let public = path == "/v1/system/health" || crate::accounts::PUBLIC_PATHS.contains(&path.as_str());
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            let has_body = operation.get("requestBody").is_some();
            let has_params = path.contains('{');
            let mut answers = vec![
                ("400", "The request is malformed (bad JSON, bad parameters, invalid values)."),
                ("429", "A rate limit or throttle was hit; `retry-after` says when to try again."),
            ];
            if !public {
                answers.push(("401", "No, or an invalid, expired or revoked credential."));
                answers.push(("403", "The credential does not allow this on this collection or cluster."));
                answers.push(("503", "A service or shard leader could not be reached in time; retry."));
            }
            if has_params || !public {
                answers.push(("404", "What the request names (collection, point, user, key, route) does not exist."));
            }
            if has_body {
                answers.push(("413", "The request body exceeds this route's limit."));
            }
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            for (code, description) in answers {
                responses.entry(code).or_insert_with(|| error(description));
            }
        }
    }
}

/// The public HTTP API: data routes, admin routes, account routes and
/// `GET /v1/openapi.json`.
pub fn router(api: Api, admin: Admin, accounts: Accounts) -> Router {
    let body_limits = api.config().body_limits;
    let doc = Arc::new(openapi(&admin));
    let (data, _) = data_routes().split_for_parts();
    let spec = Router::new().route("/v1/openapi.json", get(move |_: Caller| async move { Json(doc.as_ref().clone()) }));
    data.with_state(api)
        .merge(admin.router())
        .merge(accounts.router())
        .merge(spec)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        // Bodies are read by `Body`, held to each route's own limit; this caps any other.
        .layer(DefaultBodyLimit::max(crate::policy::DEFAULT_UPSERT_BYTES.max(body_limits.upsert)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        let placement = vectron_common::placement_client::PlacementClient::new(vec!["127.0.0.1:1".into()]);
        let router = Arc::new(crate::routing::Router::new(placement, None));
        let api = Api::new(router, Default::default());
        let admin = Admin::new(api, Arc::new(crate::admin::Metrics::new()));
        openapi(&admin)
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_body() {
        let doc = doc();
        let paths = doc["paths"].as_object().unwrap();
        let expected = [
            ("/v1/collections", vec!["get", "post"]),
            ("/v1/collections/{name}", vec!["get", "delete"]),
            ("/v1/collections/{name}/status", vec!["get"]),
            ("/v1/collections/{name}/points", vec!["post"]),
            ("/v1/collections/{name}/points/search", vec!["post"]),
            ("/v1/collections/{name}/points/search/batch", vec!["post"]),
            ("/v1/collections/{name}/points/get", vec!["post"]),
            ("/v1/collections/{name}/points/delete", vec!["post"]),
            ("/v1/collections/{name}/points/scroll", vec!["post"]),
            ("/v1/collections/{name}/points/count", vec!["post"]),
            ("/v1/collections/{name}/points/{id}", vec!["get", "delete"]),
            ("/v1/feedback", vec!["post"]),
            ("/v1/system/health", vec!["get"]),
            ("/v1/admin/stats", vec!["get"]),
            ("/v1/admin/workers", vec!["get"]),
            ("/v1/admin/workers/{id}/drain", vec!["post"]),
            ("/v1/admin/workers/{id}", vec!["delete"]),
            ("/v1/admin/collections", vec!["get"]),
            ("/v1/alerts", vec!["get"]),
            ("/v1/alerts/{id}/resolve", vec!["post"]),
            ("/metrics", vec!["get"]),
            ("/v1/auth/login", vec!["post"]),
            ("/v1/auth/refresh", vec!["post"]),
            ("/v1/auth/logout", vec!["post"]),
            ("/v1/auth/me", vec!["get"]),
            ("/v1/auth/password", vec!["post"]),
            ("/v1/auth/keys", vec!["get", "post"]),
            ("/v1/auth/keys/{key_id}", vec!["delete"]),
            ("/v1/auth/users", vec!["get", "post"]),
            ("/v1/auth/users/{username}", vec!["get", "patch", "delete"]),
        ];
        for (path, methods) in &expected {
            let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is documented"));
            for m in methods {
                assert!(item.get(*m).is_some(), "{m} {path} is documented");
            }
        }
        assert_eq!(paths.len(), expected.len(), "no undocumented extras: {:?}", paths.keys().collect::<Vec<_>>());
        let search = &doc["components"]["schemas"]["SearchJson"];
        assert_eq!(search["required"], serde_json::json!(["vector"]), "{search}");
        for field in ["vector", "top_k", "filter", "ef", "consistency", "timeout_ms"] {
            assert!(search["properties"].get(field).is_some(), "SearchJson.{field}");
        }
        assert!(doc["components"]["schemas"].get("PointId").is_some());
        assert!(doc["components"]["schemas"].get("ErrorReply").is_some());
    }

    #[test]
    fn the_openapi_document_states_the_servers_own_constraints() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        // Ids: a plain integer (up to u64::MAX exactly) or a 1-256 character string.
        let id = &schemas["PointId"]["oneOf"];
        assert_eq!((&id[0]["type"], &id[0]["maximum"]), (&json!("integer"), &json!(u64::MAX)), "{id}");
        assert!(id[0].get("format").is_none(), "no int64 format: ids go past i64::MAX");
        assert_eq!((&id[1]["minLength"], &id[1]["maxLength"]), (&json!(1), &json!(256)), "{id}");
        let search = &schemas["SearchJson"]["properties"];
        assert_eq!((&search["top_k"]["minimum"], &search["top_k"]["maximum"]), (&json!(1), &json!(10000)));
        assert_eq!(search["vector"]["minItems"], json!(1));
        assert_eq!(schemas["CollectionJson"]["properties"]["name"]["pattern"], json!("^[a-zA-Z0-9_-]{1,64}$"));
        assert_eq!(schemas["Range"]["minProperties"], json!(1), "{}", schemas["Range"]);
        for name in ["Filter", "Condition", "MatchCondition", "HasIdCondition"] {
            assert!(schemas.get(name).is_some(), "the filter language's {name} is documented");
        }
        // Every operation declares its error answers with the error schema.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for code in ["400", "429"] {
                    let answer = &responses.get(code).unwrap_or_else(|| panic!("{method} {path} declares {code}"));
                    if path != "/v1/system/health" {
                        let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(schema, &json!("#/components/schemas/ErrorReply"), "{method} {path} {code}");
                    }
                }
                let public =
                    path == "/v1/system/health" || path.starts_with("/v1/auth/log") || path == "/v1/auth/refresh";
                assert!(public || responses.contains_key("401") && responses.contains_key("403"), "{method} {path}");
            }
        }
    }
}
