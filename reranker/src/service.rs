//! `vectron.v1.RerankService`: the strategies behind gRPC, and [`serve`], which runs the
//! service (and the standard gRPC health service) on an already-bound listener for
//! callers holding the cluster token.
//!
//! Errors keep their meaning across the wire, so the gateway can tell its caller's
//! mistakes from the reranker's trouble: bad parameters or candidates answer
//! INVALID_ARGUMENT (the gateway passes them on), a strategy not built yet answers
//! UNIMPLEMENTED, and an external endpoint that fails answers UNAVAILABLE (the gateway
//! then serves the vector order).

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};
use vectron_common::cluster_auth::ClusterToken;
use vectron_model::convert::struct_from_pb;
use vectron_model::request::MAX_TOP_K;
use vectron_model::rerank::RerankStrategy;
use vectron_model::status::WireError;
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;
use vectron_proto::v1::rerank_service_server::{RerankService, RerankServiceServer};

use crate::cross_encoder::{CrossEncoderError, CrossEncoderParams, CrossEncoders};
use crate::strategy::{Candidate, Mmr, RerankError, Reranked, Rule, Strategy};

/// Largest rerank request (10,000 candidates with payloads).
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

    /// The candidates reranked by `strategy` (the transport-free core of the RPC).
    pub async fn rerank(&self, r: pb::RerankRequest) -> Result<pb::RerankResponse, Status> {
        let strategy = RerankStrategy::from_name(&r.strategy)
            .ok_or_else(|| invalid(format!("unknown rerank strategy {:?}", r.strategy)))?;
        if r.candidates.len() > MAX_TOP_K {
            return Err(invalid(format!("{} candidates; the limit is {MAX_TOP_K}", r.candidates.len())));
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
                self.cross_encoders.rerank(&params, query_text.as_deref(), &candidates, top_k).await.map_err(|e| {
                    match e {
                        CrossEncoderError::Invalid(e) => invalid(e.to_string()),
                        CrossEncoderError::Endpoint(e) => status(ErrorCode::Unavailable, e.to_string()),
                    }
                })?
            }
            RerankStrategy::Feedback => {
                return Err(status(
                    ErrorCode::Unimplemented,
                    "the feedback strategy is not built yet (the feedback store comes first); use rule, mmr or \
                     cross_encoder",
                ));
            }
        };
        Ok(pb::RerankResponse {
            ranked: ranked
                .into_iter()
                .map(|r| pb::RerankedCandidate { index: r.index as u32, score: r.score, explanation: r.explanation })
                .collect(),
        })
    }
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
        RerankGrpc::rerank(self, request.into_inner()).await.map(Response::new)
    }
}

/// Serves the rerank service (to callers holding `token`) and gRPC health (to anyone:
/// probes carry no token) on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: RerankGrpc,
    token: ClusterToken,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RerankServiceServer<RerankGrpc>>().await;
    let rerank = RerankServiceServer::new(service)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(tonic::service::interceptor::InterceptedService::new(rerank, token.checker()))
        .serve_with_incoming_shutdown(vectron_common::net::incoming(listener), shutdown)
        .await
}
