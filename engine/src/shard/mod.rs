//! One shard replica's data: the durable [`PointStore`], the in-memory [`Hnsw`] graph,
//! the payload indexes, and the search planner over them.
//!
//! Writes: [`Shard::apply`] validates a whole batch first (nothing is written if any
//! point is bad), writes it to RocksDB in one `WriteBatch` with the applied index, then
//! updates memory. Memory is always rebuildable from RocksDB, so a crash between the two
//! loses nothing. Writers are serialised; searches run concurrently with them and see
//! a batch either not at all or whole (new graph nodes stay invisible until the batch
//! is published).
//!
//! Reopening: the graph is persisted to `shard-<id>.graph` (on [`Shard::persist`] — the
//! worker calls it in the background every few seconds while there are unsaved writes,
//! and writes go on while the file is written, from a snapshot — on drop, and every
//! `persist_every_writes` writes). On open the file is loaded and
//! reconciled with RocksDB: points whose stored version differs from the file's are
//! re-inserted and points gone from RocksDB are tombstoned, so a stale or missing file
//! costs time, never correctness. A file that fails its checksum is ignored.
//!
//! Rebuilds: when tombstones pass the configured share, a fresh graph of the live points
//! is built on a background thread; writes meanwhile are journaled (by id) and replayed
//! into it before it replaces the live state, so neither writes nor searches stall.
//!
//! Search planning: a filter is first turned into a candidate bitmap by the payload
//! indexes (refined with the direct evaluator when some condition is not indexed).
//! A cost model picks the plan (`Tuning::exact_scan_cost_factor`): an exact scan of the
//! candidates when cheaper, else filtered HNSW, which falls back to the exact scan if it
//! finds fewer than `top_k` hits.
//!
//! Layout: this module holds the shard's state and lifecycle (create, open, persist,
//! destroy); `write` the write path, `rebuild` background graph rebuilds, `read` gets,
//! scrolls, counts and filter evaluation, `search` the planner and the searches,
//! `graph_file` the `VXSHARD1` file and the load-time reconciliation with RocksDB.

mod graph_file;
mod read;
mod rebuild;
mod search;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;

use crate::distance::normalize;
use crate::error::{EngineError, Result};
use crate::filter::Filter;
use crate::hnsw::Hnsw;
use crate::payload_index::PayloadIndexes;
use crate::store::{PointStore, RocksPointStore, Storage};
use crate::types::{Distance, Point, PointId, Record, ShardConfig, ShardId};
use graph_file::{commit_graph, load_state, snapshot, write_graph};

pub use vectron_model::request::{MAX_EF, MAX_TOP_K};

/// A write, as the Raft log carries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WriteOp {
    Upsert(Vec<Point>),
    Delete(Vec<PointId>),
    DeleteByFilter(Filter),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Points written or removed.
    pub affected: usize,
    /// False when the log index had been applied already (a replay).
    pub applied: bool,
}

pub use vectron_model::request::SearchQuery;

/// How a search was executed (for tests, metrics and EXPLAIN-like output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPlan {
    Hnsw,
    FilteredHnsw,
    ExactScan,
}

/// Node counts of a shard's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphStats {
    pub nodes: usize,
    pub deleted: usize,
}

/// A page of [`Shard::scroll`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScrollPage {
    pub points: Vec<Record>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<PointId>,
}

/// In-memory state, replaced wholesale by a rebuild.
struct State {
    index: Arc<Hnsw>,
    /// Live point → its internal id.
    ids: HashMap<PointId, u32>,
    /// Internal id → point and the version it holds; `None` once dead.
    nodes: Vec<Option<(PointId, u64)>>,
    live: RoaringBitmap,
    payload_index: PayloadIndexes,
}

impl State {
    fn empty(config: &ShardConfig, capacity: usize) -> State {
        State {
            index: Arc::new(Hnsw::new(config.dimension, config.distance, config.hnsw, capacity)),
            ids: HashMap::new(),
            nodes: Vec::new(),
            live: RoaringBitmap::new(),
            payload_index: PayloadIndexes::new(&config.payload_indexes),
        }
    }

    fn remove(&mut self, id: &PointId) -> bool {
        match self.ids.remove(id) {
            Some(internal) => {
                self.live.remove(internal);
                self.nodes[internal as usize] = None;
                self.index.delete(internal);
                true
            }
            None => false,
        }
    }
}

/// One shard replica.
pub struct Shard {
    id: ShardId,
    config: ShardConfig,
    store: RocksPointStore,
    graph_path: PathBuf,
    state: RwLock<State>,
    /// Internal ids below this are published; searches ignore nodes at or above it.
    published: AtomicU32,
    /// Serialises writers (apply, rebuild, persist).
    write_lock: Mutex<WriterState>,
    /// Serialises graph-file saves (a save writes its temp file under `write_lock`, then
    /// fsyncs and renames it without).
    saving: Mutex<()>,
    /// `WriterState::applied`, readable without the writers' lock: stored once a write is
    /// published, so a reader that loads it sees at least that write's data.
    applied: AtomicU64,
}

struct WriterState {
    applied: u64,
    writes_since_persist: u64,
    /// A graph rebuild running in the background, if any.
    rebuild: Option<RebuildJob>,
}

