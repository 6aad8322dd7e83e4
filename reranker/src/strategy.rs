//! The strategy trait and the strategies that need nothing but the candidates: `mmr`
//! (diversity over their vectors) and `rule` (a weighted mix of text relevance, keyword
//! coverage, phrase and title matches, recency and payload boosts). Each answers, per
//! candidate, a new score and a short explanation of what moved it.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::mmr;
use crate::text::{Bm25, Tokenizer};

/// A search candidate as the reranker sees it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    /// The vector search's score, higher is better (the gateway turns distances around).
    pub score: f32,
    pub vector: Option<Vec<f32>>,
    pub payload: Option<Map<String, Value>>,
    /// The point's prior from its feedback (the `feedback` strategy; 0 when none).
    pub prior: f32,
}

/// One candidate's new place: its index in the request, its score, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reranked {
    pub index: usize,
    pub score: f32,
    pub explanation: String,
}

/// Why a rerank could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RerankError {
    #[error("invalid rerank parameters: {0}")]
    InvalidParams(String),
    #[error("candidate {index} has no vector (the mmr strategy needs every candidate's)")]
    MissingVector { index: usize },
}

/// Re-orders candidates.
pub trait Strategy {
    /// The candidates in their new order (best first), at most `top_k` of them.
    fn rerank(
        &self,
        query_text: Option<&str>,
        candidates: &[Candidate],
        top_k: usize,
    ) -> Result<Vec<Reranked>, RerankError>;
}

/// Maximal marginal relevance with `lambda` (1: the vector order).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mmr {
    #[serde(default = "default_lambda")]
    pub lambda: f32,
}

fn default_lambda() -> f32 {
    0.5
}

impl Mmr {
    pub fn new(lambda: f32) -> Result<Mmr, RerankError> {
        if !(0.0..=1.0).contains(&lambda) {
            return Err(RerankError::InvalidParams(format!("lambda must be in [0, 1], not {lambda}")));
        }
        Ok(Mmr { lambda })
    }
}

impl Strategy for Mmr {
    fn rerank(&self, _: Option<&str>, candidates: &[Candidate], top_k: usize) -> Result<Vec<Reranked>, RerankError> {
        // Deserialised params bypass `new`: check here too.
        Mmr::new(self.lambda)?;
        let vectors = candidates
            .iter()
            .enumerate()
            .map(|(index, c)| c.vector.as_deref().ok_or(RerankError::MissingVector { index }))
            .collect::<Result<Vec<&[f32]>, _>>()?;
        let relevance: Vec<f32> = candidates.iter().map(|c| c.score).collect();
        let ranks = vector_ranks(candidates);
        Ok(mmr::select(&relevance, &vectors, self.lambda, top_k)
            .into_iter()
            .enumerate()
            .map(|(rank, (index, marginal))| Reranked {
                index,
                score: marginal,
                explanation: format!(
                    "mmr λ={}: vector rank {} → {}, marginal {marginal:.3}",
                    self.lambda,
                    ranks[index] + 1,
                    rank + 1
                ),
            })
            .collect())
    }
}

/// The parts of a score that moved it, largest first: `"bm25 +0.812, vector +0.640"`.
pub(crate) fn explain<K: std::fmt::Display>(parts: &[(K, f32)]) -> String {
    let mut shown: Vec<&(K, f32)> = parts.iter().filter(|(_, v)| *v != 0.0).collect();
    shown.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    shown.iter().map(|(k, v)| format!("{k} {v:+.3}")).collect::<Vec<_>>().join(", ")
}

/// The best `top_k` of `ranked`, by score (ties: the request's order).
pub(crate) fn best_first(mut ranked: Vec<Reranked>, top_k: usize) -> Vec<Reranked> {
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    ranked.truncate(top_k);
    ranked
}

/// Where each candidate stands by vector score (0: best; ties share the better rank),
/// in one sort.
pub(crate) fn vector_ranks(candidates: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| candidates[b].score.total_cmp(&candidates[a].score));
    let mut ranks = vec![0; candidates.len()];
    for (position, &i) in order.iter().enumerate() {
        let tied = position > 0 && candidates[order[position - 1]].score == candidates[i].score;
        ranks[i] = if tied { ranks[order[position - 1]] } else { position };
    }
    ranks
}

/// A payload boost: candidates whose `key` equals `match` get `boost` (negative: a
/// penalty).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    pub key: String,
    #[serde(rename = "match")]
    pub value: Value,
    pub boost: f32,
}

