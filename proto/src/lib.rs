//! Vectron's protobuf API contract and the code tonic generates from it.
//!
//! Layout:
//! - `proto/vectron/v1/common.proto`: ids, JSON values, filters, `ErrorCode`.
//! - `proto/vectron/v1/vectron.proto`: the public `VectronService`.
//! - `proto/vectron/v1/auth.proto`: the `AuthService` (users, API keys, tokens).
//!
//! This crate holds the contract and nothing else: no conversions, no logic.

/// The `vectron.v1` package: public service and shared types.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("vectron.v1");
}
