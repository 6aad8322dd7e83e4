//! Payload filters: their JSON form, validation, and the direct evaluator over one
//! payload. The direct evaluator defines the semantics; the indexed evaluation in
//! the engine's payload index must agree with it exactly (a property test checks).
//!
//! JSON form (Qdrant-like):
//! ```json
//! {"must": [{"key": "city", "match": {"value": "London"}},
//!           {"key": "price", "range": {"gte": 10, "lt": 100}}],
//!  "should": [{"key": "tags", "match": {"any": ["a", "b"]}}],
//!  "must_not": [{"is_null": {"key": "owner"}}]}
//! ```
//! A key is a dotted path (`a.b.c`); arrays met on the path are flattened (`a[]` may be
//! written to say so), and a condition holds if any value reached passes it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, ValidationError};
use crate::types::PointId;

/// Boolean combination of conditions; the empty filter passes everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must: Vec<Condition>,
    /// At least one must hold (when there are any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub should: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_not: Vec<Condition>,
}

/// One test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    Field(FieldCondition),
    /// `{"exists": {"key": "k"}}`: the key reaches at least one non-null value.
    Exists {
        exists: KeyRef,
    },
    /// `{"is_null": {"key": "k"}}`: the key reaches a null value.
    IsNull {
        is_null: KeyRef,
    },
    /// `{"has_id": [1, "a"]}`: the point's id is listed.
    HasId {
        has_id: Vec<PointId>,
    },
    /// A nested filter.
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub key: String,
}

/// `{"key": "k", "match": …}` or `{"key": "k", "range": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldCondition {
    pub key: String,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Match>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// Equality with one value or with any of several (`in`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Match {
    Value { value: MatchValue },
    Any { any: Vec<MatchValue> },
}

/// What `match` compares with: a keyword, an integer or a bool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchValue {
    Bool(bool),
    Integer(i64),
    Keyword(String),
}

/// Numeric bounds; at least one is required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

impl Range {
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

/// Deepest nesting of filters inside filters.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Most conditions in one filter, nested ones included.
pub const MAX_FILTER_CONDITIONS: usize = 1024;
/// Longest key path.
pub const MAX_KEY_BYTES: usize = 256;

/// Checks a key path: non-empty segments of at most 256 bytes in all.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ValidationError::invalid_filter(format!("key must be 1..={MAX_KEY_BYTES} bytes")));
    }
    if key_segments(key).any(str::is_empty) {
        return Err(ValidationError::invalid_filter(format!("key {key:?} has an empty segment")));
    }
    Ok(())
}

/// Splits a dotted path into field names; a trailing `[]` on a segment is dropped
/// (arrays are always flattened).
fn key_segments(key: &str) -> impl Iterator<Item = &str> {
    key.split('.').map(|s| s.strip_suffix("[]").unwrap_or(s))
}

impl Filter {
    /// Parses the JSON form.
    pub fn from_json(v: &Value) -> Result<Filter> {
        let f: Filter =
            serde_json::from_value(v.clone()).map_err(|e| ValidationError::invalid_filter(e.to_string()))?;
        f.validate()?;
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Rejects filters that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        let mut count = 0;
        self.validate_at(0, &mut count)
    }

    fn validate_at(&self, depth: usize, count: &mut usize) -> Result<()> {
        if depth > MAX_FILTER_DEPTH {
            return Err(ValidationError::invalid_filter(format!("filters nest deeper than {MAX_FILTER_DEPTH}")));
        }
        for c in self.must.iter().chain(&self.should).chain(&self.must_not) {
            *count += 1;
            if *count > MAX_FILTER_CONDITIONS {
                return Err(ValidationError::invalid_filter(format!("more than {MAX_FILTER_CONDITIONS} conditions")));
            }
            c.validate_at(depth, count)?;
        }
        Ok(())
    }

    /// Whether a point with this id and payload passes. This is the reference semantics.
    pub fn matches(&self, id: &PointId, payload: Option<&Map<String, Value>>) -> bool {
        self.must.iter().all(|c| c.matches(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(id, payload)))
            && !self.must_not.iter().any(|c| c.matches(id, payload))
    }
}

