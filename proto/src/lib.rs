//! Vectron's protobuf API contract and the code tonic generates from it.
//!
//! Layout:
//! - `proto/vectron/v1/common.proto`: ids, JSON values, filters, `ErrorCode`.
//! - `proto/vectron/v1/vectron.proto`: the public `VectronService`.
//! - `proto/vectron/v1/auth.proto`: the `AuthService` (users, API keys, tokens).
//! - `proto/vectron/v1/admin.proto`: the `AdminService` (cluster status, workers, alerts).
//! - `proto/vectron/v1/rerank.proto`: the `RerankService` gateways call to re-order
//!   search candidates.
//! - `proto/vectron/internal/v1/`: what services say to each other and clients never
//!   see: the Raft transport, the placement driver, the worker's per-shard API.
//!
//! This crate holds the contract and nothing else: no conversions, no logic.

/// Every service and message, as an encoded `FileDescriptorSet` (for reflection, and for
/// tests that walk every RPC).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vectron_descriptor");

/// The `vectron.v1` package: public service and shared types.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("vectron.v1");
}

/// The `vectron.internal.v1` package: Raft transport, placement and worker services.
#[allow(clippy::all, missing_docs)]
pub mod internal {
    // Nested like the package so that generated `super::super::v1` paths resolve.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("vectron.internal.v1");
    }
    pub use v1::*;
}
