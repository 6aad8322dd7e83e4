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
//! Snapshots carry the shard's config and every point (vector and payload), as a file
//! ([`crate::snapshot`]), never whole in memory. The state machine is persistent, so its
//! current state *is* its snapshot: openraft's periodic "build" only needs the log id
//! (it keeps the meta and drops the data, then purges the log up to it), so building
//! records the meta and copies nothing. Data is copied only when a replica must be sent
//! one ([`RaftStateMachine::get_current_snapshot`] once the group runs): page by page
//! into a file, under the state machine's turn (applies wait), so the copy is exactly
//! the state at its log id. Installing one drops the local shard, creates it afresh and
//! loads the points page by page; a `restoring` marker makes a crash mid-install start
//! over from an empty replica, which the leader then sends a snapshot again.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use vectron_common::raft::NodeId;
use vectron_common::raft::applied::AppliedMeta;
use vectron_common::raft::log_store::RocksLogStore;
use vectron_engine::shard::MAX_TOP_K;
use vectron_engine::{EngineError, Payload, Point, Shard, ShardConfig, ShardId, Storage, WriteOp};

use crate::snapshot::{SnapshotReader, SnapshotWriter};

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
        SnapshotData = tokio::fs::File,
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

/// The state machine of one shard replica.
#[derive(Debug, Clone)]
pub struct ShardStateMachine {
    id: ShardId,
    storage: Storage,
    graphs_dir: PathBuf,
    /// Where snapshot files (unnamed) are made.
    snapshots_dir: PathBuf,
    slot: ShardSlot,
    meta: ShardLog,
    applied: Arc<Mutex<AppliedMeta>>,
    /// Set once the Raft group runs (see [`ShardStateMachine::group_started`]).
    started: Arc<AtomicBool>,
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

fn snapshot_write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &e).into()
}

/// The snapshot of the state at `applied` with the data in `file`. Its id is the log id
/// it covers (two snapshots at one log id hold the same state, with or without data).
fn snapshot_at(applied: AppliedMeta, file: std::fs::File) -> Snapshot<ShardTypes> {
    let snapshot_id = match applied.last_applied {
        Some(l) => format!("{}-{}", l.leader_id, l.index),
        None => "empty".to_owned(),
    };
    Snapshot {
        meta: SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership, snapshot_id },
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    }
}

fn join_err(e: tokio::task::JoinError) -> StorageError<NodeId> {
    sm_write(std::io::Error::other(e.to_string()))
}

