//! `vectron.v1.RerankService`: the strategies behind gRPC, and [`serve`], which runs the
//! service (and the standard gRPC health service) on an already-bound listener for
//! callers holding the cluster token.
//!
//! Errors keep their meaning across the wire, so the gateway can tell its caller's
//! mistakes from the reranker's trouble: bad parameters or candidates answer
//! INVALID_ARGUMENT (the gateway passes them on), and an external endpoint that fails answers UNAVAILABLE (the gateway
//! then serves the vector order).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};
use vectron_common::cluster_auth::ClusterToken;
use vectron_common::lifecycle::Health;
use vectron_model::convert::struct_from_pb;
use vectron_model::rerank::{MAX_RERANK_CANDIDATES, RerankStrategy};
use vectron_model::status::WireError;
#[cfg(test)]
use vectron_model::status::from_status;
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;
use vectron_proto::v1::rerank_service_server::{RerankService, RerankServiceServer};

use crate::cross_encoder::{CrossEncoderError, CrossEncoderParams, CrossEncoders};
use crate::feedback::Feedback;
use crate::strategy::{Candidate, Mmr, RerankError, Reranked, Rule, Strategy};

/// Largest rerank request (1,000 candidates with payloads).
pub const MAX_REQUEST_BYTES: usize = 256 << 20;

fn status(code: ErrorCode, message: impl Into<String>) -> Status {
    WireError::new(code, message, code == ErrorCode::Unavailable).to_status()
}

fn invalid(message: impl Into<String>) -> Status {
    status(ErrorCode::InvalidArgument, message)
}

/// The reranker's gRPC face.
#[derive(Debug, Clone, Default)]
pub struct RerankGrpc {
    cross_encoders: Arc<CrossEncoders>,
}

impl RerankGrpc {
    pub fn new(cross_encoders: CrossEncoders) -> RerankGrpc {
        RerankGrpc { cross_encoders: Arc::new(cross_encoders) }
    }

    /// The candidates reranked by `strategy` (the transport-free core of the RPC), within
    /// `deadline` when the caller gave one.
    pub async fn rerank(&self, r: pb::RerankRequest) -> Result<pb::RerankResponse, Status> {
        self.rerank_by(r, None).await
    }

    async fn rerank_by(&self, r: pb::RerankRequest, deadline: Option<Instant>) -> Result<pb::RerankResponse, Status> {
        let strategy = RerankStrategy::from_name(&r.strategy)
            .ok_or_else(|| invalid(format!("unknown rerank strategy {:?}", r.strategy)))?;
        if r.candidates.len() > MAX_RERANK_CANDIDATES {
            return Err(invalid(format!("{} candidates; the limit is {MAX_RERANK_CANDIDATES}", r.candidates.len())));
        }
        let top_k = r.top_k as usize;
        if top_k == 0 {
            return Err(invalid("top_k must be positive"));
        }
        let params = r.params.as_ref().map(struct_from_pb).transpose().map_err(|e| invalid(e.to_string()))?;
        let params = params.unwrap_or_default();
        let candidates = r.candidates.iter().map(candidate_from_pb).collect::<Result<Vec<_>, Status>>()?;
        let query_text = r.query_text;
        let ranked = match strategy {
            RerankStrategy::Rule => {
                let mut params = params;
                // Recency is measured from now unless the caller says from when.
                params.entry("now_secs").or_insert_with(|| Value::from(now_secs()));
                blocking(parse::<Rule>(params)?, query_text, candidates, top_k).await?
            }
            RerankStrategy::Mmr => blocking(parse::<Mmr>(params)?, query_text, candidates, top_k).await?,
            RerankStrategy::CrossEncoder => {
                let params = parse::<CrossEncoderParams>(params)?;
                let ranked = self.cross_encoders.rerank(&params, query_text.as_deref(), &candidates, top_k, deadline);
                ranked.await.map_err(|e| match e {
                    CrossEncoderError::Invalid(e) => invalid(e.to_string()),
                    CrossEncoderError::Endpoint(e) => {
                        // The details (URLs, the endpoint's answer) go to the log, not to
                        // the search's caller.
                        tracing::warn!("{e}");
                        status(ErrorCode::Unavailable, format!("the cross-encoder endpoint {:?} failed", e.endpoint))
                    }
                })?
            }
            RerankStrategy::Feedback => blocking(parse::<Feedback>(params)?, query_text, candidates, top_k).await?,
        };
        Ok(pb::RerankResponse {
            ranked: ranked
                .into_iter()
                .map(|r| pb::RerankedCandidate { index: r.index as u32, score: r.score, explanation: r.explanation })
                .collect(),
        })
    }
}

/// The caller's deadline from its `grpc-timeout` header (`<digits><unit>`).
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn parse<T: DeserializeOwned>(params: Map<String, Value>) -> Result<T, Status> {
    serde_json::from_value(Value::Object(params)).map_err(|e| invalid(format!("invalid rerank parameters: {e}")))
}

