//! The security review's findings, tried as an attacker would against a real
//! `vectron dev` process (auth on, cluster secret on), each asserting the fixed
//! behaviour:
//!
//! - bodies are refused before they are read: an anonymous 64 MiB log-in and a read
//!   key's forbidden 32 MiB upsert cost the server a few MiB at most (peak RSS, from
//!   `/proc/<pid>/status` after resetting it), per-route limits answer 413;
//! - privileges end with their source: a demoted admin's key shrinks, a deleted user's
//!   key and token stop, a password change ends earlier tokens — within the gateway's
//!   credential cache TTL;
//! - limits hold: only admins set rate limits, keys per user are capped, every search of
//!   a batch counts, batches and id lists are capped;
//! - anonymous calls on random gRPC paths add no metric series;
//! - the auth service refuses callers without the cluster token, and log-in throttling
//!   neither lets one client spray nor lets anyone lock an account's owner out;
//! - removing the only worker is refused unless forced, and a forced removal does not
//!   brick `vectron dev`;
//! - the smaller items: typed JSON errors for oversized usernames, bad path and query
//!   values, wrong methods, `"filter": []`, forged feedback ids, unknown gRPC enums.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::MetadataValue;
use vectron_proto::v1 as pb;
use vectron_tests::cluster::{DevProcess, Node, eventually};

/// How long the gateway may keep using a credential it accepted (`gateway.auth_cache_ttl`).
const CACHE_TTL: Duration = Duration::from_secs(2);

struct Dev {
    _dir: tempfile::TempDir,
    node: Node,
    http: String,
    grpc: String,
    auth: String,
    key: String,
}

