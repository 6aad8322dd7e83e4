//! The `feedback` strategy: a per-collection linear model learned from kept feedback.
//!
//! Features of a (query, point) pair, the same when training and when reranking
//! ([`features`]):
//! - `position`: `1 / log2(rank + 2)` — the vector order's own opinion (at training, the
//!   position the client saw the hit at; when reranking, the candidate's vector rank);
//! - `bm25`: BM25 of the query text over the point's text fields, normalised by the
//!   best document of the set (the query's judged hits; the candidates);
//! - `coverage`: the share of distinct query terms the point's text contains;
//! - `prior`: the point's smoothed mean relevance over its feedback,
//!   `Σ relevance / (count + 2)` (at training, leaving the example's own record out).
//!
//! Training ([`train`]) is pairwise logistic regression (RankNet's loss on a linear
//! scorer): for every two judged hits of one query with different relevance,
//! `P(a above b) = σ(w · (x_a − x_b))`, fitted by gradient descent with L2
//! regularisation. Queries are split by a hash of their id: one in five is held out,
//! and the model is scored there by NDCG@10 of its order against the order the client
//! saw, over the judged hits (grades `(relevance + 1) / 2`, gains `2^grade − 1`). The
//! model that was scored is the one served. Its version names the data it learned from.

use serde::{Deserialize, Serialize};

use crate::strategy::{Candidate, RerankError, Reranked, Strategy, best_first, explain, text_of, vector_ranks};
use crate::text::{Bm25, Tokenizer};

/// Number of features.
pub const FEATURES: usize = 4;
/// The features' names, in order (explanations, statistics).
pub const FEATURE_NAMES: [&str; FEATURES] = ["position", "bm25", "coverage", "prior"];
/// Smoothing of a point's prior: as if it had this many more judgements of 0.
pub const PRIOR_SMOOTHING: f32 = 2.0;
/// The model with no feedback to learn from: the vector order.
pub const VECTOR_ORDER: [f32; FEATURES] = [1.0, 0.0, 0.0, 0.0];
/// Pairs one training fits at most (a spread sample of them past it).
pub const MAX_PAIRS: usize = 200_000;
/// Rank cut-off of the offline score.
pub const NDCG_AT: usize = 10;

/// A point's prior from the sum and count of its judgements.
pub fn prior(relevance_sum: f32, count: u32) -> f32 {
    relevance_sum / (count as f32 + PRIOR_SMOOTHING)
}

/// The feature vector of one pair.
pub fn features(rank: usize, bm25: f32, coverage: f32, prior: f32) -> [f32; FEATURES] {
    [1.0 / ((rank + 2) as f32).log2(), bm25, coverage, prior]
}

/// `(bm25 normalised by the set's best, coverage)` of each document for `query_text`.
pub fn text_features(query_text: Option<&str>, documents: &[String]) -> Vec<(f32, f32)> {
    let mut tokenizer = Tokenizer::default();
    let query = tokenizer.ids(query_text.unwrap_or(""));
    let distinct: std::collections::BTreeSet<&u32> = query.iter().collect();
    let docs: Vec<Vec<u32>> = documents.iter().map(|d| tokenizer.ids(d)).collect();
    let bm25 = Bm25::new(&docs);
    let scores: Vec<f32> = (0..docs.len()).map(|i| bm25.score(i, &query)).collect();
    let best = scores.iter().copied().fold(0.0f32, f32::max);
    docs.iter()
        .zip(&scores)
        .map(|(d, s)| {
            let words: std::collections::HashSet<&u32> = d.iter().collect();
            let coverage = if distinct.is_empty() {
                0.0
            } else {
                distinct.iter().filter(|t| words.contains(*t)).count() as f32 / distinct.len() as f32
            };
            (if best > 0.0 { s / best } else { 0.0 }, coverage)
        })
        .collect()
}

/// A payload's text over `fields`, joined: what the strategy reads of a candidate and
/// training of a judged point.
pub fn text_of_fields(payload: Option<&serde_json::Map<String, serde_json::Value>>, fields: &[String]) -> String {
    fields.iter().map(|f| text_of(payload, f)).collect::<Vec<_>>().join(" ")
}

/// One judged hit of one query, as training sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The query it belongs to (judged hits are compared within a query only).
    pub query_id: String,
    pub relevance: f32,
    /// The position the client saw it at (0-based).
    pub position: u32,
    pub features: [f32; FEATURES],
}

/// A trained model and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Names the data it learned from: `<records>-<hash of the records>`.
    pub version: String,
    pub weights: [f32; FEATURES],
    /// Examples and queries trained on, and queries held out.
    pub examples: usize,
    pub train_queries: usize,
    pub held_out_queries: usize,
    /// NDCG@10 on the held-out queries: the order the client saw, and the model's.
    pub ndcg_vector: f64,
    pub ndcg_model: f64,
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether `query_id` is held out for scoring (one in five, by hash).
pub fn held_out(query_id: &str) -> bool {
    fnv(query_id.as_bytes(), 0xcbf2_9ce4_8422_2325).is_multiple_of(5)
}

