//! Shard behaviour against simple oracles: a BTreeMap of what was written, the direct
//! filter evaluator, and brute-force kNN.

use std::collections::BTreeMap;
use vectron_engine::ValidationError;

use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Map, Value, json};
use vectron_engine::distance::{Metric, normalize};
use vectron_engine::types::{PayloadIndexKind, PayloadIndexSpec, Tuning};
use vectron_engine::{
    Distance, EngineError, Filter, Payload, Point, PointId, SearchPlan, SearchQuery, Shard, ShardConfig, ShardId,
    Storage, WriteOp,
};

struct Fixture {
    dir: tempfile::TempDir,
    storage: Storage,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db"), Default::default()).unwrap();
        Fixture { dir, storage }
    }

    fn must_create(&self, config: ShardConfig) -> Shard {
        Shard::create(&self.storage, ShardId(1), config, &self.dir.path().join("graphs")).unwrap()
    }

    /// Closes the shard (saving its graph) and opens it again.
    fn must_reopen(&self, shard: Shard) -> Shard {
        drop(shard);
        Shard::open(&self.storage, ShardId(1), &self.dir.path().join("graphs")).unwrap()
    }

    fn graph_file(&self) -> std::path::PathBuf {
        self.dir.path().join("graphs/shard-1.graph")
    }
}

fn config(dim: usize, distance: Distance) -> ShardConfig {
    let mut c = ShardConfig::new(dim, distance);
    c.payload_indexes = vec![
        PayloadIndexSpec { key: "color".into(), kind: PayloadIndexKind::Keyword },
        PayloadIndexSpec { key: "n".into(), kind: PayloadIndexKind::Integer },
    ];
    c
}

fn obj(v: Value) -> Payload {
    Payload::from_map(v.as_object().unwrap())
}

/// A point's payload as the filter oracle reads it.
fn tree(p: &Point) -> Option<Map<String, Value>> {
    p.payload.as_ref().map(|p| p.to_map().unwrap())
}

fn random_points(n: usize, dim: usize, seed: u64) -> Vec<Point> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| Point {
            id: PointId::Num(i as u64),
            vector: (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect(),
            payload: Some(obj(json!({
                "color": (["red", "green", "blue"][i % 3]),
                "n": (i % 50) as i64,
                "free": format!("t{}", i % 7),
            }))),
        })
        .collect()
}

