//! Relevance feedback: what a client says about a search hit, how it is kept, and the
//! statistics over what was kept.
//!
//! Feedback is kept through the cluster's own write path: the records of collection `c`
//! are the points of its companion collection `c.feedback` ([`feedback_collection`]),
//! sharded and replicated like any collection, created on the first feedback and deleted
//! with `c` (by the placement driver, in the same command). A record's id is derived
//! from (query id, point id) ([`record_id`]), so a retried submission overwrites itself
//! and the latest judgement of a hit wins. Its vector is `[relevance]` (the companion's
//! dimension is 1) and its payload is the record ([`FeedbackRecord::to_payload`]).
//! Companion names contain a `.`, which user collection names cannot: the public API
//! never names one.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Result, ValidationError};
use crate::types::{MAX_QUERY_ID_BYTES, PointId};

/// The suffix of a companion feedback collection's name.
pub const FEEDBACK_SUFFIX: &str = ".feedback";
/// Longest feedback comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2048;
/// Longest feedback query text, in characters.
pub const MAX_FEEDBACK_QUERY_TEXT_CHARS: usize = crate::rerank::MAX_QUERY_TEXT_CHARS;
/// Points listed in a collection's feedback statistics.
pub const TOP_POINTS: usize = 10;

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidArgument { reason: reason.into() }
}

/// The companion collection keeping `collection`'s feedback.
pub fn feedback_collection(collection: &str) -> String {
    format!("{collection}{FEEDBACK_SUFFIX}")
}

/// The collection a companion keeps feedback for (`None`: not a companion's name).
pub fn parent_of(name: &str) -> Option<&str> {
    name.strip_suffix(FEEDBACK_SUFFIX)
}

/// Whether `name` is a collection the cluster keeps for itself (never named by the
/// public API).
pub fn is_internal(name: &str) -> bool {
    name.contains('.')
}

/// The id of the record of feedback on `point` in the answer to `query_id`: the first
/// 128 bits of SHA-256 over both, in hex.
pub fn record_id(query_id: &str, point: &PointId) -> PointId {
    let mut h = Sha256::new();
    h.update((query_id.len() as u32).to_be_bytes());
    h.update(query_id.as_bytes());
    h.update(point.encode());
    PointId::Str(hex::encode(&h.finalize()[..16]))
}

/// A new query id: 128 random bits in hex (a per-process random key over a counter and
/// the clock; unique, not secret).
pub fn new_query_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::OnceLock<(std::hash::RandomState, std::hash::RandomState)> = std::sync::OnceLock::new();
    let (a, b) = KEYS.get_or_init(|| (std::hash::RandomState::new(), std::hash::RandomState::new()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let half = |s: &std::hash::RandomState| {
        let mut h = s.build_hasher();
        h.write_u64(n);
        h.write_u64(nanos);
        h.finish()
    };
    format!("{:016x}{:016x}", half(a), half(b))
}

/// Checks a query id: 1–128 printable ASCII characters, no spaces (it reaches logs).
pub fn check_query_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_QUERY_ID_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!("a query_id is 1-{MAX_QUERY_ID_BYTES} printable ASCII characters without spaces")));
    }
    Ok(())
}

/// One judgement of one hit.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRecord {
    /// The search's `query_id` (or one the client chose).
    pub query_id: String,
    pub point_id: PointId,
    /// In [-1, 1]: negative for bad results, positive for good ones.
    pub relevance: f32,
    pub clicked: Option<bool>,
    /// The hit's 0-based position in the answer the client saw.
    pub position: Option<u32>,
    pub comment: Option<String>,
    /// The text the query stood for (what a learned model needs).
    pub query_text: Option<String>,
    /// When the gateway received it, in Unix milliseconds.
    pub at_ms: u64,
}

