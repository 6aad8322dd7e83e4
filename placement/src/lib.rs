//! The placement driver: an openraft group holding cluster metadata (workers,
//! collections, shard map, epochs) and the scheduler that places and heals replicas.
//!
//! Empty until the cluster issue fills it.
