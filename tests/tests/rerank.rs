//! Reranked searches end to end: each strategy through `vectron dev` answers what the
//! reranker library computes over the same candidates (the cross-encoder against a real
//! HTTP endpoint this test serves), and a reranker killed under load degrades searches
//! to the vector order — none fails — with the `reranker_unavailable` alert raised and
//! cleared by itself once the reranker is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use vectron_reranker::strategy::{Candidate, Mmr, Rule, Strategy};
use vectron_sdk::{Client, Collection, Distance, Hit, Point, PointId, rerank};
use vectron_tests::cluster::{Cluster, ClusterSpec, DevProcess, eventually};

const DIM: usize = 8;
const WORDS: [&str; 12] =
    ["vector", "database", "rust", "search", "fast", "index", "graph", "raft", "shard", "cooking", "pasta", "garden"];

/// Deterministic points: random vectors, titles and bodies from a small vocabulary, a
/// timestamp and a tier.
fn points(n: u64) -> Vec<Point> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let vector: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut words = |k: usize| (0..k).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<_>>();
            let payload = json!({
                "title": words(2).join(" "),
                "body": words(8).join(" "),
                "t": 1_000_000 + (i as i64) * 3600,
                "tier": if i % 5 == 0 { "gold" } else { "free" },
            });
            Point::new(i, vector).with_payload(payload)
        })
        .collect()
}

/// The test's cross-encoder: the share of the query's words in the text.
fn overlap(query: &str, text: &str) -> f32 {
    let words: Vec<&str> = query.split_whitespace().collect();
    let text: Vec<&str> = text.split_whitespace().collect();
    words.iter().filter(|w| text.contains(w)).count() as f32 / words.len().max(1) as f32
}

/// A text-embeddings-inference `/rerank` endpoint scoring by [`overlap`], counting its
/// calls; `/slow` answers after 3 s.
async fn serve_cross_encoder() -> (String, Arc<AtomicUsize>) {
    async fn rerank(State(calls): State<Arc<AtomicUsize>>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        calls.fetch_add(1, Ordering::SeqCst);
        let query = body["query"].as_str().unwrap_or_default();
        let texts = body["texts"].as_array().cloned().unwrap_or_default();
        let scores: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(index, t)| json!({"index": index, "score": overlap(query, t.as_str().unwrap_or_default())}))
            .collect();
        axum::Json(Value::Array(scores))
    }
    async fn slow() -> axum::Json<Value> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        axum::Json(json!([]))
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route("/rerank", post(rerank)).route("/slow", post(slow)).with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

fn ids(hits: &[Hit]) -> Vec<PointId> {
    hits.iter().map(|h| h.id.clone()).collect()
}

/// The candidates a reranked search of `query` gives the reranker: the vector order's
/// first `n`, with payloads and vectors.
async fn candidates(client: &Client, query: &[f32], n: u32) -> Vec<Hit> {
    let off = rerank("none", None, Value::Null).unwrap();
    let r = client.search("docs", query.to_vec(), n).with_payload().with_vector().rerank(off).send().await.unwrap();
    assert!(!r.reranked && r.rerank_skipped.is_none(), "\"none\" turns the default off: {r:?}");
    r.hits
}

/// The reference order: `strategy` over `hits` as the reranker library computes it.
fn reference(strategy: &dyn Strategy, query_text: Option<&str>, hits: &[Hit], top_k: usize) -> Vec<(PointId, f32)> {
    let candidates: Vec<Candidate> = hits
        .iter()
        .map(|h| Candidate { score: h.score, vector: h.vector.clone(), payload: h.payload.clone(), prior: 0.0 })
        .collect();
    let out = strategy.rerank(query_text, &candidates, top_k).unwrap();
    out.iter().map(|r| (hits[r.index].id.clone(), r.score)).collect()
}

