//! Conversions between the public proto types and the model's types.
//!
//! Payloads travel as proto `Struct`s on the public API and as JSON text between the
//! gateway and the workers ([`Payload`]); integers stay integers both ways (a JSON
//! number that fits an i64 becomes `integer_value`).
//! Filters exist in three forms, which these functions keep equivalent: the proto
//! `Filter` (gRPC), the JSON filter (HTTP, the engine's serde form) and the engine's
//! [`Filter`]. Every conversion from the wire is fallible with a
//! [`ValidationError`] naming what is wrong, so a malformed request gets a typed error.

use crate::filter::{Condition, FieldCondition, KeyRef, Match, MatchValue, Range};
use std::time::Duration;

use crate::feedback::{FeedbackRecord, FeedbackRequest};
use crate::request::{
    Consistency, CountRequest, DEFAULT_SCROLL_LIMIT, DeleteRequest, GetRequest, ScrollRequest, SearchQuery,
    SearchRequest, Selector, UpsertRequest,
};
use crate::rerank::{Choice, Rerank};
use crate::types::MAX_IDS_PER_REQUEST;
use crate::{Distance, Filter, HnswParams, Payload, Point, PointId, Record, ScoredPoint, ShardConfig, ValidationError};
use serde_json::{Map, Number, Value};
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;

type Result<T> = std::result::Result<T, ValidationError>;

fn invalid(reason: impl Into<String>) -> ValidationError {
    ValidationError::InvalidArgument { reason: reason.into() }
}

// ---- ids ----

pub fn point_id_from_pb(id: Option<&pb::PointId>) -> Result<PointId> {
    let id = match id.and_then(|i| i.kind.as_ref()) {
        Some(pb::point_id::Kind::Num(n)) => PointId::Num(*n),
        Some(pb::point_id::Kind::Str(s)) => PointId::Str(s.clone()),
        None => return Err(ValidationError::InvalidPointId { reason: "point id is missing".into() }),
    };
    id.validate()?;
    Ok(id)
}

pub fn point_id_to_pb(id: &PointId) -> pb::PointId {
    pb::PointId {
        kind: Some(match id {
            PointId::Num(n) => pb::point_id::Kind::Num(*n),
            PointId::Str(s) => pb::point_id::Kind::Str(s.clone()),
        }),
    }
}

pub fn point_ids_from_pb(ids: &[pb::PointId]) -> Result<Vec<PointId>> {
    ids.iter().map(|i| point_id_from_pb(Some(i))).collect()
}

// ---- JSON values ----

pub fn value_from_pb(v: &pb::Value) -> Result<Value> {
    use pb::value::Kind;
    Ok(match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::IntegerValue(i)) => Value::Number((*i).into()),
        Some(Kind::DoubleValue(d)) => Value::Number(
            Number::from_f64(*d)
                .ok_or_else(|| ValidationError::InvalidPayload { reason: format!("{d} is not a finite number") })?,
        ),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_from_pb).collect::<Result<_>>()?),
        Some(Kind::StructValue(s)) => Value::Object(struct_from_pb(s)?),
    })
}

pub fn value_to_pb(v: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(pb::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(pb::ListValue { values: a.iter().map(value_to_pb).collect() }),
        Value::Object(o) => Kind::StructValue(struct_to_pb(o)),
    };
    pb::Value { kind: Some(kind) }
}

pub fn struct_from_pb(s: &pb::Struct) -> Result<Map<String, Value>> {
    s.fields.iter().map(|(k, v)| Ok((k.clone(), value_from_pb(v)?))).collect()
}

pub fn struct_to_pb(m: &Map<String, Value>) -> pb::Struct {
    pb::Struct { fields: m.iter().map(|(k, v)| (k.clone(), value_to_pb(v))).collect() }
}

// ---- points ----

/// A public point, consumed (its vector moves; its payload tree is dropped once written
/// as text).
pub fn point_from_pb(p: pb::Point) -> Result<Point> {
    Ok(Point {
        id: point_id_from_pb(p.id.as_ref())?,
        vector: p.vector,
        payload: p.payload.as_ref().map(|s| struct_from_pb(s).map(|m| Payload::from_map(&m))).transpose()?,
    })
}

