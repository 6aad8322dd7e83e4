//! The worker's internal gRPC service (`vectron.internal.v1.Worker`): per-shard writes
//! through the shard's Raft leader and reads at the requested consistency, and
//! [`serve`], which runs it with the Raft transport and the health service on an
//! already-bound listener.
//!
//! Writes are proposed only by the leader (others answer NOT_LEADER with the leader's
//! address) and answered after they are committed and applied, or, with `no_wait`,
//! once the leader has queued the proposal. Reads:
//! - `LINEARIZABLE`: the leader confirms its leadership with a quorum (read index) and
//!   waits until it has applied up to it;
//! - `LEADER` (default): served by the replica that leads, while a quorum acknowledged it
//!   within the minimum election timeout (a leader cut off from its group stops serving
//!   within about a second, see `host::LEADER_LEASE_MS`);
//! - `ANY`: served by whichever replica receives it (may be stale).
//!
//! Engine reads run on a bounded read pool, except cheap searches (see [`runs_inline`]).

use std::future::Future;
use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use vectron_common::cluster_auth::ClusterToken;
use vectron_common::lifecycle::{Health, Starting};
use vectron_common::raft::network::RaftRouter;
use vectron_common::raft::raft_error_to_wire;
use vectron_engine::{Shard, WriteOp};
use vectron_model::convert::{filter_from_pb, point_ids_from_pb, record_to_pb, scored_to_pb, shard_point_from_pb};
use vectron_model::request::{Consistency, CountRequest, GetRequest, ScrollRequest, SearchRequest};
use vectron_proto::internal as pi;
use vectron_proto::internal::worker_server::{Worker, WorkerServer};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::error::WorkerError;
use crate::host::WorkerHost;
use crate::replica::ShardRequest;

type Reply<T> = Result<Response<T>, Status>;

fn status(e: WorkerError) -> Status {
    e.to_status()
}

fn engine(e: impl Into<vectron_engine::EngineError>) -> Status {
    WorkerError::Engine(e.into()).to_status()
}

/// The worker's gRPC face.
#[derive(Debug, Clone)]
pub struct WorkerGrpc {
    host: Arc<WorkerHost>,
}

impl WorkerGrpc {
    pub fn new(host: Arc<WorkerHost>) -> WorkerGrpc {
        WorkerGrpc { host }
    }

    async fn write(&self, shard_id: u64, op: WriteOp, no_wait: bool) -> Result<pi::ShardWriteResponse, Status> {
        let replica = self.host.replica(shard_id).map_err(status)?;
        // Held until the write is in the log: a stopping worker waits for it before it
        // hands the group over.
        let _permit = self.host.write_permit(&replica).map_err(status)?;
        if no_wait {
            let named = match &op {
                WriteOp::Upsert(points) => points.len() as u64,
                WriteOp::Delete(ids) => ids.len() as u64,
                WriteOp::DeleteByFilter(_) => 0,
            };
            // The leader has the entry once the proposal is queued; its outcome is not
            // awaited (the gateway validated the batch already).
            replica.raft.client_write_ff(ShardRequest(op)).await.map_err(|e| {
                status(WorkerError::Unavailable { shard_id, detail: format!("shard {shard_id} write: {e}") })
            })?;
            return Ok(pi::ShardWriteResponse { affected: named, log_index: 0 });
        }
        let response = replica.raft.client_write(ShardRequest(op)).await.map_err(|e| {
            status(WorkerError::consensus(shard_id, raft_error_to_wire(&format!("shard {shard_id} write"), &e)))
        })?;
        if let Some((code, message)) = response.data.refused {
            let code = ErrorCode::try_from(code).unwrap_or(ErrorCode::Internal);
            return Err(status(WorkerError::Refused { shard_id, code, message }));
        }
        Ok(pi::ShardWriteResponse { affected: response.data.affected, log_index: response.log_id.index })
    }

    /// The shard to read from at `consistency`.
    async fn readable(&self, shard_id: u64, consistency: Consistency) -> Result<Arc<Shard>, Status> {
        Ok(self.readable_at(shard_id, consistency).await?.0)
    }

    /// [`Self::readable`], with the replica's Raft term.
    async fn readable_at(&self, shard_id: u64, consistency: Consistency) -> Result<(Arc<Shard>, u64), Status> {
        let replica = self.host.replica(shard_id).map_err(status)?;
        match consistency {
            Consistency::Any => {}
            Consistency::Leader => self.host.ensure_leading(&replica).map_err(status)?,
            Consistency::Linearizable => {
                self.host.ensure_leading(&replica).map_err(status)?;
                replica.raft.ensure_linearizable().await.map_err(|e| {
                    status(WorkerError::consensus(
                        shard_id,
                        raft_error_to_wire(&format!("shard {shard_id} read index"), &e),
                    ))
                })?;
            }
        }
        let term = replica.raft.metrics().borrow().current_term;
        Ok((replica.shard().map_err(status)?, term))
    }
}

