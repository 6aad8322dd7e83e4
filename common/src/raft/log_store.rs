//! The Raft log of many groups in one RocksDB.
//!
//! Keys (`G` = group id, 8 bytes big-endian):
//! - `raft_log`:  `G index(8 BE)` → the entry, MessagePack;
//! - `raft_meta`: `G "vote"`, `G "committed"`, `G "purged"` → MessagePack, plus whatever
//!   the group's state machine keeps there under its own suffixes.
//!
//! Every key starts with its group, so groups never clobber each other's vote or log, and
//! a group's log is dropped with one range delete. Writes use the storage's durability
//! (WAL without fsync by default: survives the process being killed; replication covers
//! the machine).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogId, RaftTypeConfig, StorageError, StorageIOError, Vote};
use rocksdb::{DB, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{decode, encode};
use super::{CF_RAFT_LOG, CF_RAFT_META, GroupId, NodeId};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

/// One group's view of the shared Raft column families.
pub struct RocksLogStore<C> {
    db: Arc<DB>,
    group: GroupId,
    sync: bool,
    _config: PhantomData<C>,
}

impl<C> Clone for RocksLogStore<C> {
    fn clone(&self) -> Self {
        RocksLogStore { db: self.db.clone(), group: self.group, sync: self.sync, _config: PhantomData }
    }
}

impl<C> Debug for RocksLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksLogStore").field("group", &self.group).finish()
    }
}

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn io_read(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn io_write(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

#[derive(Debug, thiserror::Error)]
#[error("column family {0} is missing")]
struct MissingColumnFamily(&'static str);

impl<C> RocksLogStore<C> {
    /// `db` must have been opened with [`super::open_storage`]. `sync` fsyncs the WAL
    /// on every write.
    pub fn new(db: Arc<DB>, group: GroupId, sync: bool) -> Self {
        RocksLogStore { db, group, sync, _config: PhantomData }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    fn log_key(&self, index: u64) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.group.to_be_bytes());
        k[8..].copy_from_slice(&index.to_be_bytes());
        k
    }

    /// The key of a `raft_meta` record of this group.
    pub fn meta_key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(8 + suffix.len());
        k.extend_from_slice(&self.group.to_be_bytes());
        k.extend_from_slice(suffix);
        k
    }

    /// Upper bound (exclusive) of every key of this group.
    fn group_end(&self) -> Vec<u8> {
        match self.group.checked_add(1) {
            Some(next) => next.to_be_bytes().to_vec(),
            None => vec![0xFF; 17],
        }
    }

    fn cf(&self, name: &'static str) -> StoreResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| io_read(MissingColumnFamily(name)))
    }

    fn write_options(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }

    /// Reads a `raft_meta` record of this group.
    pub fn get_meta<T: DeserializeOwned>(&self, suffix: &[u8]) -> StoreResult<Option<T>> {
        match self.db.get_cf(self.cf(CF_RAFT_META)?, self.meta_key(suffix)).map_err(io_read)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(io_read),
        }
    }

    /// Writes a `raft_meta` record of this group.
    pub fn put_meta<T: Serialize + ?Sized>(&self, suffix: &[u8], value: &T) -> StoreResult<()> {
        let bytes = encode(value).map_err(io_write)?;
        self.db
            .put_cf_opt(self.cf(CF_RAFT_META)?, self.meta_key(suffix), bytes, &self.write_options())
            .map_err(io_write)
    }

    /// Deletes the group's log (entries, committed and purged marks) but keeps its vote,
    /// so the node never votes twice in a term. For a replica that starts over empty.
    pub fn clear_log(&self) -> StoreResult<()> {
        let start = self.group.to_be_bytes();
        let end = self.group_end();
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_RAFT_LOG)?, &start[..], &end[..]);
        let meta = self.cf(CF_RAFT_META)?;
        batch.delete_cf(meta, self.meta_key(COMMITTED));
        batch.delete_cf(meta, self.meta_key(PURGED));
        self.db.write_opt(batch, &self.write_options()).map_err(io_write)
    }

    /// Whether the group has ever stored a vote or a log entry (i.e. has been started).
    pub fn is_initialized(&self) -> StoreResult<bool> {
        if self.db.get_cf(self.cf(CF_RAFT_META)?, self.meta_key(VOTE)).map_err(io_read)?.is_some() {
            return Ok(true);
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(self.group_end());
        let first = self.log_key(0);
        let mut it = self.db.iterator_cf_opt(self.cf(CF_RAFT_LOG)?, ro, IteratorMode::From(&first, Direction::Forward));
        Ok(it.next().transpose().map_err(io_read)?.is_some())
    }
}

