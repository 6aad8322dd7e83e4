//! Election and heartbeat timing.
//!
//! A worker hosts many groups, and an idle group still heartbeats: with openraft's
//! defaults (50 ms) 64 idle groups with two followers each cost 2,560 RPCs a second.
//! Shard groups heartbeat every 200 ms and elect after 0.8–1.6 s of silence, so a dead
//! leader is replaced within ~2 s (writes are meant to resume within 5 s) while 64 idle
//! groups cost 640 small RPCs a second: measured 1.4–2.7 % of one core per worker
//! (`IDLE_GROUPS=64 scripts/idle-raft-cost.sh`). The placement group is a single group and
//! heartbeats faster.

use openraft::{Config, SnapshotPolicy};

/// Which kind of group a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Placement,
    Shard,
}

pub fn raft_config(kind: GroupKind) -> Config {
    let (heartbeat, election_min, election_max, snapshot_every) = match kind {
        GroupKind::Placement => (150, 750, 1500, 5_000),
        GroupKind::Shard => (200, 800, 1600, 20_000),
    };
    let config = Config {
        cluster_name: match kind {
            GroupKind::Placement => "vectron-placement".into(),
            GroupKind::Shard => "vectron-shard".into(),
        },
        heartbeat_interval: heartbeat,
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        // A shard snapshot is the shard's whole data; give slow links time.
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 1_000,
        snapshot_max_chunk_size: 4 << 20,
        max_payload_entries: 64,
        ..Default::default()
    };
    config.validate().expect("static Raft timing is valid")
}
