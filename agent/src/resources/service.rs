//! `service`: a long-running server. Behind [`ServiceManager`]; the
//! `process` provider (here) has the agent start the server itself: its
//! own process group, the service user, CARBON_HOME as working directory,
//! the open-files limit, output appended to a log file, and a pidfile
//! holding the pid and its start time so that an agent restart re-adopts
//! the running server instead of starting a second one.
//!
//! A converged run never restarts a server; a change to something that
//! notifies it does (see the apply engine's refresh).

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rigger_common::catalog::ServiceSpec;
use rigger_common::fsutil::{Ownership, write_atomic};

use super::owner::DesiredOwner;
use super::{ApplyContext, Change, ResourceError};

/// Starts, stops and inspects servers.
pub trait ServiceManager {
    /// The pid of the running server, if it runs.
    fn running(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Option<u32>;
    /// Starts the server (not waiting for readiness); returns its pid.
    fn start(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<u32, ResourceError>;
    /// Stops the server: SIGTERM to its group, SIGKILL after the grace.
    fn stop(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError>;
}

/// The agent supervises the process itself.
pub struct ProcessManager;

fn err(message: String) -> ResourceError {
    ResourceError::Other(message)
}

fn pidfile(spec: &ServiceSpec, ctx: &ApplyContext) -> PathBuf {
    ctx.paths
        .state_dir()
        .join("services")
        .join(format!("{}.pid", spec.name))
}

/// Start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat), which tells a re-used pid from the original.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn resolve(spec_path: &str, ctx: &ApplyContext, working_dir: &std::path::Path) -> PathBuf {
    if spec_path.starts_with('/') {
        ctx.paths.resolve(spec_path)
    } else {
        working_dir.join(spec_path)
    }
}

impl ServiceManager for ProcessManager {
    fn running(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Option<u32> {
        let text = fs::read_to_string(pidfile(spec, ctx)).ok()?;
        let mut parts = text.split_whitespace();
        let pid: u32 = parts.next()?.parse().ok()?;
        let recorded: u64 = parts.next()?.parse().ok()?;
        (start_time(pid)? == recorded).then_some(pid)
    }

    fn start(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<u32, ResourceError> {
        let working_dir = ctx.paths.resolve(&spec.working_dir);
        let program = resolve(&spec.start, ctx, &working_dir);
        let log_path = ctx.paths.resolve(&spec.log_file);
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent).map_err(super::io_error("cannot create", parent))?;
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(super::io_error("cannot open the service log", &log_path))?;
        let named = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        let owner = DesiredOwner::resolve(
            &ctx.paths,
            named(&spec.user).as_deref(),
            named(&spec.group).as_deref(),
        )?;
        if owner.is_managed() {
            std::os::unix::fs::fchown(&log, owner.uid, owner.gid).map_err(super::io_error(
                "cannot hand the service log to the service user",
                &log_path,
            ))?;
        }
        let mut command = Command::new("/bin/sh");
        // The shell sets the open-files limit, then becomes the server.
        command
            .arg("-c")
            .arg("ulimit -n \"$RIGGER_NOFILE\" 2>/dev/null || true; exec \"$0\" \"$@\"")
            .arg(&program)
            .args(&spec.args)
            .current_dir(&working_dir)
            .env("RIGGER_NOFILE", spec.nofile.to_string())
            .env("CARBON_HOME", &working_dir)
            .envs(&spec.environment)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(super::io_error("cannot open", &log_path))?,
            )
            .stderr(log)
            .process_group(0);
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
        fs::create_dir_all(pidfile.parent().expect("pidfile has a parent"))
            .map_err(super::io_error("cannot create", &pidfile))?;
        write_atomic(
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
            let _ = fs::remove_file(pidfile(spec, ctx));
            return Ok(());
        };
        let group = Pid::from_raw(pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(spec.stop_grace_secs.max(1));
        while start_time(pid).is_some() && Instant::now() < deadline {
            reap(pid);
            std::thread::sleep(Duration::from_millis(50));
        }
        if start_time(pid).is_some() {
            tracing::warn!(service = %spec.name, pid, "did not stop in time; killing it");
            let _ = killpg(group, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
        }
        reap(pid);
        let _ = fs::remove_file(pidfile(spec, ctx));
        tracing::info!(service = %spec.name, pid, "service stopped");
        Ok(())
    }
}

/// Collects the exit status of our own child, so that it does not linger
/// as a zombie (ignored when it is not our child).
fn reap(pid: u32) {
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid as i32),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

fn provider(spec: &ServiceSpec) -> Result<&'static dyn ServiceManager, ResourceError> {
    match spec.provider.as_str() {
        "process" => Ok(&ProcessManager),
        other => Err(err(format!(
            "service provider {other:?} is not available yet on this agent (use \"process\")"
        ))),
    }
}

/// What would change: a server that is not running would be started.
pub fn check(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    match provider(spec)?.running(spec, ctx) {
        Some(_) => Ok(vec![]),
        None => Ok(vec![Change::new(format!("start service {}", spec.name))]),
    }
}

/// Starts the server and waits until it is ready.
pub fn apply(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let manager = provider(spec)?;
    if manager.running(spec, ctx).is_none() {
        manager.start(spec, ctx)?;
    }
    wait_ready(spec, ctx, manager)
}

/// Restarts the server (something it depends on changed) and waits until ready.
pub fn restart(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let manager = provider(spec)?;
    manager.stop(spec, ctx)?;
    manager.start(spec, ctx)?;
    wait_ready(spec, ctx, manager)
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
    loop {
        if manager.running(spec, ctx).is_none() {
            return Err(err(format!(
                "{} exited before it was ready; last output:\n{}",
                spec.name,
                log_tail(&ctx.paths.resolve(&spec.log_file))
            )));
        }
        let last = match probe(health) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(err(format!(
                "{} was not ready after {}s ({health}: {last}); last output:\n{}",
                spec.name,
                spec.ready_timeout_secs,
                log_tail(&ctx.paths.resolve(&spec.log_file))
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One readiness probe: `tcp://HOST:PORT` connects; `http://HOST:PORT/PATH`
/// must answer with a 2xx or 3xx status line.
fn probe(health: &str) -> Result<(), String> {
    let timeout = Duration::from_secs(2);
    let (tcp_only, rest) = match health.split_once("://") {
        Some(("tcp", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => {
            return Err(format!(
                "unsupported health check {health:?} (tcp:// or http://)"
            ));
        }
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    if tcp_only {
        return Ok(());
    }
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    match line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("HTTP {code}")),
        None => Err("not an HTTP answer".into()),
    }
}

/// The last lines of a log, for failure messages.
pub fn log_tail(path: &std::path::Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
