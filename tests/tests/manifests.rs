//! The `prod` overlay of deploy/k8s, run (see `vectron_tests::kube`): every StatefulSet
//! and Deployment starts as its manifest says — 3 etcd, 3 placement nodes, 3 workers in
//! three zones, 2 auth services, 2 rerankers, 2 gateways behind their Services — answers
//! a write/search round, and then every workload is rolled, one pod at a time in the
//! order its controller would, under steady writes and searches: no acknowledged write is
//! lost, no request fails (the SDK retries what is retryable), and the longest pause of
//! each shard's writes is reported. Then the workers are scaled 3 → 5 (replicas move onto
//! the new ones) and back (drained, stopped, removed), under the same load. The overlay
//! runs TLS on every port (mutual inside the cluster): the test issues the certificate
//! its Secret holds and talks to the gateways over TLS.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use vectron_common::routing::{point_hash, range_contains};
use vectron_common::tls::CertificateAuthority;
use vectron_engine::PointId as EngineId;
use vectron_proto::v1::{CreateApiKeyRequest, Scope};
use vectron_sdk::{Client, Collection, Distance, Point, PointId};
use vectron_tests::client::readable;
use vectron_tests::cluster::eventually;
use vectron_tests::crash_vector;
use vectron_tests::kube::{Kube, Manifests, Supplied};

const DIM: u32 = vectron_tests::CRASH_DIM as u32;
const SHARDS: u32 = 3;