fn brute_force(
    distance: Distance,
    points: &BTreeMap<PointId, Point>,
    q: &[f32],
    k: usize,
    filter: Option<&Filter>,
) -> Vec<(PointId, f32)> {
    let metric = Metric::new(distance);
    let mut q = q.to_vec();
    if distance == Distance::Cosine {
        normalize(&mut q);
    }
    let mut all: Vec<(PointId, f32)> = points
        .values()
        .filter(|p| filter.is_none_or(|f| f.matches(&p.id, tree(p).as_ref())))
        .map(|p| {
            let mut v = p.vector.clone();
            if distance == Distance::Cosine {
                normalize(&mut v);
            }
            (p.id.clone(), distance.score(metric.distance(&q, &v)))
        })
        .collect();
    let better = |a: f32, b: f32| match distance {
        Distance::Euclid => a.total_cmp(&b),
        _ => b.total_cmp(&a),
    };
    all.sort_by(|a, b| better(a.1, b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn unfiltered_search_has_high_recall_for_every_distance() {
    for distance in [Distance::Euclid, Distance::Cosine, Distance::Dot] {
        let fx = Fixture::new();
        let shard = fx.must_create(config(16, distance));
        let points = random_points(3000, 16, 1);
        for chunk in points.chunks(500) {
            shard.upsert(chunk.to_vec()).unwrap();
        }
        let model: BTreeMap<PointId, Point> = points.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut hits = 0;
        for q in random_points(40, 16, 2) {
            let mut req = SearchQuery::new(q.vector.clone(), 10);
            req.ef = Some(128);
            let (got, plan) = shard.search_explained(&req).unwrap();
            assert_eq!(plan, SearchPlan::Hnsw);
            let want = brute_force(distance, &model, &q.vector, 10, None);
            hits += want.iter().filter(|w| got.iter().any(|g| g.id == w.0)).count();
            // Scores are the distance's own, best first.
            for (g, next) in got.iter().zip(got.iter().skip(1)) {
                assert!(distance.passes_threshold(g.score, next.score) || g.score == next.score);
            }
        }
        let recall = hits as f64 / 400.0;
        assert!(recall >= 0.95, "{distance:?}: recall {recall}");
    }
}

fn arb_filter() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        prop_oneof![Just("red"), Just("green"), Just("blue")]
            .prop_map(|c| json!({"key": "color", "match": {"value": c}})),
        (0i64..50).prop_map(|n| json!({"key": "n", "match": {"value": n}})),
        (0i64..50, 0i64..10).prop_map(|(lo, w)| json!({"key": "n", "range": {"gte": lo, "lt": lo + w}})),
        (0..7).prop_map(|t| json!({"key": "free", "match": {"value": format!("t{t}")}})),
        (0u64..300).prop_map(|i| json!({"has_id": [i, i + 7, i + 19]})),
    ];
    (
        proptest::collection::vec(leaf.clone(), 0..3),
        proptest::collection::vec(leaf.clone(), 0..3),
        proptest::collection::vec(leaf, 0..2),
    )
        .prop_map(|(must, should, must_not)| json!({"must": must, "should": should, "must_not": must_not}))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Filtered search on the exact path returns exactly the brute-force answer over the
    /// points the direct evaluator accepts; counts agree too.
    #[test]
    fn exact_filtered_search_matches_oracle(filter in arb_filter(), seed in 0u64..1000, k in 1usize..20) {
        let fx = Fixture::new();
        let mut cfg = config(8, Distance::Euclid);
        cfg.tuning = Tuning { exact_scan_cost_factor: 1e12, ..Tuning::default() };
        let shard = fx.must_create(cfg);
        let points = random_points(300, 8, seed);
        shard.upsert(points.clone()).unwrap();
        let deleted: Vec<PointId> = (0..300).step_by(11).map(PointId::Num).collect();
        shard.delete(deleted.clone()).unwrap();
        let mut model: BTreeMap<PointId, Point> = points.into_iter().map(|p| (p.id.clone(), p)).collect();
        deleted.iter().for_each(|d| { model.remove(d); });

        let filter = Filter::from_json(&filter).unwrap();
        let q = random_points(1, 8, seed + 1).remove(0).vector;
        let mut req = SearchQuery::new(q.clone(), k);
        req.filter = Some(filter.clone());
        let (got, plan) = shard.search_explained(&req).unwrap();
        let want = brute_force(Distance::Euclid, &model, &q, k, Some(&filter));
        if !filter.is_empty() {
            prop_assert_eq!(plan, SearchPlan::ExactScan);
        }
        let got_ids: Vec<PointId> = got.iter().map(|h| h.id.clone()).collect();
        let want_ids: Vec<PointId> = want.iter().map(|h| h.0.clone()).collect();
        if !filter.is_empty() {
            prop_assert_eq!(got_ids, want_ids);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g.score - w.1).abs() < 1e-4);
            }
        }
        let count = model.values().filter(|p| filter.matches(&p.id, tree(p).as_ref())).count();
        prop_assert_eq!(shard.count(Some(&filter)).unwrap() as usize, count);
    }
}

#[test]
fn filtered_hnsw_keeps_recall_and_falls_back_when_starved() {
    let fx = Fixture::new();
    let mut cfg = config(16, Distance::Euclid);
    // Make the graph look cheap so a 1-in-3 filter takes the filtered-HNSW path.
    cfg.tuning.exact_scan_cost_factor = 1.0;
    let shard = fx.must_create(cfg);
    let points = random_points(6000, 16, 3);
    shard.upsert(points.clone()).unwrap();
    let model: BTreeMap<PointId, Point> = points.into_iter().map(|p| (p.id.clone(), p)).collect();
    // One colour in three: large enough for filtered HNSW.
    let f = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
    let mut hits = 0;
    for q in random_points(30, 16, 4) {
        let mut req = SearchQuery::new(q.vector.clone(), 10);
        req.filter = Some(f.clone());
        req.ef = Some(100);
        let (got, plan) = shard.search_explained(&req).unwrap();
        assert_eq!(plan, SearchPlan::FilteredHnsw);
        assert!(got.iter().all(|h| matches!(h.id, PointId::Num(n) if n % 3 == 0)));
        let want = brute_force(Distance::Euclid, &model, &q.vector, 10, Some(&f));
        hits += want.iter().filter(|w| got.iter().any(|g| g.id == w.0)).count();
    }
    assert!(hits as f64 / 300.0 >= 0.95, "filtered recall {}", hits as f64 / 300.0);
    // A selective filter goes to the exact scan and is exact.
    let f = Filter::from_json(
        &json!({"must": [{"key": "n", "match": {"value": 7}}, {"key": "color", "match": {"value": "blue"}}]}),
    )
    .unwrap();
    let q = random_points(1, 16, 5).remove(0).vector;
    let mut req = SearchQuery::new(q.clone(), 5);
    req.filter = Some(f.clone());
    let (got, plan) = shard.search_explained(&req).unwrap();
    assert_eq!(plan, SearchPlan::ExactScan);
    let want: Vec<PointId> = brute_force(Distance::Euclid, &model, &q, 5, Some(&f)).into_iter().map(|x| x.0).collect();
    assert_eq!(got.into_iter().map(|h| h.id).collect::<Vec<_>>(), want);
}

