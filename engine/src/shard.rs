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
//! Reopening: the graph is persisted to `shard-<id>.graph` (on [`Shard::persist`], on
//! drop, and every `persist_every_writes` writes). On open the file is loaded and
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

use crate::ValidationError;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::distance::normalize;
use crate::error::{EngineError, Result};
use crate::filter::Filter;
use crate::hnsw::Hnsw;
use crate::payload_index::PayloadIndexes;
use crate::store::{PointStore, RocksPointStore, Storage, WriteSet};
use crate::types::{Distance, Point, PointId, Record, ScoredPoint, ShardConfig, ShardId};

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

    /// The last applied log index.
    pub fn applied_index(&self) -> u64 {
        self.write_lock.lock().applied
    }

    // ---- writes ----

    /// Upserts points as the next write (standalone use; replicas use [`Shard::apply`]).
    pub fn upsert(&self, points: Vec<Point>) -> Result<usize> {
        let next = self.applied_index() + 1;
        Ok(self.apply(next, WriteOp::Upsert(points))?.affected)
    }

    /// Deletes points by id as the next write.
    pub fn delete(&self, ids: Vec<PointId>) -> Result<usize> {
        let next = self.applied_index() + 1;
        Ok(self.apply(next, WriteOp::Delete(ids))?.affected)
    }

    /// Deletes the points matching a filter as the next write.
    pub fn delete_by_filter(&self, filter: Filter) -> Result<usize> {
        let next = self.applied_index() + 1;
        Ok(self.apply(next, WriteOp::DeleteByFilter(filter))?.affected)
    }

    /// Applies the write at log index `index`. An index at or below the applied one is
    /// a replay and changes nothing. Either the whole batch is applied or, on error,
    /// none of it.
    pub fn apply(&self, index: u64, op: WriteOp) -> Result<WriteOutcome> {
        let mut writer = self.write_lock.lock();
        if index <= writer.applied {
            return Ok(WriteOutcome { affected: 0, applied: false });
        }
        let journal = writer.rebuild.is_some();
        let (affected, touched) = match op {
            WriteOp::Upsert(points) => {
                let touched = if journal { points.iter().map(|p| p.id.clone()).collect() } else { Vec::new() };
                (self.apply_upsert(index, points)?, touched)
            }
            WriteOp::Delete(ids) => {
                ids.iter().try_for_each(PointId::validate)?;
                let touched = if journal { ids.clone() } else { Vec::new() };
                (self.apply_delete(index, ids)?, touched)
            }
            WriteOp::DeleteByFilter(filter) => {
                filter.validate()?;
                let ids = self.matching_ids(&filter)?;
                let touched = if journal { ids.clone() } else { Vec::new() };
                (self.apply_delete(index, ids)?, touched)
            }
        };
        writer.applied = index;
        writer.writes_since_persist += affected as u64;
        if let Some(job) = &mut writer.rebuild {
            job.touched.extend(touched);
        }
        self.advance_rebuild(&mut writer, false)?;
        if writer.writes_since_persist >= self.config.tuning.persist_every_writes {
            self.save_graph(writer.applied)?;
            writer.writes_since_persist = 0;
        }
        Ok(WriteOutcome { affected, applied: true })
    }

    /// Writes one chunk of a replica snapshot being restored at log index `index`:
    /// like an upsert at `index`, except that several chunks share the index (a
    /// snapshot holds more points than one batch). Only for a shard created empty to
    /// receive the snapshot; the applied index becomes `index`. An empty chunk just
    /// records the index.
    pub fn restore_chunk(&self, index: u64, points: Vec<Point>) -> Result<usize> {
        let mut writer = self.write_lock.lock();
        if index < writer.applied {
            return Err(EngineError::invalid_argument(format!(
                "restoring at index {index}, below the applied index {}",
                writer.applied
            )));
        }
        let affected = if points.is_empty() {
            self.store.apply(index, &WriteSet::default())?;
            0
        } else {
            self.apply_upsert(index, points)?
        };
        writer.applied = index;
        writer.writes_since_persist += affected as u64;
        Ok(affected)
    }

    fn apply_upsert(&self, index: u64, mut points: Vec<Point>) -> Result<usize> {
        if points.is_empty() {
            return Err(EngineError::invalid_argument("upsert batch is empty"));
        }
        let limits = &self.config.limits;
        if points.len() > limits.max_batch {
            return Err(EngineError::invalid_argument(format!(
                "upsert batch has {} points, the limit is {}",
                points.len(),
                limits.max_batch
            )));
        }
        for p in &mut points {
            validate_point(&self.config, p)?;
        }
        // A repeated id in one batch: the last one wins.
        let mut last: HashMap<&PointId, usize> = HashMap::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            last.insert(&p.id, i);
        }
        let winners: Vec<&Point> =
            points.iter().enumerate().filter(|(i, p)| last[&p.id] == *i).map(|(_, p)| p).collect();

        let writes = WriteSet {
            upserts: winners.iter().map(|p| (&p.id, &p.vector[..], p.payload.as_ref())).collect(),
            deletes: vec![],
        };
        self.store.apply(index, &writes)?;

        // Insert into the graph under the read lock (searches continue), invisible
        // until published below.
        // Writers are serialised, so `first` stays the next free id until we publish.
        let first = {
            let state = self.state.read();
            let first = state.nodes.len() as u32;
            let index_ref = &state.index;
            winners.par_iter().enumerate().try_for_each(|(i, p)| index_ref.insert(first + i as u32, &p.vector))?;
            first
        };
        // Only the indexed fields of each payload are parsed, one payload at a time and
        // outside the write lock.
        let indexed: Vec<&str> =
            self.config.payload_indexes.iter().map(|s| vectron_model::key_path::root_field(&s.key)).collect();
        let fields = winners
            .iter()
            .map(|p| match &p.payload {
                Some(payload) if !indexed.is_empty() => payload.project(&indexed).map(Some),
                _ => Ok(None),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut state = self.state.write();
        for ((i, p), fields) in winners.iter().enumerate().zip(&fields) {
            let internal = first + i as u32;
            state.remove(&p.id);
            state.ids.insert(p.id.clone(), internal);
            state.nodes.push(Some((p.id.clone(), index)));
            state.live.insert(internal);
            state.payload_index.add(internal, fields.as_ref());
        }
        self.published.store(state.nodes.len() as u32, Ordering::Release);
        Ok(winners.len())
    }

    fn apply_delete(&self, index: u64, ids: Vec<PointId>) -> Result<usize> {
        let present: Vec<&PointId> = {
            let state = self.state.read();
            ids.iter().filter(|id| state.ids.contains_key(id)).collect()
        };
        self.store.apply(index, &WriteSet { upserts: vec![], deletes: present.clone() })?;
        let mut state = self.state.write();
        Ok(present.into_iter().filter(|id| state.remove(id)).count())
    }

    /// Starts a background rebuild once tombstones pass the configured share, and
    /// swaps in a finished one (waiting for it if `wait`). Called by writers.
    fn advance_rebuild(&self, writer: &mut WriterState, wait: bool) -> Result<()> {
        if let Some(job) = &writer.rebuild {
            if wait || job.handle.is_finished() {
                let job = writer.rebuild.take().expect("checked above");
                let fresh = job.handle.join().map_err(|_| EngineError::Corruption {
                    what: "graph rebuild",
                    reason: "the rebuild thread panicked".into(),
                })??;
                self.swap_in_rebuilt(fresh, job.touched)?;
            }
            return Ok(());
        }
        let (snapshot, old_index) = {
            let s = self.state.read();
            let (deleted, total) = (s.index.deleted_count(), s.index.len());
            let threshold = self.config.tuning.rebuild_deleted_fraction * total as f64;
            if total == 0 || deleted < 1000 || (deleted as f64) < threshold {
                return Ok(());
            }
            tracing::info!(shard = self.id.0, deleted, total, "rebuilding graph in the background");
            let live: Vec<(u32, PointId, u64)> =
                s.live.iter().filter_map(|i| s.nodes[i as usize].as_ref().map(|(p, v)| (i, p.clone(), *v))).collect();
            (live, s.index.clone())
        };
        let (config, store) = (self.config.clone(), self.store.clone());
        let handle = std::thread::Builder::new()
            .name(format!("rebuild-shard-{}", self.id.0))
            .spawn(move || rebuild_state(&config, &old_index, &snapshot, &store))
            .map_err(|e| EngineError::Io { path: "rebuild thread".into(), source: e })?;
        writer.rebuild = Some(RebuildJob { handle, touched: Vec::new() });
        Ok(())
    }

    /// Replays the points written during a rebuild into its fresh state (taking their
    /// current version from the live state) and makes it the live state. The caller
    /// holds the write lock, so nothing changes meanwhile.
    fn swap_in_rebuilt(&self, mut fresh: State, mut touched: Vec<PointId>) -> Result<()> {
        touched.sort_unstable();
        touched.dedup();
        {
            let current = self.state.read();
            for chunk in touched.chunks(1024) {
                let ids: Vec<&PointId> = chunk.iter().collect();
                let payloads = self.store.get_payloads(&ids)?;
                for (id, payload) in chunk.iter().zip(payloads) {
                    fresh.remove(id);
                    let Some(&old) = current.ids.get(id) else { continue };
                    let version = current.nodes[old as usize].as_ref().map_or(0, |(_, v)| *v);
                    let vector = current.index.get_vector(old).ok_or(EngineError::Corruption {
                        what: "shard state",
                        reason: format!("live node {old} missing from graph"),
                    })?;
                    let internal = fresh.nodes.len() as u32;
                    fresh.index.insert(internal, &vector)?;
                    fresh.ids.insert(id.clone(), internal);
                    fresh.nodes.push(Some((id.clone(), version)));
                    fresh.live.insert(internal);
                    fresh.payload_index.add(internal, payload.as_ref());
                }
            }
        }
        let mut state = self.state.write();
        *state = fresh;
        self.published.store(state.nodes.len() as u32, Ordering::Release);
        tracing::info!(shard = self.id.0, replayed = touched.len(), "rebuilt graph swapped in");
        Ok(())
    }

    /// Waits for a background rebuild, if one runs, and swaps it in.
    pub fn complete_pending_rebuild(&self) -> Result<()> {
        let mut writer = self.write_lock.lock();
        self.advance_rebuild(&mut writer, true)
    }

    // ---- reads ----

    /// Reads points by id, in request order; missing ids are left out.
    pub fn get(&self, ids: &[PointId], with_payload: bool, with_vector: bool) -> Result<Vec<Record>> {
        ids.iter().try_for_each(PointId::validate)?;
        let present: Vec<PointId> = {
            let state = self.state.read();
            ids.iter().filter(|id| state.ids.contains_key(id)).cloned().collect()
        };
        self.records(present, with_payload, with_vector)
    }

    fn records(&self, ids: Vec<PointId>, with_payload: bool, with_vector: bool) -> Result<Vec<Record>> {
        let payloads = if with_payload {
            self.store.get_payloads(&ids.iter().collect::<Vec<_>>())?
        } else {
            vec![None; ids.len()]
        };
        let mut out = Vec::with_capacity(ids.len());
        for (id, payload) in ids.into_iter().zip(payloads) {
            let vector = if with_vector {
                match self.store.get(&id)? {
                    Some(p) => Some(p.vector),
                    None => continue, // deleted meanwhile
                }
            } else {
                None
            };
            let payload = if with_payload { Some(payload.unwrap_or_default()) } else { None };
            out.push(Record { id, vector, payload });
        }
        Ok(out)
    }

    /// Live points matching `filter`, as internal ids.
    fn matching_bitmap(&self, filter: &Filter) -> Result<RoaringBitmap> {
        let nodes_of: Vec<(u32, PointId)> = {
            let state = self.state.read();
            let resolve = |id: &PointId| state.ids.get(id).copied();
            let c = state.payload_index.candidates(filter, &state.live, &resolve);
            if c.exact {
                return Ok(c.ids);
            }
            c.ids.iter().filter_map(|i| state.nodes[i as usize].as_ref().map(|(p, _)| (i, p.clone()))).collect()
        };
        // Some condition is not indexed: check the candidates' payloads directly.
        let mut out = RoaringBitmap::new();
        for chunk in nodes_of.chunks(1024) {
            let ids: Vec<&PointId> = chunk.iter().map(|(_, p)| p).collect();
            let payloads = self.store.get_payloads(&ids)?;
            for ((internal, id), payload) in chunk.iter().zip(payloads) {
                if filter.matches(id, payload.as_ref()) {
                    out.insert(*internal);
                }
            }
        }
        Ok(out)
    }

    fn matching_ids(&self, filter: &Filter) -> Result<Vec<PointId>> {
        let bitmap = self.matching_bitmap(filter)?;
        let state = self.state.read();
        Ok(bitmap.iter().filter_map(|i| state.nodes[i as usize].as_ref().map(|(p, _)| p.clone())).collect())
    }

    /// Counts live points, those matching `filter` if given.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        match filter {
            None => Ok(self.state.read().live.len()),
            Some(f) => {
                f.validate()?;
                Ok(self.matching_bitmap(f)?.len())
            }
        }
    }

    /// Pages through points in id order, from `from` (inclusive).
    pub fn scroll(
        &self,
        filter: Option<&Filter>,
        from: Option<&PointId>,
        limit: usize,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<ScrollPage> {
        if limit == 0 || limit > MAX_TOP_K {
            return Err(EngineError::invalid_argument(format!("scroll limit must be in 1..={MAX_TOP_K}")));
        }
        if let Some(f) = filter {
            f.validate()?;
        }
        let matching = filter.map(|f| self.matching_bitmap(f)).transpose()?;
        let mut ids = Vec::with_capacity(limit);
        let mut next = None;
        {
            let state = self.state.read();
            self.store.scan(from, &mut |p| {
                let Some(&internal) = state.ids.get(&p.id) else {
                    return Ok(true); // written after our snapshot of the state
                };
                if matching.as_ref().is_none_or(|m| m.contains(internal)) {
                    if ids.len() == limit {
                        next = Some(p.id);
                        return Ok(false);
                    }
                    ids.push(p.id);
                }
                Ok(true)
            })?;
        }
        Ok(ScrollPage { points: self.records(ids, with_payload, with_vector)?, next })
    }

    /// Nearest neighbours of `req.vector`, best first.
    pub fn search(&self, req: &SearchQuery) -> Result<Vec<ScoredPoint>> {
        self.search_explained(req).map(|(hits, _)| hits)
    }

    /// [`Shard::search`], also saying which plan ran.
    pub fn search_explained(&self, req: &SearchQuery) -> Result<(Vec<ScoredPoint>, SearchPlan)> {
        req.check()?;
        let mut query = req.vector.clone();
        vectron_model::vector::check_vector(&self.config, &query)?;
        if self.config.distance == Distance::Cosine {
            normalize(&mut query);
        }
        let k = req.top_k;
        let ef = req.ef.unwrap_or(64).max(k);
        let filter = req.filter.as_ref().filter(|f| !f.is_empty());
        let candidates = filter.map(|f| self.matching_bitmap(f)).transpose()?;

        let (found, plan, ids): (Vec<(u32, f32)>, SearchPlan, Vec<PointId>) = {
            let state = self.state.read();
            let published = self.published.load(Ordering::Acquire);
            // Points deleted since the candidates were computed drop out here.
            let candidates = candidates.map(|c| c & &state.live);
            let (found, plan) = match &candidates {
                None => (state.index.search(&query, k, ef, |id| id < published), SearchPlan::Hnsw),
                Some(c) => {
                    let (n, live) = (c.len() as f64, state.live.len() as f64);
                    let cheaper = n * n <= self.config.tuning.exact_scan_cost_factor * ef as f64 * live;
                    let tiny = c.len() as usize <= k.max(64);
                    if cheaper || tiny {
                        (exact_scan(&state.index, &query, c, k), SearchPlan::ExactScan)
                    } else {
                        let hits = state.index.search(&query, k, ef, |id| id < published && c.contains(id));
                        if hits.len() < k && (c.len() as usize) > hits.len() {
                            (exact_scan(&state.index, &query, c, k), SearchPlan::ExactScan)
                        } else {
                            (hits, SearchPlan::FilteredHnsw)
                        }
                    }
                }
            };
            let ids = found
                .iter()
                .map(|(i, _)| {
                    state.nodes[*i as usize].as_ref().map(|(p, _)| p.clone()).ok_or(EngineError::Corruption {
                        what: "shard state",
                        reason: format!("search returned dead node {i}"),
                    })
                })
                .collect::<Result<_>>()?;
            (found, plan, ids)
        };

        let distance = self.config.distance;
        let mut hits: Vec<(PointId, f32)> = Vec::with_capacity(found.len());
        for ((_, d), id) in found.iter().zip(ids) {
            let score = distance.score(*d);
            if req.score_threshold.is_none_or(|t| distance.passes_threshold(score, t)) {
                hits.push((id, score));
            }
        }
        let scores: Vec<f32> = hits.iter().map(|h| h.1).collect();
        let ids: Vec<PointId> = hits.into_iter().map(|h| h.0).collect();
        let need_records = req.with_payload || req.with_vector;
        let out = if need_records {
            let mut records: HashMap<PointId, Record> = self
                .records(ids.clone(), req.with_payload, req.with_vector)?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
            ids.into_iter()
                .zip(scores)
                .filter_map(|(id, score)| {
                    records.remove(&id).map(|r| ScoredPoint { id, score, vector: r.vector, payload: r.payload })
                })
                .collect()
        } else {
            ids.into_iter()
                .zip(scores)
                .map(|(id, score)| ScoredPoint { id, score, vector: None, payload: None })
                .collect()
        };
        Ok((out, plan))
    }

    // ---- persistence ----

    /// Saves the graph so the next open need not rebuild it.
    pub fn persist(&self) -> Result<()> {
        let mut writer = self.write_lock.lock();
        if writer.rebuild.as_ref().is_some_and(|j| j.handle.is_finished()) {
            self.advance_rebuild(&mut writer, true)?;
        }
        self.save_graph(writer.applied)?;
        writer.writes_since_persist = 0;
        Ok(())
    }

    fn save_graph(&self, applied: u64) -> Result<()> {
        let state = self.state.read();
        save_graph_file(&self.graph_path, applied, &state)
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

/// Exact top-k over a candidate set.
fn exact_scan(index: &Hnsw, query: &[f32], candidates: &RoaringBitmap, k: usize) -> Vec<(u32, f32)> {
    let mut heap: BinaryHeap<(OrdDist, u32)> = BinaryHeap::with_capacity(k + 1);
    index.for_each_distance(query, candidates.iter(), |id, d| {
        if heap.len() < k {
            heap.push((OrdDist(d), id));
        } else if let Some(top) = heap.peek()
            && d < top.0.0
        {
            heap.pop();
            heap.push((OrdDist(d), id));
        }
    });
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|(d, id)| (id, d.0)).collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdDist(f32);
impl Eq for OrdDist {}
impl PartialOrd for OrdDist {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdDist {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Checks one point as an upsert would (id, dimension, finite values, payload size and
/// depth), normalising a cosine vector in place.
pub fn validate_point(config: &ShardConfig, p: &mut Point) -> Result<()> {
    vectron_model::vector::check_point(config, p)?;
    if config.distance == Distance::Cosine && !normalize(&mut p.vector) {
        return Err(EngineError::Invalid(ValidationError::InvalidVector {
            reason: "zero vector has no direction for cosine".into(),
        }));
    }
    Ok(())
}

// ---- loading, rebuilding, graph files ----

const GRAPH_MAGIC: &[u8; 8] = b"VXSHARD1";

/// Builds the in-memory state from RocksDB, reusing the persisted graph where it holds.
/// Also returns how many graph nodes it had to add or drop (0 when the file was current).
fn load_state(store: &RocksPointStore, config: &ShardConfig, graph_path: &Path) -> Result<(State, usize)> {
    let persisted = match load_graph_file(graph_path, config) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(path = %graph_path.display(), error = %e, "ignoring unusable graph file; rebuilding");
            None
        }
    };
    let mut state = match persisted {
        Some((index, nodes)) => {
            let mut s = State::empty(config, 0);
            s.index = Arc::new(index);
            s.nodes = nodes;
            s
        }
        None => State::empty(config, 1024),
    };
    let by_id: HashMap<PointId, (u32, u64)> = state
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.as_ref().map(|(p, v)| (p.clone(), (i as u32, *v))))
        .collect();
    let mut keep = RoaringBitmap::new();
    let mut missing: Vec<(PointId, u64, Vec<f32>)> = Vec::new();
    store.scan(None, &mut |p| {
        match by_id.get(&p.id) {
            Some(&(internal, version)) if version == p.version && state.index.contains(internal) => {
                keep.insert(internal);
            }
            _ => missing.push((p.id, p.version, p.vector)),
        }
        Ok(true)
    })?;
    // Nodes the store no longer holds (or holds in another version) leave the graph.
    let mut reconciled = missing.len();
    for (i, n) in state.nodes.iter_mut().enumerate() {
        if !keep.contains(i as u32) {
            reconciled += n.is_some() as usize;
            *n = None;
            state.index.delete(i as u32);
        }
    }
    let first = state.nodes.len() as u32;
    state.index.reserve(first as usize + missing.len());
    let index = &state.index;
    missing.par_iter().enumerate().try_for_each(|(i, (_, _, v))| index.insert(first + i as u32, v))?;
    for (id, version, _) in missing {
        state.nodes.push(Some((id, version)));
    }
    for (i, n) in state.nodes.iter().enumerate() {
        if let Some((p, _)) = n {
            state.ids.insert(p.clone(), i as u32);
            state.live.insert(i as u32);
        }
    }
    let mut payload_index = PayloadIndexes::new(&config.payload_indexes);
    // Points without a stored payload still count for must_not / exists semantics,
    // which the live set covers.
    store.scan_payloads(&mut |id, payload| {
        if let Some(&internal) = state.ids.get(&id) {
            payload_index.add(internal, Some(&payload));
        }
        Ok(())
    })?;
    state.payload_index = payload_index;
    Ok((state, reconciled))
}

/// A fresh state holding the `live` points `(old internal id, id, version)` of
/// `old_index`, densely renumbered, with payloads read from the store.
fn rebuild_state(
    config: &ShardConfig,
    old_index: &Hnsw,
    live: &[(u32, PointId, u64)],
    store: &RocksPointStore,
) -> Result<State> {
    let mut fresh = State::empty(config, live.len());
    let index = &fresh.index;
    live.par_iter().enumerate().try_for_each(|(new, (oldi, _, _))| {
        let v = old_index.get_vector(*oldi).ok_or(EngineError::Corruption {
            what: "shard state",
            reason: format!("live node {oldi} missing from graph"),
        })?;
        index.insert(new as u32, &v)
    })?;
    for (new, (_, id, version)) in live.iter().enumerate() {
        fresh.ids.insert(id.clone(), new as u32);
        fresh.nodes.push(Some((id.clone(), *version)));
        fresh.live.insert(new as u32);
    }
    for chunk in live.chunks(1024) {
        let ids: Vec<&PointId> = chunk.iter().map(|(_, p, _)| p).collect();
        for ((_, id, _), payload) in chunk.iter().zip(store.get_payloads(&ids)?) {
            fresh.payload_index.add(fresh.ids[id], payload.as_ref());
        }
    }
    Ok(fresh)
}

/// Writes `[magic][applied][node table][graph][crc32]` to a temp file, fsyncs, renames.
fn save_graph_file(path: &Path, applied: u64, state: &State) -> Result<()> {
    let tmp = path.with_extension("graph.tmp");
    let io = |e| EngineError::io(&tmp, e);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = CrcWriter { inner: BufWriter::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
    w.write_all(GRAPH_MAGIC).map_err(io)?;
    w.write_all(&applied.to_le_bytes()).map_err(io)?;
    w.write_all(&(state.nodes.len() as u64).to_le_bytes()).map_err(io)?;
    for n in &state.nodes {
        match n {
            None => w.write_all(&u32::MAX.to_le_bytes()).map_err(io)?,
            Some((id, version)) => {
                let enc = id.encode();
                w.write_all(&(enc.len() as u32).to_le_bytes()).map_err(io)?;
                w.write_all(&enc).map_err(io)?;
                w.write_all(&version.to_le_bytes()).map_err(io)?;
            }
        }
    }
    state.index.write_to(&mut w)?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| EngineError::io(dir, e))?;
    }
    Ok(())
}

type NodeTable = Vec<Option<(PointId, u64)>>;

/// Loads a graph file if there is one that matches `config` and its checksum.
fn load_graph_file(path: &Path, config: &ShardConfig) -> Result<Option<(Hnsw, NodeTable)>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io(path, e)),
    };
    let len = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
    if len < 4 {
        return Err(EngineError::Corruption { what: "graph file", reason: "too short".into() });
    }
    // Check the checksum first, streaming, so a torn file is never parsed.
    let mut r = BufReader::with_capacity(1 << 20, &file);
    let mut crc = crc32fast::Hasher::new();
    let mut remaining = len - 4;
    let mut buf = vec![0u8; 1 << 20];
    while remaining > 0 {
        let n = remaining.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n]).map_err(|e| EngineError::io(path, e))?;
        crc.update(&buf[..n]);
        remaining -= n as u64;
    }
    let mut stored = [0u8; 4];
    r.read_exact(&mut stored).map_err(|e| EngineError::io(path, e))?;
    if crc.finalize() != u32::from_le_bytes(stored) {
        return Err(EngineError::Corruption { what: "graph file", reason: "checksum mismatch".into() });
    }

    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 20, file).take(len - 4);
    let corrupt = |reason: String| EngineError::Corruption { what: "graph file", reason };
    let read_u64 = |r: &mut dyn Read| -> Result<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map_err(|e| corrupt(e.to_string()))?;
        Ok(u64::from_le_bytes(b))
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| corrupt(e.to_string()))?;
    if &magic != GRAPH_MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let _applied = read_u64(&mut r)?;
    let count = read_u64(&mut r)?;
    if count > u32::MAX as u64 {
        return Err(corrupt(format!("{count} nodes")));
    }
    let mut nodes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(|e| corrupt(e.to_string()))?;
        let n = u32::from_le_bytes(b);
        if n == u32::MAX {
            nodes.push(None);
            continue;
        }
        if n as usize > crate::types::MAX_STRING_ID_BYTES + 1 {
            return Err(corrupt(format!("id of {n} bytes")));
        }
        let mut enc = vec![0u8; n as usize];
        r.read_exact(&mut enc).map_err(|e| corrupt(e.to_string()))?;
        let version = read_u64(&mut r)?;
        nodes.push(Some((PointId::decode(&enc).map_err(EngineError::corrupt_point_id)?, version)));
    }
    let index = Hnsw::read_from(&mut r)?;
    if index.dim() != config.dimension || index.distance() != config.distance {
        return Err(corrupt("graph does not match the shard config".into()));
    }
    if index.id_bound() > nodes.len() {
        return Err(corrupt("graph has nodes the node table lacks".into()));
    }
    Ok(Some((index, nodes)))
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
