//! Cuts: a view of the graph fixed at one instant, which a save writes out while inserts
//! and deletes go on (the shard's writers wait only for the cut, not for the file).
//!
//! At the cut no insert may be running (the owner holds its writers' lock): every node
//! below the bound is complete, and the levels, tombstones, entry point and level
//! generator are copied then (they are small). What is large, the node blocks and the
//! upper-level lists, is read live. Vectors never change once written. Neighbour lists
//! do, but only in `connect` and `adopt`, under the node's lock, and those call
//! [`Hnsw::keep_for_cut`] first: the first change of a node's lists after the cut copies
//! them aside, then sets the node's *changed* bit (release), then changes them (release
//! stores). The writer reads a list (acquire loads), then the bit (acquire): a list it
//! saw changed implies the bit, and then it takes the copy instead. So the file holds
//! exactly the graph of the cut instant.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::*};

use parking_lot::Mutex;

use super::layout::Graph;
use super::{Hnsw, NO_NODE};
use crate::error::{EngineError, Result};

/// The graph as it was when [`Hnsw::cut`] was called, for [`GraphCut::write_to`].
/// Ends (the copies it kept are freed) when dropped.
pub struct GraphCut {
    pub(super) index: Arc<Hnsw>,
    pub(super) bound: usize,
    pub(super) levels: Vec<u8>,
    pub(super) tombstones: Vec<u64>,
    pub(super) entry: u64,
    pub(super) rng: u64,
    pub(super) changes: Arc<CutChanges>,
}

/// What changed in the cut's nodes since the cut, shared with the inserts.
pub(super) struct CutChanges {
    bound: usize,
    /// One bit per node below `bound`: its lists changed; `before` holds them as they were.
    changed: Box<[AtomicU64]>,
    /// Node → its level-0 list then its upper-level lists, as at the cut.
    before: Mutex<HashMap<u32, Box<[u32]>>>,
}

impl CutChanges {
    fn has_changed(&self, id: u32) -> bool {
        self.changed[id as usize / 64].load(Acquire) & (1 << (id % 64)) != 0
    }

    /// The lists of `id` as they were at the cut, if they changed since.
    pub(super) fn before(&self, id: u32) -> Option<Box<[u32]>> {
        if !self.has_changed(id) {
            return None;
        }
        Some(self.before.lock().get(&id).expect("a changed node's lists are kept").clone())
    }
}

impl Hnsw {
    /// Fixes the graph's nodes below `bound` for a save that runs alongside later inserts
    /// and deletes. No insert may be running while this is called, and later inserts
    /// must use ids at or above `bound`. One cut at a time.
    pub fn cut(self: &Arc<Self>, bound: usize) -> Result<GraphCut> {
        let (bound, levels, tombstones) = {
            let g = self.graph.read();
            let bound = bound.min(g.capacity);
            let levels = g.levels[..bound].iter().map(|l| l.load(Acquire)).collect();
            let tombstones = g.tombstones[..bound.div_ceil(64)].iter().map(|t| t.load(Acquire)).collect();
            (bound, levels, tombstones)
        }; // the graph's lock is never held with the cut's (inserts take them the other way round)
        let changes = Arc::new(CutChanges {
            bound,
            changed: (0..bound.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            before: Mutex::new(HashMap::new()),
        });
        let mut current = self.cut.write();
        if current.is_some() {
            return Err(EngineError::invalid_argument("a save of this graph is already running"));
        }
        *current = Some(changes.clone());
        self.cutting.store(true, Release);
        Ok(GraphCut {
            index: self.clone(),
            bound,
            levels,
            tombstones,
            entry: self.entry_point.load(Acquire),
            rng: self.rng.load(Relaxed),
            changes,
        })
    }

    /// Called holding `id`'s lock, before changing its lists: keeps them as they were
    /// at the cut if a cut is open and this is their first change since.
    #[inline]
    pub(super) fn keep_for_cut(&self, g: &Graph, id: u32) {
        if !self.cutting.load(Relaxed) {
            return; // set before the inserts that may see it started (the owner's lock orders them)
        }
        let Some(changes) = self.cut.read().clone() else { return };
        if id as usize >= changes.bound || changes.has_changed(id) || g.levels[id as usize].load(Acquire) == NO_NODE {
            return;
        }
        let level0 = self.links(g, id, 0);
        let upper = g.upper[id as usize].get().map_or(&[][..], |l| &l[..]);
        let copy: Box<[u32]> = level0.iter().chain(upper).map(|w| w.load(Acquire)).collect();
        changes.before.lock().insert(id, copy);
        changes.changed[id as usize / 64].fetch_or(1 << (id % 64), Release);
    }
}

impl GraphCut {
    /// Nodes of the cut whose lists changed since.
    #[cfg(test)]
    pub(super) fn changed_nodes(&self) -> usize {
        self.changes.before.lock().len()
    }
}

impl Drop for GraphCut {
    fn drop(&mut self) {
        let mut current = self.index.cut.write();
        self.index.cutting.store(false, Release);
        *current = None;
    }
}
