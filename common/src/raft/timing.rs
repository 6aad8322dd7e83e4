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

/// The least silence after which a shard replica stands for election: a shard leader
/// that heard from no quorum for this long may have been replaced.
pub const SHARD_ELECTION_TIMEOUT_MIN_MS: u64 = 800;

/// Which kind of group a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Placement,
    Shard,
}

/// When a group compacts its log: a snapshot once `snapshot_after` entries were applied
/// since the last one, keeping `keep` entries behind it for replicas that lag a little
/// (replicas further behind are sent a snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCompaction {
    pub snapshot_after: u64,
    pub keep: u64,
}

impl LogCompaction {
    /// The default for `kind`. A shard's snapshot "build" copies nothing (its state
    /// machine is persistent), so the threshold only bounds the log kept on disk.
    pub const fn default_for(kind: GroupKind) -> LogCompaction {
        match kind {
            GroupKind::Placement => LogCompaction { snapshot_after: 5_000, keep: 1_000 },
            GroupKind::Shard => LogCompaction { snapshot_after: 20_000, keep: 1_000 },
        }
    }
}

/// The Raft config of a group of `kind` with its default log compaction.
pub fn raft_config(kind: GroupKind) -> Config {
    raft_config_with(kind, LogCompaction::default_for(kind))
}

/// The Raft config of a group of `kind` compacting its log as `compaction` says.
pub fn raft_config_with(kind: GroupKind, compaction: LogCompaction) -> Config {
    let (heartbeat, election_min, election_max) = match kind {
        GroupKind::Placement => (150, 750, 1500),
        GroupKind::Shard => (200, SHARD_ELECTION_TIMEOUT_MIN_MS, 1600),
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
        snapshot_policy: SnapshotPolicy::LogsSinceLast(compaction.snapshot_after.max(1)),
        max_in_snapshot_log_to_keep: compaction.keep,
        snapshot_max_chunk_size: 4 << 20,
        max_payload_entries: 64,
        ..Default::default()
    };
    config.validate().expect("Raft timing is valid")
}
