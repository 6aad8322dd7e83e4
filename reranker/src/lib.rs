//! The reranker service: re-orders search candidates behind one strategy trait.
//!
//! Empty until a later issue fills it.
