//! `vectron.v1.AdminService` on the gateway's gRPC port: the cluster's status, workers
//! and alerts ([`crate::cluster`]) for admins' tools (the `vectron cluster` commands).
//! The auth layer admits only credentials with the ADMIN scope on the whole cluster
//! ([`crate::policy`]).

use tonic::Request;
use vectron_proto::v1 as pb;
use vectron_proto::v1::admin_service_server::AdminService;

use crate::api::Api;
use crate::cluster;
use crate::grpc::{Reply, reply};

/// The public admin service.
#[derive(Debug, Clone)]
pub struct AdminGrpc {
    api: Api,
}

impl AdminGrpc {
    pub fn new(api: Api) -> AdminGrpc {
        AdminGrpc { api }
    }
}

#[tonic::async_trait]
impl AdminService for AdminGrpc {
    async fn get_cluster_status(&self, _: Request<pb::GetClusterStatusRequest>) -> Reply<pb::ClusterStatus> {
        reply(cluster::status(&self.api).await)
    }

    async fn list_workers(&self, _: Request<pb::ListWorkersRequest>) -> Reply<pb::ListWorkersResponse> {
        reply(cluster::workers(&self.api).await.map(|workers| pb::ListWorkersResponse { workers }))
    }

    async fn drain_worker(&self, request: Request<pb::DrainWorkerRequest>) -> Reply<pb::Worker> {
        reply(cluster::drain(&self.api, request.into_inner().worker_id).await)
    }

    async fn remove_worker(&self, request: Request<pb::RemoveWorkerRequest>) -> Reply<pb::Worker> {
        let r = request.into_inner();
        reply(cluster::remove(&self.api, r.worker_id, r.force).await)
    }

    async fn list_alerts(&self, request: Request<pb::ListAlertsRequest>) -> Reply<pb::ListAlertsResponse> {
        let all = request.into_inner().include_resolved;
        reply(cluster::alerts(&self.api, all).await.map(|alerts| pb::ListAlertsResponse { alerts }))
    }

    async fn resolve_alert(&self, request: Request<pb::ResolveAlertRequest>) -> Reply<pb::Alert> {
        reply(cluster::resolve_alert(&self.api, request.into_inner().alert_id).await)
    }
}
