//! One agent run: take the run lock, gather facts, fetch and verify the
//! catalog (or fall back to the cached one when the master is unreachable),
//! apply it, remember it and report to the master.
//!
//! Rooms: [`lock`] (the run lock), [`content`] (what a catalog needs fetched,
//! and the cache's garbage), [`supervise`] (exited servers between runs).

pub mod content;
pub mod lock;
mod push;
mod renew;
pub use push::WatchError;
mod supervise;
#[cfg(test)]
mod tests;
mod timings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rigger_common::catalog::Catalog;
use rigger_common::error_chain;
use rigger_common::signing::{SignedCatalog, verify_catalog};
use rigger_common::time::now_ms;
use tokio::sync::mpsc;

use crate::apply::{self, ApplyReport, Outcome};
use crate::client::{
    CatalogRequest, Connector, GrpcConnector, MasterClient, MasterError, ReportedOutcome, RunReport,
};
use crate::config::AgentConfig;
use crate::facts;
use crate::identity::{self, EnrollSettings, Identity};
use crate::paths::Paths;
use crate::resources::ApplyContext;
use crate::state::{RunSummary, StateDir};
use lock::{LockError, RunLock};

/// How long a run waits for another run (e.g. `--once` beside the daemon).
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// A run-level failure: nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Enrollment or stored identity.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// State directory.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The fetched (or cached) catalog may not be applied.
    #[error("catalog refused: {0}")]
    Refused(String),
    /// No catalog: master unreachable and nothing cached.
    #[error("no catalog to apply: {0}")]
    NoCatalog(String),
    /// Another run holds the lock, or it cannot be taken.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The apply thread died.
    #[error("apply task failed: {0}")]
    ApplyTask(String),
}

/// A connection to the master, or why there is none.
type Connection = Result<Arc<dyn MasterClient>, MasterError>;

/// The agent: configuration, paths and (once enrolled) identity.
pub struct Agent {
    /// Resolved configuration.
    pub config: AgentConfig,
    /// File layout.
    pub paths: Paths,
    /// State directory.
    pub state: StateDir,
    /// The node's identity once loaded or enrolled; replaced when the
    /// certificate is renewed.
    identity: std::sync::RwLock<Option<Arc<Identity>>>,
    /// Held while enrolling or renewing: one at a time.
    identity_change: tokio::sync::Mutex<()>,
    /// The cached catalog as last verified, with the cache file's
    /// modification time: runs and supervisor ticks verify it again only
    /// when the file changed (another run, e.g. `--once`, may write it).
    applied: std::sync::Mutex<Option<(std::time::SystemTime, Arc<Catalog>)>>,
    /// Opens the connection to the master for each run.
    connector: Arc<dyn Connector>,
    /// What the run in progress waits for (shown by `agentctl status`).
    activity: crate::lease::Activity,
    /// Cancelled when the agent stops (SIGTERM): long waits give up.
    stopping: tokio_util::sync::CancellationToken,
    /// What the daemon's `/metrics` shows.
    pub metrics: crate::metrics::AgentMetrics,
}

/// What a run tells whoever asked for it, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum RunProgress {
    /// A resource's outcome.
    Resource(Outcome),
    /// A release's content being fetched: bytes so far and in all.
    Fetched {
        /// Bytes written to the cache so far.
        done: u64,
        /// Bytes the fetch needs.
        total: u64,
    },
}

/// What a catalog fetch produced.
struct Fetched {
    signed: SignedCatalog,
    held_back: String,
    from_cache: bool,
    master: Option<Arc<dyn MasterClient>>,
    master_error: String,
    master_reachable: bool,
}

impl Agent {
    /// An agent for `config`, talking gRPC to its configured master.
    pub fn new(config: AgentConfig) -> Self {
        let connector = Arc::new(GrpcConnector {
            master: config.master.clone(),
            timeout: config.timeout,
        });
        Self::with_connector(config, connector)
    }

