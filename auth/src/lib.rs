//! The auth service: users, JWTs, API keys with scopes, stored in etcd (or an embedded
//! store in dev mode).
//!
//! Empty until the auth issue fills it.
