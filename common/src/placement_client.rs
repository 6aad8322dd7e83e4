//! How workers and gateways talk to the placement driver.
//!
//! The driver is 1 or 3 processes; only its Raft leader serves writes and routing.
//! [`PlacementClient`] remembers which address answered last, follows NOT_LEADER hints
//! (the `vectron-leader-addr` metadata), and walks the configured addresses while no
//! leader answers, backing off, until the call's budget is spent.

use std::future::Future;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use vectron_proto::internal::placement_client::PlacementClient as Grpc;
use vectron_proto::v1::ErrorCode;

use crate::cluster_auth::ClusterChannel;
use crate::raft::network::PeerChannels;
use vectron_model::status::{WireError, from_status};

/// A leader-following client of the placement driver.
#[derive(Debug)]
pub struct PlacementClient {
    addrs: Vec<String>,
    /// The address that answered last (usually the leader).
    current: Mutex<String>,
    channels: PeerChannels,
    /// How long one call keeps retrying before giving up.
    budget: Duration,
}

impl PlacementClient {
    /// `addrs`: `host:port` of every placement node (at least one).
    pub fn new(addrs: Vec<String>) -> PlacementClient {
        PlacementClient::on(addrs, None)
    }

    /// [`PlacementClient::new`] for a node of a test network (calls go through its faults).
    pub fn on(addrs: Vec<String>, network: Option<crate::faults::NodeNetwork>) -> PlacementClient {
        let first = addrs.first().cloned().unwrap_or_default();
        PlacementClient {
            addrs,
            current: Mutex::new(first),
            channels: PeerChannels::on(network),
            budget: Duration::from_secs(10),
        }
    }

    /// Sets how long a call retries (while no leader answers) before it fails.
    pub fn with_budget(mut self, budget: Duration) -> PlacementClient {
        self.budget = budget;
        self
    }

    /// Runs `op` against the leader. Retries on NOT_LEADER (following the hint), on
    /// UNAVAILABLE and on transport errors; any other error is returned at once.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, WireError>
    where
        F: Fn(Grpc<ClusterChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.budget;
        let mut attempt = 0u32;
        loop {
            let addr = self.current.lock().clone();
            let result = match self.channels.get(&addr) {
                Ok(channel) => op(Grpc::new(channel).max_decoding_message_size(64 << 20)).await,
                Err(e) => Err(tonic::Status::unavailable(e.to_string())),
            };
            let err = match result {
                Ok(r) => return Ok(r.into_inner()),
                Err(status) => from_status(&status),
            };
            let hinted = err.leader.as_ref().and_then(|l| l.address.clone());
            match err.code {
                // A transport failure decodes as UNAVAILABLE (no metadata of ours).
                ErrorCode::NotLeader | ErrorCode::Unavailable | ErrorCode::DeadlineExceeded => {}
                _ => return Err(err),
            }
            if Instant::now() >= deadline {
                return Err(WireError::new(
                    ErrorCode::Unavailable,
                    format!("no placement leader answered within {:?}: {}", self.budget, err.message),
                    true,
                ));
            }
            {
                let mut current = self.current.lock();
                match hinted {
                    Some(leader) if leader != *current => *current = leader,
                    _ => {
                        let i = self.addrs.iter().position(|a| *a == *current).map_or(0, |i| i + 1);
                        *current = self.addrs[i % self.addrs.len().max(1)].clone();
                    }
                }
            }
            attempt += 1;
            // A hint is followed at once; walking the list backs off.
            if err.leader.is_none() || attempt > self.addrs.len() as u32 {
                tokio::time::sleep(Duration::from_millis(50u64 << attempt.min(4))).await;
            }
        }
    }
}