    /// An agent whose runs reach their master through `connector` (tests
    /// pass an in-memory master).
    pub fn with_connector(config: AgentConfig, connector: Arc<dyn Connector>) -> Self {
        let paths = Paths::new(&config.root);
        let state = StateDir::new(paths.state_dir());
        Self {
            config,
            paths,
            state,
            identity: std::sync::RwLock::new(None),
            identity_change: tokio::sync::Mutex::new(()),
            applied: std::sync::Mutex::new(None),
            connector,
            activity: crate::lease::Activity::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
            metrics: Default::default(),
        }
    }

    /// Cancelled when the agent is stopping; runs in progress end early.
    pub fn stopping(&self) -> &tokio_util::sync::CancellationToken {
        &self.stopping
    }

    /// What the run in progress is waiting for ("" when nothing).
    pub fn activity(&self) -> String {
        self.activity.get()
    }

    /// The node's identity, enrolling on first use.
    pub async fn identity(&self) -> Result<Arc<Identity>, RunError> {
        if let Some(identity) = self.loaded_identity() {
            return Ok(identity);
        }
        let _changing = self.identity_change.lock().await;
        if let Some(identity) = self.loaded_identity() {
            return Ok(identity);
        }
        self.state.ensure()?;
        let stored = identity::load(&self.paths.ssl_dir())?;
        let certname = match (&self.config.certname, &stored) {
            (_, Some(id)) => id.certname.clone(),
            (Some(name), None) => name.clone(),
            (None, None) => facts::default_certname(&facts::gather(&self.config.imds).await),
        };
        let settings = EnrollSettings {
            master: self.config.master.clone(),
            certname,
            ca_cert: self.config.ca_cert.clone(),
            ca_fingerprint: self.config.ca_fingerprint,
            token: self.config.token.clone(),
            ec2: self.config.imds.instance_identity().await,
            role: self.config.role.clone(),
            timeout: self.config.timeout,
        };
        let identity = Arc::new(identity::ensure(&self.paths.ssl_dir(), &settings).await?);
        self.set_identity(identity.clone());
        Ok(identity)
    }

    /// The node's identity and a connection to its master made with it.
    /// On a process's first run the stored identity connects while its
    /// check runs (the check asks IMDS whether the identity is this
    /// instance's): the connection is used only once the check returns the
    /// same credentials, and an identity the check replaces (another
    /// instance's, an expired one) connects again with the new one. The
    /// early connection makes no request.
    async fn identity_and_connection(&self) -> Result<(Arc<Identity>, Connection), RunError> {
        let stored = match self.loaded_identity() {
            Some(_) => None,
            // A damaged identity is left to `identity()` to report.
            None => identity::load(&self.paths.ssl_dir()).ok().flatten(),
        };
        let Some(stored) = stored else {
            let identity = self.identity().await?;
            let connection = self.connector.connect(&identity).await;
            return Ok((identity, connection));
        };
        let (identity, early) = tokio::join!(self.identity(), self.connector.connect(&stored));
        let identity = identity?;
        if identity::same_credentials(&identity, &stored) {
            return Ok((identity, early));
        }
        drop(early);
        let connection = self.connector.connect(&identity).await;
        Ok((identity, connection))
    }

    /// The identity loaded or enrolled so far, if any.
    pub fn loaded_identity(&self) -> Option<Arc<Identity>> {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_identity(&self, identity: Arc<Identity>) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = Some(identity);
    }

    /// Trusts the master's CAs (a rotation's new one) from now on.
    fn adopt_cas(&self, identity: &Identity, bundle: &str) {
        match identity::adopt_ca_bundle(&self.paths.ssl_dir(), &identity.ca_pem, bundle) {
            Ok(true) => {
                let mut updated = identity.clone();
                updated.ca_pem = bundle.to_string();
                self.set_identity(Arc::new(updated));
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %error_chain(&e), "cannot store the master's CAs"),
        }
    }

    /// The node's certname, once it is known (enrolled and loaded).
    pub fn certname(&self) -> Option<String> {
        self.loaded_identity().map(|i| i.certname.clone())
    }

    /// Runs once. Outcomes are sent to `outcomes` as they happen. Never
    /// panics; a run-level failure is in the summary's `error`.
    pub async fn run_once(
        &self,
        noop: bool,
        verify: bool,
        outcomes: Option<mpsc::UnboundedSender<RunProgress>>,
    ) -> RunSummary {
        self.run_because("manual", noop, verify, outcomes).await
    }

