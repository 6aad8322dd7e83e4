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

mod visited;

use crate::ValidationError;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

use parking_lot::{Mutex, RwLock};

use crate::distance::Metric;
use crate::error::{EngineError, Result};
use crate::types::{Distance, HnswParams};
use visited::{VisitedPool, VisitedSet};

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

/// The growable arrays of the graph. Replaced wholesale when capacity runs out.
struct Graph {
    capacity: usize,
    /// `capacity` blocks of `words_per_node` words: count, level-0 links, vector.
    level0: Box<[AtomicU32]>,
    /// Per node: `level` lists of `[count][m ids]` for levels 1..=level.
    upper: Box<[OnceLock<Box<[AtomicU32]>>]>,
    /// Per node: its top level (with `PENDING` while inserting), or `NO_NODE`.
    levels: Box<[AtomicU8]>,
    /// Per node: serialises writers of its neighbour lists.
    locks: Box<[Mutex<()>]>,
    /// One bit per node: deleted.
    tombstones: Box<[AtomicU64]>,
    /// Per node: how many level-0 lists name it. A prune that drops it to 0 orphans
    /// the node (no search can reach it), and the insert re-adopts it.
    in_degree: Box<[AtomicU32]>,
}

/// Allocates `n` zeroed atomics cheaply (calloc'd pages, no per-element loop).
fn zeroed_atomics(n: usize) -> Box<[AtomicU32]> {
    let v = std::mem::ManuallyDrop::new(vec![0u32; n]);
    // SAFETY: AtomicU32 has the same size, alignment and bit validity as u32; the
    // allocation is handed over whole, with the same length and capacity.
    unsafe { Vec::from_raw_parts(v.as_ptr() as *mut AtomicU32, v.len(), v.capacity()) }.into_boxed_slice()
}

impl Graph {
    fn new(capacity: usize, words_per_node: usize) -> Self {
        Graph {
            capacity,
            level0: zeroed_atomics(capacity * words_per_node),
            upper: (0..capacity).map(|_| OnceLock::new()).collect(),
            levels: (0..capacity).map(|_| AtomicU8::new(NO_NODE)).collect(),
            locks: (0..capacity).map(|_| Mutex::new(())).collect(),
            tombstones: (0..capacity.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            in_degree: zeroed_atomics(capacity),
        }
    }

    /// Copies this graph into a larger one. Needs exclusive access (no concurrent writers).
    fn grown(&mut self, capacity: usize, words_per_node: usize) -> Graph {
        let new = Graph::new(capacity, words_per_node);
        for (dst, src) in new.level0.iter().zip(self.level0.iter()) {
            dst.store(src.load(Relaxed), Relaxed);
        }
        let mut upper = new.upper;
        for (dst, src) in upper.iter_mut().zip(self.upper.iter_mut()) {
            *dst = std::mem::take(src);
        }
        for (dst, src) in new.levels.iter().zip(self.levels.iter()) {
            dst.store(src.load(Relaxed), Relaxed);
        }
        for (dst, src) in new.tombstones.iter().zip(self.tombstones.iter()) {
            dst.store(src.load(Relaxed), Relaxed);
        }
        for (dst, src) in new.in_degree.iter().zip(self.in_degree.iter()) {
            dst.store(src.load(Relaxed), Relaxed);
        }
        Graph { upper, ..new }
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

    // ---- node accessors (all take the graph the caller has locked) ----

    #[inline]
    fn block_start(&self, id: u32) -> usize {
        id as usize * self.words_per_node
    }

    /// The `[count][ids…]` list of `id` on `level`.
    #[inline]
    fn links<'g>(&self, g: &'g Graph, id: u32, level: usize) -> &'g [AtomicU32] {
        if level == 0 {
            let s = self.block_start(id);
            &g.level0[s..s + 1 + self.m0]
        } else {
            let lists = g.upper[id as usize].get().expect("node has upper levels");
            let s = (level - 1) * (1 + self.m);
            &lists[s..s + 1 + self.m]
        }
    }

