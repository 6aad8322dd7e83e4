//! `vectron auth` as deployed: two auth processes sharing one real etcd and one signing
//! secret. They bootstrap one admin between them, agree on users, keys and tokens,
//! keep usernames unique under concurrent registration through both, and keep
//! everything across restarts.

use std::time::Duration;

use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use vectron_auth::testing::EtcdProcess;
use vectron_proto::v1 as pb;
use vectron_proto::v1::auth_service_client::AuthServiceClient;
use vectron_tests::cluster::{Node, eventually, free_port};

type Client = AuthServiceClient<Channel>;

fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert("x-api-key", MetadataValue::try_from(key).unwrap());
    r
}

async fn connect(addr: &str) -> Client {
    eventually(Duration::from_secs(30), &format!("the auth service at {addr}"), || async {
        let mut c = AuthServiceClient::connect(format!("http://{addr}")).await.ok()?;
        // Answering at all (a refusal included) means it serves.
        let probe = c.authenticate(pb::AuthenticateRequest { credential: None }).await;
        matches!(probe, Err(ref s) if s.code() == Code::Unauthenticated).then_some(c)
    })
    .await
}

async fn login(c: &mut Client, user: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
    c.login(pb::LoginRequest { username: user.into(), password: password.into() }).await.map(|r| r.into_inner())
}

async fn principal_of_token(c: &mut Client, token: &str) -> Result<String, tonic::Status> {
    use pb::authenticate_request::Credential;
    let grant = pb::AuthenticateRequest { credential: Some(Credential::BearerToken(token.into())) };
    Ok(c.authenticate(grant).await?.into_inner().principal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_auth_processes_on_etcd_share_users_keys_and_tokens_across_restarts() {
    let etcd = EtcdProcess::must_start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, "a shared signing secret of more than 32 bytes\n").unwrap();
    let key_file = dir.path().join("admin.key");
    let addrs = [format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())];
    let mut nodes: Vec<Node> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let data = dir.path().join(format!("auth-{i}"));
            let mut args = vec!["auth", "--listen", addr, "--etcd", &etcd.endpoint()]
                .into_iter()
                .map(String::from)
                .chain(["--data-dir".into(), data.display().to_string()])
                .chain(["--signing-key-file".into(), secret.display().to_string()])
                .collect::<Vec<_>>();
            if i == 0 {
                args.extend(["--admin-key-file".into(), key_file.display().to_string()]);
            }
            Node::start(&format!("auth-{i}"), addr, args, dir.path())
        })
        .collect();
    let (mut a, mut b) = (connect(&addrs[0]).await, connect(&addrs[1]).await);
    let admin_key = std::fs::read_to_string(&key_file).unwrap().trim().to_owned();

    // Both started on an empty etcd at once: exactly one generated the admin.
    let logs: String = nodes.iter().map(|n| n.log_tail(200)).collect();
    assert_eq!(logs.matches("Created admin user").count(), 1, "{logs}");
    let users = b.list_users(with_key(pb::ListUsersRequest {}, &admin_key)).await.unwrap().into_inner().users;
    assert_eq!(users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["admin"]);

    // A user created through one is known to the other; tokens from one verify at the other.
    let bob = pb::CreateUserRequest { username: "bob".into(), password: "bob's password".into(), role: 0 };
    a.create_user(with_key(bob, &admin_key)).await.unwrap();
    let pair = login(&mut b, "bob", "bob's password").await.unwrap();
    assert_eq!(principal_of_token(&mut a, &pair.access_token).await.unwrap(), "bob");
    let key = pb::CreateApiKeyRequest { owner: "bob".into(), scope: pb::Scope::Read as i32, ..Default::default() };
    let bob_key = b.create_api_key(with_key(key, &admin_key)).await.unwrap().into_inner().secret_key;

    // Usernames stay unique when registrations race through both processes.
    let attempts = (0..8).map(|i| {
        let mut c = if i % 2 == 0 { a.clone() } else { b.clone() };
        let request = pb::CreateUserRequest { username: "carol".into(), password: format!("password {i}"), role: 0 };
        let request = with_key(request, &admin_key);
        tokio::spawn(async move { c.create_user(request).await.map(|_| ()).map_err(|s| s.code()) })
    });
    let mut outcomes = Vec::new();
    for t in attempts {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(()) | Err(Code::AlreadyExists))), "{outcomes:?}");

    // Both restarted (SIGKILL): users, keys and tokens still hold; nothing re-bootstrapped.
    for n in &mut nodes {
        n.restart();
    }
    let (mut a, mut b) = (connect(&addrs[0]).await, connect(&addrs[1]).await);
    login(&mut a, "bob", "bob's password").await.unwrap();
    assert_eq!(principal_of_token(&mut b, &pair.access_token).await.unwrap(), "bob");
    use pb::authenticate_request::Credential;
    let grant = pb::AuthenticateRequest { credential: Some(Credential::ApiKey(bob_key)) };
    let grant = a.authenticate(grant).await.unwrap().into_inner();
    assert_eq!((grant.principal.as_str(), grant.scope), ("bob", pb::Scope::Read as i32));
    let logs: String = nodes.iter().map(|n| n.log_tail(400)).collect();
    assert_eq!(logs.matches("Created admin user").count(), 1, "no second bootstrap: {logs}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), admin_key, "the key file is kept");
}
