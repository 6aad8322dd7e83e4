//! The gateway's side of reranking: the client of the reranker service, and what a
//! search does when the reranker cannot help.
//!
//! A reranked search fetches the plan's candidates from the shards, sends them to the
//! reranker with the rest of its deadline (at most the configured rerank timeout), and
//! answers the reranker's top_k. The reranker being unreachable, over its deadline or
//! failing its own endpoint is degraded service, not failure: the answer is the vector
//! order with `reranked: false` and the reason ([`Outcome::Skipped`]), counted in
//! `vectron_rerank_total`. When the reranker itself is unreachable or late, the first
//! such failure also raises the cluster alert `reranker_unavailable` (through the
//! placement driver); an endpoint of its own failing (it answers so) does not. A background probe then
//! calls the reranker every second until it answers, and resolves the alert, so the
//! alert clears by itself even when no search asks for a rerank. The caller's own
//! mistakes (unknown parameters, a strategy not built) are errors, passed on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use vectron_common::raft::network::PeerChannels;
use vectron_model::Distance;
use vectron_model::convert::struct_to_pb;
use vectron_model::rerank::{RerankPlan, RerankStrategy};
use vectron_model::status::{CODE_KEY, WireError, from_status};
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;
use vectron_proto::v1::rerank_service_client::RerankServiceClient;

use crate::routing::Router;

/// The alert a gateway raises while it cannot reach the reranker.
pub const ALERT_KIND: &str = "reranker_unavailable";

/// Where the reranker is and how long a search waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerankerConfig {
    /// `host:port` of the reranker service.
    pub address: String,
    /// Longest wait for one rerank (the search's own deadline may cut it shorter).
    pub timeout: Duration,
}

/// What became of a rerank.
#[derive(Debug)]
pub enum Outcome {
    /// The reranker's order: (index into the candidates, score, explanation), best first.
    Ranked(Vec<pb::RerankedCandidate>),
    /// Not reranked, and why (the vector order stands).
    Skipped(String),
}

/// Why a call to the reranker gave no order.
#[derive(Debug)]
enum Failure {
    /// No answer within the budget.
    Late,
    /// The reranker could not be reached (refused, reset, no route).
    Unreachable(String),
    /// The reranker answered that a service it calls (a cross-encoder endpoint) failed.
    Dependency(WireError),
    /// The reranker refused the request (its parameters, a strategy not built).
    Refused(WireError),
}

/// The rerank metrics.
#[derive(Debug, Clone)]
struct RerankMetrics {
    /// By strategy and outcome (reranked, unavailable, deadline, endpoint_failed,
    /// refused, not_configured).
    total: IntCounterVec,
    seconds: HistogramVec,
    up: IntGauge,
}

impl RerankMetrics {
    fn new(registry: &Registry) -> RerankMetrics {
        let total = IntCounterVec::new(
            Opts::new("vectron_rerank_total", "Searches that asked for a rerank, by strategy and outcome"),
            &["strategy", "outcome"],
        )
        .expect("valid metric");
        let seconds = HistogramVec::new(
            HistogramOpts::new("vectron_rerank_seconds", "Time of the reranker's answer, by strategy")
                .buckets(prometheus::exponential_buckets(0.0002, 2.0, 16).expect("valid buckets")),
            &["strategy"],
        )
        .expect("valid metric");
        let up = IntGauge::new("vectron_reranker_up", "1 while the reranker answers (0: searches skip reranks)")
            .expect("valid metric");
        registry.register(Box::new(total.clone())).expect("unique metric");
        registry.register(Box::new(seconds.clone())).expect("unique metric");
        registry.register(Box::new(up.clone())).expect("unique metric");
        RerankMetrics { total, seconds, up }
    }
}

/// A client of the reranker service, with its health as searches and the probe see it.
#[derive(Debug)]
pub struct Reranker {
    /// `None`: no reranker is configured; reranks are skipped, saying so.
    config: Option<RerankerConfig>,
    channels: PeerChannels,
    router: Arc<Router>,
    metrics: RerankMetrics,
    /// Set by a failed rerank, cleared by the probe (or a rerank) that gets an answer.
    down: AtomicBool,
    /// Alert reports take turns.
    reporting: tokio::sync::Mutex<()>,
}

impl Reranker {
    pub fn new(
        config: Option<RerankerConfig>,
        channels: PeerChannels,
        router: Arc<Router>,
        registry: &Registry,
    ) -> Reranker {
        let metrics = RerankMetrics::new(registry);
        metrics.up.set(config.is_some().into());
        let (down, reporting) = (AtomicBool::new(false), tokio::sync::Mutex::new(()));
        Reranker { config, channels, router, metrics, down, reporting }
    }

