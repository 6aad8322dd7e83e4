//! `vectron-bench rerank`: the reranker's latency per strategy at N candidates, through
//! the service's own entry point (`RerankGrpc::rerank`, no network): `rule` over text
//! payloads, `mmr` over vectors, and `cross_encoder` against a local endpoint that
//! scores without work (so the figure is the strategy's own overhead: HTTP, JSON,
//! batching — a real model adds its inference time).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use vectron_model::convert::struct_to_pb;
use vectron_proto::v1 as pb;
use vectron_reranker::cross_encoder::{ApiFormat, CrossEncoders, Endpoint};
use vectron_reranker::service::RerankGrpc;

use crate::percentile;

#[derive(Parser, Clone)]
pub struct RerankArgs {
    /// Candidates per rerank.
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    /// Hits answered per rerank.
    #[arg(long, default_value_t = 10)]
    top_k: u32,
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Reranks timed per strategy (after as many untimed).
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Print one JSON object per strategy on stdout.
    #[arg(long)]
    json: bool,
}

const WORDS: [&str; 16] = [
    "vector", "database", "rust", "search", "fast", "index", "graph", "raft", "shard", "replica", "query", "filter",
    "payload", "cluster", "gateway", "rerank",
];

fn candidates(n: usize, dim: usize) -> Vec<pb::RerankCandidate> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    (0..n)
        .map(|i| {
            let mut words = |k: usize| (0..k).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<_>>();
            let payload = json!({"title": words(4).join(" "), "body": words(60).join(" "), "t": 1_700_000_000 + i as i64,
                                 "tier": if i % 7 == 0 { "gold" } else { "free" }});
            pb::RerankCandidate {
                score: 1.0 - i as f32 / n as f32,
                vector: (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                payload: Some(struct_to_pb(payload.as_object().expect("an object"))),
                ..Default::default()
            }
        })
        .collect()
}

/// A rerank endpoint (TEI shape) that scores every text by its length.
async fn zero_work_endpoint() -> Result<String> {
    async fn rerank(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        let texts = body["texts"].as_array().cloned().unwrap_or_default();
        let scores: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(index, t)| json!({"index": index, "score": t.as_str().map_or(0, str::len) as f64}))
            .collect();
        axum::Json(Value::Array(scores))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/rerank", axum::routing::post(rerank));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/rerank"))
}

pub fn run(args: RerankArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run_async(args))
}

async fn run_async(args: RerankArgs) -> Result<()> {
    let url = zero_work_endpoint().await?;
    let endpoint =
        Endpoint { url, format: ApiFormat::Tei, model: None, timeout: Duration::from_secs(5), batch_size: 32 };
    let endpoints =
        CrossEncoders::new(BTreeMap::from([("default".to_owned(), endpoint)])).map_err(anyhow::Error::msg)?;
    let service = RerankGrpc::new(endpoints);
    let pool = candidates(args.candidates, args.dim);
    let strategies = [
        (
            "rule",
            json!({"text_fields": ["title", "body"], "title_field": "title", "timestamp_field": "t",
                        "recency_weight": 0.1, "boosts": [{"key": "tier", "match": "gold", "boost": 0.1}]}),
        ),
        ("mmr", json!({"lambda": 0.5})),
        ("cross_encoder", json!({"text_fields": ["title", "body"]})),
    ];
    eprintln!("{} candidates ({}-d vectors, ~60-word bodies), top {}:", args.candidates, args.dim, args.top_k);
    for (strategy, params) in strategies {
        let request = pb::RerankRequest {
            strategy: strategy.into(),
            query_text: Some("fast vector search in rust".into()),
            params: Some(struct_to_pb(params.as_object().expect("an object"))),
            candidates: pool.clone(),
            top_k: args.top_k,
            ..Default::default()
        };
        let mut lat = Vec::with_capacity(args.iterations);
        for i in 0..2 * args.iterations {
            let r = request.clone();
            let t = Instant::now();
            let answer = service.rerank(r).await.map_err(|e| anyhow::anyhow!("{strategy}: {}", e.message()))?;
            if i >= args.iterations {
                lat.push(t.elapsed());
            }
            anyhow::ensure!(answer.ranked.len() == args.top_k as usize, "{strategy} answered {}", answer.ranked.len());
        }
        lat.sort();
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        eprintln!("  {strategy:<14} p50 {p50:>8.0} µs   p99 {p99:>8.0} µs");
        if args.json {
            println!(
                "{}",
                json!({"bench": "rerank", "strategy": strategy, "candidates": args.candidates, "p50_us": p50, "p99_us": p99})
            );
        }
    }
    Ok(())
}
