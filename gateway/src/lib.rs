//! The gateway: the public gRPC (`vectron.v1.VectronService`) and HTTP/JSON API, auth
//! layer, routing, fan-out and merge.
//!
//! Empty until the cluster issue fills it.