fn candidate_from_pb(c: &pb::RerankCandidate) -> Result<Candidate, Status> {
    if !c.score.is_finite() || c.vector.iter().any(|x| !x.is_finite()) {
        return Err(invalid("candidate scores and vectors must be finite"));
    }
    Ok(Candidate {
        score: c.score,
        vector: (!c.vector.is_empty()).then(|| c.vector.clone()),
        payload: c.payload.as_ref().map(struct_from_pb).transpose().map_err(|e| invalid(e.to_string()))?,
        prior: if c.feedback_prior.is_finite() { c.feedback_prior } else { 0.0 },
    })
}

/// Runs a CPU-bound strategy off the async threads.
async fn blocking<S: Strategy + Send + 'static>(
    strategy: S,
    query_text: Option<String>,
    candidates: Vec<Candidate>,
    top_k: usize,
) -> Result<Vec<Reranked>, Status> {
    tokio::task::spawn_blocking(move || strategy.rerank(query_text.as_deref(), &candidates, top_k))
        .await
        .map_err(|e| status(ErrorCode::Internal, format!("rerank task: {e}")))?
        .map_err(|e: RerankError| invalid(e.to_string()))
}

#[tonic::async_trait]
impl RerankService for RerankGrpc {
    async fn rerank(&self, request: Request<pb::RerankRequest>) -> Result<Response<pb::RerankResponse>, Status> {
        let deadline = grpc_timeout(request.metadata()).map(|t| Instant::now() + t);
        self.rerank_by(request.into_inner(), deadline).await.map(Response::new)
    }
}

/// Serves the rerank service (to callers holding `token`) and `health` (to anyone:
/// probes carry no token) on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: RerankGrpc,
    token: ClusterToken,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let rerank = RerankServiceServer::new(service)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .layer(vectron_common::telemetry::grpc_server_spans())
        .add_service(health.service())
        .add_service(tonic::service::interceptor::InterceptedService::new(rerank, token.checker()))
        .serve_with_incoming_shutdown(
            vectron_common::net::incoming(listener, vectron_common::tls::Port::Internal),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectron_model::convert::struct_to_pb;

    fn request(strategy: &str, params: serde_json::Value, candidates: Vec<pb::RerankCandidate>) -> pb::RerankRequest {
        pb::RerankRequest {
            strategy: strategy.into(),
            params: Some(struct_to_pb(params.as_object().unwrap())),
            candidates,
            top_k: 10,
            query_text: Some("rust".into()),
            ..Default::default()
        }
    }

    fn candidate(score: f32, body: &str, t: f64) -> pb::RerankCandidate {
        let payload = serde_json::json!({"body": body, "t": t});
        pb::RerankCandidate { score, payload: Some(struct_to_pb(payload.as_object().unwrap())), ..Default::default() }
    }

    #[tokio::test]
    async fn strategies_are_chosen_by_name_and_their_params_checked() {
        let service = RerankGrpc::default();
        let candidates = vec![candidate(0.9, "python", 0.0), candidate(0.8, "rust", 0.0)];
        let r = service.rerank(request("rule", serde_json::json!({"text_fields": ["body"]}), candidates.clone()));
        let ranked = r.await.unwrap().ranked;
        assert_eq!(ranked.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 0], "{ranked:?}");
        let code = |r: Result<pb::RerankResponse, Status>| from_status(&r.unwrap_err()).code;
        let typo = request("rule", serde_json::json!({"text_feilds": ["body"]}), candidates.clone());
        assert_eq!(code(service.rerank(typo).await), ErrorCode::InvalidArgument);
        let unknown = request("magic", serde_json::json!({}), candidates.clone());
        assert_eq!(code(service.rerank(unknown).await), ErrorCode::InvalidArgument);
        let no_model = request("feedback", serde_json::json!({}), candidates.clone());
        assert_eq!(code(service.rerank(no_model).await), ErrorCode::InvalidArgument, "the gateway attaches the model");
        let no_vectors = request("mmr", serde_json::json!({}), candidates.clone());
        assert_eq!(code(service.rerank(no_vectors).await), ErrorCode::InvalidArgument);
        let mut nan = candidates;
        nan[0].score = f32::NAN;
        assert_eq!(code(service.rerank(request("rule", serde_json::json!({}), nan)).await), ErrorCode::InvalidArgument);
    }

    #[test]
    fn the_callers_deadline_is_read_from_grpc_timeout() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(grpc_timeout(&m), None);
        m.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(250)));
        m.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_secs(3)));
        m.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
    }

    #[tokio::test]
    async fn recency_is_measured_from_now_unless_the_caller_says_otherwise() {
        let service = RerankGrpc::default();
        let now = now_secs();
        // Equal vector scores; one candidate an hour old, one a year old.
        let candidates = vec![candidate(0.5, "", now - 365.0 * 86_400.0), candidate(0.5, "", now - 3600.0)];
        let params = serde_json::json!({"timestamp_field": "t", "recency_weight": 1.0, "half_life_secs": 86400.0});
        let ranked = service.rerank(request("rule", params.clone(), candidates.clone())).await.unwrap().ranked;
        assert_eq!(ranked[0].index, 1, "the recent one first: {ranked:?}");
        let mut then = params;
        then["now_secs"] = serde_json::json!(0.0);
        let ranked = service.rerank(request("rule", then, candidates)).await.unwrap().ranked;
        assert_eq!(ranked[0].index, 0, "both in the future of the caller's clock: ties keep the order");
    }
}
