//! The reranker: re-orders search candidates. Built so far: the scoring the strategies
//! share, tested against reference computations; the service, the strategy trait and
//! the gateway's use of it come next (issue "The reranker service, feedback that is
//! kept, and the gateway's search cache").
//!
//! Layout:
//! - [`text`]: tokens and Okapi BM25 over a candidate set (the `rule` strategy's text
//!   relevance);
//! - [`mmr`]: maximal marginal relevance over candidate vectors (the `mmr` strategy).

pub mod mmr;
pub mod text;
