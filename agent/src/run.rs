//! One agent run: take the run lock, gather facts, fetch and verify the
//! catalog (or fall back to the cached one when the master is unreachable),
//! apply it, remember it and report to the master.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rigger_common::catalog::Catalog;
use rigger_common::error_chain;
use rigger_common::proto::catalog_service_client::CatalogServiceClient;
use rigger_common::proto::{GetCatalogRequest, Report, ResourceOutcome, SignedCatalog};
use rigger_common::signing::verify_catalog;
use rigger_common::time::now_ms;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::apply::{self, ApplyReport, Outcome};
use crate::config::AgentConfig;
use crate::content::{FetchStats, fetch_blobs};
use crate::facts;
use crate::identity::{self, EnrollSettings, Identity};
use crate::paths::Paths;
use crate::resources::ApplyContext;
use crate::state::{RunSummary, StateDir};

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
    /// Another run holds the lock.
    #[error("another run still holds {} after {}s", path.display(), LOCK_WAIT.as_secs())]
    Locked {
        /// The lock file.
        path: std::path::PathBuf,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The agent: configuration, paths and (once enrolled) identity.
pub struct Agent {
    /// Resolved configuration.
    pub config: AgentConfig,
    /// File layout.
    pub paths: Paths,
    /// State directory.
    pub state: StateDir,
    identity: tokio::sync::OnceCell<Identity>,
    /// What the run in progress waits for (shown by `agentctl status`).
    activity: crate::lease::Activity,
    /// Cancelled when the agent stops (SIGTERM): long waits give up.
    stopping: tokio_util::sync::CancellationToken,
}

/// What a catalog fetch produced.
struct Fetched {
    signed: SignedCatalog,
    from_cache: bool,
    channel: Option<Channel>,
    client: Option<CatalogServiceClient<Channel>>,
    master_error: String,
    master_reachable: bool,
}

impl Agent {
    /// An agent for `config`.
    pub fn new(config: AgentConfig) -> Self {
        let paths = Paths::new(&config.root);
        let state = StateDir::new(paths.state_dir());
        Self {
            config,
            paths,
            state,
            identity: tokio::sync::OnceCell::new(),
            activity: crate::lease::Activity::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
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
    pub async fn identity(&self) -> Result<&Identity, RunError> {
        self.identity
            .get_or_try_init(|| async {
                self.state.ensure()?;
                let stored = identity::load(&self.paths.ssl_dir())?;
                let certname = match (&self.config.certname, &stored) {
                    (_, Some(id)) => id.certname.clone(),
                    (Some(name), None) => name.clone(),
                    (None, None) => {
                        facts::default_certname(&facts::gather(&self.config.imds).await)
                    }
                };
                let settings = EnrollSettings {
                    master: self.config.master.clone(),
                    certname,
                    ca_cert: self.config.ca_cert.clone(),
                    ca_fingerprint: self.config.ca_fingerprint,
                    token: self.config.token.clone(),
                    timeout: self.config.timeout,
                };
                Ok(identity::ensure(&self.paths.ssl_dir(), &settings).await?)
            })
            .await
    }

    /// The node's certname, once it is known (enrolled and loaded).
    pub fn certname(&self) -> Option<&str> {
        self.identity.get().map(|i| i.certname.as_str())
    }

    /// Runs once. Outcomes are sent to `outcomes` as they happen. Never
    /// panics; a run-level failure is in the summary's `error`.
    pub async fn run_once(
        &self,
        noop: bool,
        verify: bool,
        outcomes: Option<mpsc::UnboundedSender<Outcome>>,
    ) -> RunSummary {
        let started = Instant::now();
        let started_at_ms = now_ms();
        let mut summary = RunSummary {
            started_at_ms,
            noop,
            ..Default::default()
        };
        match self
            .run_inner(noop, verify, outcomes, started, &mut summary)
            .await
        {
            Ok(()) => {}
            Err(e) => {
                summary.error = error_chain(&e);
                tracing::error!(error = %summary.error, "run failed");
            }
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.result = if !summary.error.is_empty() || summary.failed > 0 {
            "failed"
        } else if summary.changed > 0 {
            "changed"
        } else {
            "unchanged"
        }
        .to_string();
        let mut state = self.state.load().unwrap_or_default();
        state.last_run = Some(summary.clone());
        if let Err(e) = self.state.save(&state) {
            tracing::warn!(error = %e, "cannot save the run summary");
        }
        summary
    }

    async fn run_inner(
        &self,
        noop: bool,
        verify: bool,
        outcomes: Option<mpsc::UnboundedSender<Outcome>>,
        started: Instant,
        summary: &mut RunSummary,
    ) -> Result<(), RunError> {
        let identity = self.identity().await?.clone();
        let _lock = self.lock().await?;
        let facts = facts::gather(&self.config.imds).await;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "facts gathered"
        );
        let fetched = self.fetch(&identity, &facts).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "catalog fetched"
        );
        summary.master_reachable = fetched.master_reachable;
        summary.master_error = fetched.master_error.clone();
        summary.used_cached_catalog = fetched.from_cache;
        let mut persisted = self.state.load()?;
        let catalog = self.verify(&identity, &fetched.signed, persisted.applied_version)?;
        summary.catalog_version = catalog.version;
        summary.catalog_digest = catalog.digest.to_string();
        if fetched.from_cache {
            tracing::warn!(version = catalog.version, error = %fetched.master_error, "master unavailable; enforcing the cached catalog");
        }

        let mut ctx = ApplyContext::new(self.paths.clone());
        ctx.full_verify = verify;
        ctx.stopping = self.stopping.clone();
        ctx.previous = self
            .state
            .cached_catalog()
            .ok()
            .flatten()
            .and_then(|signed| serde_json::from_slice::<Catalog>(&signed.catalog_json).ok())
            .map(|c| std::sync::Arc::new(c.content));
        if let (Some(channel), false) = (&fetched.channel, noop) {
            ctx.leases = Some(Arc::new(crate::lease::MasterLeases::new(
                channel.clone(),
                tokio::runtime::Handle::current(),
                self.activity.clone(),
                self.stopping.clone(),
            )));
        }
        match self
            .prepare_content(&catalog, &ctx, fetched.channel.as_ref(), noop)
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
        let content = catalog.content.clone();
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "content prepared"
        );
        let report = tokio::task::spawn_blocking(move || {
            apply::apply_catalog(&content, &ctx, noop, |o| {
                if let Some(tx) = &outcomes {
                    let _ = tx.send(o.clone());
                }
            })
        })
        .await
        .map_err(|e| RunError::Other(format!("apply task failed: {e}")))?
        .map_err(|e| RunError::Refused(e.to_string()))?;
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
        log_outcomes(&report, noop);

        if !noop {
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "catalog applied"
            );
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
                collect_garbage(&gc_ctx, &catalog);
            }
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cache collected"
            );
            if !fetched.from_cache {
                self.state.cache_catalog(&fetched.signed)?;
            }
            persisted.applied_version = catalog.version;
            persisted.applied_digest = catalog.digest.to_string();
            self.state.save(&persisted)?;
        }
        if let Some(mut client) = fetched.client {
            summary.duration_ms = started.elapsed().as_millis() as u64;
            let report = to_report(summary, &report, noop);
            if let Err(status) = client.submit_report(report).await {
                tracing::warn!(error = %status.message(), "cannot submit the run report");
            }
        }
        Ok(())
    }

    async fn connect(&self, identity: &Identity) -> Result<Channel, String> {
        let config = rigger_common::tls::client_config(&identity.ca_pem, Some(&identity.client))
            .map_err(|e| error_chain(&e))?;
        let channel = rigger_common::grpc::tls_channel(
            &self.config.master,
            Arc::new(config),
            self.config.timeout,
        )
        .await
        .map_err(|e| {
            format!(
                "cannot connect to {}: {}",
                self.config.master,
                error_chain(&e)
            )
        })?;
        Ok(channel)
    }

    async fn fetch(
        &self,
        identity: &Identity,
        facts: &serde_json::Value,
    ) -> Result<Fetched, RunError> {
        let request = GetCatalogRequest {
            facts_json: facts.to_string(),
            role: self.config.role.clone().unwrap_or_default(),
        };
        let (channel, client, error, reachable) = match self.connect(identity).await {
            Ok(channel) => match CatalogServiceClient::new(channel.clone())
                .get_catalog(request)
                .await
            {
                Ok(reply) => {
                    return Ok(Fetched {
                        signed: reply.into_inner(),
                        from_cache: false,
                        client: Some(CatalogServiceClient::new(channel.clone())),
                        channel: Some(channel),
                        master_error: String::new(),
                        master_reachable: true,
                    });
                }
                Err(status) => {
                    let transport = std::error::Error::source(&status).is_some();
                    let reachable = !transport
                        && !matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                        );
                    let message = if transport {
                        format!(
                            "the connection to the master failed during the request ({}); if it persists, check the master's log: it refuses certificates it did not issue",
                            error_chain(&status)
                        )
                    } else {
                        format!("the master gave no catalog: {}", status.message())
                    };
                    (
                        Some(channel.clone()),
                        Some(CatalogServiceClient::new(channel)),
                        message,
                        reachable,
                    )
                }
            },
            Err(e) => (None, None, e, false),
        };
        match self.state.cached_catalog()? {
            Some(signed) => Ok(Fetched {
                signed,
                from_cache: true,
                channel,
                client,
                master_error: error,
                master_reachable: reachable,
            }),
            None => Err(RunError::NoCatalog(error)),
        }
    }

    /// Between runs: starts again every server of the last applied catalog
    /// that the agent supervises (the `process` provider) and that has
    /// exited. Returns what it did; an error when a server would not come back.
    pub async fn supervise(&self) -> Result<Vec<String>, String> {
        let Some(signed) = self.state.cached_catalog().map_err(|e| e.to_string())? else {
            return Ok(vec![]);
        };
        let Ok(catalog) = serde_json::from_slice::<Catalog>(&signed.catalog_json) else {
            return Ok(vec![]);
        };
        let services: Vec<rigger_common::catalog::ServiceSpec> = catalog
            .content
            .resources
            .iter()
            .filter_map(|r| match &r.spec {
                rigger_common::catalog::ResourceSpec::Service(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if services.is_empty() {
            return Ok(vec![]);
        }
        // Never while a run holds the lock: the run decides then.
        let path = self.state.path().join("run.lock");
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            return Ok(vec![]);
        };
        let Ok(_lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        else {
            return Ok(vec![]);
        };
        let ctx = ApplyContext::new(self.paths.clone());
        tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            for spec in services {
                if !crate::resources::service::supervised(&spec, &ctx) {
                    continue;
                }
                crate::resources::service::rotate_log(&spec, &ctx);
                if crate::resources::service::is_running(&spec, &ctx)
                    .map_err(|e| error_chain(&e))?
                {
                    continue;
                }
                crate::resources::service::apply(&spec, &ctx).map_err(|e| {
                    format!(
                        "{} exited and did not come back: {}",
                        spec.name,
                        error_chain(&e)
                    )
                })?;
                let note = format!(
                    "{} had exited; started again at {}",
                    spec.name,
                    rigger_common::time::format_ms(rigger_common::time::now_ms())
                );
                tracing::warn!(service = %spec.name, "{note}");
                done.push(note);
            }
            Ok(done)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Fetches what the catalog's trees need and the cache lacks: each
    /// tree's manifest, and (unless planning only, or the release is
    /// already on disk) its files.
    async fn prepare_content(
        &self,
        catalog: &Catalog,
        ctx: &ApplyContext,
        channel: Option<&Channel>,
        noop: bool,
    ) -> Result<FetchStats, String> {
        let mut total = FetchStats::default();
        let sources = file_sources(catalog);
        if !noop && !sources.is_empty() {
            if let Some(channel) = channel {
                total = fetch_blobs(channel, &ctx.cache, &sources).await?;
            }
        }
        for tree in trees(catalog) {
            let mut need = vec![tree.tree];
            if ctx.cache.has(&tree.tree) {
                need.clear();
            }
            if let Some(channel) = channel {
                let stats = fetch_blobs(channel, &ctx.cache, &need).await?;
                total.blobs += stats.blobs;
                total.bytes += stats.bytes;
            }
            let release = self
                .paths
                .resolve(&tree.releases_dir)
                .join(tree.release_id());
            if noop || release.is_dir() {
                continue;
            }
            let Some(manifest) = ctx.cache.manifest(&tree.tree)? else {
                return Err(format!(
                    "manifest {} is not available (master unreachable)",
                    tree.tree
                ));
            };
            let missing = ctx
                .cache
                .missing(&crate::resources::tree::needed_blobs(tree, &manifest));
            if missing.is_empty() {
                continue;
            }
            let Some(channel) = channel else {
                return Err(format!(
                    "{} blobs of {} are missing and the master is unreachable",
                    missing.len(),
                    tree.release_id()
                ));
            };
            tracing::info!(release = %tree.release_id(), blobs = missing.len(), "fetching content");
            let stats = fetch_blobs(channel, &ctx.cache, &missing).await?;
            total.blobs += stats.blobs;
            total.bytes += stats.bytes;
        }
        Ok(total)
    }

    /// Checks signature, node and version.
    fn verify(
        &self,
        identity: &Identity,
        signed: &SignedCatalog,
        applied: u64,
    ) -> Result<Catalog, RunError> {
        let catalog = verify_catalog(&identity.signing_key, signed)
            .map_err(|e| RunError::Refused(error_chain(&e)))?;
        if catalog.node != identity.certname {
            return Err(RunError::Refused(format!(
                "catalog is for node {}, not {}",
                catalog.node, identity.certname
            )));
        }
        if catalog.version < applied {
            return Err(RunError::Refused(format!(
                "catalog version {} is older than the applied version {applied}; a rollback must come as a new, higher version",
                catalog.version
            )));
        }
        Ok(catalog)
    }

    async fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, RunError> {
        let path = self.state.path().join("run.lock");
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| RunError::Other(format!("cannot open {}: {e}", path.display())))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Err(RunError::Locked { path }),
                Err((_, e)) => {
                    return Err(RunError::Other(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

fn trees(catalog: &Catalog) -> impl Iterator<Item = &rigger_common::catalog::TreeSpec> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            rigger_common::catalog::ResourceSpec::Tree(t) => Some(t),
            _ => None,
        })
}

/// Blobs that file resources take their content from (artifacts).
fn file_sources(catalog: &Catalog) -> Vec<rigger_common::digest::Digest> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            rigger_common::catalog::ResourceSpec::File(f) => f.source,
            _ => None,
        })
        .collect()
}

/// Drops cached blobs that neither the catalog (its trees and file
/// sources) nor any kept release needs.
fn collect_garbage(ctx: &ApplyContext, catalog: &Catalog) {
    let mut keep: std::collections::HashSet<_> = file_sources(catalog).into_iter().collect();
    let mut roots: Vec<rigger_common::digest::Digest> = trees(catalog).map(|t| t.tree).collect();
    for tree in trees(catalog) {
        roots.extend(crate::resources::tree::kept_trees(
            &ctx.paths.resolve(&tree.releases_dir),
        ));
    }
    for root in roots {
        keep.insert(root);
        match ctx.cache.manifest(&root) {
            Ok(Some(m)) => keep.extend(m.file_digests()),
            // Without the manifest we cannot tell what it needs: keep everything.
            _ => return,
        }
    }
    match ctx.cache.retain(&keep) {
        Ok((0, _)) => {}
        Ok((blobs, bytes)) => tracing::info!(blobs, bytes, "removed unused blobs from the cache"),
        Err(e) => tracing::warn!(error = %e, "cannot clean the content cache"),
    }
}

fn log_outcomes(report: &ApplyReport, noop: bool) {
    for o in &report.outcomes {
        match o.status {
            apply::Status::Changed => tracing::info!(resource = %o.id, "{}", o.message),
            apply::Status::Pending => tracing::info!(resource = %o.id, noop, "{}", o.message),
            apply::Status::Failed => tracing::error!(resource = %o.id, "{}", o.message),
            apply::Status::Skipped => tracing::warn!(resource = %o.id, "{}", o.message),
            apply::Status::Unchanged => {}
        }
    }
}

fn to_report(summary: &RunSummary, report: &ApplyReport, noop: bool) -> Report {
    Report {
        catalog_version: summary.catalog_version,
        catalog_digest: summary.catalog_digest.clone(),
        started_at_ms: summary.started_at_ms,
        duration_ms: summary.duration_ms,
        changed: report.changed(),
        failed: report.failed(),
        skipped: report.skipped(),
        noop,
        used_cached_catalog: summary.used_cached_catalog,
        resources: report
            .outcomes
            .iter()
            .filter(|o| o.status != apply::Status::Unchanged)
            .map(|o| ResourceOutcome {
                id: o.id.clone(),
                status: o.status.as_str().to_string(),
                message: o.message.clone(),
            })
            .collect(),
    }
}

/// The `--detailed-exitcodes` code of a run (Puppet's convention).
pub fn detailed_exit_code(summary: &RunSummary) -> u8 {
    use rigger_common::exit;
    if !summary.error.is_empty() {
        return exit::FAILURE;
    }
    match (summary.changed > 0, summary.failed > 0) {
        (false, false) => exit::OK,
        (true, false) => exit::CHANGES,
        (false, true) => exit::FAILURES,
        (true, true) => exit::CHANGES_AND_FAILURES,
    }
}
