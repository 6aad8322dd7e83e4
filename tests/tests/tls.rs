//! TLS on every port, between real processes on loopback:
//!
//! - a cluster whose placement node, workers and gateway each run as their own process
//!   with mutual TLS between them replicates a collection (RF 3, Raft over TLS) and
//!   serves clients that trust its CA, over gRPC and HTTPS;
//! - a client that does not trust the CA is refused, and so is a plain-text one;
//! - an internal port refuses a caller without a client certificate, and one whose
//!   certificate another CA signed, and admits one with the cluster's;
//! - `vectron dev --tls` reloads its certificates when their files change: new
//!   connections get the new ones, and the cluster goes on serving.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use vectron_common::tls::{CertificateAuthority, Tls};
use vectron_sdk::{Client, Collection, Distance, Point};
use vectron_tests::client::{must_connect, must_create};
use vectron_tests::cluster::{Cluster, ClusterSpec, DevProcess, eventually};

fn roots(ca_pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("a CA certificate")).expect("a usable CA certificate");
    }
    roots
}

/// `GET path` over HTTPS to `addr`, trusting `ca_pem`: the status line, or why the
/// connection failed.
async fn https_get(addr: &str, path: &str, ca_pem: &[u8]) -> Result<String, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

/// A health check of an internal port over TLS trusting `ca_pem`, presenting `identity`
/// (certificate and key PEM) if given: whether it was answered, or the error.
async fn internal_check(addr: &str, ca_pem: &[u8], identity: Option<(&str, &str)>) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("127.0.0.1");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls).unwrap();
    let call = async {
        let channel = endpoint.connect_timeout(Duration::from_secs(5)).connect().await.map_err(|e| format!("{e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest { service: "liveness".into() })
            .await
            .map(drop)
            .map_err(|s| format!("{s:?}"))
    };
    tokio::time::timeout(Duration::from_secs(10), call).await.map_err(|_| "no answer in 10 s".to_owned())?
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_over_mutual_tls_serves_clients_that_trust_its_ca_and_refuses_the_others() {
    let cluster = Cluster::start(ClusterSpec { workers: 3, tls: true, ..Default::default() });
    let files = cluster.tls.clone().expect("a TLS cluster");
    let ca = read(&files.ca_file);
    // The test's own internal calls (health checks) present the cluster's certificate too.
    vectron_common::tls::install(Tls::load(files.clone()).unwrap(), Duration::from_secs(60)).unwrap();

    // Clients that trust the CA: the data path works end to end (Raft over mutual TLS
    // between the workers, gateway → worker and → placement over it).
    let client = must_connect(&cluster).await;
    workers_ready(&cluster).await;
    must_create(&client, Collection::new("secure", 4, Distance::Cosine).shards(2).replication_factor(3), &cluster)
        .await;
    let points: Vec<Point> = (0..200u64).map(|i| Point::new(i, vec![1.0, i as f32, 0.5, -1.0])).collect();
    client.upsert("secure", points).await.expect("upsert over TLS");
    let hits = client.search("secure", vec![1.0, 7.0, 0.5, -1.0], 3).send().await.expect("search");
    assert_eq!(hits.hits.first().map(|h| h.id.clone()), Some(vectron_sdk::PointId::Num(7)), "{hits:?}");
    assert_eq!(client.count("secure", None).await.expect("count"), 200);
    let status = https_get(&cluster.http, "/v1/system/health", &ca).await.expect("HTTPS with the CA");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // A client that does not trust the CA (the system's roots) is refused at the
    // handshake, and so is one speaking plain text to the TLS port.
    let e = Client::connect(&cluster.grpc_url()).await.expect_err("the system roots do not sign the cluster's");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    let plain = format!("http://{}", cluster.grpc);
    let refused = match Client::connect(&plain).await {
        Err(_) => true,
        Ok(c) => c.list_collections().await.is_err(),
    };
    assert!(refused, "a plain-text client is not served on a TLS port");
    let stranger = CertificateAuthority::new("a stranger's CA").unwrap();
    let e = https_get(&cluster.http, "/v1/system/health", stranger.cert_pem.as_bytes()).await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // Internal ports: a caller needs a certificate the cluster's CA signed.
    let worker = cluster.workers[0].addr.clone();
    // (TLS 1.3: the server refuses after the client's half of the handshake, so the
    // client sees its call's stream broken rather than a certificate error.)
    internal_check(&worker, &ca, None).await.expect_err("no client certificate");
    let (cert, key) = stranger.issue(&["127.0.0.1"]).unwrap();
    internal_check(&worker, &ca, Some((&cert, &key))).await.expect_err("a certificate another CA signed");
    let (cert, key) =
        (String::from_utf8(read(&files.cert_file)).unwrap(), String::from_utf8(read(&files.key_file)).unwrap());
    internal_check(&worker, &ca, Some((&cert, &key))).await.expect("the cluster's certificate");
    internal_check(&cluster.placement[0].addr, &ca, None).await.expect_err("placement: no client certificate");
    internal_check(&cluster.placement[0].addr, &ca, Some((&cert, &key))).await.expect("placement: the cluster's");
}

/// Waits until every worker reports ready (registered, replicas caught up) on its own
/// port: the HTTP admin view the plain-text tests read would need the CA too.
async fn workers_ready(cluster: &Cluster) {
    use tonic_health::pb::health_check_response::ServingStatus;
    for w in &cluster.workers {
        eventually(Duration::from_secs(60), "a worker ready over TLS", || async {
            let status = vectron_tests::cluster::health_status(&w.addr, "readiness", Duration::from_secs(2)).await;
            (status == Some(ServingStatus::Serving)).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_are_reloaded_when_their_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vectron.toml");
    std::fs::write(&config, "[tls]\nreload_interval = \"300ms\"\n").unwrap();
    let dev = DevProcess::start_with(
        dir.path(),
        &["--no-auth".into(), "--tls".into(), "--config".into(), config.display().to_string()],
    );
    let tls_dir = dev.data.join("tls");
    let old_ca = eventually(Duration::from_secs(30), "the dev certificates", || async {
        std::fs::read(tls_dir.join("ca.crt")).ok()
    })
    .await;
    let url = format!("https://{}", dev.grpc);
    let client = eventually(Duration::from_secs(30), "the dev gateway", || async {
        let c = Client::connect_with_ca(&url, &old_ca).await.ok()?;
        c.list_collections().await.ok().map(|_| c)
    })
    .await;
    client.create_collection(Collection::new("before", 2, Distance::Euclid)).await.expect("create");
    client.upsert("before", vec![Point::new(1u64, vec![0.0, 1.0])]).await.expect("upsert");

    // The files are replaced, as a cert-manager renewal with a new CA would.
    let next = CertificateAuthority::new("the next CA").unwrap();
    let (cert, key) = next.issue(&["127.0.0.1", "localhost"]).unwrap();
    for (name, contents) in [("tls.key", key.as_str()), ("tls.crt", cert.as_str()), ("ca.crt", next.cert_pem.as_str())]
    {
        let tmp = tls_dir.join(format!("{name}.new"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, tls_dir.join(name)).unwrap();
    }
    let new_ca = next.cert_pem.as_bytes().to_vec();
    let fresh = eventually(Duration::from_secs(20), "new connections to get the new certificate", || async {
        Client::connect_with_ca(&url, &new_ca).await.ok()
    })
    .await;
    let e = Client::connect_with_ca(&url, &old_ca).await.expect_err("the old CA signs nothing served now");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    // The gateway's own internal calls go on working, over new connections too.
    fresh.create_collection(Collection::new("after", 2, Distance::Euclid)).await.expect("create after the reload");
    fresh.upsert("after", vec![Point::new(2u64, vec![1.0, 0.0])]).await.expect("upsert after the reload");
    assert_eq!(fresh.count("before", None).await.expect("count"), 1);
    let status = https_get(&dev.http, "/v1/system/health", &new_ca).await.expect("HTTPS with the new CA");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let log = dev.node.log_tail(200);
    assert!(log.contains("TLS certificates reloaded"), "{log}");
}