#[test]
fn bad_input_is_a_typed_error_and_writes_nothing() {
    let fx = Fixture::new();
    let mut cfg = config(4, Distance::Cosine);
    cfg.limits.max_payload_bytes = 100;
    let shard = fx.must_create(cfg);
    let good = |id: u64| Point { id: PointId::Num(id), vector: vec![1.0, 0.0, 0.0, 0.0], payload: None };
    type Expect = fn(&EngineError) -> bool;
    let cases: Vec<(Point, Expect)> = vec![
        (Point { vector: vec![1.0, 2.0], ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::DimensionMismatch { expected: 4, got: 2 }))
        }),
        (Point { vector: vec![], ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidVector { .. }))
        }),
        (Point { vector: vec![f32::NAN, 0.0, 0.0, 1.0], ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidVector { .. }))
        }),
        (Point { vector: vec![f32::INFINITY, 0.0, 0.0, 1.0], ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidVector { .. }))
        }),
        (Point { vector: vec![0.0; 4], ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidVector { .. }))
        }),
        (Point { id: PointId::Str(String::new()), ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidPointId { .. }))
        }),
        (Point { id: PointId::Str("x".repeat(257)), ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidPointId { .. }))
        }),
        (Point { payload: Some(obj(json!({"big": "y".repeat(200)}))), ..good(1) }, |e| {
            matches!(e, EngineError::Invalid(ValidationError::InvalidPayload { .. }))
        }),
    ];
    for (bad, is_expected) in cases {
        // The bad point travels with a good one: the whole batch must be refused.
        let err = shard.upsert(vec![good(100), bad]).unwrap_err();
        assert!(is_expected(&err), "unexpected error {err:?}");
        assert!(!err.is_retryable());
        assert_eq!(shard.len(), 0, "a refused batch wrote something");
    }
    assert!(matches!(shard.upsert(vec![]), Err(EngineError::Invalid(ValidationError::InvalidArgument { .. }))));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let err = shard.upsert(vec![Point { payload: Some(obj(json!({"d": deep}))), ..good(1) }]).unwrap_err();
    assert!(matches!(err, EngineError::Invalid(ValidationError::InvalidPayload { .. })));
    // Searches validate too.
    shard.upsert(vec![good(1)]).unwrap();
    assert!(matches!(
        shard.search(&SearchQuery::new(vec![1.0; 3], 1)),
        Err(EngineError::Invalid(ValidationError::DimensionMismatch { .. }))
    ));
    assert!(matches!(
        shard.search(&SearchQuery::new(vec![1.0; 4], 0)),
        Err(EngineError::Invalid(ValidationError::InvalidArgument { .. }))
    ));
    let mut huge_ef = SearchQuery::new(vec![1.0; 4], 1);
    huge_ef.ef = Some(1_000_000_000);
    assert!(matches!(shard.search(&huge_ef), Err(EngineError::Invalid(ValidationError::InvalidArgument { .. }))));
    let mut nan_threshold = SearchQuery::new(vec![1.0; 4], 1);
    nan_threshold.score_threshold = Some(f32::NAN);
    assert!(matches!(shard.search(&nan_threshold), Err(EngineError::Invalid(ValidationError::InvalidArgument { .. }))));
    let mut req = SearchQuery::new(vec![1.0; 4], 1);
    req.filter = Some(Filter {
        must: vec![serde_json::from_value(json!({"key": "a", "range": {}})).unwrap()],
        ..Filter::default()
    });
    assert!(matches!(shard.search(&req), Err(EngineError::Invalid(ValidationError::InvalidFilter { .. }))));
    // And the shard still serves.
    assert_eq!(shard.search(&SearchQuery::new(vec![1.0, 0.1, 0.0, 0.0], 1)).unwrap()[0].id, PointId::Num(1));
}

