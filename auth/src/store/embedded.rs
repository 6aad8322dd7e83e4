//! [`KvStore`] over a local RocksDB, for the all-in-one `vectron dev` mode. Conditional
//! writes are serialised by a mutex; every write is fsynced, together with the store's
//! revision counter, in one `WriteBatch`.
//!
//! Layout: `k/<key>` → `[version u64 LE][value]`; `m/revision` → last version issued.

use std::path::Path;

use parking_lot::Mutex;
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use super::{KvStore, Versioned};
use crate::error::{AuthError, Result};

const REVISION_KEY: &[u8] = b"m/revision";

/// The auth store in a local RocksDB.
pub struct EmbeddedStore {
    db: DB,
    /// Serialises conditional writes; holds the last revision issued.
    revision: Mutex<u64>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.db.path()).finish()
    }
}

fn data_key(key: &str) -> Vec<u8> {
    let mut k = b"k/".to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

fn decode(key: &str, raw: &[u8]) -> Result<Versioned> {
    let corrupt = || AuthError::Corruption { key: key.to_owned(), reason: "record shorter than its version".into() };
    let (version, value) = raw.split_first_chunk::<8>().ok_or_else(corrupt)?;
    Ok(Versioned { value: value.to_vec(), version: u64::from_le_bytes(*version) })
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: &Path) -> Result<EmbeddedStore> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path)?;
        let revision = match db.get(REVISION_KEY)? {
            None => 0,
            Some(b) => u64::from_le_bytes(b.as_slice().try_into().map_err(|_| AuthError::Corruption {
                key: "m/revision".into(),
                reason: format!("{} bytes", b.len()),
            })?),
        };
        Ok(EmbeddedStore { db, revision: Mutex::new(revision) })
    }

    fn read(&self, key: &str) -> Result<Option<Versioned>> {
        self.db.get_pinned(data_key(key))?.map(|raw| decode(key, &raw)).transpose()
    }

    /// Writes `key` (or deletes it, with `None`) under the next revision; the caller
    /// holds the revision lock.
    fn write(&self, revision: &mut u64, key: &str, value: Option<Vec<u8>>) -> Result<u64> {
        let next = *revision + 1;
        let mut batch = WriteBatch::default();
        match value {
            Some(v) => {
                let mut raw = next.to_le_bytes().to_vec();
                raw.extend_from_slice(&v);
                batch.put(data_key(key), raw);
            }
            None => batch.delete(data_key(key)),
        }
        batch.put(REVISION_KEY, next.to_le_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        *revision = next;
        Ok(next)
    }
}

#[async_trait::async_trait]
impl KvStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.read(key)
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Option<u64>> {
        let mut revision = self.revision.lock();
        if self.read(key)?.is_some() {
            return Ok(None);
        }
        self.write(&mut revision, key, Some(value)).map(Some)
    }

    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<Option<u64>> {
        let mut revision = self.revision.lock();
        match self.read(key)? {
            Some(current) if current.version == expected => self.write(&mut revision, key, Some(value)).map(Some),
            _ => Ok(None),
        }
    }

    async fn delete(&self, key: &str, expected: u64) -> Result<bool> {
        let mut revision = self.revision.lock();
        match self.read(key)? {
            Some(current) if current.version == expected => self.write(&mut revision, key, None).map(|_| true),
            _ => Ok(false),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
        let start = data_key(prefix);
        let mut out = Vec::new();
        for item in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&start) {
                break;
            }
            let key = std::str::from_utf8(&k[2..])
                .map_err(|e| AuthError::Corruption { key: prefix.to_owned(), reason: e.to_string() })?
                .to_owned();
            let value = decode(&key, &v)?;
            out.push((key, value));
        }
        Ok(out)
    }
}
