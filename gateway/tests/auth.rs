//! Access control through a real auth service (embedded store, gRPC on loopback) and a
//! real gateway: every public route — the gRPC methods listed from the service
//! descriptor, the HTTP routes listed from the OpenAPI document the router is built
//! from — refuses missing, tampered, expired and revoked credentials, a read key on a
//! write route, and a key for collection A used on collection B. A route the tables
//! below do not classify fails the test, so a new route cannot be forgotten.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;
use vectron_auth::keys::{ApiKeys, KeySpec, Scope};
use vectron_auth::service::{AuthConfig, AuthGrpc, bootstrap_admin};
use vectron_auth::store::{EmbeddedStore, KvStore};
use vectron_auth::tokens::{SigningKey, TokenConfig, Tokens};
use vectron_gateway::auth::Authenticator;
use vectron_gateway::{ApiConfig, Gateway};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Public,
    Read,
    Write,
    Admin,
}

/// Every gRPC method: the scope it needs and whether its (empty) message names a
/// collection (a batch or stream names them in its searches; the HTTP walk covers that).
fn grpc_table() -> BTreeMap<&'static str, (Needs, bool)> {
    use Needs::*;
    BTreeMap::from([
        ("CreateCollection", (Admin, true)),
        ("GetCollection", (Read, true)),
        ("GetCollectionStatus", (Read, true)),
        ("ListCollections", (Read, false)),
        ("DeleteCollection", (Admin, true)),
        ("Upsert", (Write, true)),
        ("Get", (Read, true)),
        ("Delete", (Write, true)),
        ("Scroll", (Read, true)),
        ("Count", (Read, true)),
        ("Search", (Read, true)),
        ("SearchBatch", (Read, false)),
        ("SearchStream", (Read, false)),
        ("SubmitFeedback", (Write, true)),
        ("GetFeedbackStats", (Read, true)),
    ])
}

/// Every HTTP route: scope, whether it names a collection, and a valid body.
fn http_table() -> BTreeMap<&'static str, (Needs, bool, Value)> {
    use Needs::*;
    let v = json!([0.0, 0.0, 0.0, 1.0]);
    BTreeMap::from([
        ("GET /v1/system/health", (Public, false, Value::Null)),
        ("GET /v1/collections", (Read, false, Value::Null)),
        ("POST /v1/collections", (Admin, true, json!({"name": "b", "dimension": 4, "distance": "cosine"}))),
        ("GET /v1/collections/{name}", (Read, true, Value::Null)),
        ("DELETE /v1/collections/{name}", (Admin, true, Value::Null)),
        ("GET /v1/collections/{name}/status", (Read, true, Value::Null)),
        ("POST /v1/collections/{name}/points", (Write, true, json!({"points": [{"id": 1, "vector": v}]}))),
        ("POST /v1/collections/{name}/points/search", (Read, true, json!({"vector": v, "top_k": 1}))),
        ("GET /v1/collections/{name}/feedback/stats", (Read, true, Value::Null)),
        (
            "POST /v1/collections/{name}/points/search/batch",
            (Read, true, json!({"searches": [{"vector": v, "top_k": 1}]})),
        ),
        ("POST /v1/collections/{name}/points/get", (Read, true, json!({"ids": [1]}))),
        ("GET /v1/collections/{name}/points/{id}", (Read, true, Value::Null)),
        ("DELETE /v1/collections/{name}/points/{id}", (Write, true, Value::Null)),
        ("POST /v1/collections/{name}/points/delete", (Write, true, json!({"ids": [1]}))),
        ("POST /v1/collections/{name}/points/scroll", (Read, true, json!({}))),
        ("POST /v1/collections/{name}/points/count", (Read, true, json!({}))),
        (
            "POST /v1/feedback",
            (Write, true, json!({"collection": "b", "query_id": "q", "point_id": 1, "relevance": 1.0})),
        ),
        ("GET /v1/admin/stats", (Admin, false, Value::Null)),
        ("GET /v1/admin/workers", (Admin, false, Value::Null)),
        ("POST /v1/admin/workers/{id}/drain", (Admin, false, Value::Null)),
        ("DELETE /v1/admin/workers/{id}", (Admin, false, Value::Null)),
        ("GET /v1/admin/collections", (Admin, false, Value::Null)),
        ("GET /v1/alerts", (Admin, false, Value::Null)),
        ("POST /v1/alerts/{id}/resolve", (Admin, false, Value::Null)),
        ("GET /metrics", (Admin, false, Value::Null)),
        // Accounts: the auth service judges; a read key may manage its own keys.
        ("POST /v1/auth/login", (Public, false, json!({"username": "admin", "password": ADMIN_PASSWORD}))),
        ("POST /v1/auth/refresh", (Public, false, json!({"refresh_token": FRESH_REFRESH_TOKEN}))),
        ("POST /v1/auth/logout", (Public, false, json!({"refresh_token": FRESH_REFRESH_TOKEN}))),
        ("GET /v1/auth/me", (Read, false, Value::Null)),
        ("POST /v1/auth/password", (Read, false, json!({"old_password": "x", "new_password": "y"}))),
        ("GET /v1/auth/keys", (Read, false, Value::Null)),
        ("POST /v1/auth/keys", (Read, false, json!({"scope": "read"}))),
        ("DELETE /v1/auth/keys/{key_id}", (Read, false, Value::Null)),
        ("GET /v1/auth/users", (Admin, false, Value::Null)),
        ("POST /v1/auth/users", (Admin, false, json!({"username": "u", "password": "a long password"}))),
        ("GET /v1/auth/users/{username}", (Admin, false, Value::Null)),
        ("PATCH /v1/auth/users/{username}", (Admin, false, json!({"role": "admin"}))),
        ("DELETE /v1/auth/users/{username}", (Admin, false, Value::Null)),
    ])
}

