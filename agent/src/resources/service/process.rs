//! The `process` provider: the agent starts the server itself — its own
//! process group, the service user, CARBON_HOME as working directory, the
//! open-files limit, output appended to a log file — and keeps a pidfile
//! holding the pid and its start time, so that an agent restart re-adopts
//! the running server instead of starting a second one.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rigger_common::catalog::ServiceSpec;
use rigger_common::fsutil::Ownership;

use super::{Polling, ServiceManager, err, log_tail, rotate_log};
use crate::exits::ExitHandle;
use crate::resources::account;
use crate::resources::owner::DesiredOwner;
use crate::resources::{ApplyContext, ResourceError, io_error};

/// The agent supervises the process itself.
pub struct ProcessManager;

pub(super) fn pidfile(spec: &ServiceSpec, ctx: &ApplyContext) -> PathBuf {
    ctx.paths
        .state_dir()
        .join("services")
        .join(format!("{}.pid", spec.name))
}

/// Removes the service's pidfile (beneath the agent's root).
fn remove_pidfile(spec: &ServiceSpec, ctx: &ApplyContext) {
    if let Ok(root) = ctx.beneath() {
        let _ = root.remove_file(&pidfile(spec, ctx));
    }
}

/// Start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat), which tells a re-used pid from the original.
/// When process `pid` started, in clock ticks since boot (`None`: gone or a
/// zombie).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn resolve(spec_path: &str, ctx: &ApplyContext, working_dir: &Path) -> PathBuf {
    if spec_path.starts_with('/') {
        ctx.paths.resolve(spec_path)
    } else {
        working_dir.join(spec_path)
    }
}

/// What a process provider pidfile (`PID START_TIME`) says: the pid, and
/// whether that process still runs (the same process: a reused pid has
/// another start time). `None` for a missing or unreadable pidfile.
pub fn pidfile_process(pidfile: &Path) -> Option<(u32, bool)> {
    let text = fs::read_to_string(pidfile).ok()?;
    let mut parts = text.split_whitespace();
    let pid: u32 = parts.next()?.parse().ok()?;
    let recorded: u64 = parts.next()?.parse().ok()?;
    Some((pid, start_time(pid) == Some(recorded)))
}

