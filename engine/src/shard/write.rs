//! The write path: [`Shard::apply`] at a log index (replays are no-ops), a whole batch
//! validated first and written to RocksDB in one `WriteBatch` with the applied index,
//! then to memory (graph inserts under the read lock, published at once under the write
//! lock); and snapshot chunks restored at one index.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::{Shard, WriteOp, WriteOutcome, validate_point};
use crate::error::{EngineError, Result};
use crate::filter::Filter;
use crate::store::{PointStore, WriteSet};
use crate::types::{Point, PointId};

impl Shard {
    /// Upserts points as the next write (standalone use; replicas use [`Shard::apply`]).
    pub fn upsert(&self, points: Vec<Point>) -> Result<usize> {
        let next = self.applied_index() + 1;
        Ok(self.apply(next, WriteOp::Upsert(points))?.affected)
    }

    /// Deletes points by id as the next write.
    pub fn delete(&self, ids: Vec<PointId>) -> Result<usize> {
        let next = self.applied_index() + 1;
        Ok(self.apply(next, WriteOp::Delete(ids))?.affected)
    }

    /// Deletes the points matching a filter as the next write.
    pub fn delete_by_filter(&self, filter: Filter) -> Result<usize> {
        let next = self.applied_index() + 1;
        Ok(self.apply(next, WriteOp::DeleteByFilter(filter))?.affected)
    }

    /// Applies the write at log index `index`. An index at or below the applied one is
    /// a replay and changes nothing. Either the whole batch is applied or, on error,
    /// none of it.
    pub fn apply(&self, index: u64, op: WriteOp) -> Result<WriteOutcome> {
        let mut writer = self.write_lock.lock();
        if index <= writer.applied {
            return Ok(WriteOutcome { affected: 0, applied: false });
        }
        let journal = writer.rebuild.is_some();
        let (affected, touched) = match op {
            WriteOp::Upsert(points) => {
                let touched = if journal { points.iter().map(|p| p.id.clone()).collect() } else { Vec::new() };
                (self.apply_upsert(index, points)?, touched)
            }
            WriteOp::Delete(ids) => {
                ids.iter().try_for_each(PointId::validate)?;
                let touched = if journal { ids.clone() } else { Vec::new() };
                (self.apply_delete(index, ids)?, touched)
            }
            WriteOp::DeleteByFilter(filter) => {
                filter.validate()?;
                let ids = self.matching_ids(&filter)?;
                let touched = if journal { ids.clone() } else { Vec::new() };
                (self.apply_delete(index, ids)?, touched)
            }
        };
        writer.applied = index;
        self.applied.store(index, Ordering::Release);
        writer.writes_since_persist += affected as u64;
        if let Some(job) = &mut writer.rebuild {
            job.touched.extend(touched);
        }
        self.advance_rebuild(&mut writer, false)?;
        // A save already under way covers this (and holds `saving` while it waits for
        // the writers' lock we hold: never wait for it here).
        if writer.writes_since_persist >= self.config.tuning.persist_every_writes
            && let Some(_one) = self.saving.try_lock()
        {
            self.save_graph(writer.applied)?;
            writer.writes_since_persist = 0;
        }
        Ok(WriteOutcome { affected, applied: true })
    }

    /// Writes one chunk of a replica snapshot being restored at log index `index`:
    /// like an upsert at `index`, except that several chunks share the index (a
    /// snapshot holds more points than one batch). Only for a shard created empty to
    /// receive the snapshot; the applied index becomes `index`. An empty chunk just
    /// records the index.
    pub fn restore_chunk(&self, index: u64, points: Vec<Point>) -> Result<usize> {
        let mut writer = self.write_lock.lock();
        if index < writer.applied {
            return Err(EngineError::invalid_argument(format!(
                "restoring at index {index}, below the applied index {}",
                writer.applied
            )));
        }
        let affected = if points.is_empty() {
            self.store.apply(index, &WriteSet::default())?;
            0
        } else {
            self.apply_upsert(index, points)?
        };
        writer.applied = index;
        self.applied.store(index, Ordering::Release);
        writer.writes_since_persist += affected as u64;
        Ok(affected)
    }

    fn apply_upsert(&self, index: u64, mut points: Vec<Point>) -> Result<usize> {
        if points.is_empty() {
            return Err(EngineError::invalid_argument("upsert batch is empty"));
        }
        let limits = &self.config.limits;
        if points.len() > limits.max_batch {
            return Err(EngineError::invalid_argument(format!(
                "upsert batch has {} points, the limit is {}",
                points.len(),
                limits.max_batch
            )));
        }
        for p in &mut points {
            validate_point(&self.config, p)?;
        }
        // A repeated id in one batch: the last one wins.
        let mut last: HashMap<&PointId, usize> = HashMap::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            last.insert(&p.id, i);
        }
        let winners: Vec<&Point> =
            points.iter().enumerate().filter(|(i, p)| last[&p.id] == *i).map(|(_, p)| p).collect();

        // Only the indexed fields of each payload are parsed, one payload at a time and
        // outside the write lock, and before anything is written (a failure
        // here writes nothing).
        let indexed: Vec<&str> =
            self.config.payload_indexes.iter().map(|s| vectron_model::key_path::root_field(&s.key)).collect();
        let fields = winners
            .iter()
            .map(|p| match &p.payload {
                Some(payload) if !indexed.is_empty() => payload.project(&indexed).map(Some),
                _ => Ok(None),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let writes = WriteSet {
            upserts: winners.iter().map(|p| (&p.id, &p.vector[..], p.payload.as_ref())).collect(),
            deletes: vec![],
        };
        self.store.apply(index, &writes)?;

        // Insert into the graph under the read lock (searches continue), invisible
        // until published below.
        // Writers are serialised, so `first` stays the next free id until we publish.
        let first = {
            let state = self.state.read();
            let first = state.nodes.len() as u32;
            let index_ref = &state.index;
            winners.par_iter().enumerate().try_for_each(|(i, p)| index_ref.insert(first + i as u32, &p.vector))?;
            first
        };
        let mut state = self.state.write();
        for ((i, p), fields) in winners.iter().enumerate().zip(&fields) {
            let internal = first + i as u32;
            state.remove(&p.id);
            state.ids.insert(p.id.clone(), internal);
            state.nodes.push(Some((p.id.clone(), index)));
            state.live.insert(internal);
            state.payload_index.add(internal, fields.as_ref());
        }
        self.published.store(state.nodes.len() as u32, Ordering::Release);
        Ok(winners.len())
    }

    fn apply_delete(&self, index: u64, ids: Vec<PointId>) -> Result<usize> {
        let present: Vec<&PointId> = {
            let state = self.state.read();
            ids.iter().filter(|id| state.ids.contains_key(id)).collect()
        };
        self.store.apply(index, &WriteSet { upserts: vec![], deletes: present.clone() })?;
        let mut state = self.state.write();
        Ok(present.into_iter().filter(|id| state.remove(id)).count())
    }
}
