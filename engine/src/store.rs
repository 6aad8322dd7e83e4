//! Durable point storage.
//!
//! [`Storage`] is the one RocksDB of a process, opened with a fixed set of column
//! families (`points`, `payloads`, `index_meta`, plus any the caller adds, e.g. the Raft
//! log's). [`PointStore`] is one shard's view of it; [`RocksPointStore`] implements it
//! with every key prefixed by the big-endian shard id, so shards never clobber each
//! other and the number of column families does not grow with shards.
//!
//! Keys and values (`S` = shard id, 8 bytes big-endian; `I` = [`PointId::encode`]):
//! - `points`:     `S I` → `[version u64 LE][vector f32 LE …]`
//! - `payloads`:   `S I` → payload as JSON (absent when the point has none)
//! - `index_meta`: `S "applied"` → u64 LE; `S "config"` → shard config as JSON
//!
//! Invariant: one applied batch is one RocksDB `WriteBatch` carrying its points, payloads
//! and the applied index together, so after a crash a batch is either wholly there or
//! wholly absent, and the applied index says which.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};
use crate::types::{PointId, ShardConfig, ShardId};
use vectron_model::Payload;

pub const CF_POINTS: &str = "points";
pub const CF_PAYLOADS: &str = "payloads";
pub const CF_INDEX_META: &str = "index_meta";
const ENGINE_CFS: [&str; 3] = [CF_POINTS, CF_PAYLOADS, CF_INDEX_META];

/// How hard a write tries to be durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Written to RocksDB's WAL in the OS page cache: survives the process being
    /// killed, not the machine losing power (replication covers that).
    #[default]
    Process,
    /// The WAL is fsynced before the write returns: survives power loss too.
    Machine,
}

/// Options of the process-wide RocksDB.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    pub durability: Durability,
    /// Column families other layers keep in the same DB (e.g. `raft_log`).
    pub extra_column_families: Vec<String>,
}

/// The process's RocksDB.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
    durability: Durability,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("path", &self.db.path()).finish()
    }
}

impl Storage {
    /// Opens (creating if needed) the DB at `path` with the engine's column families.
    pub fn open(path: &Path, options: StorageOptions) -> Result<Storage> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        db_opts.increase_parallelism(std::thread::available_parallelism().map_or(2, |n| n.get()) as i32);
        let names = ENGINE_CFS.iter().map(|s| s.to_string()).chain(options.extra_column_families.iter().cloned());
        let cfs: Vec<_> = names.map(|n| ColumnFamilyDescriptor::new(n, Options::default())).collect();
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        Ok(Storage { db: Arc::new(db), durability: options.durability })
    }

    /// The raw DB, for layers that keep their own column families in it.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    pub fn write_options(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.durability == Durability::Machine);
        w
    }

    /// Shard ids that have a stored config.
    pub fn shard_ids(&self) -> Result<Vec<ShardId>> {
        let cf = self.cf(CF_INDEX_META)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, _) = item?;
            if k.len() == 8 + META_CONFIG.len() && &k[8..] == META_CONFIG {
                out.push(ShardId(u64::from_be_bytes(k[..8].try_into().expect("8 bytes"))));
            }
        }
        Ok(out)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or(EngineError::Corruption { what: "storage", reason: format!("missing column family {name}") })
    }
}

const META_APPLIED: &[u8] = b"applied";
const META_CONFIG: &[u8] = b"config";

/// A stored point.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub id: PointId,
    /// The applied index of the batch that wrote it; identifies this version.
    pub version: u64,
    pub vector: Vec<f32>,
}

/// One point to write: id, vector, payload.
pub type UpsertRef<'a> = (&'a PointId, &'a [f32], Option<&'a Payload>);

/// One shard's writes, applied atomically together with the applied index.
#[derive(Debug, Default)]
pub struct WriteSet<'a> {
    pub upserts: Vec<UpsertRef<'a>>,
    pub deletes: Vec<&'a PointId>,
}

