//! The `vectron.internal.v1.Placement` gRPC service, and [`serve`], which runs it with
//! the Raft transport on an already-bound listener.
//!
//! Every RPC is served by the leader; a follower answers NOT_LEADER with the leader's
//! address (the `PlacementClient` follows it).

use std::future::Future;
use std::time::Instant;

use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use vectron_common::lifecycle::Health;
use vectron_common::raft::network::RaftRouter;
use vectron_model::status::WireError;
use vectron_proto::internal as pi;
use vectron_proto::internal::placement_command::Command;
use vectron_proto::internal::placement_command_result::Result as Outcome;
use vectron_proto::internal::placement_server::{Placement, PlacementServer};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::node::{Liveness, PlacementNode};

type Reply<T> = Result<Response<T>, Status>;

fn unexpected(outcome: &Outcome) -> Status {
    WireError::new(ErrorCode::Internal, format!("unexpected placement outcome {outcome:?}"), false).to_status()
}

/// The gRPC face of a [`PlacementNode`].
#[derive(Debug, Clone)]
pub struct PlacementGrpc {
    node: PlacementNode,
}

impl PlacementGrpc {
    pub fn new(node: PlacementNode) -> PlacementGrpc {
        PlacementGrpc { node }
    }

    fn leader(&self) -> Result<(), Status> {
        self.node.ensure_leader().map_err(|e| e.to_status())
    }

    async fn propose(&self, command: Command) -> Result<Outcome, Status> {
        self.leader()?;
        self.node.propose(command).await.map_err(|e| e.to_status())
    }

    async fn propose_worker(&self, command: Command) -> Reply<pi::WorkerInfo> {
        match self.propose(command).await? {
            Outcome::Worker(w) => Ok(Response::new(w)),
            other => Err(unexpected(&other)),
        }
    }

    fn collection_info(&self, name: &str) -> Result<pi::CollectionInfo, Status> {
        let table = self.node.routing_table();
        table.collections.into_iter().find(|c| c.config.as_ref().is_some_and(|x| x.name == name)).ok_or_else(|| {
            WireError::new(ErrorCode::CollectionNotFound, format!("collection {name:?} does not exist"), false)
                .to_status()
        })
    }
}

#[tonic::async_trait]
impl Placement for PlacementGrpc {
    async fn register_worker(&self, request: Request<pi::RegisterWorkerRequest>) -> Reply<pi::RegisterWorkerResponse> {
        let r = request.into_inner();
        let Outcome::Worker(w) = self.propose(Command::RegisterWorker(r)).await? else {
            return Err(WireError::new(ErrorCode::Internal, "registration gave no worker", false).to_status());
        };
        self.node.liveness.lock().insert(w.id, Liveness { last_seen: Instant::now(), shards: vec![] });
        Ok(Response::new(pi::RegisterWorkerResponse { worker_id: w.id }))
    }