/// The `rule` strategy's weights and fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// Payload fields holding text, searched by BM25 and for keywords.
    pub text_fields: Vec<String>,
    /// A field whose match is worth `title_boost` more.
    pub title_field: Option<String>,
    /// Weight of the vector score (normalised over the candidates to [0, 1]).
    pub vector_weight: f32,
    /// Weight of BM25 (normalised by the best candidate's to [0, 1]).
    pub bm25_weight: f32,
    /// Weight of keyword coverage: the share of distinct query terms present.
    pub coverage_weight: f32,
    /// Added when the whole query appears as a phrase in a text field.
    pub phrase_boost: f32,
    /// Added when every query term appears in the title field.
    pub title_boost: f32,
    /// A numeric field of Unix seconds; newer candidates score up to `recency_weight`.
    pub timestamp_field: Option<String>,
    pub recency_weight: f32,
    /// Half-life of the recency decay, in seconds.
    pub half_life_secs: f64,
    /// The time recency is measured from, in Unix seconds (the caller's clock).
    pub now_secs: f64,
    pub boosts: Vec<Boost>,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            text_fields: Vec::new(),
            title_field: None,
            vector_weight: 1.0,
            bm25_weight: 1.0,
            coverage_weight: 0.5,
            phrase_boost: 0.3,
            title_boost: 0.2,
            timestamp_field: None,
            recency_weight: 0.0,
            half_life_secs: 30.0 * 86_400.0,
            now_secs: 0.0,
            boosts: Vec::new(),
        }
    }
}

