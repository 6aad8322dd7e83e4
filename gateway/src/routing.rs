//! The gateway's cached routing table and the retrying calls to shard replicas.
//!
//! The table comes from the placement driver (versioned by epoch) and is refreshed when
//! a worker answers STALE_EPOCH, SHARD_NOT_HOSTED or is unreachable, or when a
//! collection is not in it. Shard leaders are learned from the table and from
//! NOT_LEADER hints, per shard, without waiting for a refresh. A call that a replica is
//! slow to answer is tried once on the next replica beside it (see [`Router::call_shard`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::RwLock;
use vectron_common::cluster_auth::ClusterChannel;
use vectron_common::faults::NodeNetwork;
use vectron_common::placement_client::PlacementClient;
use vectron_common::raft::network::PeerChannels;
use vectron_model::status::{from_status, is_transport_error};
use vectron_proto::internal as pi;
use vectron_proto::internal::worker_client::WorkerClient;
use vectron_proto::internal::worker_server::Worker;
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::error::GatewayError;

/// Largest message exchanged with workers.
const MAX_MESSAGE_BYTES: usize = 128 << 20;

/// A handle on a worker's shard service: a gRPC client, or the service itself when
/// the worker runs in the gateway's process (`vectron dev`), called without encoding
/// or a network hop.
#[derive(Clone)]
pub enum WorkerConn {
    Remote(WorkerClient<ClusterChannel>),
    Local(Arc<dyn Worker>),
}

/// The shard calls, the same on both kinds of handle.
macro_rules! worker_calls {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        impl WorkerConn {
            $(
                pub async fn $method(self, request: $request) -> Result<tonic::Response<$response>, tonic::Status> {
                    match self {
                        WorkerConn::Remote(mut client) => client.$method(request).await,
                        WorkerConn::Local(worker) => worker.$method(tonic::Request::new(request)).await,
                    }
                }
            )*
        }
    };
}

worker_calls! {
    upsert(pi::ShardUpsertRequest) -> pi::ShardWriteResponse;
    delete(pi::ShardDeleteRequest) -> pi::ShardWriteResponse;
    get(pi::ShardGetRequest) -> pb::GetResponse;
    scroll(pi::ShardScrollRequest) -> pb::ScrollResponse;
    count(pi::ShardCountRequest) -> pb::CountResponse;
    search(pi::ShardSearchRequest) -> pi::ShardSearchResponse;
    get_shard_version(pi::ShardVersionRequest) -> pi::ShardVersion;
}

/// A worker's failed answer as a typed error. A status without Vectron's error metadata
/// and with a code the transport uses (connection refused or reset, an HTTP/2 error, a
/// cancelled stream) did not come from the worker's service: it is UNAVAILABLE and
/// retryable, and says a write may or may not have been applied (retrying one is safe:
/// writes are idempotent by id).
fn worker_error(status: &tonic::Status, shard_id: u64, worker: u64, address: &str) -> GatewayError {
    if !is_transport_error(status) {
        return GatewayError::Shard { shard_id, error: from_status(status) };
    }
    GatewayError::Transport { shard_id, worker, address: address.to_owned(), message: status.message().to_owned() }
}

/// The collection named `name` in `table`.
fn find_collection<'a>(table: &'a pi::RoutingTable, name: &str) -> Option<&'a pi::CollectionInfo> {
    table.collections.iter().find(|c| c.config.as_ref().is_some_and(|x| x.name == name))
}

/// A worker in the gateway's own process.
#[derive(Clone)]
pub struct LocalWorker {
    /// The address the worker registered with (the one routing tables name).
    pub address: String,
    pub service: Arc<dyn Worker>,
}

impl std::fmt::Debug for LocalWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWorker").field("address", &self.address).finish_non_exhaustive()
    }
}

/// A collection as the gateway routes it.
#[derive(Debug, Clone)]
pub struct CollectionRoute {
    pub info: pi::CollectionInfo,
    pub epoch: u64,
}

