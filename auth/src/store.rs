//! Where auth records live: a small versioned key-value interface with compare-and-set,
//! implemented over etcd ([`EtcdStore`], clusters) and over a local RocksDB
//! ([`EmbeddedStore`], `vectron dev`). Users, keys and tokens are built on it, so both
//! backends behave the same; one conformance suite checks them.
//!
//! Versions: every write gives the key a new, larger version (etcd's mod revision, or the
//! embedded store's own counter). `create` and `update` are conditional, which is what
//! keeps usernames and key ids unique and updates from being lost under concurrency.

mod embedded;
mod etcd;

#[cfg(test)]
pub(crate) mod conformance;

pub use embedded::EmbeddedStore;
pub use etcd::{DEFAULT_PREFIX, EtcdStore};

use crate::error::Result;

/// A value and the version it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: u64,
}

/// A versioned key-value store with conditional writes.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + std::fmt::Debug {
    /// Reads `key`.
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;
    /// Writes `key` only if it does not exist. Returns its version, or `None` if it
    /// existed.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<u64>>;
    /// Writes `key` only if its version is `expected`. Returns the new version, or
    /// `None` if the key is absent or changed since.
    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<Option<u64>>;
    /// Deletes `key` only if its version is `expected`. Returns false if absent or
    /// changed since.
    async fn delete(&self, key: &str, expected: u64) -> Result<bool>;
    /// Every key starting with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>>;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::EtcdProcess;

    #[tokio::test]
    async fn embedded_store_conforms_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            conformance::basic_semantics(&store).await;
            conformance::concurrent_semantics(Arc::new(store)).await;
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        conformance::survives_restart(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd_store_conforms_and_survives_restart() {
        let mut etcd = EtcdProcess::must_start().await;
        let store = EtcdStore::connect(&[etcd.endpoint()], DEFAULT_PREFIX).await.unwrap();
        conformance::basic_semantics(&store).await;
        conformance::concurrent_semantics(Arc::new(store.clone())).await;
        // Another prefix is another world.
        let other = EtcdStore::connect(&[etcd.endpoint()], "/other/").await.unwrap();
        assert_eq!(other.list("").await.unwrap(), vec![]);
        // etcd killed and restarted on its data: everything is still there.
        etcd.must_restart().await;
        let store = EtcdStore::connect(&[etcd.endpoint()], DEFAULT_PREFIX).await.unwrap();
        conformance::survives_restart(&store).await;
    }
}