/// The text of a payload field: a string, or the strings of a list joined by spaces
/// (anything else: none).
pub fn text_of(payload: Option<&Map<String, Value>>, field: &str) -> String {
    match payload.and_then(|p| p.get(field)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Whether `phrase` appears as a contiguous run of `words`.
fn contains_phrase<T: PartialEq>(words: &[T], phrase: &[T]) -> bool {
    !phrase.is_empty() && words.windows(phrase.len()).any(|w| w == phrase)
}

impl Strategy for Rule {
    fn rerank(
        &self,
        query_text: Option<&str>,
        candidates: &[Candidate],
        top_k: usize,
    ) -> Result<Vec<Reranked>, RerankError> {
        if self.half_life_secs.is_nan() || self.half_life_secs <= 0.0 {
            return Err(RerankError::InvalidParams("half_life_secs must be positive".into()));
        }
        let weights = [
            self.vector_weight,
            self.bm25_weight,
            self.coverage_weight,
            self.phrase_boost,
            self.title_boost,
            self.recency_weight,
        ];
        if weights.iter().chain(self.boosts.iter().map(|b| &b.boost)).any(|w| !w.is_finite())
            || !self.now_secs.is_finite()
        {
            return Err(RerankError::InvalidParams("weights, boosts and now_secs must be finite numbers".into()));
        }
        // Each text field of each candidate tokenized once, into ids.
        let mut tokenizer = Tokenizer::default();
        let query = tokenizer.ids(query_text.unwrap_or(""));
        let distinct: std::collections::BTreeSet<&u32> = query.iter().collect();
        let fields: Vec<Vec<Vec<u32>>> = candidates
            .iter()
            .map(|c| self.text_fields.iter().map(|f| tokenizer.ids(&text_of(c.payload.as_ref(), f))).collect())
            .collect();
        let documents: Vec<Vec<u32>> = fields.iter().map(|f| f.concat()).collect();
        let words: Vec<std::collections::HashSet<u32>> =
            documents.iter().map(|d| d.iter().copied().collect()).collect();
        let title_index = self.title_field.as_ref().and_then(|t| self.text_fields.iter().position(|f| f == t));
        // A title field that is not a text field: tokenized on its own.
        let titles: Vec<Vec<u32>> = match (&self.title_field, title_index) {
            (Some(title), None) => {
                candidates.iter().map(|c| tokenizer.ids(&text_of(c.payload.as_ref(), title))).collect()
            }
            _ => Vec::new(),
        };
        let bm25 = Bm25::new(&documents);
        let text_scores: Vec<f32> = (0..candidates.len()).map(|i| bm25.score(i, &query)).collect();
        let best_text = text_scores.iter().copied().fold(0.0f32, f32::max);
        let (lo, hi) = candidates
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| (lo.min(c.score), hi.max(c.score)));
        let out: Vec<Reranked> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut parts: Vec<(String, f32)> = Vec::new();
                let vector = if hi > lo { (c.score - lo) / (hi - lo) } else { 1.0 };
                parts.push(("vector".into(), self.vector_weight * vector));
                if best_text > 0.0 {
                    parts.push(("bm25".into(), self.bm25_weight * text_scores[i] / best_text));
                }
                if !distinct.is_empty() {
                    let present = distinct.iter().filter(|t| words[i].contains(**t)).count();
                    let coverage = present as f32 / distinct.len() as f32;
                    parts.push((format!("coverage {present}/{}", distinct.len()), self.coverage_weight * coverage));
                }
                if fields[i].iter().any(|words| contains_phrase(words, &query)) {
                    parts.push(("phrase".into(), self.phrase_boost));
                }
                if self.title_field.is_some() {
                    let words: &[u32] = match title_index {
                        Some(t) => &fields[i][t],
                        None => &titles[i],
                    };
                    if !distinct.is_empty() && distinct.iter().all(|t| words.contains(t)) {
                        parts.push(("title".into(), self.title_boost));
                    }
                }
                if let Some(field) = &self.timestamp_field
                    && self.recency_weight != 0.0
                    && let Some(t) = c.payload.as_ref().and_then(|p| p.get(field)).and_then(Value::as_f64)
                {
                    let age = (self.now_secs - t).max(0.0);
                    let decay = 0.5f64.powf(age / self.half_life_secs) as f32;
                    parts.push(("recency".into(), self.recency_weight * decay));
                }
                for b in &self.boosts {
                    if c.payload.as_ref().and_then(|p| p.get(&b.key)) == Some(&b.value) {
                        parts.push((format!("{}={}", b.key, b.value), b.boost));
                    }
                }
                let score: f32 = parts.iter().map(|(_, v)| v).sum();
                Reranked { index: i, score, explanation: explain(&parts) }
            })
            .collect();
        Ok(best_first(out, top_k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate(score: f32, payload: Value) -> Candidate {
        Candidate { score, vector: None, payload: payload.as_object().cloned(), prior: 0.0 }
    }

    #[test]
    fn rule_prefers_text_matches_phrases_titles_recent_and_boosted_candidates() {
        let candidates = vec![
            candidate(0.90, json!({"title": "cooking pasta", "body": "a recipe", "t": 0, "tier": "free"})),
            candidate(0.80, json!({"title": "vector database", "body": "a fast vector database in rust", "t": 900})),
            candidate(0.85, json!({"title": "databases", "body": "vector search", "t": 1000, "tier": "gold"})),
        ];
        let rule = Rule {
            text_fields: vec!["title".into(), "body".into()],
            title_field: Some("title".into()),
            timestamp_field: Some("t".into()),
            recency_weight: 0.1,
            half_life_secs: 100.0,
            now_secs: 1000.0,
            boosts: vec![Boost { key: "tier".into(), value: json!("gold"), boost: 0.05 }],
            ..Rule::default()
        };
        let out = rule.rerank(Some("Vector database"), &candidates, 3).unwrap();
        assert_eq!(out.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 2, 0], "{out:#?}");
        assert!(
            out[0].explanation.contains("phrase") && out[0].explanation.contains("title"),
            "{}",
            out[0].explanation
        );
        assert!(out[1].explanation.contains("tier=\"gold\""), "{}", out[1].explanation);
        // Without text, the vector order stands.
        let plain = Rule::default().rerank(None, &candidates, 2).unwrap();
        assert_eq!(plain.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn rule_scores_are_the_weighted_sum_it_explains() {
        let candidates = vec![candidate(1.0, json!({"body": "alpha beta"})), candidate(0.0, json!({"body": "gamma"}))];
        let rule = Rule { text_fields: vec!["body".into()], phrase_boost: 0.0, ..Rule::default() };
        let out = rule.rerank(Some("alpha"), &candidates, 2).unwrap();
        // Candidate 0: vector 1.0 + bm25 1.0 (the best) + coverage 0.5 × 1/1.
        assert!((out[0].score - 2.5).abs() < 1e-6, "{out:?}");
        assert!((out[1].score - 0.0).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn mmr_needs_vectors_and_a_lambda_in_range() {
        assert!(Mmr::new(1.5).is_err());
        let deserialised: Mmr = serde_json::from_value(json!({"lambda": 1.5})).unwrap();
        assert!(matches!(deserialised.rerank(None, &[], 1), Err(RerankError::InvalidParams(_))));
        let no_vector = [Candidate { score: 1.0, ..Default::default() }];
        assert_eq!(Mmr::new(0.5).unwrap().rerank(None, &no_vector, 1), Err(RerankError::MissingVector { index: 0 }));
        let candidates: Vec<Candidate> = [(0.9, [1.0, 0.0]), (0.89, [0.99, 0.01]), (0.5, [0.0, 1.0])]
            .into_iter()
            .map(|(score, v)| Candidate { score, vector: Some(v.to_vec()), ..Default::default() })
            .collect();
        let out = Mmr::new(0.5).unwrap().rerank(None, &candidates, 3).unwrap();
        assert_eq!(out.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 2, 1]);
        assert!(out[1].explanation.contains("vector rank 3 → 2"), "{}", out[1].explanation);
    }
}