/// A point as the gateway forwards it to a shard (the payload's text is shared).
pub fn shard_point_to_pb(p: Point) -> pi::ShardPoint {
    pi::ShardPoint {
        id: Some(point_id_to_pb(&p.id)),
        vector: p.vector,
        payload_json: p.payload.map(|p| p.json_bytes()).unwrap_or_default(),
    }
}

/// A forwarded point, its payload checked again.
pub fn shard_point_from_pb(p: pi::ShardPoint) -> Result<Point> {
    Ok(Point {
        id: point_id_from_pb(p.id.as_ref())?,
        vector: p.vector,
        payload: if p.payload_json.is_empty() { None } else { Some(Payload::from_json(p.payload_json)?) },
    })
}

pub fn record_to_pb(r: &Record) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(point_id_to_pb(&r.id)),
        vector: r.vector.clone().unwrap_or_default(),
        payload: r.payload.as_ref().map(struct_to_pb),
    }
}

pub fn scored_to_pb(s: &ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(point_id_to_pb(&s.id)),
        score: s.score,
        vector: s.vector.clone().unwrap_or_default(),
        payload: s.payload.as_ref().map(struct_to_pb),
        ..Default::default()
    }
}

pub fn distance_from_pb(raw: i32) -> Result<Distance> {
    match pb::Distance::try_from(raw) {
        Ok(pb::Distance::Cosine) => Ok(Distance::Cosine),
        Ok(pb::Distance::Euclid) => Ok(Distance::Euclid),
        Ok(pb::Distance::Dot) => Ok(Distance::Dot),
        Ok(pb::Distance::Unspecified) | Err(_) => Err(invalid("distance must be cosine, euclid or dot")),
    }
}

pub fn distance_to_pb(d: Distance) -> pb::Distance {
    match d {
        Distance::Cosine => pb::Distance::Cosine,
        Distance::Euclid => pb::Distance::Euclid,
        Distance::Dot => pb::Distance::Dot,
    }
}

// ---- collections ----

/// Longest collection name.
pub const MAX_COLLECTION_NAME: usize = 64;
/// Most shards in one collection.
pub const MAX_SHARDS: u32 = 256;
/// Most replicas of one shard.
pub const MAX_REPLICATION_FACTOR: u32 = 7;

/// Checks a collection name: `[a-zA-Z0-9_-]{1,64}`.
pub fn validate_collection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_COLLECTION_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(invalid(format!("collection name {name:?} must match [a-zA-Z0-9_-]{{1,64}}"))) }
}

/// Fills a collection config's defaults (0 → default) and validates it. The name is a
/// user collection's, or a companion's the cluster keeps for one
/// ([`crate::feedback::feedback_collection`]).
pub fn normalize_collection(mut c: pb::CollectionConfig) -> Result<pb::CollectionConfig> {
    match crate::feedback::parent_of(&c.name) {
        Some(parent) => validate_collection_name(parent)?,
        None => validate_collection_name(&c.name)?,
    }
    if c.shard_count == 0 {
        c.shard_count = 1;
    }
    if c.replication_factor == 0 {
        c.replication_factor = 1;
    }
    if c.shard_count > MAX_SHARDS {
        return Err(invalid(format!("shard_count must be in 1..={MAX_SHARDS}")));
    }
    if c.replication_factor > MAX_REPLICATION_FACTOR {
        return Err(invalid(format!("replication_factor must be in 1..={MAX_REPLICATION_FACTOR}")));
    }
    let hnsw = c.hnsw.get_or_insert_with(Default::default);
    if hnsw.m == 0 {
        hnsw.m = 16;
    }
    if hnsw.ef_construction == 0 {
        hnsw.ef_construction = 200;
    }
    // The same index asked for twice is one index (a field may be indexed as several kinds).
    let mut seen = std::collections::HashSet::new();
    c.payload_indexes.retain(|p| seen.insert((p.key.clone(), p.kind)));
    shard_config(&c)?.validate()?;
    default_rerank(&c)?;
    Ok(c)
}

