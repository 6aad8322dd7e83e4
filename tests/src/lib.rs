//! Cross-process tests: real processes on loopback or in network namespaces (SIGKILL,
//! restart from disk, clusters, partitions, etcd).
//!
//! Layout:
//! - `src/bin/crash_writer.rs`: a process that writes acknowledged batches until killed.
//! - `tests/crash.rs`: SIGKILLs it at random moments and checks every acknowledged write.
//! - [`cluster`]: a multi-process cluster (placement, workers, gateway) on loopback, and
//!   `DevProcess`, a `vectron dev` process; `tests/cluster.rs` runs failover, healing,
//!   restart, rebalancing and API parity tests, `tests/dev.rs` the dev mode,
//!   `tests/security.rs` the security findings, `tests/internal_auth.rs` the cluster
//!   secret, `tests/auth.rs` two auth processes on one etcd.
//! - [`client`]: what tests do through the public API of a cluster (connect, create,
//!   wait for workers, find shard leaders); `tests/lifecycle.rs` stops processes with
//!   SIGTERM and checks what they hand over, and that every gRPC port reports health.
//! - [`kube`]: rendered Kubernetes manifests run as real processes on loopback (pod
//!   addresses, Service proxies, probes, rolling restarts); `tests/manifests.rs` runs the
//!   `prod` overlay under load through a rolling restart of every workload.
//! - [`in_process`]: placement, workers and a gateway in the test's own runtime, their
//!   links cut, partitioned, isolated or slowed through one fault table;
//!   `tests/in_process.rs` runs cluster scenarios on it in seconds.
//! - [`netns`]: separate hosts (network namespaces on a bridge) whose links can be cut,
//!   for `tests/partition.rs`.

pub mod client;
pub mod cluster;
pub mod in_process;
pub mod kube;
pub mod netns;

/// Dimension of the crash test's vectors.
pub const CRASH_DIM: usize = 8;

/// The vector the crash writer stores for point `id`: pseudo-random in [-1, 1), a pure
/// function of the id so the checker can recompute it.
pub fn crash_vector(id: u64) -> Vec<f32> {
    (0..CRASH_DIM as u64)
        .map(|k| {
            // splitmix64 of (id, k)
            let mut z = id.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(k.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