impl FeedbackRecord {
    /// The record, if it keeps the rules.
    pub fn checked(self) -> Result<FeedbackRecord> {
        check_query_id(&self.query_id)?;
        self.point_id.validate()?;
        if !(-1.0..=1.0).contains(&self.relevance) {
            return Err(invalid("relevance must be in [-1, 1]"));
        }
        if self.comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
            return Err(invalid(format!("a feedback comment is at most {MAX_COMMENT_CHARS} characters")));
        }
        if self.query_text.as_ref().is_some_and(|t| t.chars().count() > MAX_FEEDBACK_QUERY_TEXT_CHARS) {
            return Err(invalid(format!("query_text is at most {MAX_FEEDBACK_QUERY_TEXT_CHARS} characters")));
        }
        Ok(self)
    }

    /// The record as its point's payload. A numeric point id is written as its digits
    /// (`point_num`): payloads cross the public API as proto `Struct`s, where an integer
    /// past `i64::MAX` would become a float and lose its exact value.
    pub fn to_payload(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("query_id".into(), json!(self.query_id));
        match &self.point_id {
            PointId::Num(n) => m.insert("point_num".into(), json!(n.to_string())),
            PointId::Str(s) => m.insert("point_id".into(), json!(s)),
        };
        m.insert("relevance".into(), json!(self.relevance));
        m.insert("at_ms".into(), json!(self.at_ms));
        if let Some(c) = self.clicked {
            m.insert("clicked".into(), json!(c));
        }
        if let Some(p) = self.position {
            m.insert("position".into(), json!(p));
        }
        if let Some(c) = &self.comment {
            m.insert("comment".into(), json!(c));
        }
        if let Some(t) = &self.query_text {
            m.insert("query_text".into(), json!(t));
        }
        m
    }

    /// The record a feedback point's payload holds.
    pub fn from_payload(p: &Map<String, Value>) -> Result<FeedbackRecord> {
        let bad = || invalid(format!("a feedback record is malformed: {}", Value::Object(p.clone())));
        let point_id = match (p.get("point_num"), p.get("point_id")) {
            (Some(Value::String(n)), None) => PointId::Num(n.parse().map_err(|_| bad())?),
            (None, Some(Value::String(s))) => PointId::Str(s.clone()),
            _ => return Err(bad()),
        };
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(FeedbackRecord {
            query_id: text("query_id").ok_or_else(bad)?,
            point_id,
            relevance: p.get("relevance").and_then(Value::as_f64).ok_or_else(bad)? as f32,
            clicked: p.get("clicked").and_then(Value::as_bool),
            position: p.get("position").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()),
            comment: text("comment"),
            query_text: text("query_text"),
            at_ms: p.get("at_ms").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

/// Feedback submitted on a collection's search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRequest {
    pub collection: String,
    /// Checked; `at_ms` is set where it is kept.
    pub record: FeedbackRecord,
}

/// One point's feedback.
#[derive(Debug, Clone, PartialEq)]
pub struct PointFeedback {
    pub point_id: PointId,
    pub count: u64,
    pub relevance_sum: f64,
    pub clicks: u64,
}

impl PointFeedback {
    pub fn mean_relevance(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.relevance_sum / self.count as f64 }
    }
}

/// What a collection's feedback adds up to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeedbackStats {
    pub count: u64,
    pub queries: u64,
    pub points: u64,
    pub positive: u64,
    pub negative: u64,
    pub clicked: u64,
    pub relevance_sum: f64,
    /// The points with the highest relevance sum (most positively judged), at most
    /// [`TOP_POINTS`].
    pub top_points: Vec<PointFeedback>,
}

