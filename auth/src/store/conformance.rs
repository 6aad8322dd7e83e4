//! The behaviour every [`KvStore`] must show. Run against each backend by the tests in
//! `store.rs` (the etcd one against a real etcd process).

use std::sync::Arc;

use super::KvStore;

/// Single-client semantics of get / create / update / delete / list.
pub(crate) async fn basic_semantics(store: &dyn KvStore) {
    assert_eq!(store.get("users/alice").await.unwrap(), None);
    let v1 = store.create("users/alice", b"a1".to_vec()).await.unwrap().expect("created");
    assert_eq!(store.create("users/alice", b"again".to_vec()).await.unwrap(), None, "create must not overwrite");
    let got = store.get("users/alice").await.unwrap().unwrap();
    assert_eq!((got.value.as_slice(), got.version), (&b"a1"[..], v1));

    assert_eq!(store.update("users/alice", v1 + 1000, b"x".to_vec()).await.unwrap(), None, "stale version");
    let v2 = store.update("users/alice", v1, b"a2".to_vec()).await.unwrap().expect("updated");
    assert!(v2 > v1, "versions grow");
    assert_eq!(store.update("users/alice", v1, b"a3".to_vec()).await.unwrap(), None, "old version is stale now");
    assert_eq!(store.update("users/nobody", 1, b"x".to_vec()).await.unwrap(), None, "absent key");

    store.create("users/bob", b"b".to_vec()).await.unwrap().unwrap();
    store.create("users2/carol", b"c".to_vec()).await.unwrap().unwrap();
    store.create("keys/k1", b"k".to_vec()).await.unwrap().unwrap();
    let users: Vec<String> = store.list("users/").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(users, vec!["users/alice".to_string(), "users/bob".to_string()]);
    assert_eq!(store.list("none/").await.unwrap(), vec![]);

    let bob = store.get("users/bob").await.unwrap().unwrap();
    assert!(!store.delete("users/bob", bob.version + 1000).await.unwrap(), "stale version");
    assert!(store.delete("users/bob", bob.version).await.unwrap());
    assert_eq!(store.get("users/bob").await.unwrap(), None);
    assert!(!store.delete("users/bob", bob.version).await.unwrap(), "already gone");
    // A deleted key can be created again, with a newer version.
    let again = store.create("users/bob", b"b2".to_vec()).await.unwrap().unwrap();
    assert!(again > bob.version);
}

/// Conditional writes stay correct under concurrent clients.
pub(crate) async fn concurrent_semantics(store: Arc<dyn KvStore>) {
    // Exactly one of many concurrent creates of one key wins.
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.create("race/key", vec![i]).await.unwrap().is_some() }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);

    // Compare-and-set increments from many clients lose nothing.
    store.create("race/counter", 0u64.to_le_bytes().to_vec()).await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                loop {
                    let cur = store.get("race/counter").await.unwrap().unwrap();
                    let n = u64::from_le_bytes(cur.value.as_slice().try_into().unwrap());
                    if store
                        .update("race/counter", cur.version, (n + 1).to_le_bytes().to_vec())
                        .await
                        .unwrap()
                        .is_some()
                    {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = store.get("race/counter").await.unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(end.value.as_slice().try_into().unwrap()), 40);
}

/// After [`basic_semantics`] and a restart, the data is still there.
pub(crate) async fn survives_restart(store: &dyn KvStore) {
    let alice = store.get("users/alice").await.unwrap().expect("alice survives a restart");
    assert_eq!(alice.value, b"a2");
    let next = store.update("users/alice", alice.version, b"a4".to_vec()).await.unwrap().unwrap();
    assert!(next > alice.version, "versions keep growing after a restart");
}
