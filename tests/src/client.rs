//! What tests do through the public API of a [`Cluster`]: connect once it accepts,
//! create a collection once it can, wait for workers, find shard leaders, read points
//! back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use vectron_sdk::{Client, Collection, ErrorCode, PointId};

use crate::cluster::{Cluster, eventually};

/// A client of the cluster's gateway: over TLS trusting the cluster's CA when it has one.
pub async fn connect(cluster: &Cluster) -> vectron_sdk::Result<Client> {
    match &cluster.tls {
        Some(files) => {
            let ca = std::fs::read(&files.ca_file).expect("the test CA");
            Client::connect_with_ca(&cluster.grpc_url(), &ca).await
        }
        None => Client::connect(&cluster.grpc_url()).await,
    }
}

pub async fn must_connect(cluster: &Cluster) -> Client {
    eventually(Duration::from_secs(30), "the gateway to accept connections", || async { connect(cluster).await.ok() })
        .await
}

/// Waits until the gateway can create collections (placement elected, workers up).
pub async fn must_create(client: &Client, c: Collection, cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.create_collection(c.clone()).await {
            Ok(_) => return,
            Err(e) if e.code == ErrorCode::CollectionAlreadyExists => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create collection not yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("create collection: {e}\n{}", cluster.logs(40)),
        }
    }
}

/// Waits until `n` workers are registered and up.
pub async fn must_have_workers_up(cluster: &Cluster, n: usize) {
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/admin/workers", cluster.http);
    eventually(Duration::from_secs(60), "the workers to register", || async {
        let r: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        let up = r["workers"].as_array()?.iter().filter(|w| w["state"] == "up").count();
        (up >= n).then_some(())
    })
    .await;
}

/// Worker address → shards it leads, from the collection status.
pub async fn leaders(client: &Client, name: &str) -> BTreeMap<String, Vec<u64>> {
    let status = client.collection_status(name).await.expect("status");
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in &status.shards {
        for r in s.replicas.iter().filter(|r| r.is_leader) {
            out.entry(r.worker_address.clone()).or_default().push(s.shard_id);
        }
    }
    out
}

pub async fn all_shards_led(client: &Client, name: &str, shards: usize) -> bool {
    leaders(client, name).await.values().map(Vec::len).sum::<usize>() == shards
}

/// How many of the points `ids` of collection `name` can be read back (in batches).
pub async fn readable(client: &Client, name: &str, ids: &[u64]) -> usize {
    let ids: Vec<PointId> = ids.iter().map(|&i| PointId::Num(i)).collect();
    let mut found = 0;
    for chunk in ids.chunks(500) {
        found += client.get(name, chunk, false).await.expect("get").len();
    }
    found
}
