//! The graph's memory: one flat array of fixed-size node blocks,
//! `[link count][2·m neighbour ids][vector as f32 bits]`, so that visiting a node touches
//! one contiguous region (its level-0 links and its vector), plus per-node upper-level
//! lists, levels, locks, tombstones and in-degrees; and the accessors every other part
//! reads nodes through.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::*};

use parking_lot::Mutex;

use super::{Hnsw, NO_NODE, PENDING};

pub(super) struct Graph {
    pub(super) capacity: usize,
    /// `capacity` blocks of `words_per_node` words: count, level-0 links, vector.
    pub(super) level0: Box<[AtomicU32]>,
    /// Per node: `level` lists of `[count][m ids]` for levels 1..=level.
    pub(super) upper: Box<[OnceLock<Box<[AtomicU32]>>]>,
    /// Per node: its top level (with `PENDING` while inserting), or `NO_NODE`.
    pub(super) levels: Box<[AtomicU8]>,
    /// Per node: serialises writers of its neighbour lists.
    pub(super) locks: Box<[Mutex<()>]>,
    /// One bit per node: deleted.
    pub(super) tombstones: Box<[AtomicU64]>,
    /// Per node: how many level-0 lists name it. A prune that drops it to 0 orphans
    /// the node (no search can reach it), and the insert re-adopts it.
    pub(super) in_degree: Box<[AtomicU32]>,
}

/// Allocates `n` zeroed atomics cheaply (calloc'd pages, no per-element loop).
pub(super) fn zeroed_atomics(n: usize) -> Box<[AtomicU32]> {
    let v = std::mem::ManuallyDrop::new(vec![0u32; n]);
    // SAFETY: AtomicU32 has the same size, alignment and bit validity as u32; the
    // allocation is handed over whole, with the same length and capacity.
    unsafe { Vec::from_raw_parts(v.as_ptr() as *mut AtomicU32, v.len(), v.capacity()) }.into_boxed_slice()
}

impl Graph {
    pub(super) fn new(capacity: usize, words_per_node: usize) -> Self {
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
    pub(super) fn grown(&mut self, capacity: usize, words_per_node: usize) -> Graph {
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

impl Hnsw {
    #[inline]
    pub(super) fn block_start(&self, id: u32) -> usize {
        id as usize * self.words_per_node
    }

    /// The `[count][ids…]` list of `id` on `level`.
    #[inline]
    pub(super) fn links<'g>(&self, g: &'g Graph, id: u32, level: usize) -> &'g [AtomicU32] {
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
    pub(super) fn vector<'g>(&self, g: &'g Graph, id: u32) -> &'g [f32] {
        let s = self.block_start(id) + 1 + self.m0;
        let words = &g.level0[s..s + self.dim];
        // SAFETY: AtomicU32 and f32 have the same size and alignment. A node's vector
        // words are written once, before the node is published to any other thread
        // (release stores of its id), and never again; readers reach the node only
        // through acquire loads of its id, so they see the completed words.
        unsafe { std::slice::from_raw_parts(words.as_ptr() as *const f32, self.dim) }
    }

    #[inline]
    pub(super) fn exists(g: &Graph, id: u32) -> bool {
        (id as usize) < g.capacity && g.levels[id as usize].load(Acquire) != NO_NODE
    }

    /// During construction: waits until `id`'s insert has finished linking it, so its
    /// lists are complete before they are expanded.
    #[inline]
    pub(super) fn wait_if_pending(g: &Graph, id: u32) {
        if g.levels[id as usize].load(Acquire) & PENDING != 0 {
            drop(g.locks[id as usize].lock());
        }
    }

    #[inline]
    pub(super) fn is_deleted(g: &Graph, id: u32) -> bool {
        g.tombstones[id as usize / 64].load(Relaxed) & (1 << (id % 64)) != 0
    }

    #[inline]
    pub(super) fn prefetch_node(&self, g: &Graph, id: u32) {
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
}

#[inline(always)]
pub(super) fn prefetch_read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
}
