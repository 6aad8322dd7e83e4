//! Reads: points by id, pages in id order, counts, and the filter evaluation they and
//! deletes by filter share (payload indexes first, the reference evaluator over stored
//! payloads where a condition is not indexed).

use roaring::RoaringBitmap;

use super::{MAX_TOP_K, ScrollPage, Shard};
use crate::error::{EngineError, Result};
use crate::filter::Filter;
use crate::store::PointStore;
use crate::types::{PointId, Record};

impl Shard {
    /// Reads points by id, in request order; missing ids are left out.
    pub fn get(&self, ids: &[PointId], with_payload: bool, with_vector: bool) -> Result<Vec<Record>> {
        ids.iter().try_for_each(PointId::validate)?;
        let present: Vec<PointId> = {
            let state = self.state.read();
            ids.iter().filter(|id| state.ids.contains_key(id)).cloned().collect()
        };
        self.records(present, with_payload, with_vector)
    }

    pub(super) fn records(&self, ids: Vec<PointId>, with_payload: bool, with_vector: bool) -> Result<Vec<Record>> {
        let payloads = if with_payload {
            self.store.get_payloads(&ids.iter().collect::<Vec<_>>())?
        } else {
            vec![None; ids.len()]
        };
        let mut out = Vec::with_capacity(ids.len());
        for (id, payload) in ids.into_iter().zip(payloads) {
            let vector = if with_vector {
                match self.store.get(&id)? {
                    Some(p) => Some(p.vector),
                    None => continue, // deleted meanwhile
                }
            } else {
                None
            };
            let payload = if with_payload { Some(payload.unwrap_or_default()) } else { None };
            out.push(Record { id, vector, payload });
        }
        Ok(out)
    }

    /// Live points matching `filter`, as internal ids.
    pub(super) fn matching_bitmap(&self, filter: &Filter) -> Result<RoaringBitmap> {
        let nodes_of: Vec<(u32, PointId)> = {
            let state = self.state.read();
            let resolve = |id: &PointId| state.ids.get(id).copied();
            let c = state.payload_index.candidates(filter, &state.live, &resolve);
            if c.exact {
                return Ok(c.ids);
            }
            c.ids.iter().filter_map(|i| state.nodes[i as usize].as_ref().map(|(p, _)| (i, p.clone()))).collect()
        };
        // Some condition is not indexed: check the candidates' payloads directly.
        let mut out = RoaringBitmap::new();
        for chunk in nodes_of.chunks(1024) {
            let ids: Vec<&PointId> = chunk.iter().map(|(_, p)| p).collect();
            let payloads = self.store.get_payloads(&ids)?;
            for ((internal, id), payload) in chunk.iter().zip(payloads) {
                if filter.matches(id, payload.as_ref()) {
                    out.insert(*internal);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn matching_ids(&self, filter: &Filter) -> Result<Vec<PointId>> {
        let bitmap = self.matching_bitmap(filter)?;
        let state = self.state.read();
        Ok(bitmap.iter().filter_map(|i| state.nodes[i as usize].as_ref().map(|(p, _)| p.clone())).collect())
    }

    /// Counts live points, those matching `filter` if given.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        match filter {
            None => Ok(self.state.read().live.len()),
            Some(f) => {
                f.validate()?;
                Ok(self.matching_bitmap(f)?.len())
            }
        }
    }

    /// Pages through points in id order, from `from` (inclusive).
    pub fn scroll(
        &self,
        filter: Option<&Filter>,
        from: Option<&PointId>,
        limit: usize,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<ScrollPage> {
        if limit == 0 || limit > MAX_TOP_K {
            return Err(EngineError::invalid_argument(format!("scroll limit must be in 1..={MAX_TOP_K}")));
        }
        if let Some(f) = filter {
            f.validate()?;
        }
        let matching = filter.map(|f| self.matching_bitmap(f)).transpose()?;
        let mut ids = Vec::with_capacity(limit);
        let mut next = None;
        {
            let state = self.state.read();
            self.store.scan(from, &mut |p| {
                let Some(&internal) = state.ids.get(&p.id) else {
                    return Ok(true); // written after our snapshot of the state
                };
                if matching.as_ref().is_none_or(|m| m.contains(internal)) {
                    if ids.len() == limit {
                        next = Some(p.id);
                        return Ok(false);
                    }
                    ids.push(p.id);
                }
                Ok(true)
            })?;
        }
        Ok(ScrollPage { points: self.records(ids, with_payload, with_vector)?, next })
    }
}