impl ServiceManager for ProcessManager {
    fn running(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Option<u32> {
        let (pid, alive) = pidfile_process(&pidfile(spec, ctx))?;
        if !alive && start_time(pid).is_none() {
            // Exited: if it was our child, collect it rather than leave a zombie.
            reap(pid);
        }
        alive.then_some(pid)
    }

    fn start(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<u32, ResourceError> {
        let working_dir = ctx.paths.resolve(&spec.working_dir);
        let program = resolve(&spec.start, ctx, &working_dir);
        let log_path = ctx.paths.resolve(&spec.log_file);
        let root = ctx.beneath()?;
        if let Some(parent) = log_path.parent() {
            root.create_dir_all(parent)?;
        }
        rotate_log(spec, ctx);
        let log = root.open_for_write(&log_path, 0o644, true)?;
        let named = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        let owner = DesiredOwner::resolve(
            &ctx.paths,
            named(&spec.user).as_deref(),
            named(&spec.group).as_deref(),
        )?;
        if owner.is_managed() {
            std::os::unix::fs::fchown(&log, owner.uid, owner.gid).map_err(io_error(
                "cannot hand the service log to the service user",
                &log_path,
            ))?;
        }
        let environment_file = spec
            .environment_file
            .as_deref()
            .map(|f| ctx.paths.resolve(f));
        if let Some(file) = &environment_file {
            if !file.is_file() {
                return Err(err(format!(
                    "the environment file {} is missing",
                    file.display()
                )));
            }
        }
        let mut command = Command::new("/bin/sh");
        // The shell sets the open-files limit, loads the environment file
        // (as systemd's EnvironmentFile does, its values win), then becomes
        // the server.
        command
            .arg("-c")
            .arg(
                "ulimit -n \"$RIGGER_NOFILE\" 2>/dev/null || true; \
                 if [ -n \"$RIGGER_ENV_FILE\" ]; then set -a; . \"$RIGGER_ENV_FILE\" || exit 78; set +a; fi; \
                 unset RIGGER_NOFILE RIGGER_ENV_FILE; exec \"$0\" \"$@\"",
            )
            .arg(&program)
            .args(&spec.args)
            .current_dir(&working_dir)
            .env_clear()
            .envs(base_environment(ctx, named(&spec.user).as_deref()))
            .env("RIGGER_NOFILE", spec.nofile.to_string())
            .env("CARBON_HOME", &working_dir)
            .envs(&spec.environment)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(io_error("cannot open", &log_path))?,
            )
            .stderr(log)
            .process_group(0);
        if let Some(file) = &environment_file {
            command.env("RIGGER_ENV_FILE", file);
        }
        if let Some(gid) = owner.gid {
            command.gid(gid);
        }
        if let Some(uid) = owner.uid {
            command.uid(uid);
        }
        let child = command
            .spawn()
            .map_err(|e| err(format!("cannot start {}: {e}", program.display())))?;
        let pid = child.id();
        // The child is not waited for here: it outlives this run (the
        // reaper is whoever inherits it); the pidfile is how we find it.
        std::mem::forget(child);
        let started = start_time(pid).ok_or_else(|| {
            err(format!(
                "{} exited at once; last output:\n{}",
                spec.name,
                log_tail(&log_path)
            ))
        })?;
        let pidfile = pidfile(spec, ctx);
        root.create_dir_all(pidfile.parent().expect("pidfile has a parent"))?;
        root.write_atomic(
            &pidfile,
            format!("{pid} {started}\n").as_bytes(),
            0o644,
            Ownership::default(),
        )?;
        tracing::info!(service = %spec.name, pid, "service started");
        Ok(pid)
    }

    fn stop(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
        let Some(pid) = self.running(spec, ctx) else {
            remove_pidfile(spec, ctx);
            return Ok(());
        };
        let group = Pid::from_raw(pid as i32);
        // Watched before the signal, and only if the pid still names the
        // server afterwards (the check `running` made may be stale).
        let exit = ExitHandle::open(pid)
            .ok()
            .filter(|_| self.running(spec, ctx) == Some(pid));
        let _ = killpg(group, Signal::SIGTERM);
        // At least a second, at most a day (a typo of many digits must
        // not overflow the clock).
        let grace = Duration::from_secs(spec.stop_grace_secs.clamp(1, 86_400));
        match exit.as_ref().map(|exit| exit.wait(grace)) {
            Some(Ok(_)) => {}
            // No pidfd (a kernel before 5.3) or the wait failed: poll.
            _ => {
                let deadline = Instant::now() + grace;
                let mut polling = Polling::up_to(Duration::from_millis(50));
                while start_time(pid).is_some() && Instant::now() < deadline {
                    reap(pid);
                    polling.sleep();
                }
            }
        }
        reap(pid);
        if start_time(pid).is_some() {
            tracing::warn!(service = %spec.name, pid, "did not stop in time; killing it");
            let _ = killpg(group, Signal::SIGKILL);
            match &exit {
                Some(exit) => {
                    let _ = exit.wait(Duration::from_secs(1));
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        reap(pid);
        remove_pidfile(spec, ctx);
        tracing::info!(service = %spec.name, pid, "service stopped");
        Ok(())
    }
}

/// What a server's environment starts from — nothing of the agent's own:
/// the service account's home, name and shell (the agent's own account when
/// the server runs as the agent's user), a system PATH and a UTF-8 locale.
fn base_environment(ctx: &ApplyContext, user: Option<&str>) -> Vec<(&'static str, String)> {
    let (name, home) = match user {
        Some(name) => (
            name.to_string(),
            account::user(&ctx.paths, name)
                .map(|a| ctx.paths.resolve(&a.home).display().to_string())
                .unwrap_or_else(|| "/".into()),
        ),
        None => match nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
        {
            Some(own) => (own.name, own.dir.display().to_string()),
            None => (nix::unistd::geteuid().to_string(), "/".into()),
        },
    };
    vec![
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME", home),
        ("USER", name.clone()),
        ("LOGNAME", name),
        ("SHELL", "/bin/sh".into()),
        ("LANG", "C.UTF-8".into()),
    ]
}

/// Collects the exit status of our own child, so that it does not linger
/// as a zombie (ignored when it is not our child).
fn reap(pid: u32) {
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid as i32),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;
    use rigger_common::catalog::ServiceProvider;
    use std::os::unix::fs::PermissionsExt;

    /// A service whose start script is `script`, run as this user.
    fn service(dir: &Path, script: &str) -> (ServiceSpec, ApplyContext) {
        let home = dir.join("opt/server");
        fs::create_dir_all(&home).unwrap();
        let start = home.join("start.sh");
        fs::write(&start, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&start, fs::Permissions::from_mode(0o755)).unwrap();
        let spec = ServiceSpec {
            name: "server".into(),
            provider: ServiceProvider::Process,
            start: "start.sh".into(),
            args: vec![],
            working_dir: "/opt/server".into(),
            log_file: "/var/log/server.log".into(),
            log_max_bytes: 1 << 20,
            log_keep: 1,
            user: None,
            group: None,
            environment: Default::default(),
            environment_file: None,
            nofile: 1024,
            health: None,
            ready_timeout_secs: 10,
            stop_grace_secs: 1,
            restart_lease: None,
            pid_file: "server.pid".into(),
            pre_stop: String::new(),
            post_ready: String::new(),
        };
        (spec, ApplyContext::new(Paths::new(dir)))
    }

    #[test]
    fn a_server_that_stops_on_sigterm_is_gone_when_stop_returns() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, ctx) = service(dir.path(), "exec sleep 30");
        let pid = ProcessManager.start(&spec, &ctx).unwrap();
        assert_eq!(ProcessManager.running(&spec, &ctx), Some(pid));
        ProcessManager.stop(&spec, &ctx).unwrap();
        assert_eq!(start_time(pid), None, "still running after the stop");
        assert_eq!(ProcessManager.running(&spec, &ctx), None);
        assert!(!pidfile(&spec, &ctx).exists());
    }

    #[test]
    fn a_server_that_ignores_sigterm_is_killed_after_its_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, ctx) = service(dir.path(), "trap '' TERM; sleep 30; sleep 30");
        let pid = ProcessManager.start(&spec, &ctx).unwrap();
        ProcessManager.stop(&spec, &ctx).unwrap();
        assert_eq!(start_time(pid), None, "still running after the stop");
        assert!(!pidfile(&spec, &ctx).exists());
    }
}