    /// [`Agent::run_once`], saying why the run happens ("scheduled",
    /// "pushed", "drift", "manual", "once"): the report carries it.
    pub async fn run_because(
        &self,
        trigger: &str,
        noop: bool,
        verify: bool,
        outcomes: Option<mpsc::UnboundedSender<RunProgress>>,
    ) -> RunSummary {
        let started = Instant::now();
        let started_at_ms = now_ms();
        let mut summary = RunSummary {
            started_at_ms,
            noop,
            trigger: trigger.to_string(),
            ..Default::default()
        };
        tracing::info!(trigger, noop, verify, "run started");
        let mut report_in_flight = None;
        match self
            .run_inner(
                (noop, verify),
                outcomes,
                started,
                &mut summary,
                &mut report_in_flight,
            )
            .await
        {
            Ok(()) => {}
            Err(e) => {
                summary.error = error_chain(&e);
                tracing::error!(error = %summary.error, "run failed");
            }
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.result = if !summary.error.is_empty() || summary.failed > 0 || refused(&summary) {
            "failed"
        } else if summary.noop {
            "noop"
        } else if summary.changed > 0 {
            "changed"
        } else {
            "unchanged"
        }
        .to_string();
        tracing::info!(
            result = %summary.result,
            catalog_version = summary.catalog_version,
            changed = summary.changed,
            failed = summary.failed,
            skipped = summary.skipped,
            duration_ms = summary.duration_ms,
            cached = summary.used_cached_catalog,
            "run finished"
        );
        self.metrics.run(&summary);
        let mut state = self.state.load().unwrap_or_default();
        // A noop run changes nothing, and neither what is recorded as applied.
        if summary.noop {
            state.last_noop = Some(summary.clone());
        } else {
            state.last_run = Some(summary.clone());
        }
        if let Err(e) = self.state.save(&state) {
            tracing::warn!(error = %e, "cannot save the run summary");
        }
        // The run ends once the master has its report (or refused it).
        if let Some(report) = report_in_flight {
            let _ = report.await;
        }
        summary
    }

    /// The run; its report is left in flight in `report_in_flight`, sent
    /// while the caller saves the run's summary.
    async fn run_inner(
        &self,
        (noop, verify): (bool, bool),
        outcomes: Option<mpsc::UnboundedSender<RunProgress>>,
        started: Instant,
        summary: &mut RunSummary,
        report_in_flight: &mut Option<tokio::task::JoinHandle<()>>,
    ) -> Result<(), RunError> {
        // Enrollment too happens under the run lock: two first runs on one
        // root never enroll twice.
        let mut phases = timings::Phases::start();
        self.state.ensure()?;
        let what = format!(
            "{} ({})",
            if noop { "noop run" } else { "run" },
            summary.trigger
        );
        let _lock =
            RunLock::acquire(&RunLock::path_in(self.state.path()), LOCK_WAIT, &what).await?;
        phases.end("start");
        // The facts need neither the identity (whose check asks IMDS for the
        // instance's identity) nor the master's connection: gathered while
        // those two are made.
        let (facts, identity_and_connection) = tokio::join!(
            facts::gather(&self.config.imds),
            self.identity_and_connection()
        );
        let (identity, connection) = identity_and_connection?;
        phases.end("connect");
        let fetched = self.fetch(&identity, &facts, connection).await?;
        phases.end("catalog");
        if let (Some(master), false) = (&fetched.master, noop) {
            self.renew_if_due(master.as_ref(), &identity).await;
        }
        summary.master_reachable = fetched.master_reachable;
        summary.master_error = fetched.master_error.clone();
        summary.held_back = fetched.held_back.clone();
        if !summary.held_back.is_empty() {
            tracing::info!(why = %summary.held_back, "the master holds a newer catalog back");
        }
        summary.used_cached_catalog = fetched.from_cache;
        let mut persisted = self.state.load()?;
        let catalog = self.verify(&identity, &fetched.signed, &persisted)?;
        phases.end("verify");
        summary.catalog_version = catalog.version;
        summary.catalog_digest = catalog.digest.to_string();
        if fetched.from_cache {
            tracing::warn!(version = catalog.version, error = %fetched.master_error, "master unavailable; enforcing the cached catalog");
        }
        if catalog.expires_at_ms != 0 && catalog.expires_at_ms <= rigger_common::time::now_ms() {
            tracing::warn!(
                version = catalog.version,
                expired = %rigger_common::time::format_ms(catalog.expires_at_ms),
                "the catalog has expired: its master has not signed it again for long; still enforcing it"
            );
        }

        let mut ctx = ApplyContext::new(self.paths.clone());
        ctx.cache.remove_temporaries();
        ctx.full_verify = verify;
        ctx.catalog_version = catalog.version;
        ctx.stopping = self.stopping.clone();
        ctx.previous = self
            .verified_cached_catalog()
            .map(|c| Arc::new(c.content.clone()));
        if let (Some(master), false) = (&fetched.master, noop) {
            ctx.leases = Some(Arc::new(crate::lease::MasterLeases::new(
                master.clone(),
                tokio::runtime::Handle::current(),
                self.activity.clone(),
                self.stopping.clone(),
            )));
            ctx.refetch = Some(Arc::new(crate::content::MasterRefetch::new(
                master.clone(),
                ctx.cache.clone(),
                tokio::runtime::Handle::current(),
            )));
        }
        let fetch_progress = outcomes.clone().map(|tx| {
            Arc::new(move |done, total| {
                let _ = tx.send(RunProgress::Fetched { done, total });
            }) as content::ReleaseProgress
        });
        match content::prepare(
            &catalog,
            &ctx,
            fetched.master.as_ref(),
            noop,
            fetch_progress,
        )
        .await
        {
            Ok(stats) => {
                summary.fetched_blobs = stats.blobs;
                summary.fetched_bytes = stats.bytes;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot fetch the catalog's content");
                if summary.master_error.is_empty() {
                    summary.master_error = e;
                }
            }
        }
        let gc_ctx = ctx.clone();
        let desired = catalog.content.clone();
        phases.end("content");
        let report = tokio::task::spawn_blocking(move || {
            apply::apply_catalog(&desired, &ctx, noop, |o| {
                // Logged as it happens, not after the run.
                log_outcome(o, noop);
                if let Some(tx) = &outcomes {
                    let _ = tx.send(RunProgress::Resource(o.clone()));
                }
            })
        })
        .await
        .map_err(|e| RunError::ApplyTask(e.to_string()))?
        .map_err(|e| RunError::Refused(e.to_string()))?;
        phases.end_apply(&report, |id| {
            catalog
                .content
                .resources
                .iter()
                .find(|r| r.id == id)
                .map_or("other", |r| r.spec.kind())
        });
        summary.changed = report.changed();
        summary.failed = report.failed();
        summary.failures = report
            .outcomes
            .iter()
            .filter(|o| o.status == apply::Status::Failed)
            .take(5)
            .map(|o| format!("{}: {}", o.id, o.message.lines().next().unwrap_or_default()))
            .collect();
        summary.skipped = report.skipped();

        if !noop {
            let is_tree = |id: &str| {
                catalog
                    .content
                    .resources
                    .iter()
                    .any(|r| r.id == id && r.spec.kind() == "tree")
            };
            let tree_changed = report
                .outcomes
                .iter()
                .any(|o| o.status == apply::Status::Changed && is_tree(&o.id));
            // Releases and the cache only change when a tree did.
            if tree_changed {
                content::collect_garbage(&gc_ctx, &catalog);
            }
            if !fetched.from_cache {
                self.state.cache_catalog(&fetched.signed)?;
            }
            if persisted.applied_digest != catalog.digest.to_string() {
                persisted.applied_at_ms = rigger_common::time::now_ms();
            }
            persisted.applied_version = catalog.version;
            persisted.applied_digest = catalog.digest.to_string();
            persisted.applied_epoch = catalog.epoch.clone();
            persisted.applied_site_revision = catalog.site_revision.clone();
            persisted.applied_site_commit = catalog.site_commit.clone();
            self.state.save(&persisted)?;
            phases.end("remember");
        }
        if let Some(master) = fetched.master {
            let mut report = to_report(summary, &report, noop);
            if !noop {
                report.services = services_after(&catalog, &report, &gc_ctx).await;
                phases.end("services");
            }
            summary.duration_ms = started.elapsed().as_millis() as u64;
            report.duration_ms = summary.duration_ms;
            report.timings = phases.timings();
            *report_in_flight = Some(tokio::spawn(async move {
                let sent = Instant::now();
                if let Err(e) = master.report(report).await {
                    tracing::warn!(error = %e, "cannot submit the run report");
                }
                timings::log_phase("report", sent.elapsed());
            }));
        }
        Ok(())
    }

    async fn fetch(
        &self,
        identity: &Identity,
        facts: &serde_json::Value,
        connection: Connection,
    ) -> Result<Fetched, RunError> {
        let applied = self.state.load().unwrap_or_default();
        let request = CatalogRequest {
            facts: facts.clone(),
            role: self.config.role.clone(),
            applied: (
                applied.applied_epoch,
                applied.applied_version,
                applied.applied_digest,
            ),
        };
        let (master, error) = match connection {
            Ok(master) => match master.catalog(request).await {
                Ok(reply) => {
                    self.adopt_cas(identity, &reply.ca_bundle);
                    return Ok(Fetched {
                        signed: reply.signed,
                        held_back: reply.held_back,
                        from_cache: false,
                        master: Some(master),
                        master_error: String::new(),
                        master_reachable: true,
                    });
                }
                Err(e) => (Some(master), e),
            },
            Err(e) => (None, e),
        };
        let message = match &error {
            MasterError::Unavailable(m)
            | MasterError::Refused(m)
            | MasterError::Busy { message: m, .. } => {
                format!("the master gave no catalog: {m}")
            }
            other => other.to_string(),
        };
        match self.state.cached_catalog()? {
            Some(signed) => Ok(Fetched {
                signed,
                held_back: String::new(),
                from_cache: true,
                master,
                master_error: message,
                master_reachable: error.master_answered(),
            }),
            None => Err(RunError::NoCatalog(message)),
        }
    }

    /// The cached catalog of the last applied run, verified with the
    /// master's pinned key when the cache file changed since it last was
    /// (`None` when there is none or it does not verify).
    pub fn verified_cached_catalog(&self) -> Option<Arc<Catalog>> {
        let modified = self.state.cached_catalog_modified()?;
        if let Some((at, catalog)) = &*self.applied.lock().expect("applied catalog") {
            if *at == modified {
                return Some(catalog.clone());
            }
        }
        let signing_key = match self.loaded_identity() {
            Some(identity) => identity.signing_key.clone(),
            None => identity::load(&self.paths.ssl_dir()).ok()??.signing_key,
        };
        let signed = self.state.cached_catalog().ok()??;
        match verify_catalog(&signing_key, &signed) {
            Ok(catalog) => {
                let catalog = Arc::new(catalog);
                *self.applied.lock().expect("applied catalog") = Some((modified, catalog.clone()));
                Some(catalog)
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "the cached catalog does not verify; ignoring it");
                None
            }
        }
    }

