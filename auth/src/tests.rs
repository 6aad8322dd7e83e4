//! Users and API keys over both stores (the etcd ones against a real etcd process).

use std::sync::Arc;

use crate::error::AuthError;
use crate::keys::{Access, ApiKeys, KeySpec, Scope};
use crate::store::{DEFAULT_PREFIX, EmbeddedStore, EtcdStore, KvStore};
use crate::testing::EtcdProcess;
use crate::users::{Role, Users};

fn embedded() -> (tempfile::TempDir, Arc<dyn KvStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn users_register_authenticate_change_and_delete() {
    let (_dir, store) = embedded();
    let users = Users::new(store);
    let alice = users.create("alice", "correct horse", Role::User).await.unwrap();
    assert_eq!((alice.username.as_str(), alice.role), ("alice", Role::User));
    assert!(matches!(users.create("alice", "other password", Role::Admin).await, Err(AuthError::UserExists { .. })));
    assert_eq!(users.authenticate("alice", "correct horse").await.unwrap().username, "alice");
    for (u, p) in [("alice", "wrong password"), ("nobody", "correct horse"), ("bad name!", "correct horse")] {
        assert!(matches!(users.authenticate(u, p).await, Err(AuthError::Unauthenticated)), "{u}/{p}");
    }
    assert!(matches!(
        users.change_password("alice", "wrong password", "new password").await,
        Err(AuthError::Unauthenticated)
    ));
    users.change_password("alice", "correct horse", "new password").await.unwrap();
    assert!(users.authenticate("alice", "correct horse").await.is_err());
    users.authenticate("alice", "new password").await.unwrap();
    assert_eq!(users.set_role("alice", Role::Admin).await.unwrap().role, Role::Admin);
    assert_eq!(users.list().await.unwrap().len(), 1);
    users.delete("alice").await.unwrap();
    assert!(matches!(users.get("alice").await, Err(AuthError::UserNotFound { .. })));
    // Bad input is a typed error.
    for (u, p) in
        [("", "long enough"), ("has space", "long enough"), (&"x".repeat(65)[..], "long enough"), ("bob", "short")]
    {
        assert!(matches!(users.create(u, p, Role::User).await, Err(AuthError::InvalidArgument { .. })), "{u:?}");
    }
}

#[tokio::test]
async fn the_stored_user_record_holds_no_password() {
    let (_dir, store) = embedded();
    Users::new(store.clone()).create("carol", "a secret phrase", Role::User).await.unwrap();
    let raw = String::from_utf8(store.get("users/carol").await.unwrap().unwrap().value).unwrap();
    assert!(!raw.contains("a secret phrase"));
    assert!(raw.contains("$argon2id$"));
}

#[tokio::test]
async fn api_keys_validate_until_revoked_and_scopes_hold() {
    let (_dir, store) = embedded();
    let keys = ApiKeys::new(store.clone());
    let spec = |scope, collections: Option<Vec<&str>>| KeySpec {
        owner: "alice".into(),
        scope,
        collections: collections.map(|c| c.into_iter().map(String::from).collect()),
        rate_limit_per_sec: Some(100),
    };
    let read_a = keys.create(spec(Scope::Read, Some(vec!["a"]))).await.unwrap();
    let admin = keys.create(spec(Scope::Admin, None)).await.unwrap();
    assert!(read_a.key.starts_with("vx_"));
    let info = keys.validate(&read_a.key).await.unwrap();
    assert_eq!(info, read_a.info);

    let access = Access::from(&info);
    assert!(access.permits(Scope::Read, Some("a")));
    assert!(!access.permits(Scope::Write, Some("a")), "read key on a write route");
    assert!(!access.permits(Scope::Read, Some("b")), "key scoped to a used on b");
    assert!(!access.permits(Scope::Read, None), "collection-limited key on a cluster-wide route");
    let admin_access = Access::from(&keys.validate(&admin.key).await.unwrap());
    assert!(admin_access.permits(Scope::Admin, None) && admin_access.permits(Scope::Write, Some("z")));

    // Tampered, malformed and unknown keys.
    let mut tampered = read_a.key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let unknown = format!("vx_{}_{}", "0".repeat(16), "ab".repeat(32));
    for bad in [tampered.as_str(), "vx_", "nonsense", "vx_zz_zz", unknown.as_str(), ""] {
        assert!(matches!(keys.validate(bad).await, Err(AuthError::Unauthenticated)), "{bad:?}");
    }
    // Listing never shows secrets; the store holds only hashes.
    assert_eq!(keys.list(Some("alice")).await.unwrap().len(), 2);
    assert_eq!(keys.list(Some("bob")).await.unwrap().len(), 0);
    let secret = read_a.key.rsplit('_').next().unwrap();
    for (_, v) in store.list("keys/").await.unwrap() {
        assert!(!String::from_utf8(v.value).unwrap().contains(secret));
    }
    // Revocation is immediate and idempotent.
    assert!(keys.revoke(&read_a.info.key_id).await.unwrap().revoked);
    assert!(keys.revoke(&read_a.info.key_id).await.unwrap().revoked);
    assert!(matches!(keys.validate(&read_a.key).await, Err(AuthError::Unauthenticated)));
    keys.validate(&admin.key).await.unwrap();
    assert!(matches!(keys.revoke("0000000000000000").await, Err(AuthError::KeyNotFound { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_registration_is_unique_under_concurrency_and_survives_restarts() {
    let mut etcd = EtcdProcess::must_start().await;
    let store: Arc<dyn KvStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()], DEFAULT_PREFIX).await.unwrap());
    let users = Users::new(store.clone());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let users = users.clone();
        tasks.push(tokio::spawn(async move { users.create("dave", &format!("password-{i}"), Role::User).await }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(AuthError::UserExists { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one concurrent registration wins");
    users.set_password("dave", "known password").await.unwrap();
    let key = ApiKeys::new(store)
        .create(KeySpec { owner: "dave".into(), scope: Scope::Write, collections: None, rate_limit_per_sec: None })
        .await
        .unwrap();

    // A new service instance (new client), and then etcd itself killed and restarted.
    for restart_etcd in [false, true] {
        if restart_etcd {
            etcd.must_restart().await;
        }
        let store: Arc<dyn KvStore> = Arc::new(EtcdStore::connect(&[etcd.endpoint()], DEFAULT_PREFIX).await.unwrap());
        Users::new(store.clone()).authenticate("dave", "known password").await.unwrap();
        assert_eq!(ApiKeys::new(store).validate(&key.key).await.unwrap().owner, "dave");
    }
}

mod tokens {
    use std::time::Duration;

    use super::*;
    use crate::tokens::{SigningKey, TokenConfig, Tokens};

    fn key(kid: &str) -> SigningKey {
        SigningKey::new(kid, format!("{kid}-0123456789abcdef0123456789abcdef").as_bytes()).unwrap()
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: Arc<dyn KvStore>,
        tokens: Tokens,
        users: Users,
    }

    async fn setup(config: TokenConfig) -> Setup {
        let (dir, store) = embedded();
        let users = Users::new(store.clone());
        users.create("erin", "erin's password", Role::User).await.unwrap();
        Setup { _dir: dir, tokens: Tokens::new(store.clone(), config), store, users }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(SigningKey::new("k1", b"too short"), Err(AuthError::InvalidArgument { .. })));
        assert!(SigningKey::new("k1", &[7u8; 32]).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        std::fs::write(&path, format!("{}\n", "s".repeat(31))).unwrap();
        assert!(SigningKey::from_file("k1", &path).is_err(), "31 bytes plus a newline is still 31");
        std::fs::write(&path, format!("{}\n", "s".repeat(32))).unwrap();
        assert!(SigningKey::from_file("k1", &path).is_ok());
        assert!(SigningKey::from_file("k1", &dir.path().join("missing")).is_err());
    }

    #[tokio::test]
    async fn login_verify_and_tampering() {
        let s = setup(TokenConfig::new(key("k1"))).await;
        assert!(matches!(s.tokens.login("erin", "wrong password").await, Err(AuthError::Unauthenticated)));
        let pair = s.tokens.login("erin", "erin's password").await.unwrap();
        let claims = s.tokens.verify_access(&pair.access_token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("erin", Role::User));
        // A refresh token is not an access token, and vice versa.
        assert!(s.tokens.verify_access(&pair.refresh_token).is_err());
        assert!(s.tokens.refresh(&pair.access_token).await.is_err());
        // Tampered payload or signature, garbage.
        let parts: Vec<&str> = pair.access_token.split('.').collect();
        let forged_payload = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
        let forged_sig = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 2]);
        for bad in [forged_payload.as_str(), forged_sig.as_str(), "garbage", ""] {
            assert!(matches!(s.tokens.verify_access(bad), Err(AuthError::Unauthenticated)), "{bad}");
        }
        // Same key id, another secret.
        let other = Tokens::new(s.store.clone(), TokenConfig::new(SigningKey::new("k1", &[9u8; 32]).unwrap()));
        assert!(matches!(other.verify_access(&pair.access_token), Err(AuthError::Unauthenticated)));
    }

    #[tokio::test]
    async fn expired_access_tokens_are_refused_as_expired() {
        let mut config = TokenConfig::new(key("k1"));
        config.access_ttl = Duration::ZERO;
        let s = setup(config).await;
        let pair = s.tokens.login("erin", "erin's password").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(s.tokens.verify_access(&pair.access_token), Err(AuthError::TokenExpired)));
    }

    #[tokio::test]
    async fn refresh_rotates_and_reuse_revokes_the_family() {
        let s = setup(TokenConfig::new(key("k1"))).await;
        let first = s.tokens.login("erin", "erin's password").await.unwrap();
        let second = s.tokens.refresh(&first.refresh_token).await.unwrap();
        s.tokens.verify_access(&second.access_token).unwrap();
        // The used token is refused, and its reuse kills the family: the second
        // refresh token stops working too.
        assert!(matches!(s.tokens.refresh(&first.refresh_token).await, Err(AuthError::Unauthenticated)));
        assert!(matches!(s.tokens.refresh(&second.refresh_token).await, Err(AuthError::Unauthenticated)));
        // A fresh login is unaffected; logout revokes it.
        let third = s.tokens.login("erin", "erin's password").await.unwrap();
        s.tokens.logout(&third.refresh_token).await.unwrap();
        assert!(matches!(s.tokens.refresh(&third.refresh_token).await, Err(AuthError::Unauthenticated)));
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_yield_exactly_one_pair() {
        let s = setup(TokenConfig::new(key("k1"))).await;
        let pair = s.tokens.login("erin", "erin's password").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (tokens, t) = (s.tokens.clone(), pair.refresh_token.clone());
            tasks.push(tokio::spawn(async move { tokens.refresh(&t).await.is_ok() }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap() as usize;
        }
        assert_eq!(ok, 1, "exactly one compare-and-set of the refresh record can win");
    }

    #[tokio::test]
    async fn rotated_keys_verify_old_tokens_until_dropped() {
        let s = setup(TokenConfig::new(key("k1"))).await;
        let old = s.tokens.login("erin", "erin's password").await.unwrap();
        let mut rotated = TokenConfig::new(key("k2"));
        rotated.previous_keys = vec![key("k1")];
        let rotated = Tokens::new(s.store.clone(), rotated);
        rotated.verify_access(&old.access_token).unwrap();
        let new = rotated.refresh(&old.refresh_token).await.unwrap();
        rotated.verify_access(&new.access_token).unwrap();
        assert!(s.tokens.verify_access(&new.access_token).is_err(), "k1-only service does not know k2");
        let k2_only = Tokens::new(s.store.clone(), TokenConfig::new(key("k2")));
        assert!(k2_only.verify_access(&old.access_token).is_err(), "k1 dropped from the ring");
    }

    #[tokio::test]
    async fn deleted_users_cannot_refresh() {
        let s = setup(TokenConfig::new(key("k1"))).await;
        let pair = s.tokens.login("erin", "erin's password").await.unwrap();
        s.users.delete("erin").await.unwrap();
        assert!(matches!(s.tokens.refresh(&pair.refresh_token).await, Err(AuthError::Unauthenticated)));
    }
}

mod grpc {
    use std::time::Duration;

    use tonic::Code;
    use tonic::metadata::MetadataValue;
    use vectron_proto::v1 as pb;
    use vectron_proto::v1::auth_service_client::AuthServiceClient;

    use super::*;
    use crate::service::{AuthConfig, AuthGrpc, bootstrap_admin, serve};
    use crate::throttle::ThrottleConfig;
    use crate::tokens::{SigningKey, TokenConfig};

    type Client = AuthServiceClient<tonic::transport::Channel>;

    struct Server {
        _dir: tempfile::TempDir,
        client: Client,
        admin_password: String,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    async fn must_start(config: AuthConfig) -> Server {
        let (dir, store) = embedded();
        let admin_password = bootstrap_admin(store.clone(), "admin", None).await.unwrap().expect("first start");
        assert_eq!(bootstrap_admin(store.clone(), "admin", None).await.unwrap(), None, "only on first start");
        let tokens = TokenConfig::new(SigningKey::new("k1", &[42u8; 32]).unwrap());
        let service = AuthGrpc::new(store, tokens, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, service, vectron_common::lifecycle::Health::new("auth").await, async {
            let _ = stopped.await;
        }));
        let client = AuthServiceClient::connect(format!("http://{addr}")).await.unwrap();
        Server { _dir: dir, client, admin_password, stop: Some(stop) }
    }

    fn bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
        r
    }

    fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("x-api-key", MetadataValue::try_from(key).unwrap());
        r
    }

    fn code_of(s: &tonic::Status) -> pb::ErrorCode {
        vectron_model::status::from_status(s).code
    }

    async fn login(client: &mut Client, user: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
        client
            .login(pb::LoginRequest { username: user.into(), password: password.into() })
            .await
            .map(|r| r.into_inner())
    }

    #[tokio::test]
    async fn admin_creates_users_and_users_manage_their_own_keys() {
        let mut s = must_start(AuthConfig::default()).await;
        let c = &mut s.client;
        let admin = login(c, "admin", &s.admin_password.clone()).await.unwrap().access_token;
        let bob = pb::CreateUserRequest {
            username: "bob".into(),
            password: "bob's password".into(),
            role: pb::Role::User as i32,
        };
        c.create_user(bearer(bob.clone(), &admin)).await.unwrap();
        let e = c.create_user(bearer(bob, &admin)).await.unwrap_err();
        assert_eq!((e.code(), code_of(&e)), (Code::AlreadyExists, pb::ErrorCode::AlreadyExists));

        let bob_token = login(c, "bob", "bob's password").await.unwrap().access_token;
        // Bob is not an admin, and nobody anonymous is anybody.
        let e = c.list_users(bearer(pb::ListUsersRequest {}, &bob_token)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        let e = c.list_users(pb::ListUsersRequest {}).await.unwrap_err();
        assert_eq!((e.code(), code_of(&e)), (Code::Unauthenticated, pb::ErrorCode::Unauthenticated));
        let eve = pb::CreateUserRequest { username: "eve".into(), password: "eve's password".into(), role: 0 };
        assert_eq!(c.create_user(eve.clone()).await.unwrap_err().code(), Code::Unauthenticated, "no open sign-up");
        assert_eq!(c.create_user(bearer(eve, &bob_token)).await.unwrap_err().code(), Code::PermissionDenied);
        assert_eq!(c.list_users(bearer(pb::ListUsersRequest {}, &admin)).await.unwrap().into_inner().users.len(), 2);

        // Bob's read key for collection "a": shown once, validates, obeys its limits.
        let created = c
            .create_api_key(bearer(
                pb::CreateApiKeyRequest {
                    owner: String::new(),
                    scope: pb::Scope::Read as i32,
                    collections: vec!["a".into()],
                    rate_limit_per_sec: 0,
                },
                &bob_token,
            ))
            .await
            .unwrap()
            .into_inner();
        let grant = c
            .authenticate(pb::AuthenticateRequest {
                credential: Some(pb::authenticate_request::Credential::ApiKey(created.secret_key.clone())),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (grant.principal.as_str(), grant.scope, grant.collections.clone(), grant.rate_limit_per_sec),
            ("bob", pb::Scope::Read as i32, vec!["a".to_string()], 0)
        );
        // The key cannot mint a broader key, nor can Bob mint admin keys or keys for others.
        let broader = pb::CreateApiKeyRequest {
            owner: String::new(),
            scope: pb::Scope::Write as i32,
            collections: vec![],
            rate_limit_per_sec: 0,
        };
        assert_eq!(
            c.create_api_key(with_key(broader.clone(), &created.secret_key)).await.unwrap_err().code(),
            Code::PermissionDenied
        );
        let admin_key = pb::CreateApiKeyRequest { scope: pb::Scope::Admin as i32, ..broader.clone() };
        assert_eq!(c.create_api_key(bearer(admin_key, &bob_token)).await.unwrap_err().code(), Code::PermissionDenied);
        let for_admin = pb::CreateApiKeyRequest { owner: "admin".into(), ..broader.clone() };
        assert_eq!(c.create_api_key(bearer(for_admin, &bob_token)).await.unwrap_err().code(), Code::PermissionDenied);
        let listed = c
            .list_api_keys(bearer(pb::ListApiKeysRequest { owner: String::new() }, &bob_token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.keys.len(), 1);
        assert_eq!(
            c.list_api_keys(bearer(pb::ListApiKeysRequest { owner: "*".into() }, &bob_token)).await.unwrap_err().code(),
            Code::PermissionDenied
        );

        // Revoked: refused at once.
        let key_id = created.key.unwrap().key_id;
        c.revoke_api_key(bearer(pb::RevokeApiKeyRequest { key_id }, &bob_token)).await.unwrap();
        let e = c
            .authenticate(pb::AuthenticateRequest {
                credential: Some(pb::authenticate_request::Credential::ApiKey(created.secret_key)),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);

        // Bad input is a typed error; the server keeps serving.
        let bad = pb::CreateUserRequest { username: "white space".into(), password: "long enough".into(), role: 0 };
        let e = c.create_user(bearer(bad, &admin)).await.unwrap_err();
        assert_eq!((e.code(), code_of(&e)), (Code::InvalidArgument, pb::ErrorCode::InvalidArgument));
        let e = c
            .authenticate(pb::AuthenticateRequest {
                credential: Some(pb::authenticate_request::Credential::BearerToken("garbage".into())),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        c.get_user(bearer(pb::GetUserRequest { username: "bob".into() }, &bob_token)).await.unwrap();
    }

    fn new_key(scope: pb::Scope, rate_limit_per_sec: u32) -> pb::CreateApiKeyRequest {
        pb::CreateApiKeyRequest { owner: String::new(), scope: scope as i32, collections: vec![], rate_limit_per_sec }
    }

    async fn grant_of(c: &mut Client, key: &str) -> Result<pb::AccessGrant, tonic::Status> {
        let credential = Some(pb::authenticate_request::Credential::ApiKey(key.to_owned()));
        c.authenticate(pb::AuthenticateRequest { credential }).await.map(|r| r.into_inner())
    }

    async fn token_grant(c: &mut Client, token: &str) -> Result<pb::AccessGrant, tonic::Status> {
        let credential = Some(pb::authenticate_request::Credential::BearerToken(token.to_owned()));
        c.authenticate(pb::AuthenticateRequest { credential }).await.map(|r| r.into_inner())
    }

    #[tokio::test]
    async fn privileges_end_when_their_source_ends() {
        let mut s = must_start(AuthConfig { max_keys_per_user: 3, ..AuthConfig::default() }).await;
        let c = &mut s.client;
        let admin = login(c, "admin", &s.admin_password.clone()).await.unwrap().access_token;
        for name in ["carl", "dora"] {
            let user = pb::CreateUserRequest {
                username: name.into(),
                password: format!("{name}'s password"),
                role: pb::Role::Admin as i32,
            };
            c.create_user(bearer(user, &admin)).await.unwrap();
        }
        // Carl, an admin, mints an admin key; demoted, the key shrinks to his new role.
        let carl = login(c, "carl", "carl's password").await.unwrap();
        let carl_key = c.create_api_key(bearer(new_key(pb::Scope::Admin, 0), &carl.access_token)).await.unwrap();
        let carl_key = carl_key.into_inner().secret_key;
        assert_eq!(grant_of(c, &carl_key).await.unwrap().scope, pb::Scope::Admin as i32);
        let demote =
            pb::UpdateUserRequest { username: "carl".into(), role: Some(pb::Role::User as i32), new_password: None };
        c.update_user(bearer(demote, &admin)).await.unwrap();
        assert_eq!(grant_of(c, &carl_key).await.unwrap().scope, pb::Scope::Write as i32, "the key shrank");
        assert_eq!(
            token_grant(c, &carl.access_token).await.unwrap().scope,
            pb::Scope::Write as i32,
            "so did the token"
        );
        let e = c.create_api_key(with_key(new_key(pb::Scope::Admin, 0), &carl_key)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "a demoted admin's key mints no admin keys");

        // Only admins set rate limits, never above the maximum; keys per user are capped.
        let e = c.create_api_key(bearer(new_key(pb::Scope::Read, 5), &carl.access_token)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "a user lifting their own limit");
        let e = c.create_api_key(bearer(new_key(pb::Scope::Read, u32::MAX), &admin)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "above the maximum");
        for _ in 0..2 {
            c.create_api_key(bearer(new_key(pb::Scope::Read, 0), &carl.access_token)).await.unwrap();
        }
        let e = c.create_api_key(bearer(new_key(pb::Scope::Read, 0), &carl.access_token)).await.unwrap_err();
        assert_eq!(
            (e.code(), code_of(&e)),
            (Code::ResourceExhausted, pb::ErrorCode::ResourceExhausted),
            "3 keys at most"
        );

        // A password change ends every token issued before it, access and refresh alike.
        let change = pb::ChangePasswordRequest {
            old_password: "carl's password".into(),
            new_password: "carl's new password".into(),
        };
        c.change_password(bearer(change, &carl.access_token)).await.unwrap();
        assert_eq!(token_grant(c, &carl.access_token).await.unwrap_err().code(), Code::Unauthenticated);
        let refresh = pb::RefreshRequest { refresh_token: carl.refresh_token.clone() };
        assert_eq!(c.refresh(refresh).await.unwrap_err().code(), Code::Unauthenticated);
        grant_of(c, &carl_key).await.expect("keys survive a password change");
        // So does an admin's reset.
        let dora = login(c, "dora", "dora's password").await.unwrap();
        let reset =
            pb::UpdateUserRequest { username: "dora".into(), role: None, new_password: Some("reset by admin".into()) };
        c.update_user(bearer(reset, &admin)).await.unwrap();
        assert_eq!(token_grant(c, &dora.access_token).await.unwrap_err().code(), Code::Unauthenticated);
        let refresh = pb::RefreshRequest { refresh_token: dora.refresh_token };
        assert_eq!(c.refresh(refresh).await.unwrap_err().code(), Code::Unauthenticated);

        // A narrower key manages no keys (it could mint keys that outlive it, or revoke its
        // owner's others), and no API key changes a password.
        let dora = login(c, "dora", "reset by admin").await.unwrap().access_token;
        let dora_read = c.create_api_key(bearer(new_key(pb::Scope::Read, 0), &dora)).await.unwrap().into_inner();
        let e = c.create_api_key(with_key(new_key(pb::Scope::Read, 0), &dora_read.secret_key)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "a read key minting keys");
        let revoke = pb::RevokeApiKeyRequest { key_id: dora_read.key.clone().unwrap().key_id };
        let e = c.revoke_api_key(with_key(revoke, &dora_read.secret_key)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "a read key revoking keys");
        let change =
            pb::ChangePasswordRequest { old_password: "reset by admin".into(), new_password: "whatever it is".into() };
        let e = c.change_password(with_key(change, &dora_read.secret_key)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "a key changing its owner's password");

        // Deleted: the key and the tokens stop, and a new user of the same name inherits none.
        let carl = login(c, "carl", "carl's new password").await.unwrap();
        c.delete_user(bearer(pb::DeleteUserRequest { username: "carl".into() }, &admin)).await.unwrap();
        assert_eq!(grant_of(c, &carl_key).await.unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(token_grant(c, &carl.access_token).await.unwrap_err().code(), Code::Unauthenticated);
        let again = pb::CreateUserRequest { username: "carl".into(), password: "another carl".into(), role: 0 };
        c.create_user(bearer(again, &admin)).await.unwrap();
        assert_eq!(grant_of(c, &carl_key).await.unwrap_err().code(), Code::Unauthenticated, "revoked with its owner");
        assert_eq!(token_grant(c, &carl.access_token).await.unwrap_err().code(), Code::Unauthenticated);
        let refresh = pb::RefreshRequest { refresh_token: carl.refresh_token };
        assert_eq!(c.refresh(refresh).await.unwrap_err().code(), Code::Unauthenticated);
    }

    #[tokio::test]
    async fn failed_authentications_are_throttled_per_client() {
        let backoff = crate::throttle::Backoff {
            free_failures: 3,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(30),
        };
        let mut s = must_start(AuthConfig { authenticate_throttle: backoff, ..AuthConfig::default() }).await;
        let password = s.admin_password.clone();
        let c = &mut s.client;
        let token = login(c, "admin", &password).await.unwrap().access_token;
        for _ in 0..4 {
            assert_eq!(grant_of(c, "vx_0123456789abcdef_00").await.unwrap_err().code(), Code::Unauthenticated);
        }
        let e = token_grant(c, &token).await.unwrap_err();
        let wire = vectron_model::status::from_status(&e);
        assert_eq!((wire.code, wire.retry_after), (pb::ErrorCode::ResourceExhausted, Some(Duration::from_secs(30))));
    }

    #[tokio::test]
    async fn open_signup_creates_users_but_never_admins() {
        let mut s = must_start(AuthConfig { open_signup: true, ..AuthConfig::default() }).await;
        let c = &mut s.client;
        c.create_user(pb::CreateUserRequest { username: "fay".into(), password: "fay's password".into(), role: 0 })
            .await
            .unwrap();
        let e = c
            .create_user(pb::CreateUserRequest {
                username: "gus".into(),
                password: "gus's password".into(),
                role: pb::Role::Admin as i32,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
    }

    #[tokio::test]
    async fn failed_logins_are_throttled_with_retry_after() {
        let throttle = ThrottleConfig {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            ..ThrottleConfig::default()
        };
        let mut s = must_start(AuthConfig { login_throttle: throttle, ..AuthConfig::default() }).await;
        let password = s.admin_password.clone();
        let c = &mut s.client;
        for _ in 0..3 {
            assert_eq!(login(c, "admin", "wrong password").await.unwrap_err().code(), Code::Unauthenticated);
        }
        assert_eq!(login(c, "admin", "wrong password").await.unwrap_err().code(), Code::Unauthenticated);
        // Locked now: even the right password is refused, with a retry hint.
        let e = login(c, "admin", &password).await.unwrap_err();
        let wire = vectron_model::status::from_status(&e);
        assert_eq!(
            (e.code(), wire.code, wire.retryable),
            (Code::ResourceExhausted, pb::ErrorCode::ResourceExhausted, true)
        );
        assert_eq!(wire.retry_after, Some(Duration::from_secs(1)));
        // And it recovers after the delay.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        login(c, "admin", &password).await.unwrap();
    }

    #[tokio::test]
    async fn guessing_the_old_password_of_a_password_change_is_throttled_like_log_ins() {
        let throttle =
            ThrottleConfig { free_failures: 2, base_delay: Duration::from_secs(30), ..ThrottleConfig::default() };
        let mut s = must_start(AuthConfig { login_throttle: throttle, ..AuthConfig::default() }).await;
        let password = s.admin_password.clone();
        let c = &mut s.client;
        let token = login(c, "admin", &password).await.unwrap().access_token;
        let change =
            |old: &str| pb::ChangePasswordRequest { old_password: old.into(), new_password: "a new password".into() };
        for guess in ["guess one", "guess two"] {
            assert_eq!(
                c.change_password(bearer(change(guess), &token)).await.unwrap_err().code(),
                Code::Unauthenticated
            );
        }
        c.change_password(bearer(change("guess three"), &token)).await.unwrap_err();
        let e = c.change_password(bearer(change(&password), &token)).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "locked out like a log-in: {e:?}");
    }

    async fn login_from(client: &mut Client, source: &str, user: &str, password: &str) -> Result<(), tonic::Status> {
        let mut r = tonic::Request::new(pb::LoginRequest { username: user.into(), password: password.into() });
        r.metadata_mut().insert("x-forwarded-for", MetadataValue::try_from(format!("{source}, 127.0.0.1")).unwrap());
        client.login(r).await.map(|_| ())
    }

    #[tokio::test]
    async fn failed_logins_are_throttled_per_forwarded_client_only_behind_trusted_proxies() {
        let throttle = ThrottleConfig {
            free_failures: 2,
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(60),
            source_free_failures: 2,
            ..ThrottleConfig::default()
        };
        for trusted in [true, false] {
            let trusted_proxies = if trusted { vec!["127.0.0.0/8".parse().unwrap()] } else { vec![] };
            let config = AuthConfig { login_throttle: throttle, trusted_proxies, ..AuthConfig::default() };
            let mut s = must_start(config).await;
            let password = s.admin_password.clone();
            // One client guessing several users' passwords.
            for user in ["u1", "u2", "u3"] {
                let e = login_from(&mut s.client, "10.0.0.1", user, "guess").await.unwrap_err();
                assert_eq!(e.code(), Code::Unauthenticated);
            }
            let e = login_from(&mut s.client, "10.0.0.1", "admin", &password).await.unwrap_err();
            assert_eq!(e.code(), Code::ResourceExhausted, "the guessing client is locked out");
            let other = login_from(&mut s.client, "10.0.0.2", "admin", &password).await;
            if trusted {
                other.expect("another client behind the same gateway is not");
            } else {
                // The header is not believed: the locked-out source is the peer itself.
                assert_eq!(other.unwrap_err().code(), Code::ResourceExhausted);
            }
        }
    }
}

mod gateway_side {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use vectron_proto::v1 as pb;
    use vectron_proto::v1::auth_service_client::AuthServiceClient;

    use super::*;
    use crate::client::{AuthClient, Credential, Grant, RateLimits};
    use crate::service::{AuthConfig, AuthGrpc, bootstrap_admin, serve};
    use crate::tokens::{SigningKey, TokenConfig};

    /// An auth server on loopback; returns its channel and the admin's API key.
    async fn must_serve() -> (tempfile::TempDir, tonic::transport::Channel, String, tokio::sync::oneshot::Sender<()>) {
        let (dir, store) = embedded();
        bootstrap_admin(store.clone(), "admin", Some("admin password")).await.unwrap();
        let key = ApiKeys::new(store.clone())
            .create(KeySpec {
                owner: "admin".into(),
                scope: Scope::Admin,
                collections: None,
                rate_limit_per_sec: Some(5),
            })
            .await
            .unwrap();
        let service =
            AuthGrpc::new(store, TokenConfig::new(SigningKey::new("k1", &[1u8; 32]).unwrap()), AuthConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, service, vectron_common::lifecycle::Health::new("auth").await, async {
            let _ = stopped.await;
        }));
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        (dir, channel, key.key, stop)
    }

    #[tokio::test]
    async fn revoked_keys_stop_working_within_the_cache_ttl() {
        let (_dir, channel, key, _stop) = must_serve().await;
        let client = AuthClient::new(channel.clone(), Duration::from_millis(500));
        let cred = Credential::ApiKey(key.clone());
        let grant = client.authenticate(&cred, None).await.unwrap();
        assert_eq!(
            (grant.access.principal.as_str(), grant.access.scope, grant.rate_limit_per_sec),
            ("admin", Scope::Admin, Some(5))
        );
        let key_id = grant.key_id.clone().unwrap();
        let mut admin = AuthServiceClient::new(channel);
        let mut req = tonic::Request::new(pb::RevokeApiKeyRequest { key_id });
        req.metadata_mut().insert("x-api-key", key.parse().unwrap());
        admin.revoke_api_key(req).await.unwrap();
        // Within the TTL the cached grant may still pass; after it, never.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let e = client.authenticate(&cred, None).await.unwrap_err();
        assert_eq!(e.code, pb::ErrorCode::Unauthenticated);
        let e = client.authenticate(&Credential::Bearer("not a token".into()), None).await.unwrap_err();
        assert_eq!(e.code, pb::ErrorCode::Unauthenticated);
    }

    #[tokio::test]
    async fn rate_limits_refuse_with_a_wait_and_recover() {
        let limits = RateLimits::new(NonZeroU32::new(100));
        let grant = |key: Option<&str>, limit| Grant {
            access: Access { principal: "u".into(), scope: Scope::Read, collections: None },
            rate_limit_per_sec: limit,
            key_id: key.map(String::from),
        };
        let key = grant(Some("k1"), Some(5));
        for i in 0..5 {
            assert!(limits.check(&key).is_ok(), "request {i} within the burst");
        }
        let Err(crate::client::Limited::Wait { wait, .. }) = limits.check(&key) else { panic!("limited") };
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        // Another key and the user's own bucket are separate.
        assert!(limits.check(&grant(Some("k2"), Some(5))).is_ok());
        assert!(limits.check(&grant(None, None)).is_ok());
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        assert!(limits.check(&key).is_ok(), "recovers after the hinted wait");
        // A batch larger than a bucket ever holds is refused as such, not told to wait.
        let fresh = grant(Some("k9"), Some(5));
        assert!(limits.check(&fresh).is_ok(), "its admission");
        let Err(crate::client::Limited::TooMany { asked: 6, limit: 5, .. }) = limits.take_rest_of_batch(&fresh, 6)
        else {
            panic!("a batch of 6 under a limit of 5")
        };
        assert!(limits.take_rest_of_batch(&fresh, 5).is_ok(), "a batch of 5 fits");
        // A key refused by its own limit costs its owner's bucket nothing.
        let owner_limits = RateLimits::new(NonZeroU32::new(10));
        let narrow = Grant { key_id: Some("n".into()), rate_limit_per_sec: Some(1), ..grant(None, None) };
        let other = grant(None, None);
        assert!(owner_limits.check(&narrow).is_ok());
        assert!((0..50).all(|_| owner_limits.check(&narrow).is_err()), "the leaked key is held to 1/s");
        assert!((0..9).all(|_| owner_limits.check(&other).is_ok()), "its owner still has 9 of 10");
        // Without a default, only keys with a limit of their own are limited.
        let unlimited = RateLimits::new(None);
        assert!((0..10_000).all(|_| unlimited.check(&grant(None, None)).is_ok()));
        assert!((0..5).all(|_| unlimited.check(&key).is_ok()));
        assert!(unlimited.check(&key).is_err());
    }
}