/// The engine configuration of a collection's shards.
pub fn shard_config(c: &pb::CollectionConfig) -> Result<ShardConfig> {
    use crate::types::{PayloadIndexKind, PayloadIndexSpec};
    let mut config = ShardConfig::new(c.dimension as usize, distance_from_pb(c.distance)?);
    if let Some(h) = &c.hnsw {
        config.hnsw = HnswParams { m: h.m as usize, ef_construction: h.ef_construction as usize };
    }
    for p in &c.payload_indexes {
        let kind = match pb::PayloadIndexKind::try_from(p.kind) {
            Ok(pb::PayloadIndexKind::Keyword) => PayloadIndexKind::Keyword,
            Ok(pb::PayloadIndexKind::Integer) => PayloadIndexKind::Integer,
            Ok(pb::PayloadIndexKind::Float) => PayloadIndexKind::Float,
            Ok(pb::PayloadIndexKind::Bool) => PayloadIndexKind::Bool,
            Ok(pb::PayloadIndexKind::Unspecified) | Err(_) => {
                return Err(invalid(format!("payload index on {:?} needs a kind", p.key)));
            }
        };
        config.payload_indexes.push(PayloadIndexSpec { key: p.key.clone(), kind });
    }
    Ok(config)
}

// ---- filters ----

fn match_value_from_pb(v: &pb::Value) -> Result<MatchValue> {
    use pb::value::Kind;
    match &v.kind {
        Some(Kind::BoolValue(b)) => Ok(MatchValue::Bool(*b)),
        Some(Kind::IntegerValue(i)) => Ok(MatchValue::Integer(*i)),
        Some(Kind::StringValue(s)) => Ok(MatchValue::Keyword(s.clone())),
        _ => {
            Err(ValidationError::InvalidFilter { reason: "match compares with a keyword, an integer or a bool".into() })
        }
    }
}

fn match_value_to_pb(v: &MatchValue) -> pb::Value {
    use pb::value::Kind;
    pb::Value {
        kind: Some(match v {
            MatchValue::Bool(b) => Kind::BoolValue(*b),
            MatchValue::Integer(i) => Kind::IntegerValue(*i),
            MatchValue::Keyword(s) => Kind::StringValue(s.clone()),
        }),
    }
}

/// The engine filter of a proto filter, validated.
pub fn filter_from_pb(f: &pb::Filter) -> Result<Filter> {
    let filter = filter_from_pb_unchecked(f)?;
    filter.validate()?;
    Ok(filter)
}

fn filter_from_pb_unchecked(f: &pb::Filter) -> Result<Filter> {
    let conds = |cs: &[pb::Condition]| cs.iter().map(condition_from_pb).collect::<Result<Vec<_>>>();
    Ok(Filter { must: conds(&f.must)?, should: conds(&f.should)?, must_not: conds(&f.must_not)? })
}

fn condition_from_pb(c: &pb::Condition) -> Result<Condition> {
    use pb::condition::Condition as C;
    use pb::field_condition::Test;
    let bad = |reason: &str| ValidationError::InvalidFilter { reason: reason.into() };
    match c.condition.as_ref().ok_or_else(|| bad("empty condition"))? {
        C::Filter(f) => Ok(Condition::Filter(filter_from_pb_unchecked(f)?)),
        C::HasId(h) if h.ids.len() > crate::filter::MAX_HAS_ID => {
            Err(ValidationError::invalid_filter(format!("has_id takes at most {} ids", crate::filter::MAX_HAS_ID)))
        }
        C::HasId(h) => Ok(Condition::HasId { has_id: point_ids_from_pb(&h.ids)?.into_iter().collect() }),
        C::Field(field) => {
            let key = field.key.clone();
            let field_cond = |matches, range| Condition::Field(FieldCondition { key: key.clone(), matches, range });
            match field.test.as_ref().ok_or_else(|| bad("field condition without a test"))? {
                Test::Match(v) => Ok(field_cond(Some(Match::Value { value: match_value_from_pb(v)? }), None)),
                Test::MatchAny(l) => Ok(field_cond(
                    Some(Match::Any { any: l.values.iter().map(match_value_from_pb).collect::<Result<_>>()? }),
                    None,
                )),
                Test::Range(r) => Ok(field_cond(None, Some(Range { gt: r.gt, gte: r.gte, lt: r.lt, lte: r.lte }))),
                Test::Exists(true) => Ok(Condition::Exists { exists: KeyRef { key } }),
                Test::Exists(false) => Ok(Condition::Filter(Filter {
                    must_not: vec![Condition::Exists { exists: KeyRef { key } }],
                    ..Filter::default()
                })),
                Test::IsNull(true) => Ok(Condition::IsNull { is_null: KeyRef { key } }),
                Test::IsNull(false) => Ok(Condition::Filter(Filter {
                    must_not: vec![Condition::IsNull { is_null: KeyRef { key } }],
                    ..Filter::default()
                })),
            }
        }
    }
}