/// A rebuild running on its own thread from a snapshot of the live points. Writes go on
/// meanwhile; the ids they touch are replayed into the fresh state before it is swapped
/// in, so the swap loses nothing.
struct RebuildJob {
    handle: std::thread::JoinHandle<Result<State>>,
    /// Points upserted or deleted since the snapshot.
    touched: Vec<PointId>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).field("points", &self.len()).finish()
    }
}

impl Shard {
    /// Creates a new, empty shard, or opens it if it exists with the same config.
    pub fn create(storage: &Storage, id: ShardId, config: ShardConfig, dir: &Path) -> Result<Shard> {
        config.validate()?;
        let store = RocksPointStore::new(storage.clone(), id);
        match store.load_config()? {
            Some(existing) if existing != config => {
                Err(EngineError::invalid_argument(format!("shard {} exists with another configuration", id.0)))
            }
            Some(_) => Shard::open(storage, id, dir),
            None => {
                store.save_config(&config)?;
                Shard::open(storage, id, dir)
            }
        }
    }

    /// Opens an existing shard: loads its config, then its graph (persisted or rebuilt).
    pub fn open(storage: &Storage, id: ShardId, dir: &Path) -> Result<Shard> {
        let store = RocksPointStore::new(storage.clone(), id);
        let config = store
            .load_config()?
            .ok_or_else(|| EngineError::invalid_argument(format!("shard {} does not exist", id.0)))?;
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        let graph_path = dir.join(format!("shard-{}.graph", id.0));
        let applied = store.applied_index()?;
        let (state, reconciled) = load_state(&store, &config, &graph_path)?;
        let published = state.nodes.len() as u32;
        Ok(Shard {
            id,
            config,
            store,
            graph_path,
            state: RwLock::new(state),
            published: AtomicU32::new(published),
            write_lock: Mutex::new(WriterState { applied, writes_since_persist: reconciled as u64, rebuild: None }),
            saving: Mutex::new(()),
            applied: AtomicU64::new(applied),
        })
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// Live points.
    pub fn len(&self) -> usize {
        self.state.read().live.len() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the graph, tombstones included: when `deleted` passes the configured
    /// share of `nodes`, the next write rebuilds it.
    pub fn graph_stats(&self) -> GraphStats {
        let s = self.state.read();
        GraphStats { nodes: s.index.len(), deleted: s.index.deleted_count() }
    }

    /// Level-0 connectivity of the graph (O(points); for diagnostics and metrics).
    pub fn graph_connectivity(&self) -> crate::hnsw::Connectivity {
        self.state.read().index.connectivity()
    }

    /// The last applied log index (never waits for a write in progress; the data a read
    /// sees after loading it is at least that write's).
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Saves the graph so the next open need not rebuild it. Writes wait only while the
    /// snapshot is taken (one pass over the node table; searches never wait); the file
    /// is written from it while writes go on, then fsynced and renamed. Saves are
    /// serialised.
    pub fn persist(&self) -> Result<()> {
        let _one = self.saving.lock();
        let (snapshot, saved) = {
            let mut writer = self.write_lock.lock();
            if writer.rebuild.as_ref().is_some_and(|j| j.handle.is_finished()) {
                self.advance_rebuild(&mut writer, true)?;
            }
            let snapshot = snapshot(writer.applied, &self.state.read())?;
            (snapshot, std::mem::take(&mut writer.writes_since_persist))
        };
        let written = write_graph(&self.graph_path, &snapshot).and_then(|w| {
            drop(snapshot); // the cut ends: inserts stop keeping copies
            commit_graph(&self.graph_path, w)
        });
        if written.is_err() {
            // Still unsaved: the next save (or the close) tries again.
            self.write_lock.lock().writes_since_persist += saved;
        }
        written
    }

    /// Writes applied since the graph file was last saved.
    pub fn unsaved_writes(&self) -> u64 {
        self.write_lock.lock().writes_since_persist
    }

    /// Saves the graph while the caller holds the writers' lock throughout.
    fn save_graph(&self, applied: u64) -> Result<()> {
        let written = write_graph(&self.graph_path, &snapshot(applied, &self.state.read())?)?;
        commit_graph(&self.graph_path, written)
    }

    /// Deletes the shard's data: its RocksDB keys and its graph file.
    pub fn destroy(self) -> Result<()> {
        let mut writer = self.write_lock.lock();
        self.store.destroy()?;
        writer.writes_since_persist = 0; // nothing left to persist on drop
        match std::fs::remove_file(&self.graph_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::io(&self.graph_path, e)),
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        let mut writer = self.write_lock.lock();
        // Let a background rebuild finish (it holds the store); the graph saved below
        // is the live one, and the next open reconciles it either way.
        if let Some(job) = writer.rebuild.take() {
            let _ = job.handle.join();
        }
        if writer.writes_since_persist > 0
            && let Err(e) = self.save_graph(writer.applied)
        {
            tracing::warn!(shard = self.id.0, error = %e, "could not persist graph on close");
        }
    }
}

/// Checks one point as an upsert would (id, dimension, finite values, payload size and
/// depth), normalising a cosine vector in place.
pub fn validate_point(config: &ShardConfig, p: &mut Point) -> Result<()> {
    vectron_model::vector::check_point(config, p)?;
    if config.distance == Distance::Cosine {
        let normalized = normalize(&mut p.vector);
        debug_assert!(normalized, "check_point refuses vectors without a direction");
    }
    Ok(())
}