    async fn heartbeat(&self, request: Request<pi::HeartbeatRequest>) -> Reply<pi::HeartbeatResponse> {
        self.leader()?;
        let hb = request.into_inner();
        let known = self
            .node
            .view
            .read(|s| s.routing.as_ref().and_then(|r| r.workers.iter().find(|w| w.id == hb.worker_id)).cloned());
        let Some(worker) = known else {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("worker {} is not registered (removed?)", hb.worker_id),
                false,
            )
            .to_status());
        };
        self.node
            .liveness
            .lock()
            .insert(hb.worker_id, Liveness { last_seen: Instant::now(), shards: hb.shards.clone() });
        // A worker that was marked down, or moved, re-registers (which brings it up).
        let moved = !hb.address.is_empty() && hb.address != worker.address;
        if worker.state == pi::WorkerState::Down as i32 || moved {
            let address = if hb.address.is_empty() { worker.address.clone() } else { hb.address.clone() };
            let again = pi::RegisterWorkerRequest { worker_id: worker.id, address, zone: worker.zone.clone() };
            self.propose(Command::RegisterWorker(again)).await?;
            crate::scheduler::resolve_alerts(&self.node, "worker_down", &format!("worker {}", worker.id)).await;
        }
        let routing = (self.node.view.epoch() > hb.known_epoch).then(|| self.node.routing_table());
        Ok(Response::new(pi::HeartbeatResponse { routing }))
    }

    async fn list_workers(&self, _: Request<pi::ListWorkersRequest>) -> Reply<pi::ListWorkersResponse> {
        self.leader()?;
        Ok(Response::new(pi::ListWorkersResponse { workers: self.node.routing_table().workers }))
    }

    async fn drain_worker(&self, request: Request<pi::WorkerRef>) -> Reply<pi::WorkerInfo> {
        let r = request.into_inner();
        let cmd = pi::SetWorkerState { worker_id: r.worker_id, state: pi::WorkerState::Draining as i32 };
        self.propose_worker(Command::SetWorkerState(cmd)).await
    }

    async fn remove_worker(&self, request: Request<pi::WorkerRef>) -> Reply<pi::WorkerInfo> {
        self.propose_worker(Command::RemoveWorker(request.into_inner())).await
    }

    async fn create_collection(&self, request: Request<pb::CreateCollectionRequest>) -> Reply<pi::CollectionInfo> {
        let config = request.into_inner().config.ok_or_else(|| {
            WireError::new(ErrorCode::InvalidArgument, "create collection needs a config", false).to_status()
        })?;
        match self.propose(Command::CreateCollection(config)).await? {
            Outcome::Collection(c) => Ok(Response::new(c)),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_collection(
        &self,
        request: Request<pb::DeleteCollectionRequest>,
    ) -> Reply<pb::DeleteCollectionResponse> {
        self.propose(Command::DeleteCollection(request.into_inner().name)).await?;
        Ok(Response::new(pb::DeleteCollectionResponse {}))
    }

    async fn list_collections(&self, _: Request<pb::ListCollectionsRequest>) -> Reply<pi::ListCollectionsResponse> {
        self.leader()?;
        Ok(Response::new(pi::ListCollectionsResponse { collections: self.node.routing_table().collections }))
    }

    async fn get_collection_status(
        &self,
        request: Request<pb::GetCollectionStatusRequest>,
    ) -> Reply<pi::CollectionInfo> {
        self.leader()?;
        self.collection_info(&request.into_inner().name).map(Response::new)
    }

    async fn get_routing_table(
        &self,
        request: Request<pi::GetRoutingTableRequest>,
    ) -> Reply<pi::GetRoutingTableResponse> {
        self.leader()?;
        let known = request.into_inner().known_epoch;
        let routing = (self.node.view.epoch() > known || known == 0).then(|| self.node.routing_table());
        Ok(Response::new(pi::GetRoutingTableResponse { routing }))
    }

    async fn get_leader(&self, _: Request<pi::GetLeaderRequest>) -> Reply<pi::GetLeaderResponse> {
        let m = self.node.raft.metrics().borrow().clone();
        let leader = self.node.leader();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| pi::PlacementMember { id: *id, address: n.addr.clone() })
            .collect();
        Ok(Response::new(pi::GetLeaderResponse {
            leader_id: leader.as_ref().map_or(0, |l| l.id),
            leader_address: leader.and_then(|l| l.address).unwrap_or_default(),
            term: m.current_term,
            members,
        }))
    }

    async fn list_alerts(&self, request: Request<pi::ListAlertsRequest>) -> Reply<pi::ListAlertsResponse> {
        self.leader()?;
        let all = request.into_inner().include_resolved;
        let alerts =
            self.node.view.read(|s| s.alerts.iter().filter(|a| all || a.resolved_at_ms == 0).cloned().collect());
        Ok(Response::new(pi::ListAlertsResponse { alerts }))
    }

    async fn resolve_alert(&self, request: Request<pi::ResolveAlertRequest>) -> Reply<pi::Alert> {
        match self.propose(Command::ResolveAlert(request.into_inner().alert_id)).await? {
            Outcome::Alert(a) => Ok(Response::new(a)),
            other => Err(unexpected(&other)),
        }
    }

    async fn raise_alert(&self, request: Request<pi::Alert>) -> Reply<pi::Alert> {
        let a = request.into_inner();
        if a.kind.is_empty() || a.subject.is_empty() {
            return Err(
                WireError::new(ErrorCode::InvalidArgument, "an alert needs a kind and a subject", false).to_status()
            );
        }
        let alert = pi::Alert { kind: a.kind, subject: a.subject, message: a.message, ..Default::default() };
        match self.propose(Command::RaiseAlert(alert)).await? {
            Outcome::Alert(a) => Ok(Response::new(a)),
            other => Err(unexpected(&other)),
        }
    }

    async fn resolve_alerts(&self, request: Request<pi::ResolveAlertsRequest>) -> Reply<pi::ResolveAlertsResponse> {
        self.leader()?;
        let r = request.into_inner();
        let resolved = crate::scheduler::resolve_alerts(&self.node, &r.kind, &r.subject).await;
        Ok(Response::new(pi::ResolveAlertsResponse { resolved }))
    }
}

/// Serves the placement service and the Raft transport on `listener` until `shutdown`,
/// to callers holding the cluster token, and `health` to anyone.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: PlacementNode,
    router: RaftRouter,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    // Internal APIs: only processes holding the cluster secret get in; health is open to
    // probes.
    let token = node.cluster_token();
    let placement = PlacementServer::new(PlacementGrpc::new(node)).max_decoding_message_size(64 << 20);
    tonic::transport::Server::builder()
        .layer(vectron_common::telemetry::grpc_server_spans())
        .add_service(health.service())
        .add_service(InterceptedService::new(router.into_service(), token.clone().checker()))
        .add_service(InterceptedService::new(placement, token.checker()))
        .serve_with_incoming_shutdown(
            vectron_common::net::incoming(listener, vectron_common::tls::Port::Internal),
            shutdown,
        )
        .await
}
