//! Payload field indexes and filter evaluation over them.
//!
//! Each indexed field keeps bitmaps of internal point ids: keyword value → points,
//! bool → points, integer value → points, and an ordered set of every numeric value for
//! ranges; plus, whatever the kind, which points hold a non-null value there and which
//! hold a null. Entries are only ever added: internal ids are never reused (an update
//! gets a new one), so stale entries are harmless once results are intersected with the
//! live set, and they disappear when the shard rebuilds.
//!
//! [`PayloadIndexes::candidates`] answers a filter from the indexes alone where it can
//! (exactly as [`Filter::matches`] would) and otherwise returns a superset that the
//! caller refines with the direct evaluator.

use std::collections::{BTreeSet, HashMap};

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

use crate::filter::{Condition, Filter, Match, MatchValue, Range, values_at};
use crate::types::{PayloadIndexKind, PayloadIndexSpec, PointId};

/// An f64 with a total order, for the ordered numeric sets.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Default)]
struct FieldIndex {
    kind: Option<PayloadIndexKind>,
    keywords: HashMap<String, RoaringBitmap>,
    bools: [RoaringBitmap; 2],
    integers: HashMap<i64, RoaringBitmap>,
    /// Every numeric value (Integer and Float kinds), for ranges.
    numbers: BTreeSet<(OrdF64, u32)>,
    /// Points with at least one non-null value at this key.
    present: RoaringBitmap,
    /// Points with a null at this key.
    nulls: RoaringBitmap,
}

impl FieldIndex {
    fn add(&mut self, id: u32, values: &[&Value]) {
        let kind = self.kind.expect("kind set at creation");
        for v in values {
            match v {
                Value::Null => {
                    self.nulls.insert(id);
                }
                Value::String(s) if kind == PayloadIndexKind::Keyword => {
                    self.keywords.entry(s.clone()).or_default().insert(id);
                }
                Value::Bool(b) if kind == PayloadIndexKind::Bool => {
                    self.bools[*b as usize].insert(id);
                }
                Value::Number(n) if matches!(kind, PayloadIndexKind::Integer | PayloadIndexKind::Float) => {
                    if let (PayloadIndexKind::Integer, Some(i)) = (kind, n.as_i64()) {
                        self.integers.entry(i).or_default().insert(id);
                    }
                    if let Some(x) = n.as_f64() {
                        self.numbers.insert((OrdF64(x), id));
                    }
                }
                _ => {}
            }
            if !v.is_null() {
                self.present.insert(id);
            }
        }
    }

    /// Points whose values equal `m`, if this index can tell.
    fn matching(&self, m: &MatchValue) -> Option<RoaringBitmap> {
        let kind = self.kind?;
        match (kind, m) {
            (PayloadIndexKind::Keyword, MatchValue::Keyword(s)) => {
                Some(self.keywords.get(s).cloned().unwrap_or_default())
            }
            (PayloadIndexKind::Bool, MatchValue::Bool(b)) => Some(self.bools[*b as usize].clone()),
            (PayloadIndexKind::Integer, MatchValue::Integer(i)) => {
                Some(self.integers.get(i).cloned().unwrap_or_default())
            }
            _ => None,
        }
    }

    fn in_range(&self, r: &Range) -> Option<RoaringBitmap> {
        if !matches!(self.kind?, PayloadIndexKind::Integer | PayloadIndexKind::Float) {
            return None;
        }
        let lo = [r.gt, r.gte].into_iter().flatten().fold(f64::NEG_INFINITY, f64::max);
        let hi = [r.lt, r.lte].into_iter().flatten().fold(f64::INFINITY, f64::min);
        if lo > hi {
            return Some(RoaringBitmap::new());
        }
        let mut out = RoaringBitmap::new();
        for (x, id) in self.numbers.range((OrdF64(lo), 0)..=(OrdF64(hi), u32::MAX)) {
            if r.contains(x.0) {
                out.insert(*id);
            }
        }
        Some(out)
    }
}

/// What the indexes could say about a filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    pub ids: RoaringBitmap,
    /// True: `ids` is exactly the matching set. False: a superset to refine.
    pub exact: bool,
}

/// The payload indexes of one shard: per key, one index per kind it is indexed as (a
/// field may be indexed as, say, keyword and integer; each condition uses the index of
/// its own kind).
#[derive(Debug, Default)]
pub struct PayloadIndexes {
    fields: HashMap<String, Vec<FieldIndex>>,
}

impl PayloadIndexes {
    pub fn new(specs: &[PayloadIndexSpec]) -> Self {
        let mut fields: HashMap<String, Vec<FieldIndex>> = HashMap::new();
        for s in specs {
            fields.entry(s.key.clone()).or_default().push(FieldIndex { kind: Some(s.kind), ..Default::default() });
        }
        PayloadIndexes { fields }
    }

