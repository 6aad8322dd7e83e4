//! Walks: the greedy descent through the upper levels and the best-first beam search on
//! one level (as hnswlib runs them), both asking a [`Scorer`] for distances; and the
//! public searches built on them.

use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::*;

use super::layout::{Graph, prefetch_read};
use super::scorer::{Fused, Scorer};
use super::visited::VisitedSet;
use super::{Far, Hnsw, Near, PENDING};

impl Hnsw {
    /// Greedy walk on `level` from `(cur, cur_d)` to the closest node it can reach.
    /// `BUILDING`: called by an insert (waits on pending nodes).
    pub(super) fn greedy_closest<const BUILDING: bool, S: Scorer>(
        &self,
        g: &Graph,
        scorer: &S,
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
                let d = scorer.distance(n);
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
    pub(super) fn search_level<const BUILDING: bool, S: Scorer, F: Fn(u32) -> bool>(
        &self,
        g: &Graph,
        scorer: &S,
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
                scorer.prefetch(n);
                prefetch_read(visited.slot_ptr(n));
            }
            for (i, slot) in neighbours.iter().enumerate() {
                if let Some(next) = neighbours.get(i + 1) {
                    let nn = next.load(Relaxed);
                    scorer.prefetch(nn);
                    prefetch_read(visited.slot_ptr(nn));
                }
                let n = slot.load(Acquire);
                if !visited.insert(n) {
                    continue;
                }
                let nd = scorer.distance(n);
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
        let scorer = Fused::new(self, &g, query);
        let mut cur = (ep, scorer.distance(ep));
        for level in (1..=top).rev() {
            cur = self.greedy_closest::<false, _>(&g, &scorer, cur.0, cur.1, level);
        }
        let mut visited = self.visited.get(g.capacity);
        let ef = ef.max(k);
        let found = if self.deleted_count() == 0 {
            self.search_level::<false, _, _>(&g, &scorer, cur, ef, 0, &mut visited, accept)
        } else {
            self.search_level::<false, _, _>(&g, &scorer, cur, ef, 0, &mut visited, |id| {
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
        let scorer = Fused::new(self, &g, query);
        for id in ids {
            if Self::exists(&g, id) {
                f(id, scorer.distance(id));
            }
        }
    }
}