impl Condition {
    fn validate_at(&self, depth: usize, count: &mut usize) -> Result<()> {
        match self {
            Condition::Field(f) => {
                validate_key(&f.key)?;
                match (&f.matches, &f.range) {
                    (Some(_), Some(_)) | (None, None) => Err(ValidationError::invalid_filter(format!(
                        "condition on {:?} needs exactly one of match, range",
                        f.key
                    ))),
                    (Some(_), None) => Ok(()),
                    (None, Some(r)) => {
                        let bounds = [r.gt, r.gte, r.lt, r.lte];
                        if bounds.iter().all(Option::is_none) {
                            return Err(ValidationError::invalid_filter(format!("range on {:?} has no bound", f.key)));
                        }
                        if bounds.iter().flatten().any(|b| !b.is_finite()) {
                            return Err(ValidationError::invalid_filter(format!(
                                "range on {:?} has a non-finite bound",
                                f.key
                            )));
                        }
                        Ok(())
                    }
                }
            }
            Condition::Exists { exists: k } | Condition::IsNull { is_null: k } => validate_key(&k.key),
            Condition::HasId { has_id } => has_id
                .iter()
                .try_for_each(|id| id.validate().map_err(|e| ValidationError::invalid_filter(e.to_string()))),
            Condition::Filter(f) => f.validate_at(depth + 1, count),
        }
    }

    fn matches(&self, id: &PointId, payload: Option<&Map<String, Value>>) -> bool {
        match self {
            Condition::Field(f) => {
                let values = values_at(payload, &f.key);
                match (&f.matches, &f.range) {
                    (Some(Match::Value { value }), _) => values.iter().any(|v| value_equals(v, value)),
                    (Some(Match::Any { any }), _) => values.iter().any(|v| any.iter().any(|m| value_equals(v, m))),
                    (None, Some(r)) => values.iter().any(|v| v.as_f64().is_some_and(|x| r.contains(x))),
                    (None, None) => false,
                }
            }
            Condition::Exists { exists } => values_at(payload, &exists.key).iter().any(|v| !v.is_null()),
            Condition::IsNull { is_null } => values_at(payload, &is_null.key).iter().any(|v| v.is_null()),
            Condition::HasId { has_id } => has_id.contains(id),
            Condition::Filter(f) => f.matches(id, payload),
        }
    }
}

/// Whether a payload value equals a match value: same JSON type and value (integers
/// compare with integral numbers only).
pub fn value_equals(v: &Value, m: &MatchValue) -> bool {
    match (v, m) {
        (Value::String(s), MatchValue::Keyword(k)) => s == k,
        (Value::Bool(b), MatchValue::Bool(x)) => b == x,
        (Value::Number(n), MatchValue::Integer(i)) => n.as_i64() == Some(*i),
        _ => false,
    }
}

/// Every value the dotted `key` reaches in `payload`, arrays flattened (also the final
/// one: `{"tags": ["a", "b"]}` at `tags` gives `"a"` and `"b"`).
pub fn values_at<'a>(payload: Option<&'a Map<String, Value>>, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let Some(payload) = payload else {
        return out;
    };
    let mut segments = key_segments(key);
    let Some(first) = segments.next() else {
        return out;
    };
    let mut current: Vec<&Value> = payload.get(first).into_iter().collect();
    for seg in segments {
        let mut next = Vec::new();
        for v in current {
            collect_field(v, seg, &mut next);
        }
        current = next;
    }
    for v in current {
        flatten_into(v, &mut out);
    }
    out
}

fn collect_field<'a>(v: &'a Value, field: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => out.extend(m.get(field)),
        Value::Array(items) => items.iter().for_each(|i| collect_field(i, field, out)),
        _ => {}
    }
}