/// One shard's durable points.
pub trait PointStore: Send + Sync {
    /// Applies `writes` and records `applied` as the last applied index, atomically.
    /// Upserted points get `applied` as their version.
    fn apply(&self, applied: u64, writes: &WriteSet<'_>) -> Result<()>;
    /// The last applied index (0 for a new shard).
    fn applied_index(&self) -> Result<u64>;
    fn get(&self, id: &PointId) -> Result<Option<StoredPoint>>;
    fn get_payloads(&self, ids: &[&PointId]) -> Result<Vec<Option<Map<String, Value>>>>;
    /// Visits points in id order starting at `from` (inclusive) until `f` returns false.
    fn scan(&self, from: Option<&PointId>, f: &mut dyn FnMut(StoredPoint) -> Result<bool>) -> Result<()>;
    /// Visits every payload in id order.
    fn scan_payloads(&self, f: &mut dyn FnMut(PointId, Map<String, Value>) -> Result<()>) -> Result<()>;
    fn save_config(&self, config: &ShardConfig) -> Result<()>;
    fn load_config(&self) -> Result<Option<ShardConfig>>;
    /// Deletes everything the shard stored.
    fn destroy(&self) -> Result<()>;
}

/// [`PointStore`] over the shared RocksDB.
#[derive(Debug, Clone)]
pub struct RocksPointStore {
    storage: Storage,
    shard: ShardId,
}

impl RocksPointStore {
    pub fn new(storage: Storage, shard: ShardId) -> Self {
        RocksPointStore { storage, shard }
    }

    fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + suffix.len());
        k.extend_from_slice(&self.shard.0.to_be_bytes());
        k.extend_from_slice(suffix);
        k
    }

    fn prefix(&self) -> [u8; 8] {
        self.shard.0.to_be_bytes()
    }

    /// Reads options bounded to this shard's keys.
    fn shard_range(&self) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(self.prefix().to_vec());
        if let Some(next) = self.shard.0.checked_add(1) {
            ro.set_iterate_upper_bound(next.to_be_bytes().to_vec());
        }
        ro
    }

    fn decode_point(&self, key: &[u8], value: &[u8]) -> Result<StoredPoint> {
        let id = PointId::decode(&key[8..]).map_err(EngineError::corrupt_point_id)?;
        if value.len() < 8 || !(value.len() - 8).is_multiple_of(4) {
            return Err(EngineError::Corruption { what: "point record", reason: format!("{} bytes", value.len()) });
        }
        let version = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
        let vector = value[8..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        Ok(StoredPoint { id, version, vector })
    }
}

fn decode_payload(bytes: &[u8]) -> Result<Map<String, Value>> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::Corruption { what: "payload", reason: e.to_string() })
}

impl PointStore for RocksPointStore {
    fn apply(&self, applied: u64, writes: &WriteSet<'_>) -> Result<()> {
        let s = &self.storage;
        let (points, payloads, meta) = (s.cf(CF_POINTS)?, s.cf(CF_PAYLOADS)?, s.cf(CF_INDEX_META)?);
        let mut batch = WriteBatch::default();
        for id in &writes.deletes {
            let k = self.key(&id.encode());
            batch.delete_cf(points, &k);
            batch.delete_cf(payloads, &k);
        }
        for (id, vector, payload) in &writes.upserts {
            let k = self.key(&id.encode());
            let mut v = Vec::with_capacity(8 + vector.len() * 4);
            v.extend_from_slice(&applied.to_le_bytes());
            vector.iter().for_each(|x| v.extend_from_slice(&x.to_le_bytes()));
            batch.put_cf(points, &k, v);
            match payload {
                Some(p) if !p.is_empty() => batch.put_cf(payloads, &k, p.as_json()),
                _ => batch.delete_cf(payloads, &k),
            }
        }
        batch.put_cf(meta, self.key(META_APPLIED), applied.to_le_bytes());
        s.db.write_opt(batch, &s.write_options())?;
        Ok(())
    }