impl ShardStateMachine {
    /// Opens (or, with `config`, creates) the shard's state machine; HNSW graphs are
    /// kept under `graphs_dir`, snapshot files made in `snapshots_dir`. A replica that
    /// crashed while installing a snapshot is emptied: it reports nothing applied and is
    /// sent a snapshot again.
    pub fn open(
        id: ShardId,
        storage: Storage,
        graphs_dir: PathBuf,
        snapshots_dir: PathBuf,
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
        Ok(ShardStateMachine {
            id,
            storage,
            graphs_dir,
            snapshots_dir,
            slot,
            meta,
            applied: Arc::new(Mutex::new(applied)),
            started: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Marks the group as running (call on a clone after `Raft::new`). Until then the
    /// current snapshot is answered with its meta only: openraft asks for it once while
    /// starting, for the meta alone, and copying a whole shard at every start would make
    /// restarts slow. After it, a current snapshot carries the data.
    pub fn group_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub fn slot(&self) -> ShardSlot {
        self.slot.clone()
    }

    fn save_applied(&self, applied: &AppliedMeta) -> Result<(), StorageError<NodeId>> {
        self.meta.put_meta(SM_KEY, applied)
    }

    /// A snapshot of the current state's meta, with no data (an empty file).
    fn meta_only(&self) -> Result<Snapshot<ShardTypes>, StorageError<NodeId>> {
        let applied = self.applied.lock().clone();
        let file = crate::snapshot::temp_file(&self.snapshots_dir).map_err(snapshot_write_err)?;
        Ok(snapshot_at(applied, file))
    }

    /// Copies the shard's points, a page at a time, into a snapshot file of the current
    /// state (blocking; call it on the state machine's turn).
    fn copy_out(&self) -> Result<Snapshot<ShardTypes>, StorageError<NodeId>> {
        let applied = self.applied.lock().clone();
        let shard = self.slot.get().ok_or_else(|| snapshot_err(std::io::Error::other("shard is being restored")))?;
        let file = crate::snapshot::temp_file(&self.snapshots_dir).map_err(snapshot_write_err)?;
        let mut out = SnapshotWriter::new(file, shard.config()).map_err(snapshot_write_err)?;
        let mut from = None;
        loop {
            let page = shard.scroll(None, from.as_ref(), MAX_TOP_K, true, true).map_err(snapshot_err)?;
            let points: Vec<Point> = page
                .points
                .into_iter()
                .map(|r| Point {
                    id: r.id,
                    vector: r.vector.unwrap_or_default(),
                    payload: r.payload.filter(|p| !p.is_empty()).map(|p| Payload::from_map(&p)),
                })
                .collect();
            out.page(&points).map_err(snapshot_write_err)?;
            match page.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        let (file, _) = out.finish().map_err(snapshot_write_err)?;
        Ok(snapshot_at(applied, file))
    }
}

/// "Builds" a snapshot: the meta taken when the builder was made (see the module docs:
/// openraft keeps only the meta of a built snapshot).
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
        ShardSnapshotBuilder(Some(self.meta_only()))
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let file = crate::snapshot::temp_file(&self.snapshots_dir).map_err(snapshot_write_err)?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        let file = snapshot.into_std().await;
        let started = std::time::Instant::now();
        // Checked before the local shard is touched: a corrupt file changes nothing.
        let (mut pages, config) = SnapshotReader::new(file).map_err(snapshot_err)?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        tracing::info!(shard = self.id.0, index, "installing snapshot");
        self.meta.put_meta(RESTORING_KEY, &true)?;
        let (storage, id, dir, slot) = (self.storage.clone(), self.id, self.graphs_dir.clone(), self.slot.clone());
        let shard = tokio::task::spawn_blocking(move || -> Result<Shard, StorageError<NodeId>> {
            if let Some(old) = slot.take_blocking() {
                old.destroy().map_err(sm_write)?;
            }
            let shard = Shard::create(&storage, id, config, &dir).map_err(sm_write)?;
            let chunk = shard.config().limits.max_batch.max(1);
            let mut restored = 0usize;
            while let Some(mut points) = pages.next_page().map_err(snapshot_err)? {
                restored += points.len();
                while !points.is_empty() {
                    let rest = points.split_off(points.len().min(chunk));
                    shard.restore_chunk(index, points).map_err(sm_write)?;
                    points = rest;
                }
            }
            shard.restore_chunk(index, Vec::new()).map_err(sm_write)?;
            let took = started.elapsed();
            tracing::info!(
                shard = id.0,
                index,
                points = restored,
                points_per_sec = (restored as f64 / took.as_secs_f64().max(1e-9)) as u64,
                "snapshot installed"
            );
            let counters = &crate::metrics::COUNTERS;
            counters.snapshots_installed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            counters.snapshot_points_installed.fetch_add(restored as u64, std::sync::atomic::Ordering::Relaxed);
            crate::metrics::add_time(&counters.snapshot_install_micros, took);
            Ok(shard)
        })
        .await
        .map_err(join_err)??;
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
        if !self.started.load(Ordering::Acquire) {
            return self.meta_only().map(Some);
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
            let sm = ShardStateMachine::open(
                ShardId(7),
                storage,
                dir.path().join("graphs"),
                dir.path().join("snap"),
                log.clone(),
                Some(config),
            )?;
            sm.group_started(); // the suite transfers snapshots without a Raft group
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
                payload: Some(Payload::from_map(serde_json::json!({"i": i}).as_object().unwrap())),
            })
            .collect()
    }

    fn open(dir: &std::path::Path, config: Option<ShardConfig>) -> ShardStateMachine {
        let storage = open_storage(&dir.join("db"), Default::default()).unwrap();
        let log = ShardLog::new(storage.db().clone(), 3, false);
        let sm =
            ShardStateMachine::open(ShardId(3), storage, dir.join("graphs"), dir.join("snap"), log, config).unwrap();
        sm.group_started();
        sm
    }

    async fn data_of(snapshot: Snapshot<ShardTypes>) -> usize {
        snapshot.snapshot.into_std().await.metadata().unwrap().len() as usize
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

        // Building one (openraft's periodic compaction) records the log id and copies nothing.
        let built = a.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(built.meta.last_log_id.map(|l| l.index), Some(5));
        assert_eq!(data_of(built).await, 0);
        // One to send carries the data, from a file.
        let snapshot = a.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(5));
        let mut b = open(b_dir.path(), None);
        // Received as openraft does: chunks written into the file the follower provides.
        let mut received = b.begin_receiving_snapshot().await.unwrap();
        let mut sent = snapshot.snapshot;
        let copied = tokio::io::copy(&mut sent, &mut *received).await.unwrap();
        assert!(copied > 2499 * 8, "{copied} bytes");
        b.install_snapshot(&snapshot.meta, received).await.unwrap();
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
    async fn snapshots_copy_nothing_while_starting_and_corrupt_ones_change_nothing() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let config = ShardConfig::new(2, Distance::Euclid);
        let storage = open_storage(&a_dir.path().join("db"), Default::default()).unwrap();
        let log = ShardLog::new(storage.db().clone(), 3, false);
        let (graphs, snaps) = (a_dir.path().join("graphs"), a_dir.path().join("snap"));
        let mut a = ShardStateMachine::open(ShardId(3), storage, graphs, snaps, log, Some(config)).unwrap();
        a.apply([entry(1, WriteOp::Upsert(points(0..100)))]).await.unwrap();
        // What openraft asks for while the group starts: the meta, without a copy.
        let starting = a.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(starting.meta.last_log_id.map(|l| l.index), Some(1));
        assert_eq!(data_of(starting).await, 0);
        a.group_started();
        let full = a.get_current_snapshot().await.unwrap().unwrap();
        let meta = full.meta.clone();
        let bytes = data_of(full).await;
        assert!(bytes > 100 * 8, "{bytes}");

        // A follower with data of its own receives a truncated file: refused, untouched.
        let mut b = open(b_dir.path(), Some(ShardConfig::new(2, Distance::Euclid)));
        b.apply([entry(1, WriteOp::Upsert(points(500..510)))]).await.unwrap();
        let mut sent = a.get_current_snapshot().await.unwrap().unwrap().snapshot.into_std().await;
        let mut received = b.begin_receiving_snapshot().await.unwrap().into_std().await;
        std::io::copy(&mut sent, &mut received).unwrap();
        received.set_len(bytes as u64 - 1).unwrap();
        let e = b.install_snapshot(&meta, Box::new(tokio::fs::File::from_std(received))).await.unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        assert_eq!(b.slot().get().unwrap().len(), 10, "the local shard is untouched");
        assert_eq!(b.applied_state().await.unwrap().0.map(|l| l.index), Some(1));
        // Nothing is left on disk: snapshot files have no names.
        for dir in [a_dir.path().join("snap"), b_dir.path().join("snap")] {
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{}", dir.display());
        }
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