const ADMIN_PASSWORD: &str = "admin password 123";
/// In a table body: replaced by a refresh token minted for the call.
const FRESH_REFRESH_TOKEN: &str = "$fresh-refresh-token";

struct Setup {
    _dir: tempfile::TempDir,
    http: String,
    grpc: Channel,
    keys: ApiKeys,
    admin_key: String,
    read_key: String,
    write_key_a: String,
    revoked_key: String,
    token: String,
    expired_token: String,
    token_maker: Tokens,
}

async fn setup(rate_limit_per_sec: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn KvStore> = Arc::new(EmbeddedStore::open(&dir.path().join("auth")).unwrap());
    bootstrap_admin(store.clone(), "admin", Some(ADMIN_PASSWORD)).await.unwrap();
    let secret = [7u8; 32];
    let tokens = TokenConfig::new(SigningKey::new("k1", &secret).unwrap());
    // This test presents hundreds of bad credentials from one address on purpose.
    let lenient = vectron_auth::throttle::Backoff {
        free_failures: 100_000,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(1),
    };
    let auth = AuthGrpc::new(
        store.clone(),
        tokens.clone(),
        AuthConfig { authenticate_throttle: lenient, ..AuthConfig::default() },
    );
    let auth_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth_addr = auth_listener.local_addr().unwrap().to_string();
    let health = vectron_common::lifecycle::Health::new("auth").await;
    tokio::spawn(vectron_auth::service::serve(auth_listener, auth, health, std::future::pending()));

    let keys = ApiKeys::new(store.clone());
    let key = |scope, collections: Option<Vec<String>>| {
        let keys = keys.clone();
        async move {
            keys.create(KeySpec { owner: "admin".into(), scope, collections, rate_limit_per_sec: None }).await.unwrap()
        }
    };
    let admin_key = key(Scope::Admin, None).await.key;
    let read_key = key(Scope::Read, None).await.key;
    let write_key_a = key(Scope::Admin, Some(vec!["a".into()])).await.key;
    let revoked = key(Scope::Admin, None).await;
    keys.revoke(&revoked.info.key_id).await.unwrap();
    let token_maker = Tokens::new(store.clone(), tokens.clone());
    let token = token_maker.login("admin", ADMIN_PASSWORD).await.unwrap().access_token;
    let short = TokenConfig { access_ttl: Duration::from_secs(1), ..tokens };
    let expired_token = Tokens::new(store, short).login("admin", ADMIN_PASSWORD).await.unwrap().access_token;

    let authenticator =
        Authenticator::service(&[auth_addr], Duration::from_millis(100), std::num::NonZeroU32::new(rate_limit_per_sec))
            .unwrap();
    // The placement driver is unreachable: admitted requests fail later, refused ones
    // never get that far.
    let gateway = Arc::new(Gateway::new(vec!["127.0.0.1:1".into()], ApiConfig::default(), authenticator, None));
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", http_listener.local_addr().unwrap());
    let g = gateway.clone();
    tokio::spawn(async move { g.serve_http(http_listener, std::future::pending()).await.unwrap() });
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_url = format!("http://{}", grpc_listener.local_addr().unwrap());
    let health = vectron_common::lifecycle::Health::new("gateway").await;
    tokio::spawn(async move { gateway.serve_grpc(grpc_listener, health, std::future::pending()).await.unwrap() });
    let grpc = Channel::from_shared(grpc_url).unwrap().connect_lazy();
    // The short token expires (whole-second expiry: up to 2 s after it was issued).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    Setup {
        _dir: dir,
        http,
        grpc,
        keys,
        admin_key,
        read_key,
        write_key_a,
        revoked_key: revoked.key,
        token,
        expired_token,
        token_maker,
    }
}

