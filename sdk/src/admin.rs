//! `vectron.v1.AdminService`: the cluster's status, workers and alerts (admins only).

use vectron_proto::v1 as pb;

use crate::{Client, Result};

impl Client {
    /// The placement driver's leader and the cluster's totals.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatus> {
        self.call_on(
            &self.admin,
            |mut a| async move { a.get_cluster_status(pb::GetClusterStatusRequest {}).await },
            true,
        )
        .await
    }

    pub async fn list_workers(&self) -> Result<Vec<pb::Worker>> {
        let out = self
            .call_on(&self.admin, |mut a| async move { a.list_workers(pb::ListWorkersRequest {}).await }, true)
            .await?;
        Ok(out.workers)
    }

    /// Marks a worker draining: the scheduler moves its replicas away.
    pub async fn drain_worker(&self, worker_id: u64) -> Result<pb::Worker> {
        let r = pb::DrainWorkerRequest { worker_id };
        self.call_on(&self.admin, |mut a| async move { a.drain_worker(r).await }, true).await
    }

    /// Forgets a worker for good (refused while a shard would lose its last live
    /// replica, unless `force`).
    pub async fn remove_worker(&self, worker_id: u64, force: bool) -> Result<pb::Worker> {
        let r = pb::RemoveWorkerRequest { worker_id, force };
        self.call_on(&self.admin, |mut a| async move { a.remove_worker(r).await }, false).await
    }

    /// The open alerts (and resolved ones when `include_resolved`).
    pub async fn list_alerts(&self, include_resolved: bool) -> Result<Vec<pb::Alert>> {
        let r = pb::ListAlertsRequest { include_resolved };
        Ok(self.call_on(&self.admin, |mut a| async move { a.list_alerts(r).await }, true).await?.alerts)
    }

    pub async fn resolve_alert(&self, alert_id: u64) -> Result<pb::Alert> {
        let r = pb::ResolveAlertRequest { alert_id };
        self.call_on(&self.admin, |mut a| async move { a.resolve_alert(r).await }, true).await
    }
}