/// The pool engine reads run on: one thread per core. Reads are CPU-bound (graph
/// walks, distance kernels, RocksDB reads from cache); more threads than cores would
/// only add context switches.
fn read_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new().thread_name(|i| format!("vectron-read-{i}")).build().expect("read thread pool")
    })
}

/// Runs an engine read on the read pool, off the async runtime (a bounded pool, unlike
/// `spawn_blocking`'s, which grows a thread per concurrent read).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, vectron_engine::EngineError> + Send + 'static,
) -> Result<T, Status> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    read_pool().spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| status(WorkerError::ReadTaskDropped))?.map_err(engine)
}

/// Largest `ef` of a search run on the task that received it (see [`runs_inline`]).
const INLINE_MAX_EF: usize = 256;

/// Whether a search runs on the async task that received it rather than on the read
/// pool. An unfiltered search that fetches no records is a graph walk bounded by its
/// `ef` (tens to a few hundred µs, all in memory), and the hop to the pool and back
/// (two thread wake-ups) cost 20–45 µs of CPU per query, 20–35 % of such a search
/// (`vectron-bench cluster`, 100k × 128, server on one core). Filtered searches (which
/// may fall back to an exact scan of many candidates), searches that fetch payloads or
/// vectors (RocksDB reads) and large `ef` still go to the pool, like every scan.
fn runs_inline(req: &vectron_engine::SearchQuery) -> bool {
    req.filter.is_none() && !req.with_payload && !req.with_vector && req.ef.is_none_or(|ef| ef <= INLINE_MAX_EF)
}

fn missing(what: &'static str) -> Status {
    status(WorkerError::Missing { what })
}

#[tonic::async_trait]
impl Worker for WorkerGrpc {
    async fn upsert(&self, request: Request<pi::ShardUpsertRequest>) -> Reply<pi::ShardWriteResponse> {
        let pi::ShardUpsertRequest { shard_id, points, no_wait } = request.into_inner();
        // Each wire point is consumed as it is converted, its payload text shared.
        let points = points.into_iter().map(shard_point_from_pb).collect::<Result<Vec<_>, _>>().map_err(engine)?;
        self.write(shard_id, WriteOp::Upsert(points), no_wait).await.map(Response::new)
    }

    async fn delete(&self, request: Request<pi::ShardDeleteRequest>) -> Reply<pi::ShardWriteResponse> {
        let r = request.into_inner();
        let op = match r.selector.ok_or_else(|| missing("delete selector (ids or filter)"))? {
            pi::shard_delete_request::Selector::Ids(ids) => {
                WriteOp::Delete(point_ids_from_pb(&ids.ids).map_err(engine)?)
            }
            pi::shard_delete_request::Selector::Filter(f) => {
                WriteOp::DeleteByFilter(filter_from_pb(&f).map_err(engine)?)
            }
        };
        self.write(r.shard_id, op, r.no_wait).await.map(Response::new)
    }

    async fn get(&self, request: Request<pi::ShardGetRequest>) -> Reply<pb::GetResponse> {
        let r = request.into_inner();
        let q = GetRequest::try_from(r.request.ok_or_else(|| missing("request"))?).map_err(engine)?;
        let shard = self.readable(r.shard_id, q.consistency).await?;
        let records = blocking(move || shard.get(&q.ids, q.with_payload, q.with_vector)).await?;
        Ok(Response::new(pb::GetResponse { points: records.iter().map(record_to_pb).collect() }))
    }

    async fn scroll(&self, request: Request<pi::ShardScrollRequest>) -> Reply<pb::ScrollResponse> {
        let r = request.into_inner();
        let q = ScrollRequest::try_from(r.request.ok_or_else(|| missing("request"))?).map_err(engine)?;
        let from = if q.cursor.is_empty() {
            None
        } else {
            Some(vectron_engine::PointId::decode(&q.cursor).map_err(|_| status(WorkerError::BadCursor))?)
        };
        let shard = self.readable(r.shard_id, q.consistency).await?;
        let page =
            blocking(move || shard.scroll(q.filter.as_ref(), from.as_ref(), q.limit, q.with_payload, q.with_vector))
                .await?;
        Ok(Response::new(pb::ScrollResponse {
            points: page.points.iter().map(record_to_pb).collect(),
            next_cursor: page.next.map(|id| id.encode()).unwrap_or_default(),
        }))
    }