    #[inline]
    fn vector<'g>(&self, g: &'g Graph, id: u32) -> &'g [f32] {
        let s = self.block_start(id) + 1 + self.m0;
        let words = &g.level0[s..s + self.dim];
        // SAFETY: AtomicU32 and f32 have the same size and alignment. A node's vector
        // words are written once, before the node is published to any other thread
        // (release stores of its id), and never again; readers reach the node only
        // through acquire loads of its id, so they see the completed words.
        unsafe { std::slice::from_raw_parts(words.as_ptr() as *const f32, self.dim) }
    }

    #[inline]
    fn exists(g: &Graph, id: u32) -> bool {
        (id as usize) < g.capacity && g.levels[id as usize].load(Acquire) != NO_NODE
    }

    /// During construction: waits until `id`'s insert has finished linking it, so its
    /// lists are complete before they are expanded.
    #[inline]
    fn wait_if_pending(g: &Graph, id: u32) {
        if g.levels[id as usize].load(Acquire) & PENDING != 0 {
            drop(g.locks[id as usize].lock());
        }
    }

    #[inline]
    fn is_deleted(g: &Graph, id: u32) -> bool {
        g.tombstones[id as usize / 64].load(Relaxed) & (1 << (id % 64)) != 0
    }

    #[inline]
    fn dist(&self, g: &Graph, q: &[f32], id: u32) -> f32 {
        self.metric.distance(q, self.vector(g, id))
    }

    #[inline]
    fn prefetch_node(&self, g: &Graph, id: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p = g.level0.as_ptr().wrapping_add(self.block_start(id) + 1 + self.m0) as *const i8;
            // SAFETY: prefetch is a hint; it never faults, whatever the address.
            unsafe {
                _mm_prefetch(p, _MM_HINT_T0);
                _mm_prefetch(p.wrapping_add(64), _MM_HINT_T0);
            }
        }
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

    fn random_level(&self) -> usize {
        // splitmix64 step on a shared counter: cheap, lock-free, reproducible when
        // inserts are sequential.
        let mut z = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        ((-u.ln() * self.level_mult) as usize).min(MAX_LEVEL)
    }

    // ---- search primitives ----

    /// Greedy walk on `level` from `(cur, cur_d)` to the closest node it can reach.
    /// `BUILDING`: called by an insert (waits on pending nodes).
    fn greedy_closest<const BUILDING: bool>(
        &self,
        g: &Graph,
        q: &[f32],
        mut cur: u32,
        mut cur_d: f32,
        level: usize,
    ) -> (u32, f32) {
        loop {
            if BUILDING {
                Self::wait_if_pending(g, cur);
            }
            let mut changed = false;
            let list = self.links(g, cur, level);
            let count = (list[0].load(Acquire) as usize).min(list.len() - 1);
            for slot in &list[1..=count] {
                let n = slot.load(Acquire);
                // A query never descends into a node still being inserted: its lower
                // lists may be empty, and the search would start from a dead end.
                if !BUILDING && g.levels[n as usize].load(Acquire) & PENDING != 0 {
                    continue;
                }
                let d = self.dist(g, q, n);
                if d < cur_d {
                    cur = n;
                    cur_d = d;
                    changed = true;
                }
            }
            if !changed {
                return (cur, cur_d);
            }
        }
    }

    /// Best-first search on one level (Algorithm 2 of the paper, as hnswlib runs it).
    /// Nodes for which `accept` is false are walked through but never returned. Returns
    /// up to `ef` accepted nodes as a max-heap by distance. `BUILDING`: called by an
    /// insert (waits on pending nodes before expanding them).
    // The hot loop: everything it needs is passed in so it inlines into each caller.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn search_level<const BUILDING: bool, F: Fn(u32) -> bool>(
        &self,
        g: &Graph,
        q: &[f32],
        entry: (u32, f32),
        ef: usize,
        level: usize,
        visited: &mut VisitedSet,
        accept: F,
    ) -> BinaryHeap<Far> {
        // Sized for the common case; never more than the graph could fill.
        let cap = ef.min(self.len()) + 1;
        let mut results: BinaryHeap<Far> = BinaryHeap::with_capacity(cap);
        let mut candidates: BinaryHeap<Near> = BinaryHeap::with_capacity(cap * 2);
        let (ep, ep_d) = entry;
        visited.insert(ep);
        let mut bound = f32::INFINITY;
        if accept(ep) {
            results.push(Far(ep_d, ep));
            bound = ep_d;
        }
        candidates.push(Near(Far(ep_d, ep)));

        while let Some(Near(Far(d, id))) = candidates.pop() {
            if d > bound && results.len() >= ef {
                break;
            }
            if BUILDING {
                Self::wait_if_pending(g, id);
            }
            let list = self.links(g, id, level);
            let count = (list[0].load(Acquire) as usize).min(list.len() - 1);
            let neighbours = &list[1..=count];
            // PERF: prefetch the first neighbour's block and visited mark, then each
            // next one while computing the current distance (hnswlib's trick): the
            // random memory access is the cost, not the arithmetic.
            if let Some(first) = neighbours.first() {
                let n = first.load(Relaxed);
                self.prefetch_node(g, n);
                prefetch_read(visited.slot_ptr(n));
            }
            for (i, slot) in neighbours.iter().enumerate() {
                if let Some(next) = neighbours.get(i + 1) {
                    let nn = next.load(Relaxed);
                    self.prefetch_node(g, nn);
                    prefetch_read(visited.slot_ptr(nn));
                }
                let n = slot.load(Acquire);
                if !visited.insert(n) {
                    continue;
                }
                let nd = self.dist(g, q, n);
                if results.len() < ef || nd < bound {
                    candidates.push(Near(Far(nd, n)));
                    if accept(n) {
                        results.push(Far(nd, n));
                        if results.len() > ef {
                            results.pop();
                        }
                        if let Some(top) = results.peek() {
                            bound = top.0;
                        }
                    }
                }
            }
        }
        results
    }

    /// hnswlib's neighbour selection heuristic: walk candidates nearest first and keep
    /// one only if it is closer to the base than to every kept one. Keeps the graph
    /// navigable across clusters. `candidates` must be sorted nearest first.
    fn select_neighbours(&self, g: &Graph, candidates: &[Far], max: usize) -> Vec<Far> {
        if candidates.len() <= max {
            return candidates.to_vec();
        }
        let mut kept: Vec<Far> = Vec::with_capacity(max);
        for &c in candidates {
            if kept.len() >= max {
                break;
            }
            let cv = self.vector(g, c.1);
            let good = kept.iter().all(|k| self.metric.distance(cv, self.vector(g, k.1)) >= c.0);
            if good {
                kept.push(c);
            }
        }
        kept
    }

    /// Links `id` to `neighbours` on `level` and each of them back to `id`, pruning a
    /// neighbour's list with the heuristic when it is full. The caller holds `id`'s lock.
    /// Level-0 nodes that a prune left with no incoming link are added to `orphans`.
    fn connect(&self, g: &Graph, id: u32, level: usize, neighbours: &[Far], orphans: &mut Vec<u32>) {
        {
            let list = self.links(g, id, level);
            for (slot, n) in list[1..].iter().zip(neighbours) {
                slot.store(n.1, Release);
                if level == 0 {
                    g.in_degree[n.1 as usize].fetch_add(1, Relaxed);
                }
            }
            list[0].store(neighbours.len() as u32, Release);
        }
        let cap = if level == 0 { self.m0 } else { self.m };
        for n in neighbours {
            let other = n.1;
            if other == id {
                continue;
            }
            let _lock = g.locks[other as usize].lock();
            let list = self.links(g, other, level);
            let count = list[0].load(Acquire) as usize;
            if list[1..=count].iter().any(|s| s.load(Relaxed) == id) {
                continue;
            }
            if count < cap {
                list[count + 1].store(id, Release);
                list[0].store(count as u32 + 1, Release);
                if level == 0 {
                    g.in_degree[id as usize].fetch_add(1, Relaxed);
                }
                continue;
            }
            let ov = self.vector(g, other);
            let mut cands: Vec<Far> = Vec::with_capacity(count + 1);
            cands.push(Far(n.0, id));
            for s in &list[1..=count] {
                let x = s.load(Relaxed);
                cands.push(Far(self.metric.distance(ov, self.vector(g, x)), x));
            }
            cands.sort_unstable();
            let kept = self.select_neighbours(g, &cands, cap);
            for (slot, k) in list[1..].iter().zip(&kept) {
                slot.store(k.1, Release);
            }
            list[0].store(kept.len() as u32, Release);
            if level == 0 {
                for c in &cands {
                    let was_linked = c.1 != id;
                    let is_linked = kept.iter().any(|k| k.1 == c.1);
                    if is_linked && !was_linked {
                        g.in_degree[c.1 as usize].fetch_add(1, Relaxed);
                    } else if was_linked && !is_linked && g.in_degree[c.1 as usize].fetch_sub(1, Relaxed) == 1 {
                        orphans.push(c.1);
                    }
                }
            }
        }
    }

    /// Gives an orphaned node an incoming level-0 link again: from the nearest of its
    /// own neighbours, appended if there is room, else replacing that neighbour's
    /// farthest link whose target keeps another incoming link. Called holding no node
    /// lock (it takes one at a time).
    fn adopt(&self, g: &Graph, orphan: u32) {
        if g.in_degree[orphan as usize].load(Relaxed) > 0 || self.entry().is_some_and(|(ep, _)| ep == orphan) {
            return;
        }
        let own = self.links(g, orphan, 0);
        let v = self.vector(g, orphan);
        let count = (own[0].load(Acquire) as usize).min(self.m0);
        let mut parents: Vec<Far> = own[1..=count]
            .iter()
            .map(|s| s.load(Acquire))
            .map(|p| Far(self.metric.distance(v, self.vector(g, p)), p))
            .collect();
        parents.sort_unstable();
        for Far(_, parent) in parents {
            let _lock = g.locks[parent as usize].lock();
            let list = self.links(g, parent, 0);
            let count = list[0].load(Acquire) as usize;
            if list[1..=count].iter().any(|s| s.load(Relaxed) == orphan) {
                return; // someone linked it meanwhile
            }
            if count < self.m0 {
                list[count + 1].store(orphan, Release);
                list[0].store(count as u32 + 1, Release);
                g.in_degree[orphan as usize].fetch_add(1, Relaxed);
                return;
            }
            let pv = self.vector(g, parent);
            let victim = list[1..=count]
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.load(Relaxed)))
                .filter(|(_, x)| g.in_degree[*x as usize].load(Relaxed) > 1)
                .max_by(|a, b| {
                    self.metric
                        .distance(pv, self.vector(g, a.1))
                        .total_cmp(&self.metric.distance(pv, self.vector(g, b.1)))
                });
            if let Some((slot, x)) = victim {
                list[slot + 1].store(orphan, Release);
                g.in_degree[x as usize].fetch_sub(1, Relaxed);
                g.in_degree[orphan as usize].fetch_add(1, Relaxed);
                return;
            }
        }
    }

    // ---- public operations ----

    /// Inserts `vector` under `id`, which must not be in the graph yet (a replaced
    /// vector gets a new id; the old one is deleted). Safe to call from many threads.
    pub fn insert(&self, id: u32, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(EngineError::Invalid(ValidationError::DimensionMismatch {
                expected: self.dim,
                got: vector.len(),
            }));
        }
        self.ensure_capacity(id as usize + 1);
        let g = self.graph.read();
        if g.levels[id as usize].load(Acquire) != NO_NODE {
            return Err(EngineError::invalid_argument(format!("index node {id} already exists")));
        }
        let level = self.random_level();

        // Write the node privately: nobody can reach it until it is linked.
        let s = self.block_start(id) + 1 + self.m0;
        for (w, x) in g.level0[s..s + self.dim].iter().zip(vector) {
            w.store(x.to_bits(), Relaxed);
        }
        if level > 0 {
            let lists = zeroed_atomics(level * (1 + self.m));
            if g.upper[id as usize].set(lists).is_err() {
                return Err(EngineError::invalid_argument(format!("index node {id} already exists")));
            }
        }
        // Held until the node is fully linked: writers of its lists wait for it.
        let own = g.locks[id as usize].lock();
        g.levels[id as usize].store(level as u8 | PENDING, Release);
        self.nodes.fetch_add(1, Relaxed);
        self.id_bound.fetch_max(id as usize + 1, AcqRel);

        // An insert that may raise the top level holds the raise lock throughout, so
        // the entry point only ever moves to a fully linked node.
        let mut raise_guard = None;
        let mut entry = self.entry();
        if entry.is_none_or(|(_, top)| level > top) {
            raise_guard = Some(self.raise_lock.lock());
            entry = self.entry();
        }
        let Some((ep, top)) = entry else {
            g.levels[id as usize].store(level as u8, Release);
            self.set_entry(id, level);
            return Ok(());
        };

        let q = self.vector(&g, id);
        let mut cur = (ep, self.dist(&g, q, ep));
        for lc in (level + 1..=top).rev() {
            cur = self.greedy_closest::<true>(&g, q, cur.0, cur.1, lc);
        }
        let mut orphans = Vec::new();
        for lc in (0..=level.min(top)).rev() {
            let mut visited = self.visited.get(g.capacity);
            visited.insert(id);
            let found = self.search_level::<true, _>(&g, q, cur, self.ef_construction, lc, &mut visited, |n| n != id);
            self.visited.put(visited);
            let sorted = found.into_sorted_vec();
            let neighbours = self.select_neighbours(&g, &sorted, self.m);
            self.connect(&g, id, lc, &neighbours, &mut orphans);
            if let Some(nearest) = sorted.first() {
                cur = nearest.into_pair();
            }
        }
        g.levels[id as usize].store(level as u8, Release);
        drop(own);
        if level > top {
            self.set_entry(id, level);
        }
        drop(raise_guard);
        // Every neighbour may have pruned the new node right away.
        orphans.push(id);
        for orphan in orphans {
            self.adopt(&g, orphan);
        }
        Ok(())
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

    /// The `k` nearest live nodes for which `accept` holds, nearest first, as
    /// `(id, internal distance)`. `ef` (raised to `k`) trades speed for recall.
    pub fn search<F: Fn(u32) -> bool>(&self, query: &[f32], k: usize, ef: usize, accept: F) -> Vec<(u32, f32)> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let g = self.graph.read();
        let Some((ep, top)) = self.entry() else {
            return Vec::new();
        };
        let mut cur = (ep, self.dist(&g, query, ep));
        for level in (1..=top).rev() {
            cur = self.greedy_closest::<false>(&g, query, cur.0, cur.1, level);
        }
        let mut visited = self.visited.get(g.capacity);
        let ef = ef.max(k);
        let found = if self.deleted_count() == 0 {
            self.search_level::<false, _>(&g, query, cur, ef, 0, &mut visited, accept)
        } else {
            self.search_level::<false, _>(&g, query, cur, ef, 0, &mut visited, |id| {
                !Self::is_deleted(&g, id) && accept(id)
            })
        };
        self.visited.put(visited);
        let mut out: Vec<(u32, f32)> = found.into_sorted_vec().into_iter().map(|f| (f.1, f.0)).collect();
        out.truncate(k);
        out
    }

    /// Calls `f` with the distance from `query` to every listed id that exists, under
    /// one read lock (used by exact scans).
    pub fn for_each_distance(&self, query: &[f32], ids: impl Iterator<Item = u32>, mut f: impl FnMut(u32, f32)) {
        let g = self.graph.read();
        for id in ids {
            if Self::exists(&g, id) {
                f(id, self.dist(&g, query, id));
            }
        }
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

    // ---- persistence ----

    const MAGIC: &'static [u8; 8] = b"VXHNSW01";

    /// Writes the whole graph. The caller must keep writers out while it runs.
    pub fn write_to(&self, w: &mut dyn Write) -> Result<()> {
        let g = self.graph.read();
        let bound = self.id_bound();
        let (ep, top) = self.entry().map_or((u32::MAX, u32::MAX), |(id, l)| (id, l as u32));
        let header: [u64; 9] = [
            self.dim as u64,
            self.m as u64,
            self.ef_construction as u64,
            distance_tag(self.distance()),
            bound as u64,
            ((top as u64) << 32) | ep as u64,
            self.len() as u64,
            self.deleted_count() as u64,
            self.rng.load(Relaxed),
        ];
        let io = |e| EngineError::Io { path: "hnsw graph".into(), source: e };
        w.write_all(Self::MAGIC).map_err(io)?;
        for h in header {
            w.write_all(&h.to_le_bytes()).map_err(io)?;
        }
        let levels: Vec<u8> = g.levels[..bound].iter().map(|l| l.load(Relaxed)).collect();
        w.write_all(&levels).map_err(io)?;
        write_words(w, &g.level0[..bound * self.words_per_node]).map_err(io)?;
        for (id, &level) in levels.iter().enumerate() {
            if level != NO_NODE && level > 0 {
                write_words(w, g.upper[id].get().expect("upper lists of a node with level > 0")).map_err(io)?;
            }
        }
        write_words_u64(w, &g.tombstones[..bound.div_ceil(64)]).map_err(io)?;
        Ok(())
    }

    /// Reads a graph written by [`Hnsw::write_to`].
    pub fn read_from(r: &mut dyn Read) -> Result<Self> {
        let corrupt = |reason: String| EngineError::Corruption { what: "hnsw graph", reason };
        let io = |e: std::io::Error| corrupt(e.to_string());
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io)?;
        if &magic != Self::MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let mut header = [0u64; 9];
        for h in &mut header {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).map_err(io)?;
            *h = u64::from_le_bytes(b);
        }
        let [dim, m, ef_c, dist, bound, entry, nodes, deleted, rng] = header;
        let distance = distance_from_tag(dist).ok_or_else(|| corrupt(format!("unknown distance tag {dist}")))?;
        if dim == 0 || dim > crate::types::MAX_DIMENSION as u64 || !(2..=128).contains(&m) || bound > u32::MAX as u64 {
            return Err(corrupt("implausible header".into()));
        }
        let params = HnswParams { m: m as usize, ef_construction: ef_c as usize };
        let index = Hnsw::new(dim as usize, distance, params, bound as usize);
        {
            let mut g = index.graph.write();
            let bound = bound as usize;
            let mut levels = vec![0u8; bound];
            r.read_exact(&mut levels).map_err(io)?;
            read_words(r, &g.level0[..bound * index.words_per_node]).map_err(io)?;
            let g = &mut *g;
            for (id, &level) in levels.iter().enumerate() {
                g.levels[id].store(level, Relaxed);
                if level != NO_NODE && level > 0 {
                    if level as usize > MAX_LEVEL || level & PENDING != 0 {
                        return Err(corrupt(format!("node {id} has level {level}")));
                    }
                    let lists = zeroed_atomics(level as usize * (1 + index.m));
                    read_words(r, &lists).map_err(io)?;
                    let _ = g.upper[id].set(lists);
                }
            }
            read_words_u64(r, &g.tombstones[..bound.div_ceil(64)]).map_err(io)?;
            // Every stored link must name an existing node, or searches would read
            // garbage: check them all once here.
            let valid = |x: u32| (x as usize) < bound && levels[x as usize] != NO_NODE;
            for (id, &level) in levels.iter().enumerate() {
                if level == NO_NODE {
                    continue;
                }
                for lc in 0..=level as usize {
                    let list = index.links(g, id as u32, lc);
                    let count = list[0].load(Relaxed) as usize;
                    if count > list.len() - 1 || !list[1..=count].iter().all(|s| valid(s.load(Relaxed))) {
                        return Err(corrupt(format!("node {id} has invalid links on level {lc}")));
                    }
                }
            }
            for (id, &level) in levels.iter().enumerate() {
                if level != NO_NODE {
                    let list = index.links(g, id as u32, 0);
                    for s in &list[1..=list[0].load(Relaxed) as usize] {
                        g.in_degree[s.load(Relaxed) as usize].fetch_add(1, Relaxed);
                    }
                }
            }
            if entry != NO_ENTRY && !valid(entry as u32) {
                return Err(corrupt("entry point is not a node".into()));
            }
        }
        index.entry_point.store(entry, Relaxed);
        index.nodes.store(nodes as usize, Relaxed);
        index.deleted.store(deleted as usize, Relaxed);
        index.id_bound.store(bound as usize, Relaxed);
        index.rng.store(rng, Relaxed);
        Ok(index)
    }
}

