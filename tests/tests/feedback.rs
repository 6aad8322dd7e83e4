//! Feedback is kept by the cluster, not by a gateway: submitted through one gateway, it
//! is seen by another, survives a restart of the gateway and a SIGKILL of a worker, adds
//! up to what a model of the submissions says, and goes with its collection.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use vectron_model::feedback::{FeedbackRecord, FeedbackStats};
use vectron_proto::v1 as pb;
use vectron_sdk::{Client, Collection, Distance, ErrorCode, Point, PointId};
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};

async fn connect(grpc: &str) -> Client {
    eventually(Duration::from_secs(30), "a gateway", || async { Client::connect(&format!("http://{grpc}")).await.ok() })
        .await
}

async fn stats_json(http: &reqwest::Client, gateway: &str, collection: &str) -> (u16, Value) {
    let r = http.get(format!("http://{gateway}/v1/collections/{collection}/feedback/stats")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// Count, queries, points, positive, negative, clicked, and the top points with their
/// counts.
type Summary = (u64, u64, u64, u64, u64, u64, Vec<(PointId, u64)>);

/// The statistics a gateway answers, summarised for comparison.
fn stats_of(s: &pb::FeedbackStats) -> Summary {
    let top = s
        .top_points
        .iter()
        .map(|p| (vectron_model::convert::point_id_from_pb(p.point_id.as_ref()).unwrap(), p.count))
        .collect();
    (s.count, s.queries, s.points, s.positive, s.negative, s.clicked, top)
}

fn expected(model: &BTreeMap<(String, u64), FeedbackRecord>) -> Summary {
    let s = FeedbackStats::of(model.values());
    let top = s.top_points.iter().map(|p| (p.point_id.clone(), p.count)).collect();
    (s.count, s.queries, s.points, s.positive, s.negative, s.clicked, top)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_replicated_durable_and_goes_with_its_collection() {
    let mut cluster = Cluster::start(ClusterSpec { workers: 3, ..Default::default() });
    let a = connect(&cluster.grpc).await;
    let collection = Collection::new("docs", 4, Distance::Cosine).shards(2).replication_factor(3);
    eventually(Duration::from_secs(60), "the collection", || async {
        a.create_collection(collection.clone()).await.ok()
    })
    .await;
    let points: Vec<Point> = (0..20u64).map(|i| Point::new(i, vec![1.0, i as f32, 0.5, -1.0])).collect();
    assert_eq!(a.upsert("docs", points).await.unwrap(), 20);
    let answer = a.search("docs", vec![1.0, 3.0, 0.5, -1.0], 5).send().await.unwrap();
    assert_eq!(answer.query_id.len(), 32, "{answer:?}");
    let other = a.search("docs", vec![1.0, 3.0, 0.5, -1.0], 5).send().await.unwrap();
    assert_ne!(answer.query_id, other.query_id, "every answer has its own id");

    // Judgements through gateway A (gRPC and HTTP), some judged twice (the last stands).
    let mut model: BTreeMap<(String, u64), FeedbackRecord> = BTreeMap::new();
    let http = reqwest::Client::new();
    for round in 0..2 {
        for (position, hit) in answer.hits.iter().enumerate() {
            let PointId::Num(id) = hit.id else { panic!("numeric ids") };
            let relevance = if round == 0 { 0.25 } else { 1.0 - 0.5 * position as f32 };
            let clicked = (position % 2 == 0).then_some(true);
            let request = pb::SubmitFeedbackRequest {
                collection: "docs".into(),
                query_id: answer.query_id.clone(),
                point_id: Some(vectron_model::convert::point_id_to_pb(&hit.id)),
                relevance,
                clicked,
                position: Some(position as u32),
                comment: (position == 0).then(|| "exactly it".into()),
                query_text: Some("the third".into()),
            };
            if position % 2 == 0 {
                a.submit_feedback(request).await.unwrap();
            } else {
                let body = json!({"collection": "docs", "query_id": answer.query_id, "point_id": id,
                                  "relevance": relevance, "position": position, "query_text": "the third"});
                let r = http.post(format!("http://{}/v1/feedback", cluster.http)).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200, "{:?}", r.text().await);
            }
            let record = FeedbackRecord {
                query_id: answer.query_id.clone(),
                point_id: hit.id.clone(),
                relevance,
                clicked,
                position: Some(position as u32),
                comment: None,
                query_text: None,
                at_ms: 0,
            };
            model.insert((answer.query_id.clone(), id), record);
        }
    }
    let second = FeedbackRecord {
        query_id: other.query_id.clone(),
        point_id: other.hits[0].id.clone(),
        relevance: -1.0,
        clicked: None,
        position: Some(0),
        comment: None,
        query_text: None,
        at_ms: 0,
    };
    let request = pb::SubmitFeedbackRequest {
        collection: "docs".into(),
        query_id: second.query_id.clone(),
        point_id: Some(vectron_model::convert::point_id_to_pb(&second.point_id)),
        relevance: -1.0,
        position: Some(0),
        ..Default::default()
    };
    a.submit_feedback(request).await.unwrap();
    let PointId::Num(first_hit) = second.point_id else { panic!() };
    model.insert((second.query_id.clone(), first_hit), second.clone());
    let want = expected(&model);
    assert_eq!(want.0, 6, "five hits of one answer, one of another");

    // Another gateway sees the same.
    let gateway_b = cluster.start_gateway("gateway-b");
    let b = connect(&gateway_b.grpc).await;
    assert_eq!(stats_of(&b.feedback_stats("docs").await.unwrap()), want);
    let (status, body) = stats_json(&http, &gateway_b.http, "docs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], json!(6));
    let mean = model.values().map(|r| f64::from(r.relevance)).sum::<f64>() / 6.0;
    assert!((body["mean_relevance"].as_f64().unwrap() - mean).abs() < 1e-6, "{body}");

    // A gateway restarted, a worker killed and restarted: still all there.
    cluster.gateway.restart();
    cluster.workers[0].kill();
    let after_kill = eventually(Duration::from_secs(30), "stats with a worker down", || async {
        b.feedback_stats("docs").await.ok()
    })
    .await;
    assert_eq!(stats_of(&after_kill), want, "a majority of every shard's replicas is left");
    cluster.workers[0].restart();
    let a = connect(&cluster.grpc).await;
    assert_eq!(stats_of(&a.feedback_stats("docs").await.unwrap()), want);

    // The store is the cluster's own: not listed, not reachable by name.
    let names: Vec<String> = a.list_collections().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["docs".to_owned()]);
    let e = a.count("docs.feedback", None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CollectionNotFound, "{e:?}");
    let e = a.create_collection(Collection::new("docs.feedback", 1, Distance::Euclid)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e:?}");
    // Feedback on a collection that does not exist, or out of range: refused.
    let bad = |collection: &str, relevance: f32| pb::SubmitFeedbackRequest {
        collection: collection.into(),
        query_id: "q".into(),
        point_id: Some(vectron_model::convert::point_id_to_pb(&PointId::Num(1))),
        relevance,
        ..Default::default()
    };
    assert_eq!(a.submit_feedback(bad("nope", 0.5)).await.unwrap_err().code, ErrorCode::CollectionNotFound);
    assert_eq!(a.submit_feedback(bad("docs", 2.0)).await.unwrap_err().code, ErrorCode::InvalidArgument);

    // Deleting the collection deletes its feedback: a new "docs" starts with none.
    a.delete_collection("docs").await.unwrap();
    assert_eq!(stats_json(&http, &cluster.http, "docs").await.0, 404);
    // Gateway B learns of the deletion with its next routing table.
    eventually(Duration::from_secs(15), "gateway B to see the deletion", || async {
        (stats_json(&http, &gateway_b.http, "docs").await.0 == 404).then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "the collection again", || async {
        a.create_collection(collection.clone()).await.ok()
    })
    .await;
    assert_eq!(b.feedback_stats("docs").await.unwrap().count, 0);
}