#[test]
fn upsert_replaces_and_delete_removes() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(2, Distance::Euclid));
    let p = |id: &str, x: f32, color: &str| Point {
        id: PointId::Str(id.into()),
        vector: vec![x, 0.0],
        payload: Some(obj(json!({"color": color}))),
    };
    shard.upsert(vec![p("a", 0.0, "red"), p("b", 5.0, "red"), p("a", 1.0, "blue")]).unwrap();
    assert_eq!(shard.len(), 2);
    let got = shard.get(&[PointId::Str("a".into()), PointId::Str("zz".into())], true, true).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vector.as_deref(), Some(&[1.0, 0.0][..]));
    assert_eq!(got[0].payload.as_ref().unwrap()["color"], "blue");
    let red = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
    assert_eq!(shard.count(Some(&red)).unwrap(), 1, "the old payload of 'a' must not match any more");
    shard.upsert(vec![p("b", 5.0, "blue")]).unwrap();
    assert_eq!(shard.count(Some(&red)).unwrap(), 0);
    let hits = shard.search(&SearchQuery::new(vec![0.0, 0.0], 10)).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
        vec![PointId::Str("a".into()), PointId::Str("b".into())]
    );
    assert_eq!(hits[0].score, 1.0);
    let mut req = SearchQuery::new(vec![0.0, 0.0], 10);
    req.score_threshold = Some(2.0);
    assert_eq!(shard.search(&req).unwrap().len(), 1);
    let blue = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "blue"}}]})).unwrap();
    assert_eq!(shard.delete_by_filter(blue).unwrap(), 2);
    assert!(shard.is_empty());
    assert!(shard.search(&SearchQuery::new(vec![0.0, 0.0], 10)).unwrap().is_empty());
    assert_eq!(shard.delete(vec![PointId::Str("a".into())]).unwrap(), 0);
}

#[test]
fn replayed_log_indexes_change_nothing() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(2, Distance::Euclid));
    let pt = |id: u64| Point { id: PointId::Num(id), vector: vec![id as f32, 0.0], payload: None };
    assert!(shard.apply(5, WriteOp::Upsert(vec![pt(1)])).unwrap().applied);
    let replay = shard.apply(5, WriteOp::Delete(vec![PointId::Num(1)])).unwrap();
    assert!(!replay.applied);
    assert!(!shard.apply(3, WriteOp::Upsert(vec![pt(2)])).unwrap().applied);
    assert_eq!(shard.len(), 1);
    assert_eq!(shard.applied_index(), 5);
}

#[test]
fn scroll_pages_through_matching_points_in_id_order() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(4, Distance::Euclid));
    shard.upsert(random_points(250, 4, 9)).unwrap();
    let red = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = shard.scroll(Some(&red), cursor.as_ref(), 30, true, false).unwrap();
        assert!(page.points.len() <= 30);
        seen.extend(page.points.iter().map(|r| r.id.clone()));
        assert!(page.points.iter().all(|r| r.payload.as_ref().unwrap()["color"] == "red" && r.vector.is_none()));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let want: Vec<PointId> = (0..250u64).filter(|i| i % 3 == 0).map(PointId::Num).collect();
    assert_eq!(seen, want);
    assert!(shard.scroll(None, None, 0, false, false).is_err());
}

