//! Linearizable reads stay linearizable across a partition: a shard leader frozen
//! (SIGSTOP) while the others elect a new leader and accept a newer write must not
//! answer a linearizable read with the old value when it comes back, even before it
//! learns it was deposed.

use std::time::{Duration, Instant};

use vectron_common::raft::network::PeerChannels;
use vectron_proto::internal as pi;
use vectron_proto::internal::worker_client::WorkerClient;
use vectron_proto::v1 as pb;
use vectron_sdk::{Client, Collection, Consistency, Distance, Point, PointId};
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};

const V_OLD: [f32; 4] = [1.0, 0.0, 0.0, 0.0];
const V_NEW: [f32; 4] = [0.0, 1.0, 0.0, 0.0];

/// A linearizable read of point 1 at one worker: its vector, or the refusal's code.
async fn read_at(
    worker: &mut WorkerClient<vectron_common::cluster_auth::ClusterChannel>,
    shard: u64,
) -> Result<Vec<f32>, i32> {
    let request = pb::GetRequest {
        collection: "lin".into(),
        ids: vec![vectron_model::convert::point_id_to_pb(&PointId::Num(1))],
        with_payload: false,
        with_vector: true,
        consistency: Consistency::Linearizable as i32,
    };
    let mut call = tonic::Request::new(pi::ShardGetRequest { shard_id: shard, request: Some(request) });
    call.set_timeout(Duration::from_secs(3));
    match worker.get(call).await {
        Ok(r) => Ok(r.into_inner().points.first().map(|p| p.vector.clone()).unwrap_or_default()),
        Err(s) => Err(vectron_model::status::from_status(&s).code as i32),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_never_serves_a_stale_linearizable_read() {
    let cluster = Cluster::start(ClusterSpec { workers: 3, ..ClusterSpec::default() });
    let client = eventually(Duration::from_secs(30), "the gateway", || async {
        Client::connect(&cluster.grpc_url()).await.ok()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = client.create_collection(Collection::new("lin", 4, Distance::Euclid).replication_factor(3)).await
    {
        assert!(Instant::now() < deadline, "create: {e}\n{}", cluster.logs(30));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    client.upsert("lin", vec![Point::new(1u64, V_OLD.to_vec())]).await.expect("first write");
    let (shard, leader_addr) = eventually(Duration::from_secs(30), "a leader", || async {
        let status = client.collection_status("lin").await.ok()?;
        let s = status.shards.first()?;
        let leader = s.replicas.iter().find(|r| r.is_leader)?;
        Some((s.shard_id, leader.worker_address.clone()))
    })
    .await;
    let leader = cluster.worker_at(&leader_addr).expect("the leader is one of ours");

    // This test talks to the worker's internal API: it holds the cluster secret too.
    let secret = vectron_common::secret_file::read(&cluster.dir.path().join("cluster.secret")).unwrap();
    vectron_common::cluster_auth::install(&secret).unwrap();
    let mut old_leader = WorkerClient::new(PeerChannels::default().get(&leader_addr).unwrap());
    assert_eq!(read_at(&mut old_leader, shard).await, Ok(V_OLD.to_vec()));

    // Cut off: the other two elect a leader and take a newer write.
    cluster.workers[leader].pause();
    let cut = Instant::now();
    client.upsert("lin", vec![Point::new(1u64, V_NEW.to_vec())]).await.expect("the write after the partition");
    eprintln!("the write after the leader froze took {:?}", cut.elapsed());

    // Back: whatever it answers at once, it is never the old value.
    cluster.workers[leader].resume();
    let (mut refused, mut fresh) = (0, 0);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match read_at(&mut old_leader, shard).await {
            Ok(v) if v == V_OLD => panic!("a stale linearizable read\n{}", cluster.logs(30)),
            Ok(_) => fresh += 1,
            Err(_) => refused += 1,
        }
    }
    // And through the gateway, the newer value.
    let records = client.get("lin", &[PointId::Num(1)], true).await.unwrap();
    assert_eq!(records[0].vector.as_deref(), Some(&V_NEW[..]));
    eprintln!("the deposed leader refused {refused} linearizable reads and answered {fresh} with the new value");
}
