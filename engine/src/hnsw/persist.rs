//! The graph file format: a magic, a header (dimension, `m`, `ef_construction`,
//! distance, id bound, entry point, counts, level generator state), the level bytes,
//! the node blocks, the upper-level lists and the tombstones, little-endian, written from
//! a [`GraphCut`] while inserts go on; every link is checked on load, so a corrupt file
//! is an error, never a walk into garbage.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use super::layout::{Graph, zeroed_atomics};
use super::{GraphCut, Hnsw, MAX_LEVEL, NO_ENTRY, NO_NODE, PENDING};
use crate::error::{EngineError, Result};
use crate::types::{Distance, HnswParams};

impl Hnsw {
    const MAGIC: &'static [u8; 8] = b"VXHNSW01";

    /// Writes the whole graph. No insert may run meanwhile (see [`GraphCut`] for a save
    /// that lets them).
    pub fn write_to(self: &Arc<Self>, w: &mut dyn Write) -> Result<()> {
        self.cut(self.id_bound())?.write_to(w)
    }

    /// Reads a graph written by [`Hnsw::write_to`] from a reader that holds at most
    /// `max_bytes` (a header claiming more nodes than fit is refused before anything
    /// is allocated for them).
    pub fn read_from(r: &mut dyn Read, max_bytes: u64) -> Result<Self> {
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
        let block_bytes = 4 * (1 + 2 * m + dim);
        if bound.saturating_mul(block_bytes) > max_bytes {
            return Err(corrupt(format!("{bound} nodes do not fit in {max_bytes} bytes")));
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

/// Nodes whose blocks are written per hold of the graph's read lock: a growing graph
/// (which takes the write lock) waits at most one chunk, not the whole save.
const NODES_PER_CHUNK: usize = 4096;

impl GraphCut {
    /// Writes the graph as it was at the cut; inserts and deletes may run meanwhile.
    pub fn write_to(&self, w: &mut dyn Write) -> Result<()> {
        let index = &*self.index;
        let bound = self.bound;
        let exists = |id: usize| self.levels[id] != NO_NODE;
        let nodes = (0..bound).filter(|&id| exists(id)).count();
        let deleted = (0..bound).filter(|&id| exists(id) && self.tombstones[id / 64] & (1 << (id % 64)) != 0).count();
        let (ep, top) = match self.entry {
            NO_ENTRY => (u32::MAX, u32::MAX),
            packed => (packed as u32, (packed >> 32) as u32),
        };
        let header: [u64; 9] = [
            index.dim as u64,
            index.m as u64,
            index.ef_construction as u64,
            distance_tag(index.distance()),
            bound as u64,
            ((top as u64) << 32) | ep as u64,
            nodes as u64,
            deleted as u64,
            self.rng,
        ];
        let io = |e| EngineError::Io { path: "hnsw graph".into(), source: e };
        w.write_all(Hnsw::MAGIC).map_err(io)?;
        for h in header {
            w.write_all(&h.to_le_bytes()).map_err(io)?;
        }
        w.write_all(&self.levels).map_err(io)?;

        let (wpn, list_words) = (index.words_per_node, 1 + index.m0);
        // Level-0 blocks (zeros for a hole, or a node inserted since), then the upper
        // lists of nodes above level 0; a node whose lists changed since the cut gets
        // the lists kept for it (its vector never changes).
        self.write_chunked(w, |g, id, buf| {
            if !exists(id) {
                buf.resize(buf.len() + wpn * 4, 0);
                return;
            }
            let block = &g.level0[index.block_start(id as u32)..][..wpn];
            let at = buf.len();
            block.iter().for_each(|x| buf.extend_from_slice(&x.load(Acquire).to_le_bytes()));
            if let Some(before) = self.changes.before(id as u32) {
                put_words(&mut buf[at..at + list_words * 4], &before[..list_words]);
            }
        })?;
        self.write_chunked(w, |g, id, buf| {
            if !exists(id) || self.levels[id] == 0 {
                return;
            }
            let lists = g.upper[id].get().expect("upper lists of a node with level > 0");
            let at = buf.len();
            lists.iter().for_each(|x| buf.extend_from_slice(&x.load(Acquire).to_le_bytes()));
            if let Some(before) = self.changes.before(id as u32) {
                put_words(&mut buf[at..], &before[list_words..]);
            }
        })?;
        for t in &self.tombstones {
            w.write_all(&t.to_le_bytes()).map_err(io)?;
        }
        Ok(())
    }
}

impl GraphCut {
    /// Writes what `node` appends for each node below the bound, a chunk of nodes per
    /// hold of the graph's read lock.
    fn write_chunked(&self, w: &mut dyn Write, node: impl Fn(&Graph, usize, &mut Vec<u8>)) -> Result<()> {
        let mut buf = Vec::new();
        for chunk in (0..self.bound).step_by(NODES_PER_CHUNK) {
            buf.clear();
            {
                let g = self.index.graph.read();
                (chunk..(chunk + NODES_PER_CHUNK).min(self.bound)).for_each(|id| node(&g, id, &mut buf));
            }
            w.write_all(&buf).map_err(|e| EngineError::Io { path: "hnsw graph".into(), source: e })?;
        }
        Ok(())
    }
}

/// Overwrites little-endian words in `bytes` with `words`.
fn put_words(bytes: &mut [u8], words: &[u32]) {
    for (b, x) in bytes.chunks_exact_mut(4).zip(words) {
        b.copy_from_slice(&x.to_le_bytes());
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

fn read_words_u64(r: &mut dyn Read, words: &[AtomicU64]) -> std::io::Result<()> {
    for x in words {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        x.store(u64::from_le_bytes(b), Relaxed);
    }
    Ok(())
}
