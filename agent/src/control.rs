//! The control socket: `agentctl` talks gRPC over a root-only Unix socket;
//! each request becomes an [`Event`] for the daemon's loop.

use rigger_common::proto::agent_control_service_server::AgentControlService;
use rigger_common::proto::{
    AgentStatus, GetStatusRequest, ResourceEvent, RunEvent, RunSummary as RunSummaryMsg,
    TriggerRunRequest, run_event,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use crate::apply::{Outcome, Status as OutcomeStatus};
use crate::daemon::{ControlRequest, Event, RunEventSender};
use crate::state::RunSummary;

/// The control service; forwards requests to the daemon loop.
pub struct Control {
    inbox: mpsc::Sender<Event>,
}

impl Control {
    /// A service sending to the loop's inbox.
    pub fn new(inbox: mpsc::Sender<Event>) -> Self {
        Self { inbox }
    }
}

fn gone() -> Status {
    Status::unavailable("the agent is shutting down")
}

#[tonic::async_trait]
impl AgentControlService for Control {
    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let (tx, rx) = oneshot::channel();
        self.inbox
            .send(Event::Control(ControlRequest::Status(tx)))
            .await
            .map_err(|_| gone())?;
        Ok(Response::new(rx.await.map_err(|_| gone())?))
    }

    type TriggerRunStream = ReceiverStream<Result<RunEvent, Status>>;

    async fn trigger_run(
        &self,
        request: Request<TriggerRunRequest>,
    ) -> Result<Response<Self::TriggerRunStream>, Status> {
        rigger_common::grpc::check_local_peer(request.extensions().get::<UdsConnectInfo>())?;
        let (tx, rx) = mpsc::channel(64);
        let req = request.into_inner();
        self.inbox
            .send(Event::Control(ControlRequest::Run {
                noop: req.noop,
                verify: req.verify,
                events: tx,
            }))
            .await
            .map_err(|_| gone())?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Forwards a run's outcomes to an `agentctl run` stream (unchanged ones left out).
pub async fn run_event_stream(
    mut outcomes: mpsc::UnboundedReceiver<Outcome>,
    sink: RunEventSender,
) {
    while let Some(o) = outcomes.recv().await {
        if o.status == OutcomeStatus::Unchanged {
            continue;
        }
        let event = RunEvent {
            event: Some(run_event::Event::Resource(ResourceEvent {
                id: o.id,
                status: o.status.as_str().to_string(),
                message: o.message,
                diff: o.diff.unwrap_or_default(),
            })),
        };
        if sink.send(Ok(event)).await.is_err() {
            return;
        }
    }
}

/// The final event of a streamed run.
pub fn summary_event(summary: &RunSummary) -> RunEvent {
    RunEvent {
        event: Some(run_event::Event::Summary(RunSummaryMsg {
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
        })),
    }
}