impl Far {
    fn into_pair(self) -> (u32, f32) {
        (self.1, self.0)
    }
}

#[inline(always)]
fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
}

fn distance_tag(d: Distance) -> u64 {
    match d {
        Distance::Cosine => 1,
        Distance::Euclid => 2,
        Distance::Dot => 3,
    }
}

fn distance_from_tag(t: u64) -> Option<Distance> {
    match t {
        1 => Some(Distance::Cosine),
        2 => Some(Distance::Euclid),
        3 => Some(Distance::Dot),
        _ => None,
    }
}

const IO_CHUNK: usize = 1 << 16;

fn write_words(w: &mut dyn Write, words: &[AtomicU32]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(IO_CHUNK * 4);
    for chunk in words.chunks(IO_CHUNK) {
        buf.clear();
        chunk.iter().for_each(|x| buf.extend_from_slice(&x.load(Relaxed).to_le_bytes()));
        w.write_all(&buf)?;
    }
    Ok(())
}

fn read_words(r: &mut dyn Read, words: &[AtomicU32]) -> std::io::Result<()> {
    let mut buf = vec![0u8; IO_CHUNK * 4];
    for chunk in words.chunks(IO_CHUNK) {
        let bytes = &mut buf[..chunk.len() * 4];
        r.read_exact(bytes)?;
        for (x, b) in chunk.iter().zip(bytes.chunks_exact(4)) {
            x.store(u32::from_le_bytes(b.try_into().expect("4 bytes")), Relaxed);
        }
    }
    Ok(())
}

