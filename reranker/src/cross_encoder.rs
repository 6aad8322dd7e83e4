//! The `cross_encoder` strategy: scores (query, candidate text) pairs with an external
//! reranking endpoint over HTTP, in the common `/rerank` JSON shape:
//!
//! - `tei` (text-embeddings-inference): `POST {url}` with `{"query", "texts"}`, answering
//!   `[{"index", "score"}, …]`;
//! - `cohere` (Cohere-compatible servers, Jina, vLLM's `/v1/rerank`): `{"query",
//!   "documents", "top_n", "model"?}`, answering `{"results": [{"index",
//!   "relevance_score"}, …]}`.
//!
//! Endpoints are named in the reranker's configuration, never given by a request (a
//! search must not make the reranker call arbitrary URLs). Texts go in batches of the
//! endpoint's `batch_size`, four at a time, each within the endpoint's timeout and the
//! caller's deadline (the gRPC deadline of the rerank).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::strategy::{Candidate, RerankError, Reranked, best_first, text_of, vector_ranks};

/// Batches of one rerank sent to an endpoint at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// The JSON shape an endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiFormat {
    #[default]
    Tei,
    Cohere,
}

/// A configured reranking endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The full URL of the rerank route, e.g. `http://tei:8080/rerank`.
    pub url: String,
    pub format: ApiFormat,
    /// Sent as `model` (cohere format).
    pub model: Option<String>,
    /// Budget of one batch's call.
    pub timeout: Duration,
    /// Texts per call.
    pub batch_size: usize,
}

impl Endpoint {
    /// Checks what can be checked before the first call.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.starts_with("https://") {
            return Err(format!(
                "{}: https endpoints are not supported yet (this build has no TLS client); reach it over http \
                 on a private network or through a local proxy",
                self.url
            ));
        }
        if !self.url.starts_with("http://") {
            return Err(format!("{}: an endpoint URL starts with http://", self.url));
        }
        if self.batch_size == 0 || self.timeout.is_zero() {
            return Err(format!("{}: batch_size and timeout must be positive", self.url));
        }
        Ok(())
    }
}

/// A request's parameters for `cross_encoder`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossEncoderParams {
    /// The configured endpoint's name; `default` when absent.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Payload fields whose text (joined by newlines) is the candidate's document.
    pub text_fields: Vec<String>,
}

fn default_endpoint() -> String {
    "default".into()
}

/// Why an endpoint call failed: the service treats these as the reranker being
/// unavailable (the gateway falls back to the vector order).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cross-encoder endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    pub endpoint: String,
    pub reason: String,
}

/// What a cross-encoder rerank can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CrossEncoderError {
    #[error(transparent)]
    Invalid(#[from] RerankError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

/// The configured endpoints and an HTTP client to call them.
#[derive(Debug, Clone, Default)]
pub struct CrossEncoders {
    endpoints: BTreeMap<String, Endpoint>,
    http: reqwest::Client,
}

impl CrossEncoders {
    pub fn new(endpoints: BTreeMap<String, Endpoint>) -> Result<CrossEncoders, String> {
        for (name, e) in &endpoints {
            e.validate().map_err(|m| format!("cross-encoder endpoint {name:?}: {m}"))?;
        }
        Ok(CrossEncoders { endpoints, http: reqwest::Client::new() })
    }

    /// The candidates in the endpoint's order, at most `top_k`; each call within the
    /// endpoint's timeout and before `deadline` (the caller's, when it gave one), so an
    /// endpoint that is late fails here before the caller gives up on the reranker.
    /// No candidates: only the parameters are checked.
    pub async fn rerank(
        &self,
        params: &CrossEncoderParams,
        query_text: Option<&str>,
        candidates: &[Candidate],
        top_k: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<Reranked>, CrossEncoderError> {
        let endpoint = self.endpoints.get(&params.endpoint).ok_or_else(|| {
            let known: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            RerankError::InvalidParams(format!(
                "no cross-encoder endpoint {:?} is configured (configured: [{}])",
                params.endpoint,
                known.join(", ")
            ))
        })?;
        if params.text_fields.is_empty() {
            return Err(RerankError::InvalidParams("cross_encoder needs text_fields".into()).into());
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let query = query_text
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| RerankError::InvalidParams("cross_encoder needs query_text".into()))?;
        // The caller's deadline, less a margin for the answer to travel back.
        let timeout = match deadline {
            Some(d) => endpoint.timeout.min(d.saturating_duration_since(Instant::now()).mul_f32(0.9)),
            None => endpoint.timeout,
        };
        let texts: Vec<String> = candidates
            .iter()
            .map(|c| {
                let parts: Vec<String> = params.text_fields.iter().map(|f| text_of(c.payload.as_ref(), f)).collect();
                parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("\n")
            })
            .collect();
        let name = params.endpoint.as_str();
        let failed = move |reason: String| EndpointError { endpoint: name.to_owned(), reason };
        let mut batches = Vec::new();
        for (b, chunk) in texts.chunks(endpoint.batch_size).enumerate() {
            batches.push(async move {
                let scores = self.call(endpoint, timeout, query, chunk).await.map_err(failed)?;
                Ok::<_, EndpointError>((b * endpoint.batch_size, scores))
            });
        }
        let answers: Vec<(usize, Vec<f32>)> =
            futures::stream::iter(batches).buffer_unordered(BATCHES_IN_FLIGHT).try_collect().await?;
        let mut scores = vec![f32::NEG_INFINITY; candidates.len()];
        for (offset, batch) in answers {
            for (i, s) in batch.into_iter().enumerate() {
                scores[offset + i] = s;
            }
        }
        let ranks = vector_ranks(candidates);
        let out: Vec<Reranked> = scores
            .iter()
            .enumerate()
            .map(|(index, &score)| Reranked {
                index,
                score,
                explanation: format!("cross-encoder {} {score:.3} (vector rank {})", params.endpoint, ranks[index] + 1),
            })
            .collect();
        Ok(best_first(out, top_k))
    }

    /// One batch's scores, in the batch's order.
    async fn call(
        &self,
        endpoint: &Endpoint,
        timeout: Duration,
        query: &str,
        texts: &[String],
    ) -> Result<Vec<f32>, String> {
        let body = match endpoint.format {
            ApiFormat::Tei => json!({"query": query, "texts": texts}),
            ApiFormat::Cohere => {
                let mut b = json!({"query": query, "documents": texts, "top_n": texts.len()});
                if let Some(m) = &endpoint.model {
                    b["model"] = json!(m);
                }
                b
            }
        };
        let response = self
            .http
            .post(&endpoint.url)
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { format!("no answer within {timeout:?}") } else { e.to_string() })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
        }
        let answer: Value = response.json().await.map_err(|e| format!("the answer is not JSON: {e}"))?;
        scores_of(endpoint.format, &answer, texts.len())
    }
}