/// Cached routing and worker connections.
#[derive(Debug)]
pub struct Router {
    placement: PlacementClient,
    table: RwLock<Arc<pi::RoutingTable>>,
    /// Leaders learned from NOT_LEADER hints since the table was fetched.
    leaders: RwLock<HashMap<u64, u64>>,
    channels: PeerChannels,
    local: Option<LocalWorker>,
    /// Serialises refreshes so a burst of stale answers costs one fetch.
    refreshing: tokio::sync::Mutex<()>,
    /// Each shard's recent answer time, for how long an attempt is waited on alone.
    latency: RwLock<HashMap<u64, Duration>>,
}

/// Bounds of how long an attempt is waited on before the next replica is tried beside
/// it.
const MIN_PATIENCE: Duration = Duration::from_millis(200);
const MAX_PATIENCE: Duration = Duration::from_secs(2);

impl Router {
    /// A router for the placement driver behind `placement`; `local` is a worker in
    /// this process, called directly instead of over loopback.
    pub fn new(placement: PlacementClient, local: Option<LocalWorker>) -> Router {
        Router::on(placement, local, None)
    }

    /// [`Router::new`] for a gateway of a test network (calls to workers go through its
    /// faults).
    pub fn on(placement: PlacementClient, local: Option<LocalWorker>, network: Option<NodeNetwork>) -> Router {
        Router {
            placement,
            table: RwLock::new(Arc::new(pi::RoutingTable::default())),
            leaders: RwLock::new(HashMap::new()),
            channels: PeerChannels::on(network),
            local,
            refreshing: tokio::sync::Mutex::new(()),
            latency: RwLock::new(HashMap::new()),
        }
    }

    pub fn placement(&self) -> &PlacementClient {
        &self.placement
    }

    pub fn table(&self) -> Arc<pi::RoutingTable> {
        self.table.read().clone()
    }

    /// Fetches the table if the placement driver has a newer one than `seen`.
    pub async fn refresh(&self, seen: u64) -> Result<Arc<pi::RoutingTable>, GatewayError> {
        let _one = self.refreshing.lock().await;
        let current = self.table();
        if current.epoch > seen {
            return Ok(current); // someone else refreshed meanwhile
        }
        let response = self
            .placement
            .call(|mut c| async move { c.get_routing_table(pi::GetRoutingTableRequest { known_epoch: 0 }).await })
            .await
            .map_err(GatewayError::Placement)?;
        if let Some(table) = response.routing {
            let table = Arc::new(table);
            *self.table.write() = table.clone();
            self.leaders.write().clear();
            return Ok(table);
        }
        Ok(self.table())
    }

    /// Fetches the current table whatever the cached one is.
    pub async fn refresh_now(&self) -> Result<Arc<pi::RoutingTable>, GatewayError> {
        self.refresh(self.table().epoch).await
    }

    /// The route of `name`, refreshing the table once if it is not known.
    pub async fn collection(&self, name: &str) -> Result<CollectionRoute, GatewayError> {
        let table = self.table();
        if let Some(info) = find_collection(&table, name) {
            return Ok(CollectionRoute { info: info.clone(), epoch: table.epoch });
        }
        let table = self.refresh(table.epoch).await?;
        find_collection(&table, name)
            .map(|info| CollectionRoute { info: info.clone(), epoch: table.epoch })
            .ok_or_else(|| GatewayError::CollectionNotFound { name: name.to_owned() })
    }

    /// Whether the cached table holds a collection named `name` (no refresh).
    pub fn knows(&self, name: &str) -> bool {
        find_collection(&self.table(), name).is_some()
    }

    /// Replicas of `shard` in the order to try: the known leader first.
    fn candidates(&self, shard: &pi::ShardInfo) -> Vec<u64> {
        let leader = self.leaders.read().get(&shard.id).copied().or((shard.leader != 0).then_some(shard.leader));
        let mut order: Vec<u64> = leader.into_iter().collect();
        order.extend(shard.replicas.iter().copied().filter(|w| Some(*w) != leader));
        order
    }

    fn client(&self, addr: &str) -> Result<WorkerConn, String> {
        if let Some(local) = self.local.as_ref().filter(|l| l.address == addr) {
            return Ok(WorkerConn::Local(local.service.clone()));
        }
        let channel = self.channels.get(addr).map_err(|e| e.to_string())?;
        Ok(WorkerConn::Remote(
            WorkerClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        ))
    }

