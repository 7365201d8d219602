//! What the daemon tells `agentctl`, in domain types: the agent's status and
//! the events of a requested run. The control socket converts them at its
//! own door.

use tokio::sync::mpsc;

use crate::apply::Outcome;
use crate::state::RunSummary;

/// The agent as `agentctl status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// The node's certname ("" before enrollment).
    pub certname: String,
    /// The master's address.
    pub master: String,
    /// Whether a run is in progress.
    pub running: bool,
    /// The run lock: free, held (by whom), or left by a killed run.
    pub run_lock: crate::run::lock::LockState,
    /// When the next periodic run starts, Unix ms.
    pub next_run_at_ms: i64,
    /// What the supervisor did last between runs (or why a server stays down).
    pub supervisor: String,
    /// What the run in progress waits for ("" when nothing).
    pub activity: String,
    /// The last run that enforced a catalog, if any.
    pub last_run: Option<RunSummary>,
    /// The last noop run, if any (what it would change).
    pub last_noop: Option<RunSummary>,
    /// The catalog version that runs (0: none yet), its digest and when it
    /// was applied.
    pub applied_version: u64,
    /// Its digest.
    pub applied_digest: String,
    /// When, Unix ms (0: unknown).
    pub applied_at_ms: i64,
    /// The site revision it was compiled from, and the site's commit.
    pub applied_site_revision: String,
    /// The site's git commit, when the site is a checkout.
    pub applied_site_commit: Option<String>,
    /// The applied catalog's master epoch ("" before epochs).
    pub applied_epoch: String,
    /// When the catalog in force expires, Unix ms (0: never).
    pub catalog_expires_at_ms: i64,
    /// Changes made outside the agent that it repaired since it started.
    pub drift_repairs: u64,
    /// When the last one was seen, Unix ms (0: none).
    pub drift_at_ms: i64,
    /// Which managed paths it changed (for the share: what the poll
    /// found, `id: change`).
    pub drift_paths: String,
    /// How many managed paths are watched for drift.
    pub drift_watched: usize,
    /// The agent's version.
    pub agent_version: String,
    /// Since when the daemon runs, Unix ms.
    pub agent_started_at_ms: i64,
    /// What is on the node now.
    pub inspection: crate::inspect::Inspection,
    /// Why the agent does not run on its own, if it is disabled.
    pub disabled: Option<crate::state::Disabled>,
    /// The services of the applied catalog, as last looked at.
    pub services: Vec<rigger_common::report::ServiceHealth>,
    /// When, Unix ms (0: not yet).
    pub services_at_ms: i64,
}

/// An event of a run requested over the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// A resource's outcome, as it happens.
    Resource(Outcome),
    /// A release's content being fetched: bytes so far and in all.
    Fetched {
        /// Bytes so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// The run's summary, last.
    Summary(RunSummary),
}

/// Where a requested run's events go.
pub type RunEventSender = mpsc::Sender<RunEvent>;