/// NDCG@k of `ranked` (relevances in the order ranked) against the best order of the
/// same relevances; 1 when nothing is relevant.
pub fn ndcg(ranked: &[f32], k: usize) -> f64 {
    let gain = |r: f32| 2f64.powf(f64::from((r + 1.0) / 2.0)) - 1.0;
    let dcg = |rs: &[f32]| rs.iter().take(k).enumerate().map(|(i, &r)| gain(r) / ((i + 2) as f64).log2()).sum::<f64>();
    let mut ideal = ranked.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    if best <= 0.0 { 1.0 } else { dcg(ranked) / best }
}

fn dot(w: &[f32; FEATURES], x: &[f32; FEATURES]) -> f32 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// Groups examples by query, in a stable order.
fn by_query(examples: &[Example]) -> Vec<Vec<&Example>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&Example>> = std::collections::BTreeMap::new();
    for e in examples {
        groups.entry(&e.query_id).or_default().push(e);
    }
    groups.into_values().collect()
}

/// Mean NDCG@10 over `queries` of the order `score` gives (ties: the position seen).
fn mean_ndcg(queries: &[Vec<&Example>], score: impl Fn(&Example) -> f32) -> f64 {
    if queries.is_empty() {
        return 0.0;
    }
    let total: f64 = queries
        .iter()
        .map(|q| {
            let mut order: Vec<&&Example> = q.iter().collect();
            order.sort_by(|a, b| score(b).total_cmp(&score(a)).then(a.position.cmp(&b.position)));
            ndcg(&order.iter().map(|e| e.relevance).collect::<Vec<_>>(), NDCG_AT)
        })
        .sum();
    total / queries.len() as f64
}

/// Fits the pairwise model on the training queries and scores it on the held-out ones.
pub fn train(examples: &[Example]) -> Model {
    let mut version = fnv(&(examples.len() as u64).to_le_bytes(), 0xcbf2_9ce4_8422_2325);
    for e in examples {
        version = fnv(e.query_id.as_bytes(), version);
        version = fnv(&e.relevance.to_le_bytes(), version);
        version = fnv(&e.position.to_le_bytes(), version);
    }
    let (held, trained): (Vec<Vec<&Example>>, Vec<Vec<&Example>>) =
        by_query(examples).into_iter().partition(|q| held_out(&q[0].query_id));
    // Pairs: (better − worse) feature differences.
    let pairs: Vec<[f32; FEATURES]> = trained
        .iter()
        .flat_map(|q| {
            q.iter().flat_map(move |a| {
                q.iter().filter(move |b| a.relevance > b.relevance + 1e-6).map(move |b| {
                    let mut d = [0.0; FEATURES];
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = a.features[i] - b.features[i];
                    }
                    d
                })
            })
        })
        .collect();
    // At most MAX_PAIRS of them, evenly spread.
    let stride = pairs.len().div_ceil(MAX_PAIRS).max(1);
    let pairs: Vec<[f32; FEATURES]> = pairs.into_iter().step_by(stride).collect();
    let mut weights = VECTOR_ORDER;
    if !pairs.is_empty() {
        const STEPS: usize = 300;
        const RATE: f32 = 1.0;
        const L2: f32 = 1e-3;
        for _ in 0..STEPS {
            let mut grad = [0.0f32; FEATURES];
            for d in &pairs {
                // d(−log σ(w·d))/dw = −(1 − σ(w·d)) · d
                let s = 1.0 / (1.0 + (-dot(&weights, d)).exp());
                for (g, x) in grad.iter_mut().zip(d) {
                    *g -= (1.0 - s) * x;
                }
            }
            for (w, g) in weights.iter_mut().zip(grad) {
                *w -= RATE * (g / pairs.len() as f32 + L2 * *w);
            }
        }
    }
    let ndcg_vector = mean_ndcg(&held, |e| -(e.position as f32));
    let ndcg_model = mean_ndcg(&held, |e| dot(&weights, &e.features));
    Model {
        version: format!("{}-{version:016x}", examples.len()),
        weights,
        examples: trained.iter().map(Vec::len).sum(),
        train_queries: trained.len(),
        held_out_queries: held.len(),
        ndcg_vector,
        ndcg_model,
    }
}

/// The `feedback` strategy's parameters: the model (the gateway attaches it) and the
/// text fields it reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    #[serde(default)]
    pub text_fields: Vec<String>,
    pub weights: [f32; FEATURES],
    #[serde(default)]
    pub model_version: String,
}

