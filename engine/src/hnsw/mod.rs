//! Our HNSW graph (Malkov & Yashunin), laid out like hnswlib for speed.
//!
//! Layout: every node owns one fixed-size block of 32-bit words in a single flat array,
//! `[link count][2·m neighbour ids][vector as f32 bits]`, so that visiting a node touches
//! one contiguous region (its level-0 links and its vector). Nodes on upper levels keep
//! `[count][m ids]` per level in a separate small allocation.
//!
//! Concurrency: inserts and searches run in parallel through `&self`. Link words are
//! atomics written with release and read with acquire stores/loads (plain moves on
//! x86-64), so a search may see a neighbour list mid-update but always sees valid,
//! fully written nodes. A per-node mutex serialises writers of one node's lists; an
//! inserting node holds its own for the whole insert and is marked *pending*, and an
//! insert's search that is about to expand a pending node waits for it (hnswlib locks
//! every node its construction searches expand; we pay only for pending ones). Without
//! that wait an insert could start a lower level from a node whose lower lists are still
//! empty and end up nearly isolated. A global mutex is taken only by an insert that
//! raises the top level. The arrays grow under a write lock that searches and inserts
//! hold for reading.
//!
//! Deletes are tombstones: a deleted node keeps routing searches but never appears in
//! results. The owner rebuilds the graph when tombstones pile up.
//!
//! Layout: [`layout`] (the node blocks and accessors), [`scorer`] (the seam graph walks
//! ask for distances), [`search`] (the walks), [`build`] (inserts), [`cut`] (a fixed
//! view of the graph that a save writes while inserts go on), [`persist`] (the graph
//! file), `visited` (pooled visited sets).

mod build;
mod cut;
mod layout;
mod persist;
mod scorer;
mod search;
mod visited;

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

use parking_lot::{Mutex, RwLock};

use crate::distance::Metric;
use crate::types::{Distance, HnswParams};
pub use cut::GraphCut;
use layout::Graph;
use visited::VisitedPool;

/// Level byte of an id that holds no node.
const NO_NODE: u8 = 0x7F;
/// Bit set in a node's level byte while its insert is still linking it.
const PENDING: u8 = 0x80;
/// Highest level a node can get; with m ≥ 2 reaching it is practically impossible.
const MAX_LEVEL: usize = 16;
/// `entry_point` value of an empty graph.
const NO_ENTRY: u64 = u64::MAX;

/// A (distance, id) pair ordered by distance; the max-heap of results pops the farthest.
#[derive(Clone, Copy, Debug)]
struct Far(f32, u32);
impl PartialEq for Far {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Far {}
impl PartialOrd for Far {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Far {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Reversed [`Far`]: the candidate min-heap pops the nearest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Near(Far);
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.cmp(&self.0)
    }
}

impl Far {
    fn into_pair(self) -> (u32, f32) {
        (self.1, self.0)
    }
}

/// Result of [`Hnsw::connectivity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connectivity {
    /// Nodes with no incoming level-0 link (other than the entry point).
    pub orphans: usize,
    /// Nodes not reachable on level 0 from the entry point.
    pub unreachable: usize,
}

/// An HNSW index over vectors identified by dense `u32` ids chosen by the caller.
pub struct Hnsw {
    metric: Metric,
    dim: usize,
    /// Links per node on upper levels.
    m: usize,
    /// Links per node on level 0 (2·m, as in the paper and hnswlib).
    m0: usize,
    ef_construction: usize,
    /// 1/ln(m): scales the exponential level distribution.
    level_mult: f64,
    words_per_node: usize,
    graph: RwLock<Graph>,
    /// Held by an insert whose level may exceed the current top level.
    raise_lock: Mutex<()>,
    /// Entry node and top level packed as `level << 32 | id`, or `NO_ENTRY`.
    entry_point: AtomicU64,
    /// State of the level generator (splitmix64), seeded for reproducible builds.
    rng: AtomicU64,
    /// Nodes inserted, deleted or not.
    nodes: AtomicUsize,
    /// Nodes tombstoned.
    deleted: AtomicUsize,
    /// One past the highest id inserted.
    id_bound: AtomicUsize,
    visited: VisitedPool,
    /// The open cut's record of changed lists, if a save is running; `cutting` says
    /// whether there is one without taking the lock.
    cut: RwLock<Option<Arc<cut::CutChanges>>>,
    cutting: AtomicBool,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("dim", &self.dim)
            .field("m", &self.m)
            .field("nodes", &self.len())
            .field("deleted", &self.deleted_count())
            .finish()
    }
}