    /// Reranks `candidates` (from [`candidates`]) with `plan`, answering at most
    /// `top_k`, within `deadline`.
    pub async fn rerank(
        self: &Arc<Self>,
        collection: &str,
        plan: &RerankPlan,
        candidates: Vec<pb::RerankCandidate>,
        top_k: usize,
        deadline: Instant,
    ) -> Result<Outcome, WireError> {
        let strategy = plan.strategy.name();
        let Some(config) = &self.config else {
            self.metrics.total.with_label_values(&[strategy, "not_configured"]).inc();
            return Ok(Outcome::Skipped("no reranker is configured (gateway.reranker)".into()));
        };
        let count = candidates.len();
        let request = pb::RerankRequest {
            collection: collection.to_owned(),
            strategy: strategy.to_owned(),
            query_text: plan.query_text.clone(),
            params: Some(struct_to_pb(&plan.params)),
            candidates,
            top_k: top_k as u32,
        };
        let budget = deadline.saturating_duration_since(Instant::now()).min(config.timeout);
        if budget.is_zero() {
            self.metrics.total.with_label_values(&[strategy, "deadline"]).inc();
            return Ok(Outcome::Skipped("the search's deadline left no time for the reranker".into()));
        }
        let started = Instant::now();
        let (label, outcome) = match self.call(config, request, budget).await {
            Ok(r) => {
                self.metrics.seconds.with_label_values(&[strategy]).observe(started.elapsed().as_secs_f64());
                self.answered();
                ("reranked", Outcome::Ranked(checked(r.ranked, count)?))
            }
            // The search's own deadline left it less than its timeout: not the reranker's
            // fault, no alert.
            Err(Failure::Late) if budget < config.timeout => {
                ("deadline", Outcome::Skipped(format!("the search's deadline left the reranker {budget:?}")))
            }
            Err(Failure::Late) => {
                let reason = format!("the reranker did not answer within {budget:?}");
                self.failed(&reason);
                ("deadline", Outcome::Skipped(reason))
            }
            Err(Failure::Unreachable(message)) => {
                // The details (its address, the transport's error) are for operators.
                self.failed(&format!("the reranker at {} is unavailable: {message}", config.address));
                ("unavailable", Outcome::Skipped("the reranker is unavailable".into()))
            }
            Err(Failure::Dependency(e)) => {
                // The reranker answered: its own endpoint failed. No alert about it.
                self.answered();
                ("endpoint_failed", Outcome::Skipped(e.message))
            }
            Err(Failure::Refused(e)) => {
                self.answered();
                self.metrics.total.with_label_values(&[strategy, "refused"]).inc();
                return Err(e);
            }
        };
        self.metrics.total.with_label_values(&[strategy, label]).inc();
        Ok(outcome)
    }

