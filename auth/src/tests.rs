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
    async fn concurrent_refreshes_of_one_token_yield_at_most_one_pair() {
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
        assert!(ok <= 1, "{ok} refreshes of one token succeeded");
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
