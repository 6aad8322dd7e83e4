//! Handing a group's leadership to a live peer when its leader stops cleanly.
//!
//! openraft 0.9 has no leader transfer, and a follower refuses to vote while its leader
//! lease runs (the longest election timeout after the last heartbeat). So a stopping
//! leader, once it has stopped taking writes:
//! 1. waits until a voter has every entry of its log;
//! 2. asks that voter to stand for election at once (`TakeLeadership`);
//! 3. votes for it itself, so the candidate has the leader's vote and its own, a
//!    majority of a group of two or three, and wins within a round trip;
//! 4. returns once the group has another leader.
//!
//! A leader's own lease covers its first longest-election-timeout in office (openraft
//! keeps the time its vote last changed): a leader elected moments ago would refuse the
//! vote, the candidate's failed election would unseat it, and the group would wait out
//! ordinary elections. So the hand-over first waits until the leader has led that long,
//! as [`LeaderSince`] saw it (a leader of unknown age waits the whole lease).
//!
//! Should any step fail (a peer does not answer, the group has four voters or more, so the
//! leader and one voter are no majority) the group elects a leader the ordinary way once
//! the leader is gone; a hand-over never risks safety, only time.

use std::time::Duration;

use parking_lot::Mutex;

use openraft::{BasicNode, Raft, RaftTypeConfig, ServerState};
use tokio::time::Instant;
use vectron_proto::internal::TakeLeadershipRequest;
use vectron_proto::internal::raft_transport_client::RaftTransportClient;

use super::network::PeerChannels;
use super::{GroupId, NodeId};

/// What became of a hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// This node did not lead the group: nothing to hand over.
    NotLeading,
    /// The only voter: the group stops with it.
    Alone,
    /// The group is led by this node now.
    To(NodeId),
    /// Leadership was not handed over in time (the reason); the group elects a leader
    /// the ordinary way once this node stops.
    Failed(String),
}

/// How often the hand-over looks at the group's metrics while it waits.
const POLL: Duration = Duration::from_millis(10);

/// Margin past the leader's lease before the candidate is asked (clocks are one
/// process's, but the lease is measured from a later observation only if observed late).
const LEASE_MARGIN: Duration = Duration::from_millis(100);

/// When this node was first seen leading its group, per term. The owner notes
/// leadership whenever it looks at the group's metrics anyway (each heartbeat, each
/// scheduler tick); a later observation only makes the hand-over wait a little longer.
#[derive(Debug, Default)]
pub struct LeaderSince(Mutex<Option<(u64, Instant)>>);

impl LeaderSince {
    /// Notes that this node leads in `term` (the first note of a term keeps its time).
    pub fn leading(&self, term: u64) {
        let mut since = self.0.lock();
        if since.is_none_or(|(t, _)| t != term) {
            *since = Some((term, Instant::now()));
        }
    }

    /// Since when this node has led in `term`, if it was seen leading in it.
    pub fn since(&self, term: u64) -> Option<Instant> {
        self.0.lock().filter(|(t, _)| *t == term).map(|(_, at)| at)
    }
}

/// When this node's own leader lease in office is over (see the module docs): a
/// hand-over asks the candidate no sooner. A leader of unknown age waits the whole lease
/// from now.
pub fn lease_over<C>(raft: &Raft<C>, since: &LeaderSince) -> Instant
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let term = raft.metrics().borrow().current_term;
    since.since(term).unwrap_or_else(Instant::now) + lease + LEASE_MARGIN
}

/// Hands leadership of `group` (whose Raft node here is `raft`, id `me`, leading since
/// `since` says) to its most caught-up voter, within `within`. The caller has stopped
/// proposing writes, waited for those in flight, and turned this node's own elections
/// off (`runtime_config().elect(false)`), so it does not take the group back.
pub async fn hand_over<C>(
    raft: &Raft<C>,
    me: NodeId,
    group: GroupId,
    since: &LeaderSince,
    channels: &PeerChannels,
    within: Duration,
) -> Handover
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    let deadline = Instant::now() + within;
    let not_before = lease_over(raft, since);
    let (target, address) = loop {
        let m = raft.metrics().borrow().clone();
        if m.state != ServerState::Leader || m.current_leader != Some(me) {
            return Handover::NotLeading;
        }
        let membership = m.membership_config.membership();
        let mut voters: Vec<NodeId> = membership.voter_ids().filter(|v| *v != me).collect();
        if voters.is_empty() {
            return Handover::Alone;
        }
        voters.sort_unstable();
        let matched = |v: &NodeId| m.replication.as_ref().and_then(|r| r.get(v).cloned().flatten()).map(|l| l.index);
        // The candidate needs the leader's vote and its own to win at once: only a voter
        // that with the leader is a majority of every config (a group of two or three;
        // in a joint change, of both) can be asked.
        let joint = membership.get_joint_config();
        let quorum_with =
            |v: NodeId| joint.iter().all(|c| 2 * [me, v].iter().filter(|n| c.contains(n)).count() > c.len());
        if !voters.iter().any(|v| quorum_with(*v)) {
            return Handover::Failed(format!(
                "the leader and one voter are not a majority of {} voters: the group elects the ordinary way",
                membership.voter_ids().count()
            ));
        }
        let caught_up = voters.iter().copied().find(|v| quorum_with(*v) && matched(v) >= m.last_log_index);
        if let Some(target) = caught_up.filter(|_| Instant::now() >= not_before) {
            let recorded = membership.get_node(&target).map(|n| n.addr.clone()).unwrap_or_default();
            break (target, channels.address_of(target, &recorded));
        }
        if Instant::now() >= deadline {
            let why = if caught_up.is_some() {
                "its leader lease outlasted the hand-over's time"
            } else {
                "no voter caught up with the log in time"
            };
            return Handover::Failed(why.into());
        }
        tokio::time::sleep(POLL).await;
    };
    let asked = async {
        let channel = channels.get(&address).map_err(|e| e.to_string())?;
        let mut client = RaftTransportClient::new(channel);
        let call = client.take_leadership(TakeLeadershipRequest { group });
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!("node {target} at {address}: {}", status.message())),
            Err(_) => Err(format!("node {target} at {address} did not answer in time")),
        }
    };
    if let Err(e) = asked.await {
        return Handover::Failed(e);
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let moved = raft
        .wait(Some(remaining))
        .metrics(|m| m.current_leader.is_some_and(|l| l != me), "another node leads the group")
        .await;
    match moved {
        Ok(m) => Handover::To(m.current_leader.expect("waited for a leader")),
        Err(_) => Handover::Failed(format!("node {target} was asked to lead but no other node led in time")),
    }
}
