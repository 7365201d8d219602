//! The control socket: `agentctl` talks gRPC over a root-only Unix socket;
//! each request becomes an [`Event`] for the daemon's loop, and its domain
//! reply is converted to the wire here.

use rigger_common::proto::agent_control_service_server::{
    AgentControlService, AgentControlServiceServer,
};
use rigger_common::proto::{
    self, AppliedCatalogRequest, GetFactsRequest, GetStatusRequest, TriggerRunRequest, run_event,
};
use std::sync::Arc;

use rigger_common::logging::LogRing;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use crate::apply::Status as OutcomeStatus;
use crate::daemon::{ControlRequest, Event};
use crate::state::RunSummary;
use crate::status::{AgentStatus, RunEvent};

/// Serves the control API on `listener` until `shutdown`, forwarding each
/// request to the daemon loop's `inbox`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    inbox: mpsc::Sender<Event>,
    logs: Arc<LogRing>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(AgentControlServiceServer::new(Control::new(inbox, logs)))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await
}

/// The control service; forwards requests to the daemon loop.
pub struct Control {
    inbox: mpsc::Sender<Event>,
    logs: Arc<LogRing>,
}

impl Control {
    /// A service sending to the loop's inbox, answering `logs` from the
    /// daemon's log ring.
    pub fn new(inbox: mpsc::Sender<Event>, logs: Arc<LogRing>) -> Self {
        Self { inbox, logs }
    }
}

fn gone() -> Status {
    Status::unavailable("the agent is shutting down")
}

#[tonic::async_trait]
impl AgentControlService for Control {
    type LogsStream = ReceiverStream<Result<proto::LogLine, Status>>;

