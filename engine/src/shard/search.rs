//! Searches and their planner: a filter becomes a candidate bitmap, the cost model
//! (`Tuning::exact_scan_cost_factor`) picks an exact scan of the candidates or filtered
//! HNSW, and filtered HNSW falls back to the exact scan when it finds fewer than `top_k`.

use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering;

use roaring::RoaringBitmap;

use super::{SearchPlan, SearchQuery, Shard};
use crate::distance::normalize;
use crate::error::{EngineError, Result};
use crate::hnsw::Hnsw;
use crate::types::{Distance, PointId, Record, ScoredPoint};

impl Shard {
    /// Nearest neighbours of `req.vector`, best first.
    pub fn search(&self, req: &SearchQuery) -> Result<Vec<ScoredPoint>> {
        self.search_explained(req).map(|(hits, _)| hits)
    }

    /// [`Shard::search`], also saying which plan ran.
    pub fn search_explained(&self, req: &SearchQuery) -> Result<(Vec<ScoredPoint>, SearchPlan)> {
        req.check()?;
        let mut query = req.vector.clone();
        vectron_model::vector::check_vector(&self.config, &query)?;
        if self.config.distance == Distance::Cosine {
            normalize(&mut query);
        }
        let k = req.top_k;
        let ef = req.ef.unwrap_or(64).max(k);
        let filter = req.filter.as_ref().filter(|f| !f.is_empty());
        let candidates = filter.map(|f| self.matching_bitmap(f)).transpose()?;

        let (found, plan, ids): (Vec<(u32, f32)>, SearchPlan, Vec<PointId>) = {
            let state = self.state.read();
            let published = self.published.load(Ordering::Acquire);
            // Points deleted since the candidates were computed drop out here.
            let candidates = candidates.map(|c| c & &state.live);
            let (found, plan) = match &candidates {
                None => (state.index.search(&query, k, ef, |id| id < published), SearchPlan::Hnsw),
                Some(c) => {
                    let (n, live) = (c.len() as f64, state.live.len() as f64);
                    let cheaper = n * n <= self.config.tuning.exact_scan_cost_factor * ef as f64 * live;
                    let tiny = c.len() as usize <= k.max(64);
                    if cheaper || tiny {
                        (exact_scan(&state.index, &query, c, k), SearchPlan::ExactScan)
                    } else {
                        let hits = state.index.search(&query, k, ef, |id| id < published && c.contains(id));
                        if hits.len() < k && (c.len() as usize) > hits.len() {
                            (exact_scan(&state.index, &query, c, k), SearchPlan::ExactScan)
                        } else {
                            (hits, SearchPlan::FilteredHnsw)
                        }
                    }
                }
            };
            let ids = found
                .iter()
                .map(|(i, _)| {
                    state.nodes[*i as usize].as_ref().map(|(p, _)| p.clone()).ok_or(EngineError::Corruption {
                        what: "shard state",
                        reason: format!("search returned dead node {i}"),
                    })
                })
                .collect::<Result<_>>()?;
            (found, plan, ids)
        };

        let distance = self.config.distance;
        let mut hits: Vec<(PointId, f32)> = Vec::with_capacity(found.len());
        for ((_, d), id) in found.iter().zip(ids) {
            let score = distance.score(*d);
            if req.score_threshold.is_none_or(|t| distance.passes_threshold(score, t)) {
                hits.push((id, score));
            }
        }
        let scores: Vec<f32> = hits.iter().map(|h| h.1).collect();
        let ids: Vec<PointId> = hits.into_iter().map(|h| h.0).collect();
        let need_records = req.with_payload || req.with_vector;
        let out = if need_records {
            let mut records: HashMap<PointId, Record> = self
                .records(ids.clone(), req.with_payload, req.with_vector)?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect();
            ids.into_iter()
                .zip(scores)
                .filter_map(|(id, score)| {
                    records.remove(&id).map(|r| ScoredPoint { id, score, vector: r.vector, payload: r.payload })
                })
                .collect()
        } else {
            ids.into_iter()
                .zip(scores)
                .map(|(id, score)| ScoredPoint { id, score, vector: None, payload: None })
                .collect()
        };
        Ok((out, plan))
    }
}

/// Exact top-k over a candidate set.
fn exact_scan(index: &Hnsw, query: &[f32], candidates: &RoaringBitmap, k: usize) -> Vec<(u32, f32)> {
    let mut heap: BinaryHeap<(OrdDist, u32)> = BinaryHeap::with_capacity(k + 1);
    index.for_each_distance(query, candidates.iter(), |id, d| {
        if heap.len() < k {
            heap.push((OrdDist(d), id));
        } else if let Some(top) = heap.peek()
            && d < top.0.0
        {
            heap.pop();
            heap.push((OrdDist(d), id));
        }
    });
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|(d, id)| (id, d.0)).collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdDist(f32);
impl Eq for OrdDist {}
impl PartialOrd for OrdDist {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdDist {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
