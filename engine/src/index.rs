//! The `VectorIndex` trait: what the engine needs from an approximate nearest-neighbour
//! index, so that backends can be swapped and compared on the same data.
//!
//! Backends: [`Hnsw`](crate::hnsw::Hnsw), our own (the shard's index), and, with the
//! `hnsw-rs` feature, [`HnswRsIndex`] over the hnsw_rs crate, kept so the benchmark can
//! show the two side by side.

#[cfg(feature = "hnsw-rs")]
mod hnsw_rs_backend;
#[cfg(feature = "hnsw-rs")]
pub use hnsw_rs_backend::HnswRsIndex;

use crate::error::Result;
use crate::hnsw::{Connectivity, Hnsw};

/// Predicate over internal ids a search result must satisfy.
pub type Accept<'a> = &'a (dyn Fn(u32) -> bool + Sync);

/// An approximate nearest-neighbour index over vectors with caller-chosen dense ids.
/// Distances are internal: lower is closer (see [`crate::distance`]).
pub trait VectorIndex: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// Inserts a vector under a new id. Safe to call from several threads.
    fn insert(&self, id: u32, vector: &[f32]) -> Result<()>;
    /// Inserts many vectors, in parallel where the backend can.
    fn insert_batch(&self, items: &[(u32, &[f32])]) -> Result<()> {
        use rayon::prelude::*;
        items.par_iter().try_for_each(|(id, v)| self.insert(*id, v))
    }
    /// Removes an id from results. Returns false if the backend cannot delete or the id
    /// was absent.
    fn delete(&self, id: u32) -> bool;
    /// The `k` nearest accepted ids, nearest first, with their internal distance.
    fn search(&self, query: &[f32], k: usize, ef: usize, accept: Option<Accept<'_>>) -> Vec<(u32, f32)>;
    /// Vectors held, deleted ones included.
    fn len(&self) -> usize;
    /// Graph connectivity, where the backend can tell.
    fn connectivity(&self) -> Option<Connectivity> {
        None
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl VectorIndex for Hnsw {
    fn name(&self) -> &'static str {
        "vectron-hnsw"
    }

    fn insert(&self, id: u32, vector: &[f32]) -> Result<()> {
        Hnsw::insert(self, id, vector)
    }

    fn delete(&self, id: u32) -> bool {
        Hnsw::delete(self, id)
    }

    fn search(&self, query: &[f32], k: usize, ef: usize, accept: Option<Accept<'_>>) -> Vec<(u32, f32)> {
        match accept {
            None => Hnsw::search(self, query, k, ef, |_| true),
            Some(f) => Hnsw::search(self, query, k, ef, f),
        }
    }

    fn len(&self) -> usize {
        Hnsw::len(self)
    }

    fn connectivity(&self) -> Option<Connectivity> {
        Some(Hnsw::connectivity(self))
    }
}
