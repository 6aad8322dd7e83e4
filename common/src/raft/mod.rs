//! Raft plumbing shared by the placement driver and the workers.
//!
//! - [`log_store`]: a RocksDB Raft log for many groups in one DB (keys prefixed by the
//!   group id), passing openraft's storage suite (run by the placement and worker crates
//!   with their state machines).
//! - [`network`]: the transport, over tonic: one HTTP/2 connection per peer carries
//!   every group the two nodes share; a [`network::RaftRouter`] on the receiving side
//!   dispatches by group id and answers SHARD_NOT_HOSTED for groups it does not host,
//!   which the sender treats as unreachable (openraft backs off).
//! - [`timing`]: election and heartbeat settings per kind of group.
//! - [`handover`]: a stopping leader hands its group to a caught-up voter.
//! - [`applied`]: the applied log id and membership every state machine records.
//! - [`leaders`]: counting the leaders a node sees elected (for the metrics).
//!
//! Node ids are `u64`: placement members number themselves from their config; workers
//! get ids from the placement driver. Groups: 0 is the placement group, a shard's group
//! id is its shard id.

pub mod applied;
pub mod codec;
pub mod handover;
pub mod leaders;
pub mod log_store;
pub mod network;
pub mod timing;

/// A Raft node id.
pub type NodeId = u64;
/// Which Raft group a message or log key belongs to.
pub type GroupId = u64;
/// The placement driver's group.
pub const PLACEMENT_GROUP: GroupId = 0;

/// Column families the Raft log keeps in the process's RocksDB.
pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_META: &str = "raft_meta";

/// Opens a process's storage (RocksDB) with the Raft column families next to the
/// engine's.
pub fn open_storage(
    path: &std::path::Path,
    durability: vectron_engine::store::Durability,
) -> Result<vectron_engine::Storage, vectron_engine::EngineError> {
    let extra_column_families = vec![CF_RAFT_LOG.to_owned(), CF_RAFT_META.to_owned()];
    vectron_engine::Storage::open(path, vectron_engine::StorageOptions { durability, extra_column_families })
}

use openraft::error::{ForwardToLeader, RaftError};
use openraft::{BasicNode, RaftMetrics, TryAsRef};
use vectron_proto::v1::ErrorCode;

use vectron_model::status::{LeaderHint, WireError};

/// The leader a node's metrics name, with its address from the membership.
pub fn leader_hint(m: &RaftMetrics<NodeId, BasicNode>) -> Option<LeaderHint> {
    let id = m.current_leader?;
    Some(LeaderHint { id, address: m.membership_config.membership().get_node(&id).map(|n| n.addr.clone()) })
}

/// A Raft API error as a typed wire error: NOT_LEADER (with the leader's id and address
/// when known) for "forward to leader", UNAVAILABLE for a node shutting down, and
/// retryable UNAVAILABLE for the rest (membership changes in progress, lost quorum).
pub fn raft_error_to_wire<E>(what: &str, e: &RaftError<NodeId, E>) -> WireError
where
    E: std::error::Error + TryAsRef<ForwardToLeader<NodeId, BasicNode>>,
{
    if let Some(f) = e.forward_to_leader::<BasicNode>() {
        let hint = f.leader_id.map(|id| LeaderHint { id, address: f.leader_node.as_ref().map(|n| n.addr.clone()) });
        return WireError::not_leader(format!("{what}: this node is not the leader"), hint);
    }
    match e {
        RaftError::Fatal(f) => WireError::new(ErrorCode::Unavailable, format!("{what}: Raft stopped: {f}"), true),
        RaftError::APIError(api) => WireError::new(ErrorCode::Unavailable, format!("{what}: {api}"), true),
    }
}