    /// How long to wait on an attempt at `shard_id` before trying the next replica beside
    /// it: a few times the shard's recent answer time, within bounds.
    fn patience(&self, shard_id: u64) -> Duration {
        let typical = self.latency.read().get(&shard_id).copied().unwrap_or(MAX_PATIENCE / 4);
        (typical * 4).clamp(MIN_PATIENCE, MAX_PATIENCE)
    }

    /// Folds an answer's time into the shard's recent answer time (an exponential
    /// average: a fifth of each new answer).
    fn note_latency(&self, shard_id: u64, took: Duration) {
        let mut latency = self.latency.write();
        let typical = latency.entry(shard_id).or_insert(took);
        *typical = (*typical * 4 + took) / 5;
    }

    /// An attempt's answer: the call's result (its time noted), or the replica that
    /// refused it and why. Either way that replica is no longer waited on.
    fn settle<T>(
        &self,
        shard_id: u64,
        waiting_on: &mut Vec<u64>,
        (who, addr, started, answer): (u64, String, Instant, Result<tonic::Response<T>, tonic::Status>),
    ) -> Result<T, (u64, GatewayError)> {
        waiting_on.retain(|w| *w != who);
        match answer {
            Ok(r) => {
                self.note_latency(shard_id, started.elapsed());
                Ok(r.into_inner())
            }
            Err(status) => Err((who, worker_error(&status, shard_id, who, &addr))),
        }
    }

