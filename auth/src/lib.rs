//! The auth service: users, API keys and JWTs, stored in etcd (or, for `vectron dev`, an
//! embedded RocksDB store).
//!
//! Layout:
//! - [`store`]: the versioned key-value interface with compare-and-set, and its etcd
//!   and embedded implementations (one conformance suite checks both).
//! - [`users`]: accounts with argon2 password hashes and roles.
//! - [`keys`]: API keys (secret shown once, stored hashed) with scopes, collection
//!   limits and rate limits; [`keys::Access`], what a request may do.
//! - [`tokens`]: JWT access tokens and rotating refresh tokens, with key ids for
//!   signing-key rotation.
//! - [`throttle`]: failed-login throttling per user and per source address.
//! - [`service`]: the `vectron.v1.AuthService` gRPC service, its server, and the
//!   first-start admin.
//! - [`setup`]: what a process does before serving: open the store, load or create
//!   signing secrets, `vectron dev`'s admin key file.
//! - [`client`]: the gateway's side: a caching client of the auth service and
//!   per-key / per-user token-bucket rate limits.
//! - [`error`]: the crate's error type, `AuthError`.
//! - `testing` (with the `testing` feature): a real etcd process for tests.
//!
//! The gateway enforces access with [`client`] (its `auth` module: one tower layer for
//! both transports, scope checks in every operation) and forwards the console's account
//! routes to [`service`]; the `vectron auth` subcommand and `vectron dev` start it with
//! [`setup`].

pub mod client;
pub mod error;
pub mod keys;
pub mod service;
pub mod setup;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod users;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use error::{AuthError, Result};

pub(crate) use vectron_common::now_ms;

/// Parses a stored JSON record, naming the key if it is corrupt.
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| AuthError::Corruption { key: key.to_owned(), reason: e.to_string() })
}