impl<C> RocksLogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Entry = Entry<C>>,
    Entry<C>: Serialize + DeserializeOwned,
{
    fn last_entry_id(&self) -> StoreResult<Option<LogId<NodeId>>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(self.log_key(0).to_vec());
        ro.set_iterate_upper_bound(self.group_end());
        let mut it = self.db.iterator_cf_opt(self.cf(CF_RAFT_LOG)?, ro, IteratorMode::End);
        match it.next().transpose().map_err(io_read)? {
            None => Ok(None),
            Some((_, v)) => Ok(Some(*decode::<Entry<C>>(&v).map_err(io_read)?.get_log_id())),
        }
    }
}

/// Most bytes of log entries one AppendEntries carries (at least one entry, whatever
/// its size). openraft gives an AppendEntries one heartbeat interval (200 ms for shard
/// groups) and drops it past that; a catching-up follower sent 64 entries of large
/// upserts at once (tens of MB) timed out again and again and caught up at ~10k
/// points/s. Entries up to this size fit the interval with room to spare.
pub const MAX_APPEND_BYTES: usize = 4 << 20;

impl<C> RocksLogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Entry = Entry<C>>,
    Entry<C>: Serialize + DeserializeOwned,
{
    /// The entries in `range`, stopping before the one that would take their encoded
    /// size past `budget` bytes (the first is always included).
    fn read_entries<RB: RangeBounds<u64>>(&self, range: RB, budget: usize) -> StoreResult<Vec<Entry<C>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut ro = ReadOptions::default();
        match range.end_bound() {
            Bound::Included(&i) => match i.checked_add(1) {
                Some(end) => ro.set_iterate_upper_bound(self.log_key(end).to_vec()),
                None => ro.set_iterate_upper_bound(self.group_end()),
            },
            Bound::Excluded(&i) => ro.set_iterate_upper_bound(self.log_key(i).to_vec()),
            Bound::Unbounded => ro.set_iterate_upper_bound(self.group_end()),
        }
        let from = self.log_key(start);
        let iter = self.db.iterator_cf_opt(self.cf(CF_RAFT_LOG)?, ro, IteratorMode::From(&from, Direction::Forward));
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in iter {
            let (_, v) = item.map_err(io_read)?;
            bytes = bytes.saturating_add(v.len());
            if !out.is_empty() && bytes > budget {
                break;
            }
            out.push(decode::<Entry<C>>(&v).map_err(io_read)?);
        }
        Ok(out)
    }
}

impl<C> RaftLogReader<C> for RocksLogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Entry = Entry<C>>,
    Entry<C>: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<C::Entry>> {
        self.read_entries(range, usize::MAX)
    }

    /// What replication sends a follower at once: at most [`MAX_APPEND_BYTES`].
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> StoreResult<Vec<C::Entry>> {
        self.read_entries(start..end, MAX_APPEND_BYTES)
    }
}

impl<C> RaftLogStorage<C> for RocksLogStore<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Entry = Entry<C>>,
    Entry<C>: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<C>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        self.put_meta(VOTE, vote).map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        self.put_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> StoreResult<()>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        let cf = self.cf(CF_RAFT_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, self.log_key(entry.get_log_id().index), encode(&entry).map_err(io_write)?);
        }
        let result = self.db.write_opt(batch, &self.write_options());
        let io = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(io);
        result.map_err(io_write)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_RAFT_LOG)?, &self.log_key(log_id.index)[..], &self.group_end()[..]);
        self.db.write_opt(batch, &self.write_options()).map_err(io_write)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        // Record the purge point first: a crash between the two leaves extra entries
        // below it, which are never read.
        self.put_meta(PURGED, &log_id)?;
        let mut batch = WriteBatch::default();
        let end = match log_id.index.checked_add(1) {
            Some(next) => self.log_key(next).to_vec(),
            None => self.group_end(),
        };
        batch.delete_range_cf(self.cf(CF_RAFT_LOG)?, &self.log_key(0)[..], &end[..]);
        self.db.write_opt(batch, &self.write_options()).map_err(io_write)
    }
}