impl FeedbackStats {
    pub fn mean_relevance(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.relevance_sum / self.count as f64 }
    }

    /// The statistics of `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a FeedbackRecord>) -> FeedbackStats {
        let mut stats = FeedbackStats::default();
        let mut queries = std::collections::HashSet::new();
        let mut points: std::collections::HashMap<&PointId, PointFeedback> = std::collections::HashMap::new();
        for r in records {
            stats.count += 1;
            stats.relevance_sum += f64::from(r.relevance);
            stats.positive += u64::from(r.relevance > 0.0);
            stats.negative += u64::from(r.relevance < 0.0);
            let clicked = r.clicked == Some(true);
            stats.clicked += u64::from(clicked);
            queries.insert(r.query_id.as_str());
            let p = points.entry(&r.point_id).or_insert_with(|| PointFeedback {
                point_id: r.point_id.clone(),
                count: 0,
                relevance_sum: 0.0,
                clicks: 0,
            });
            p.count += 1;
            p.relevance_sum += f64::from(r.relevance);
            p.clicks += u64::from(clicked);
        }
        stats.queries = queries.len() as u64;
        stats.points = points.len() as u64;
        let mut top: Vec<PointFeedback> = points.into_values().collect();
        top.sort_by(|a, b| {
            b.relevance_sum.total_cmp(&a.relevance_sum).then(b.count.cmp(&a.count)).then(a.point_id.cmp(&b.point_id))
        });
        top.truncate(TOP_POINTS);
        stats.top_points = top;
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(q: &str, p: u64, relevance: f32, clicked: Option<bool>) -> FeedbackRecord {
        FeedbackRecord {
            query_id: q.into(),
            point_id: PointId::Num(p),
            relevance,
            clicked,
            position: Some(2),
            comment: None,
            query_text: Some("fast db".into()),
            at_ms: 5,
        }
    }

    #[test]
    fn records_round_trip_through_their_payload_and_ids_are_stable() {
        let r = FeedbackRecord {
            comment: Some("great".into()),
            point_id: PointId::Str("doc-1".into()),
            ..record("q1", 0, 0.5, Some(true))
        };
        assert_eq!(FeedbackRecord::from_payload(&r.to_payload()).unwrap(), r);
        // Exactly, through the proto Struct a payload crosses the API as, past i64::MAX too.
        for id in [0, i64::MAX as u64 + 1, u64::MAX] {
            let r = record("q", id, -0.25, None);
            let through = crate::convert::struct_from_pb(&crate::convert::struct_to_pb(&r.to_payload())).unwrap();
            assert_eq!(FeedbackRecord::from_payload(&through).unwrap(), r);
        }
        assert_eq!(record_id("q1", &PointId::Num(3)), record_id("q1", &PointId::Num(3)));
        assert_ne!(record_id("q1", &PointId::Num(3)), record_id("q1", &PointId::Str("3".into())));
        // The length prefix keeps ("ab", …) and ("a", "b…") apart.
        assert_ne!(record_id("q1", &PointId::Num(3)), record_id("q13", &PointId::Num(3)));
        assert!(record_id("q", &PointId::Num(1)).validate().is_ok());
        assert!(record("q 1", 1, 0.0, None).checked().is_err());
        assert!(record("q", 1, 1.5, None).checked().is_err());
        assert!(
            FeedbackRecord { comment: Some("x".repeat(MAX_COMMENT_CHARS + 1)), ..record("q", 1, 0.0, None) }
                .checked()
                .is_err()
        );
        assert_eq!(parent_of(&feedback_collection("docs")), Some("docs"));
        assert!(is_internal(&feedback_collection("docs")) && !is_internal("docs"));
    }

    #[test]
    fn query_ids_are_distinct_valid_feedback_ids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_query_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 32 && check_query_id(id).is_ok()));
    }

    #[test]
    fn stats_add_up_and_rank_points_by_their_relevance_sum() {
        let records = [
            record("q1", 1, 1.0, Some(true)),
            record("q1", 2, -0.5, None),
            record("q2", 1, 0.5, Some(false)),
            record("q2", 3, 0.0, None),
            record("q3", 2, 1.0, Some(true)),
        ];
        let s = FeedbackStats::of(&records);
        assert_eq!((s.count, s.queries, s.points, s.positive, s.negative, s.clicked), (5, 3, 3, 3, 1, 2));
        assert!((s.mean_relevance() - 0.4).abs() < 1e-9);
        let top: Vec<(PointId, u64)> = s.top_points.iter().map(|p| (p.point_id.clone(), p.count)).collect();
        assert_eq!(top, vec![(PointId::Num(1), 2), (PointId::Num(2), 2), (PointId::Num(3), 1)]);
        assert!((s.top_points[0].mean_relevance() - 0.75).abs() < 1e-9);
        assert_eq!(FeedbackStats::of(&[]).mean_relevance(), 0.0);
    }
}