impl Hnsw {
    /// Creates an empty index. `distance` picks the kernel; cosine expects callers to
    /// insert and query with unit vectors.
    pub fn new(dim: usize, distance: Distance, params: HnswParams, capacity: usize) -> Self {
        let m = params.m.max(2);
        let m0 = 2 * m;
        let words_per_node = 1 + m0 + dim;
        let capacity = capacity.max(16);
        Hnsw {
            metric: Metric::new(distance),
            dim,
            m,
            m0,
            ef_construction: params.ef_construction.max(1),
            level_mult: 1.0 / (m as f64).ln(),
            words_per_node,
            graph: RwLock::new(Graph::new(capacity, words_per_node)),
            raise_lock: Mutex::new(()),
            entry_point: AtomicU64::new(NO_ENTRY),
            rng: AtomicU64::new(0x005E_ED0F_4E55),
            nodes: AtomicUsize::new(0),
            deleted: AtomicUsize::new(0),
            id_bound: AtomicUsize::new(0),
            visited: VisitedPool::default(),
            cut: RwLock::new(None),
            cutting: AtomicBool::new(false),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn distance(&self) -> Distance {
        self.metric.kind()
    }

    /// Nodes in the graph, tombstoned ones included.
    pub fn len(&self) -> usize {
        self.nodes.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn deleted_count(&self) -> usize {
        self.deleted.load(Relaxed)
    }

    /// One past the highest id ever inserted.
    pub fn id_bound(&self) -> usize {
        self.id_bound.load(Acquire)
    }

    fn entry(&self) -> Option<(u32, usize)> {
        match self.entry_point.load(Acquire) {
            NO_ENTRY => None,
            packed => Some((packed as u32, (packed >> 32) as usize)),
        }
    }

    fn set_entry(&self, id: u32, level: usize) {
        self.entry_point.store(((level as u64) << 32) | id as u64, Release);
    }

    /// Marks `id` deleted: it stays in the graph for routing but leaves results.
    /// Returns false if it was absent or already deleted.
    pub fn delete(&self, id: u32) -> bool {
        let g = self.graph.read();
        if !Self::exists(&g, id) {
            return false;
        }
        let bit = 1u64 << (id % 64);
        let prev = g.tombstones[id as usize / 64].fetch_or(bit, AcqRel);
        let newly = prev & bit == 0;
        if newly {
            self.deleted.fetch_add(1, Relaxed);
        }
        newly
    }

    /// Whether `id` is in the graph and not deleted.
    pub fn contains(&self, id: u32) -> bool {
        let g = self.graph.read();
        Self::exists(&g, id) && !Self::is_deleted(&g, id)
    }

    /// The stored vector of node `id`.
    pub fn get_vector(&self, id: u32) -> Option<Vec<f32>> {
        let g = self.graph.read();
        if !Self::exists(&g, id) {
            return None;
        }
        Some(self.vector(&g, id).to_vec())
    }

    /// How well connected level 0 is: nodes no other node links to, and nodes a walk
    /// from the entry point cannot reach. Both should be 0. O(nodes · 2m).
    pub fn connectivity(&self) -> Connectivity {
        let g = self.graph.read();
        let bound = self.id_bound();
        let mut in_degree = vec![0u32; bound];
        for id in 0..bound as u32 {
            if Self::exists(&g, id) {
                let list = self.links(&g, id, 0);
                let count = (list[0].load(Acquire) as usize).min(self.m0);
                for slot in &list[1..=count] {
                    in_degree[slot.load(Relaxed) as usize] += 1;
                }
            }
        }
        let mut reached = vec![false; bound];
        let mut stack: Vec<u32> = self.entry().map(|(ep, _)| ep).into_iter().collect();
        stack.iter().for_each(|&ep| reached[ep as usize] = true);
        while let Some(id) = stack.pop() {
            let list = self.links(&g, id, 0);
            let count = (list[0].load(Acquire) as usize).min(self.m0);
            for slot in &list[1..=count] {
                let n = slot.load(Relaxed) as usize;
                if !reached[n] {
                    reached[n] = true;
                    stack.push(n as u32);
                }
            }
        }
        let nodes = (0..bound as u32).filter(|&id| Self::exists(&g, id));
        let (mut orphans, mut unreachable) = (0, 0);
        for id in nodes {
            orphans += (in_degree[id as usize] == 0 && self.entry().is_some_and(|(ep, _)| ep != id)) as usize;
            unreachable += !reached[id as usize] as usize;
        }
        Connectivity { orphans, unreachable }
    }

    fn ensure_capacity(&self, needed: usize) {
        if needed <= self.graph.read().capacity {
            return;
        }
        let mut g = self.graph.write();
        if needed > g.capacity {
            let cap = needed.max(g.capacity * 2);
            *g = g.grown(cap, self.words_per_node);
        }
    }

    /// Makes room for ids below `capacity` up front (avoids regrowth during bulk loads).
    pub fn reserve(&self, capacity: usize) {
        self.ensure_capacity(capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidationError;
    use crate::error::EngineError;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect()).collect()
    }

    fn brute_force(metric: &Metric, data: &[Vec<f32>], live: &dyn Fn(u32) -> bool, q: &[f32], k: usize) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> =
            (0..data.len() as u32).filter(|&i| live(i)).map(|i| (metric.distance(q, &data[i as usize]), i)).collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    fn recall(index: &Hnsw, data: &[Vec<f32>], queries: &[Vec<f32>], k: usize, ef: usize) -> f64 {
        let metric = Metric::new(index.distance());
        let mut hits = 0;
        for q in queries {
            let truth = brute_force(&metric, data, &|i| index.contains(i), q, k);
            let got: Vec<u32> = index.search(q, k, ef, |_| true).into_iter().map(|x| x.0).collect();
            hits += truth.iter().filter(|t| got.contains(t)).count();
        }
        hits as f64 / (queries.len() * k) as f64
    }

    #[test]
    fn high_recall_against_brute_force_for_every_distance() {
        for distance in [Distance::Euclid, Distance::Cosine, Distance::Dot] {
            let mut data = random_vectors(2000, 16, 1);
            let mut queries = random_vectors(50, 16, 2);
            if distance == Distance::Cosine {
                data.iter_mut().chain(queries.iter_mut()).for_each(|v| {
                    crate::distance::normalize(v);
                });
            }
            let index = Hnsw::new(16, distance, HnswParams { m: 12, ef_construction: 100 }, 10);
            for (i, v) in data.iter().enumerate() {
                index.insert(i as u32, v).unwrap();
            }
            let r = recall(&index, &data, &queries, 10, 100);
            assert!(r >= 0.95, "{distance:?}: recall {r}");
        }
    }

    #[test]
    fn concurrent_inserts_build_a_searchable_graph() {
        let data = random_vectors(3000, 24, 3);
        let index = Hnsw::new(24, Distance::Euclid, HnswParams { m: 16, ef_construction: 100 }, 16);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (index, data) = (&index, &data);
                s.spawn(move || {
                    for i in (t..data.len()).step_by(4) {
                        index.insert(i as u32, &data[i]).unwrap();
                    }
                });
            }
        });
        assert_eq!(index.len(), 3000);
        // Every node is reachable: it finds itself.
        for (i, v) in data.iter().enumerate() {
            let hit = index.search(v, 1, 64, |_| true);
            assert_eq!(hit[0].0, i as u32, "node {i} did not find itself");
        }
        let queries = random_vectors(50, 24, 4);
        assert!(recall(&index, &data, &queries, 10, 128) >= 0.95);
    }

