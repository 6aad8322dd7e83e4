//! The scorer seam: a graph walk asks a [`Scorer`] how far each node it visits is from
//! the query it serves; the walk itself only follows links. [`Fused`] scores the
//! full-precision vector kept in each node's block (hnswlib's layout: one memory region
//! per visited node) and is what every walk uses today. A compressed scorer (quantized
//! codes in their own array, rescored exactly at the end) is another implementation of
//! the trait, without touching the walks.

use super::Hnsw;
use super::layout::Graph;

/// Distances from one query to graph nodes.
pub(super) trait Scorer {
    /// Distance from the query to node `id` (lower is closer).
    fn distance(&self, id: u32) -> f32;
    /// A hint that `id` is about to be scored (its memory can be fetched early).
    fn prefetch(&self, id: u32);
}

/// Scores against the vectors stored in the node blocks.
pub(super) struct Fused<'a> {
    index: &'a Hnsw,
    graph: &'a Graph,
    query: &'a [f32],
}

impl<'a> Fused<'a> {
    pub(super) fn new(index: &'a Hnsw, graph: &'a Graph, query: &'a [f32]) -> Fused<'a> {
        Fused { index, graph, query }
    }
}

impl Scorer for Fused<'_> {
    #[inline(always)]
    fn distance(&self, id: u32) -> f32 {
        self.index.metric.distance(self.query, self.index.vector(self.graph, id))
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        self.index.prefetch_node(self.graph, id);
    }
}
