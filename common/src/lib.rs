//! What several Vectron services share.
//!
//! Layout:
//! - [`status`]: the one mapping from `ErrorCode` to gRPC and HTTP statuses, and the
//!   metadata that carries codes and retry hints to clients and back.
//!
//! Still to come (cluster issue): configuration loading, telemetry, the openraft gRPC
//! transport and the RocksDB Raft log store used by placement and workers.

pub mod status;