fn flatten_into<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten_into(i, out)),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn check(filter: Value, p: Value) -> bool {
        Filter::from_json(&filter).unwrap().matches(&PointId::Num(1), Some(&payload(p)))
    }

    #[test]
    fn match_range_and_nesting() {
        let p = json!({"city": "London", "price": 12.5, "n": 3, "ok": true,
                       "tags": ["a", "b"], "shop": {"addr": [{"zip": "N1"}, {"zip": "E2"}]}});
        assert!(check(json!({"must": [{"key": "city", "match": {"value": "London"}}]}), p.clone()));
        assert!(!check(json!({"must": [{"key": "city", "match": {"value": "Paris"}}]}), p.clone()));
        assert!(check(json!({"must": [{"key": "price", "range": {"gte": 10, "lt": 13}}]}), p.clone()));
        assert!(!check(json!({"must": [{"key": "price", "range": {"gt": 12.5}}]}), p.clone()));
        assert!(check(json!({"must": [{"key": "n", "match": {"value": 3}}]}), p.clone()));
        assert!(check(json!({"must": [{"key": "ok", "match": {"value": true}}]}), p.clone()));
        assert!(check(json!({"must": [{"key": "tags", "match": {"any": ["x", "b"]}}]}), p.clone()));
        assert!(check(json!({"must": [{"key": "shop.addr[].zip", "match": {"value": "E2"}}]}), p.clone()));
        assert!(check(json!({"must": [{"key": "shop.addr.zip", "match": {"value": "N1"}}]}), p.clone()));
        assert!(check(
            json!({"should": [{"key": "city", "match": {"value": "Paris"}},
                                        {"key": "n", "range": {"lte": 3}}]}),
            p.clone()
        ));
        assert!(!check(json!({"must_not": [{"key": "tags", "match": {"value": "a"}}]}), p.clone()));
        assert!(check(
            json!({"must": [{"should": [{"has_id": [1]}], "must_not": [{"exists": {"key": "nope"}}]}]}),
            p.clone()
        ));
    }

    #[test]
    fn exists_and_is_null() {
        let p = json!({"a": null, "b": [], "c": [null, 1], "d": 0});
        assert!(!check(json!({"must": [{"exists": {"key": "a"}}]}), p.clone()));
        assert!(!check(json!({"must": [{"exists": {"key": "b"}}]}), p.clone()));
        assert!(check(json!({"must": [{"exists": {"key": "c"}}]}), p.clone()));
        assert!(check(json!({"must": [{"exists": {"key": "d"}}]}), p.clone()));
        assert!(check(json!({"must": [{"is_null": {"key": "a"}}]}), p.clone()));
        assert!(!check(json!({"must": [{"is_null": {"key": "missing"}}]}), p.clone()));
    }

    #[test]
    fn integer_match_does_not_equal_floats_or_strings() {
        let p = json!({"n": 3.5, "s": "3"});
        assert!(!check(json!({"must": [{"key": "n", "match": {"value": 3}}]}), p.clone()));
        assert!(!check(json!({"must": [{"key": "s", "match": {"value": 3}}]}), p));
    }

    #[test]
    fn malformed_filters_are_typed_errors() {
        for bad in [
            json!({"must": [{"key": "a", "range": {}}]}),
            json!({"must": [{"key": "a"}]}),
            json!({"must": [{"key": "", "match": {"value": 1}}]}),
            json!({"must": [{"key": "a..b", "match": {"value": 1}}]}),
            json!({"must": [{"key": "a", "match": {"value": 1.5}}]}),
            json!({"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}}]}),
            json!({"must": [{"key": "a", "frobnicate": 1}]}),
            json!({"mustt": []}),
            json!({"must": [{"has_id": [""]}]}),
            json!([1, 2]),
        ] {
            let err = Filter::from_json(&bad).unwrap_err();
            assert!(matches!(err, ValidationError::InvalidFilter { .. }), "{bad}: {err:?}");
        }
        let mut deep = json!({"must": [{"key": "a", "match": {"value": 1}}]});
        for _ in 0..MAX_FILTER_DEPTH + 1 {
            deep = json!({"must": [deep]});
        }
        assert!(Filter::from_json(&deep).is_err());
    }
}
