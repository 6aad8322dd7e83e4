//! `vectron-bench cluster`: the engine benchmark's workloads end to end through a
//! gateway (gRPC, with the Rust SDK): ingest rate with N concurrent clients, then for
//! each `ef` search QPS, p50/p99 and recall@k with N concurrent clients.
//!
//! `--compare-engine` also runs the same searches on an in-process shard built from the
//! same data (RocksDB + index, no network) with the same concurrency, so the gateway's
//! overhead shows as a ratio measured in the same run.
//!
//! The gateway caches search answers. So that a timed pass measures searches, not the
//! cache, every pass after the warm-up scales each query by `1 + pass · 2⁻²⁰` (new
//! bytes, the same neighbours under cosine and dot, indistinguishable ones under
//! euclid) — except a `--repeat-queries` share of them, sent exactly as in the warm-up,
//! which the cache can answer; their p50 and the fresh queries' p50 are reported apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;
use vectron_engine::{Distance, Point, PointId, SearchQuery, Shard, ShardConfig, ShardId, Storage};
use vectron_sdk::{Client, Collection};

use crate::dataset::Dataset;
use crate::{DataArgs, Reporter, percentile, recall};

#[derive(Parser, Clone)]
pub struct ClusterArgs {
    /// The gateway's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    gateway: String,
    /// Collection to create (dropped first if it exists).
    #[arg(long, default_value = "bench")]
    collection: String,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 1)]
    shards: u32,
    #[arg(long, default_value_t = 1)]
    replication_factor: u32,
    #[arg(long, default_value_t = 16)]
    m: u32,
    #[arg(long, default_value_t = 200)]
    ef_construction: u32,
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
    ef: Vec<u32>,
    /// Concurrent clients (ingest and search).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Points per upsert request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Timed search passes per ef; the best is reported.
    #[arg(long, default_value_t = 2)]
    repeat: usize,
    /// Also search an in-process shard of the same data with the same concurrency.
    #[arg(long)]
    compare_engine: bool,
    /// The server's Prometheus endpoint; its `process_cpu_seconds_total` gives the
    /// server's CPU per query (empty: not measured).
    #[arg(long, default_value = "http://127.0.0.1:8080/metrics")]
    metrics_url: String,
    /// How the load generator searches: one unary `Search` call per query, or each
    /// client on its own `SearchStream` (no per-query call set-up).
    #[arg(long, value_enum, default_value_t = SearchApi::Unary)]
    search_api: SearchApi,
    /// Threads of the load generator's runtime (0: one per core it may run on). On one
    /// host, pin the server and the load generator to separate cores (`taskset`) so the
    /// load generator's CPU does not count against the server; see the README.
    #[arg(long, default_value_t = 0)]
    load_threads: usize,
    /// Share of each timed pass's queries sent exactly as in the warm-up pass (answers
    /// the gateway's cache holds); the rest are new requests.
    #[arg(long, default_value_t = 0.0)]
    repeat_queries: f64,
    /// Rerank every search with this strategy (e.g. `mmr`), its parameters from
    /// `--rerank-params`, over `--rerank-candidates` candidates.
    #[arg(long)]
    rerank: Option<String>,
    #[arg(long, default_value = "{}")]
    rerank_params: String,
    #[arg(long, default_value_t = 100)]
    rerank_candidates: u32,
    /// API key for the gateway (an admin key: the bench creates collections and reads
    /// /metrics), e.g. `$(cat data/admin.key)` for `vectron dev`.
    #[arg(long, env = "VECTRON_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// For an https:// gateway: trust only this CA certificate (PEM), e.g.
    /// data/tls/ca.crt of `vectron dev --tls`.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchApi {
    Unary,
    Stream,
}

struct Timed {
    found: Vec<Vec<u32>>,
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    /// p50 of the queries repeated from the warm-up, and of the others (0 when none).
    p50_repeated_us: f64,
    p50_fresh_us: f64,
    /// Queries run in all passes (warm-up included), for CPU per query.
    total: usize,
}

/// Whether query `i` is one of the `share` repeated exactly in every timed pass.
fn repeated(i: usize, share: f64) -> bool {
    // A fixed pseudo-random spread over the queries (not the first ones: clustered data
    // lists its queries by cluster).
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    (h as f64 / (1u64 << 53) as f64) < share
}

