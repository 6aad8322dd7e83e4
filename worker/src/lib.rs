//! A worker process: hosts shard replicas as openraft groups over `vectron-engine`,
//! serves the internal worker gRPC API, and heartbeats to the placement driver.
//!
//! Layout:
//! - [`replica`]: a shard group's Raft types and its state machine over the engine's
//!   `Shard` (apply, snapshots); [`snapshot`]: the snapshot file format.
//! - [`host`]: the process's replicas, registration, heartbeats, and reconciliation
//!   with the placement driver's routing table (create, drop, move membership).
//! - [`metrics`]: the Prometheus collector of the replicas' Raft and engine state, and
//!   the worker's save and snapshot counters (scraped on the ops port).
//! - [`error`]: [`WorkerError`], why a shard call failed, with the ids it is about.
//! - [`service`]: the `Worker` gRPC service (per-shard writes and reads at a
//!   consistency level) and [`service::serve`].

pub mod error;
pub mod host;
pub mod metrics;
pub mod replica;
pub mod service;
pub mod snapshot;

pub use error::WorkerError;
pub use host::{WorkerConfig, WorkerHost};