impl Dev {
    async fn start() -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let DevProcess { node, http, grpc, auth, data, .. } = DevProcess::start(dir.path());
        let key_file = data.join("admin.key");
        let key = eventually(Duration::from_secs(60), "the admin key", || async {
            std::fs::read_to_string(&key_file).ok().filter(|k| k.ends_with('\n'))
        })
        .await
        .trim()
        .to_owned();
        let dev = Dev { _dir: dir, node, http: format!("http://{http}"), grpc: format!("http://{grpc}"), auth, key };
        dev.wait_healthy().await;
        dev
    }

    async fn wait_healthy(&self) {
        eventually(Duration::from_secs(60), "the dev gateway", || async {
            let r = reqwest::get(format!("{}/v1/system/health", self.http)).await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
    }

    fn data(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    async fn call(&self, method: &str, path: &str, cred: Option<&Cred>, body: Option<Value>) -> (u16, Value) {
        call_from(None, &self.http, method, path, cred, body).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(&Cred::Key(self.key.clone())), body).await
    }

    /// (resident, peak) KiB of the server process.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.node.pid().unwrap())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Resets the process's peak RSS to its current RSS (Linux `clear_refs` 5).
    fn reset_peak(&self) -> u64 {
        std::fs::write(format!("/proc/{}/clear_refs", self.node.pid().unwrap()), "5").unwrap();
        self.memory_kib().0
    }

    /// How much the peak RSS rose above `base` (KiB).
    fn peak_growth_kib(&self, base: u64) -> u64 {
        self.memory_kib().1.saturating_sub(base)
    }
}

#[derive(Clone, Debug)]
enum Cred {
    Key(String),
    Bearer(String),
}

async fn call_from(
    local: Option<IpAddr>,
    base: &str,
    method: &str,
    path: &str,
    cred: Option<&Cred>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::builder().local_address(local).build().unwrap();
    let mut req = client.request(reqwest::Method::from_str(method).unwrap(), format!("{base}{path}"));
    match cred {
        Some(Cred::Key(k)) => req = req.header("x-api-key", k),
        Some(Cred::Bearer(t)) => req = req.header("authorization", format!("Bearer {t}")),
        None => {}
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.timeout(Duration::from_secs(60)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends a POST whose body is `len` bytes of `fill` over a raw connection (so this
/// process never holds it), announced by content-length or (None) sent chunked; returns
/// the status line's code and the answer's body.
async fn raw_post(addr: &str, path: &str, headers: &[(&str, &str)], len: usize, declared: bool) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr.trim_start_matches("http://")).await.unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&if declared {
        format!("content-length: {len}\r\n\r\n")
    } else {
        "transfer-encoding: chunked\r\n\r\n".into()
    });
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let send = tokio::spawn(async move {
        // A JSON string of `len` bytes, 64 KiB at a time; the server may stop reading
        // (and close) at any point.
        let chunk = vec![b'a'; 64 << 10];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            let ok = if declared {
                writer.write_all(&chunk[..n]).await
            } else {
                let mut framed = format!("{n:x}\r\n").into_bytes();
                framed.extend_from_slice(&chunk[..n]);
                framed.extend_from_slice(b"\r\n");
                writer.write_all(&framed).await
            };
            if ok.is_err() {
                return;
            }
            sent += n;
        }
        if !declared {
            let _ = writer.write_all(b"0\r\n\r\n").await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Read until the headers and a body are in (or the server closes).
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && body.contains('}')
        {
            break;
        }
    }
    send.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn create_collection(dev: &Dev, name: &str) {
    let (status, body) =
        dev.admin("POST", "/v1/collections", Some(json!({"name": name, "dimension": 4, "distance": "cosine"}))).await;
    assert_eq!(status, 200, "{body}");
    let points: Vec<Value> = (0..20).map(|i| json!({"id": i, "vector": [1.0, i as f32, 0.5, 0.25]})).collect();
    let (status, body) =
        dev.admin("POST", &format!("/v1/collections/{name}/points"), Some(json!({"points": points}))).await;
    assert_eq!(status, 200, "{body}");
}

async fn new_key(dev: &Dev, cred: &Cred, body: Value) -> (u16, Value) {
    dev.call("POST", "/v1/auth/keys", Some(cred), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_cost_nothing_and_limits_hold() {
    let dev = Dev::start().await;
    create_collection(&dev, "sec").await;
    let admin = Cred::Key(dev.key.clone());
    let (_, read) = new_key(&dev, &admin, json!({"scope": "read"})).await;
    let read_key = read["secret_key"].as_str().unwrap().to_owned();

    // An anonymous log-in of 64 MiB, four at once, announced or chunked: 413 from the
    // announced length or at the limit, with the server's peak RSS barely moving.
    let base = dev.reset_peak();
    let logins = (0..4).map(|i| raw_post(&dev.http, "/v1/auth/login", &[], 64 << 20, i % 2 == 0));
    for (code, text) in futures::future::join_all(logins).await {
        assert_eq!(code, 413, "{text}");
        assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");
    }
    let grown = dev.peak_growth_kib(base);
    assert!(grown < 8 << 10, "four 64 MiB anonymous log-ins grew the peak RSS by {grown} KiB");
    // A 1 MiB one too (the probe; a 5 MiB username is refused the same way), and
    // a username no user can have fails like a wrong password.
    let (code, _) = raw_post(&dev.http, "/v1/auth/login", &[], 1 << 20, true).await;
    assert_eq!(code, 413);
    let (status, body) = login(&dev, &"u".repeat(10 << 10), "x").await;
    assert_eq!((status, code_of(&body)), (401, "UNAUTHENTICATED"), "{body}");

    // A read key's 32 MiB upsert is refused before its body is read.
    let base = dev.reset_peak();
    for declared in [true, false] {
        let (code, text) =
            raw_post(&dev.http, "/v1/collections/sec/points", &[("x-api-key", &read_key)], 32 << 20, declared).await;
        assert_eq!(code, 403, "{text}");
    }
    let grown = dev.peak_growth_kib(base);
    assert!(grown < 8 << 10, "two forbidden 32 MiB upserts grew the peak RSS by {grown} KiB");
    // Over the upsert limit even for a writer: 413.
    let (code, text) =
        raw_post(&dev.http, "/v1/collections/sec/points", &[("x-api-key", &dev.key)], 33 << 20, true).await;
    assert_eq!(code, 413, "{text}");
    // A search is held to its own, smaller limit.
    let (code, _) =
        raw_post(&dev.http, "/v1/collections/sec/points/search", &[("x-api-key", &dev.key)], 5 << 20, false).await;
    assert_eq!(code, 413);

    // An accepted upsert's peak memory per MiB of body (reported, not asserted: a figure
    // for the benchmark notes).
    let dim = 128;
    let points: Vec<Value> = (0..4000)
        .map(|i| json!({"id": 1000 + i, "vector": (0..dim).map(|j| ((i * 31 + j * 7) % 97) as f32 / 97.0 + 0.01).collect::<Vec<_>>(), "payload": {"n": i, "tag": format!("t{}", i % 10)}}))
        .collect();
    let (status, _) = dev
        .admin("POST", "/v1/collections", Some(json!({"name": "wide", "dimension": dim, "distance": "cosine"})))
        .await;
    assert_eq!(status, 200);
    let body = serde_json::to_vec(&json!({"points": points})).unwrap();
    let mib = body.len() as f64 / (1 << 20) as f64;
    let base = dev.reset_peak();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/collections/wide/points", dev.http))
        .header("x-api-key", &dev.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let grown = dev.peak_growth_kib(base) as f64 / 1024.0;
    println!(
        "peak RSS growth of an accepted {mib:.1} MiB upsert (4000 × {dim}-d): {grown:.1} MiB = {:.1}× the body",
        grown / mib
    );

    // gRPC: a read key's upsert is refused before its message is decoded; a search
    // message over its method's limit is refused at its length prefix.
    let channel = tonic::transport::Endpoint::from_shared(dev.grpc.clone()).unwrap().connect().await.unwrap();
    let mut grpc = pb::vectron_service_client::VectronServiceClient::new(channel.clone())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let point = |i| pb::Point {
        id: Some(pb::PointId { kind: Some(pb::point_id::Kind::Num(i)) }),
        vector: vec![0.5; 1024],
        payload: None,
    };
    let big = pb::UpsertRequest { collection: "sec".into(), points: (0..2000).map(point).collect(), wait: None };
    let e = grpc.upsert(with_key(big, &read_key)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let huge =
        pb::SearchRequest { collection: "sec".into(), vector: vec![0.5; 2 << 20], top_k: 1, ..Default::default() };
    let e = grpc.search(with_key(huge, &dev.key)).await.unwrap_err();
    assert_eq!(vectron_model::status::from_status(&e).code, pb::ErrorCode::PayloadTooLarge, "{e:?}");
    // An unknown consistency is refused, not read as the default.
    let odd = pb::SearchRequest {
        collection: "sec".into(),
        vector: vec![1.0, 0.0, 0.0, 0.0],
        top_k: 1,
        consistency: 99,
        ..Default::default()
    };
    let e = grpc.search(with_key(odd, &dev.key)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // Every search of a batch counts: 200 searches under a 5/s key limit are refused.
    let (status, limited) = new_key(&dev, &admin, json!({"scope": "read", "rate_limit_per_sec": 5})).await;
    assert_eq!(status, 200, "{limited}");
    let limited = Cred::Key(limited["secret_key"].as_str().unwrap().to_owned());
    let search = json!({"vector": [1.0, 0.0, 0.0, 0.0], "top_k": 1});
    let batch = |n: usize| json!({"searches": vec![search.clone(); n]});
    let (status, body) =
        dev.call("POST", "/v1/collections/sec/points/search/batch", Some(&limited), Some(batch(200))).await;
    assert_eq!((status, code_of(&body)), (429, "RESOURCE_EXHAUSTED"), "{body}");
    // Batches and id lists are capped for everyone.
    let (status, body) = dev.admin("POST", "/v1/collections/sec/points/search/batch", Some(batch(257))).await;
    assert_eq!(status, 400, "{body}");
    let ids: Vec<u64> = (0..10_001).collect();
    for route in ["get", "delete"] {
        let (status, body) =
            dev.admin("POST", &format!("/v1/collections/sec/points/{route}"), Some(json!({"ids": ids}))).await;
        assert_eq!(status, 400, "{route}: {body}");
    }
    let (status, body) = dev
        .admin(
            "POST",
            "/v1/collections/sec/points/search",
            Some(json!({"vector": [1.0, 0.0, 0.0, 0.0], "filter": {"must": [{"has_id": ids}]}})),
        )
        .await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_FILTER"), "{body}");

    // Anonymous calls on 3,000 random gRPC paths add no metric series.
    let series = || async {
        let (_, text) = {
            let r = reqwest::Client::new()
                .get(format!("{}/metrics", dev.http))
                .header("x-api-key", &dev.key)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        };
        text.lines().filter(|l| !l.starts_with('#')).count()
    };
    // One unknown call first, so its own series exist.
    let mut raw = tonic::client::Grpc::new(channel.clone());
    let unknown = |raw: &mut tonic::client::Grpc<tonic::transport::Channel>, i: usize| {
        let path = http::uri::PathAndQuery::from_str(&format!("/attack{i}.Svc/M{i}")).unwrap();
        let mut raw = raw.clone();
        async move {
            raw.ready().await.unwrap();
            raw.unary(tonic::Request::new(()), path, tonic_prost::ProstCodec::<(), ()>::default())
                .await
                .unwrap_err()
                .code()
        }
    };
    assert_eq!(unknown(&mut raw, 0).await, tonic::Code::Unauthenticated);
    series().await; // its own series exist from now on
    let before = series().await;
    for i in 1..=3000 {
        unknown(&mut raw, i).await;
    }
    let after = series().await;
    assert!(after <= before + 2, "3,000 random paths added {} series", after - before);

    // The smaller items: typed JSON answers.
    let (status, body) = dev
        .admin("POST", "/v1/collections/sec/points/search", Some(json!({"vector": [1.0, 0.0, 0.0, 0.0], "filter": []})))
        .await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_FILTER"), "{body}");
    let (status, body) = dev.admin("POST", "/v1/collections/sec/points/delete", Some(json!({"filter": []}))).await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_FILTER"), "{body}");
    let (status, body) = dev.admin("GET", "/v1/collections/sec", None).await;
    assert_eq!(body["points_count"], json!(20), "a refused delete-by-filter deleted nothing: {status} {body}");
    let feedback = |id: &str| json!({"collection": "sec", "query_id": id, "point_id": 1, "relevance": 1.0});
    for forged in ["q1\nINFO forged log line", &"q".repeat(129)] {
        let (status, body) = dev.admin("POST", "/v1/feedback", Some(feedback(forged))).await;
        assert_eq!((status, code_of(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    }
    let (code, _) = raw_post(&dev.http, "/v1/feedback", &[("x-api-key", &dev.key)], 1 << 20, true).await;
    assert_eq!(code, 413, "a 1 MiB query id is never read, let alone logged");
    // Valid feedback is kept; a comment past its limit is refused.
    let (status, body) = dev.admin("POST", "/v1/feedback", Some(feedback("q-1"))).await;
    assert_eq!(status, 200, "{body}");
    let long =
        json!({"collection": "sec", "query_id": "q", "point_id": 1, "relevance": 1.0, "comment": "x".repeat(4096)});
    let (status, body) = dev.admin("POST", "/v1/feedback", Some(long)).await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    let (status, body) = dev.admin("GET", "/v1/collections/sec/feedback/stats", None).await;
    assert_eq!((status, &body["count"]), (200, &json!(1)), "{body}");
    let (status, body) = dev.admin("POST", "/v1/collections/sec.feedback/points/count", Some(json!({}))).await;
    assert_eq!((status, code_of(&body)), (404, "COLLECTION_NOT_FOUND"), "the feedback store is not public: {body}");
    let rerank = |strategy: &str| pb::SearchRequest {
        collection: "sec".into(),
        vector: vec![1.0, 0.0, 0.0, 0.0],
        top_k: 1,
        rerank: Some(pb::Rerank { strategy: strategy.into(), ..Default::default() }),
        ..Default::default()
    };
    let e = grpc.search(with_key(rerank("magic"), &dev.key)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "an unknown strategy is refused: {e:?}");
    let mut weights = rerank("feedback");
    let given = json!({"weights": [1, 0, 0, 0]});
    weights.rerank.as_mut().unwrap().params = Some(vectron_model::convert::struct_to_pb(given.as_object().unwrap()));
    let e = grpc.search(with_key(weights, &dev.key)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "the feedback model's weights are learned, not given: {e:?}");
    let body = json!({"vector": [1.0, 0.0, 0.0, 0.0], "rerank": {"strategy": "rule", "params": {"bm25_wieght": 1}}});
    let (status, body) = dev.admin("POST", "/v1/collections/sec/points/search", Some(body)).await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_ARGUMENT"), "a misspelt parameter is refused: {body}");
    let (status, body) = dev.admin("POST", "/v1/admin/workers/not-a-number/drain", None).await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    let (status, body) = dev.admin("GET", "/v1/alerts?all=maybe", None).await;
    assert_eq!((status, code_of(&body)), (400, "INVALID_ARGUMENT"), "{body}");
    let (status, body) = dev.admin("PUT", "/v1/collections", Some(json!({}))).await;
    assert_eq!((status, code_of(&body)), (405, "METHOD_NOT_ALLOWED"), "{body}");
    let (status, body) = dev.admin("GET", "/v1/no/such/route", None).await;
    assert_eq!((status, code_of(&body)), (404, "NOT_FOUND"), "{body}");
    // Still serving.
    assert_eq!(dev.admin("GET", "/v1/collections/sec", None).await.0, 200);
}

fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert("x-api-key", MetadataValue::try_from(key).unwrap());
    r
}

async fn login(dev: &Dev, user: &str, password: &str) -> (u16, Value) {
    dev.call("POST", "/v1/auth/login", None, Some(json!({"username": user, "password": password}))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileges_end_with_their_source() {
    let dev = Dev::start().await;
    for (name, role) in [("mallory", "admin"), ("pat", "user")] {
        let (status, body) = dev
            .admin(
                "POST",
                "/v1/auth/users",
                Some(json!({"username": name, "password": format!("{name}'s password"), "role": role})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Mallory, an admin, mints herself an admin key.
    let (_, pair) = login(&dev, "mallory", "mallory's password").await;
    let mallory = Cred::Bearer(pair["access_token"].as_str().unwrap().to_owned());
    let (status, key) = new_key(&dev, &mallory, json!({"scope": "admin"})).await;
    assert_eq!(status, 200, "{key}");
    let mallory_key = Cred::Key(key["secret_key"].as_str().unwrap().to_owned());
    assert_eq!(dev.call("GET", "/v1/admin/workers", Some(&mallory_key), None).await.0, 200);

    // Demoted: her admin key shrinks with her, within the cache TTL.
    let (status, body) = dev.admin("PATCH", "/v1/auth/users/mallory", Some(json!({"role": "user"}))).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(CACHE_TTL + Duration::from_millis(500)).await;
    assert_eq!(dev.call("GET", "/v1/admin/workers", Some(&mallory_key), None).await.0, 403);
    assert_eq!(dev.call("GET", "/v1/admin/workers", Some(&mallory), None).await.0, 403, "her token too");
    let (status, _) = new_key(&dev, &mallory_key, json!({"scope": "admin", "owner": "pat"})).await;
    assert_eq!(status, 403, "the key mints no admin keys for others");

    // A user may not lift their own rate limit; keys per user are capped.
    let (status, body) = new_key(&dev, &mallory, json!({"scope": "read", "rate_limit_per_sec": 4294967295u64})).await;
    assert_eq!((status, code_of(&body)), (403, "PERMISSION_DENIED"), "{body}");
    let mut created = 1;
    let refused = loop {
        let (status, body) = new_key(&dev, &mallory, json!({"scope": "read"})).await;
        if status != 200 {
            break (status, body);
        }
        created += 1;
        assert!(created <= 100, "more than 100 keys");
    };
    assert_eq!((created, refused.0, code_of(&refused.1)), (100, 429, "RESOURCE_EXHAUSTED"), "{refused:?}");

    // Deleted: her key and token stop working within the cache TTL.
    assert_eq!(dev.admin("DELETE", "/v1/auth/users/mallory", None).await.0, 200);
    tokio::time::sleep(CACHE_TTL + Duration::from_millis(500)).await;
    assert_eq!(dev.call("GET", "/v1/collections", Some(&mallory_key), None).await.0, 401);
    assert_eq!(dev.call("GET", "/v1/collections", Some(&mallory), None).await.0, 401);

    // A password change ends the tokens issued before it: the refresh token at once, the
    // access token within the cache TTL.
    let (_, before) = login(&dev, "pat", "pat's password").await;
    let old_access = Cred::Bearer(before["access_token"].as_str().unwrap().to_owned());
    assert_eq!(dev.call("GET", "/v1/auth/me", Some(&old_access), None).await.0, 200);
    let change = json!({"old_password": "pat's password", "new_password": "pat's new password"});
    assert_eq!(dev.call("POST", "/v1/auth/password", Some(&old_access), Some(change)).await.0, 200);
    let (status, _) =
        dev.call("POST", "/v1/auth/refresh", None, Some(json!({"refresh_token": before["refresh_token"]}))).await;
    assert_eq!(status, 401);
    tokio::time::sleep(CACHE_TTL + Duration::from_millis(500)).await;
    assert_eq!(dev.call("GET", "/v1/auth/me", Some(&old_access), None).await.0, 401);
    assert_eq!(login(&dev, "pat", "pat's new password").await.0, 200);

    // The auth service itself takes no calls without the cluster token (spoofed
    // x-forwarded-for included).
    let mut direct = pb::auth_service_client::AuthServiceClient::connect(format!("http://{}", dev.auth)).await.unwrap();
    let mut spoofed = tonic::Request::new(pb::LoginRequest { username: "admin".into(), password: "guess".into() });
    spoofed.metadata_mut().insert("x-forwarded-for", MetadataValue::from_static("10.9.8.7"));
    assert_eq!(direct.login(spoofed).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let probe =
        pb::AuthenticateRequest { credential: Some(pb::authenticate_request::Credential::ApiKey(dev.key.clone())) };
    assert_eq!(direct.authenticate(probe).await.unwrap_err().code(), tonic::Code::Unauthenticated);
}

fn loopback(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([127, 0, 0, last]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_throttling_stops_guessers_without_locking_the_owner_out() {
    let dev = Dev::start().await;
    // The admin's password: reset by the admin key, then used once from the owner's
    // machine (127.0.0.1), which makes that a known client.
    let (status, _) =
        dev.admin("PATCH", "/v1/auth/users/admin", Some(json!({"new_password": "the admin's password"}))).await;
    assert_eq!(status, 200);
    let login = |from: Option<IpAddr>, user: &str, password: &str| {
        let body = json!({"username": user, "password": password});
        let http = dev.http.clone();
        async move { call_from(from, &http, "POST", "/v1/auth/login", None, Some(body)).await }
    };
    assert_eq!(login(loopback(1), "admin", "the admin's password").await.0, 200);

    // Thirty clients guess the admin's password once each: no client is locked out, but
    // the account's ceiling is reached, so a new client waits — at most one refill.
    for i in 10..40 {
        let (status, body) = login(loopback(i), "admin", "guess").await;
        assert!(status == 401 || status == 429, "{status} {body}");
    }
    let (status, body) = login(loopback(99), "admin", "the admin's password").await;
    assert_eq!((status, code_of(&body)), (429, "RESOURCE_EXHAUSTED"), "a new client waits: {body}");
    // The owner's known client is never locked out by others' guesses.
    assert_eq!(login(loopback(1), "admin", "the admin's password").await.0, 200);

    // One client spraying one password over many accounts is locked out for all of them.
    for i in 0..21 {
        login(loopback(5), &format!("user{i}"), "Summer2026!").await;
    }
    let (status, _) = login(loopback(5), "someone", "anything").await;
    assert_eq!(status, 429, "the sprayer is locked out");

    // Failed credentials are throttled per client too: 100 bad keys, then even a good,
    // never-cached key is refused for a while from that client (and only that one).
    let (_, fresh) = new_key(&dev, &Cred::Key(dev.key.clone()), json!({"scope": "read"})).await;
    let fresh = Cred::Key(fresh["secret_key"].as_str().unwrap().to_owned());
    for i in 0..101 {
        let bad = Cred::Key(format!("vx_{:016x}_{}", i, "00".repeat(32)));
        call_from(loopback(77), &dev.http, "GET", "/v1/collections", Some(&bad), None).await;
    }
    let (status, body) = call_from(loopback(77), &dev.http, "GET", "/v1/collections", Some(&fresh), None).await;
    assert_eq!((status, code_of(&body)), (429, "RESOURCE_EXHAUSTED"), "{body}");
    assert_eq!(call_from(loopback(78), &dev.http, "GET", "/v1/collections", Some(&fresh), None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_only_worker_needs_force_and_does_not_brick_dev() {
    let mut dev = Dev::start().await;
    create_collection(&dev, "only").await;
    let (_, workers) = dev.admin("GET", "/v1/admin/workers", None).await;
    let id = workers["workers"][0]["id"].as_u64().unwrap();
    let (status, body) = dev.admin("DELETE", &format!("/v1/admin/workers/{id}"), None).await;
    assert_eq!((status, code_of(&body)), (409, "FAILED_PRECONDITION"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("only"), "{body}");
    let (status, body) = dev.admin("GET", "/v1/collections/only", None).await;
    assert_eq!((status, &body["points_count"]), (200, &json!(20)), "nothing changed: {body}");

    // Forced: the worker is forgotten; restarted on the same data dir, dev comes back
    // with its worker joining as a new one (the old data kept aside).
    let (status, body) = dev.admin("DELETE", &format!("/v1/admin/workers/{id}?force=true"), None).await;
    assert_eq!(status, 200, "{body}");
    dev.node.restart();
    dev.wait_healthy().await;
    let (status, workers) = eventually(Duration::from_secs(60), "a worker to register again", || async {
        let (status, workers) = dev.admin("GET", "/v1/admin/workers", None).await;
        let up = workers["workers"].as_array()?.iter().any(|w| w["state"] == "up");
        up.then_some((status, workers))
    })
    .await;
    assert_eq!(status, 200);
    assert!(workers["workers"].as_array().unwrap().iter().all(|w| w["id"].as_u64() != Some(id)), "{workers}");
    let retired = std::fs::read_dir(dev.data().join("worker/retired")).unwrap().count();
    assert_eq!(retired, 1, "the removed worker's data was kept aside");
    // And it serves new data.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = dev
            .admin("POST", "/v1/collections", Some(json!({"name": "after", "dimension": 4, "distance": "cosine"})))
            .await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status} {body}\n{}", dev.node.log_tail(40));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = dev
        .admin(
            "POST",
            "/v1/collections/after/points",
            Some(json!({"points": [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0]}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