/// Query `q` as pass `pass` sends it: scaled so that it is a new request, unless it is
/// repeated (or the pass is the warm-up).
fn as_sent(q: &[f32], pass: usize, repeat: bool) -> Vec<f32> {
    if pass == 0 || repeat {
        return q.to_vec();
    }
    let scale = 1.0 + pass as f32 * f32::powi(2.0, -20);
    q.iter().map(|x| x * scale).collect()
}

/// CPU seconds (user + system) this process has used.
fn own_cpu_seconds() -> f64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map(|s| (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64)
        .unwrap_or(0.0)
}

/// CPU seconds the server has used, from its `process_cpu_seconds_total`.
async fn server_cpu_seconds(http: &reqwest::Client, url: &str, api_key: Option<&str>) -> Option<f64> {
    if url.is_empty() {
        return None;
    }
    let mut request = http.get(url);
    if let Some(key) = api_key {
        request = request.header(vectron_sdk::API_KEY_HEADER, key);
    }
    let text = request.send().await.ok()?.error_for_status().ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("process_cpu_seconds_total ")).and_then(|v| v.trim().parse().ok())
}

/// Microseconds of CPU per query between two CPU readings.
fn per_query_us(before: f64, after: f64, queries: usize) -> f64 {
    (after - before) * 1e6 / queries.max(1) as f64
}

/// Runs every query once across `clients` concurrent tasks; the best of `repeat` passes
/// after a warm-up, a `repeat_share` of the queries sent as in the warm-up.
async fn timed<F, Fut>(
    queries: &Arc<Vec<Vec<f32>>>,
    clients: usize,
    repeat: usize,
    repeat_share: f64,
    search: F,
) -> Result<Timed>
where
    F: Fn(Vec<f32>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<u32>>> + Send,
{
    let mut best: Option<Timed> = None;
    let passes = repeat.max(1) + 1;
    for pass in 0..passes {
        let next = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients.max(1) {
            let (queries, next, search) = (queries.clone(), next.clone(), search.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= queries.len() {
                        return Ok::<_, anyhow::Error>(out);
                    }
                    let q = as_sent(&queries[i], pass, repeated(i, repeat_share));
                    let s = Instant::now();
                    let ids = search(q).await?;
                    out.push((i, ids, s.elapsed()));
                }
            }));
        }
        let mut found = vec![Vec::new(); queries.len()];
        let mut lat = Vec::with_capacity(queries.len());
        let (mut lat_repeated, mut lat_fresh) = (Vec::new(), Vec::new());
        for task in tasks {
            for (i, ids, d) in task.await?? {
                found[i] = ids;
                lat.push(d);
                if repeated(i, repeat_share) { &mut lat_repeated } else { &mut lat_fresh }.push(d);
            }
        }
        let qps = queries.len() as f64 / t.elapsed().as_secs_f64();
        lat.sort();
        lat_repeated.sort();
        lat_fresh.sort();
        if pass == 0 {
            continue; // warm-up
        }
        if best.as_ref().is_none_or(|b| qps > b.qps) {
            best = Some(Timed {
                found,
                qps,
                p50_us: percentile(&lat, 0.5),
                p99_us: percentile(&lat, 0.99),
                p50_repeated_us: percentile(&lat_repeated, 0.5),
                p50_fresh_us: percentile(&lat_fresh, 0.5),
                total: queries.len() * passes,
            });
        }
    }
    Ok(best.expect("at least one pass"))
}

fn num_id(id: &PointId) -> u32 {
    match id {
        PointId::Num(n) => *n as u32,
        PointId::Str(_) => u32::MAX,
    }
}

