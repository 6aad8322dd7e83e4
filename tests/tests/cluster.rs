//! Cluster tests with real processes on loopback: shard leader failover under writes,
//! replica replacement, placement leader failover, whole-cluster restart, and the HTTP
//! and gRPC APIs agreeing (typed errors included).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use vectron_sdk::{Client, Collection, Consistency, Distance, ErrorCode, Point, PointId};
use vectron_tests::client::{all_shards_led, leaders, must_connect, must_create, must_have_workers_up};
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};
use vectron_tests::crash_vector;

const DIM: u32 = vectron_tests::CRASH_DIM as u32;

fn point(id: u64) -> Point {
    Point::new(id, crash_vector(id)).with_payload(json!({"n": id, "even": id.is_multiple_of(2)}))
}

/// Reads `ids` back in batches; returns the ones found.
async fn present(client: &Client, name: &str, ids: &[u64]) -> BTreeSet<u64> {
    let mut found = BTreeSet::new();
    for chunk in ids.chunks(500) {
        let ids: Vec<PointId> = chunk.iter().map(|&i| PointId::Num(i)).collect();
        let records = client.get(name, &ids, true).await.expect("get");
        for r in records {
            let PointId::Num(n) = r.id else { panic!("unexpected id {:?}", r.id) };
            assert_eq!(r.vector.as_deref(), Some(&crash_vector(n)[..]), "point {n} has the vector it was written with");
            found.insert(n);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_shard_leaders_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "failover";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(4).replication_factor(3), &cluster).await;
    eventually(Duration::from_secs(30), "every shard to have a leader", || async {
        all_shards_led(&client, name, 4).await.then_some(())
    })
    .await;

    // Writers: batches of 25 fresh ids; an acknowledged batch is recorded.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let attempted: Arc<Mutex<Vec<u64>>> = Arc::default();
    let last_ack = Arc::new(Mutex::new(Instant::now()));
    let max_write_gap = Arc::new(Mutex::new(Duration::ZERO));
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(1));
    let mut writers = Vec::new();
    for _ in 0..2 {
        let (client, acked, attempted, stop, next_id) =
            (client.clone(), acked.clone(), attempted.clone(), stop.clone(), next_id.clone());
        let (last_ack, max_write_gap) = (last_ack.clone(), max_write_gap.clone());
        writers.push(tokio::spawn(async move {
            let client = client.with_retry_budget(Duration::from_secs(20));
            while !stop.load(Ordering::Relaxed) {
                let first = next_id.fetch_add(25, Ordering::Relaxed);
                let ids: Vec<u64> = (first..first + 25).collect();
                attempted.lock().extend(&ids);
                if client.upsert(name, ids.iter().map(|&i| point(i)).collect()).await.is_ok() {
                    acked.lock().extend(&ids);
                    let now = Instant::now();
                    let mut last = last_ack.lock();
                    let gap = now.duration_since(*last);
                    let mut max = max_write_gap.lock();
                    *max = (*max).max(gap);
                    *last = now;
                }
            }
        }));
    }
    // Searches keep running; record the longest stretch without an answer.
    let search_gap = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let client = client.with_retry_budget(Duration::from_secs(0));
            let mut last = Instant::now();
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                if client.search(name, crash_vector(7), 5).send().await.is_ok() {
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            worst.max(last.elapsed())
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = acked.lock().len();
    assert!(before_kill > 0, "writes were acknowledged before the kill\n{}", cluster.logs(30));
    // Kill the worker leading the most shards.
    let by_worker = leaders(&client, name).await;
    let (victim_addr, led) = by_worker.iter().max_by_key(|(_, s)| s.len()).expect("some leader");
    let victim = cluster.worker_at(victim_addr).expect("victim is one of ours");
    eprintln!("killing {} which leads shards {led:?}", cluster.workers[victim].name);
    *max_write_gap.lock() = Duration::ZERO;
    *last_ack.lock() = Instant::now();
    cluster.workers[victim].kill();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let gap_during_failover = *max_write_gap.lock();
    cluster.workers[victim].restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let worst_search_gap = search_gap.await.unwrap();
    let acked: Vec<u64> = acked.lock().clone();
    let attempted: Vec<u64> = attempted.lock().clone();
    assert!(acked.len() > before_kill, "writes resumed after the kill\n{}", cluster.logs(40));
    eprintln!(
        "acknowledged {} of {} points; longest write gap after the kill {gap_during_failover:?}; \
         longest search gap {worst_search_gap:?}",
        acked.len(),
        attempted.len()
    );

    // Every acknowledged write is readable (with its vector), through the leaders.
    let found = present(&client, name, &attempted).await;
    let missing: Vec<&u64> = acked.iter().filter(|i| !found.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged points lost: {:?}…\n{}",
        &missing[..missing.len().min(10)],
        cluster.logs(40)
    );
    // Nothing appears twice and nothing appears that was never written.
    let count = client.count(name, None).await.expect("count");
    assert_eq!(count as usize, found.len(), "count agrees with the points found (no duplicates)");
    let attempted_set: BTreeSet<u64> = attempted.iter().copied().collect();
    assert!(found.is_subset(&attempted_set));
    assert!(gap_during_failover < Duration::from_secs(15), "writes resumed within 15 s ({gap_during_failover:?})");
    assert!(worst_search_gap < Duration::from_secs(15), "searches answered again within 15 s ({worst_search_gap:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_and_grpc_agree_and_bad_input_gets_typed_errors() {
    let cluster = Cluster::start(ClusterSpec { workers: 1, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "api";
    must_create(&client, Collection::new(name, 4, Distance::Cosine).shards(2), &cluster).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", cluster.http);

    // Upsert through HTTP, read through both.
    let points: Vec<Value> = (1..=20)
        .map(|i: u64| json!({"id": i, "vector": [i as f32, 1.0, 0.5, -0.25], "payload": {"i": i, "tag": if i.is_multiple_of(2) {"even"} else {"odd"}}}))
        .chain([json!({"id": "doc-a", "vector": [0.1, 0.2, 0.3, 0.4], "payload": {"tag": "text"}})])
        .collect();
    let r = http.post(url("/v1/collections/api/points")).json(&json!({"points": points})).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let query = [3.0f32, 1.0, 0.5, -0.25];
    let filter = json!({"must": [{"key": "tag", "match": {"value": "odd"}}]});
    let r: Value = http
        .post(url("/v1/collections/api/points/search"))
        .json(&json!({"vector": query, "top_k": 5, "filter": filter}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let http_ids: Vec<Value> = r["hits"].as_array().unwrap().iter().map(|h| h["id"].clone()).collect();
    let f = vectron_sdk::Filter::from_json(&filter).unwrap();
    let grpc = client.search(name, query.to_vec(), 5).filter(&f).unwrap().send().await.unwrap();
    let grpc_ids: Vec<Value> = grpc.hits.iter().map(|h| serde_json::to_value(&h.id).unwrap()).collect();
    assert_eq!(http_ids, grpc_ids, "HTTP and gRPC search give the same hits");
    assert_eq!(grpc.hits.len(), 5);
    assert!(grpc.hits.iter().all(|h| h.payload.as_ref().is_none()), "no payload unless asked");
    let count: Value =
        http.post(url("/v1/collections/api/points/count")).json(&json!({})).send().await.unwrap().json().await.unwrap();
    assert_eq!(count["count"], 21);
    assert_eq!(client.count(name, None).await.unwrap(), 21);
    let one: Value = http.get(url("/v1/collections/api/points/doc-a")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["point"]["payload"]["tag"], "text");
    let got = client.get(name, &[PointId::Str("doc-a".into())], false).await.unwrap();
    assert_eq!(got[0].payload.as_ref().unwrap()["tag"], "text");

    // LINEARIZABLE (read index) and ANY reads agree with the default on a quiet cluster.
    for consistency in [Consistency::Linearizable, Consistency::Any] {
        let r =
            client.search(name, query.to_vec(), 5).filter(&f).unwrap().consistency(consistency).send().await.unwrap();
        let ids: Vec<Value> = r.hits.iter().map(|h| serde_json::to_value(&h.id).unwrap()).collect();
        assert_eq!(ids, grpc_ids, "{consistency:?}");
    }
    // SearchStream (the SDK's pipelined searches) answers each search, in order, like
    // the unary call; a bad search gets its typed error and ends the stream.
    let mut stream = client.search_stream().await.unwrap();
    let queries: Vec<Vec<f32>> = (1..=3).map(|i| vec![i as f32 * 5.0, 1.0, 0.5, -0.25]).collect();
    for q in &queries {
        stream.send(client.search(name, q.clone(), 3)).await.unwrap();
    }
    for q in &queries {
        let streamed = stream.next().await.expect("one answer per search").unwrap();
        let unary = client.search(name, q.clone(), 3).send().await.unwrap();
        let a: Vec<(PointId, f32)> = streamed.hits.iter().map(|h| (h.id.clone(), h.score)).collect();
        let b: Vec<(PointId, f32)> = unary.hits.iter().map(|h| (h.id.clone(), h.score)).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
    }
    assert!(stream.next().await.is_none(), "nothing pending");
    let e = stream.search(client.search(name, vec![1.0; 7], 3)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::DimensionMismatch, "{e:?}");
    assert!(stream.search(client.search(name, queries[0].clone(), 3)).await.is_err(), "the stream ended");

    // wait=false answers before the write is applied; it becomes visible shortly.
    let quick: Vec<Value> = (500..510).map(|i: u64| json!({"id": i, "vector": [1.0, i as f32, 0.0, 0.5]})).collect();
    let r: Value = http
        .post(url("/v1/collections/api/points"))
        .json(&json!({"points": quick, "wait": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["upserted"], 10, "{r}");
    eventually(Duration::from_secs(10), "the unawaited write to be applied", || async {
        (client.count(name, None).await.ok()? == 31).then_some(())
    })
    .await;
    let ids: Vec<PointId> = (500..510).map(PointId::Num).collect();
    assert_eq!(client.delete(name, &ids).await.unwrap(), 10);

    // Scroll over both shards visits every point once.
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let (page, next) = client.scroll(name, None, 7, cursor).await.unwrap();
        for r in page {
            assert!(seen.insert(format!("{:?}", r.id)), "scroll repeats {:?}", r.id);
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 21);

    // Typed errors, the same on both transports.
    let cases: Vec<(&str, &str, Value, u16, ErrorCode)> = vec![
        (
            "POST",
            "/v1/collections/nope/points/search",
            json!({"vector": query, "top_k": 3}),
            404,
            ErrorCode::CollectionNotFound,
        ),
        (
            "POST",
            "/v1/collections/api/points/search",
            json!({"vector": [1.0, 2.0], "top_k": 3}),
            400,
            ErrorCode::DimensionMismatch,
        ),
        (
            "POST",
            "/v1/collections/api/points",
            json!({"points": [{"id": 1, "vector": [1.0, 2.0, 3.0]}]}),
            400,
            ErrorCode::DimensionMismatch,
        ),
        (
            "POST",
            "/v1/collections/api/points/search",
            json!({"vector": query, "top_k": 3, "filter": {"must": [{"key": "", "match": {"value": 1}}]}}),
            400,
            ErrorCode::InvalidFilter,
        ),
        (
            "POST",
            "/v1/collections",
            json!({"name": "bad name!", "dimension": 4, "distance": "cosine"}),
            400,
            ErrorCode::InvalidArgument,
        ),
        (
            "POST",
            "/v1/collections",
            json!({"name": "api", "dimension": 4, "distance": "cosine"}),
            409,
            ErrorCode::CollectionAlreadyExists,
        ),
        ("GET", "/v1/collections/api/points/999999", Value::Null, 404, ErrorCode::PointNotFound),
        // A payload is an object, of at most 64 KiB as compact JSON, nested at most 32 deep.
        (
            "POST",
            "/v1/collections/api/points",
            json!({"points": [{"id": 1, "vector": [1.0, 2.0, 3.0, 4.0], "payload": [1, 2]}]}),
            400,
            ErrorCode::InvalidArgument,
        ),
        (
            "POST",
            "/v1/collections/api/points",
            json!({"points": [{"id": 1, "vector": [1.0, 2.0, 3.0, 4.0], "payload": {"big": "y".repeat(70_000)}}]}),
            400,
            ErrorCode::InvalidPayload,
        ),
        (
            "POST",
            "/v1/collections/api/points",
            json!({"points": [{"id": 1, "vector": [1.0, 2.0, 3.0, 4.0], "payload": {"deep": (0..40).fold(json!(1), |v, _| json!([v]))}}]}),
            400,
            ErrorCode::InvalidPayload,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let req = if method == "GET" { http.get(url(path)) } else { http.post(url(path)).json(&body) };
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code.as_str_name(), "{method} {path}: {body}");
    }
    // Malformed JSON is a typed 400 and the server keeps serving.
    let r = http
        .post(url("/v1/collections/api/points"))
        .header("content-type", "application/json")
        .body("{\"points\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "INVALID_ARGUMENT");
    // A payload sent pretty-printed (as Python's json.dumps does) is stored compact and
    // reads back as sent, whitespace inside its strings kept.
    let pretty = "{\"points\": [{\"id\": \"doc-b\", \"vector\": [0.4, 0.3, 0.2, 0.1],\n \"payload\": {\n  \"title\" : \"a  b\\n c\",\t\"n\" : [ 1 , 2.5 ] , \"n\": [3] } }]}";
    let r = http.post(url("/v1/collections/api/points")).header("content-type", "application/json").body(pretty);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let one: Value = http.get(url("/v1/collections/api/points/doc-b")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["point"]["payload"], json!({"title": "a  b\n c", "n": [3]}), "a repeated key: the last one wins");
    assert_eq!(client.delete(name, &[PointId::Str("doc-b".into())]).await.unwrap(), 1);
    // A batch with one NaN writes nothing (the JSON number cannot be NaN: use gRPC).
    let bad = vec![Point::new(100u64, vec![1.0, 2.0, 3.0, 4.0]), Point::new(101u64, vec![f32::NAN, 2.0, 3.0, 4.0])];
    let e = client.upsert(name, bad).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidVector);
    assert_eq!(client.count(name, None).await.unwrap(), 21, "a refused batch writes nothing");
    let e = client.search("nope", query.to_vec(), 3).send().await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CollectionNotFound);
    let e = client.search(name, vec![1.0, 2.0], 3).send().await.unwrap_err();
    assert_eq!(e.code, ErrorCode::DimensionMismatch);
    let health = http.get(url("/v1/system/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let spec: Value = http.get(url("/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/v1/collections/{name}/points/search"]["post"].is_object(), "{spec}");
    let metrics = http.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("vectron_requests_total"), "{metrics}");
    assert!(metrics.contains("vectron_shard_leader"), "{metrics}");
    let cpu = metrics.lines().find_map(|l| l.strip_prefix("process_cpu_seconds_total ")).map(|v| v.parse::<f64>());
    assert!(matches!(cpu, Some(Ok(s)) if s > 0.0), "the process's CPU time is exported: {metrics}");
    let search_ok = metrics.lines().any(|l| {
        l.starts_with("vectron_requests_total{")
            && l.contains("protocol=\"grpc\"")
            && l.contains("route=\"/vectron.v1.VectronService/Search\"")
            && l.contains("status=\"0\"")
    });
    assert!(search_ok, "gRPC searches are counted: {metrics}");
    let not_found = metrics.lines().any(|l| {
        l.contains("protocol=\"grpc\"") && l.contains("/vectron.v1.VectronService/Search") && l.contains("status=\"5\"")
    });
    assert!(not_found, "a NOT_FOUND search is counted with its status: {metrics}");
    let http_search = metrics.lines().any(|l| {
        l.starts_with("vectron_requests_total{")
            && l.contains("protocol=\"http\"")
            && l.contains("route=\"/v1/collections/{name}/points/search\"")
            && l.contains("status=\"200\"")
    });
    assert!(http_search, "HTTP searches are counted: {metrics}");
    // Per collection, both transports together; names no collection has are `unknown`.
    let per_collection = |collection: &str, operation: &str, code: &str| {
        let labels =
            [format!("code=\"{code}\""), format!("collection=\"{collection}\""), format!("operation=\"{operation}\"")];
        metrics.lines().find_map(|l| {
            let (series, value) = l.strip_prefix("vectron_collection_requests_total{")?.rsplit_once(' ')?;
            let mut have: Vec<&str> = series.trim_end_matches('}').split(',').collect();
            have.sort_unstable();
            (have == labels.iter().map(String::as_str).collect::<Vec<_>>()).then(|| value.parse::<u64>().ok()).flatten()
        })
    };
    assert!(per_collection(name, "search", "OK").is_some_and(|n| n >= 2), "{metrics}");
    assert!(per_collection(name, "search", "DIMENSION_MISMATCH").is_some_and(|n| n >= 1), "{metrics}");
    assert!(per_collection(name, "upsert", "OK").is_some_and(|n| n >= 1), "{metrics}");
    assert!(per_collection("unknown", "search", "COLLECTION_NOT_FOUND").is_some_and(|n| n >= 1), "{metrics}");
    assert!(!metrics.contains("collection=\"nope\""), "made-up names add no series: {metrics}");
    let timed = metrics.lines().any(|l| {
        l.starts_with("vectron_collection_request_seconds_count{")
            && l.contains(&format!("collection=\"{name}\""))
            && l.contains("operation=\"upsert\"")
    });
    assert!(timed, "upserts are timed per collection: {metrics}");
}

/// Shard id → (target replicas' worker addresses, leader address) from the status.
async fn placement_of(client: &Client, name: &str) -> Vec<(Vec<String>, Option<String>, Vec<i32>)> {
    let status = client.collection_status(name).await.expect("status");
    status
        .shards
        .iter()
        .map(|s| {
            let addrs = s.replicas.iter().map(|r| r.worker_address.clone()).collect();
            let leader = s.replicas.iter().find(|r| r.is_leader).map(|r| r.worker_address.clone());
            let states = s.replicas.iter().map(|r| r.state).collect();
            (addrs, leader, states)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_worker_is_replaced_and_the_new_replica_has_the_data() {
    // Logs compact every 10 entries and keep none, so the new replica is usually sent
    // the shards' data (a snapshot file, in chunks) rather than their logs.
    let compaction = ["--snapshot-after-entries", "10", "--log-entries-kept", "0"];
    let mut cluster = Cluster::start(ClusterSpec {
        workers: 3,
        replace_after_secs: 2.0,
        down_after_secs: 2.0,
        worker_args: compaction.iter().map(|s| s.to_string()).collect(),
        ..ClusterSpec::default()
    });
    let client = must_connect(&cluster).await;
    let name = "heal";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(2).replication_factor(3), &cluster).await;
    let ids: Vec<u64> = (1..=600).collect();
    for chunk in ids.chunks(20) {
        client.upsert(name, chunk.iter().map(|&i| point(i)).collect()).await.expect("upsert");
    }
    let dead = 2;
    let dead_addr = cluster.workers[dead].addr.clone();
    cluster.workers[dead].kill();
    let fresh = cluster.add_worker();
    let fresh_addr = cluster.workers[fresh].addr.clone();
    // The scheduler moves the dead worker's replicas to the new one, which receives
    // them by snapshot and becomes a voter.
    eventually(Duration::from_secs(60), "RF=3 restored without the dead worker", || async {
        let p = placement_of(&client, name).await;
        let healed = p.iter().all(|(addrs, leader, states)| {
            addrs.len() == 3
                && !addrs.contains(&dead_addr)
                && addrs.contains(&fresh_addr)
                && leader.is_some()
                && states.iter().all(|s| *s == vectron_proto::v1::ReplicaState::Active as i32)
        });
        healed.then_some(())
    })
    .await;
    // Usually both shards arrive by snapshot; openraft may still hold a log back for a
    // follower it replicated to lately, so a shard can arrive by log (the data check
    // below holds either way; the snapshot path itself is tested in vectron-worker).
    let log = cluster.workers[fresh].log_tail(1000);
    let by_snapshot = log.lines().filter(|l| l.contains("snapshot installed")).count();
    eprintln!("shard replicas that arrived by snapshot: {by_snapshot}");
    // Kill one of the two old replicas: the remaining majority (one old replica and
    // the new one) must still serve every point, so the new replica holds them all.
    let survivor_to_kill = (0..2).find(|&i| i != dead).unwrap();
    cluster.workers[survivor_to_kill].kill();
    eventually(Duration::from_secs(30), "the shards to elect leaders among the two live replicas", || async {
        let p = placement_of(&client, name).await;
        p.iter()
            .all(|(_, leader, _)| leader.as_ref().is_some_and(|l| *l != cluster.workers[survivor_to_kill].addr))
            .then_some(())
    })
    .await;
    let found = present(&client, name, &ids).await;
    assert_eq!(
        found.len(),
        ids.len(),
        "every point is readable with the new replica in the quorum\n{}",
        cluster.logs(30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placement_leader_failover_keeps_routing_working() {
    let mut cluster = Cluster::start(ClusterSpec { placement_nodes: 3, workers: 1, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    must_create(&client, Collection::new("before", DIM, Distance::Dot), &cluster).await;
    client.upsert("before", (1..=50).map(point).collect()).await.expect("upsert");
    // Find and kill the placement leader.
    let http = reqwest::Client::new();
    let health: Value =
        http.get(format!("http://{}/v1/system/health", cluster.http)).send().await.unwrap().json().await.unwrap();
    let leader_addr = health["placement_leader"].as_str().expect("a placement leader").to_owned();
    let leader = cluster.placement.iter().position(|p| p.addr == leader_addr).expect("leader is ours");
    cluster.placement[leader].kill();
    // A new leader is elected; metadata and data paths keep working.
    must_create(&client, Collection::new("after", DIM, Distance::Dot), &cluster).await;
    client.upsert("after", (1..=50).map(point).collect()).await.expect("upsert after failover");
    assert_eq!(client.count("before", None).await.unwrap(), 50);
    assert_eq!(client.count("after", None).await.unwrap(), 50);
    let names: BTreeSet<String> = client.list_collections().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, BTreeSet::from(["before".to_owned(), "after".to_owned()]));
    let health: Value =
        http.get(format!("http://{}/v1/system/health", cluster.http)).send().await.unwrap().json().await.unwrap();
    assert_ne!(health["placement_leader"].as_str(), Some(leader_addr.as_str()), "a new leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_the_whole_cluster_brings_all_data_back() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "restart";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(3).replication_factor(3), &cluster).await;
    let ids: Vec<u64> = (1..=900).collect();
    for chunk in ids.chunks(150) {
        client.upsert(name, chunk.iter().map(|&i| point(i)).collect()).await.expect("upsert");
    }
    client.delete(name, &[PointId::Num(5), PointId::Num(6)]).await.expect("delete");
    // SIGKILL everything, then start it all again on the same data.
    cluster.gateway.kill();
    for w in &mut cluster.workers {
        w.kill();
    }
    for p in &mut cluster.placement {
        p.kill();
    }
    for p in &mut cluster.placement {
        p.restart();
    }
    for w in &mut cluster.workers {
        w.restart();
    }
    cluster.gateway.restart();
    let client = must_connect(&cluster).await.with_retry_budget(Duration::from_secs(60));
    let count =
        client.count(name, None).await.unwrap_or_else(|e| panic!("count after restart: {e}\n{}", cluster.logs(40)));
    assert_eq!(count, 898);
    let found = present(&client, name, &ids).await;
    assert_eq!(found.len(), 898);
    assert!(!found.contains(&5) && !found.contains(&6), "deletes survive the restart");
    let hits = client.search(name, crash_vector(77), 1).send().await.unwrap();
    assert_eq!(hits.hits[0].id, PointId::Num(77), "the index is back too");
}

/// Worker address → number of shard replicas it is a target of.
async fn replicas_per_worker(client: &Client, name: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (addrs, _, _) in placement_of(client, name).await {
        for a in addrs {
            *out.entry(a).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalancing_and_draining_move_replicas_with_their_data() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "moves";
    must_have_workers_up(&cluster, 3).await;
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(6).replication_factor(1), &cluster).await;
    let ids: Vec<u64> = (1..=600).collect();
    for chunk in ids.chunks(100) {
        client.upsert(name, chunk.iter().map(|&i| point(i)).collect()).await.expect("upsert");
    }
    assert!(replicas_per_worker(&client, name).await.values().all(|&n| n == 2), "6 replicas over 3 workers");

    // A new worker receives replicas (2,2,2,0 → one moves), data and leadership included.
    let fresh = cluster.add_worker();
    let fresh_addr = cluster.workers[fresh].addr.clone();
    eventually(Duration::from_secs(60), "the new worker to lead a moved replica", || async {
        let p = placement_of(&client, name).await;
        p.iter()
            .any(|(addrs, leader, _)| {
                addrs == &vec![fresh_addr.clone()] && leader.as_deref() == Some(fresh_addr.as_str())
            })
            .then_some(())
    })
    .await;

    // Draining a worker moves everything off it.
    let http = reqwest::Client::new();
    let workers: Value =
        http.get(format!("http://{}/v1/admin/workers", cluster.http)).send().await.unwrap().json().await.unwrap();
    let drained_addr = cluster.workers[0].addr.clone();
    let drained_id = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["address"] == drained_addr.as_str())
        .map(|w| w["id"].as_u64().unwrap())
        .expect("worker 1 is registered");
    let r = http.post(format!("http://{}/v1/admin/workers/{drained_id}/drain", cluster.http)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eventually(Duration::from_secs(60), "the drained worker to hold no replica", || async {
        let per = replicas_per_worker(&client, name).await;
        let p = placement_of(&client, name).await;
        let settled = p.iter().all(|(_, leader, _)| leader.as_ref().is_some_and(|l| *l != drained_addr));
        (!per.contains_key(&drained_addr) && settled).then_some(())
    })
    .await;
    let found = present(&client, name, &ids).await;
    assert_eq!(found.len(), ids.len(), "every point moved with its replica\n{}", cluster.logs(30));
    assert_eq!(client.count(name, None).await.unwrap(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_back_at_a_new_address_keeps_replicating() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "moved";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(2).replication_factor(3), &cluster).await;
    let first: Vec<u64> = (1..=100).collect();
    client.upsert(name, first.iter().map(|&i| point(i)).collect()).await.expect("upsert");

    // A follower of every shard comes back on its data at another address (a
    // rescheduled pod); the leaders must find it there to keep it a follower.
    eventually(Duration::from_secs(30), "both shards led", || async {
        all_shards_led(&client, name, 2).await.then_some(())
    })
    .await;
    let leading = leaders(&client, name).await;
    let moved = (0..3).find(|&i| !leading.contains_key(&cluster.workers[i].addr)).expect("a worker leading nothing");
    let others: Vec<usize> = (0..3).filter(|&i| i != moved).collect();
    let old = cluster.workers[moved].addr.clone();
    let new = cluster.move_worker(moved);
    eventually(Duration::from_secs(30), "the moved worker active at its new address, led by the others", || async {
        let p = placement_of(&client, name).await;
        let ok = p.iter().all(|(addrs, leader, states)| {
            addrs.contains(&new)
                && !addrs.contains(&old)
                && leader.as_ref().is_some_and(|l| *l != new)
                && states.iter().all(|s| *s == vectron_proto::v1::ReplicaState::Active as i32)
        });
        ok.then_some(())
    })
    .await;
    // Written while the others lead: it reaches the moved worker only if the leaders
    // find it at its new address (the membership still records the old one).
    let second: Vec<u64> = (101..=200).collect();
    client.upsert(name, second.iter().map(|&i| point(i)).collect()).await.expect("upsert");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in others {
        cluster.workers[i].kill();
    }
    for &id in second.iter().step_by(17) {
        let hit = eventually(Duration::from_secs(30), "a read from the moved worker alone", || async {
            let r = client.search(name, crash_vector(id), 1).consistency(Consistency::Any).send().await.ok()?;
            (!r.partial).then(|| r.hits.first().map(|h| h.id.clone()))
        })
        .await;
        assert_eq!(hit, Some(PointId::Num(id)), "point {id} reached the moved worker\n{}", cluster.logs(30));
    }
}

/// The active alerts as (kind, subject).
async fn active_alerts(cluster: &Cluster) -> Option<BTreeSet<(String, String)>> {
    let r: Value = reqwest::get(format!("http://{}/v1/alerts", cluster.http)).await.ok()?.json().await.ok()?;
    let alerts = r["alerts"].as_array()?;
    Some(
        alerts
            .iter()
            .map(|a| (a["kind"].as_str().unwrap_or("").into(), a["subject"].as_str().unwrap_or("").into()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_rise_for_lost_workers_and_leaderless_shards_and_resolve_when_they_return() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, down_after_secs: 1.0, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "alerting";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(1).replication_factor(3), &cluster).await;
    eventually(Duration::from_secs(30), "the shard led", || async {
        all_shards_led(&client, name, 1).await.then_some(())
    })
    .await;
    assert_eq!(active_alerts(&cluster).await, Some(BTreeSet::new()), "a healthy cluster has no alerts");
    let status = client.collection_status(name).await.unwrap();
    let shard = format!("shard {}", status.shards[0].shard_id);
    let workers: Value =
        reqwest::get(format!("http://{}/v1/admin/workers", cluster.http)).await.unwrap().json().await.unwrap();
    let id_of = |addr: &str| {
        let w = workers["workers"].as_array().unwrap().iter().find(|w| w["address"] == json!(addr)).unwrap();
        format!("worker {}", w["id"])
    };

    // Two of three replicas lost: the majority is gone, so is the leader.
    let lost = [1, 2];
    for i in lost {
        cluster.workers[i].kill();
    }
    let mut expected: BTreeSet<(String, String)> =
        lost.iter().map(|&i| ("worker_down".to_owned(), id_of(&cluster.workers[i].addr))).collect();
    expected.insert(("shard_under_replicated".into(), shard.clone()));
    expected.insert(("shard_without_leader".into(), shard.clone()));
    let seen = eventually(Duration::from_secs(40), "the alerts", || async {
        let active = active_alerts(&cluster).await?;
        expected.is_subset(&active).then_some(active)
    })
    .await;
    assert_eq!(seen, expected, "no other alerts");

    // Back: every alert resolves by itself, and stays listed as resolved.
    for i in lost {
        cluster.workers[i].restart();
    }
    eventually(Duration::from_secs(40), "the alerts to resolve", || async {
        active_alerts(&cluster).await.filter(BTreeSet::is_empty)
    })
    .await;
    let all: Value =
        reqwest::get(format!("http://{}/v1/alerts?all=true", cluster.http)).await.unwrap().json().await.unwrap();
    let resolved = all["alerts"].as_array().unwrap().iter().filter(|a| a["resolved_at_ms"].is_u64()).count();
    assert_eq!(resolved, expected.len(), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_spread_over_zones_and_stay_spread_after_a_worker_is_lost() {
    let zones: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let mut cluster = Cluster::start(ClusterSpec {
        workers: 6,
        zones: zones.clone(),
        replace_after_secs: 2.0,
        down_after_secs: 2.0,
        ..ClusterSpec::default()
    });
    let client = must_connect(&cluster).await;
    must_have_workers_up(&cluster, 6).await;
    let name = "zoned";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(4).replication_factor(3), &cluster).await;
    let zone_by_addr: BTreeMap<String, String> =
        cluster.workers.iter().enumerate().map(|(i, w)| (w.addr.clone(), zones[i % zones.len()].clone())).collect();
    let zone_of = |addr: &str| zone_by_addr.get(addr).unwrap_or_else(|| panic!("{addr} is not a worker")).clone();
    let spread = |p: &[(Vec<String>, Option<String>, Vec<i32>)], excluded: Option<&str>| {
        p.iter().all(|(addrs, _, states)| {
            let in_zones: BTreeSet<String> = addrs.iter().map(|a| zone_of(a)).collect();
            addrs.len() == 3
                && in_zones.len() == 3
                && excluded.is_none_or(|x| !addrs.iter().any(|a| a == x))
                && states.iter().all(|s| *s == vectron_proto::v1::ReplicaState::Active as i32)
        })
    };
    let first = eventually(Duration::from_secs(30), "every shard on three zones", || async {
        let p = placement_of(&client, name).await;
        spread(&p, None).then_some(p)
    })
    .await;

    // A zone-a worker holding replicas dies for good: its replicas move to the other
    // zone-a worker, the only place that keeps every shard on three zones.
    let victim = first.iter().flat_map(|(addrs, _, _)| addrs.iter()).find(|a| zone_of(a) == "a").unwrap().clone();
    let i = cluster.worker_at(&victim).unwrap();
    cluster.workers[i].kill();
    eventually(Duration::from_secs(60), "every shard on three zones again, without the dead worker", || async {
        let p = placement_of(&client, name).await;
        spread(&p, Some(&victim)).then_some(())
    })
    .await;
}
