//! The hnsw_rs crate behind [`VectorIndex`](super::VectorIndex). It cannot delete; it is
//! here for comparison in the benchmark, not for serving.

use crate::ValidationError;
use std::sync::atomic::{AtomicUsize, Ordering};

use hnsw_rs::prelude::{DistDot, DistL2, FilterT, Hnsw as RsHnsw};

use super::{Accept, VectorIndex};
use crate::error::{EngineError, Result};
use crate::types::{Distance, HnswParams};

enum Inner {
    L2(RsHnsw<'static, f32, DistL2>),
    /// hnsw_rs's DistDot is `1 - a·b`, the same as our cosine on unit vectors.
    Dot(RsHnsw<'static, f32, DistDot>),
}

/// hnsw_rs's graph over caller-chosen ids.
pub struct HnswRsIndex {
    inner: Inner,
    dim: usize,
    len: AtomicUsize,
}

struct AcceptFilter<'a>(Accept<'a>);
impl FilterT for AcceptFilter<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        (self.0)(*id as u32)
    }
}

impl HnswRsIndex {
    /// Supports euclid and cosine (unit vectors); hnsw_rs's dot distance assumes unit
    /// vectors, so plain inner product is refused.
    pub fn new(dim: usize, distance: Distance, params: HnswParams, capacity: usize) -> Result<Self> {
        let layers = 16;
        let inner = match distance {
            Distance::Euclid => Inner::L2(RsHnsw::new(params.m, capacity, layers, params.ef_construction, DistL2)),
            Distance::Cosine => Inner::Dot(RsHnsw::new(params.m, capacity, layers, params.ef_construction, DistDot)),
            Distance::Dot => {
                return Err(EngineError::invalid_argument("hnsw_rs backend has no plain dot product"));
            }
        };
        Ok(HnswRsIndex { inner, dim, len: AtomicUsize::new(0) })
    }

    fn check(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(EngineError::Invalid(ValidationError::DimensionMismatch { expected: self.dim, got: v.len() }));
        }
        Ok(())
    }
}

impl VectorIndex for HnswRsIndex {
    fn name(&self) -> &'static str {
        "hnsw_rs"
    }

    fn insert(&self, id: u32, vector: &[f32]) -> Result<()> {
        self.check(vector)?;
        match &self.inner {
            Inner::L2(h) => h.insert_slice((vector, id as usize)),
            Inner::Dot(h) => h.insert_slice((vector, id as usize)),
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn insert_batch(&self, items: &[(u32, &[f32])]) -> Result<()> {
        for (_, v) in items {
            self.check(v)?;
        }
        let data: Vec<(&[f32], usize)> = items.iter().map(|(id, v)| (*v, *id as usize)).collect();
        match &self.inner {
            Inner::L2(h) => h.parallel_insert_slice(&data),
            Inner::Dot(h) => h.parallel_insert_slice(&data),
        }
        self.len.fetch_add(items.len(), Ordering::Relaxed);
        Ok(())
    }

    fn delete(&self, _id: u32) -> bool {
        false
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, accept: Option<Accept<'_>>) -> Vec<(u32, f32)> {
        let filter = accept.map(AcceptFilter);
        let filter_ref = filter.as_ref().map(|f| f as &dyn FilterT);
        let hits = match &self.inner {
            Inner::L2(h) => h.search_filter(query, k, ef, filter_ref),
            // hnsw_rs's L2 is the plain distance; ours is squared. Ranks agree.
            Inner::Dot(h) => h.search_filter(query, k, ef, filter_ref),
        };
        hits.into_iter().map(|n| (n.d_id as u32, n.distance)).collect()
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}
