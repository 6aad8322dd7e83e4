//! One shard's data engine: durable points, the vector index, payload filters and the
//! search planner. Synchronous by design: no async runtime, no network, no Raft; the
//! worker wraps it in a Raft state machine.
//!
//! Layout:
//! - [`types`], [`filter`]: the data model (ids, distances, points, shard configuration,
//!   limits, the filter language), from `vectron-model`, re-exported.
//! - [`error`]: [`EngineError`] with stable codes.
//! - [`distance`]: SIMD distance kernels.
//! - [`hnsw`]: our HNSW graph; [`index`]: the `VectorIndex` trait and backends.
//! - [`payload_index`]: payload field indexes answering filters as bitmaps.
//! - [`store`]: the process's RocksDB and the per-shard [`store::PointStore`].
//! - [`shard`]: [`Shard`], tying the above together; the write and search paths.

pub mod distance;
pub mod error;
pub mod hnsw;
pub mod index;
pub mod payload_index;
pub mod shard;
pub mod store;

pub use vectron_model::{Payload, ValidationError, filter, types};

pub use error::{EngineError, Result};
pub use filter::Filter;
pub use shard::{SearchPlan, SearchQuery, Shard, WriteOp};
pub use store::{Storage, StorageOptions};
pub use types::{Distance, HnswParams, Point, PointId, Record, ScoredPoint, ShardConfig, ShardId};
