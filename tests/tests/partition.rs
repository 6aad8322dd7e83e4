//! Partitions. A shard leader is cut off from the rest of its group, in two ways:
//!
//! - frozen (SIGSTOP: alive, connections open, silent): when thawed after the others
//!   elected a leader and took a newer write, it never answers a linearizable read with
//!   the old value, even before it learns it was deposed;
//! - cut off by the network, every process on a host of its own (network namespaces),
//!   the leader's host isolated with its packets dropped both ways while every process
//!   keeps running: the majority elects a new leader and acknowledges a newer write; the
//!   cut-off leader, which may still believe it leads, neither confirms a linearizable
//!   read, nor serves a LEADER read once its lease ran out, nor acknowledges the write it
//!   was sent alone; after the network heals every replica has the acknowledged write
//!   and none has the unacknowledged one. Needs root (network namespaces), as CI runs.

use std::time::{Duration, Instant};

use vectron_common::cluster_auth::ClusterChannel;
use vectron_common::raft::network::PeerChannels;
use vectron_model::convert::{point_id_to_pb, shard_point_to_pb};
use vectron_proto::internal as pi;
use vectron_proto::internal::worker_client::WorkerClient;
use vectron_proto::v1 as pb;
use vectron_sdk::{Client, Collection, Consistency, Distance, Point, PointId};
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};

const COLLECTION: &str = "part";
const V_OLD: [f32; 4] = [1.0, 0.0, 0.0, 0.0];
const V_NEW: [f32; 4] = [0.0, 1.0, 0.0, 0.0];
const V_ALONE: [f32; 4] = [0.0, 0.0, 1.0, 0.0];

type Worker = WorkerClient<ClusterChannel>;

/// A cluster of three workers holding one shard (RF 3) with point 1 = `V_OLD`.
struct Setup {
    cluster: Cluster,
    client: Client,
    shard: u64,
    /// The shard leader's index in `cluster.workers`.
    leader: usize,
    /// Clients of each worker's internal API, in `cluster.workers` order.
    workers: Vec<Worker>,
}

