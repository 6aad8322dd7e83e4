//! The graph file, `shard-<id>.graph`: `[magic VXSHARD1][applied][node table][graph]
//! [crc32]`, written from a snapshot (fixed under the writers' lock, written without it)
//! to a temp file, fsynced and renamed; and loading a shard's state from RocksDB,
//! reusing the file where it holds (points whose stored version differs are
//! re-inserted, points gone are tombstoned; a file failing its checksum is ignored).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use roaring::RoaringBitmap;

use super::State;
use crate::error::{EngineError, Result};
use crate::hnsw::{GraphCut, Hnsw};
use crate::payload_index::PayloadIndexes;
use crate::store::{PointStore, RocksPointStore};
use crate::types::{PointId, ShardConfig};

const GRAPH_MAGIC: &[u8; 8] = b"VXSHARD1";

/// Builds the in-memory state from RocksDB, reusing the persisted graph where it holds.
/// Also returns how many graph nodes it had to add or drop (0 when the file was current).
pub(super) fn load_state(store: &RocksPointStore, config: &ShardConfig, graph_path: &Path) -> Result<(State, usize)> {
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
    // which the live set covers. Without indexes there is nothing to read.
    if !config.payload_indexes.is_empty() {
        store.scan_payloads(&mut |id, payload| {
            if let Some(&internal) = state.ids.get(&id) {
                payload_index.add(internal, Some(&payload));
            }
            Ok(())
        })?;
    }
    state.payload_index = payload_index;
    Ok((state, reconciled))
}

/// What a save writes, fixed at one instant: the graph cut and the node table.
pub(super) struct GraphSnapshot {
    applied: u64,
    /// `[count][per node: u32::MAX, or id length, id, version]`.
    node_table: Vec<u8>,
    cut: GraphCut,
}

/// Fixes what a save of `state` at `applied` writes. The caller holds the writers' lock
/// (no insert runs) and may release it before [`write_graph`]: later writes do not
/// change the snapshot. Costs one pass over the node table.
pub(super) fn snapshot(applied: u64, state: &State) -> Result<GraphSnapshot> {
    let mut node_table = Vec::with_capacity(8 + state.nodes.len() * 16);
    node_table.extend_from_slice(&(state.nodes.len() as u64).to_le_bytes());
    for n in &state.nodes {
        match n {
            None => node_table.extend_from_slice(&u32::MAX.to_le_bytes()),
            Some((id, version)) => {
                let enc = id.encode();
                node_table.extend_from_slice(&(enc.len() as u32).to_le_bytes());
                node_table.extend_from_slice(&enc);
                node_table.extend_from_slice(&version.to_le_bytes());
            }
        }
    }
    let cut = state.index.cut(state.nodes.len())?;
    Ok(GraphSnapshot { applied, node_table, cut })
}

/// A graph written to its temp file, not yet durable nor in place ([`commit_graph`]).
pub(super) struct WrittenGraph {
    file: std::fs::File,
    tmp: std::path::PathBuf,
}

/// Writes `[magic][applied][node table][graph][crc32]` to the temp file beside `path`,
/// into the page cache (the fsync is [`commit_graph`]'s).
pub(super) fn write_graph(path: &Path, snapshot: &GraphSnapshot) -> Result<WrittenGraph> {
    let tmp = path.with_extension("graph.tmp");
    let io = |e| EngineError::io(&tmp, e);
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = CrcWriter { inner: BufWriter::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
    w.write_all(GRAPH_MAGIC).map_err(io)?;
    w.write_all(&snapshot.applied.to_le_bytes()).map_err(io)?;
    w.write_all(&snapshot.node_table).map_err(io)?;
    snapshot.cut.write_to(&mut w)?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(WrittenGraph { file, tmp })
}

/// Makes a written graph durable and puts it in place: fsync, rename over `path`, fsync
/// the directory.
pub(super) fn commit_graph(path: &Path, written: WrittenGraph) -> Result<()> {
    let WrittenGraph { file, tmp } = written;
    file.sync_all().map_err(|e| EngineError::io(&tmp, e))?;
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
    // One pass: parsed while its checksum is computed, and used only if that matches
    // (parsing checks every length and link, so a torn file fails one way or the other).
    let mut r =
        CrcReader { inner: BufReader::with_capacity(1 << 20, file).take(len - 4), crc: crc32fast::Hasher::new() };
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
    if count > u32::MAX as u64 || count > len {
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
    let index = Hnsw::read_from(&mut r, len)?;
    let CrcReader { inner, crc } = r;
    if inner.limit() != 0 {
        return Err(corrupt(format!("{} bytes after the graph", inner.limit())));
    }
    let mut stored = [0u8; 4];
    inner.into_inner().read_exact(&mut stored).map_err(|e| EngineError::io(path, e))?;
    if crc.finalize() != u32::from_le_bytes(stored) {
        return Err(corrupt("checksum mismatch".into()));
    }
    if index.dim() != config.dimension || index.distance() != config.distance {
        return Err(corrupt("graph does not match the shard config".into()));
    }
    if index.id_bound() > nodes.len() {
        return Err(corrupt("graph has nodes the node table lacks".into()));
    }
    Ok(Some((index, nodes)))
}

struct CrcReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
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
