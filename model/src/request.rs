//! The data operations' requests as validated model types: what each edge (HTTP JSON,
//! gRPC proto, a worker receiving a shard call) turns a request into, once, and what
//! the gateway's Api and the engine act on.
//!
//! Invariants of a value built by `checked()` or a `TryFrom` of the proto
//! (`crate::convert`): no "0 means the default" values (absent is `None`), no raw proto
//! enums, `top_k`/`ef`/limits in range, filters parsed and validated, id lists within
//! [`MAX_IDS_PER_REQUEST`] and their ids valid. What depends on the collection — a
//! vector's dimension, finite values and (cosine) direction, an upsert's batch size and
//! payload limits — is checked where the collection is known
//! ([`crate::vector::check_vector`], [`crate::vector::check_point`]).

use std::time::Duration;

use crate::error::{Result, ValidationError};
use crate::filter::Filter;
use crate::rerank::Rerank;
use crate::types::{MAX_IDS_PER_REQUEST, Point, PointId};

/// Largest `top_k` / scroll page a shard serves.
pub const MAX_TOP_K: usize = 10_000;
/// Largest search breadth a query may ask for.
pub const MAX_EF: usize = 65_536;
/// A scroll page when the request names none.
pub const DEFAULT_SCROLL_LIMIT: usize = 100;

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidArgument { reason: reason.into() }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// The leader confirms its leadership with a quorum first (read index).
    Linearizable,
    /// Served by the shard's leader while its lease holds.
    #[default]
    Leader,
    /// Served by whichever replica receives it (may be stale).
    Any,
}

/// What one search asks of every shard of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub vector: Vec<f32>,
    pub top_k: usize,
    /// Search breadth; `None`: the shard's default (`max(top_k, 64)`).
    pub ef: Option<usize>,
    pub filter: Option<Filter>,
    pub score_threshold: Option<f32>,
    pub with_payload: bool,
    pub with_vector: bool,
}

impl SearchQuery {
    /// The `top_k` nearest to `vector`, nothing else asked.
    pub fn new(vector: Vec<f32>, top_k: usize) -> SearchQuery {
        SearchQuery {
            vector,
            top_k,
            ef: None,
            filter: None,
            score_threshold: None,
            with_payload: false,
            with_vector: false,
        }
    }

    /// The query, if it keeps the rules that do not depend on the collection.
    pub fn checked(self) -> Result<SearchQuery> {
        self.check()?;
        Ok(self)
    }

    /// Checks the rules that do not depend on the collection (the vector is checked
    /// against the collection: [`crate::vector::check_vector`]).
    pub fn check(&self) -> Result<()> {
        if self.top_k == 0 || self.top_k > MAX_TOP_K {
            return Err(invalid(format!("top_k must be in 1..={MAX_TOP_K}")));
        }
        if self.ef.is_some_and(|ef| ef == 0 || ef > MAX_EF) {
            return Err(invalid(format!("ef must be in 1..={MAX_EF}")));
        }
        if self.score_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(invalid("score_threshold must be a finite number"));
        }
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(())
    }
}

/// A search of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub collection: String,
    pub query: SearchQuery,
    pub consistency: Consistency,
    /// `None`: the gateway's read timeout.
    pub timeout: Option<Duration>,
    /// `None`: the collection's default rerank, if any.
    pub rerank: Option<Rerank>,
}

/// Points by id.
#[derive(Debug, Clone, PartialEq)]
pub struct GetRequest {
    pub collection: String,
    pub ids: Vec<PointId>,
    pub with_payload: bool,
    pub with_vector: bool,
    pub consistency: Consistency,
}

impl GetRequest {
    pub fn checked(self) -> Result<GetRequest> {
        check_ids(&self.ids, false)?;
        Ok(self)
    }
}

/// Which points a delete removes.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// A delete.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteRequest {
    pub collection: String,
    pub selector: Selector,
    /// Answer once committed and applied (else once the shard leaders accepted it).
    pub wait: bool,
}