    /// Checks signature, node, version and the catalog's structure and paths.
    fn verify(
        &self,
        identity: &Identity,
        signed: &SignedCatalog,
        applied: &crate::state::AgentState,
    ) -> Result<Catalog, RunError> {
        let applied_version = applied.applied_version;
        let catalog = verify_catalog(&identity.signing_key, signed)
            .map_err(|e| RunError::Refused(error_chain(&e)))?;
        if catalog.node != identity.certname {
            return Err(RunError::Refused(format!(
                "catalog is for node {}, not {}",
                catalog.node, identity.certname
            )));
        }
        if catalog.version < applied_version {
            return Err(RunError::Refused(format!(
                "catalog version {} is older than the applied version {applied_version}; a rollback must come as a new, higher version",
                catalog.version
            )));
        }
        // (epoch, version) names one content for ever: the same number
        // with other content is a master that lost its history (restored
        // from a backup) reusing it.
        if catalog.version == applied_version
            && catalog.digest.to_string() != applied.applied_digest
        {
            return Err(RunError::Refused(format!(
                "catalog version {} (master epoch {}) is not the content this node applied as version {applied_version} (epoch {}): the master reuses a version number (restored from a backup?); it must issue a higher one",
                catalog.version,
                shown_epoch(&catalog.epoch),
                shown_epoch(&applied.applied_epoch)
            )));
        }
        // Structure and every path-like value, before anything is fetched
        // or applied: a signed catalog from a compromised or buggy master
        // still may not name paths outside what they are relative to.
        catalog
            .content
            .apply_order()
            .map_err(|e| RunError::Refused(e.to_string()))?;
        Ok(catalog)
    }
}

