//! Building the graph: levels drawn from the exponential distribution, hnswlib's
//! neighbour selection heuristic, linking with pruning, re-adopting nodes a prune left
//! without incoming links, and [`Hnsw::insert`], which runs them under the concurrency
//! rules of the module docs. Construction compares full-precision vectors.

use std::sync::atomic::Ordering::*;

use super::layout::{Graph, zeroed_atomics};
use super::scorer::{Fused, Scorer};
use super::{Far, Hnsw, MAX_LEVEL, NO_NODE, PENDING};
use crate::ValidationError;
use crate::error::{EngineError, Result};

impl Hnsw {
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
            self.keep_for_cut(g, other);
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
            self.keep_for_cut(g, parent);
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

        let scorer = Fused::new(self, &g, self.vector(&g, id));
        let mut cur = (ep, scorer.distance(ep));
        for lc in (level + 1..=top).rev() {
            cur = self.greedy_closest::<true, _>(&g, &scorer, cur.0, cur.1, lc);
        }
        let mut orphans = Vec::new();
        for lc in (0..=level.min(top)).rev() {
            let mut visited = self.visited.get(g.capacity);
            visited.insert(id);
            let found =
                self.search_level::<true, _, _>(&g, &scorer, cur, self.ef_construction, lc, &mut visited, |n| n != id);
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
}