/// The proto filter of an engine filter (the HTTP API parses JSON filters into the
/// engine's form, then sends them on as proto).
pub fn filter_to_pb(f: &Filter) -> Result<pb::Filter> {
    let conds = |cs: &[Condition]| cs.iter().map(condition_to_pb).collect::<Result<Vec<_>>>();
    Ok(pb::Filter { must: conds(&f.must)?, should: conds(&f.should)?, must_not: conds(&f.must_not)? })
}

fn condition_to_pb(c: &Condition) -> Result<pb::Condition> {
    use pb::condition::Condition as C;
    use pb::field_condition::Test;
    let field = |key: &str, test| C::Field(pb::FieldCondition { key: key.to_owned(), test: Some(test) });
    let condition = match c {
        Condition::Filter(f) => C::Filter(filter_to_pb(f)?),
        Condition::HasId { has_id } => {
            C::HasId(pb::HasIdCondition { ids: has_id.iter().map(point_id_to_pb).collect() })
        }
        Condition::Exists { exists } => field(&exists.key, Test::Exists(true)),
        Condition::IsNull { is_null } => field(&is_null.key, Test::IsNull(true)),
        Condition::Field(fc) => match (&fc.matches, &fc.range) {
            (Some(Match::Value { value }), None) => field(&fc.key, Test::Match(match_value_to_pb(value))),
            (Some(Match::Any { any }), None) => {
                field(&fc.key, Test::MatchAny(pb::ListValue { values: any.iter().map(match_value_to_pb).collect() }))
            }
            (None, Some(r)) => field(&fc.key, Test::Range(pb::Range { gt: r.gt, gte: r.gte, lt: r.lt, lte: r.lte })),
            // Both or neither: the engine's validation refuses these too.
            _ => {
                return Err(ValidationError::InvalidFilter {
                    reason: format!("condition on {:?} needs exactly one of match or range", fc.key),
                });
            }
        },
    };
    Ok(pb::Condition { condition: Some(condition) })
}

// ---- requests ----

/// A consistency a client may ask for; unspecified is the default, an unknown value is
/// refused (not read as the default).
pub fn consistency_from_pb(raw: i32) -> Result<Consistency> {
    match pb::Consistency::try_from(raw) {
        Ok(pb::Consistency::Unspecified | pb::Consistency::Leader) => Ok(Consistency::Leader),
        Ok(pb::Consistency::Linearizable) => Ok(Consistency::Linearizable),
        Ok(pb::Consistency::Any) => Ok(Consistency::Any),
        Err(_) => Err(invalid(format!("unknown consistency {raw}"))),
    }
}

pub fn consistency_to_pb(c: Consistency) -> pb::Consistency {
    match c {
        Consistency::Linearizable => pb::Consistency::Linearizable,
        Consistency::Leader => pb::Consistency::Leader,
        Consistency::Any => pb::Consistency::Any,
    }
}

fn optional_filter(f: Option<&pb::Filter>) -> Result<Option<Filter>> {
    f.map(filter_from_pb).transpose()
}

fn optional_filter_to_pb(f: Option<&Filter>) -> Result<Option<pb::Filter>> {
    f.map(filter_to_pb).transpose()
}

/// Refuses an id list past the cap before converting any of it.
fn at_most_ids(n: usize) -> Result<()> {
    if n > MAX_IDS_PER_REQUEST {
        return Err(invalid(format!("{n} ids in one request; the limit is {MAX_IDS_PER_REQUEST}")));
    }
    Ok(())
}

impl TryFrom<pb::SearchRequest> for SearchRequest {
    type Error = ValidationError;

    fn try_from(r: pb::SearchRequest) -> Result<SearchRequest> {
        let query = SearchQuery {
            vector: r.vector,
            top_k: r.top_k as usize,
            ef: (r.ef > 0).then_some(r.ef as usize),
            filter: optional_filter(r.filter.as_ref())?,
            score_threshold: r.score_threshold,
            with_payload: r.with_payload,
            with_vector: r.with_vector,
        };
        Ok(SearchRequest {
            collection: r.collection,
            query: query.checked()?,
            consistency: consistency_from_pb(r.consistency)?,
            timeout: (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms.into())),
            rerank: r.rerank.as_ref().map(rerank_from_pb).transpose()?,
        })
    }
}

