//! The gateway's search cache never hides a write: a write through one gateway is seen
//! by the next search through another, whose cache held the answer from before it.
//! Repeated searches are served from the cache (its counters say so), and identical
//! searches at once get one answer.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use vectron_sdk::{Client, Collection, Distance, Point, PointId};
use vectron_tests::client::must_have_workers_up;
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};

const DIM: usize = 16;

async fn connect(grpc: &str) -> Client {
    eventually(Duration::from_secs(30), "a gateway", || async { Client::connect(&format!("http://{grpc}")).await.ok() })
        .await
}

/// `vectron_search_cache_total{outcome}` on the gateway at `http`.
async fn cache_count(http: &str, outcome: &str) -> u64 {
    let text = reqwest::get(format!("http://{http}/metrics")).await.unwrap().text().await.unwrap();
    let prefix = format!("vectron_search_cache_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_never_hides_a_write_through_another_gateway() {
    let cluster = Cluster::start(ClusterSpec { workers: 2, ..Default::default() });
    // Both workers registered first: a collection created on one would be rebalanced
    // onto the other mid-test, and a new routing epoch starts the cache afresh.
    must_have_workers_up(&cluster, 2).await;
    let a = connect(&cluster.grpc).await;
    eventually(Duration::from_secs(60), "the collection", || async {
        a.create_collection(Collection::new("docs", DIM as u32, Distance::Euclid).shards(2)).await.ok()
    })
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut random = move || (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    let points: Vec<Point> = (0..300u64).map(|i| Point::new(i, random())).collect();
    assert_eq!(a.upsert("docs", points).await.unwrap(), 300);
    let gateway_b = cluster.start_gateway("gateway-b");
    let b = connect(&gateway_b.grpc).await;
    let query = random();

    // Repeated: served from B's cache.
    let first = b.search("docs", query.clone(), 5).send().await.unwrap();
    let hits_before = cache_count(&gateway_b.http, "hit").await;
    for _ in 0..5 {
        let again = b.search("docs", query.clone(), 5).send().await.unwrap();
        assert_eq!(again.hits, first.hits);
        assert_ne!(again.query_id, first.query_id, "a cached answer still gets its own query id");
    }
    assert_eq!(cache_count(&gateway_b.http, "hit").await, hits_before + 5);

    // Writes through A, each followed at once by a search through B: B sees every one.
    let mut previous: Option<u64> = None;
    for i in 0..25u64 {
        let id = 10_000 + i;
        // At the query itself: the nearest point.
        a.upsert("docs", vec![Point::new(id, query.clone())]).await.unwrap();
        if let Some(p) = previous {
            a.delete("docs", &[PointId::Num(p)]).await.unwrap();
        }
        let r = b.search("docs", query.clone(), 5).send().await.unwrap();
        assert_eq!(r.hits[0].id, PointId::Num(id), "round {i}: the write through A is seen through B");
        assert!(previous.is_none_or(|p| r.hits.iter().all(|h| h.id != PointId::Num(p))), "round {i}: the delete too");
        // And again from B's cache, still current.
        let cached = b.search("docs", query.clone(), 5).send().await.unwrap();
        assert_eq!(cached.hits, r.hits);
        previous = Some(id);
    }
    assert!(cache_count(&gateway_b.http, "stale").await >= 25, "each write made B's answer stale");

    // Identical searches at once: one answer for all.
    let other = random();
    let searches = (0..20).map(|_| {
        let (b, other) = (b.clone(), other.clone());
        tokio::spawn(async move { b.search("docs", other, 10).send().await.unwrap().hits })
    });
    let answers = futures::future::join_all(searches).await;
    assert!(answers.windows(2).all(|w| w[0].as_ref().unwrap() == w[1].as_ref().unwrap()));
    let counted = ["hit", "miss", "coalesced"];
    let mut total = 0;
    for o in counted {
        total += cache_count(&gateway_b.http, o).await;
    }
    assert!(total >= 20 + 6 + 50, "every search is counted once: {total}");
}