fn write_words_u64(w: &mut dyn Write, words: &[AtomicU64]) -> std::io::Result<()> {
    for x in words {
        w.write_all(&x.load(Relaxed).to_le_bytes())?;
    }
    Ok(())
}

fn read_words_u64(r: &mut dyn Read, words: &[AtomicU64]) -> std::io::Result<()> {
    for x in words {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        x.store(u64::from_le_bytes(b), Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn persisted_graph_answers_like_the_original() {
        let data = random_vectors(1500, 12, 9);
        let index = Hnsw::new(12, Distance::Dot, HnswParams { m: 8, ef_construction: 64 }, 0);
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u32 * 2, v).unwrap(); // sparse ids leave holes
        }
        index.delete(10);
        let mut buf = Vec::new();
        index.write_to(&mut buf).unwrap();
        let back = Hnsw::read_from(&mut buf.as_slice()).unwrap();
        assert_eq!((back.len(), back.deleted_count()), (1500, 1));
        for q in random_vectors(20, 12, 10) {
            assert_eq!(index.search(&q, 10, 50, |_| true), back.search(&q, 10, 50, |_| true));
        }
        // Inserting after reload keeps working.
        back.insert(5, &data[0]).unwrap();
        assert_eq!(back.search(&data[0], 2, 50, |_| true).len(), 2);

        let mut truncated = buf.clone();
        truncated.truncate(buf.len() / 2);
        assert!(Hnsw::read_from(&mut truncated.as_slice()).is_err());
        let mut garbled = buf;
        let link_word = 8 + 72 + 3000 + 4 * 5; // inside node 0's level-0 links
        garbled[link_word..link_word + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Hnsw::read_from(&mut garbled.as_slice()).is_err());
    }
}
