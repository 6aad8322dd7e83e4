//! How a search's hits are re-ordered: the `rerank` a search or a collection asks for,
//! and [`Rerank::plan`], which settles the one that runs (the request's over the
//! collection's default, parameters key by key).

use serde_json::{Map, Value};

use crate::error::{Result, ValidationError};

/// Most candidates one rerank may take (and so the most hits a reranked search
/// answers): every strategy's cost grows with them, MMR's as candidates × hits.
pub const MAX_RERANK_CANDIDATES: usize = 1000;

/// Longest rerank query text, in characters.
pub const MAX_QUERY_TEXT_CHARS: usize = 8 * 1024;

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidArgument { reason: reason.into() }
}

/// The reranker's strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RerankStrategy {
    /// BM25, keyword coverage, phrase and title matches, recency, payload boosts.
    Rule,
    /// Maximal marginal relevance over the candidates' vectors.
    Mmr,
    /// An external cross-encoder endpoint's scores.
    CrossEncoder,
    /// The collection's model learned from its feedback.
    Feedback,
}

impl RerankStrategy {
    pub const ALL: [RerankStrategy; 4] =
        [RerankStrategy::Rule, RerankStrategy::Mmr, RerankStrategy::CrossEncoder, RerankStrategy::Feedback];

    pub fn name(self) -> &'static str {
        match self {
            RerankStrategy::Rule => "rule",
            RerankStrategy::Mmr => "mmr",
            RerankStrategy::CrossEncoder => "cross_encoder",
            RerankStrategy::Feedback => "feedback",
        }
    }

    pub fn from_name(name: &str) -> Option<RerankStrategy> {
        RerankStrategy::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the strategy reads the candidates' payloads.
    pub fn reads_payloads(self) -> bool {
        !matches!(self, RerankStrategy::Mmr)
    }

    /// Whether the strategy reads the candidates' vectors.
    pub fn reads_vectors(self) -> bool {
        matches!(self, RerankStrategy::Mmr)
    }
}

/// Which strategy a `rerank` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// None named: the collection's default strategy.
    Default,
    /// `"none"`: no rerank, whatever the collection's default.
    Off,
    Named(RerankStrategy),
}

impl Choice {
    pub fn from_name(name: &str) -> Result<Choice> {
        match name {
            "" => Ok(Choice::Default),
            "none" => Ok(Choice::Off),
            other => RerankStrategy::from_name(other).map(Choice::Named).ok_or_else(|| {
                let names: Vec<&str> = RerankStrategy::ALL.iter().map(|s| s.name()).collect();
                invalid(format!("unknown rerank strategy {other:?}; one of {}, or none", names.join(", ")))
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Choice::Default => "",
            Choice::Off => "none",
            Choice::Named(s) => s.name(),
        }
    }
}

/// A `rerank` as a search or a collection's default gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rerank {
    pub choice: Choice,
    pub query_text: Option<String>,
    /// The strategy's parameters (the reranker checks them).
    pub params: Map<String, Value>,
    /// Candidates to fetch; `None`: 4 × top_k.
    pub candidates: Option<usize>,
}

/// The rerank a search runs: one strategy, its merged parameters, how many candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankPlan {
    pub strategy: RerankStrategy,
    pub query_text: Option<String>,
    pub params: Map<String, Value>,
    pub candidates: usize,
}

impl Rerank {
    /// The rerank, if it keeps the rules that hold whatever the search.
    pub fn checked(self) -> Result<Rerank> {
        if let Some(t) = &self.query_text
            && t.chars().count() > MAX_QUERY_TEXT_CHARS
        {
            return Err(invalid(format!(
                "rerank query_text is {} characters; the limit is {MAX_QUERY_TEXT_CHARS}",
                t.chars().count()
            )));
        }
        if self.candidates.is_some_and(|c| c == 0 || c > MAX_RERANK_CANDIDATES) {
            return Err(invalid(format!("rerank candidates must be in 1..={MAX_RERANK_CANDIDATES}")));
        }
        Ok(self)
    }

    /// A collection's default: it must name a strategy.
    pub fn checked_default(self) -> Result<Rerank> {
        if !matches!(self.choice, Choice::Named(_)) {
            return Err(invalid(
                "a collection's default_rerank must name a strategy (rule, mmr, cross_encoder, feedback)",
            ));
        }
        self.checked()
    }

    /// The rerank a search of `top_k` hits runs, given its own `rerank` and the
    /// collection's default: the request's strategy (or the default's when it names
    /// none), the default's parameters overridden key by key by the request's when both
    /// are the same strategy, the request's query text and candidates over the
    /// default's. `None`: no rerank.
    pub fn plan(request: Option<&Rerank>, default: Option<&Rerank>, top_k: usize) -> Result<Option<RerankPlan>> {
        let plan = Rerank::plan_unbounded(request, default, top_k)?;
        if plan.is_some() && top_k > MAX_RERANK_CANDIDATES {
            return Err(invalid(format!("a reranked search answers at most {MAX_RERANK_CANDIDATES} hits (top_k)")));
        }
        Ok(plan)
    }

