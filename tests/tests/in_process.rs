//! Cluster scenarios on the in-process harness (`vectron_tests::in_process`): every node
//! in this test's runtime, their links cut and healed through the fault table, waiting
//! on conditions, not sleeps.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vectron_sdk::{Client, Collection, Distance, ErrorCode, Point};
use vectron_tests::cluster::eventually;
use vectron_tests::in_process::{InProcessCluster, InProcessSpec};

fn point(id: u64) -> Point {
    Point::new(id, vec![id as f32, 1.0, 0.5, -0.25])
}

async fn connect(cluster: &InProcessCluster) -> Client {
    eventually(Duration::from_secs(10), "the gateway", || async {
        Client::connect(&format!("http://{}", cluster.grpc)).await.ok()
    })
    .await
}

/// The collection's only shard and the worker address leading it, as the routing table
/// says.
async fn leader(client: &Client, name: &str) -> Option<(u64, String)> {
    let status = client.collection_status(name).await.ok()?;
    let shard = status.shards.first()?;
    shard.replicas.iter().find(|r| r.is_leader).map(|r| (shard.shard_id, r.worker_address.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_shard_leader_is_replaced_and_catches_up_after_healing() {
    let started = Instant::now();
    let cluster = InProcessCluster::start(InProcessSpec::default()).await;
    let client = connect(&cluster).await;
    eventually(Duration::from_secs(10), "the collection", || async {
        client.create_collection(Collection::new("p", 4, Distance::Euclid).replication_factor(3)).await.ok()
    })
    .await;
    assert_eq!(client.upsert("p", (0..10).map(point).collect()).await.unwrap(), 10);
    let (shard_id, old) = eventually(Duration::from_secs(10), "a shard leader", || leader(&client, "p")).await;

    // Cut the leader off from every other node: the other two elect a leader and the
    // gateway's writes go there.
    cluster.faults.isolate(&cluster.worker_name(&old));
    let cut = Instant::now();
    eventually(Duration::from_secs(10), "a write after the partition", || async {
        client.upsert("p", (10..20).map(point).collect()).await.ok()
    })
    .await;
    let failover = cut.elapsed();
    let new = eventually(Duration::from_secs(10), "a new leader", || async {
        leader(&client, "p").await.map(|(_, l)| l).filter(|l| *l != old)
    })
    .await;
    assert_ne!(new, old);

    // The isolated replica cannot serve a leader read: its lease has lapsed.
    let isolated = cluster.hosts[cluster.workers.iter().position(|w| *w == old).unwrap()].clone();
    let replica = isolated.replica(shard_id).expect("the isolated worker still hosts the shard");
    let refused = eventually(Duration::from_secs(5), "the old leader to stop leading", || async {
        isolated.ensure_leading(&replica).err()
    })
    .await;
    assert_eq!(refused.code(), ErrorCode::NotLeader, "{refused}");

    // Healed, it catches up: every replica ends with all 20 points.
    cluster.faults.heal();
    eventually(Duration::from_secs(10), "the old leader to catch up", || async {
        let shard = replica.shard().ok()?;
        (shard.len() == 20).then_some(())
    })
    .await;
    assert_eq!(client.count("p", None).await.unwrap(), 20);
    let all: BTreeSet<usize> = cluster
        .hosts
        .iter()
        .map(|h| h.replica(shard_id).ok().and_then(|r| r.shard().ok()).map_or(0, |s| s.len()))
        .collect();
    assert_eq!(all, BTreeSet::from([20]), "every replica holds every point");
    println!("failover after the partition: {failover:?}; whole scenario: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_cut_off_past_replace_after_is_replaced_and_the_new_replica_has_the_data() {
    let spec = InProcessSpec {
        workers: 4,
        zones: vec!["z1".into(), "z2".into(), "z3".into(), "z1".into()],
        ..InProcessSpec::default()
    };
    let cluster = InProcessCluster::start(spec).await;
    let client = connect(&cluster).await;
    eventually(Duration::from_secs(10), "the collection", || async {
        client.create_collection(Collection::new("h", 4, Distance::Euclid).replication_factor(3)).await.ok()
    })
    .await;
    assert_eq!(client.upsert("h", (0..50).map(point).collect()).await.unwrap(), 50);
    let replicas = |client: &Client| {
        let client = client.clone();
        async move {
            let status = client.collection_status("h").await.ok()?;
            let shard = status.shards.first()?.clone();
            Some((shard.shard_id, shard.replicas.iter().map(|r| r.worker_address.clone()).collect::<BTreeSet<_>>()))
        }
    };
    let (shard_id, before) = replicas(&client).await.unwrap();
    // Three zones, three replicas: one per zone, so the spare is worker-4 (zone z1).
    assert!(!before.contains(&cluster.workers[3]), "{before:?}");
    let gone = before.iter().find(|w| **w != cluster.workers[0]).unwrap().clone();
    cluster.faults.isolate(&cluster.worker_name(&gone));

    // Marked down after 2 s, replaced after 4 more; the spare gets a full copy.
    let after = eventually(Duration::from_secs(20), "the replica to be replaced", || async {
        replicas(&client).await.map(|(_, r)| r).filter(|r| !r.contains(&gone) && r.len() == 3)
    })
    .await;
    assert!(after.contains(&cluster.workers[3]), "{after:?}");
    let spare = cluster.hosts[3].clone();
    eventually(Duration::from_secs(15), "the new replica to hold every point", || async {
        let shard = spare.replica(shard_id).ok()?.shard().ok()?;
        (shard.len() == 50).then_some(())
    })
    .await;
    assert_eq!(client.count("h", None).await.unwrap(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shard_behind_a_slow_link_makes_a_search_partial_not_short() {
    let cluster = InProcessCluster::start(InProcessSpec { workers: 2, ..InProcessSpec::default() }).await;
    let client = connect(&cluster).await;
    eventually(Duration::from_secs(10), "the collection", || async {
        client.create_collection(Collection::new("s", 4, Distance::Euclid).shards(2)).await.ok()
    })
    .await;
    assert_eq!(client.upsert("s", (0..40).map(point).collect()).await.unwrap(), 40);
    let status = client.collection_status("s").await.unwrap();
    let slow = &status.shards[0];
    let slow_worker = &slow.replicas[0].worker_address;
    assert_ne!(slow_worker, &status.shards[1].replicas[0].worker_address, "one shard per worker");

    cluster.faults.slow("gateway", &cluster.worker_name(slow_worker), Duration::from_secs(2));
    let r = client.search("s", point(3).vector, 5).timeout(Duration::from_millis(500)).send().await.unwrap();
    assert!(r.partial, "{r:?}");
    assert_eq!(r.missing_shards, vec![slow.shard_id]);
    assert!(!r.hits.is_empty(), "the other shard answered");
    cluster.faults.heal();
    let whole = client.search("s", point(3).vector, 5).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert!(!whole.partial && whole.hits.len() == 5, "{whole:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_with_another_clusters_secret_cannot_join() {
    use vectron_common::cluster_auth::ClusterToken;
    use vectron_common::faults::NodeNetwork;
    use vectron_common::raft::network::RaftRouter;
    use vectron_common::raft::timing::LogCompaction;

    let cluster = InProcessCluster::start(InProcessSpec { workers: 1, ..InProcessSpec::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let intruder = |secret: &[u8]| vectron_worker::WorkerConfig {
        advertise: "127.0.0.1:9".into(),
        placement: cluster.placement.clone(),
        data_dir: dir.path().join("intruder"),
        zone: String::new(),
        heartbeat: Duration::from_millis(200),
        durability: vectron_engine::store::Durability::Process,
        compaction: LogCompaction { snapshot_after: 20_000, keep: 1_000 },
        graph_save_interval: Duration::from_secs(10),
        network: Some(NodeNetwork {
            name: "intruder".into(),
            faults: cluster.faults.clone(),
            token: ClusterToken::from_secret(secret).unwrap(),
        }),
    };
    let refused =
        vectron_worker::WorkerHost::start(intruder(b"another cluster's secret, also 32+ bytes"), RaftRouter::default())
            .await
            .expect_err("registration is refused");
    match refused {
        vectron_common::StartError::Register(e) => assert_eq!(e.code, ErrorCode::Unauthenticated, "{e:?}"),
        other => panic!("{other:?}"),
    }
}
