//! What several Vectron services share.
//!
//! Layout:
//! - [`status`]: the one mapping from `ErrorCode` to gRPC and HTTP statuses, and the
//!   metadata that carries codes, retry hints and routing hints to clients and back.
//! - [`convert`]: proto ↔ engine types (points, payloads, filters).
//! - [`net`]: accepted server connections (TCP_NODELAY).
//! - [`raft`]: the openraft plumbing of the placement driver and the workers: the
//!   RocksDB log store, the multiplexed gRPC transport, timing.
//! - [`routing`]: which shard owns a point id (hash ranges).
//! - [`placement_client`]: how workers and gateways reach the placement driver's leader.

pub mod convert;
pub mod net;
pub mod placement_client;
pub mod raft;
pub mod routing;
pub mod status;
