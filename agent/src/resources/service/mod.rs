//! `service`: a long-running server, behind [`ServiceManager`] with two
//! providers: [`process`] (the agent supervises the server itself) and
//! [`systemd`] (a unit file). Readiness probes are in [`readiness`]; this
//! module decides when a server starts, restarts or stops for a release
//! switch, takes the cluster's restart lease first and keeps a restart that
//! could not happen pending.
//!
//! A converged run never restarts a server; a change to something that
//! notifies it does (see the apply engine's refresh).

pub mod peers;
pub mod process;
pub mod readiness;
pub mod starts;
pub mod systemd;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rigger_common::catalog::{ServiceProvider, ServiceSpec};
use rigger_common::fsutil::Ownership;

pub use process::{ProcessManager, pidfile_process};
pub use systemd::{SystemdManager, unit_file};

use super::{ApplyContext, Change, ResourceError};
use process::pidfile;
use readiness::probe;
use systemd::systemd_is_init;

/// Starts, stops and inspects servers.
pub trait ServiceManager {
    /// The pid of the running server, if it runs.
    fn running(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Option<u32>;
    /// Starts the server (not waiting for readiness); returns its pid.
    fn start(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<u32, ResourceError>;
    /// Stops the server: SIGTERM to its group, SIGKILL after the grace.
    fn stop(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError>;
    /// Whether the provider's own definition (a systemd unit) is out of date.
    fn definition_outdated(&self, _spec: &ServiceSpec, _ctx: &ApplyContext) -> bool {
        false
    }
    /// Brings that definition up to date; returns whether it changed.
    fn install(&self, _spec: &ServiceSpec, _ctx: &ApplyContext) -> Result<bool, ResourceError> {
        Ok(false)
    }
}

pub(super) fn err(message: String) -> ResourceError {
    ResourceError::Other(message)
}

/// Rotates the service's output log when it grew past its limit (the
/// process provider's; systemd units log to the journal and the server's
/// own files). Failures are logged, never fatal.
pub fn rotate_log(spec: &ServiceSpec, ctx: &ApplyContext) {
    let log = ctx.paths.resolve(&spec.log_file);
    match super::logrotate::rotate_if_larger(&log, spec.log_max_bytes, spec.log_keep) {
        Ok(true) => {
            tracing::info!(service = %spec.name, log = %log.display(), "output log rotated")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(service = %spec.name, log = %log.display(), error = %e, "cannot rotate the output log")
        }
    }
}

fn provider(spec: &ServiceSpec, ctx: &ApplyContext) -> Box<dyn ServiceManager> {
    let systemd = || -> Box<dyn ServiceManager> {
        Box::new(SystemdManager {
            systemctl: ctx.host.systemctl.clone(),
        })
    };
    match spec.provider {
        ServiceProvider::Process => Box::new(ProcessManager),
        ServiceProvider::Systemd => systemd(),
        ServiceProvider::Auto if systemd_is_init() => systemd(),
        ServiceProvider::Auto => Box::new(ProcessManager),
    }
}

/// Whether the agent itself supervises this service (the process
/// provider; systemd restarts its own units).
pub fn supervised(spec: &ServiceSpec, _ctx: &ApplyContext) -> bool {
    match spec.provider {
        ServiceProvider::Process => true,
        ServiceProvider::Auto => !systemd_is_init(),
        ServiceProvider::Systemd => false,
    }
}

/// What the server is doing now, for the master's restart budget: running,
/// and answering its readiness check (one probe). `failure` is this run's
/// error for the service, which makes it not ready whatever it answers.
pub fn health(
    spec: &ServiceSpec,
    ctx: &ApplyContext,
    failure: Option<&str>,
) -> rigger_common::report::ServiceHealth {
    let pid = provider(spec, ctx).running(spec, ctx);
    let running = pid.is_some();
    let not_ready = if let Some(failure) = failure {
        Some(failure.to_string())
    } else if !running {
        Some(format!(
            "not running; its last output:\n{}",
            log_tail(&ctx.paths.resolve(&spec.log_file))
        ))
    } else {
        spec.health
            .as_deref()
            .and_then(|h| readiness::probe(h).err())
    };
    rigger_common::report::ServiceHealth {
        name: spec.name.clone(),
        running,
        ready: not_ready.is_none(),
        detail: not_ready.unwrap_or_default(),
        peers_changed: peers::describe(spec, ctx, pid),
    }
}

/// The pid of the server's process, if it runs.
pub fn running_pid(spec: &ServiceSpec, ctx: &ApplyContext) -> Option<u32> {
    provider(spec, ctx).running(spec, ctx)
}

/// Whether the server runs now.
pub fn is_running(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<bool, ResourceError> {
    Ok(provider(spec, ctx).running(spec, ctx).is_some())
}

/// Marks a restart as due until it has happened, so that a restart that
/// failed or had to wait for the cluster's lease is not forgotten when the
/// change that asked for it is already on disk.
fn pending_marker(spec: &ServiceSpec, ctx: &ApplyContext) -> PathBuf {
    ctx.paths
        .state_dir()
        .join("services")
        .join(format!("{}.restart-pending", spec.name))
}

fn mark_pending(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let marker = pending_marker(spec, ctx);
    if marker.exists() {
        return Ok(());
    }
    let root = ctx.beneath()?;
    root.create_dir_all(marker.parent().expect("marker has a parent"))?;
    root.write_atomic(&marker, b"", 0o644, Ownership::default())?;
    Ok(())
}

/// The server is up with everything applied: the restart is done and the
/// cluster's lease goes back.
fn finish(spec: &ServiceSpec, ctx: &ApplyContext) {
    if let Ok(root) = ctx.beneath() {
        let _ = root.remove_file(&pending_marker(spec, ctx));
    }
    if let Some(leases) = &ctx.leases {
        leases.release(spec);
    }
}

/// What would change: a server that is not running would be started; one
/// whose restart is still due would be restarted.
pub fn check(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let manager = provider(spec, ctx);
    let manager = manager.as_ref();
    if manager.definition_outdated(spec, ctx) {
        return Ok(vec![Change::new(format!(
            "write unit {}.service and (re)start it",
            spec.name
        ))]);
    }
    match manager.running(spec, ctx) {
        Some(_) if pending_marker(spec, ctx).exists() => Ok(vec![Change::new(format!(
            "restart service {} (a change of an earlier run is still waiting for it)",
            spec.name
        ))]),
        Some(_) => Ok(vec![]),
        None if pidfile(spec, ctx).exists() => Ok(vec![Change::new(format!(
            "start service {} (it had exited since the last run; its last output:\n{})",
            spec.name,
            log_tail(&ctx.paths.resolve(&spec.log_file))
        ))]),
        None => Ok(vec![Change::new(format!("start service {}", spec.name))]),
    }
}

/// Starts the server (restarts it when its unit changed or a restart is
/// still due) and waits until it is ready.
pub fn apply(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let manager = provider(spec, ctx);
    let manager = manager.as_ref();
    let unit_changed = manager.install(spec, ctx)?;
    if manager.running(spec, ctx).is_some() && (unit_changed || pending_marker(spec, ctx).exists())
    {
        restart(spec, ctx)?;
        return Ok(());
    }
    if manager.running(spec, ctx).is_none() {
        let pid = manager.start(spec, ctx)?;
        starts::record(spec, ctx, pid);
    }
    wait_ready(spec, ctx, manager)?;
    hook("post_ready", &spec.post_ready, spec, ctx)?;
    finish(spec, ctx);
    Ok(())
}

/// Restarts the server (something it depends on changed) and waits until
/// ready. Returns a note when the node had to wait for its turn.
pub fn restart(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<Option<String>, ResourceError> {
    mark_pending(spec, ctx)?;
    let manager = provider(spec, ctx);
    let manager = manager.as_ref();
    let note = take_down(spec, ctx, manager)?;
    let pid = manager.start(spec, ctx)?;
    starts::record(spec, ctx, pid);
    wait_ready(spec, ctx, manager)?;
    hook("post_ready", &spec.post_ready, spec, ctx)?;
    finish(spec, ctx);
    Ok(note)
}

/// Before its release is switched: the server stops (after taking the
/// cluster's lease), so that it never runs from a release changing under
/// it; the restart that follows starts it on the new one.
pub fn stop_for_switch(
    spec: &ServiceSpec,
    ctx: &ApplyContext,
) -> Result<Option<String>, ResourceError> {
    mark_pending(spec, ctx)?;
    take_down(spec, ctx, provider(spec, ctx).as_ref())
}

/// Stops a running server, first taking the cluster's restart lease when
/// its restarts are coordinated.
fn take_down(
    spec: &ServiceSpec,
    ctx: &ApplyContext,
    manager: &dyn ServiceManager,
) -> Result<Option<String>, ResourceError> {
    if manager.running(spec, ctx).is_none() {
        return Ok(None);
    }
    let note = match (&spec.restart_lease, &ctx.leases) {
        (None, _) => None,
        (Some(_), Some(leases)) => leases.acquire(spec)?,
        (Some(lease), None) => {
            return Err(ResourceError::LeaseUnavailable(format!(
                "restarting {} needs the restart lease of cluster {}, and the master cannot be asked now",
                spec.name, lease.group
            )));
        }
    };
    if let Err(e) = hook("pre_stop", &spec.pre_stop, spec, ctx) {
        // The server was not touched: it keeps serving, the restart stays
        // pending, and the cluster's lease goes back.
        if let Some(leases) = &ctx.leases {
            leases.release(spec);
        }
        return Err(e);
    }
    manager.stop(spec, ctx)?;
    Ok(note)
}

/// How long a hook may run.
const HOOK_TIMEOUT_SECS: u64 = 300;

/// Runs a restart hook (`pre_stop`, `post_ready`) in the server's working
/// directory, killed with its process group after [`HOOK_TIMEOUT_SECS`].
fn hook(
    name: &str,
    command: &str,
    spec: &ServiceSpec,
    ctx: &ApplyContext,
) -> Result<(), ResourceError> {
    if command.trim().is_empty() {
        return Ok(());
    }
    let exec = rigger_common::catalog::ExecSpec {
        command: command.to_string(),
        cwd: Some(spec.working_dir.clone()),
        creates: None,
        unless: None,
        refresh_only: false,
        timeout_secs: HOOK_TIMEOUT_SECS,
        environment: [
            ("RIGGER_SERVICE".to_string(), spec.name.clone()),
            ("RIGGER_HOOK".to_string(), name.to_string()),
        ]
        .into(),
    };
    super::exec::run(&exec, ctx)
        .map_err(|e| ResourceError::Other(format!("the {name} hook of {} failed: {e}", spec.name)))
}

fn wait_ready(
    spec: &ServiceSpec,
    ctx: &ApplyContext,
    manager: &dyn ServiceManager,
) -> Result<(), ResourceError> {
    let Some(health) = &spec.health else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(spec.ready_timeout_secs.max(1));
    let mut polling = Polling::up_to(Duration::from_millis(200));
    loop {
        if ctx.stopping.is_cancelled() {
            return Err(ResourceError::Stopping(format!(
                "the agent is stopping before {} was ready: the next run checks it again",
                spec.name
            )));
        }
        if manager.running(spec, ctx).is_none() {
            return Err(ResourceError::NotReady {
                service: spec.name.clone(),
                reason: "exited before it was ready".into(),
                log_tail: log_tail(&ctx.paths.resolve(&spec.log_file)),
            });
        }
        let last = match probe(health) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(ResourceError::NotReady {
                service: spec.name.clone(),
                reason: format!(
                    "was not ready after {}s ({health}: {last})",
                    spec.ready_timeout_secs
                ),
                log_tail: log_tail(&ctx.paths.resolve(&spec.log_file)),
            });
        }
        polling.sleep();
    }
}

/// Sleeps between looks at something that is usually quick and sometimes
/// slow (a server's first answer, its exit): 10 ms at first, doubling up
/// to a cap, so a fast server is seen at once and a slow one is not
/// polled more often than before.
pub struct Polling {
    next: Duration,
    cap: Duration,
}

impl Polling {
    /// Intervals from 2 ms up to `cap` (a look is a connect or a stat: a
    /// few cheap ones while a fast server comes up cost nothing).
    pub fn up_to(cap: Duration) -> Self {
        Self {
            next: Duration::from_millis(2).min(cap),
            cap,
        }
    }

    /// Sleeps the next interval.
    pub fn sleep(&mut self) {
        std::thread::sleep(self.next_interval());
    }

    fn next_interval(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.cap);
        now
    }
}

/// The last lines of a log, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod polling_tests {
    use super::*;

    #[test]
    fn polling_starts_fast_and_settles_at_its_cap() {
        let mut polling = Polling::up_to(Duration::from_millis(200));
        let ms: Vec<u128> = (0..9)
            .map(|_| polling.next_interval().as_millis())
            .collect();
        assert_eq!(ms, [2, 4, 8, 16, 32, 64, 128, 200, 200]);
        let mut short = Polling::up_to(Duration::from_millis(1));
        assert_eq!(short.next_interval(), Duration::from_millis(1));
    }
}