    /// Records the payload of internal point `id`.
    pub fn add(&mut self, id: u32, payload: Option<&Map<String, Value>>) {
        for (key, indexes) in &mut self.fields {
            let values = values_at(payload, key);
            for index in indexes {
                index.add(id, &values);
            }
        }
    }

    /// The first index on `key` that can answer `answer` (one of the kind it needs).
    fn answer(&self, key: &str, answer: impl Fn(&FieldIndex) -> Option<RoaringBitmap>) -> Option<RoaringBitmap> {
        self.fields.get(key)?.iter().find_map(answer)
    }

    /// Candidate ids for `filter` among `live`. `resolve` maps a point id to its live
    /// internal id (for `has_id`).
    pub fn candidates(
        &self,
        filter: &Filter,
        live: &RoaringBitmap,
        resolve: &dyn Fn(&PointId) -> Option<u32>,
    ) -> Candidates {
        if let Some(ids) = self.exact(filter, live, resolve) {
            return Candidates { ids, exact: true };
        }
        // Narrow by the top-level `must` conditions the indexes can answer; the rest
        // is left to the caller.
        let mut ids = live.clone();
        for c in &filter.must {
            if let Some(b) = self.condition(c, live, resolve) {
                ids &= b;
            }
        }
        Candidates { ids, exact: false }
    }

    fn exact(
        &self,
        f: &Filter,
        live: &RoaringBitmap,
        resolve: &dyn Fn(&PointId) -> Option<u32>,
    ) -> Option<RoaringBitmap> {
        let mut out = live.clone();
        for c in &f.must {
            out &= self.condition(c, live, resolve)?;
        }
        if !f.should.is_empty() {
            let mut any = RoaringBitmap::new();
            for c in &f.should {
                any |= self.condition(c, live, resolve)?;
            }
            out &= any;
        }
        for c in &f.must_not {
            out -= self.condition(c, live, resolve)?;
        }
        Some(out)
    }

