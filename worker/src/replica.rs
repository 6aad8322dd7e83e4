//! One shard replica: an openraft group whose state machine is the engine's [`Shard`].
//!
//! Apply: each normal entry is one `WriteOp` applied with [`Shard::apply`] at the entry's
//! log index — one RocksDB `WriteBatch` carrying the points and the applied index — then
//! the group's last applied log id and membership are recorded in `raft_meta`. A crash
//! between the two replays entries the engine has already applied, which it skips, so
//! nothing is applied twice. An entry the engine refuses (bad input) is refused
//! identically on every replica and answered as a typed error; a storage failure stops
//! the group instead (it must not diverge).
//!
//! Snapshots carry the shard's config and every point (vector and payload). Building one
//! copies the shard's points under the state machine's turn (applies wait), so the copy
//! is exactly the state at its log id. Installing one drops the local shard, creates it
//! afresh and loads the points; a `restoring` marker makes a crash mid-install start
//! over from an empty replica, which the leader then sends a snapshot again.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use vectron_common::raft::NodeId;
use vectron_common::raft::applied::AppliedMeta;
use vectron_common::raft::codec::{decode, encode};
use vectron_common::raft::log_store::RocksLogStore;
use vectron_engine::shard::MAX_TOP_K;
use vectron_engine::{EngineError, Point, Shard, ShardConfig, ShardId, Storage, WriteOp};

/// A write as a log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRequest(pub WriteOp);

/// What applying an entry did: the points affected, or the engine's refusal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardResponse {
    pub affected: u64,
    /// `(ErrorCode, message)` when the engine refused the write.
    pub refused: Option<(i32, String)>,
}

