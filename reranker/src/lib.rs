//! The reranker: re-orders search candidates. Built so far: the strategy trait, the `mmr`
//! and `rule` strategies and the scoring they share, tested against reference
//! computations; the service, the `cross_encoder` and `feedback` strategies and the
//! gateway's use of them come next (issue "The reranker service, feedback that is
//! kept, and the gateway's search cache").
//!
//! Layout:
//! - [`text`]: tokens and Okapi BM25 over a candidate set (the `rule` strategy's text
//!   relevance);
//! - [`mmr`]: maximal marginal relevance over candidate vectors (the `mmr` strategy);
//! - [`strategy`]: the `Strategy` trait, and the `mmr` and `rule` strategies.

pub mod mmr;
pub mod strategy;
pub mod text;