    /// Checks `plan`'s parameters with the reranker (an empty rerank): its refusal is
    /// the error; a reranker that cannot be reached (or none configured) checks nothing.
    pub async fn check(&self, plan: &RerankPlan) -> Result<(), WireError> {
        let Some(config) = &self.config else { return Ok(()) };
        let request = pb::RerankRequest {
            strategy: plan.strategy.name().to_owned(),
            query_text: plan.query_text.clone(),
            params: Some(struct_to_pb(&plan.params)),
            top_k: 1,
            ..Default::default()
        };
        match self.call(config, request, config.timeout).await {
            Err(Failure::Refused(e)) => Err(e),
            Err(e) => {
                tracing::warn!("rerank parameters not checked (the reranker did not answer): {e:?}");
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    async fn call(
        &self,
        config: &RerankerConfig,
        request: pb::RerankRequest,
        budget: Duration,
    ) -> Result<pb::RerankResponse, Failure> {
        let channel = self.channels.get(&config.address).map_err(|e| Failure::Unreachable(e.to_string()))?;
        let mut client = RerankServiceClient::new(channel)
            .max_encoding_message_size(MAX_RERANK_MESSAGE)
            .max_decoding_message_size(MAX_RERANK_MESSAGE);
        let mut r = tonic::Request::new(request);
        r.set_timeout(budget);
        let started = Instant::now();
        let status = match tokio::time::timeout(budget, client.rerank(r)).await {
            Err(_) => return Err(Failure::Late),
            Ok(Ok(r)) => return Ok(r.into_inner()),
            Ok(Err(status)) => status,
        };
        // The reranker's own answers carry their code; a transport failure does not.
        let answered = status.metadata().contains_key(CODE_KEY);
        let e = from_status(&status);
        Err(match e.code {
            ErrorCode::Unavailable | ErrorCode::DeadlineExceeded if answered => Failure::Dependency(e),
            // The caller's mistakes; anything else the reranker answers (a wrong cluster
            // secret, an internal error) is the reranker's trouble, not the caller's.
            ErrorCode::InvalidArgument | ErrorCode::Unimplemented if answered => Failure::Refused(e),
            code if answered => Failure::Unreachable(format!("it answered {code:?}: {}", e.message)),
            // The channel enforces the deadline itself too ("Timeout expired", CANCELLED).
            _ if matches!(status.code(), tonic::Code::DeadlineExceeded | tonic::Code::Cancelled)
                || started.elapsed() >= budget =>
            {
                Failure::Late
            }
            _ => Failure::Unreachable(e.message),
        })
    }

    fn answered(self: &Arc<Self>) {
        if self.down.swap(false, Ordering::SeqCst) {
            self.metrics.up.set(1);
            tracing::info!(reranker = self.subject(), "the reranker answers again");
            tokio::spawn(report(Arc::downgrade(self), None));
        }
    }

    fn failed(self: &Arc<Self>, reason: &str) {
        if self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.metrics.up.set(0);
        tracing::warn!(reranker = self.subject(), "searches skip reranks: {reason}");
        tokio::spawn(report(Arc::downgrade(self), Some(format!("searches are answered in vector order: {reason}"))));
        tokio::spawn(probe(Arc::downgrade(self)));
    }

    fn subject(&self) -> String {
        format!("reranker {}", self.config.as_ref().map_or("", |c| c.address.as_str()))
    }
}

/// The reranker's candidates from `hits` (the shards' merged hits, best first under
/// `distance`), with what `strategy` reads of them; `priors` are the hits' feedback
/// priors (the feedback strategy; empty otherwise).
pub fn candidates(
    strategy: RerankStrategy,
    hits: &[pb::ScoredPoint],
    priors: &[f32],
    distance: Distance,
) -> Vec<pb::RerankCandidate> {
    hits.iter()
        .enumerate()
        .map(|(i, h)| pb::RerankCandidate {
            id: h.id.clone(),
            feedback_prior: priors.get(i).copied().unwrap_or(0.0),
            // The reranker takes higher as better.
            score: if distance == Distance::Euclid { -h.score } else { h.score },
            vector: if strategy.reads_vectors() { h.vector.clone() } else { Vec::new() },
            payload: if strategy.reads_payloads() { h.payload.clone() } else { None },
        })
        .collect()
}

/// Largest rerank message (as the reranker's own limit: candidates' payloads can be large).
const MAX_RERANK_MESSAGE: usize = 256 << 20;

/// Every second while the reranker is marked down, an empty rerank; the first answer
/// marks it up (resolving the alert). Ends when the gateway is gone.
async fn probe(reranker: Weak<Reranker>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(r) = reranker.upgrade() else { return };
        let Some(config) = r.config.as_ref().filter(|_| r.down.load(Ordering::SeqCst)) else { return };
        let empty = pb::RerankRequest { strategy: "mmr".into(), top_k: 1, ..Default::default() };
        if r.call(config, empty, config.timeout).await.is_ok() {
            r.answered();
            return;
        }
    }
}

/// Raises (with its message) or resolves the alert, one report at a time, and only if
/// the reranker is still as the report says when its turn comes: a raise and a resolve
/// started close together cannot land in the wrong order.
async fn report(reranker: Weak<Reranker>, raise: Option<String>) {
    let Some(r) = reranker.upgrade() else { return };
    let _turn = r.reporting.lock().await;
    if r.down.load(Ordering::SeqCst) != raise.is_some() {
        return;
    }
    let subject = r.subject();
    let Some(message) = raise else {
        resolve_alert(&r.router, subject).await;
        return;
    };
    let alert = pi::Alert { kind: ALERT_KIND.into(), subject, message, ..Default::default() };
    let raised = r
        .router
        .placement()
        .call(|mut c| {
            let a = alert.clone();
            async move { c.raise_alert(a).await }
        })
        .await;
    if let Err(e) = raised {
        tracing::warn!("raising the {ALERT_KIND} alert: {}", e.message);
    }
}

async fn resolve_alert(router: &Router, subject: String) {
    let request = pi::ResolveAlertsRequest { kind: ALERT_KIND.into(), subject };
    let resolved = router
        .placement()
        .call(|mut c| {
            let r = request.clone();
            async move { c.resolve_alerts(r).await }
        })
        .await;
    if let Err(e) = resolved {
        tracing::warn!("resolving the {ALERT_KIND} alert: {}", e.message);
    }
}

/// The reranker's order, if it keeps the contract: indexes into the candidates, each
/// at most once.
fn checked(ranked: Vec<pb::RerankedCandidate>, candidates: usize) -> Result<Vec<pb::RerankedCandidate>, WireError> {
    let mut seen = vec![false; candidates];
    for r in &ranked {
        let i = r.index as usize;
        if i >= candidates || std::mem::replace(&mut seen[i], true) {
            return Err(WireError::new(
                ErrorCode::Internal,
                format!("the reranker answered candidate {i} twice or out of range (of {candidates})"),
                false,
            ));
        }
    }
    Ok(ranked)
}

/// The hits in the reranker's order, each with its rerank score and explanation.
pub fn apply(hits: Vec<pb::ScoredPoint>, ranked: Vec<pb::RerankedCandidate>) -> Vec<pb::ScoredPoint> {
    let mut slots: Vec<Option<pb::ScoredPoint>> = hits.into_iter().map(Some).collect();
    ranked
        .into_iter()
        .filter_map(|r| {
            let mut hit = slots.get_mut(r.index as usize)?.take()?;
            hit.rerank_score = Some(r.score);
            hit.explanation = r.explanation;
            Some(hit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(index: u32, score: f32) -> pb::RerankedCandidate {
        pb::RerankedCandidate { index, score, explanation: format!("#{index}") }
    }

    /// A client of a reranker nobody listens at (and of a placement driver likewise).
    fn unreachable(timeout: Duration) -> Arc<Reranker> {
        // A port just freed: connections to it are refused.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let placement = vectron_common::placement_client::PlacementClient::new(vec![dead.clone()]);
        let router = Arc::new(Router::new(placement, None));
        let config = RerankerConfig { address: dead, timeout };
        Arc::new(Reranker::new(Some(config), PeerChannels::default(), router, &Registry::new()))
    }

    fn plan() -> RerankPlan {
        RerankPlan { strategy: RerankStrategy::Mmr, query_text: None, params: serde_json::Map::new(), candidates: 4 }
    }

    #[test]
    fn the_reranker_order_is_applied_and_a_broken_one_refused() {
        let hits: Vec<pb::ScoredPoint> =
            (0..3).map(|i| pb::ScoredPoint { score: i as f32, ..Default::default() }).collect();
        let out = apply(hits, vec![ranked(2, 0.9), ranked(0, 0.5)]);
        assert_eq!(out.iter().map(|h| h.score).collect::<Vec<_>>(), vec![2.0, 0.0]);
        assert_eq!((out[0].rerank_score, out[0].explanation.as_str()), (Some(0.9), "#2"));
        assert!(checked(vec![ranked(0, 1.0), ranked(0, 1.0)], 3).is_err());
        assert!(checked(vec![ranked(3, 1.0)], 3).is_err());
        assert_eq!(checked(vec![ranked(1, 1.0)], 3).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_reranker_that_cannot_be_reached_is_skipped_and_marked_down() {
        let r = unreachable(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome = r.rerank("c", &plan(), Vec::new(), 1, deadline).await.unwrap();
        assert!(matches!(&outcome, Outcome::Skipped(reason) if reason == "the reranker is unavailable"), "{outcome:?}");
        assert!(r.down.load(Ordering::SeqCst));
        assert_eq!(r.metrics.up.get(), 0);
    }

    #[tokio::test]
    async fn a_search_that_used_up_its_own_deadline_raises_no_alert() {
        // Nothing left of the search's deadline: not even asked.
        let r = unreachable(Duration::from_secs(2));
        let outcome = r.rerank("c", &plan(), Vec::new(), 1, Instant::now()).await.unwrap();
        assert!(matches!(&outcome, Outcome::Skipped(reason) if reason.contains("left no time")), "{outcome:?}");
        assert!(!r.down.load(Ordering::SeqCst));
        // A reranker that takes connections and never answers: late within the 50 ms the
        // search had left, less than the reranker's own 2 s — no alert.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let config = RerankerConfig { address, timeout: Duration::from_secs(2) };
        let r = Arc::new(Reranker::new(Some(config), PeerChannels::default(), r.router.clone(), &Registry::new()));
        let deadline = Instant::now() + Duration::from_millis(50);
        let outcome = r.rerank("c", &plan(), Vec::new(), 1, deadline).await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Skipped(reason) if reason.contains("the search's deadline")),
            "{outcome:?}"
        );
        assert!(!r.down.load(Ordering::SeqCst), "no alert: the reranker still counts as up");
        assert_eq!(r.metrics.up.get(), 1);
    }
}