impl Strategy for Feedback {
    fn rerank(
        &self,
        query_text: Option<&str>,
        candidates: &[Candidate],
        top_k: usize,
    ) -> Result<Vec<Reranked>, RerankError> {
        if self.weights.iter().any(|w| !w.is_finite()) {
            return Err(RerankError::InvalidParams("feedback weights must be finite".into()));
        }
        let documents: Vec<String> =
            candidates.iter().map(|c| text_of_fields(c.payload.as_ref(), &self.text_fields)).collect();
        let text = text_features(query_text, &documents);
        let ranks = vector_ranks(candidates);
        let out: Vec<Reranked> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let x = features(ranks[i], text[i].0, text[i].1, c.prior);
                let parts: Vec<(&str, f32)> =
                    FEATURE_NAMES.iter().zip(self.weights.iter().zip(&x)).map(|(n, (w, v))| (*n, w * v)).collect();
                let score = parts.iter().map(|(_, v)| v).sum();
                let explanation = format!("feedback model {}: {}", self.model_version, explain(&parts));
                Reranked { index: i, score, explanation }
            })
            .collect();
        Ok(best_first(out, top_k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn ndcg_is_one_for_the_best_order_and_less_otherwise() {
        assert!((ndcg(&[1.0, 0.5, -1.0], 10) - 1.0).abs() < 1e-12);
        assert!(ndcg(&[-1.0, 0.5, 1.0], 10) < 0.9);
        assert_eq!(ndcg(&[-1.0, -1.0], 10), 1.0, "nothing relevant: any order is best");
        // By hand: grades 1, 0 → gains 1, 0; reversed: 1 / log2(3).
        assert!((ndcg(&[-1.0, 1.0], 10) - 1.0 / 3f64.log2()).abs() < 1e-12);
    }

    /// A feedback set from a known relevance function: a point is relevant to a query
    /// when its text matches the query (keyword share) and when it is good (a hidden
    /// per-point quality); the vector order the client saw is only loosely related.
    pub(crate) fn generated(queries: usize, seed: u64) -> Vec<Example> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let quality: Vec<f32> = (0..500).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        // The points' running feedback, for priors that leave the example out.
        let mut examples = Vec::new();
        let mut sums = vec![(0.0f32, 0u32); 500];
        let mut drafts = Vec::new();
        for q in 0..queries {
            let hits: Vec<usize> = (0..10).map(|_| rng.random_range(0..500)).collect();
            for (position, &p) in hits.iter().enumerate() {
                let coverage = rng.random_range(0.0f32..1.0);
                let bm25 = (coverage + rng.random_range(-0.2f32..0.2)).clamp(0.0, 1.0);
                let truth = 0.6 * coverage + 0.4 * quality[p] + rng.random_range(-0.1f32..0.1);
                let relevance = (2.0 * truth - 0.6).clamp(-1.0, 1.0);
                sums[p].0 += relevance;
                sums[p].1 += 1;
                drafts.push((format!("q{q}"), p, position as u32, bm25, coverage, relevance));
            }
        }
        for (query_id, p, position, bm25, coverage, relevance) in drafts {
            let (sum, count) = sums[p];
            let prior = prior(sum - relevance, count - 1);
            examples.push(Example {
                query_id,
                relevance,
                position,
                features: features(position as usize, bm25, coverage, prior),
            });
        }
        examples
    }

    #[test]
    fn the_model_learns_a_known_relevance_function_better_than_the_vector_order() {
        let model = train(&generated(600, 5));
        println!("{model:?}");
        assert!(model.held_out_queries > 60 && model.train_queries > 400, "{model:?}");
        assert!(model.ndcg_model > model.ndcg_vector + 0.1, "{model:?}");
        // What it learned: text and quality matter, the seen position hardly.
        assert!(model.weights[2] > model.weights[0].abs() && model.weights[3] > 0.0, "{model:?}");
        assert_eq!(train(&generated(600, 5)).version, model.version, "the same data, the same version");
        assert_ne!(train(&generated(601, 5)).version, model.version);
        // Nothing to compare: the vector order.
        assert_eq!(train(&[]).weights, VECTOR_ORDER);
    }

    #[test]
    fn the_strategy_scores_candidates_with_the_model_and_explains_it() {
        let payload = |t: &str| serde_json::json!({"body": t}).as_object().cloned();
        let candidates = vec![
            Candidate { score: 0.9, vector: None, payload: payload("cooking"), prior: 0.0 },
            Candidate { score: 0.8, vector: None, payload: payload("rust database"), prior: 0.5 },
        ];
        let model =
            Feedback { text_fields: vec!["body".into()], weights: [1.0, 1.0, 1.0, 1.0], model_version: "v".into() };
        let out = model.rerank(Some("rust database"), &candidates, 2).unwrap();
        assert_eq!(out[0].index, 1, "{out:?}");
        // position 1/log2(3) + bm25 1 + coverage 1 + prior 0.5
        assert!((out[0].score - (1.0 / 3f32.log2() + 2.5)).abs() < 1e-5, "{out:?}");
        assert!(out[0].explanation.starts_with("feedback model v: ") && out[0].explanation.contains("prior +0.500"));
        let vector = Feedback { weights: VECTOR_ORDER, ..model };
        assert_eq!(vector.rerank(Some("rust"), &candidates, 2).unwrap()[0].index, 0);
    }
}