// ---- feedback ----

impl TryFrom<pb::SubmitFeedbackRequest> for FeedbackRequest {
    type Error = ValidationError;

    fn try_from(r: pb::SubmitFeedbackRequest) -> Result<FeedbackRequest> {
        let record = FeedbackRecord {
            query_id: r.query_id,
            point_id: point_id_from_pb(r.point_id.as_ref())?,
            relevance: r.relevance,
            clicked: r.clicked,
            position: r.position,
            comment: r.comment,
            query_text: r.query_text,
            at_ms: 0,
        };
        Ok(FeedbackRequest { collection: r.collection, record: record.checked()? })
    }
}

// ---- rerank ----

pub fn rerank_from_pb(r: &pb::Rerank) -> Result<Rerank> {
    Rerank {
        choice: Choice::from_name(&r.strategy)?,
        query_text: r.query_text.clone(),
        params: r.params.as_ref().map(struct_from_pb).transpose()?.unwrap_or_default(),
        candidates: (r.candidates > 0).then_some(r.candidates as usize),
    }
    .checked()
}

pub fn rerank_to_pb(r: &Rerank) -> pb::Rerank {
    pb::Rerank {
        strategy: r.choice.name().to_owned(),
        query_text: r.query_text.clone(),
        params: (!r.params.is_empty()).then(|| struct_to_pb(&r.params)),
        candidates: r.candidates.map_or(0, |c| c as u32),
    }
}

/// A collection's default rerank, if it has one.
pub fn default_rerank(c: &pb::CollectionConfig) -> Result<Option<Rerank>> {
    c.default_rerank.as_ref().map(|r| rerank_from_pb(r)?.checked_default()).transpose()
}

/// The proto form a shard call carries.
pub fn search_to_pb(r: &SearchRequest) -> Result<pb::SearchRequest> {
    let q = &r.query;
    Ok(pb::SearchRequest {
        collection: r.collection.clone(),
        vector: q.vector.clone(),
        top_k: q.top_k as u32,
        filter: optional_filter_to_pb(q.filter.as_ref())?,
        ef: q.ef.map_or(0, |ef| ef as u32),
        score_threshold: q.score_threshold,
        with_payload: q.with_payload,
        with_vector: q.with_vector,
        consistency: consistency_to_pb(r.consistency) as i32,
        timeout_ms: r.timeout.map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128) as u32),
        // Shards do not rerank: the gateway does, over every shard's hits.
        rerank: None,
    })
}

impl TryFrom<pb::GetRequest> for GetRequest {
    type Error = ValidationError;

    fn try_from(r: pb::GetRequest) -> Result<GetRequest> {
        at_most_ids(r.ids.len())?;
        GetRequest {
            collection: r.collection,
            ids: point_ids_from_pb(&r.ids)?,
            with_payload: r.with_payload,
            with_vector: r.with_vector,
            consistency: consistency_from_pb(r.consistency)?,
        }
        .checked()
    }
}

/// The proto form of a get of `ids` (one shard's share of `r`).
pub fn get_to_pb(r: &GetRequest, ids: &[PointId]) -> pb::GetRequest {
    pb::GetRequest {
        collection: r.collection.clone(),
        ids: ids.iter().map(point_id_to_pb).collect(),
        with_payload: r.with_payload,
        with_vector: r.with_vector,
        consistency: consistency_to_pb(r.consistency) as i32,
    }
}

impl TryFrom<pb::DeleteRequest> for DeleteRequest {
    type Error = ValidationError;

    fn try_from(r: pb::DeleteRequest) -> Result<DeleteRequest> {
        let selector = match r.selector {
            Some(pb::delete_request::Selector::Ids(list)) => {
                at_most_ids(list.ids.len())?;
                Selector::Ids(point_ids_from_pb(&list.ids)?)
            }
            Some(pb::delete_request::Selector::Filter(f)) => Selector::Filter(filter_from_pb(&f)?),
            None => return Err(invalid("delete needs ids or a filter")),
        };
        DeleteRequest { collection: r.collection, selector, wait: r.wait.unwrap_or(true) }.checked()
    }
}

impl TryFrom<pb::ScrollRequest> for ScrollRequest {
    type Error = ValidationError;

