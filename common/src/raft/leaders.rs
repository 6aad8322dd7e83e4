//! Counting the leaders a Raft node sees elected: every new term that comes with a
//! leader counts once (a re-election of the same node in a later term too — it was an
//! election all the same), the first leader included. Exported as a counter
//! (`vectron_*_raft_leader_changes_total`), so `rate()` over it shows elections where
//! `changes()` of the term gauge misses those between two scrapes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::{Node, NodeId, RaftMetrics};
use tokio::sync::watch;

/// Leaders seen since [`LeaderChanges::watch`] began, counted by a task that ends with
/// the Raft node (when its metrics channel closes).
#[derive(Debug, Clone, Default)]
pub struct LeaderChanges(Arc<AtomicU64>);

impl LeaderChanges {
    /// Starts counting the leaders `metrics` reports.
    pub fn watch<I: NodeId, N: Node>(mut metrics: watch::Receiver<RaftMetrics<I, N>>) -> LeaderChanges {
        let seen = LeaderChanges::default();
        let count = seen.0.clone();
        tokio::spawn(async move {
            let mut last: Option<(u64, I)> = None;
            loop {
                let now = {
                    let m = metrics.borrow_and_update();
                    m.current_leader.clone().map(|leader| (m.current_term, leader))
                };
                if let Some(now) = now
                    && last.as_ref() != Some(&now)
                {
                    count.fetch_add(1, Ordering::Relaxed);
                    last = Some(now);
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        seen
    }

    /// Leaders seen so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_term_with_a_leader_counts_once() {
        let m0: RaftMetrics<u64, openraft::BasicNode> = RaftMetrics::new_initial(1);
        let (tx, rx) = watch::channel(m0.clone());
        let seen = LeaderChanges::watch(rx);
        let send = |term: u64, leader: Option<u64>| {
            let mut m = m0.clone();
            m.current_term = term;
            m.current_leader = leader;
            tx.send(m).unwrap();
        };
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        settle().await;
        assert_eq!(seen.get(), 0, "no leader yet");
        for (term, leader, want) in [
            (1, Some(1), 1),
            (1, Some(1), 1), // the same leader, reported again (other metrics changed)
            (2, None, 1),    // an election under way
            (2, Some(2), 2),
            (3, Some(2), 3), // re-elected in a later term
        ] {
            send(term, leader);
            settle().await;
            assert_eq!(seen.get(), want, "term {term} leader {leader:?}");
        }
    }
}
