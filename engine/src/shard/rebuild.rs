//! Background rebuilds: once tombstones pass the configured share, a fresh graph of the
//! live points is built on its own thread; writes meanwhile are journaled by id and
//! replayed into it before it replaces the live state.

use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::{RebuildJob, Shard, State, WriterState};
use crate::error::{EngineError, Result};
use crate::hnsw::Hnsw;
use crate::store::{PointStore, RocksPointStore};
use crate::types::{PointId, ShardConfig};

impl Shard {
    /// Starts a background rebuild once tombstones pass the configured share, and
    /// swaps in a finished one (waiting for it if `wait`). Called by writers.
    pub(super) fn advance_rebuild(&self, writer: &mut WriterState, wait: bool) -> Result<()> {
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
    pub(super) fn swap_in_rebuilt(&self, mut fresh: State, mut touched: Vec<PointId>) -> Result<()> {
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
