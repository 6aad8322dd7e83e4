//! The graph file format: a magic, a header (dimension, `m`, `ef_construction`,
//! distance, id bound, entry point, counts, level generator state), the level bytes,
//! the node blocks, the upper-level lists and the tombstones, little-endian; every link
//! is checked on load, so a corrupt file is an error, never a walk into garbage.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use super::layout::zeroed_atomics;
use super::{Hnsw, MAX_LEVEL, NO_ENTRY, NO_NODE, PENDING};
use crate::error::{EngineError, Result};
use crate::types::{Distance, HnswParams};

impl Hnsw {
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
