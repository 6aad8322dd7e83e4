//! Processes started and stopped the way Kubernetes does it: every gRPC port reports
//! readiness and liveness to probes that carry no credentials, a starting worker's port
//! refuses at once instead of hanging, and SIGTERM is a clean stop — a worker and a
//! placement leader hand their Raft groups over first, a gateway drains — with no
//! request failing meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use vectron_sdk::{Client, Collection, Distance, Point};
use vectron_tests::client::{all_shards_led, leaders, must_connect, must_create, readable};
use vectron_tests::cluster::{Cluster, ClusterSpec, Node, eventually, free_port, health_status};
use vectron_tests::crash_vector;

const DIM: u32 = vectron_tests::CRASH_DIM as u32;

/// What `addr`'s health service says of `service` (`None`: no answer).
async fn health(addr: &str, service: &str) -> Option<ServingStatus> {
    health_status(addr, service, Duration::from_secs(3)).await
}

async fn must_be_ready(addr: &str, what: &str) {
    eventually(Duration::from_secs(60), &format!("{what} at {addr} to report ready"), || async {
        (health(addr, "readiness").await == Some(ServingStatus::Serving)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpc_port_reports_readiness_and_liveness_to_probes_without_credentials() {
    let cluster = Cluster::start(ClusterSpec { workers: 2, reranker: true, ..ClusterSpec::default() });
    let mut ports: Vec<(String, String)> = vec![("gateway".into(), cluster.grpc.clone())];
    ports.extend(
        cluster
            .placement
            .iter()
            .chain(&cluster.workers)
            .chain(&cluster.reranker)
            .map(|n| (n.name.clone(), n.addr.clone())),
    );
    for (name, addr) in &ports {
        must_be_ready(addr, name).await;
        assert_eq!(health(addr, "liveness").await, Some(ServingStatus::Serving), "{name}: liveness");
        assert_eq!(health(addr, "").await, Some(ServingStatus::Serving), "{name}: the overall status is readiness");
    }
    // Health is open; the internal APIs on the same ports are not (tests/internal_auth.rs
    // covers every method).
    let channel =
        Endpoint::from_shared(format!("http://{}", cluster.workers[0].addr)).unwrap().connect().await.unwrap();
    let refused = vectron_proto::internal::worker_client::WorkerClient::new(channel)
        .status(vectron_proto::internal::WorkerStatusRequest {})
        .await
        .expect_err("no cluster token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_worker_refuses_calls_at_once_and_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    // A placement driver nobody runs: the worker cannot register, so it stays starting.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let data = dir.path().join("worker");
    let args = ["worker", "--listen", &addr, "--placement", &nowhere, "--data-dir", &data.display().to_string()];
    let worker = Node::start("worker", &addr, args.iter().map(|a| a.to_string()).collect(), dir.path());
    eventually(Duration::from_secs(20), "the starting worker to report live", || async {
        (health(&addr, "liveness").await == Some(ServingStatus::Serving)).then_some(())
    })
    .await;
    assert_eq!(health(&addr, "readiness").await, Some(ServingStatus::NotServing), "not ready before it registered");
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = vectron_proto::internal::worker_client::WorkerClient::new(channel);
    let call = client.status(vectron_proto::internal::WorkerStatusRequest {});
    let refused = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("a starting worker answers at once instead of holding the call")
        .expect_err("a starting worker serves nothing");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}\n{}", worker.log_tail(20));
    let md = refused.metadata();
    assert_eq!(md.get("vectron-error-code").and_then(|v| v.to_str().ok()), Some("UNAVAILABLE"));
    assert_eq!(md.get("vectron-retryable").and_then(|v| v.to_str().ok()), Some("true"));
    assert!(md.get("retry-after").is_some(), "a retry hint: {md:?}");
}

fn point(id: u64) -> Point {
    Point::new(id, crash_vector(id)).with_payload(json!({"n": id}))
}

/// Writers upserting fresh ids through the SDK until stopped: what they had
/// acknowledged, what failed (after the SDK's own retries), the slowest write.
#[derive(Default)]
struct Load {
    acked: Mutex<Vec<u64>>,
    failures: Mutex<Vec<String>>,
    slowest: Mutex<Duration>,
    stop: AtomicBool,
    next: AtomicU64,
}

impl Load {
    fn start(client: &Client, name: &'static str, writers: usize) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Load { next: AtomicU64::new(1), ..Load::default() });
        let tasks = (0..writers)
            .map(|_| {
                let (client, load) = (client.clone(), load.clone());
                tokio::spawn(async move {
                    while !load.stop.load(Ordering::Relaxed) {
                        let first = load.next.fetch_add(10, Ordering::Relaxed);
                        let ids: Vec<u64> = (first..first + 10).collect();
                        let started = Instant::now();
                        match client.upsert(name, ids.iter().map(|&i| point(i)).collect()).await {
                            Ok(_) => load.acked.lock().extend(&ids),
                            Err(e) => load.failures.lock().push(e.to_string()),
                        }
                        let took = started.elapsed();
                        let mut slowest = load.slowest.lock();
                        *slowest = (*slowest).max(took);
                    }
                })
            })
            .collect();
        (load, tasks)
    }

    async fn stop(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_worker_hands_its_shards_over_and_no_write_fails() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, ..ClusterSpec::default() });
    let client = must_connect(&cluster).await;
    let name = "handover";
    must_create(&client, Collection::new(name, DIM, Distance::Euclid).shards(3).replication_factor(3), &cluster).await;
    eventually(Duration::from_secs(30), "every shard to have a leader", || async {
        all_shards_led(&client, name, 3).await.then_some(())
    })
    .await;
    for w in &cluster.workers {
        must_be_ready(&w.addr, &w.name).await;
    }

    let (load, writers) = Load::start(&client, name, 2);
    // Long enough under load for the leaders to be past their first lease in office, as
    // leaders mostly are (a leader elected moments ago waits that out before handing over).
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The worker leading the most shards stops, as a pod being replaced does.
    let led = leaders(&client, name).await;
    let (address, shards) = led.iter().max_by_key(|(_, s)| s.len()).expect("some worker leads");
    let i = cluster.worker_at(address).expect("a worker of the cluster");
    let before = *load.slowest.lock();
    let worker = &mut cluster.workers[i];
    let stop = tokio::task::block_in_place(|| worker.terminate(Duration::from_secs(30)));
    let (status, took) = stop.unwrap_or_else(|| panic!("no exit within the grace period\n{}", worker.log_tail(40)));
    let log = worker.log_tail(400);
    assert!(status.success(), "a clean stop exits 0: {status}\n{log}");
    let handed = log.lines().filter(|l| l.contains("handed shard over")).count();
    assert!(handed >= 1 && handed >= shards.len(), "it led {shards:?} and handed {handed} over\n{log}");
    assert!(!log.contains("shard not handed over"), "{log}");
    assert!(log.contains("worker stopped cleanly"), "{log}");

    // The others lead every shard; writes went on throughout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop(writers).await;
    let failures = load.failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} writes failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        cluster.logs(30)
    );
    let acked = load.acked.lock().clone();
    assert_eq!(readable(&client, name, &acked).await, acked.len(), "every acknowledged write is readable");
    eprintln!(
        "graceful worker stop: {} shard(s) handed over, exit after {:.2} s; slowest write {:.0} ms during the stop \
         (before it: {:.0} ms); {} writes acknowledged, none failed",
        handed,
        took.as_secs_f64(),
        load.slowest.lock().as_secs_f64() * 1e3,
        before.as_secs_f64() * 1e3,
        acked.len()
    );

    // Back on its data, it catches up and reports ready again.
    let started = Instant::now();
    cluster.workers[i].start_again();
    let addr = cluster.workers[i].addr.clone();
    must_be_ready(&addr, "the restarted worker").await;
    eprintln!("restarted worker ready after {:.2} s", started.elapsed().as_secs_f64());
}

/// The placement leader's address, as the gateway's health route reports it.
async fn placement_leader(http: &str) -> Option<String> {
    let r: Value = reqwest::get(format!("http://{http}/v1/system/health")).await.ok()?.json().await.ok()?;
    r["placement_leader"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_placement_leader_hands_over_and_routing_goes_on() {
    let mut cluster = Cluster::start(ClusterSpec { placement_nodes: 3, workers: 1, ..ClusterSpec::default() });
    let http = cluster.http.clone();
    let leader = eventually(Duration::from_secs(30), "a placement leader", || placement_leader(&http)).await;
    for p in &cluster.placement {
        must_be_ready(&p.addr, &p.name).await;
    }
    let i = cluster.placement.iter().position(|p| p.addr == leader).expect("the leader is a member");
    let node = &mut cluster.placement[i];
    let stop = tokio::task::block_in_place(|| node.terminate(Duration::from_secs(30)));
    let (status, took) = stop.unwrap_or_else(|| panic!("no exit within the grace period\n{}", node.log_tail(40)));
    let log = node.log_tail(200);
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("handed placement leadership over"), "{log}");
    let next = eventually(Duration::from_secs(10), "another placement leader", || async {
        placement_leader(&http).await.filter(|l| *l != leader)
    })
    .await;
    eprintln!("placement leader stop: exit after {:.2} s, {next} leads", took.as_secs_f64());
    let client = must_connect(&cluster).await;
    must_create(&client, Collection::new("after", DIM, Distance::Euclid), &cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_drains_not_ready_but_serving_then_exits_and_serves_its_ops_port() {
    let cluster = Cluster::start(ClusterSpec { workers: 1, ..ClusterSpec::default() });
    let drain = Duration::from_secs(2);
    let scrape = format!("127.0.0.1:{}", free_port());
    let gateway = cluster.start_gateway_with("draining", &["--drain-delay", "2s", "--metrics", &scrape]);
    must_be_ready(&gateway.grpc, "the gateway").await;
    let url = format!("http://{}/v1/collections", gateway.http);
    assert!(reqwest::get(&url).await.unwrap().status().is_success());
    // Its ops port serves the metrics and the probes (no credentials there) and nothing else.
    let metrics = reqwest::get(format!("http://{scrape}/metrics")).await.unwrap();
    assert!(metrics.status().is_success());
    assert!(metrics.text().await.unwrap().contains("vectron_requests_total"), "the gateway's own metrics");
    assert_eq!(reqwest::get(format!("http://{scrape}/livez")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(format!("http://{scrape}/readyz")).await.unwrap().status(), 200);
    let other = reqwest::get(format!("http://{scrape}/v1/collections")).await.unwrap();
    assert_eq!(other.status(), 404, "no API on the ops port");

    let grpc = gateway.grpc.clone();
    let mut gateway = gateway;
    let stopping = tokio::task::spawn_blocking(move || {
        let stop = gateway.node.terminate(Duration::from_secs(30));
        (stop, gateway)
    });
    let mut served_while_draining = 0;
    let deadline = Instant::now() + drain;
    while Instant::now() + Duration::from_millis(500) < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ready = health(&grpc, "readiness").await;
        let readyz = reqwest::get(format!("http://{scrape}/readyz")).await.map(|r| r.status().as_u16());
        let answer = reqwest::get(&url).await;
        if ready == Some(ServingStatus::NotServing) && answer.is_ok_and(|r| r.status().is_success()) {
            assert!(matches!(readyz, Ok(503)), "/readyz agrees with the gRPC readiness: {readyz:?}");
            served_while_draining += 1;
        }
    }
    let (stop, gateway) = stopping.await.unwrap();
    let (status, took) =
        stop.unwrap_or_else(|| panic!("no exit within the grace period\n{}", gateway.node.log_tail(40)));
    assert!(status.success(), "{status}");
    assert!(served_while_draining > 0, "it answered requests while reporting not ready");
    assert!(took >= drain, "it served through its drain delay ({took:?})");
}

/// The sum of the samples of `name` whose labels contain every one of `labels`
/// (`key="value"`), in a Prometheus text exposition; `None` if there is none.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (metric, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if metric == name && labels.iter().all(|l| series_labels.contains(l)) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    found
}

async fn scrape(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_nodes_and_workers_serve_their_state_and_probes_on_their_ops_ports() {
    let placement_ops = format!("127.0.0.1:{}", free_port());
    let spec = ClusterSpec {
        workers: 0,
        placement_args: ["--metrics", &placement_ops, "--log-format", "json"].map(String::from).to_vec(),
        ..Default::default()
    };
    let mut cluster = Cluster::start(spec);
    let worker_ops = format!("127.0.0.1:{}", free_port());
    cluster.add_worker_with(&["--metrics".into(), worker_ops.clone()]);
    let client = must_connect(&cluster).await;
    must_create(&client, Collection::new("ops", DIM, Distance::Euclid).shards(2), &cluster).await;
    let points: Vec<Point> = (0..50u64).map(|i| Point::new(i, crash_vector(i))).collect();
    client.upsert("ops", points).await.expect("upsert");

    for ops in [&worker_ops, &placement_ops] {
        assert_eq!(reqwest::get(format!("http://{ops}/livez")).await.unwrap().status(), 200);
        eventually(Duration::from_secs(30), "ready on the ops port", || async {
            let r = reqwest::get(format!("http://{ops}/readyz")).await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        let text = scrape(ops).await;
        assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some_and(|v| v > 0.0), "{text}");
        assert!(sample(&text, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0), "{text}");
    }
    // The worker: each replica's Raft and engine state, labelled by collection and shard.
    let text = eventually(Duration::from_secs(20), "every point in the worker's metrics", || async {
        let text = scrape(&worker_ops).await;
        (sample(&text, "vectron_replica_points", &["collection=\"ops\""]) == Some(50.0)).then_some(text)
    })
    .await;
    let ops = ["collection=\"ops\""];
    assert_eq!(sample(&text, "vectron_worker_replicas", &[]), Some(2.0), "{text}");
    assert_eq!(sample(&text, "vectron_replica_leader", &ops), Some(2.0), "it leads both shards (RF 1)");
    assert_eq!(sample(&text, "vectron_replica_graph_nodes", &ops), Some(50.0), "{text}");
    assert_eq!(sample(&text, "vectron_replica_graph_tombstones", &ops), Some(0.0), "{text}");
    assert_eq!(sample(&text, "vectron_replica_raft_apply_lag", &ops), Some(0.0), "{text}");
    assert!(sample(&text, "vectron_replica_raft_term", &ops).is_some_and(|t| t >= 2.0), "{text}");
    let leaders = sample(&text, "vectron_replica_raft_leader_changes_total", &ops);
    assert!(leaders.is_some_and(|n| n >= 2.0), "a leader seen in each shard's group: {text}");
    assert!(sample(&text, "vectron_replica_raft_applied_index", &ops).is_some_and(|i| i >= 2.0), "{text}");
    assert!(sample(&text, "vectron_worker_graph_saves_total", &[]).is_some(), "{text}");
    // The placement node: the cluster as it has it.
    let text = scrape(&placement_ops).await;
    assert_eq!(sample(&text, "vectron_placement_leader", &[]), Some(1.0), "{text}");
    let leaders = sample(&text, "vectron_placement_raft_leader_changes_total", &[]);
    assert!(leaders.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(sample(&text, "vectron_placement_collections", &[]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "vectron_placement_shards", &[]), Some(2.0), "{text}");
    assert_eq!(sample(&text, "vectron_placement_workers", &["state=\"up\""]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "vectron_placement_alerts_open", &["kind=\"worker_down\""]), Some(0.0), "{text}");

    // The Grafana dashboard (deploy/grafana) asks only for metrics these processes
    // export: the worker's and placement node's ops ports, and the gateway's /metrics
    // after a search.
    client.search("ops", crash_vector(1), 3).send().await.expect("search");
    let gateway = reqwest::get(format!("http://{}/metrics", cluster.http)).await.unwrap().text().await.unwrap();
    let exported = [scrape(&worker_ops).await, text.clone(), gateway].concat();
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/vectron.json"))
        .expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut asked = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            asked.extend(words.filter(|w| w.starts_with("vectron_") || w.starts_with("process_")).map(str::to_owned));
        }
    }
    assert!(asked.len() > 20, "{asked:?}");
    for name in &asked {
        let exported_here = exported.lines().any(|l| l.split(['{', ' ']).next() == Some(name.as_str()));
        assert!(exported_here, "the dashboard asks for {name}, which no process exports");
    }

    // Its log (--log-format json): one JSON object per line, with level and message.
    let log = cluster.placement[0].log_tail(10_000);
    assert!(log.lines().count() >= 2, "{log}");
    for line in log.lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["level"].is_string() && event["fields"]["message"].is_string(), "{line}");
    }

    // A worker killed: the placement node's metrics show it down and the alert open.
    cluster.workers[0].kill();
    eventually(Duration::from_secs(30), "the worker down in the placement metrics", || async {
        let text = scrape(&placement_ops).await;
        let down = sample(&text, "vectron_placement_workers", &["state=\"down\""]) == Some(1.0);
        let alert = sample(&text, "vectron_placement_alerts_open", &["kind=\"worker_down\""]) == Some(1.0);
        (down && alert).then_some(())
    })
    .await;
}