pub fn run(mut args: ClusterArgs) -> Result<()> {
    args.data = args.data.resolved();
    let runtime = match args.load_threads {
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    runtime.block_on(run_async(args))
}

async fn run_async(args: ClusterArgs) -> Result<()> {
    let distance = args.data.distance;
    let mut data =
        Dataset::clustered(args.data.n, args.data.queries, args.data.dim, args.data.clusters, args.data.seed);
    if distance == Distance::Cosine {
        data.normalise();
    }
    let truth = data.ground_truth(distance, args.data.k, None);
    let mut client = match &args.ca_file {
        Some(path) => {
            let ca = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Client::connect_with_ca(&args.gateway, &ca).await
        }
        None => Client::connect(&args.gateway).await,
    }
    .context("connecting to the gateway")?;
    if let Some(key) = &args.api_key {
        client = client.with_api_key(key)?;
    }
    let _ = client.delete_collection(&args.collection).await;
    let collection = Collection::new(&args.collection, args.data.dim as u32, distance)
        .shards(args.shards)
        .replication_factor(args.replication_factor)
        .hnsw(args.m, args.ef_construction);
    client.create_collection(collection).await.context("creating the collection")?;
    eprintln!(
        "dataset: {} × {} ({:?}); collection {:?}: {} shard(s), RF {}; {} clients",
        args.data.n, args.data.dim, distance, args.collection, args.shards, args.replication_factor, args.clients
    );

    // Ingest: batches handed out to concurrent clients.
    let base = Arc::new(data.base.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (client, base, next, name, batch) =
            (client.clone(), base.clone(), next.clone(), args.collection.clone(), args.batch.max(1));
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= base.len() {
                    return Ok::<_, vectron_sdk::Error>(());
                }
                let end = (start + batch).min(base.len());
                let points =
                    (start..end).map(|i| vectron_sdk::Point::new(i as u64, base[i].clone())).collect::<Vec<_>>();
                client.upsert(&name, points).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let ingest_s = t.elapsed().as_secs_f64();
    let ingest_rate = args.data.n as f64 / ingest_s;
    let mut report = Reporter { json: args.data.json, rows: Vec::new() };
    let common = json!({"n": args.data.n, "dim": args.data.dim, "shards": args.shards, "rf": args.replication_factor,
                        "clients": args.clients, "batch": args.batch, "rerank": args.rerank,
                        "search_api": format!("{:?}", args.search_api).to_lowercase()});
    eprintln!("ingest: {ingest_rate:.0} vectors/s ({ingest_s:.1} s)");
    if args.data.json {
        println!(
            "{}",
            json!({"bench": "cluster", "phase": "ingest", "vectors_per_s": ingest_rate, "seconds": ingest_s, "config": common})
        );
    }

    let queries = Arc::new(data.queries.clone());
    let http = reqwest::Client::new();
    // Stream mode: one stream per client, taken from and given back to this pool.
    let mut streams = Vec::new();
    if args.search_api == SearchApi::Stream {
        for _ in 0..args.clients.max(1) {
            streams.push(client.search_stream().await.context("opening a search stream")?);
        }
    }
    let streams = Arc::new(std::sync::Mutex::new(streams));
    let rerank = match &args.rerank {
        None => None,
        Some(strategy) => {
            let params: serde_json::Value = serde_json::from_str(&args.rerank_params).context("--rerank-params")?;
            let mut r = vectron_sdk::rerank(strategy, None, params)?;
            r.candidates = args.rerank_candidates;
            Some(r)
        }
    };
    for &ef in &args.ef {
        let (client, name, k) = (client.clone(), args.collection.clone(), args.data.k as u32);
        let (streams, rerank) = (streams.clone(), rerank.clone());
        let search = move |q: Vec<f32>| {
            let (client, name, streams, rerank) = (client.clone(), name.clone(), streams.clone(), rerank.clone());
            async move {
                let mut request = client.search(&name, q, k).ef(ef);
                if let Some(r) = rerank {
                    request = request.rerank(r);
                }
                let stream = streams.lock().expect("stream pool").pop();
                let r = match stream {
                    None => request.send().await?,
                    Some(mut stream) => {
                        let r = stream.search(request).await?;
                        streams.lock().expect("stream pool").push(stream);
                        r
                    }
                };
                anyhow::ensure!(!r.partial, "partial answer (shards {:?} missed the deadline)", r.missing_shards);
                if let Some(reason) = &r.rerank_skipped {
                    anyhow::bail!("the rerank was skipped: {reason}");
                }
                Ok(r.hits.iter().map(|h| num_id(&h.id)).collect())
            }
        };
        let (server_before, client_before) =
            (server_cpu_seconds(&http, &args.metrics_url, args.api_key.as_deref()).await, own_cpu_seconds());
        let m = timed(&queries, args.clients, args.repeat, args.repeat_queries, search).await?;
        let client_cpu_us = per_query_us(client_before, own_cpu_seconds(), m.total);
        let server_cpu_us =
            match (server_before, server_cpu_seconds(&http, &args.metrics_url, args.api_key.as_deref()).await) {
                (Some(b), Some(a)) => Some(per_query_us(b, a, m.total)),
                _ => None,
            };
        report.row(json!({"backend": "gateway", "ef": ef, "recall": recall(&m.found, &truth, args.data.k),
                          "qps_1t": 0.0, "qps_mt": m.qps, "p50_us": m.p50_us, "p99_us": m.p99_us,
                          "server_cpu_us_per_query": server_cpu_us, "client_cpu_us_per_query": client_cpu_us,
                          "repeat_queries": args.repeat_queries, "p50_repeated_us": m.p50_repeated_us,
                          "p50_fresh_us": m.p50_fresh_us, "build_s": ingest_s, "rss_bytes": 0, "config": common}));
        if args.repeat_queries > 0.0 {
            eprintln!(
                "ef {ef}: p50 of repeated queries (the cache's) {:.0} µs, of fresh ones {:.0} µs: {:.1}× faster",
                m.p50_repeated_us,
                m.p50_fresh_us,
                m.p50_fresh_us / m.p50_repeated_us.max(1e-9)
            );
        }
    }

    if args.compare_engine {
        let dir = tempfile::tempdir()?;
        let storage = Storage::open(&dir.path().join("db"), Default::default())?;
        let mut config = ShardConfig::new(args.data.dim, distance);
        config.hnsw.m = args.m as usize;
        config.hnsw.ef_construction = args.ef_construction as usize;
        let shard = Arc::new(Shard::create(&storage, ShardId(1), config, dir.path())?);
        let t = Instant::now();
        for chunk in (0..args.data.n).collect::<Vec<_>>().chunks(args.batch.max(1)) {
            shard.upsert(
                chunk
                    .iter()
                    .map(|&i| Point { id: PointId::Num(i as u64), vector: data.base[i].clone(), payload: None })
                    .collect(),
            )?;
        }
        let engine_ingest = args.data.n as f64 / t.elapsed().as_secs_f64();
        eprintln!("engine ingest (one writer, in-process): {engine_ingest:.0} vectors/s");
        for &ef in &args.ef {
            let (shard, k) = (shard.clone(), args.data.k);
            let search = move |q: Vec<f32>| {
                let shard = shard.clone();
                async move {
                    let hits = tokio::task::spawn_blocking(move || {
                        let mut req = SearchQuery::new(q, k);
                        req.ef = Some(ef as usize);
                        shard.search(&req)
                    })
                    .await??;
                    Ok(hits.iter().map(|h| num_id(&h.id)).collect())
                }
            };
            let before = own_cpu_seconds();
            let m = timed(&queries, args.clients, args.repeat, 0.0, search).await?;
            let cpu_us = per_query_us(before, own_cpu_seconds(), m.total);
            report.row(json!({"backend": "engine", "ef": ef, "recall": recall(&m.found, &truth, args.data.k),
                              "qps_1t": 0.0, "qps_mt": m.qps, "p50_us": m.p50_us, "p99_us": m.p99_us,
                              "cpu_us_per_query": cpu_us, "build_s": 0.0, "rss_bytes": 0, "config": common}));
        }
        let rows = report.rows.clone();
        for &ef in &args.ef {
            let field = |b: &str, f: &str| {
                rows.iter().find(|r| r["backend"] == b && r["ef"] == ef).and_then(|r| r[f].as_f64()).unwrap_or(0.0)
            };
            let ratio = field("gateway", "qps_mt") / field("engine", "qps_mt").max(1e-9);
            let (server, client, engine) = (
                field("gateway", "server_cpu_us_per_query"),
                field("gateway", "client_cpu_us_per_query"),
                field("engine", "cpu_us_per_query"),
            );
            eprintln!(
                "ef {ef}: gateway / engine QPS = {ratio:.2}; CPU per query: server {server:.0} µs + load generator \
                 {client:.0} µs, in-process engine {engine:.0} µs (engine / server = {:.2})",
                engine / server.max(1e-9)
            );
        }
    }
    report.table();
    Ok(())
}
