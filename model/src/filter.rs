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

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, ValidationError};
use crate::key_path::{key_segments, validate_key};
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
    /// `{"has_id": [1, "a"]}`: the point's id is listed (a set: each test is
    /// logarithmic in its size, not linear).
    HasId {
        has_id: BTreeSet<PointId>,
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

/// What `match` compares with: a keyword, an integer or a bool (`3.0` is the integer 3,
/// as JSON Schema reads it; `3.5` is refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum MatchValue {
    Bool(bool),
    Integer(i64),
    Keyword(String),
}

impl<'de> Deserialize<'de> for MatchValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MatchValue;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a keyword, an integer or a bool")
            }

            fn visit_bool<E: serde::de::Error>(self, b: bool) -> std::result::Result<MatchValue, E> {
                Ok(MatchValue::Bool(b))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<MatchValue, E> {
                Ok(MatchValue::Integer(n))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<MatchValue, E> {
                i64::try_from(n).map(MatchValue::Integer).map_err(|_| E::custom("match integers are 64-bit signed"))
            }

            fn visit_f64<E: serde::de::Error>(self, x: f64) -> std::result::Result<MatchValue, E> {
                match crate::types::whole_f64(x) {
                    Some(r) => Ok(MatchValue::Integer(r as i64)),
                    None => Err(E::custom("match compares keywords, integers and bools; use range for other numbers")),
                }
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<MatchValue, E> {
                Ok(MatchValue::Keyword(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Numeric bounds; at least one is required (a bound given as `null` is refused, not
/// read as absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "bound")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "bound")]
    pub gte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "bound")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "bound")]
    pub lte: Option<f64>,
}

fn bound<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    f64::deserialize(d).map(Some)
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
/// Most ids in one `has_id`.
pub const MAX_HAS_ID: usize = 10_000;
/// Most values in one `match.any`.
pub const MAX_MATCH_ANY: usize = 1024;

/// serde builds a struct from a JSON array as readily as from an object (`"filter": []`
/// would be the empty filter, `"range": [1, 2]` bounds by position): every filter,
/// condition and operator must be an object. Depth is checked by `validate`.
fn require_objects(v: &Value, depth: usize) -> Result<()> {
    let Value::Object(filter) = v else {
        return Err(ValidationError::invalid_filter(
            "a filter is a JSON object like {\"must\": [conditions]}, not an array or a scalar",
        ));
    };
    if depth > MAX_FILTER_DEPTH {
        return Ok(());
    }
    for clause in ["must", "should", "must_not"] {
        let Some(list) = filter.get(clause) else { continue };
        let Value::Array(conditions) = list else {
            return Err(ValidationError::invalid_filter(format!("{clause:?} is a list of conditions")));
        };
        for c in conditions {
            let Value::Object(condition) = c else {
                return Err(ValidationError::invalid_filter(format!("each condition in {clause:?} is a JSON object")));
            };
            let single = ["exists", "is_null", "has_id"].iter().find(|k| condition.contains_key(**k));
            if let Some(kind) = single {
                // `{"exists": …}` and friends are whole conditions: nothing beside them.
                if condition.len() != 1 {
                    return Err(ValidationError::invalid_filter(format!("a {kind:?} condition has no other fields")));
                }
            }
            // Lists are counted as sent (a set would count repeats once).
            if condition.get("has_id").and_then(Value::as_array).is_some_and(|ids| ids.len() > MAX_HAS_ID) {
                return Err(ValidationError::invalid_filter(format!("has_id takes at most {MAX_HAS_ID} ids")));
            }
            if single.is_some() || condition.contains_key("key") {
                for operator in ["match", "range", "exists", "is_null"] {
                    if condition.get(operator).is_some_and(|o| !o.is_object()) {
                        return Err(ValidationError::invalid_filter(format!("{operator:?} takes a JSON object")));
                    }
                }
                if let Some(Value::Object(m)) = condition.get("match")
                    && (m.len() != 1 || !(m.contains_key("value") || m.contains_key("any")))
                {
                    return Err(ValidationError::invalid_filter("match takes exactly one of value, any"));
                }
            } else {
                require_objects(c, depth + 1)?;
            }
        }
    }
    Ok(())
}

impl Filter {
    /// Parses the JSON form.
    pub fn from_json(v: &Value) -> Result<Filter> {
        require_objects(v, 0)?;
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
                    (Some(Match::Any { any }), None) if any.len() > MAX_MATCH_ANY => {
                        Err(ValidationError::invalid_filter(format!("match.any takes at most {MAX_MATCH_ANY} values")))
                    }
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
            Condition::HasId { has_id } if has_id.len() > MAX_HAS_ID => {
                Err(ValidationError::invalid_filter(format!("has_id takes at most {MAX_HAS_ID} ids")))
            }
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
            json!([]),
            json!({"must": [[]]}),
            json!({"must": {"key": "a", "match": {"value": 1}}}),
            json!({"must": [{"key": "a", "match": ["London"]}]}),
            json!({"must": [{"key": "a", "range": [1, 2]}]}),
            json!({"must": [{"exists": ["a"]}]}),
            json!({"should": [{"must": [[]]}]}),
            json!({"must": [{"has_id": (0..=MAX_HAS_ID as u64).collect::<Vec<_>>()}]}),
            json!({"must": [{"key": "a", "match": {"any": (0..=MAX_MATCH_ANY as i64).collect::<Vec<_>>()}}]}),
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
