//! What several Vectron services share: configuration loading, telemetry, the openraft
//! gRPC transport and the RocksDB Raft log store used by both placement and workers.
//!
//! Empty until the cluster issue ("The cluster: placement driver, Raft-replicated shards,
//! and the gateway") fills it; nothing here pretends to work yet.
