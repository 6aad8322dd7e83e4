//! `vectron.v1.AdminService` on the gateway's gRPC port: the cluster's status, workers
//! and alerts ([`crate::cluster`]) for admins' tools (the `vectron cluster` commands).
//! The auth layer admits only credentials with the ADMIN scope on the whole cluster
//! ([`crate::policy`]); each method checks the admitted access again, so the service
//! is closed, not open, wherever it is served without that layer.

use tonic::{Request, Status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::admin_service_server::AdminService;

use crate::api::Api;
use crate::auth::{Scope, access_of, require};
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

/// The request's message, if the caller may administer the whole cluster.
fn admin<T>(request: Request<T>) -> Result<T, Status> {
    let access = access_of(request.extensions()).map_err(|e| e.to_status())?;
    require(&access, Scope::Admin, None).map_err(|e| e.to_status())?;
    Ok(request.into_inner())
}

#[tonic::async_trait]
impl AdminService for AdminGrpc {
    async fn get_cluster_status(&self, request: Request<pb::GetClusterStatusRequest>) -> Reply<pb::ClusterStatus> {
        admin(request)?;
        reply(cluster::status(&self.api).await)
    }

    async fn list_workers(&self, request: Request<pb::ListWorkersRequest>) -> Reply<pb::ListWorkersResponse> {
        admin(request)?;
        reply(cluster::workers(&self.api).await.map(|workers| pb::ListWorkersResponse { workers }))
    }

    async fn drain_worker(&self, request: Request<pb::DrainWorkerRequest>) -> Reply<pb::Worker> {
        reply(cluster::drain(&self.api, admin(request)?.worker_id).await)
    }

    async fn remove_worker(&self, request: Request<pb::RemoveWorkerRequest>) -> Reply<pb::Worker> {
        let r = admin(request)?;
        reply(cluster::remove(&self.api, r.worker_id, r.force).await)
    }

    async fn list_alerts(&self, request: Request<pb::ListAlertsRequest>) -> Reply<pb::ListAlertsResponse> {
        let all = admin(request)?.include_resolved;
        reply(cluster::alerts(&self.api, all).await.map(|alerts| pb::ListAlertsResponse { alerts }))
    }

    async fn resolve_alert(&self, request: Request<pb::ResolveAlertRequest>) -> Reply<pb::Alert> {
        reply(cluster::resolve_alert(&self.api, admin(request)?.alert_id).await)
    }
}
