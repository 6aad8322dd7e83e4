//! Vectron's data model, the part clients and servers share (the SDK depends on this
//! crate, not on the engine or the cluster plumbing).
//!
//! Layout:
//! - [`types`]: ids, distances, points, collection (shard) configuration and limits.
//! - [`payload`]: [`Payload`], a point's payload as checked compact JSON text.
//! - [`key_path`]: key paths into payloads (`a.b.c`), their checks.
//! - [`request`]: the data operations' requests as validated types (search, get,
//!   delete, scroll, count, upsert) and their limits.
//! - [`rerank`]: the `rerank` a search or a collection asks for, and the plan that
//!   settles which one runs.
//! - [`feedback`]: relevance feedback records, how they are kept (a companion
//!   collection per collection), and their statistics.
//! - [`filter`]: the payload filter language and its reference evaluator.
//! - [`vector`]: the dot product, cosine normalisation, and the checks a point passes.
//! - [`error`]: [`ValidationError`], input that breaks the model's rules.
//! - [`convert`]: protobuf ↔ model (points, payloads, filters, configs).
//! - [`status`]: the one mapping from `ErrorCode` to gRPC and HTTP statuses, and the
//!   metadata that carries codes, retry hints and routing hints to clients and back.

pub mod convert;
pub mod error;
pub mod feedback;
pub mod filter;
pub mod key_path;
pub mod payload;
pub mod request;
pub mod rerank;
pub mod status;
pub mod types;
pub mod vector;

pub use error::{Result, ValidationError};
pub use filter::Filter;
pub use payload::Payload;
pub use types::{Distance, HnswParams, Point, PointId, Record, ScoredPoint, ShardConfig, ShardId};