    fn plan_unbounded(request: Option<&Rerank>, default: Option<&Rerank>, top_k: usize) -> Result<Option<RerankPlan>> {
        let (strategy, base) = match (request.map(|r| r.choice), default) {
            (None, None) | (Some(Choice::Off), _) => return Ok(None),
            (None | Some(Choice::Default), Some(d)) => match d.choice {
                Choice::Named(s) => (s, Some(d)),
                _ => return Err(invalid("the collection's default_rerank names no strategy")),
            },
            (Some(Choice::Default), None) => {
                return Err(invalid("rerank names no strategy and the collection has no default_rerank"));
            }
            (Some(Choice::Named(s)), d) => (s, d.filter(|d| d.choice == Choice::Named(s))),
        };
        let mut params = base.map(|b| b.params.clone()).unwrap_or_default();
        if let Some(r) = request {
            params.extend(r.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let query_text = request.and_then(|r| r.query_text.clone()).or_else(|| base.and_then(|b| b.query_text.clone()));
        let candidates = request
            .and_then(|r| r.candidates)
            .or_else(|| base.and_then(|b| b.candidates))
            .unwrap_or_else(|| top_k.saturating_mul(4).min(MAX_RERANK_CANDIDATES))
            .max(top_k);
        Ok(Some(RerankPlan { strategy, query_text, params, candidates }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rerank(choice: Choice, params: Value, candidates: Option<usize>) -> Rerank {
        Rerank { choice, query_text: None, params: params.as_object().unwrap().clone(), candidates }
    }

    #[test]
    fn the_request_overrides_the_default_key_by_key_and_none_turns_it_off() {
        let default =
            rerank(Choice::Named(RerankStrategy::Rule), json!({"bm25_weight": 2, "text_fields": ["a"]}), None);
        // No rerank of its own: the default, 4 × top_k candidates.
        let p = Rerank::plan(None, Some(&default), 10).unwrap().unwrap();
        assert_eq!((p.strategy, p.candidates, p.params["bm25_weight"].clone()), (RerankStrategy::Rule, 40, json!(2)));
        // Its own params over the default's.
        let mine =
            Rerank { query_text: Some("q".into()), ..rerank(Choice::Default, json!({"bm25_weight": 0.5}), Some(7)) };
        let p = Rerank::plan(Some(&mine), Some(&default), 10).unwrap().unwrap();
        assert_eq!(p.params, json!({"bm25_weight": 0.5, "text_fields": ["a"]}).as_object().unwrap().clone());
        assert_eq!((p.query_text.as_deref(), p.candidates), (Some("q"), 10), "never fewer candidates than top_k");
        // Another strategy does not inherit the default's params.
        let mmr = rerank(Choice::Named(RerankStrategy::Mmr), json!({"lambda": 0.3}), None);
        let p = Rerank::plan(Some(&mmr), Some(&default), 5).unwrap().unwrap();
        assert_eq!((p.strategy, p.params.len()), (RerankStrategy::Mmr, 1));
        assert_eq!(Rerank::plan(Some(&rerank(Choice::Off, json!({}), None)), Some(&default), 5).unwrap(), None);
        assert_eq!(Rerank::plan(None, None, 5).unwrap(), None);
        assert!(Rerank::plan(Some(&rerank(Choice::Default, json!({}), None)), None, 5).is_err());
        // At most 1,000 candidates, so at most 1,000 reranked hits.
        assert_eq!(Rerank::plan(None, Some(&default), 900).unwrap().unwrap().candidates, 1000);
        assert!(Rerank::plan(None, Some(&default), 1001).is_err());
        assert!(Rerank::plan(None, None, 5000).unwrap().is_none(), "no rerank: no such limit");
    }

    #[test]
    fn strategy_names_round_trip_and_unknown_ones_are_refused() {
        for s in RerankStrategy::ALL {
            assert_eq!(Choice::from_name(s.name()).unwrap(), Choice::Named(s));
        }
        assert_eq!(Choice::from_name("none").unwrap(), Choice::Off);
        let e = Choice::from_name("magic").unwrap_err().to_string();
        assert!(e.contains("unknown rerank strategy \"magic\""), "{e}");
        assert!(rerank(Choice::Off, json!({}), Some(0)).checked().is_err());
        assert!(rerank(Choice::Default, json!({}), None).checked_default().is_err());
        let long =
            Rerank { query_text: Some("x".repeat(MAX_QUERY_TEXT_CHARS + 1)), ..rerank(Choice::Off, json!({}), None) };
        assert!(long.checked().is_err());
    }
}
