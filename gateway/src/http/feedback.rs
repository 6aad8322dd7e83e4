//! Feedback routes: relevance feedback on a search hit (kept, replicated), and what a
//! collection's feedback adds up to.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use vectron_model::PointId;
use vectron_model::feedback::FeedbackRecord;
use vectron_proto::v1 as pb;

use super::extract::{ApiError, Body, ErrorReply, PathParams, Reply};
use super::json::{id_json, model_err, whole_u32_opt};
use super::schema::PointIdDoc;
use crate::api::Api;
use crate::auth::Caller;

/// Adds the feedback routes.
pub(super) fn routes(r: OpenApiRouter<Api>) -> OpenApiRouter<Api> {
    r.routes(routes!(feedback)).routes(routes!(feedback_stats))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackJson {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub collection: String,
    /// The search answer's `query_id` (or an identifier of the client's own).
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub query_id: String,
    #[schema(value_type = PointIdDoc)]
    pub point_id: PointId,
    /// Negative for bad results, positive for good ones.
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub relevance: f32,
    #[serde(default)]
    pub clicked: Option<bool>,
    /// The hit's 0-based position in the answer the client saw.
    #[serde(default, deserialize_with = "whole_u32_opt")]
    #[schema(value_type = Option<u64>, maximum = 4294967295u64)]
    pub position: Option<u32>,
    #[serde(default)]
    #[schema(max_length = 2048)]
    pub comment: Option<String>,
    /// The text the query stood for (what the feedback model learns from).
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub query_text: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackReply {
    /// The feedback is kept (replicated, durable).
    pub accepted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointFeedbackJson {
    #[schema(value_type = PointIdDoc)]
    pub point_id: PointId,
    pub count: u64,
    pub mean_relevance: f64,
    pub relevance_sum: f64,
    pub clicks: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackStatsReply {
    /// Records kept (one per judged hit of a query).
    pub count: u64,
    pub queries: u64,
    pub points: u64,
    pub mean_relevance: f64,
    pub positive: u64,
    pub negative: u64,
    pub clicked: u64,
    /// The points with the highest relevance sum, at most 10.
    pub top_points: Vec<PointFeedbackJson>,
    /// The feedback model as these records train it now (over the collection's default
    /// feedback rerank's text fields, if it has one).
    pub model: Option<FeedbackModelJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackModelJson {
    /// Names the records it learned from.
    pub version: String,
    /// Weights of position, bm25, coverage and prior.
    pub weights: Vec<f32>,
    pub examples: u64,
    pub train_queries: u64,
    pub held_out_queries: u64,
    /// NDCG@10 on the held-out queries of the order the client saw, and of the model's.
    pub ndcg_vector: f64,
    pub ndcg_model: f64,
}

fn stats_json(s: pb::FeedbackStats) -> Result<FeedbackStatsReply, ApiError> {
    let top_points = s
        .top_points
        .iter()
        .map(|p| {
            Ok(PointFeedbackJson {
                point_id: id_json(p.point_id.as_ref())?,
                count: p.count,
                mean_relevance: p.mean_relevance,
                relevance_sum: p.relevance_sum,
                clicks: p.clicks,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(FeedbackStatsReply {
        count: s.count,
        queries: s.queries,
        points: s.points,
        mean_relevance: s.mean_relevance,
        positive: s.positive,
        negative: s.negative,
        clicked: s.clicked,
        top_points,
        model: s.model.map(|m| FeedbackModelJson {
            version: m.version,
            weights: m.weights,
            examples: m.examples,
            train_queries: m.train_queries,
            held_out_queries: m.held_out_queries,
            ndcg_vector: m.ndcg_vector,
            ndcg_model: m.ndcg_model,
        }),
    })
}

/// Relevance feedback on a search hit, kept durably and replicated; the same hit judged
/// again in the same query replaces the earlier judgement.
#[utoipa::path(post, path = "/v1/feedback", tag = "search", request_body = FeedbackJson,
    responses((status = 200, body = FeedbackReply), (status = 400, body = ErrorReply), (status = 404, body = ErrorReply)))]
async fn feedback(State(api): State<Api>, Caller(access): Caller, Body(f): Body<FeedbackJson>) -> Reply<FeedbackReply> {
    let record = FeedbackRecord {
        query_id: f.query_id,
        point_id: f.point_id,
        relevance: f.relevance,
        clicked: f.clicked,
        position: f.position,
        comment: f.comment,
        query_text: f.query_text,
        at_ms: 0,
    }
    .checked()
    .map_err(model_err)?;
    api.submit_feedback(&access, &f.collection, record).await?;
    Ok(Json(FeedbackReply { accepted: true }))
}

/// What a collection's kept feedback adds up to: counts, mean relevance, the most
/// positively judged points.
#[utoipa::path(get, path = "/v1/collections/{name}/feedback/stats", tag = "search", params(("name" = String, Path)),
    responses((status = 200, body = FeedbackStatsReply), (status = 404, body = ErrorReply)))]
async fn feedback_stats(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(c): PathParams<String>,
) -> Reply<FeedbackStatsReply> {
    Ok(Json(stats_json(api.feedback_stats(&access, &c).await?)?))
}
