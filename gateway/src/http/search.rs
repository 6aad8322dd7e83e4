//! Search routes: one search, and a batch (each search counts against the caller's rate
//! limit).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use vectron_model::PointId;
use vectron_model::request::{SearchQuery, SearchRequest};
use vectron_proto::v1 as pb;

use super::extract::{ApiError, Body, ErrorReply, PathParams, Reply};
use super::json::{ConsistencyJson, RerankJson, at_most, filter_json, id_json, model_err, payload_json, whole_u32};
use super::schema::{FilterDoc, PointIdDoc};
use crate::api::Api;
use crate::auth::{Caller, Spend};

/// Adds the search routes.
pub(super) fn routes(r: OpenApiRouter<Api>) -> OpenApiRouter<Api> {
    r.routes(routes!(search)).routes(routes!(search_batch))
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
    /// The reranker's score, when the answer was reranked (`score` stays the vector one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank_score: Option<f32>,
    /// What moved the hit, when the answer was reranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
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
    /// Re-order the hits with the reranker; absent: the collection's default rerank.
    #[serde(default)]
    pub rerank: Option<RerankJson>,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchReply {
    pub hits: Vec<HitJson>,
    /// Some shard missed the deadline; `missing_shards` lists them.
    pub partial: bool,
    pub missing_shards: Vec<u64>,
    /// Names this answer in feedback (`POST /v1/feedback`'s `query_id`).
    pub query_id: String,
    /// A rerank was asked for and the hits are in the reranker's order.
    pub reranked: bool,
    /// Why a rerank that was asked for did not happen (the hits are in vector order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank_skipped: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchBatchReply {
    pub results: Vec<SearchReply>,
}

impl SearchJson {
    /// The search, parsed and checked.
    fn into_request(self, collection: &str) -> Result<SearchRequest, ApiError> {
        let query = SearchQuery {
            top_k: self.top_k as usize,
            ef: (self.ef > 0).then_some(self.ef as usize),
            filter: filter_json(self.filter.as_ref())?,
            score_threshold: self.score_threshold,
            with_payload: self.with_payload,
            with_vector: self.with_vector,
            vector: self.vector,
        };
        Ok(SearchRequest {
            collection: collection.to_owned(),
            query: query.checked().map_err(model_err)?,
            consistency: self.consistency.into(),
            timeout: (self.timeout_ms > 0).then(|| Duration::from_millis(self.timeout_ms.into())),
            rerank: self.rerank.map(RerankJson::into_model).transpose()?,
        })
    }
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
                rerank_score: h.rerank_score,
                explanation: (!h.explanation.is_empty()).then(|| h.explanation.clone()),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(SearchReply {
        hits,
        partial: r.partial,
        missing_shards: r.missing_shards,
        query_id: r.query_id,
        reranked: r.reranked,
        rerank_skipped: (!r.rerank_skipped.is_empty()).then_some(r.rerank_skipped),
    })
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
    let with_vector = s.with_vector;
    let r = api.search(&access, s.into_request(&c)?).await?;
    Ok(Json(search_json(r, with_vector)?))
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
    let with_vectors: Vec<bool> = b.searches.iter().map(|s| s.with_vector).collect();
    let searches = b.searches.into_iter().map(|s| s.into_request(&c)).collect::<Result<Vec<_>, _>>()?;
    let r = api.search_batch(&access, quota.as_ref(), searches).await?;
    let results = r
        .results
        .into_iter()
        .zip(with_vectors)
        .map(|(r, with_vector)| search_json(r, with_vector))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(SearchBatchReply { results }))
}
