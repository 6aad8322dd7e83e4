//! `vectron dev` (placement, worker, auth and gateway in one process, the gateway calling
//! the worker in-process): auth is on with an admin key created on first start, and every
//! shard operation answers what a brute-force model says.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use vectron_sdk::{Client, Collection, Distance, ErrorCode, Filter, Point, PointId};
use vectron_tests::cluster::{DevProcess, eventually};
use vectron_tests::{CRASH_DIM, crash_vector};

const N: u64 = 240;

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_serves_every_shard_operation_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let DevProcess { mut node, http, grpc, data, .. } = DevProcess::start(dir.path());
    let anonymous = eventually(Duration::from_secs(30), "the dev gateway", || async {
        Client::connect(&format!("http://{grpc}")).await.ok()
    })
    .await;

    // Secure by default: an admin key was created, stored owner-only, printed once.
    let key_file = data.join("admin.key");
    let key = eventually(Duration::from_secs(30), "the admin key", || async {
        std::fs::read_to_string(&key_file).ok().filter(|k| k.ends_with('\n'))
    })
    .await;
    let key = key.trim().to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let refused = anonymous.list_collections().await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unauthenticated, "{refused:?}");
    let client = anonymous.clone().with_api_key(&key).unwrap();
    let wrong_key = anonymous.with_api_key("vx_0000_0000").unwrap().list_collections().await.unwrap_err();
    assert_eq!(wrong_key.code, ErrorCode::Unauthenticated, "{wrong_key:?}");

    let collection = Collection::new("dev", CRASH_DIM as u32, Distance::Euclid).shards(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = client.create_collection(collection.clone()).await {
        assert!(Instant::now() < deadline, "create collection: {e}\n{}", node.log_tail(40));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let points: Vec<Point> =
        (0..N).map(|i| Point::new(i, crash_vector(i)).with_payload(json!({"even": i % 2 == 0}))).collect();
    assert_eq!(client.upsert_batched("dev", points, 100).await.unwrap(), N);

    // Search: with ef above the shard sizes the index is exact; compare with brute force.
    for q in [3u64, 77, 1000] {
        let query = crash_vector(q);
        let hits = client.search("dev", query.clone(), 10).ef(256).send().await.unwrap().hits;
        let mut truth: Vec<(f32, u64)> = (0..N).map(|i| (l2(&query, &crash_vector(i)), i)).collect();
        truth.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: BTreeSet<PointId> = truth[..10].iter().map(|&(_, i)| PointId::Num(i)).collect();
        let got: BTreeSet<PointId> = hits.iter().map(|h| h.id.clone()).collect();
        assert_eq!(got, want, "query {q}");
    }

    // Get in request order, with vectors; missing ids left out.
    let ids = [PointId::Num(5), PointId::Num(9_999), PointId::Num(2)];
    let records = client.get("dev", &ids, true).await.unwrap();
    assert_eq!(records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![PointId::Num(5), PointId::Num(2)]);
    assert_eq!(records[0].vector.as_deref(), Some(crash_vector(5).as_slice()));

    // Delete, then count (all and filtered) and scroll agree with the model.
    let deleted: Vec<PointId> = (0..N).filter(|i| i % 3 == 0).map(PointId::Num).collect();
    assert_eq!(client.delete("dev", &deleted).await.unwrap(), deleted.len() as u64);
    let alive: BTreeSet<u64> = (0..N).filter(|i| i % 3 != 0).collect();
    assert_eq!(client.count("dev", None).await.unwrap(), alive.len() as u64);
    let even = Filter::from_json(&json!({"must": [{"key": "even", "match": {"value": true}}]})).unwrap();
    let even_alive = alive.iter().filter(|i| *i % 2 == 0).count() as u64;
    assert_eq!(client.count("dev", Some(&even)).await.unwrap(), even_alive);
    let mut seen = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = client.scroll("dev", None, 50, cursor.take()).await.unwrap();
        for r in page.0 {
            let PointId::Num(id) = r.id else { panic!("string id {:?}", r.id) };
            assert!(seen.insert(id), "scroll returned {id} twice");
        }
        match page.1 {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, alive);

    // Typed errors come through the in-process path too.
    let wrong = client.search("dev", vec![0.0; 3], 5).send().await.unwrap_err();
    assert_eq!(wrong.code, ErrorCode::DimensionMismatch, "{wrong:?}");

    // A SearchStream is admitted search by search: a key revoked while the stream is open
    // stops working on it within the credential cache's TTL (2 s by default).
    let web = reqwest::Client::new();
    let created: serde_json::Value = web
        .post(format!("http://{http}/v1/auth/keys"))
        .header(vectron_sdk::API_KEY_HEADER, &key)
        .json(&json!({"scope": "read"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reader = client.clone().with_api_key(created["secret_key"].as_str().expect("a new key")).unwrap();
    let mut stream = reader.search_stream().await.unwrap();
    assert_eq!(stream.search(reader.search("dev", crash_vector(1), 3)).await.unwrap().hits.len(), 3);
    let key_id = created["key"]["key_id"].as_str().unwrap();
    let revoked = web
        .delete(format!("http://{http}/v1/auth/keys/{key_id}"))
        .header(vectron_sdk::API_KEY_HEADER, &key)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let e = stream.search(reader.search("dev", crash_vector(1), 3)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthenticated, "{e:?}");

    // Restarted: the same key works (the auth store and the signing secret persist), the
    // data is back, and the key was printed on the first start only.
    node.restart();
    let count = eventually(Duration::from_secs(60), "the restarted dev cluster", || async {
        let client = Client::connect(&format!("http://{grpc}")).await.ok()?.with_api_key(&key).ok()?;
        client.count("dev", None).await.ok()
    })
    .await;
    assert_eq!(count, alive.len() as u64);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key, "the key file is kept");
    let log = std::fs::read_to_string(dir.path().join("dev.log")).unwrap();
    assert_eq!(log.matches(&key).count(), 1, "the key is printed once, on the first start:\n{}", node.log_tail(30));
}
