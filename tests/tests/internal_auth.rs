//! The internal APIs (placement, worker, Raft transport, the reranker) of a cluster
//! started with a cluster secret refuse every method — listed from the service descriptors, so a new
//! one cannot be forgotten — without the cluster token, and admit the token's holders.

use std::str::FromStr;
use std::time::Duration;

use prost::Message;
use tonic::Code;
use vectron_common::raft::network::PeerChannels;
use vectron_tests::cluster::{Cluster, ClusterSpec, eventually};

/// Every method of the internal services, as (service, method): the
/// `vectron.internal.v1` package, and the reranker (public package, internal service).
fn internal_methods() -> Vec<(String, String)> {
    let set = prost_types::FileDescriptorSet::decode(vectron_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .flat_map(|f| f.service.iter().map(move |s| (f.package(), s)))
        .filter(|(package, s)| *package == "vectron.internal.v1" || s.name() == "RerankService")
        .flat_map(|(package, s)| s.method.iter().map(move |m| (format!("{package}.{}", s.name()), m.name().to_owned())))
        .collect()
}

/// Calls `service/method` at `addr` with an empty message: the status code (`Ok` as 0).
async fn call(channels: Option<&PeerChannels>, addr: &str, service: &str, method: &str) -> Code {
    let path = http::uri::PathAndQuery::from_str(&format!("/{service}/{method}")).unwrap();
    let mut request = tonic::Request::new(());
    request.set_timeout(Duration::from_secs(5));
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let result = match channels {
        Some(c) => {
            let mut grpc = tonic::client::Grpc::new(c.get(addr).unwrap());
            grpc.ready().await.unwrap();
            grpc.unary(request, path, codec).await
        }
        None => {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            grpc.unary(request, path, codec).await
        }
    };
    result.err().map_or(Code::Ok, |s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_apis_refuse_calls_without_the_cluster_token() {
    let cluster = Cluster::start(ClusterSpec { workers: 1, reranker: true, ..ClusterSpec::default() });
    let (placement, worker) = (cluster.placement[0].addr.clone(), cluster.workers[0].addr.clone());
    let reranker = cluster.reranker.as_ref().unwrap().addr.clone();
    let methods = internal_methods();
    assert!(methods.len() >= 20 && methods.iter().any(|(s, _)| s == "vectron.v1.RerankService"), "{methods:?}");
    // The worker registered and heartbeats: the cluster's own calls carry the token.
    eventually(Duration::from_secs(30), "the worker to register", || async {
        let r: serde_json::Value =
            reqwest::get(format!("http://{}/v1/admin/workers", cluster.http)).await.ok()?.json().await.ok()?;
        (r["workers"].as_array()?.iter().any(|w| w["state"] == "up")).then_some(())
    })
    .await;

    for (service, method) in &methods {
        let addrs: &[&str] = match service.rsplit('.').next().unwrap() {
            "Placement" => &[&placement],
            "Worker" => &[&worker],
            "RerankService" => &[&reranker],
            _ => &[&placement, &worker], // the Raft transport
        };
        for addr in addrs {
            assert_eq!(call(None, addr, service, method).await, Code::Unauthenticated, "{service}/{method} at {addr}");
        }
    }

    // The same secret in this process: admitted (the empty messages then fail on their
    // own merits, never as UNAUTHENTICATED).
    let secret = vectron_common::secret_file::read(&cluster.dir.path().join("cluster.secret")).unwrap();
    vectron_common::cluster_auth::install(&secret).unwrap();
    let channels = PeerChannels::default();
    for (service, method) in &methods {
        let addr = match service.rsplit('.').next().unwrap() {
            "Worker" => &worker,
            "RerankService" => &reranker,
            _ => &placement,
        };
        let code = call(Some(&channels), addr, service, method).await;
        assert_ne!(code, Code::Unauthenticated, "{service}/{method} with the token");
    }
}