/// The per-text scores in an endpoint's answer; every text must be scored once.
fn scores_of(format: ApiFormat, answer: &Value, n: usize) -> Result<Vec<f32>, String> {
    let (items, key) = match format {
        ApiFormat::Tei => (answer.as_array(), "score"),
        ApiFormat::Cohere => (answer.get("results").and_then(Value::as_array), "relevance_score"),
    };
    let items = items.ok_or_else(|| format!("the answer is not a list of scores: {answer}"))?;
    let mut scores: Vec<Option<f32>> = vec![None; n];
    for item in items {
        let index = item.get("index").and_then(Value::as_u64).map(|i| i as usize);
        let score = item.get(key).and_then(Value::as_f64);
        match (index, score) {
            (Some(i), Some(s)) if i < n && scores[i].is_none() && s.is_finite() => scores[i] = Some(s as f32),
            _ => return Err(format!("the answer has a bad entry {item}")),
        }
    }
    scores
        .into_iter()
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| format!("the answer scores {} of {n} texts", items.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_both_shapes_and_incomplete_ones_refused() {
        let tei = json!([{"index": 1, "score": 0.2}, {"index": 0, "score": 0.9}]);
        assert_eq!(scores_of(ApiFormat::Tei, &tei, 2).unwrap(), vec![0.9, 0.2]);
        let cohere = json!({"results": [{"index": 0, "relevance_score": 0.1}, {"index": 1, "relevance_score": 0.7}]});
        assert_eq!(scores_of(ApiFormat::Cohere, &cohere, 2).unwrap(), vec![0.1, 0.7]);
        assert!(scores_of(ApiFormat::Tei, &tei, 3).is_err(), "a text left unscored");
        assert!(scores_of(ApiFormat::Tei, &json!([{"index": 0, "score": 1}, {"index": 0, "score": 1}]), 2).is_err());
        assert!(scores_of(ApiFormat::Tei, &json!([{"index": 5, "score": 1}]), 1).is_err());
        assert!(scores_of(ApiFormat::Cohere, &tei, 2).is_err());
    }

    #[test]
    fn https_and_odd_urls_are_refused_at_configuration() {
        let e = |url: &str| Endpoint {
            url: url.into(),
            format: ApiFormat::Tei,
            model: None,
            timeout: Duration::from_secs(1),
            batch_size: 8,
        };
        assert!(e("http://127.0.0.1:1/rerank").validate().is_ok());
        assert!(e("https://api.example.com/rerank").validate().unwrap_err().contains("https"));
        assert!(e("ftp://x").validate().is_err());
        assert!(Endpoint { batch_size: 0, ..e("http://x/rerank") }.validate().is_err());
    }
}