fn secret() -> Vec<u8> {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex_of(&b).into_bytes()
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An admin API key, made with the password the first auth pod printed at its start
/// (the gateways may need a moment to connect to the auth Service).
async fn admin_key(kube: &Kube, gateway: &Client) -> String {
    let passwords: Vec<String> = kube
        .pods_of("vectron-auth")
        .iter()
        .flat_map(|p| {
            let log = p.node.log_tail(200);
            log.lines()
                .filter_map(|l| l.split("with password ").nth(1))
                .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!passwords.is_empty(), "an auth pod printed the admin's password\n{}", kube.logs(20));
    let refusals = Mutex::new(Vec::new());
    let key = eventually(Duration::from_secs(30), "the admin to log in and make a key", || async {
        for password in &passwords {
            let tokens = match gateway.login("admin", password).await {
                Ok(t) => t,
                Err(e) => {
                    refusals.lock().push(format!("log-in: {e}"));
                    continue;
                }
            };
            let admin = gateway.clone().with_bearer_token(&tokens.access_token).ok()?;
            let request = CreateApiKeyRequest { scope: Scope::Admin.into(), ..Default::default() };
            match admin.create_api_key(request).await {
                Ok(made) => return Some(made.secret_key),
                Err(e) => {
                    refusals.lock().push(format!("new key: {e}"));
                    return None;
                }
            }
        }
        None
    })
    .await;
    let refused = refusals.lock().clone();
    if !refused.is_empty() {
        eprintln!("refused {} time(s) before the gateways reached the auth service: {refused:?}", refused.len());
    }
    key
}

/// Worker address → replicas it holds of `name`.
async fn replicas_per_worker(client: &Client, name: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Ok(status) = client.collection_status(name).await {
        for r in status.shards.iter().flat_map(|s| s.replicas.iter()) {
            *out.entry(r.worker_address.clone()).or_default() += 1;
        }
    }
    out
}

/// The placement driver's ids of the workers at `addresses`.
async fn worker_ids(client: &Client, addresses: &[String]) -> Vec<u64> {
    let workers = client.list_workers().await.expect("the workers");
    addresses
        .iter()
        .map(|a| {
            workers
                .iter()
                .find(|w| w.address == *a)
                .map(|w| w.id)
                .unwrap_or_else(|| panic!("worker at {a} is registered: {workers:?}"))
        })
        .collect()
}

/// Point ids whose hash falls in each shard's range.
fn ids_by_shard(status: &vectron_proto::v1::GetCollectionStatusResponse, per_shard: usize) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = status.shards.iter().map(|s| (s.shard_id, Vec::new())).collect();
    let mut id = 1u64;
    while out.values().any(|v| v.len() < per_shard) {
        let h = point_hash(&EngineId::Num(id));
        let shard =
            status.shards.iter().find(|s| range_contains(s.range_start, s.range_end, h)).expect("a shard owns it");
        let ids = out.get_mut(&shard.shard_id).expect("known shard");
        if ids.len() < per_shard {
            ids.push(id);
        }
        id += 1;
    }
    out
}

/// One writer per shard (single-point upserts of the shard's own ids) and one searcher,
/// through the gateways' Service, until stopped.
#[derive(Default)]
struct Load {
    acked: Mutex<Vec<u64>>,
    failures: Mutex<Vec<String>>,
    /// Per shard: the longest time between two acknowledged writes.
    longest_gap: Mutex<BTreeMap<u64, Duration>>,
    searches: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    fn start(
        client: &Client,
        name: &'static str,
        ids: BTreeMap<u64, Vec<u64>>,
    ) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Load::default());
        let mut tasks = Vec::new();
        for (shard, ids) in ids {
            let (client, load) = (client.clone(), load.clone());
            tasks.push(tokio::spawn(async move {
                let mut last = Instant::now();
                for id in ids {
                    if load.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let point = Point::new(id, crash_vector(id)).with_payload(json!({"shard": shard}));
                    match client.upsert(name, vec![point]).await {
                        Ok(_) => {
                            load.acked.lock().push(id);
                            let gap = last.elapsed();
                            last = Instant::now();
                            let mut longest = load.longest_gap.lock();
                            let e = longest.entry(shard).or_default();
                            *e = (*e).max(gap);
                        }
                        Err(e) => load.failures.lock().push(format!("upsert {id}: {e}")),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        let (client, searcher) = (client.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !searcher.stop.load(Ordering::Relaxed) {
                n += 1;
                match client.search(name, crash_vector(n % 500 + 1), 5).send().await {
                    Ok(_) => {
                        searcher.searches.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => searcher.failures.lock().push(format!("search: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        (load, tasks)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_prod_manifests_run_a_cluster_that_survives_a_rolling_restart_of_every_workload() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository");
    let manifests = Manifests::render(&root.join("deploy/k8s/overlays/prod"));
    // The overlay's TLS: one certificate for every process, as cert-manager would issue
    // it for the Services' names — here for the loopback addresses the harness gives
    // pods and Services in their place (127.42.x.y).
    let ca = CertificateAuthority::new("vectron test CA").unwrap();
    let addresses: Vec<String> = (1..512u32).map(|n| format!("127.42.{}.{}", n >> 8, n & 0xff)).collect();
    let names: Vec<&str> = addresses.iter().map(String::as_str).chain(["localhost"]).collect();
    let (cert, key) = ca.issue(&names).unwrap();
    let tls = BTreeMap::from([
        ("tls.crt".to_owned(), cert.into_bytes()),
        ("tls.key".to_owned(), key.into_bytes()),
        ("ca.crt".to_owned(), ca.cert_pem.clone().into_bytes()),
    ]);
    let supplied = Supplied {
        secrets: BTreeMap::from([
            ("vectron-cluster".to_owned(), BTreeMap::from([("secret".to_owned(), secret())])),
            ("vectron-jwt".to_owned(), BTreeMap::from([("signing-key".to_owned(), secret())])),
            ("vectron-tls".to_owned(), tls),
        ]),
        zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
    };
    let mut kube = Kube::start(manifests, supplied);
    kube.wait_ready(Duration::from_secs(120)).await;
    let counts: BTreeMap<&str, usize> =
        ["vectron-etcd", "vectron-placement", "vectron-worker", "vectron-auth", "vectron-reranker", "vectron-gateway"]
            .into_iter()
            .map(|w| (w, kube.pods_of(w).len()))
            .collect();
    eprintln!("pods per workload: {counts:?}");
    assert!(
        counts["vectron-placement"] == 3 && counts["vectron-worker"] >= 3 && counts["vectron-gateway"] >= 2,
        "{counts:?}"
    );

    let grpc = kube.service("vectron-gateway", 8081);
    let gateway = Client::connect_with_ca(&format!("https://{grpc}"), ca.cert_pem.as_bytes())
        .await
        .expect("the gateways' Service, over TLS");
    let key = admin_key(&kube, &gateway).await;
    let client = gateway.with_api_key(&key).unwrap().with_retry_budget(Duration::from_secs(20));
    let name = "k8s";
    client
        .create_collection(Collection::new(name, DIM, Distance::Euclid).shards(SHARDS).replication_factor(3))
        .await
        .expect("create a collection");
    let status = eventually(Duration::from_secs(30), "every shard led, on three zones", || async {
        let s = client.collection_status(name).await.ok()?;
        let led = s.shards.iter().all(|sh| sh.replicas.iter().any(|r| r.is_leader) && sh.replicas.len() == 3);
        led.then_some(s)
    })
    .await;

    // A write/search round.
    let round: Vec<Point> = (1_000_000..1_000_050u64).map(|i| Point::new(i, crash_vector(i))).collect();
    client.upsert(name, round).await.expect("upsert");
    let hits = client.search(name, crash_vector(1_000_007), 3).send().await.expect("search").hits;
    assert_eq!(hits.first().map(|h| h.id.clone()), Some(PointId::Num(1_000_007)), "{hits:?}");

    // Every workload rolled, under load.
    let (load, tasks) = Load::start(&client, name, ids_by_shard(&status, 100_000));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut stops = Vec::new();
    for workload in
        ["vectron-etcd", "vectron-placement", "vectron-worker", "vectron-auth", "vectron-reranker", "vectron-gateway"]
    {
        let started = Instant::now();
        let stopped = kube.rolling_restart(workload, Duration::from_secs(120)).await;
        let took: Vec<String> = stopped
            .iter()
            .map(|s| {
                format!("{} {}", s.pod, s.exit.map_or("killed".into(), |(_, t)| format!("{:.2} s", t.as_secs_f64())))
            })
            .collect();
        eprintln!("rolled {workload} in {:.1} s; stops: {}", started.elapsed().as_secs_f64(), took.join(", "));
        stops.extend(stopped.into_iter().map(|s| (workload, s)));
    }
    // Workers scaled 3 → 5 (the scheduler moves replicas onto the new ones), then back:
    // the two are drained first, as an operator scaling down does, and forgotten after.
    let started = Instant::now();
    kube.scale("vectron-worker", 5).await;
    kube.wait_workload_ready("vectron-worker", Duration::from_secs(120)).await;
    let new_workers: Vec<String> =
        ["vectron-worker-3", "vectron-worker-4"].iter().map(|p| kube.pods[*p].addr("grpc")).collect();
    eventually(Duration::from_secs(120), "replicas to move onto the new workers", || async {
        let per = replicas_per_worker(&client, name).await;
        new_workers.iter().all(|w| per.get(w).copied().unwrap_or(0) >= 1).then_some(())
    })
    .await;
    let scaled_up = started.elapsed();
    let moved_in: usize = {
        let per = replicas_per_worker(&client, name).await;
        new_workers.iter().map(|w| per.get(w).copied().unwrap_or(0)).sum()
    };
    let started = Instant::now();
    let ids = worker_ids(&client, &new_workers).await;
    for id in &ids {
        client.drain_worker(*id).await.unwrap_or_else(|e| panic!("drain worker {id}: {e}"));
    }
    eventually(Duration::from_secs(120), "the drained workers to hold no replica, every shard led", || async {
        let per = replicas_per_worker(&client, name).await;
        let status = client.collection_status(name).await.ok()?;
        let led = status
            .shards
            .iter()
            .all(|s| s.replicas.iter().any(|r| r.is_leader && !new_workers.contains(&r.worker_address)));
        (led && new_workers.iter().all(|w| !per.contains_key(w))).then_some(())
    })
    .await;
    for stop in kube.scale("vectron-worker", 3).await {
        let (status, _) = stop.exit.unwrap_or_else(|| panic!("{} outlived its grace period\n{}", stop.pod, stop.log));
        assert!(status.success(), "{} exited with {status}\n{}", stop.pod, stop.log);
    }
    for id in &ids {
        client.remove_worker(*id, false).await.unwrap_or_else(|e| panic!("remove worker {id}: {e}"));
    }
    let scaled_down = started.elapsed();
    eprintln!(
        "workers 3 → 5: {moved_in} replicas moved onto the new ones in {:.1} s; 5 → 3 (drain, stop, remove) in {:.1} s",
        scaled_up.as_secs_f64(),
        scaled_down.as_secs_f64()
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Every stopping leader handed its groups over (a failover by election would pass
    // the checks above too, only slower).
    for pod in std::fs::read_dir(kube.dir.path().join("pods")).unwrap().flatten() {
        let name = pod.file_name().to_string_lossy().into_owned();
        let log = std::fs::read_to_string(pod.path().join(format!("{name}.log"))).unwrap_or_default();
        let refused: Vec<&str> = log.lines().filter(|l| l.contains("not handed over")).collect();
        assert!(refused.is_empty(), "{name}: a leader did not hand over: {refused:?}");
    }
    let restarted: Vec<(&str, u32)> =
        kube.pods.values().filter(|p| p.restarts > 0).map(|p| (p.name.as_str(), p.restarts)).collect();
    assert!(
        restarted.is_empty(),
        "containers exited by themselves and were restarted: {restarted:?}\n{}",
        kube.logs(30)
    );
    let failures = load.failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} requests failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        kube.logs(30)
    );
    for (workload, stop) in &stops {
        let (status, _) = stop.exit.unwrap_or_else(|| panic!("{} outlived its grace period\n{}", stop.pod, stop.log));
        // Vectron's processes stop cleanly on SIGTERM (etcd re-raises the signal).
        if *workload != "vectron-etcd" {
            assert!(status.success(), "{} exited with {status} on SIGTERM\n{}", stop.pod, stop.log);
        }
    }
    let acked = load.acked.lock().clone();
    assert_eq!(
        readable(&client, name, &acked).await,
        acked.len(),
        "every acknowledged write survives the rolling restart"
    );
    let gaps: Vec<String> =
        load.longest_gap.lock().iter().map(|(s, g)| format!("shard {s}: {:.2} s", g.as_secs_f64())).collect();
    eprintln!(
        "rolling restart of every workload: {} writes and {} searches, none failed; longest write pause per shard: {}",
        acked.len(),
        load.searches.load(Ordering::Relaxed),
        gaps.join(", ")
    );
}

/// The certificate deploy/README.md tells operators to issue for the `prod` overlay's
/// TLS (its cert-manager `Certificate`) names every host a process of the rendered
/// manifests dials — as written there, since that is what TLS checks — so following the
/// documentation gives a cluster that can reach itself. (The test above runs the
/// processes on loopback addresses, where the names are gone.)
#[test]
fn the_documented_certificate_covers_every_name_the_prod_manifests_dial() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository");
    let readme = std::fs::read_to_string(root.join("deploy/README.md")).unwrap();
    let names: Vec<String> = readme
        .lines()
        .skip_while(|l| l.trim() != "dnsNames:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- ") || l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim_start().strip_prefix("- "))
        .map(|n| n.trim().trim_matches('"').to_owned())
        .collect();
    assert!(names.len() >= 5, "the README's dnsNames: {names:?}");
    let covers = |host: &str| {
        names.iter().any(|n| match n.strip_prefix("*.") {
            Some(rest) => host.split_once('.').is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
            None => n == host,
        })
    };
    let manifests = Manifests::render(&root.join("deploy/k8s/overlays/prod"));
    let mut dialled = Vec::new();
    for o in manifests.of_kind("StatefulSet").chain(manifests.of_kind("Deployment")) {
        for c in o["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten() {
            for arg in c["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str()) {
                let flags = ["--auth=", "--reranker=", "--placement=", "--advertise=", "--initial-members="];
                let Some(list) = flags.iter().find_map(|f| arg.strip_prefix(f)) else { continue };
                for item in list.split(',') {
                    let address = item.split_once('=').map_or(item, |(_, a)| a);
                    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                    dialled.push(host.replace("$(POD_NAME)", "pod-0").replace("$(POD_NAMESPACE)", "vectron"));
                }
            }
        }
    }
    assert!(dialled.iter().any(|h| h.starts_with("vectron-auth")), "{dialled:?}");
    let missing: Vec<&String> = dialled.iter().filter(|h| !covers(h)).collect();
    assert!(missing.is_empty(), "deploy/README.md's certificate does not name {missing:?} (it names {names:?})");
}