fn assert_same_order(got: &[Hit], want: &[(PointId, f32)], what: &str) {
    assert_eq!(ids(got), want.iter().map(|w| w.0.clone()).collect::<Vec<_>>(), "{what}");
    for (h, (_, score)) in got.iter().zip(want) {
        let s = h.rerank_score.expect("a reranked hit has its rerank score");
        assert!((s - score).abs() < 1e-4, "{what}: rerank score {s} vs {score}");
        assert!(h.explanation.as_deref().is_some_and(|e| !e.is_empty()), "{what}: every hit explains itself");
    }
}

/// A client of `dev` with its admin key (once the key exists), and the key.
async fn admin_client(dev: &DevProcess) -> (Client, String) {
    let key_file = dev.data.join("admin.key");
    let key = eventually(Duration::from_secs(60), "the admin key", || async {
        std::fs::read_to_string(&key_file).ok().filter(|k| k.ends_with('\n'))
    })
    .await;
    let client = eventually(Duration::from_secs(30), "the dev gateway", || async {
        Client::connect(&format!("http://{}", dev.grpc)).await.ok()
    })
    .await;
    (client.with_api_key(key.trim()).unwrap(), key.trim().to_owned())
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_strategy_answers_what_its_reference_computes() {
    let (endpoint, calls) = serve_cross_encoder().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vectron.toml");
    std::fs::write(
        &config,
        format!(
            "[reranker.cross_encoders.default]\nurl = \"{endpoint}/rerank\"\nbatch_size = 4\n\
             [reranker.cross_encoders.slow]\nurl = \"{endpoint}/slow\"\ntimeout = \"200ms\"\n"
        ),
    )
    .unwrap();
    let dev = DevProcess::start_with(dir.path(), &["--config".into(), config.display().to_string()]);
    let (client, key) = admin_client(&dev).await;
    let rule_params = json!({"text_fields": ["title", "body"], "title_field": "title", "now_secs": 1_200_000.0,
                             "timestamp_field": "t", "recency_weight": 0.2, "half_life_secs": 86400.0,
                             "boosts": [{"key": "tier", "match": "gold", "boost": 0.1}]});
    let collection = Collection::new("docs", DIM as u32, Distance::Cosine)
        .shards(2)
        .default_rerank(rerank("rule", None, rule_params.clone()).unwrap());
    eventually(Duration::from_secs(60), "the collection", || async {
        client.create_collection(collection.clone()).await.ok()
    })
    .await;
    assert_eq!(client.upsert("docs", points(200)).await.unwrap(), 200);
    // A default whose parameters the reranker refuses is refused at creation.
    let bad = Collection::new("bad", DIM as u32, Distance::Cosine)
        .default_rerank(rerank("mmr", None, json!({"lambda": 5.0})).unwrap());
    let e = client.create_collection(bad).await.unwrap_err();
    assert_eq!(e.code, vectron_sdk::ErrorCode::InvalidArgument, "{e:?}");
    let query: Vec<f32> = (0..DIM).map(|i| if i % 2 == 0 { 0.5 } else { -0.25 }).collect();
    let text = "fast vector database";
    let pool = candidates(&client, &query, 40).await;

    // rule, by the collection's default (only the query text given), 4 × top_k candidates.
    let asked = rerank("", Some(text), Value::Null).unwrap();
    let r = client.search("docs", query.clone(), 10).rerank(asked).send().await.unwrap();
    assert!(r.reranked && r.rerank_skipped.is_none(), "{r:?}");
    let rule: Rule = serde_json::from_value(rule_params.clone()).unwrap();
    assert_same_order(&r.hits, &reference(&rule, Some(text), &pool, 10), "rule (the collection's default)");
    assert!(r.hits.iter().all(|h| h.payload.is_none() && h.vector.is_none()), "only what was asked is answered");
    // A parameter of the request's own, over the default's.
    let asked = rerank("rule", Some(text), json!({"bm25_weight": 3.0})).unwrap();
    let r = client.search("docs", query.clone(), 10).rerank(asked).with_payload().send().await.unwrap();
    let mut merged = object(rule_params.clone());
    merged.insert("bm25_weight".into(), json!(3.0));
    let rule: Rule = serde_json::from_value(Value::Object(merged)).unwrap();
    assert_same_order(&r.hits, &reference(&rule, Some(text), &pool, 10), "rule with a weight of its own");
    assert!(r.hits.iter().all(|h| h.payload.is_some()));

    // mmr: diversity over the candidates' vectors.
    let r = client
        .search("docs", query.clone(), 10)
        .rerank(rerank("mmr", None, json!({"lambda": 0.3})).unwrap())
        .send()
        .await
        .unwrap();
    assert_same_order(&r.hits, &reference(&Mmr::new(0.3).unwrap(), None, &pool, 10), "mmr");
    let plain = ids(&pool[..10]);
    assert_ne!(ids(&r.hits), plain, "λ = 0.3 moves something on random data");
    let r = client
        .search("docs", query.clone(), 10)
        .rerank(rerank("mmr", None, json!({"lambda": 1.0})).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&r.hits), plain, "λ = 1 is the vector order");

    // cross_encoder: the endpoint's scores, in batches of 4.
    let before = calls.load(Ordering::SeqCst);
    let asked = rerank("cross_encoder", Some(text), json!({"text_fields": ["body"]})).unwrap();
    let r = client.search("docs", query.clone(), 10).rerank(asked).send().await.unwrap();
    assert!(r.reranked, "{r:?}");
    let mut want: Vec<(usize, f32)> = pool
        .iter()
        .enumerate()
        .map(|(i, h)| (i, overlap(text, h.payload.as_ref().unwrap()["body"].as_str().unwrap())))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let want: Vec<(PointId, f32)> = want[..10].iter().map(|&(i, s)| (pool[i].id.clone(), s)).collect();
    assert_same_order(&r.hits, &want, "cross_encoder");
    assert_eq!(calls.load(Ordering::SeqCst) - before, 10, "40 candidates in batches of 4");
    // An endpoint over its timeout: the vector order, saying why.
    let asked = rerank("cross_encoder", Some(text), json!({"endpoint": "slow", "text_fields": ["body"]})).unwrap();
    let r = client.search("docs", query.clone(), 10).rerank(asked).send().await.unwrap();
    assert!(!r.reranked, "{r:?}");
    assert!(r.rerank_skipped.as_deref().is_some_and(|s| s.contains("slow")), "{r:?}");
    assert_eq!(ids(&r.hits), plain);
    assert!(r.hits.iter().all(|h| h.rerank_score.is_none()));

    // Mistakes are errors, not fallbacks.
    let e = client
        .search("docs", query.clone(), 10)
        .rerank(rerank("cross_encoder", Some(text), json!({"endpoint": "nope", "text_fields": ["body"]})).unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code, vectron_sdk::ErrorCode::InvalidArgument, "{e:?}");
    assert!(e.message.contains("nope"), "{e:?}");
    let e = client
        .search("docs", query.clone(), 10)
        .rerank(rerank("rule", None, json!({"candidates": 5})).unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code, vectron_sdk::ErrorCode::InvalidArgument, "an unknown parameter: {e:?}");

    // HTTP: the same fields in JSON, and the counts on /metrics.
    let http = reqwest::Client::new();
    let body = json!({"vector": query, "top_k": 5, "rerank": {"query_text": text}});
    let url = |path: &str| format!("http://{}{path}", dev.http);
    let key = &key;
    let answer = |r: reqwest::RequestBuilder| async move {
        r.header("x-api-key", key).send().await.unwrap().text().await.unwrap()
    };
    let r: Value =
        serde_json::from_str(&answer(http.post(url("/v1/collections/docs/points/search")).json(&body)).await).unwrap();
    assert_eq!(r["reranked"], json!(true), "{r}");
    assert!(r["hits"][0]["rerank_score"].is_number() && r["hits"][0]["explanation"].is_string(), "{r}");
    let config: Value = serde_json::from_str(&answer(http.get(url("/v1/collections/docs"))).await).unwrap();
    assert_eq!(config["collection"]["default_rerank"]["strategy"], json!("rule"), "{config}");
    let metrics = answer(http.get(url("/metrics"))).await;
    for line in [
        r#"vectron_rerank_total{outcome="reranked",strategy="rule"} 3"#,
        r#"vectron_rerank_total{outcome="endpoint_failed",strategy="cross_encoder"} 1"#,
        r#"vectron_rerank_total{outcome="refused",strategy="rule"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

async fn alerts(http: &reqwest::Client, gateway: &str, all: bool) -> Vec<Value> {
    let r: Value = http
        .get(format!("http://{gateway}/v1/alerts?all={all}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default();
    r["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["kind"] == "reranker_unavailable")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_reranker_degrades_searches_and_its_alert_clears_itself() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 1, reranker: true, ..Default::default() });
    let client = eventually(Duration::from_secs(30), "the gateway", || async {
        Client::connect(&cluster.grpc_url()).await.ok()
    })
    .await;
    eventually(Duration::from_secs(60), "the collection", || async {
        client.create_collection(Collection::new("docs", DIM as u32, Distance::Cosine)).await.ok()
    })
    .await;
    assert_eq!(client.upsert("docs", points(100)).await.unwrap(), 100);

    // A steady load of reranked searches: (reranked, skipped, failed).
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
    let load = {
        let (client, stop, counts) = (client.clone(), stop.clone(), counts.clone());
        tokio::spawn(async move {
            let asked = rerank("rule", Some("fast vector"), json!({"text_fields": ["body"]})).unwrap();
            let mut last_error = None;
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                // A new query each time: a cached answer would not ask the reranker.
                i += 1;
                let mut query = vec![0.5; DIM];
                query[0] += i as f32 * 1e-3;
                let r = client.search("docs", query, 5).rerank(asked.clone()).send().await;
                let slot = match &r {
                    Ok(r) if r.reranked => 0,
                    Ok(r) => {
                        assert!(r.rerank_skipped.is_some() && r.hits.len() == 5, "{r:?}");
                        1
                    }
                    Err(e) => {
                        last_error = Some(e.clone());
                        2
                    }
                };
                counts[slot].fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            last_error
        })
    };
    let seen = |slot: usize| counts[slot].load(Ordering::SeqCst);
    eventually(Duration::from_secs(30), "reranked searches", || async { (seen(0) > 10).then_some(()) }).await;

    cluster.reranker.as_mut().unwrap().kill();
    let skipped = seen(1);
    eventually(Duration::from_secs(10), "searches in vector order", || async {
        (seen(1) > skipped + 10).then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let raised = eventually(Duration::from_secs(10), "the alert", || async {
        alerts(&http, &cluster.http, false).await.into_iter().next()
    })
    .await;
    assert!(raised["message"].as_str().unwrap().contains("vector order"), "{raised}");

    cluster.reranker.as_mut().unwrap().restart();
    let reranked = seen(0);
    eventually(Duration::from_secs(30), "reranked searches again", || async {
        (seen(0) > reranked + 10).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the alert resolved", || async {
        let all = alerts(&http, &cluster.http, true).await;
        (alerts(&http, &cluster.http, false).await.is_empty() && all.iter().any(|a| a["resolved_at_ms"].is_number()))
            .then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let last_error = load.await.unwrap();
    assert_eq!(seen(2), 0, "no search failed: {last_error:?}\n{}", cluster.logs(30));
    println!("reranked {} · vector order while the reranker was down {} · failed 0", seen(0), seen(1));
}

/// The known relevance of a point to a query: its body's share of the query's words,
/// and whether it is a good point (what feedback can teach; vectors know neither).
fn truth(query: &str, payload: &Map<String, Value>) -> f32 {
    let body = payload["body"].as_str().unwrap();
    let good = payload["tier"] == "gold";
    (1.5 * overlap(query, body) + if good { 0.5 } else { -0.5 } - 0.5).clamp(-1.0, 1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feedback_model_learns_from_kept_feedback_and_reranks_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevProcess::start(dir.path());
    let (client, _) = admin_client(&dev).await;
    let feedback = rerank("feedback", None, json!({"text_fields": ["body"]})).unwrap();
    let collection = Collection::new("docs", DIM as u32, Distance::Cosine).default_rerank(feedback);
    eventually(Duration::from_secs(60), "the collection", || async {
        client.create_collection(collection.clone()).await.ok()
    })
    .await;
    assert_eq!(client.upsert("docs", points(300)).await.unwrap(), 300);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut query = move || {
        let vector: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
        let text = (0..3).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<_>>().join(" ");
        (vector, text)
    };
    // Before any feedback the model is the vector order.
    let none = rerank("none", None, Value::Null).unwrap();
    let (v, t) = query();
    let plain = client.search("docs", v.clone(), 10).rerank(none.clone()).send().await.unwrap();
    let asked = rerank("", Some(&t), Value::Null).unwrap();
    let first = client.search("docs", v, 10).rerank(asked).send().await.unwrap();
    assert!(first.reranked, "{first:?}");
    assert_eq!(ids(&first.hits), ids(&plain.hits), "no feedback yet: the vector order");

    // Users judge the vector order's top 10 of 150 queries by the known relevance.
    for _ in 0..150 {
        let (v, t) = query();
        let r = client.search("docs", v, 10).with_payload().rerank(none.clone()).send().await.unwrap();
        for (position, hit) in r.hits.iter().enumerate() {
            let request = vectron_proto::v1::SubmitFeedbackRequest {
                collection: "docs".into(),
                query_id: r.query_id.clone(),
                point_id: Some(vectron_model::convert::point_id_to_pb(&hit.id)),
                relevance: truth(&t, hit.payload.as_ref().unwrap()),
                position: Some(position as u32),
                query_text: Some(t.clone()),
                ..Default::default()
            };
            client.submit_feedback(request).await.unwrap();
        }
    }
    let stats = client.feedback_stats("docs").await.unwrap();
    assert_eq!(stats.count, 1500);
    let m = stats.model.expect("a model");
    println!(
        "feedback model {}: NDCG@10 held out {:.3} → {:.3}, weights {:?}",
        m.version, m.ndcg_vector, m.ndcg_model, m.weights
    );
    assert!(m.held_out_queries > 10 && m.ndcg_model > m.ndcg_vector + 0.05, "{m:?}");

    // New queries: the model's top 5 are more relevant than the vector order's.
    let (mut learned, mut vector) = (0.0, 0.0);
    for _ in 0..40 {
        let (v, t) = query();
        let base = client.search("docs", v.clone(), 5).with_payload().rerank(none.clone()).send().await.unwrap();
        let asked = rerank("", Some(&t), Value::Null).unwrap();
        let r = client.search("docs", v, 5).with_payload().rerank(asked).send().await.unwrap();
        assert!(r.reranked && r.hits[0].explanation.as_deref().unwrap().starts_with("feedback model"), "{r:?}");
        learned += r.hits.iter().map(|h| truth(&t, h.payload.as_ref().unwrap())).sum::<f32>();
        vector += base.hits.iter().map(|h| truth(&t, h.payload.as_ref().unwrap())).sum::<f32>();
    }
    println!("mean relevance of the top 5: vector order {:.3}, feedback model {:.3}", vector / 200.0, learned / 200.0);
    assert!(learned > vector + 10.0, "learned {learned} vs vector {vector}");
    // Its weights are learned, not given.
    let e = client
        .search("docs", vec![0.5; DIM], 5)
        .rerank(rerank("feedback", None, json!({"weights": [1, 0, 0, 0]})).unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code, vectron_sdk::ErrorCode::InvalidArgument, "{e:?}");
}