    async fn count(&self, request: Request<pi::ShardCountRequest>) -> Reply<pb::CountResponse> {
        let r = request.into_inner();
        let q = CountRequest::try_from(r.request.ok_or_else(|| missing("request"))?).map_err(engine)?;
        let shard = self.readable(r.shard_id, q.consistency).await?;
        let count = blocking(move || shard.count(q.filter.as_ref())).await?;
        Ok(Response::new(pb::CountResponse { count }))
    }

    async fn search(&self, request: Request<pi::ShardSearchRequest>) -> Reply<pi::ShardSearchResponse> {
        let r = request.into_inner();
        let SearchRequest { query, consistency, .. } =
            SearchRequest::try_from(r.request.ok_or_else(|| missing("request"))?).map_err(engine)?;
        let (shard, term) = self.readable_at(r.shard_id, consistency).await?;
        // Read before the search: the hits reflect at least this version.
        let version = pi::ShardVersion { term, applied_index: shard.applied_index() };
        let hits = if runs_inline(&query) {
            shard.search(&query).map_err(engine)?
        } else {
            blocking(move || shard.search(&query)).await?
        };
        Ok(Response::new(pi::ShardSearchResponse {
            hits: hits.iter().map(scored_to_pb).collect(),
            version: Some(version),
        }))
    }

    async fn get_shard_version(&self, request: Request<pi::ShardVersionRequest>) -> Reply<pi::ShardVersion> {
        let (shard, term) = self.readable_at(request.into_inner().shard_id, Consistency::Leader).await?;
        Ok(Response::new(pi::ShardVersion { term, applied_index: shard.applied_index() }))
    }

    async fn status(&self, _: Request<pi::WorkerStatusRequest>) -> Reply<pi::WorkerStatusResponse> {
        let replicas = self
            .host
            .replicas()
            .iter()
            .map(|r| {
                let m = r.raft.metrics().borrow().clone();
                let membership = m.membership_config.membership();
                pi::ReplicaInfo {
                    shard_id: r.shard_id,
                    leader: m.current_leader == Some(self.host.id()),
                    term: m.current_term,
                    last_applied: m.last_applied.map_or(0, |l| l.index),
                    points_count: r.slot.get().map_or(0, |s| s.len() as u64),
                    voters: membership.voter_ids().collect(),
                    learners: membership.learner_ids().collect(),
                }
            })
            .collect();
        Ok(Response::new(pi::WorkerStatusResponse { worker_id: self.host.id(), replicas }))
    }
}

/// Largest message the worker accepts (a batch of 10k × 1536-d vectors is ~60 MiB).
pub const MAX_MESSAGE_BYTES: usize = 128 << 20;

/// The worker service of `host`.
pub fn worker_server(host: Arc<WorkerHost>) -> WorkerServer<WorkerGrpc> {
    WorkerServer::new(WorkerGrpc::new(host))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Serves the worker service and the Raft transport on `listener` until `shutdown`, to
/// callers holding `token`, and `health` to anyone. The port serves from the start: until
/// the host has started and `worker` is set, worker calls are answered UNAVAILABLE at once
/// (and Raft messages SHARD_NOT_HOSTED), so callers move on instead of waiting.
pub async fn serve(
    listener: tokio::net::TcpListener,
    worker: Starting<WorkerServer<WorkerGrpc>>,
    router: RaftRouter,
    token: ClusterToken,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(vectron_common::telemetry::grpc_server_spans())
        .add_service(health.service())
        .add_service(InterceptedService::new(router.into_service(), token.clone().checker()))
        .add_service(InterceptedService::new(worker, token.checker()))
        .serve_with_incoming_shutdown(
            vectron_common::net::incoming(listener, vectron_common::tls::Port::Internal),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use vectron_engine::{Filter, SearchQuery};

    use super::{INLINE_MAX_EF, runs_inline};

    #[test]
    fn only_bounded_in_memory_searches_run_inline() {
        let plain = SearchQuery::new(vec![0.0; 4], 10);
        assert!(runs_inline(&plain));
        assert!(runs_inline(&SearchQuery { ef: Some(INLINE_MAX_EF), ..plain.clone() }));
        assert!(!runs_inline(&SearchQuery { ef: Some(INLINE_MAX_EF + 1), ..plain.clone() }));
        assert!(!runs_inline(&SearchQuery { with_payload: true, ..plain.clone() }));
        assert!(!runs_inline(&SearchQuery { with_vector: true, ..plain.clone() }));
        let filter: Filter = serde_json::from_str(r#"{"must":[{"key":"a","match":{"value":1}}]}"#).unwrap();
        assert!(!runs_inline(&SearchQuery { filter: Some(filter), ..plain }));
    }
}