/// A credential as headers.
#[derive(Clone, Debug)]
enum Cred {
    None,
    Bearer(String),
    Key(String),
}

impl Cred {
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Cred::None => vec![],
            Cred::Bearer(t) => vec![("authorization", format!("Bearer {t}"))],
            Cred::Key(k) => vec![("x-api-key", k.clone())],
        }
    }
}

fn tampered(token: &str) -> String {
    let mut t: Vec<char> = token.chars().collect();
    let last = t.len() - 2;
    t[last] = if t[last] == 'A' { 'B' } else { 'A' };
    t.into_iter().collect()
}

/// Calls gRPC `method` with an empty message; the status code (`Ok` as 0).
async fn grpc_code(channel: &Channel, method: &str, cred: &Cred) -> tonic::Code {
    grpc_code_of(channel, "VectronService", method, cred).await
}

/// [`grpc_code`] for a method of `service` (in `vectron.v1`).
async fn grpc_code_of(channel: &Channel, service: &str, method: &str, cred: &Cred) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_str(&format!("/vectron.v1.{service}/{method}")).unwrap();
    let mut request = tonic::Request::new(());
    for (k, v) in cred.headers() {
        request.metadata_mut().insert(k, v.parse().unwrap());
    }
    request.set_timeout(Duration::from_secs(3));
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(request, path, codec).await {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

async fn http_status(s: &Setup, route: &str, collection: &str, body: &Value, cred: &Cred) -> reqwest::Response {
    let (method, path) = route.split_once(' ').unwrap();
    let path =
        path.replace("{name}", collection).replace("{id}", "1").replace("{key_id}", "k").replace("{username}", "u");
    let mut body = body.clone();
    if body.get("refresh_token") == Some(&json!(FRESH_REFRESH_TOKEN)) {
        body["refresh_token"] = json!(s.token_maker.login("admin", ADMIN_PASSWORD).await.unwrap().refresh_token);
    }
    if body.get("collection").is_some() {
        body["collection"] = json!(collection);
    }
    if body.get("name").is_some() {
        body["name"] = json!(collection);
    }
    let client = reqwest::Client::new();
    let mut req = client.request(reqwest::Method::from_str(method).unwrap(), format!("{}{path}", s.http));
    for (k, v) in cred.headers() {
        req = req.header(k, v);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    req.timeout(Duration::from_secs(30)).send().await.unwrap()
}

fn vectron_methods() -> Vec<String> {
    methods_of("VectronService")
}

/// The methods of `service` (in `vectron.v1`), from the descriptor.
fn methods_of(service: &str) -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(vectron_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|f| f.package() == "vectron.v1")
        .flat_map(|f| f.service.iter())
        .filter(|s| s.name() == service)
        .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
        .collect()
}

fn http_routes(gateway_doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (path, item) in gateway_doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_what_it_must() {
    let s = setup(10_000).await;
    let refused_401 = [
        ("no credentials", Cred::None),
        ("a tampered token", Cred::Bearer(tampered(&s.token))),
        ("an expired token", Cred::Bearer(s.expired_token.clone())),
        ("a revoked key", Cred::Key(s.revoked_key.clone())),
        ("an unknown key", Cred::Key("vx_not_a_key".into())),
    ];

    // gRPC, every method of the descriptor.
    let table = grpc_table();
    let methods = vectron_methods();
    assert!(methods.len() >= 14, "{methods:?}");
    for m in &methods {
        let (needs, named) = *table.get(m.as_str()).unwrap_or_else(|| panic!("classify the new gRPC method {m}"));
        for (what, cred) in &refused_401 {
            assert_eq!(grpc_code(&s.grpc, m, cred).await, tonic::Code::Unauthenticated, "{m} with {what}");
        }
        if needs != Needs::Read {
            let code = grpc_code(&s.grpc, m, &Cred::Key(s.read_key.clone())).await;
            assert_eq!(code, tonic::Code::PermissionDenied, "{m} with a read key");
        }
        if named {
            // The empty message names collection "" — not the key's "a".
            let code = grpc_code(&s.grpc, m, &Cred::Key(s.write_key_a.clone())).await;
            assert_eq!(code, tonic::Code::PermissionDenied, "{m} with a key for another collection");
        }
    }
    // The account methods on the gateway's port: log-in, refresh and log-out take no
    // credential (their messages carry it); every other one refuses bad credentials
    // before the auth service is asked.
    let accounts = methods_of("AuthService");
    assert!(accounts.len() >= 13, "{accounts:?}");
    for m in &accounts {
        let public = ["Login", "Refresh", "Logout"].contains(&m.as_str());
        for (what, cred) in &refused_401 {
            let code = grpc_code_of(&s.grpc, "AuthService", m, cred).await;
            if public {
                assert_ne!(code, tonic::Code::Unimplemented, "AuthService/{m} is served ({what})");
            } else {
                assert_eq!(code, tonic::Code::Unauthenticated, "AuthService/{m} with {what}");
            }
        }
    }
    let code = grpc_code_of(&s.grpc, "AuthService", "Authenticate", &Cred::Key(s.admin_key.clone())).await;
    assert_eq!(code, tonic::Code::Unimplemented, "Authenticate is the gateways' own call, not a client's");
    let code = grpc_code_of(&s.grpc, "AuthService", "ListApiKeys", &Cred::Key(s.read_key.clone())).await;
    assert_eq!(code, tonic::Code::Ok, "a read key lists its owner's keys through the gateway");

    // Admitted: the admin key gets past the layer and the checks (placement is down).
    let code = grpc_code(&s.grpc, "ListCollections", &Cred::Key(s.admin_key.clone())).await;
    assert!(!matches!(code, tonic::Code::Unauthenticated | tonic::Code::PermissionDenied), "{code:?}");

    // HTTP, every route of the OpenAPI document, plus the document itself.
    let doc: Value = http_status(&s, "GET /v1/openapi.json", "", &Value::Null, &Cred::Key(s.read_key.clone()))
        .await
        .json()
        .await
        .unwrap();
    let table = http_table();
    let routes = http_routes(&doc);
    assert!(routes.len() >= 20, "{routes:?}");
    let mut routes_and_spec = routes.clone();
    routes_and_spec.push("GET /v1/openapi.json".into());
    for route in &routes_and_spec {
        let (needs, named, body) = if route == "GET /v1/openapi.json" {
            (Needs::Read, false, Value::Null)
        } else {
            table.get(route.as_str()).cloned().unwrap_or_else(|| panic!("classify the new HTTP route {route}"))
        };
        if needs == Needs::Public {
            let r = http_status(&s, route, "b", &body, &Cred::None).await;
            if route.starts_with("POST /v1/auth/") {
                assert_eq!(r.status(), 200, "{route} is public (given what its body needs)");
            } else {
                assert!(r.status() != 401 && r.status() != 403, "{route} is public: {}", r.status());
            }
            continue;
        }
        for (what, cred) in &refused_401 {
            let r = http_status(&s, route, "b", &body, cred).await;
            assert_eq!(r.status(), 401, "{route} with {what}");
            let e: Value = r.json().await.unwrap();
            assert!(matches!(e["error"]["code"].as_str(), Some("UNAUTHENTICATED" | "TOKEN_EXPIRED")), "{route}: {e}");
        }
        if needs != Needs::Read {
            let r = http_status(&s, route, "b", &body, &Cred::Key(s.read_key.clone())).await;
            assert_eq!(r.status(), 403, "{route} with a read key");
        }
        if named || needs == Needs::Admin {
            let r = http_status(&s, route, "b", &body, &Cred::Key(s.write_key_a.clone())).await;
            assert_eq!(r.status(), 403, "{route} with a key for collection a");
        }
    }
    // The admin key and a user's token pass.
    for cred in [Cred::Key(s.admin_key.clone()), Cred::Bearer(s.token.clone())] {
        let r = http_status(&s, "GET /v1/openapi.json", "", &Value::Null, &cred).await;
        assert_eq!(r.status(), 200, "{cred:?}");
    }
    assert_eq!(table.len(), routes.len(), "the table lists routes the router no longer has");
    // Refusals are counted like any request.
    let metrics = http_status(&s, "GET /metrics", "", &Value::Null, &Cred::Key(s.admin_key.clone())).await;
    let metrics = metrics.text().await.unwrap();
    let refused = |status: &str| {
        metrics.lines().any(|l| l.contains("protocol=\"http\"") && l.contains(&format!("status=\"{status}\"")))
    };
    assert!(refused("401") && refused("403"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_within_the_cache_ttl() {
    let s = setup(10_000).await;
    let key = s.keys.create(KeySpec {
        owner: "admin".into(),
        scope: Scope::Read,
        collections: None,
        rate_limit_per_sec: None,
    });
    let key = key.await.unwrap();
    let cred = Cred::Key(key.key.clone());
    assert_eq!(http_status(&s, "GET /v1/openapi.json", "", &Value::Null, &cred).await.status(), 200);
    s.keys.revoke(&key.info.key_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // past the gateway's 100 ms cache
    assert_eq!(http_status(&s, "GET /v1/openapi.json", "", &Value::Null, &cred).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_rate_limit_gives_429_then_recovers() {
    let s = setup(10_000).await;
    let key = s.keys.create(KeySpec {
        owner: "admin".into(),
        scope: Scope::Read,
        collections: None,
        rate_limit_per_sec: Some(3),
    });
    let cred = Cred::Key(key.await.unwrap().key);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let r = http_status(&s, "GET /v1/openapi.json", "", &Value::Null, &cred).await;
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&c| c == 200).count(), 3, "a burst of 3 passes: {statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)), "429 says when to retry");
    // gRPC is limited by the same bucket.
    assert_eq!(grpc_code(&s.grpc, "ListCollections", &cred).await, tonic::Code::ResourceExhausted);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(http_status(&s, "GET /v1/openapi.json", "", &Value::Null, &cred).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_manages_accounts_over_http() {
    let s = setup(10_000).await;
    let call = |route: &'static str, body: Value, cred: Cred| {
        let s = &s;
        async move {
            let r = http_status(s, route, "", &body, &cred).await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let login = |user: &'static str, password: &'static str| {
        call("POST /v1/auth/login", json!({"username": user, "password": password}), Cred::None)
    };
    assert_eq!(login("admin", "wrong").await.0, 401);
    let (status, admin) = login("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{admin}");
    let admin = Cred::Bearer(admin["access_token"].as_str().unwrap().to_owned());
    let (_, me) = call("GET /v1/auth/me", Value::Null, admin.clone()).await;
    assert_eq!(me, json!({"principal": "admin", "scope": "admin"}));

    // An admin creates a user; names are unique.
    let alice = json!({"username": "alice", "password": "alice's password"});
    let (status, user) = call("POST /v1/auth/users", alice.clone(), admin.clone()).await;
    assert_eq!((status, &user["role"]), (200, &json!("user")), "{user}");
    assert_eq!(call("POST /v1/auth/users", alice, admin.clone()).await.0, 409);
    let (_, pair) = login("alice", "alice's password").await;
    let alice = Cred::Bearer(pair["access_token"].as_str().unwrap().to_owned());
    let (_, me) = call("GET /v1/auth/me", Value::Null, alice.clone()).await;
    assert_eq!(me, json!({"principal": "alice", "scope": "write"}));
    assert_eq!(call("GET /v1/auth/users", Value::Null, alice.clone()).await.0, 403, "users are for admins");

    // Her own keys: at most her scope; the secret is shown once, then works.
    assert_eq!(call("POST /v1/auth/keys", json!({"scope": "admin"}), alice.clone()).await.0, 403);
    let (status, created) =
        call("POST /v1/auth/keys", json!({"scope": "read", "collections": ["a"]}), alice.clone()).await;
    assert_eq!(status, 200, "{created}");
    let key = Cred::Key(created["secret_key"].as_str().unwrap().to_owned());
    let key_id = created["key"]["key_id"].as_str().unwrap().to_owned();
    let (_, me) = call("GET /v1/auth/me", Value::Null, key.clone()).await;
    assert_eq!(me, json!({"principal": "alice", "scope": "read", "collections": ["a"]}));
    let (_, listed) = call("GET /v1/auth/keys", Value::Null, alice.clone()).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    assert!(!listed.to_string().contains(created["secret_key"].as_str().unwrap()), "no secrets in lists");
    let r = http_status(&s, "GET /v1/auth/keys?owner=*", "", &Value::Null, &admin).await;
    let everyone: Value = r.json().await.unwrap();
    assert!(everyone["keys"].as_array().unwrap().iter().any(|k| k["key_id"] == json!(key_id)), "{everyone}");

    // Revoked: refused within the gateway's cache TTL (100 ms here).
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/auth/keys/{key_id}", s.http))
        .header("authorization", format!("Bearer {}", pair["access_token"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], json!(true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call("GET /v1/auth/me", Value::Null, key).await.0, 401);

    // Refresh rotates; a used refresh token is refused; logout ends the family.
    let (status, rotated) =
        call("POST /v1/auth/refresh", json!({"refresh_token": pair["refresh_token"]}), Cred::None).await;
    assert_eq!(status, 200, "{rotated}");
    let reused = call("POST /v1/auth/refresh", json!({"refresh_token": pair["refresh_token"]}), Cred::None).await;
    assert_eq!(reused.0, 401, "{reused:?}");
    let (_, fresh) = login("alice", "alice's password").await;
    assert_eq!(call("POST /v1/auth/logout", json!({"refresh_token": fresh["refresh_token"]}), Cred::None).await.0, 200);
    let after = call("POST /v1/auth/refresh", json!({"refresh_token": fresh["refresh_token"]}), Cred::None).await;
    assert_eq!(after.0, 401);

    // Password change, then an admin deletes her.
    let fresh = Cred::Bearer(fresh["access_token"].as_str().unwrap().to_owned());
    let change = json!({"old_password": "alice's password", "new_password": "alice's new password"});
    assert_eq!(call("POST /v1/auth/password", change, fresh).await.0, 200);
    assert_eq!(login("alice", "alice's password").await.0, 401);
    assert_eq!(login("alice", "alice's new password").await.0, 200);
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/auth/users/alice", s.http))
        .header("x-api-key", &s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(login("alice", "alice's new password").await.0, 401);
    // Malformed bodies are typed errors.
    let (status, e) = call("POST /v1/auth/keys", json!({"scope": "everything"}), admin).await;
    assert_eq!((status, &e["error"]["code"]), (400, &json!("INVALID_ARGUMENT")), "{e}");
}

/// An auth service that believes its loopback gateways and locks a source out after 2
/// failed logins, and a gateway believing `x-forwarded-for` from `trusted`; returns the
/// gateway's HTTP URL.
async fn throttling_gateway(dir: &std::path::Path, trusted: Vec<ipnet::IpNet>) -> String {
    use vectron_auth::throttle::ThrottleConfig;
    let store: Arc<dyn KvStore> = Arc::new(EmbeddedStore::open(&dir.join("auth")).unwrap());
    bootstrap_admin(store.clone(), "admin", Some(ADMIN_PASSWORD)).await.unwrap();
    let config = AuthConfig {
        login_throttle: ThrottleConfig {
            free_failures: 2,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
            source_free_failures: 2,
            ..ThrottleConfig::default()
        },
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..AuthConfig::default()
    };
    let tokens = TokenConfig::new(SigningKey::new("k1", &[7u8; 32]).unwrap());
    let auth_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth_addr = auth_listener.local_addr().unwrap().to_string();
    tokio::spawn(vectron_auth::service::serve(
        auth_listener,
        AuthGrpc::new(store, tokens, config),
        vectron_common::lifecycle::Health::new("auth").await,
        std::future::pending(),
    ));
    let authenticator = Authenticator::service(&[auth_addr], Duration::from_millis(100), None).unwrap();
    let gateway = Gateway::new(vec!["127.0.0.1:1".into()], ApiConfig::default(), authenticator, None)
        .with_trusted_proxies(trusted);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway.serve_http(listener, std::future::pending()).await.unwrap() });
    url
}

async fn login_as(url: &str, forwarded_for: &str, user: &str, password: &str) -> u16 {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_out_the_client_behind_a_trusted_load_balancer_only() {
    for trusted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let nets = if trusted { vec!["127.0.0.0/8".parse().unwrap()] } else { vec![] };
        let url = throttling_gateway(dir.path(), nets).await;
        // One client guesses three users' passwords.
        for user in ["u1", "u2", "u3"] {
            assert_eq!(login_as(&url, "10.0.0.1", user, "guess").await, 401);
        }
        assert_eq!(login_as(&url, "10.0.0.1", "admin", ADMIN_PASSWORD).await, 429, "the guesser is locked out");
        let other = login_as(&url, "10.0.0.2", "admin", ADMIN_PASSWORD).await;
        // Untrusted, the header is ignored: everyone is the balancer's address.
        assert_eq!(other, if trusted { 200 } else { 429 }, "another client (trusted: {trusted})");
    }
}

/// A gateway that needs credentials (its auth service is never reached: nothing here
/// presents any), serving the console from `console_dir`. Its HTTP base URL.
async fn console_gateway(console_dir: Option<std::path::PathBuf>) -> String {
    let authenticator = Authenticator::service(&["127.0.0.1:1".into()], Duration::from_millis(100), None).unwrap();
    let gateway =
        Gateway::new(vec!["127.0.0.1:1".into()], ApiConfig::default(), authenticator, None).with_console(console_dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway.serve_http(listener, std::future::pending()).await.unwrap() });
    url
}

#[tokio::test]
async fn the_console_files_are_served_to_anyone_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>console</title>").unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let url = console_gateway(Some(dir.path().to_owned())).await;
    let http = reqwest::Client::new();
    for (path, body, content_type) in [
        ("/console", "<title>console</title>", "text/html"),
        ("/console/", "<title>console</title>", "text/html"),
        ("/console/index.html", "<title>console</title>", "text/html"),
        ("/console/assets/app.js", "console.log(1)", "javascript"),
        // The app's own routes: its index.html.
        ("/console/collections/docs", "<title>console</title>", "text/html"),
    ] {
        let r = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} without credentials");
        let headers = r.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers["content-type"].to_str().unwrap().contains(content_type), "{path}: {headers:?}");
        assert!(r.text().await.unwrap().contains(body), "{path}");
    }
    // Nothing outside the console's directory, and the API still needs credentials.
    let r = http.get(format!("{url}/console/../Cargo.toml")).send().await.unwrap();
    assert!(!r.text().await.unwrap().contains("[package]"));
    let r = http.get(format!("{url}/console/%2e%2e/%2e%2e/etc/passwd")).send().await.unwrap();
    assert!(!r.text().await.unwrap().contains("root:"));
    assert_eq!(http.get(format!("{url}/v1/collections")).send().await.unwrap().status(), 401);

    // A gateway without the console says how to install it.
    let url = console_gateway(None).await;
    let r = http.get(format!("{url}/console/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("console_dir"), "{body}");
}
