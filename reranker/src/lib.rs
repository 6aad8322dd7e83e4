//! The reranker: re-orders search candidates, served as `vectron.v1.RerankService`
//! (`vectron reranker`, or in-process in `vectron dev`). Gateways call it with a
//! search's candidates; it is stateless apart from its configured endpoints.
//!
//! Layout:
//! - [`text`]: tokens and Okapi BM25 over a candidate set (the `rule` strategy's text
//!   relevance);
//! - [`mmr`]: maximal marginal relevance over candidate vectors (the `mmr` strategy);
//! - [`strategy`]: the `Strategy` trait, and the `mmr` and `rule` strategies;
//! - [`feedback`]: the `feedback` strategy's features, its pairwise model's training
//!   and offline score (NDCG@10), and the strategy;
//! - [`cross_encoder`]: the `cross_encoder` strategy, an external `/rerank` endpoint
//!   over HTTP (async, so beside the trait);
//! - [`service`]: the gRPC service over the strategies, and `serve`.

pub mod cross_encoder;
pub mod feedback;
pub mod mmr;
pub mod service;
pub mod strategy;
pub mod text;
