//! What every state machine records besides its own data: the last applied log id and
//! the last membership, persisted in the group's `raft_meta` so a restart resumes
//! where applying stopped.

use openraft::{BasicNode, Entry, EntryPayload, LogId, RaftTypeConfig, StoredMembership};
use serde::{Deserialize, Serialize};

use super::NodeId;

/// The applied position of a state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMeta {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, BasicNode>,
}

impl AppliedMeta {
    /// Records `entry` as applied (and its membership, if it carries one); returns the
    /// application data of a normal entry, which the caller applies.
    pub fn record<C>(&mut self, entry: Entry<C>) -> Option<C::D>
    where
        C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Membership(m) => {
                self.membership = StoredMembership::new(Some(entry.log_id), m);
                None
            }
            EntryPayload::Normal(data) => Some(data),
        }
    }
}