    async fn logs(
        &self,
        request: Request<proto::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let req = request.into_inner();
        // Subscribed before the last lines are read: none falls between.
        let mut feed = req.follow.then(|| self.logs.follow());
        let last = self.logs.last(req.lines as usize);
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            for line in last {
                if tx.send(Ok(proto::LogLine { line })).await.is_err() {
                    return;
                }
            }
            let Some(feed) = feed.as_mut() else {
                return;
            };
            loop {
                let line = tokio::select! {
                    _ = tx.closed() => return,
                    line = feed.recv() => match line {
                        Ok(line) => line,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            format!("({n} lines left out: the reader fell behind)")
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                if tx.send(Ok(proto::LogLine { line })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_facts(
        &self,
        request: Request<GetFactsRequest>,
    ) -> Result<Response<proto::FactsReply>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let (tx, rx) = oneshot::channel();
        self.inbox
            .send(Event::Control(ControlRequest::Facts(tx)))
            .await
            .map_err(|_| gone())?;
        let facts = rx.await.map_err(|_| gone())?;
        let facts_json =
            serde_json::to_string(&facts).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(proto::FactsReply { facts_json }))
    }

    async fn get_catalog(
        &self,
        request: Request<AppliedCatalogRequest>,
    ) -> Result<Response<proto::CatalogReply>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let (tx, rx) = oneshot::channel();
        self.inbox
            .send(Event::Control(ControlRequest::Catalog(tx)))
            .await
            .map_err(|_| gone())?;
        let catalog_json = match rx.await.map_err(|_| gone())? {
            Some(catalog) => serde_json::to_string(&catalog.redacted())
                .map_err(|e| Status::internal(e.to_string()))?,
            None => String::new(),
        };
        Ok(Response::new(proto::CatalogReply { catalog_json }))
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<proto::AgentStatus>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let (tx, rx) = oneshot::channel();
        self.inbox
            .send(Event::Control(ControlRequest::Status(tx)))
            .await
            .map_err(|_| gone())?;
        let status = rx.await.map_err(|_| gone())?;
        Ok(Response::new(status_message(status)))
    }

    type TriggerRunStream = ReceiverStream<Result<proto::RunEvent, Status>>;

    async fn trigger_run(
        &self,
        request: Request<TriggerRunRequest>,
    ) -> Result<Response<Self::TriggerRunStream>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let (events, mut domain) = mpsc::channel(64);
        let req = request.into_inner();
        self.inbox
            .send(Event::Control(ControlRequest::Run {
                noop: req.noop,
                verify: req.verify,
                events,
            }))
            .await
            .map_err(|_| gone())?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(event) = domain.recv().await {
                let Some(message) = event_message(event) else {
                    continue;
                };
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn status_message(status: AgentStatus) -> proto::AgentStatus {
    let mut message = proto::AgentStatus {
        certname: status.certname,
        master: status.master,
        running: status.running,
        next_run_at_ms: status.next_run_at_ms,
        supervisor: status.supervisor,
        activity: status.activity,
        services: status.services.into_iter().map(Into::into).collect(),
        services_at_ms: status.services_at_ms,
        catalog_version: status.applied_version,
        catalog_digest: status.applied_digest,
        applied_at_ms: status.applied_at_ms,
        site_revision: status.applied_site_revision,
        site_commit: status.applied_site_commit.unwrap_or_default(),
        catalog_epoch: status.applied_epoch,
        catalog_expires_at_ms: status.catalog_expires_at_ms,
        ..Default::default()
    };
    use crate::run::lock::LockState;
    let (lock, holder) = match status.run_lock {
        LockState::Free => ("free", None),
        LockState::FreeAfterKilled(h) => ("free after a killed run", Some(h)),
        LockState::Held(h) => ("held", Some(h)),
        LockState::HeldByLeftover(h) => ("held by a leftover", h),
    };
    message.run_lock = lock.to_string();
    if let Some(h) = holder {
        message.run_lock_pid = h.pid;
        message.run_lock_since_ms = h.since_ms;
        message.run_lock_for = h.what;
    }
    message.agent_version = status.agent_version;
    message.agent_started_at_ms = status.agent_started_at_ms;
    message.cert_not_after_ms = status.inspection.cert_not_after_ms;
    message.cert_renews_at_ms = status.inspection.cert_renews_at_ms;
    message.cache_bytes = status.inspection.cache_bytes;
    message.mounts = status
        .inspection
        .mounts
        .into_iter()
        .map(|m| proto::MountStatus {
            path: m.path,
            wanted: m.wanted,
            mounted: m.mounted,
            matches: m.matches,
        })
        .collect();
    message.links = status
        .inspection
        .links
        .into_iter()
        .map(|l| proto::LinkStatus {
            path: l.path,
            expected: l.expected,
            target: l.target,
        })
        .collect();
    message.cache_files = status.inspection.cache_files;
    message.products = status
        .inspection
        .products
        .into_iter()
        .map(|p| proto::ProductStatus {
            product: p.product,
            version: p.version,
            level: p.level,
            release: p.release,
            current: p.current,
            kept: p.kept,
            level_source: p.level_source,
        })
        .collect();
    message.processes = status
        .inspection
        .services
        .into_iter()
        .map(|s| proto::ServiceProcess {
            name: s.name,
            pid: s.pid,
            started_at_ms: s.started_at_ms,
            started_with_version: s.started_with_version,
            started_by: s.started_by,
            restarts_after_exit: s.restarts_after_exit,
        })
        .collect();
    message.drift_repairs = status.drift_repairs;
    message.drift_at_ms = status.drift_at_ms;
    message.drift_paths = status.drift_paths;
    message.drift_watched = status.drift_watched as u32;
    if let Some(d) = status.disabled {
        message.disabled = true;
        message.disabled_reason = d.reason;
        message.disabled_by = d.by;
        message.disabled_at_ms = d.at_ms;
    }
    // What the master said last, whichever run (noop or not) asked last.
    message.held_back = [&status.last_run, &status.last_noop]
        .into_iter()
        .flatten()
        .max_by_key(|r| r.started_at_ms)
        .map(|r| r.held_back.clone())
        .unwrap_or_default();
    if let Some(n) = status.last_noop {
        message.noop_at_ms = n.started_at_ms;
        message.noop_catalog_version = n.catalog_version;
        message.noop_pending = n.changed;
        message.noop_failed = n.failed;
    }
    if let Some(s) = status.last_run {
        message.master_reachable = s.master_reachable;
        message.master_error = s.master_error;
        message.last_run_at_ms = s.started_at_ms;
        message.last_run_duration_ms = s.duration_ms;
        message.last_run_result = s.result;
        message.last_run_catalog_version = s.catalog_version;
        message.changed = s.changed;
        message.failed = s.failed;
        message.skipped = s.skipped;
        message.used_cached_catalog = s.used_cached_catalog;
        message.last_error = s.error;
        message.fetched_blobs = s.fetched_blobs;
        message.fetched_bytes = s.fetched_bytes;
        message.failures = s.failures;
    }
    message
}

/// The wire form of a run event; unchanged resources are left out.
fn event_message(event: RunEvent) -> Option<proto::RunEvent> {
    let event = match event {
        RunEvent::Resource(o) if o.status == OutcomeStatus::Unchanged => return None,
        RunEvent::Resource(o) => run_event::Event::Resource(proto::ResourceEvent {
            id: o.id,
            status: o.status.as_str().to_string(),
            message: o.message,
            diff: o.diff.unwrap_or_default(),
        }),
        RunEvent::Summary(summary) => run_event::Event::Summary(summary_message(&summary)),
        RunEvent::Fetched { done, total } => {
            run_event::Event::Fetched(proto::FetchProgress { done, total })
        }
    };
    Some(proto::RunEvent { event: Some(event) })
}

fn summary_message(summary: &RunSummary) -> proto::RunSummary {
    proto::RunSummary {
        catalog_version: summary.catalog_version,
        changed: summary.changed,
        failed: summary.failed,
        skipped: summary.skipped,
        duration_ms: summary.duration_ms,
        used_cached_catalog: summary.used_cached_catalog,
        error: summary.error.clone(),
        noop: summary.noop,
        fetched_blobs: summary.fetched_blobs,
        fetched_bytes: summary.fetched_bytes,
        master_reachable: summary.master_reachable,
        master_error: summary.master_error.clone(),
    }
}