    fn applied_index(&self) -> Result<u64> {
        match self.storage.db.get_cf(self.storage.cf(CF_INDEX_META)?, self.key(META_APPLIED))? {
            None => Ok(0),
            Some(b) => Ok(u64::from_le_bytes(b.as_slice().try_into().map_err(|_| EngineError::Corruption {
                what: "applied index",
                reason: format!("{} bytes", b.len()),
            })?)),
        }
    }

    fn get(&self, id: &PointId) -> Result<Option<StoredPoint>> {
        let k = self.key(&id.encode());
        match self.storage.db.get_pinned_cf(self.storage.cf(CF_POINTS)?, &k)? {
            None => Ok(None),
            Some(v) => self.decode_point(&k, &v).map(Some),
        }
    }

    fn get_payloads(&self, ids: &[&PointId]) -> Result<Vec<Option<Map<String, Value>>>> {
        let cf = self.storage.cf(CF_PAYLOADS)?;
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| self.key(&id.encode())).collect();
        self.storage
            .db
            .batched_multi_get_cf(cf, &keys, false)
            .into_iter()
            .map(|r| match r? {
                None => Ok(None),
                Some(b) => decode_payload(&b).map(Some),
            })
            .collect()
    }

    fn scan(&self, from: Option<&PointId>, f: &mut dyn FnMut(StoredPoint) -> Result<bool>) -> Result<()> {
        let start = self.key(&from.map(PointId::encode).unwrap_or_default());
        let iter = self.storage.db.iterator_cf_opt(
            self.storage.cf(CF_POINTS)?,
            self.shard_range(),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !f(self.decode_point(&k, &v)?)? {
                break;
            }
        }
        Ok(())
    }

    fn scan_payloads(&self, f: &mut dyn FnMut(PointId, Map<String, Value>) -> Result<()>) -> Result<()> {
        let iter =
            self.storage.db.iterator_cf_opt(self.storage.cf(CF_PAYLOADS)?, self.shard_range(), IteratorMode::Start);
        for item in iter {
            let (k, v) = item?;
            f(PointId::decode(&k[8..]).map_err(EngineError::corrupt_point_id)?, decode_payload(&v)?)?;
        }
        Ok(())
    }

    fn save_config(&self, config: &ShardConfig) -> Result<()> {
        let json = serde_json::to_vec(config).map_err(|e| EngineError::invalid_argument(e.to_string()))?;
        let s = &self.storage;
        s.db.put_cf_opt(s.cf(CF_INDEX_META)?, self.key(META_CONFIG), json, &s.write_options())?;
        Ok(())
    }

    fn load_config(&self) -> Result<Option<ShardConfig>> {
        match self.storage.db.get_cf(self.storage.cf(CF_INDEX_META)?, self.key(META_CONFIG))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| EngineError::Corruption { what: "shard config", reason: e.to_string() }),
        }
    }

    fn destroy(&self) -> Result<()> {
        let s = &self.storage;
        let from = self.prefix();
        let mut batch = WriteBatch::default();
        for name in ENGINE_CFS {
            let cf = s.cf(name)?;
            match self.shard.0.checked_add(1) {
                Some(next) => batch.delete_range_cf(cf, &from[..], &next.to_be_bytes()[..]),
                None => batch.delete_range_cf(cf, &from[..], &[0xFFu8; 9][..]),
            }
        }
        s.db.write_opt(batch, &s.write_options())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u8, f32, bool),
        Delete(u8),
        Reopen,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..20, -5f32..5.0, any::<bool>()).prop_map(|(i, x, p)| Op::Upsert(i, x, p)),
            2 => (0u8..20).prop_map(Op::Delete),
            1 => Just(Op::Reopen),
        ]
    }

    fn id_of(i: u8) -> PointId {
        if i.is_multiple_of(2) { PointId::Num(i as u64 * 1000) } else { PointId::Str(format!("p{i}")) }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// The store agrees with a BTreeMap model through random upserts, deletes and
        /// reopenings, and two shards in one DB never see each other's points.
        #[test]
        fn store_matches_btreemap_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let open = || Storage::open(dir.path(), StorageOptions::default()).unwrap();
            let mut storage = open();
            type Model = BTreeMap<PointId, (Vec<f32>, Option<Map<String, Value>>)>;
            let mut model: Model = BTreeMap::new();
            let mut applied = 0;
            for op in ops {
                let store = RocksPointStore::new(storage.clone(), ShardId(7));
                let neighbour = RocksPointStore::new(storage.clone(), ShardId(8));
                match op {
                    Op::Upsert(i, x, with_payload) => {
                        let id = id_of(i);
                        let v = vec![x, -x, 1.0];
                        let p = with_payload.then(|| json!({"i": i}).as_object().unwrap().clone());
                        let text = p.as_ref().map(Payload::from_map);
                        applied += 1;
                        store.apply(applied, &WriteSet { upserts: vec![(&id, &v, text.as_ref())], deletes: vec![] }).unwrap();
                        neighbour.apply(applied, &WriteSet { upserts: vec![(&id, &[9.0, 9.0, 9.0], None)], deletes: vec![] }).unwrap();
                        model.insert(id, (v, p));
                    }
                    Op::Delete(i) => {
                        let id = id_of(i);
                        applied += 1;
                        store.apply(applied, &WriteSet { upserts: vec![], deletes: vec![&id] }).unwrap();
                        model.remove(&id);
                    }
                    Op::Reopen => {
                        drop((store, neighbour));
                        drop(storage);
                        storage = open();
                    }
                }
            }
            let store = RocksPointStore::new(storage.clone(), ShardId(7));
            prop_assert_eq!(store.applied_index().unwrap(), applied);
            let mut seen = Vec::new();
            store.scan(None, &mut |p| { seen.push((p.id, p.vector)); Ok(true) }).unwrap();
            let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
            prop_assert_eq!(seen, want);
            let ids: Vec<&PointId> = model.keys().collect();
            let payloads = store.get_payloads(&ids).unwrap();
            let want_payloads: Vec<_> = model.values().map(|v| v.1.clone()).collect();
            prop_assert_eq!(payloads, want_payloads);
        }
    }

    #[test]
    fn scan_starts_at_cursor_and_destroy_removes_only_its_shard() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageOptions::default()).unwrap();
        let a = RocksPointStore::new(storage.clone(), ShardId(1));
        let b = RocksPointStore::new(storage.clone(), ShardId(2));
        let ids: Vec<PointId> = (0..10u64).map(PointId::Num).collect();
        let v = [1.0f32];
        for s in [&a, &b] {
            s.apply(1, &WriteSet { upserts: ids.iter().map(|i| (i, &v[..], None)).collect(), deletes: vec![] })
                .unwrap();
            s.save_config(&ShardConfig::new(1, crate::types::Distance::Euclid)).unwrap();
        }
        let mut got = Vec::new();
        a.scan(Some(&PointId::Num(7)), &mut |p| {
            got.push(p.id);
            Ok(true)
        })
        .unwrap();
        assert_eq!(got, vec![PointId::Num(7), PointId::Num(8), PointId::Num(9)]);
        assert_eq!(storage.shard_ids().unwrap(), vec![ShardId(1), ShardId(2)]);
        a.destroy().unwrap();
        assert!(a.get(&PointId::Num(1)).unwrap().is_none());
        assert_eq!(a.load_config().unwrap(), None);
        assert!(b.get(&PointId::Num(1)).unwrap().is_some());
        assert_eq!(storage.shard_ids().unwrap(), vec![ShardId(2)]);
    }
}