async fn set_up(spec: ClusterSpec) -> Setup {
    let cluster = Cluster::start(ClusterSpec { workers: 3, ..spec });
    let client = eventually(Duration::from_secs(30), "the gateway", || async {
        Client::connect(&cluster.grpc_url()).await.ok()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let collection = Collection::new(COLLECTION, 4, Distance::Euclid).replication_factor(3);
    while let Err(e) = client.create_collection(collection.clone()).await {
        assert!(Instant::now() < deadline, "create: {e}\n{}", cluster.logs(30));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    client.upsert(COLLECTION, vec![Point::new(1u64, V_OLD.to_vec())]).await.expect("first write");
    let (shard, leader_addr) = eventually(Duration::from_secs(30), "a leader", || async {
        let status = client.collection_status(COLLECTION).await.ok()?;
        let s = status.shards.first()?;
        let leader = s.replicas.iter().find(|r| r.is_leader)?;
        Some((s.shard_id, leader.worker_address.clone()))
    })
    .await;
    let leader = cluster.worker_at(&leader_addr).expect("the leader is one of ours");
    // The tests talk to the workers' internal API: they hold the cluster secret too.
    let secret = vectron_common::secret_file::read(&cluster.dir.path().join("cluster.secret")).unwrap();
    vectron_common::cluster_auth::install(&secret).unwrap();
    let channels = PeerChannels::default();
    let workers = cluster.workers.iter().map(|w| WorkerClient::new(channels.get(&w.addr).unwrap())).collect();
    Setup { cluster, client, shard, leader, workers }
}

/// Reads point `id` at one worker at `consistency`: its vector (None: absent), or the
/// refusal's code (a timeout counts as UNAVAILABLE).
async fn read_at(worker: &mut Worker, shard: u64, id: u64, consistency: Consistency) -> Result<Option<Vec<f32>>, i32> {
    let request = pb::GetRequest {
        collection: COLLECTION.into(),
        ids: vec![point_id_to_pb(&PointId::Num(id))],
        with_payload: false,
        with_vector: true,
        consistency: consistency as i32,
    };
    let mut call = tonic::Request::new(pi::ShardGetRequest { shard_id: shard, request: Some(request) });
    call.set_timeout(Duration::from_secs(2));
    match tokio::time::timeout(Duration::from_secs(3), worker.get(call)).await {
        Ok(Ok(r)) => Ok(r.into_inner().points.first().map(|p| p.vector.clone())),
        Ok(Err(s)) => Err(vectron_model::status::from_status(&s).code as i32),
        Err(_) => Err(pb::ErrorCode::Unavailable as i32),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_never_serves_a_stale_linearizable_read() {
    let Setup { cluster, client, shard, leader, workers } = set_up(ClusterSpec::default()).await;
    let mut old_leader = workers[leader].clone();
    assert_eq!(read_at(&mut old_leader, shard, 1, Consistency::Linearizable).await, Ok(Some(V_OLD.to_vec())));

    // Frozen: the other two elect a leader and take a newer write.
    cluster.workers[leader].pause();
    let cut = Instant::now();
    client.upsert(COLLECTION, vec![Point::new(1u64, V_NEW.to_vec())]).await.expect("the write after the freeze");
    eprintln!("the write after the leader froze took {:?}", cut.elapsed());

    // Back: whatever it answers at once, it is never the old value.
    cluster.workers[leader].resume();
    let (mut refused, mut fresh) = (0, 0);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match read_at(&mut old_leader, shard, 1, Consistency::Linearizable).await {
            Ok(Some(v)) if v == V_OLD => panic!("a stale linearizable read\n{}", cluster.logs(30)),
            Ok(_) => fresh += 1,
            Err(_) => refused += 1,
        }
    }
    // And through the gateway, the newer value.
    let records = client.get(COLLECTION, &[PointId::Num(1)], true).await.unwrap();
    assert_eq!(records[0].vector.as_deref(), Some(&V_NEW[..]));
    eprintln!("the deposed leader refused {refused} linearizable reads and answered {fresh} with the new value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_the_network_acknowledges_nothing_and_serves_no_stale_read() {
    let Setup { cluster, client, shard, leader, mut workers } =
        set_up(ClusterSpec { isolated_hosts: true, ..ClusterSpec::default() }).await;
    let network = cluster.network.as_ref().expect("isolated hosts");
    let mut old_leader = workers[leader].clone();
    assert_eq!(read_at(&mut old_leader, shard, 1, Consistency::Linearizable).await, Ok(Some(V_OLD.to_vec())));

    // Cut the leader's host off from every other host (the test still reaches it).
    network.isolate(cluster.worker_host(leader));
    let cut = Instant::now();

    // The old leader is sent a write alone: it must never be acknowledged.
    let mut alone = old_leader.clone();
    let lone_write = tokio::spawn(async move {
        let request = pi::ShardUpsertRequest {
            shard_id: shard,
            points: vec![shard_point_to_pb(vectron_model::Point {
                id: PointId::Num(2),
                vector: V_ALONE.to_vec(),
                payload: None,
            })],
            no_wait: false,
        };
        let mut call = tonic::Request::new(request);
        call.set_timeout(Duration::from_secs(8));
        tokio::time::timeout(Duration::from_secs(10), alone.upsert(call)).await
    });

    // The majority elects a leader and acknowledges a newer write through the gateway.
    client.upsert(COLLECTION, vec![Point::new(1u64, V_NEW.to_vec())]).await.expect("the write after the cut");
    eprintln!("the write after the leader's host was cut off was acknowledged after {:?}", cut.elapsed());

    // Still cut off, the old leader cannot confirm its leadership: no linearizable read;
    // and past its lease (the minimum election timeout, judged by a metric refreshed every
    // heartbeat: 1.5 s after the cut at the latest) no LEADER read either.
    tokio::time::sleep_until((cut + Duration::from_millis(1500)).into()).await;
    let until = Instant::now() + Duration::from_secs(2);
    let mut refused = 0;
    while Instant::now() < until {
        for consistency in [Consistency::Linearizable, Consistency::Leader] {
            match read_at(&mut old_leader, shard, 1, consistency).await {
                Ok(v) => panic!("a cut-off leader answered a {consistency:?} read with {v:?}\n{}", cluster.logs(30)),
                Err(_) => refused += 1,
            }
        }
    }
    match lone_write.await.unwrap() {
        Ok(Ok(r)) => panic!("the cut-off leader acknowledged a write it could not replicate: {:?}", r.into_inner()),
        Ok(Err(status)) => eprintln!("the lone write was refused: {}", status.message()),
        Err(_) => eprintln!("the lone write was never answered"),
    }

    // Heal: every replica converges on the acknowledged write, none has the lone one.
    network.heal(cluster.worker_host(leader));
    let healed = Instant::now();
    for (i, worker) in workers.iter_mut().enumerate() {
        eventually(Duration::from_secs(30), &format!("worker {i} to have the acknowledged write"), || {
            let mut worker = worker.clone();
            async move {
                let one = read_at(&mut worker, shard, 1, Consistency::Any).await.ok()?;
                (one == Some(V_NEW.to_vec())).then_some(())
            }
        })
        .await;
        assert_eq!(read_at(worker, shard, 2, Consistency::Any).await, Ok(None), "worker {i} has the lone write");
    }
    eprintln!("every replica had the acknowledged write {:?} after the heal", healed.elapsed());
    // And once back, the old leader never serves the old value as linearizable.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let r = read_at(&mut old_leader, shard, 1, Consistency::Linearizable).await;
        assert_ne!(r, Ok(Some(V_OLD.to_vec())), "a stale linearizable read after the heal");
    }
    let records = client.get(COLLECTION, &[PointId::Num(1), PointId::Num(2)], true).await.unwrap();
    assert_eq!(records.len(), 1, "only the acknowledged point: {records:?}");
    assert_eq!(records[0].vector.as_deref(), Some(&V_NEW[..]));
    eprintln!("the cut-off leader refused {refused} reads while cut off");
}
