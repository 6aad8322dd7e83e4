//! The Rust client SDK over the public gRPC API (and later the `vectron` CLI).
//!
//! Empty until the cluster issue fills it.
