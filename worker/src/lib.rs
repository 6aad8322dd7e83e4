//! A worker process: hosts shard replicas as openraft groups over `vectron-engine`,
//! serves the internal worker gRPC API, and heartbeats to the placement driver.
//!
//! Empty until the cluster issue fills it. The single-node engine it will wrap is
//! `vectron_engine::Shard`, whose `apply(log_index, WriteOp)` is already shaped for a
//! Raft state machine (idempotent on replays, applied index stored atomically).