openraft::declare_raft_types!(
    /// A shard group's Raft types.
    pub ShardTypes:
        D = ShardRequest,
        R = ShardResponse,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = Entry<ShardTypes>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type ShardLog = RocksLogStore<ShardTypes>;

/// The live shard of a replica; empty while a snapshot is being installed.
#[derive(Debug, Clone, Default)]
pub struct ShardSlot(Arc<RwLock<Option<Arc<Shard>>>>);

impl ShardSlot {
    pub fn get(&self) -> Option<Arc<Shard>> {
        self.0.read().clone()
    }

    fn put(&self, shard: Shard) {
        *self.0.write() = Some(Arc::new(shard));
    }

    /// Takes the shard out, waiting (blocking) for in-flight readers to let go of it.
    pub fn take_blocking(&self) -> Option<Shard> {
        let mut shard = self.0.write().take()?;
        loop {
            match Arc::try_unwrap(shard) {
                Ok(s) => return Some(s),
                Err(still_shared) => {
                    shard = still_shared;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

const SM_KEY: &[u8] = b"sm";
const RESTORING_KEY: &[u8] = b"restoring";
const RETIRED_KEY: &[u8] = b"retired";

/// Forgets a dropped replica (its Raft node already shut down): first its applied
/// position and log — the vote stays, with a `retired` mark, so this worker never
/// initialises the group again — then its data. In that order, a crash in between
/// leaves data whose applied position reads as nothing, which the next open treats
/// as a replica to fill again, never as a state that is ahead of its data.
pub fn retire(slot: &ShardSlot, log: &ShardLog) -> Result<(), String> {
    log.put_meta(SM_KEY, &AppliedMeta::default()).map_err(|e| e.to_string())?;
    log.clear_log().map_err(|e| e.to_string())?;
    log.put_meta(RETIRED_KEY, &true).map_err(|e| e.to_string())?;
    if let Some(shard) = slot.take_blocking() {
        shard.destroy().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Whether this worker hosted the group before and dropped it.
pub fn is_retired(log: &ShardLog) -> Result<bool, StorageError<NodeId>> {
    Ok(log.get_meta::<bool>(RETIRED_KEY)?.unwrap_or(false))
}

/// A snapshot's content.
#[derive(Debug, Serialize, Deserialize)]
struct ShardSnapshot {
    config: ShardConfig,
    points: Vec<Point>,
}

/// The state machine of one shard replica.
#[derive(Debug, Clone)]
pub struct ShardStateMachine {
    id: ShardId,
    storage: Storage,
    graphs_dir: PathBuf,
    slot: ShardSlot,
    meta: ShardLog,
    applied: Arc<Mutex<AppliedMeta>>,
}

fn sm_read(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

fn snapshot_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, &e).into()
}

fn join_err(e: tokio::task::JoinError) -> StorageError<NodeId> {
    sm_write(std::io::Error::other(e.to_string()))
}

impl ShardStateMachine {
    /// Opens (or, with `config`, creates) the shard's state machine. A replica that
    /// crashed while installing a snapshot is emptied: it reports nothing applied and is
    /// sent a snapshot again.
    pub fn open(
        id: ShardId,
        storage: Storage,
        graphs_dir: PathBuf,
        meta: ShardLog,
        config: Option<ShardConfig>,
    ) -> Result<ShardStateMachine, StorageError<NodeId>> {
        let restoring = meta.get_meta::<bool>(RESTORING_KEY)?.unwrap_or(false);
        let mut applied: AppliedMeta = meta.get_meta(SM_KEY)?.unwrap_or_default();
        let slot = ShardSlot::default();
        let existing = vectron_engine::store::RocksPointStore::new(storage.clone(), id);
        let stored_config = vectron_engine::store::PointStore::load_config(&existing).map_err(sm_read)?;
        if restoring {
            tracing::warn!(shard = id.0, "replica crashed while installing a snapshot; starting it empty");
            if let Some(c) = &stored_config {
                let shard = Shard::open(&storage, id, &graphs_dir).map_err(sm_read)?;
                shard.destroy().map_err(sm_write)?;
                let fresh = Shard::create(&storage, id, c.clone(), &graphs_dir).map_err(sm_write)?;
                slot.put(fresh);
            }
            meta.clear_log()?;
            applied = AppliedMeta::default();
            meta.put_meta(SM_KEY, &applied)?;
            meta.put_meta(RESTORING_KEY, &false)?;
        } else {
            let shard = match (stored_config, config) {
                (Some(_), _) => Some(Shard::open(&storage, id, &graphs_dir).map_err(sm_read)?),
                (None, Some(c)) => Some(Shard::create(&storage, id, c, &graphs_dir).map_err(sm_write)?),
                (None, None) => None,
            };
            if let Some(s) = shard {
                slot.put(s);
            }
        }
        Ok(ShardStateMachine { id, storage, graphs_dir, slot, meta, applied: Arc::new(Mutex::new(applied)) })
    }

    pub fn slot(&self) -> ShardSlot {
        self.slot.clone()
    }

    fn save_applied(&self, applied: &AppliedMeta) -> Result<(), StorageError<NodeId>> {
        self.meta.put_meta(SM_KEY, applied)
    }

    /// Copies the shard's points (in pages) into a snapshot of the current state.
    fn copy_out(&self) -> Result<Snapshot<ShardTypes>, StorageError<NodeId>> {
        let applied = self.applied.lock().clone();
        let shard = self.slot.get().ok_or_else(|| snapshot_err(std::io::Error::other("shard is being restored")))?;
        let mut points = Vec::with_capacity(shard.len());
        let mut from = None;
        loop {
            let page = shard.scroll(None, from.as_ref(), MAX_TOP_K, true, true).map_err(snapshot_err)?;
            for r in page.points {
                let vector = r.vector.unwrap_or_default();
                let payload = r.payload.filter(|p| !p.is_empty());
                points.push(Point { id: r.id, vector, payload });
            }
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        let data = encode(&ShardSnapshot { config: shard.config().clone(), points }).map_err(snapshot_err)?;
        let snapshot_id = match applied.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        Ok(Snapshot {
            meta: SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership, snapshot_id },
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// Builds a snapshot from the copy taken when the builder was made.
#[derive(Debug)]
pub struct ShardSnapshotBuilder(Option<Result<Snapshot<ShardTypes>, StorageError<NodeId>>>);

impl RaftSnapshotBuilder<ShardTypes> for ShardSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardTypes>, StorageError<NodeId>> {
        self.0.take().unwrap_or_else(|| Err(snapshot_err(std::io::Error::other("snapshot already built"))))
    }
}

impl RaftStateMachine<ShardTypes> for ShardStateMachine {
    type SnapshotBuilder = ShardSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let a = self.applied.lock();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ShardResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<ShardTypes>> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.applied.lock().clone();
        let mut responses = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            let response = match applied.record(entry) {
                None => ShardResponse::default(),
                Some(ShardRequest(op)) => {
                    let shard = self.slot.get().ok_or_else(|| {
                        sm_write(std::io::Error::other(format!("shard {} has no data to apply to", self.id.0)))
                    })?;
                    let outcome =
                        tokio::task::spawn_blocking(move || shard.apply(index, op)).await.map_err(join_err)?;
                    match outcome {
                        Ok(o) => ShardResponse { affected: o.affected as u64, refused: None },
                        // Storage failures must stop the group, not be skipped.
                        Err(
                            e @ (EngineError::Storage(_) | EngineError::Io { .. } | EngineError::Corruption { .. }),
                        ) => {
                            return Err(sm_write(e));
                        }
                        Err(e) => ShardResponse { affected: 0, refused: Some((e.code() as i32, e.to_string())) },
                    }
                }
            };
            responses.push(response);
        }
        self.save_applied(&applied)?;
        *self.applied.lock() = applied;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> ShardSnapshotBuilder {
        // Copied here, on the state machine's turn, so no apply interleaves.
        let this = self.clone();
        let copy = tokio::task::spawn_blocking(move || this.copy_out()).await.map_err(join_err).and_then(|r| r);
        ShardSnapshotBuilder(Some(copy))
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let content: ShardSnapshot = decode(snapshot.get_ref()).map_err(snapshot_err)?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        tracing::info!(shard = self.id.0, index, points = content.points.len(), "installing snapshot");
        self.meta.put_meta(RESTORING_KEY, &true)?;
        let (storage, id, dir, slot) = (self.storage.clone(), self.id, self.graphs_dir.clone(), self.slot.clone());
        let shard = tokio::task::spawn_blocking(move || -> Result<Shard, EngineError> {
            if let Some(old) = slot.take_blocking() {
                old.destroy()?;
            }
            let shard = Shard::create(&storage, id, content.config, &dir)?;
            let chunk = shard.config().limits.max_batch.max(1);
            let mut points = content.points;
            while !points.is_empty() {
                let rest = points.split_off(points.len().min(chunk));
                shard.restore_chunk(index, points)?;
                points = rest;
            }
            shard.restore_chunk(index, Vec::new())?;
            Ok(shard)
        })
        .await
        .map_err(join_err)?
        .map_err(sm_write)?;
        self.slot.put(shard);
        let applied = AppliedMeta { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        self.save_applied(&applied)?;
        *self.applied.lock() = applied;
        self.meta.put_meta(RESTORING_KEY, &false)?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<ShardTypes>>, StorageError<NodeId>> {
        // The state machine is persistent: its current state is a valid snapshot.
        if self.applied.lock().last_applied.is_none() {
            return Ok(None);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.copy_out()).await.map_err(join_err)?.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::EntryPayload;
    use openraft::testing::{StoreBuilder, Suite};
    use vectron_common::raft::open_storage;
    use vectron_engine::Distance;

    struct Builder;

    impl StoreBuilder<ShardTypes, ShardLog, ShardStateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, ShardLog, ShardStateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().expect("temp dir");
            let storage = open_storage(&dir.path().join("db"), Default::default()).expect("open storage");
            let log = ShardLog::new(storage.db().clone(), 7, false);
            let config = ShardConfig::new(2, Distance::Euclid);
            let sm =
                ShardStateMachine::open(ShardId(7), storage, dir.path().join("graphs"), log.clone(), Some(config))?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).expect("openraft storage suite");
    }

    fn entry(index: u64, op: WriteOp) -> Entry<ShardTypes> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(ShardRequest(op)),
        }
    }

    fn points(range: std::ops::Range<u64>) -> Vec<Point> {
        range
            .map(|i| Point {
                id: vectron_engine::PointId::Num(i),
                vector: vec![i as f32, 1.0],
                payload: Some(serde_json::json!({"i": i}).as_object().unwrap().clone()),
            })
            .collect()
    }

    fn open(dir: &std::path::Path, config: Option<ShardConfig>) -> ShardStateMachine {
        let storage = open_storage(&dir.join("db"), Default::default()).unwrap();
        let log = ShardLog::new(storage.db().clone(), 3, false);
        ShardStateMachine::open(ShardId(3), storage, dir.join("graphs"), log, config).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_snapshot_carries_every_point_to_a_fresh_replica() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut config = ShardConfig::new(2, Distance::Euclid);
        config.limits.max_batch = 1000; // several restore chunks
        let mut a = open(a_dir.path(), Some(config));
        let deleted = vec![vectron_engine::PointId::Num(5)];
        let out = a
            .apply([
                entry(1, WriteOp::Upsert(points(0..1000))),
                entry(2, WriteOp::Upsert(points(1000..2000))),
                entry(3, WriteOp::Upsert(points(2000..2500))),
                entry(4, WriteOp::Delete(deleted)),
            ])
            .await
            .unwrap();
        assert_eq!(out.iter().map(|r| r.affected).collect::<Vec<_>>(), vec![1000, 1000, 500, 1]);
        // A refused write is answered as such and changes nothing.
        let bad = a
            .apply([entry(5, WriteOp::Upsert(vec![Point { id: 9.into(), vector: vec![1.0], payload: None }]))])
            .await
            .unwrap();
        assert_eq!(bad[0].refused.as_ref().map(|r| r.0), Some(vectron_proto::v1::ErrorCode::DimensionMismatch as i32));

        let snapshot = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(5));
        let mut b = open(b_dir.path(), None);
        b.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
        let (applied, _) = b.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(5));
        let shard = b.slot().get().unwrap();
        assert_eq!(shard.len(), 2499);
        assert_eq!(shard.applied_index(), 5);
        let got =
            shard.get(&[vectron_engine::PointId::Num(1499), vectron_engine::PointId::Num(5)], true, true).unwrap();
        assert_eq!(got.len(), 1, "the deleted point stays deleted");
        assert_eq!(got[0].vector.as_deref(), Some(&[1499.0, 1.0][..]));
        assert_eq!(got[0].payload.as_ref().unwrap()["i"], 1499);
        // Later entries apply on top; replays of installed ones are skipped.
        let out = b.apply([entry(6, WriteOp::Upsert(points(3000..3001)))]).await.unwrap();
        assert_eq!(out[0].affected, 1);
        assert_eq!(b.slot().get().unwrap().len(), 2500);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_retired_replica_reopens_empty_and_behind() {
        let dir = tempfile::tempdir().unwrap();
        let config = ShardConfig::new(2, Distance::Euclid);
        {
            let mut sm = open(dir.path(), Some(config.clone()));
            sm.apply([entry(1, WriteOp::Upsert(points(0..10)))]).await.unwrap();
            assert!(!is_retired(&sm.meta).unwrap());
            retire(&sm.slot(), &sm.meta).unwrap();
        }
        // Placed here again later: it must not claim entries it no longer holds.
        let mut sm = open(dir.path(), Some(config));
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied, None);
        assert_eq!(sm.slot().get().unwrap().len(), 0);
        assert!(is_retired(&sm.meta).unwrap(), "never initialised again here");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_crash_while_installing_starts_the_replica_over_empty() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut sm = open(dir.path(), Some(ShardConfig::new(2, Distance::Euclid)));
            sm.apply([entry(1, WriteOp::Upsert(points(0..10)))]).await.unwrap();
            // As if the process died between the marker and the end of the install.
            sm.meta.put_meta(RESTORING_KEY, &true).unwrap();
        }
        let mut sm = open(dir.path(), None);
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied, None, "nothing applied: the leader sends a snapshot again");
        assert_eq!(sm.slot().get().unwrap().len(), 0);
        assert!(!sm.meta.get_meta::<bool>(RESTORING_KEY).unwrap().unwrap());
    }
}