    fn condition(
        &self,
        c: &Condition,
        live: &RoaringBitmap,
        resolve: &dyn Fn(&PointId) -> Option<u32>,
    ) -> Option<RoaringBitmap> {
        let hits = match c {
            Condition::Field(fc) => match (&fc.matches, &fc.range) {
                (Some(Match::Value { value }), _) => self.answer(&fc.key, |i| i.matching(value))?,
                (Some(Match::Any { any }), _) => {
                    let mut u = RoaringBitmap::new();
                    for m in any {
                        u |= self.answer(&fc.key, |i| i.matching(m))?;
                    }
                    u
                }
                (None, Some(r)) => self.answer(&fc.key, |i| i.in_range(r))?,
                (None, None) => return None,
            },
            // Presence and nulls do not depend on the kind: any index of the key knows.
            Condition::Exists { exists } => self.answer(&exists.key, |i| Some(i.present.clone()))?,
            Condition::IsNull { is_null } => self.answer(&is_null.key, |i| Some(i.nulls.clone()))?,
            Condition::HasId { has_id } => has_id.iter().filter_map(resolve).collect(),
            Condition::Filter(f) => return self.exact(f, live, resolve),
        };
        Some(hits & live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn specs() -> Vec<PayloadIndexSpec> {
        vec![
            PayloadIndexSpec { key: "color".into(), kind: PayloadIndexKind::Keyword },
            // The same field as a second kind: integer matches on it use this one.
            PayloadIndexSpec { key: "color".into(), kind: PayloadIndexKind::Integer },
            PayloadIndexSpec { key: "n".into(), kind: PayloadIndexKind::Integer },
            PayloadIndexSpec { key: "x".into(), kind: PayloadIndexKind::Float },
            PayloadIndexSpec { key: "flag".into(), kind: PayloadIndexKind::Bool },
            PayloadIndexSpec { key: "meta.tags".into(), kind: PayloadIndexKind::Keyword },
        ]
    }

    fn arb_payload() -> impl Strategy<Value = Map<String, Value>> {
        let color = prop_oneof![
            Just(json!("red")),
            Just(json!("blue")),
            Just(json!(null)),
            Just(json!(3)),
            Just(json!(["red", "green"]))
        ];
        let n = prop_oneof![(-5i64..5).prop_map(|i| json!(i)), Just(json!(2.5)), Just(json!("7")), Just(json!([1, 4]))];
        let x =
            prop_oneof![(-10.0f64..10.0).prop_map(|f| json!(f)), (-3i64..3).prop_map(|i| json!(i)), Just(json!(null))];
        let flag = prop_oneof![Just(json!(true)), Just(json!(false)), Just(json!("true"))];
        let tags = proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 0..3);
        (
            proptest::option::of(color),
            proptest::option::of(n),
            proptest::option::of(x),
            proptest::option::of(flag),
            proptest::option::of(tags),
            any::<bool>(),
        )
            .prop_map(|(c, n, x, f, t, extra)| {
                let mut m = Map::new();
                c.map(|v| m.insert("color".into(), v));
                n.map(|v| m.insert("n".into(), v));
                x.map(|v| m.insert("x".into(), v));
                f.map(|v| m.insert("flag".into(), v));
                t.map(|v| m.insert("meta".into(), json!({"tags": v})));
                if extra {
                    m.insert("unindexed".into(), json!("yes"));
                }
                m
            })
    }

    fn arb_condition() -> impl Strategy<Value = Condition> {
        let leaf = prop_oneof![
            prop_oneof![Just("red"), Just("blue"), Just("green")]
                .prop_map(|c| json!({"key": "color", "match": {"value": c}})),
            (-5i64..5).prop_map(|i| json!({"key": "n", "match": {"value": i}})),
            (-5i64..5, -5i64..5).prop_map(|(a, b)| json!({"key": "n", "match": {"any": [a, b]}})),
            (-10.0f64..10.0, 0.0f64..8.0).prop_map(|(lo, w)| json!({"key": "x", "range": {"gte": lo, "lt": lo + w}})),
            (-6.0f64..6.0).prop_map(|b| json!({"key": "n", "range": {"gt": b}})),
            any::<bool>().prop_map(|b| json!({"key": "flag", "match": {"value": b}})),
            prop_oneof![Just("a"), Just("b")].prop_map(|t| json!({"key": "meta.tags", "match": {"value": t}})),
            prop_oneof![Just("color"), Just("x"), Just("meta.tags")].prop_map(|k| json!({"exists": {"key": k}})),
            prop_oneof![Just("color"), Just("x")].prop_map(|k| json!({"is_null": {"key": k}})),
            (0u64..40).prop_map(|i| json!({"has_id": [i, i + 1]})),
            Just(json!({"key": "unindexed", "match": {"value": "yes"}})),
            Just(json!({"key": "color", "match": {"value": 3}})),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            (
                proptest::collection::vec(inner.clone(), 0..3),
                proptest::collection::vec(inner.clone(), 0..3),
                proptest::collection::vec(inner, 0..2),
            )
                .prop_map(|(must, should, must_not)| json!({"must": must, "should": should, "must_not": must_not}))
        })
        .prop_map(|v| serde_json::from_value(v).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Indexed evaluation agrees with the direct evaluator: exactly when it claims to
        /// be exact, as a superset otherwise.
        #[test]
        fn indexed_evaluation_matches_the_naive_evaluator(
            payloads in proptest::collection::vec(arb_payload(), 1..40),
            dead in proptest::collection::vec(any::<bool>(), 40),
            must in proptest::collection::vec(arb_condition(), 0..3),
            should in proptest::collection::vec(arb_condition(), 0..3),
            must_not in proptest::collection::vec(arb_condition(), 0..2),
        ) {
            let filter = Filter { must, should, must_not };
            filter.validate().unwrap();
            let mut indexes = PayloadIndexes::new(&specs());
            let mut live = RoaringBitmap::new();
            for (i, p) in payloads.iter().enumerate() {
                indexes.add(i as u32, Some(p));
                if !dead[i] {
                    live.insert(i as u32);
                }
            }
            let resolve = |id: &PointId| match id {
                PointId::Num(n) if live.contains(*n as u32) => Some(*n as u32),
                _ => None,
            };
            let want: RoaringBitmap = live
                .iter()
                .filter(|&i| filter.matches(&PointId::Num(i as u64), Some(&payloads[i as usize])))
                .collect();
            let got = indexes.candidates(&filter, &live, &resolve);
            if got.exact {
                prop_assert_eq!(got.ids, want);
            } else {
                prop_assert!(want.is_subset(&got.ids));
            }
        }
    }

    #[test]
    fn selective_keyword_filter_is_answered_exactly() {
        let mut indexes = PayloadIndexes::new(&specs());
        let mut live = RoaringBitmap::new();
        for i in 0..1000u32 {
            indexes.add(i, Some(json!({"color": if i % 100 == 0 { "red" } else { "blue" }}).as_object().unwrap()));
            live.insert(i);
        }
        let f = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
        let c = indexes.candidates(&f, &live, &|_| None);
        assert!(c.exact);
        assert_eq!(c.ids.len(), 10);
    }
}