fn shown_epoch(epoch: &str) -> &str {
    if epoch.is_empty() { "none" } else { epoch }
}

/// One resource's outcome in the log, when it is known.
fn log_outcome(o: &Outcome, noop: bool) {
    match o.status {
        apply::Status::Changed => tracing::info!(resource = %o.id, "{}", o.message),
        apply::Status::Pending => tracing::info!(resource = %o.id, noop, "{}", o.message),
        apply::Status::Failed => tracing::error!(resource = %o.id, "{}", o.message),
        apply::Status::Skipped => tracing::warn!(resource = %o.id, "{}", o.message),
        apply::Status::Unchanged => {}
    }
}

fn to_report(summary: &RunSummary, report: &ApplyReport, noop: bool) -> RunReport {
    RunReport {
        catalog_version: summary.catalog_version,
        catalog_digest: summary.catalog_digest.clone(),
        started_at_ms: summary.started_at_ms,
        duration_ms: summary.duration_ms,
        changed: report.changed(),
        failed: report.failed(),
        skipped: report.skipped(),
        noop,
        used_cached_catalog: summary.used_cached_catalog,
        services: Vec::new(),
        resources: report
            .outcomes
            .iter()
            .filter(|o| o.status != apply::Status::Unchanged)
            .map(|o| ReportedOutcome {
                id: o.id.clone(),
                status: o.status.as_str().to_string(),
                message: o.message.clone(),
                diff: o.diff.clone().unwrap_or_default(),
            })
            .collect(),
        trigger: summary.trigger.clone(),
        timings: Vec::new(),
    }
}

