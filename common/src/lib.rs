//! What several Vectron services share.
//!
//! Layout:
//! (Error codes on the wire and proto ↔ model conversions live in `vectron-model`,
//! which clients share.)
//! - [`faults`]: a controllable network for in-process test clusters (cut, slowed links).
//! - [`net`]: accepted server connections (TCP_NODELAY, TLS handshakes);
//!   [`tls`]: certificates (mutual TLS inside the cluster, TLS for clients), reloaded
//!   when their files change, and the connector internal calls go through.
//! - [`lifecycle`]: the gRPC health every port serves (readiness, liveness), and the
//!   stand-in a port serves while its service starts; [`ops`]: the plain-HTTP port for
//!   scrapers and probes (`/metrics`, `/livez`, `/readyz`).
//! - [`raft`]: the openraft plumbing of the placement driver and the workers: the
//!   RocksDB log store, the multiplexed gRPC transport, timing.
//! - [`routing`]: which shard owns a point id (hash ranges).
//! - [`placement_client`]: how workers and gateways reach the placement driver's leader.
//! - [`cluster_auth`]: the shared cluster secret that authenticates internal calls;
//!   [`secret_file`]: owner-only files for secrets.
//! - [`start`]: [`StartError`], why a placement node or a worker could not start.
//! - [`telemetry`]: the logger and OpenTelemetry traces (OTLP export, W3C context on
//!   internal calls).
//! - [`now_ms`]: wall-clock time as stored in records (created-at, heartbeats).

pub mod cluster_auth;
pub mod faults;
pub mod lifecycle;
pub mod net;
pub mod ops;
pub mod placement_client;
pub mod raft;
pub mod routing;
pub mod secret_file;
pub mod start;
pub mod telemetry;
pub mod tls;

pub use start::StartError;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
