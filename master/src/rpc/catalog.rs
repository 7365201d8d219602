//! `CatalogService`: a node's catalog, its reports and its restart leases.
//! The work is in [`crate::catalogs`] and [`crate::leases`].

use rigger_common::proto::catalog_service_server::CatalogService;
use rigger_common::proto::{
    CatalogNotice, GetCatalogRequest, HeartbeatReply, HeartbeatRequest, Report, RestartLeaseHolder,
    RestartLeaseReply, RestartLeaseRequest, SignedCatalog, SubmitReportResponse,
    WatchCatalogRequest,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::{SharedState, authenticated_node};
use crate::leases::LeaseAnswer;
use crate::store::ReportRecord;
use crate::{catalogs, leases};

/// The catalog service.
pub struct Catalogs {
    state: SharedState,
}

impl Catalogs {
    /// A service over the shared state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

fn lease_reply(answer: LeaseAnswer) -> RestartLeaseReply {
    RestartLeaseReply {
        granted: answer.granted,
        group: answer.group,
        max_down: answer.max_down,
        unavailable: answer.unavailable,
        min_ready: answer.min_ready,
        holders: answer
            .holders
            .into_iter()
            .map(|l| RestartLeaseHolder {
                certname: l.certname,
                service: l.service,
                acquired_at_ms: l.acquired_at_ms,
                expires_at_ms: l.expires_at_ms,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl CatalogService for Catalogs {
    #[tracing::instrument(skip_all)]
    async fn get_catalog(
        &self,
        request: Request<GetCatalogRequest>,
    ) -> Result<Response<SignedCatalog>, Status> {
        let certname = authenticated_node(&self.state, &request, "GetCatalog").await?;
        let _place = self
            .state
            .work
            .catalog_request()
            .await
            .inspect_err(|busy| self.state.metrics.busy(busy.what))?;
        let req = request.into_inner();
        let asked = Some(req.role.as_str()).filter(|r| !r.is_empty());
        let applied = (req.applied_version > 0).then(|| crate::store::AppliedCatalog {
            epoch: req.applied_epoch.clone(),
            version: req.applied_version,
            digest: req.applied_digest.clone(),
        });
        let signed =
            catalogs::requested(&self.state, &certname, &req.facts_json, asked, applied).await?;
        let mut reply: SignedCatalog = signed.into();
        reply.ca_bundle_pem = self.state.ca.trusted_pem();
        reply.held_back = crate::rollouts::held_note(&self.state, &certname)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(node = %certname, error = %e, "cannot say why the node is held back");
                String::new()
            });
        Ok(Response::new(reply))
    }

    #[tracing::instrument(skip_all)]
    async fn submit_report(
        &self,
        request: Request<Report>,
    ) -> Result<Response<SubmitReportResponse>, Status> {
        let certname = authenticated_node(&self.state, &request, "SubmitReport").await?;
        let report: ReportRecord = request.into_inner().into();
        let services = report.services.clone();
        catalogs::record_report(&self.state, &certname, report).await?;
        leases::record_health(&self.state, &certname, &services, false).await?;
        crate::rollouts::on_health(&self.state, &certname, &services).await?;
        Ok(Response::new(SubmitReportResponse {}))
    }

    type WatchCatalogStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<CatalogNotice, Status>> + Send>>;

    #[tracing::instrument(skip_all)]
    async fn watch_catalog(
        &self,
        request: Request<WatchCatalogRequest>,
    ) -> Result<Response<Self::WatchCatalogStream>, Status> {
        let certname = authenticated_node(&self.state, &request, "WatchCatalog").await?;
        let stream = catalogs::watch(&self.state, &certname)
            .await?
            .map(|version| Ok(CatalogNotice { version }));
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(skip_all)]
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let certname = authenticated_node(&self.state, &request, "Heartbeat").await?;
        let services: Vec<leases::ServiceState> = request
            .into_inner()
            .services
            .into_iter()
            .take(64)
            .map(Into::into)
            .collect();
        leases::record_health(&self.state, &certname, &services, true).await?;
        crate::rollouts::on_health(&self.state, &certname, &services).await?;
        Ok(Response::new(HeartbeatReply {}))
    }

    #[tracing::instrument(skip_all)]
    async fn acquire_restart_lease(
        &self,
        request: Request<RestartLeaseRequest>,
    ) -> Result<Response<RestartLeaseReply>, Status> {
        let certname = authenticated_node(&self.state, &request, "AcquireRestartLease").await?;
        let req = request.into_inner();
        let answer = leases::acquire(&self.state, &certname, &req.service, req.ttl_secs).await?;
        Ok(Response::new(lease_reply(answer)))
    }

    #[tracing::instrument(skip_all)]
    async fn release_restart_lease(
        &self,
        request: Request<RestartLeaseRequest>,
    ) -> Result<Response<RestartLeaseReply>, Status> {
        let certname = authenticated_node(&self.state, &request, "ReleaseRestartLease").await?;
        let answer = leases::release(&self.state, &certname, &request.into_inner().service).await?;
        Ok(Response::new(lease_reply(answer)))
    }
}