/// What the catalog's services are doing after a run: a service whose
/// resource failed is not ready, whatever it answers.
async fn services_after(
    catalog: &Catalog,
    report: &RunReport,
    ctx: &ApplyContext,
) -> Vec<rigger_common::report::ServiceHealth> {
    let services: Vec<(rigger_common::catalog::ServiceSpec, Option<String>)> = catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            rigger_common::catalog::ResourceSpec::Service(s) => {
                let failure = report
                    .resources
                    .iter()
                    .find(|o| o.id == r.id && o.status == "failed")
                    .map(|o| o.message.clone());
                Some((s.clone(), failure))
            }
            _ => None,
        })
        .collect();
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        services
            .iter()
            .map(|(spec, failure)| {
                crate::resources::service::health(spec, &ctx, failure.as_deref())
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Whether the master answered but gave no catalog (it refused, or sent
/// one this agent could not receive): the cached catalog was enforced, and
/// the run is not a success — unlike a master out of reach.
fn refused(summary: &RunSummary) -> bool {
    summary.used_cached_catalog && summary.master_reachable
}

/// The `--detailed-exitcodes` code of a run (Puppet's convention).
pub fn detailed_exit_code(summary: &RunSummary) -> u8 {
    use rigger_common::exit;
    if !summary.error.is_empty() {
        return exit::FAILURE;
    }
    match (summary.changed > 0, summary.failed > 0 || refused(summary)) {
        (false, false) => exit::OK,
        (true, false) => exit::CHANGES,
        (false, true) => exit::FAILURES,
        (true, true) => exit::CHANGES_AND_FAILURES,
    }
}
