//! The placement driver: an openraft group holding the cluster's metadata (workers,
//! collections, the shard map and its epoch, alerts) and the scheduler that places and
//! heals replicas.
//!
//! Layout:
//! - [`state`]: how commands change the [`ClusterState`](vectron_proto::internal::ClusterState);
//!   pure, deterministic, unit-tested.
//! - [`store`]: the Raft types and the RocksDB-persisted state machine.
//! - [`node`]: a running placement node: Raft, leader checks, proposals, liveness.
//! - [`scheduler`]: the leader's loop: down detection, replica replacement, alerts,
//!   rebalancing.
//! - [`service`]: the `Placement` gRPC service and [`service::serve`].
//! - [`metrics`]: the Prometheus collector of the cluster state and the group's Raft
//!   state (scraped on the ops port).

pub mod metrics;
pub mod node;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod store;

pub use node::{PlacementConfig, PlacementNode};