    #[test]
    fn deleted_nodes_never_appear_and_recall_holds() {
        let data = random_vectors(2000, 16, 5);
        let index = Hnsw::new(16, Distance::Euclid, HnswParams::default(), 0);
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u32, v).unwrap();
        }
        for i in (0..2000).step_by(3) {
            assert!(index.delete(i));
        }
        assert!(!index.delete(0), "second delete is a no-op");
        assert_eq!(index.deleted_count(), 667);
        let queries = random_vectors(50, 16, 6);
        for q in &queries {
            for (id, _) in index.search(q, 10, 64, |_| true) {
                assert_ne!(id % 3, 0, "deleted node {id} returned");
            }
        }
        assert!(recall(&index, &data, &queries, 10, 128) >= 0.95);
    }

    #[test]
    fn filter_restricts_results() {
        let data = random_vectors(1000, 8, 7);
        let index = Hnsw::new(8, Distance::Euclid, HnswParams::default(), 0);
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u32, v).unwrap();
        }
        let metric = Metric::new(Distance::Euclid);
        for q in random_vectors(20, 8, 8) {
            let got: Vec<u32> = index.search(&q, 5, 200, |id| id % 2 == 0).into_iter().map(|x| x.0).collect();
            let want = brute_force(&metric, &data, &|i| i % 2 == 0, &q, 5);
            assert!(got.iter().all(|id| id % 2 == 0));
            assert!(want.iter().filter(|w| got.contains(w)).count() >= 4);
        }
    }

    #[test]
    fn rejects_wrong_dimension_and_duplicate_ids() {
        let index = Hnsw::new(4, Distance::Euclid, HnswParams::default(), 0);
        assert!(matches!(
            index.insert(0, &[1.0, 2.0]),
            Err(EngineError::Invalid(ValidationError::DimensionMismatch { expected: 4, got: 2 }))
        ));
        index.insert(0, &[1.0; 4]).unwrap();
        assert!(index.insert(0, &[1.0; 4]).is_err());
        assert!(index.search(&[1.0; 3], 1, 10, |_| true).is_empty());
    }

    /// Slow to take each write, so inserts overlap the save.
    struct SlowWriter(Vec<u8>);
    impl std::io::Write for SlowWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(15));
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_cut_is_written_as_it_was_while_inserts_and_deletes_go_on() {
        let data = random_vectors(14_000, 8, 11);
        let index = Arc::new(Hnsw::new(8, Distance::Euclid, HnswParams { m: 8, ef_construction: 32 }, 0));
        for (i, v) in data[..10_000].iter().enumerate() {
            index.insert(i as u32, v).unwrap();
        }
        index.delete(3);
        let mut at_cut = Vec::new();
        index.write_to(&mut at_cut).unwrap();

        let cut = index.cut(10_000).unwrap();
        assert!(index.cut(10_000).is_err(), "one cut at a time");
        let mut saved = SlowWriter(Vec::new());
        std::thread::scope(|s| {
            for t in 0..2 {
                let (index, data) = (&index, &data);
                s.spawn(move || {
                    for i in (10_000 + t..data.len()).step_by(2) {
                        index.insert(i as u32, &data[i]).unwrap();
                        index.delete((i - 10_000) as u32 * 2);
                    }
                });
            }
            cut.write_to(&mut saved).unwrap();
        });
        let changed = cut.changed_nodes();
        drop(cut);
        assert!(changed > 1000, "the inserts changed only {changed} of the cut's nodes: the test raced nothing");
        assert!(saved.0 == at_cut, "the save differs from the graph at the cut");
        let mut now = Vec::new();
        index.write_to(&mut now).unwrap();
        assert!(now != at_cut);
        let back = Hnsw::read_from(&mut now.as_slice(), now.len() as u64).unwrap();
        assert_eq!((back.len(), back.deleted_count()), (14_000, 4001));
    }

    #[test]
    fn persisted_graph_answers_like_the_original() {
        let data = random_vectors(1500, 12, 9);
        let index = Arc::new(Hnsw::new(12, Distance::Dot, HnswParams { m: 8, ef_construction: 64 }, 0));
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u32 * 2, v).unwrap(); // sparse ids leave holes
        }
        index.delete(10);
        let mut buf = Vec::new();
        index.write_to(&mut buf).unwrap();
        let back = Hnsw::read_from(&mut buf.as_slice(), buf.len() as u64).unwrap();
        assert_eq!((back.len(), back.deleted_count()), (1500, 1));
        for q in random_vectors(20, 12, 10) {
            assert_eq!(index.search(&q, 10, 50, |_| true), back.search(&q, 10, 50, |_| true));
        }
        // Inserting after reload keeps working.
        back.insert(5, &data[0]).unwrap();
        assert_eq!(back.search(&data[0], 2, 50, |_| true).len(), 2);

        let mut truncated = buf.clone();
        truncated.truncate(buf.len() / 2);
        assert!(Hnsw::read_from(&mut truncated.as_slice(), u64::MAX).is_err());
        let mut garbled = buf;
        let link_word = 8 + 72 + 3000 + 4 * 5; // inside node 0's level-0 links
        garbled[link_word..link_word + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Hnsw::read_from(&mut garbled.as_slice(), u64::MAX).is_err());
    }
}