#[test]
fn many_deletes_trigger_a_background_rebuild_that_loses_no_concurrent_write() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(8, Distance::Euclid));
    let points = random_points(4000, 8, 11);
    shard.upsert(points.clone()).unwrap();
    let mut model: BTreeMap<PointId, Point> = points.iter().map(|p| (p.id.clone(), p.clone())).collect();
    let gone: Vec<PointId> = (0..4000u64).filter(|i| i % 4 != 0).map(PointId::Num).collect();
    shard.delete(gone.clone()).unwrap();
    gone.iter().for_each(|g| {
        model.remove(g);
    });
    // The rebuild now runs in the background; writes keep landing meanwhile: new
    // points, updates (new vector and payload) of survivors, deletes of survivors.
    let fresh: Vec<Point> = random_points(300, 8, 12)
        .into_iter()
        .enumerate()
        .map(|(i, p)| Point { id: PointId::Str(format!("new-{i}")), ..p })
        .collect();
    for chunk in fresh.chunks(50) {
        shard.upsert(chunk.to_vec()).unwrap();
        chunk.iter().for_each(|p| {
            model.insert(p.id.clone(), p.clone());
        });
    }
    let updated: Vec<Point> = (0..100u64)
        .map(|i| Point {
            id: PointId::Num(i * 8),
            vector: vec![50.0 + i as f32; 8],
            payload: Some(obj(json!({"color": "violet", "n": 99}))),
        })
        .collect();
    shard.upsert(updated.clone()).unwrap();
    updated.iter().for_each(|p| {
        model.insert(p.id.clone(), p.clone());
    });
    let dropped: Vec<PointId> = (0..50u64).map(|i| PointId::Num(i * 8 + 4)).collect();
    shard.delete(dropped.clone()).unwrap();
    dropped.iter().for_each(|d| {
        model.remove(d);
    });

    shard.complete_pending_rebuild().unwrap();
    let stats = shard.graph_stats();
    assert!(stats.deleted < 200 && stats.nodes < 1700, "the graph was not rebuilt: {stats:?}");
    assert_eq!(shard.len(), model.len());
    // Every point the model holds is there, with its latest vector and payload, and is
    // found by its own vector; nothing else is there.
    let all = shard.scroll(None, None, 10_000, true, true).unwrap().points;
    assert_eq!(all.len(), model.len());
    for r in &all {
        let want = &model[&r.id];
        assert_eq!(r.vector.as_ref(), Some(&want.vector), "{}", r.id);
        assert_eq!(r.payload, tree(want), "{}", r.id);
        let mut req = SearchQuery::new(want.vector.clone(), 1);
        req.ef = Some(128);
        assert_eq!(shard.search(&req).unwrap()[0].id, r.id);
    }
    for f in [
        json!({"must": [{"key": "color", "match": {"value": "violet"}}]}),
        json!({"must": [{"key": "color", "match": {"value": "red"}}]}),
        json!({"must": [{"key": "n", "range": {"gte": 10, "lt": 20}}]}),
    ] {
        let f = Filter::from_json(&f).unwrap();
        let want = model.values().filter(|p| f.matches(&p.id, tree(p).as_ref())).count();
        assert_eq!(shard.count(Some(&f)).unwrap() as usize, want, "{f:?}");
    }
}

#[test]
fn reopen_uses_the_graph_file_and_survives_a_stale_or_corrupt_one() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(8, Distance::Euclid));
    let points = random_points(1500, 8, 13);
    shard.upsert(points[..1000].to_vec()).unwrap();
    shard.persist().unwrap();
    let stale = std::fs::read(fx.graph_file()).unwrap();
    // Writes after the save: new points, a replaced one, a deleted one.
    shard.upsert(points[1000..].to_vec()).unwrap();
    let moved = Point { vector: vec![9.0; 8], ..points[5].clone() };
    shard.upsert(vec![moved.clone()]).unwrap();
    shard.delete(vec![PointId::Num(6)]).unwrap();

    let check = |shard: &Shard| {
        assert_eq!(shard.len(), 1499);
        assert_eq!(shard.search(&SearchQuery::new(vec![9.0; 8], 1)).unwrap()[0].id, PointId::Num(5));
        assert!(shard.get(&[PointId::Num(6)], false, false).unwrap().is_empty());
        for p in points.iter().skip(7).step_by(37) {
            assert_eq!(shard.search(&SearchQuery::new(p.vector.clone(), 1)).unwrap()[0].id, p.id);
        }
        let red = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
        assert_eq!(shard.count(Some(&red)).unwrap(), 499, "500 red points, one of them (6) deleted");
    };
    // Clean close: the file is current.
    let shard = fx.must_reopen(shard);
    check(&shard);
    // A stale file is reconciled with RocksDB.
    drop(shard);
    std::fs::write(fx.graph_file(), &stale).unwrap();
    let shard = Shard::open(&fx.storage, ShardId(1), &fx.dir.path().join("graphs")).unwrap();
    check(&shard);
    // A corrupt file is ignored and the graph rebuilt.
    drop(shard);
    let mut bad = std::fs::read(fx.graph_file()).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xFF;
    std::fs::write(fx.graph_file(), &bad).unwrap();
    let shard = Shard::open(&fx.storage, ShardId(1), &fx.dir.path().join("graphs")).unwrap();
    check(&shard);
    // No file at all.
    drop(shard);
    std::fs::remove_file(fx.graph_file()).unwrap();
    let shard = Shard::open(&fx.storage, ShardId(1), &fx.dir.path().join("graphs")).unwrap();
    check(&shard);
    shard.destroy().unwrap();
    assert!(!fx.graph_file().exists());
    assert!(Shard::open(&fx.storage, ShardId(1), &fx.dir.path().join("graphs")).is_err());
}