impl DeleteRequest {
    pub fn checked(self) -> Result<DeleteRequest> {
        match &self.selector {
            Selector::Ids(ids) => check_ids(ids, true)?,
            Selector::Filter(f) => f.validate()?,
        }
        Ok(self)
    }
}

/// A page of points in id order, within each shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrollRequest {
    pub collection: String,
    pub filter: Option<Filter>,
    pub limit: usize,
    /// Where the previous page ended (empty: the start), as the gateway issued it.
    pub cursor: Vec<u8>,
    pub with_payload: bool,
    pub with_vector: bool,
    pub consistency: Consistency,
}

impl ScrollRequest {
    pub fn checked(self) -> Result<ScrollRequest> {
        if self.limit == 0 || self.limit > MAX_TOP_K {
            return Err(invalid(format!("scroll limit must be in 1..={MAX_TOP_K}")));
        }
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(self)
    }
}

/// How many points (match a filter).
#[derive(Debug, Clone, PartialEq)]
pub struct CountRequest {
    pub collection: String,
    pub filter: Option<Filter>,
    pub consistency: Consistency,
}

impl CountRequest {
    pub fn checked(self) -> Result<CountRequest> {
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(self)
    }
}

/// An upsert; each point is checked against the collection where it is known.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertRequest {
    pub collection: String,
    pub points: Vec<Point>,
    /// Answer once committed and applied (else once the shard leaders accepted it).
    pub wait: bool,
}

fn check_ids(ids: &[PointId], non_empty: bool) -> Result<()> {
    if non_empty && ids.is_empty() {
        return Err(invalid("delete needs at least one id"));
    }
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(invalid(format!("{} ids in one request; the limit is {MAX_IDS_PER_REQUEST}", ids.len())));
    }
    ids.iter().try_for_each(PointId::validate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_refused_for_each_broken_rule() {
        let ok = SearchQuery::new(vec![1.0, 0.0], 3);
        assert!(ok.clone().checked().is_ok());
        let broken = [
            SearchQuery { top_k: 0, ..ok.clone() },
            SearchQuery { top_k: MAX_TOP_K + 1, ..ok.clone() },
            SearchQuery { ef: Some(0), ..ok.clone() },
            SearchQuery { ef: Some(MAX_EF + 1), ..ok.clone() },
            SearchQuery { score_threshold: Some(f32::INFINITY), ..ok.clone() },
        ];
        for q in broken {
            assert!(q.clone().checked().is_err(), "{q:?}");
        }
        assert!(SearchQuery { ef: Some(MAX_EF), top_k: MAX_TOP_K, ..ok }.checked().is_ok());
    }

    #[test]
    fn id_lists_and_limits() {
        let ids: Vec<PointId> = (0..=MAX_IDS_PER_REQUEST as u64).map(PointId::Num).collect();
        let get = |ids: Vec<PointId>| GetRequest {
            collection: "c".into(),
            ids,
            with_payload: true,
            with_vector: false,
            consistency: Consistency::Leader,
        };
        assert!(get(ids[..MAX_IDS_PER_REQUEST].to_vec()).checked().is_ok());
        assert!(get(ids.clone()).checked().is_err());
        assert!(get(vec![]).checked().is_ok(), "getting nothing is an empty answer");
        let delete = |ids| DeleteRequest { collection: "c".into(), selector: Selector::Ids(ids), wait: true };
        assert!(delete(vec![]).checked().is_err(), "deleting nothing is a mistake");
        assert!(delete(vec![PointId::Str(String::new())]).checked().is_err());
        let scroll = |limit| ScrollRequest {
            collection: "c".into(),
            filter: None,
            limit,
            cursor: vec![],
            with_payload: true,
            with_vector: false,
            consistency: Consistency::Any,
        };
        assert!(scroll(MAX_TOP_K).checked().is_ok());
        assert!(scroll(0).checked().is_err());
        assert!(scroll(MAX_TOP_K + 1).checked().is_err());
    }
}