    fn try_from(r: pb::ScrollRequest) -> Result<ScrollRequest> {
        ScrollRequest {
            collection: r.collection,
            filter: optional_filter(r.filter.as_ref())?,
            limit: if r.limit == 0 { DEFAULT_SCROLL_LIMIT } else { r.limit as usize },
            cursor: r.cursor,
            with_payload: r.with_payload,
            with_vector: r.with_vector,
            consistency: consistency_from_pb(r.consistency)?,
        }
        .checked()
    }
}

/// The proto form of one shard's page: at most `limit` points from `cursor` (the
/// shard's own cursor).
pub fn scroll_to_pb(r: &ScrollRequest, limit: usize, cursor: Vec<u8>) -> Result<pb::ScrollRequest> {
    Ok(pb::ScrollRequest {
        collection: r.collection.clone(),
        filter: optional_filter_to_pb(r.filter.as_ref())?,
        limit: limit as u32,
        cursor,
        with_payload: r.with_payload,
        with_vector: r.with_vector,
        consistency: consistency_to_pb(r.consistency) as i32,
    })
}

impl TryFrom<pb::CountRequest> for CountRequest {
    type Error = ValidationError;

    fn try_from(r: pb::CountRequest) -> Result<CountRequest> {
        CountRequest {
            collection: r.collection,
            filter: optional_filter(r.filter.as_ref())?,
            consistency: consistency_from_pb(r.consistency)?,
        }
        .checked()
    }
}

pub fn count_to_pb(r: &CountRequest) -> Result<pb::CountRequest> {
    Ok(pb::CountRequest {
        collection: r.collection.clone(),
        filter: optional_filter_to_pb(r.filter.as_ref())?,
        consistency: consistency_to_pb(r.consistency) as i32,
    })
}

impl TryFrom<pb::UpsertRequest> for UpsertRequest {
    type Error = ValidationError;

    /// Consumed point by point: each payload tree is dropped once written as text. An
    /// error names the point it is about.
    fn try_from(r: pb::UpsertRequest) -> Result<UpsertRequest> {
        let points = r
            .points
            .into_iter()
            .enumerate()
            .map(|(i, p)| point_from_pb(p).map_err(|e| e.about_point(i)))
            .collect::<Result<_>>()?;
        Ok(UpsertRequest { collection: r.collection, points, wait: r.wait.unwrap_or(true) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_round_trip_losslessly() {
        let payload = json!({"i": 9007199254740993_i64, "f": 1.5, "s": "x", "b": true, "n": null,
                             "a": [1, "two", [3.25]], "o": {"deep": {"k": -7}}});
        let map = payload.as_object().unwrap().clone();
        assert_eq!(struct_from_pb(&struct_to_pb(&map)).unwrap(), map);
    }

    #[test]
    fn filters_round_trip_through_proto() {
        let json = json!({"must": [{"key": "city", "match": {"value": "London"}},
                                   {"key": "price", "range": {"gte": 10.0, "lt": 100.0}},
                                   {"exists": {"key": "owner"}}],
                          "should": [{"key": "tags", "match": {"any": ["new", 3, true]}},
                                     {"has_id": [1, "a"]}],
                          "must_not": [{"is_null": {"key": "x"}},
                                       {"must": [{"key": "k", "match": {"value": 5}}]}]});
        let f = Filter::from_json(&json).unwrap();
        let back = filter_from_pb(&filter_to_pb(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn malformed_wire_values_are_typed_errors() {
        assert!(matches!(point_id_from_pb(None), Err(ValidationError::InvalidPointId { .. })));
        let long = pb::PointId { kind: Some(pb::point_id::Kind::Str("x".repeat(300))) };
        assert!(matches!(point_id_from_pb(Some(&long)), Err(ValidationError::InvalidPointId { .. })));
        let nan = pb::Value { kind: Some(pb::value::Kind::DoubleValue(f64::NAN)) };
        assert!(matches!(value_from_pb(&nan), Err(ValidationError::InvalidPayload { .. })));
        let empty = pb::Filter { must: vec![pb::Condition { condition: None }], ..Default::default() };
        assert!(matches!(filter_from_pb(&empty), Err(ValidationError::InvalidFilter { .. })));
        assert!(distance_from_pb(0).is_err());
        assert!(distance_from_pb(99).is_err());
    }
}