    /// Calls `op` on a replica of `shard_id` (the leader first), following NOT_LEADER
    /// hints and moving to other replicas or a fresher table on routing errors, until
    /// `deadline`. Other errors are returned at once.
    ///
    /// An attempt that has not answered within the shard's [`Router::patience`] is not
    /// given up on: the next replica is tried beside it (once per call), and the first
    /// answer that settles the call wins. A replica is never sent the same call twice at
    /// once, so a slow leader's write is not repeated to it; a read at ANY consistency is
    /// hedged to a follower.
    pub async fn call_shard<T, F, Fut>(
        &self,
        collection: &str,
        shard_id: u64,
        deadline: Instant,
        op: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn(WorkerConn) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempt: u32 = 0;
        let mut last: Option<GatewayError> = None;
        let mut tried_next: usize = 0;
        // Replicas that did not answer during this call: a follower's stale hint
        // pointing at one of them (the old leader, until it notices) is not followed.
        let mut unreachable: Vec<u64> = Vec::new();
        // Attempts sent and not answered yet, and the replicas they went to.
        let mut in_flight = FuturesUnordered::new();
        let mut waiting_on: Vec<u64> = Vec::new();
        // One replica is tried beside a slow one per call, no more: a slow leader's big
        // write costs a follower one refusal, not one per patience.
        let mut hedged = false;
        loop {
            // PERF: on every shard call; borrows the cached table instead of cloning the
            // collection's route.
            let table = self.table();
            let shard = table
                .collections
                .iter()
                .filter(|c| c.config.as_ref().is_some_and(|x| x.name == collection))
                .flat_map(|c| c.shards.iter())
                .find(|s| s.id == shard_id);
            let Some(shard) = shard else {
                // The collection was deleted (or resharded) since the caller looked it up.
                if !table.collections.iter().any(|c| c.config.as_ref().is_some_and(|x| x.name == collection)) {
                    return Err(GatewayError::CollectionNotFound { name: collection.to_owned() });
                }
                return Err(GatewayError::ShardGone { shard_id, collection: collection.to_owned() });
            };
            let order = self.candidates(shard);
            let candidate = order[tried_next % order.len().max(1)];
            let unsent = if waiting_on.contains(&candidate) {
                None // already asked: wait for it (or for another replica)
            } else {
                match table.workers.iter().find(|w| w.id == candidate).map(|w| w.address.clone()) {
                    None => Some(GatewayError::Transport {
                        shard_id,
                        worker: candidate,
                        address: String::new(),
                        message: "the routing table has no address for it".into(),
                    }),
                    Some(addr) => match self.client(&addr) {
                        Err(message) => {
                            Some(GatewayError::Transport { shard_id, worker: candidate, address: addr, message })
                        }
                        Ok(client) => {
                            let answer = op(client);
                            let started = Instant::now();
                            in_flight.push(async move { (candidate, addr, started, answer.await) });
                            waiting_on.push(candidate);
                            None
                        }
                    },
                }
            };
            let (target, err) = match unsent {
                Some(err) => (candidate, err),
                None => {
                    let patience = self.patience(shard_id);
                    tokio::select! {
                        Some(answered) = in_flight.next() => match self.settle(shard_id, &mut waiting_on, answered) {
                            Ok(r) => return Ok(r),
                            Err(refused) => refused,
                        },
                        // Slow: the next replica beside it (once).
                        _ = tokio::time::sleep(patience), if !hedged => {
                            hedged = true;
                            tried_next += 1;
                            continue;
                        }
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            return Err(GatewayError::ShardTimeout { shard_id });
                        }
                    }
                }
            };
            let hint = match &err {
                GatewayError::Shard { error, .. } => error.leader.clone(),
                _ => None,
            };
            match err.code() {
                ErrorCode::NotLeader => match &hint {
                    Some(hint) if hint.id != target && !unreachable.contains(&hint.id) => {
                        self.leaders.write().insert(shard_id, hint.id);
                        tried_next = 0;
                    }
                    _ => tried_next += 1, // an election is going on
                },
                ErrorCode::ShardNotHosted | ErrorCode::StaleEpoch | ErrorCode::Unavailable => {
                    if err.code() == ErrorCode::Unavailable && !unreachable.contains(&target) {
                        unreachable.push(target);
                    }
                    self.leaders.write().remove(&shard_id);
                    tried_next += 1;
                    if tried_next.is_multiple_of(order.len().max(1)) {
                        let _ = self.refresh(table.epoch).await;
                    }
                }
                _ => return Err(err),
            }
            attempt += 1;
            if Instant::now() >= deadline {
                let last = last.unwrap_or(err);
                return Err(GatewayError::NoLeader { shard_id, last: last.to_string() });
            }
            last = Some(err);
            // Back off once every replica was tried (an election takes ~1-2 s); short
            // pauses, so writes resume soon after a new leader is elected. An attempt
            // still out may answer meanwhile.
            if attempt as usize >= order.len() {
                let pause = Duration::from_millis(25u64 << attempt.min(5) as u64).min(Duration::from_millis(150));
                let pause = tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        Some(answered) = in_flight.next() => match self.settle(shard_id, &mut waiting_on, answered) {
                            Ok(r) => return Ok(r),
                            Err((who, err)) => match err.code() {
                                // The next round asks again.
                                ErrorCode::NotLeader | ErrorCode::ShardNotHosted | ErrorCode::StaleEpoch => {}
                                ErrorCode::Unavailable => {
                                    if !unreachable.contains(&who) {
                                        unreachable.push(who);
                                    }
                                }
                                // What the replica answered, as it is.
                                _ => return Err(err),
                            },
                        },
                        _ = &mut pause => break,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_failure_is_unavailable_and_retryable_and_a_workers_error_is_its_own() {
        for status in [tonic::Status::unknown("transport error"), tonic::Status::internal("h2 protocol error: reset")] {
            let e = worker_error(&status, 3, 2, "10.0.0.2:9090").to_wire();
            assert_eq!((e.code, e.retryable), (ErrorCode::Unavailable, true), "{status:?}");
            assert!(e.message.contains("may or may not have been applied"), "{}", e.message);
            assert!(e.message.contains("shard 3") && e.message.contains("10.0.0.2:9090"), "{}", e.message);
        }
        let refused =
            vectron_model::status::WireError::new(ErrorCode::Internal, "the shard's storage failed", false).to_status();
        let e = worker_error(&refused, 3, 2, "10.0.0.2:9090").to_wire();
        assert_eq!((e.code, e.retryable), (ErrorCode::Internal, false));
        let undecodable = tonic::Status::internal("failed to decode Protobuf message");
        let e = worker_error(&undecodable, 3, 2, "a").to_wire();
        assert_eq!((e.code, e.retryable), (ErrorCode::Internal, false), "not the transport's");
        let too_large = tonic::Status::out_of_range("decoded message length too large");
        assert_eq!(worker_error(&too_large, 3, 2, "a").code(), ErrorCode::PayloadTooLarge);
    }
}
