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