#[test]
fn a_graph_saved_during_writes_spares_a_crashed_shard_every_write_it_covers() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(8, Distance::Euclid));
    let points = random_points(8000, 8, 21);
    for batch in points[..4000].chunks(500) {
        shard.upsert(batch.to_vec()).unwrap();
    }
    let written = std::sync::atomic::AtomicUsize::new(4000);
    let covered = std::thread::scope(|s| {
        s.spawn(|| {
            for batch in points[4000..].chunks(50) {
                shard.upsert(batch.to_vec()).unwrap();
                written.fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
            }
        });
        while written.load(std::sync::atomic::Ordering::SeqCst) < 4500 {
            std::thread::yield_now();
        }
        let covered = written.load(std::sync::atomic::Ordering::SeqCst);
        shard.persist().unwrap();
        covered
    });
    assert!(covered < 8000, "the save ran after the writes");
    // A crash: the shard is never closed (closing would save the graph again).
    std::mem::forget(shard);
    let shard = Shard::open(&fx.storage, ShardId(1), &fx.dir.path().join("graphs")).unwrap();
    let reinserted = shard.unsaved_writes() as usize;
    assert!(reinserted <= 8000 - covered, "{reinserted} points re-inserted, the save covered {covered} of 8000");
    assert_eq!(shard.len(), 8000);
    for p in points.iter().step_by(41) {
        assert_eq!(shard.search(&SearchQuery::new(p.vector.clone(), 1)).unwrap()[0].id, p.id);
    }
    let red = Filter::from_json(&json!({"must": [{"key": "color", "match": {"value": "red"}}]})).unwrap();
    let want = points.iter().filter(|p| red.matches(&p.id, tree(p).as_ref())).count();
    assert_eq!(shard.count(Some(&red)).unwrap() as usize, want);
}

#[test]
fn creating_with_another_config_is_refused() {
    let fx = Fixture::new();
    drop(fx.must_create(config(4, Distance::Euclid)));
    let err =
        Shard::create(&fx.storage, ShardId(1), config(8, Distance::Euclid), &fx.dir.path().join("graphs")).unwrap_err();
    assert!(matches!(err, EngineError::Invalid(ValidationError::InvalidArgument { .. })));
    let err =
        Shard::create(&fx.storage, ShardId(2), config(0, Distance::Euclid), &fx.dir.path().join("graphs")).unwrap_err();
    assert!(matches!(err, EngineError::Invalid(ValidationError::InvalidArgument { .. })));
}

#[test]
fn concurrent_readers_never_see_half_a_batch() {
    let fx = Fixture::new();
    let shard = fx.must_create(config(8, Distance::Euclid));
    let batches = 150u64;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for b in 0..batches {
                let points: Vec<Point> = random_points(20, 8, b)
                    .into_iter()
                    .enumerate()
                    .map(|(j, p)| Point {
                        id: PointId::Num(b * 20 + j as u64),
                        payload: Some(obj(json!({"n": (b % 50) as i64, "color": "red"}))),
                        ..p
                    })
                    .collect();
                shard.upsert(points).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        s.spawn(|| {
            let mut checks = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) || checks < 50 {
                // Each n value is written 20 points at a time: counts move in steps of 20.
                let f = Filter::from_json(&json!({"must": [{"key": "n", "match": {"value": checks % 50}}]})).unwrap();
                let c = shard.count(Some(&f)).unwrap();
                assert_eq!(c % 20, 0, "saw {c} points of one batch value");
                let before = shard.count(None).unwrap();
                assert_eq!(before % 20, 0);
                let hits = shard.search(&SearchQuery::new(vec![0.5; 8], 10)).unwrap();
                let after = shard.count(None).unwrap();
                let n = hits.len() as u64;
                assert!(before.min(10) <= n && n <= after.min(10), "{n} hits with {before}..{after} points");
                checks += 1;
            }
        });
    });
    assert_eq!(shard.len() as u64, batches * 20);
}
