//! [`KvStore`] over etcd, under a key prefix (default `/vectron/auth/`). Conditional
//! writes are etcd transactions comparing the key's version (create) or mod revision
//! (update, delete).

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse};

use super::{KvStore, Versioned};
use crate::error::{AuthError, Result};

/// Default root of Vectron's auth keys in etcd.
pub const DEFAULT_PREFIX: &str = "/vectron/auth/";

/// The auth store in etcd.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("prefix", &self.prefix).finish()
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints`, keeping keys under `prefix`.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<EtcdStore> {
        let options = ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_timeout(std::time::Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options)).await?;
        Ok(EtcdStore { client, prefix: prefix.to_owned() })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn version_of(rev: i64, key: &str) -> Result<u64> {
    u64::try_from(rev).map_err(|_| AuthError::Corruption { key: key.to_owned(), reason: format!("revision {rev}") })
}

impl EtcdStore {
    /// Puts `value` at `key` in one transaction if `guard` holds; returns the new
    /// version, or `None` if the guard failed.
    async fn put_if(&self, key: &str, guard: Compare, value: Vec<u8>) -> Result<Option<u64>> {
        let txn = Txn::new().when(vec![guard]).and_then(vec![TxnOp::put(self.full(key), value, None)]);
        let resp = self.client.clone().txn(txn).await?;
        if !resp.succeeded() {
            return Ok(None);
        }
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        version_of(rev, key).map(Some)
    }
}

#[async_trait::async_trait]
impl KvStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let resp = self.client.clone().get(self.full(key), None).await?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => {
                Ok(Some(Versioned { value: kv.value().to_vec(), version: version_of(kv.mod_revision(), key)? }))
            }
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<u64>> {
        let full = self.full(key);
        self.put_if(key, Compare::version(full, CompareOp::Equal, 0), value).await
    }

    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<Option<u64>> {
        let full = self.full(key);
        let expected = i64::try_from(expected).map_err(|_| AuthError::InvalidArgument { reason: "version".into() })?;
        self.put_if(key, Compare::mod_revision(full, CompareOp::Equal, expected), value).await
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<bool> {
        let full = self.full(key);
        let expected = i64::try_from(expected).map_err(|_| AuthError::InvalidArgument { reason: "version".into() })?;
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(full.clone(), CompareOp::Equal, expected)])
            .and_then(vec![TxnOp::delete(full, None)]);
        let resp = self.client.clone().txn(txn).await?;
        Ok(resp.succeeded()
            && resp.op_responses().iter().any(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted() > 0)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
        let resp = self.client.clone().get(self.full(prefix), Some(GetOptions::new().with_prefix())).await?;
        resp.kvs()
            .iter()
            .map(|kv| {
                let full = kv
                    .key_str()
                    .map_err(|e| AuthError::Corruption { key: prefix.to_owned(), reason: e.to_string() })?;
                let key = full.strip_prefix(&self.prefix).unwrap_or(full).to_owned();
                let version = version_of(kv.mod_revision(), &key)?;
                Ok((key, Versioned { value: kv.value().to_vec(), version }))
            })
            .collect()
    }
}
