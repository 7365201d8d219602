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
    /// Whether the provider's own definition (a systemd unit) is out of date.
    fn definition_outdated(&self, _spec: &ServiceSpec, _ctx: &ApplyContext) -> bool {
        false
    }
    /// Brings that definition up to date; returns whether it changed.
    fn install(&self, _spec: &ServiceSpec, _ctx: &ApplyContext) -> Result<bool, ResourceError> {
        Ok(false)
    }
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

/// What a process provider pidfile (`PID START_TIME`) says: the pid, and
/// whether that process still runs (the same process: a reused pid has
/// another start time). `None` for a missing or unreadable pidfile.
pub fn pidfile_process(pidfile: &std::path::Path) -> Option<(u32, bool)> {
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
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent).map_err(super::io_error("cannot create", parent))?;
        }
        rotate_log(spec, ctx);
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

/// Collects the exit status of our own child, so that it does not linger
/// as a zombie (ignored when it is not our child).
fn reap(pid: u32) {
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid as i32),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

static SYSTEMD: std::sync::LazyLock<SystemdManager> = std::sync::LazyLock::new(|| SystemdManager {
    systemctl: std::env::var_os("RIGGER_SYSTEMCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("systemctl")),
});

/// Whether systemd runs this machine (PID 1).
fn systemd_is_init() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

fn provider(spec: &ServiceSpec) -> Result<&'static dyn ServiceManager, ResourceError> {
    match spec.provider.as_str() {
        "process" => Ok(&ProcessManager),
        "systemd" => Ok(&*SYSTEMD),
        "auto" if systemd_is_init() => Ok(&*SYSTEMD),
        "auto" => Ok(&ProcessManager),
        other => Err(err(format!(
            "service provider {other:?} is unknown (process, systemd or auto)"
        ))),
    }
}

/// systemd manages the server: the agent writes its unit, reloads systemd
/// only when the unit changed, enables and starts it.
pub struct SystemdManager {
    /// The `systemctl` to run (a recording fake in tests).
    pub systemctl: PathBuf,
}

/// The unit file for a service (`Type=forking`, the start script's
/// `start`/`stop`, the server's pidfile, the service user).
pub fn unit_file(spec: &ServiceSpec) -> String {
    let start = if spec.start.starts_with('/') {
        spec.start.clone()
    } else {
        format!("{}/{}", spec.working_dir.trim_end_matches('/'), spec.start)
    };
    let args = if spec.args.is_empty() {
        String::new()
    } else {
        format!(" {}", spec.args.join(" "))
    };
    let mut unit = format!(
        "# Managed by Rigger. Local edits are replaced on the next run.\n\
         [Unit]\n\
         Description={name} (managed by Rigger)\n\
         After=network-online.target remote-fs.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=forking\n\
         ExecStart={start} start{args}\n\
         ExecStop={start} stop\n\
         PIDFile={dir}/wso2carbon.pid\n\
         WorkingDirectory={dir}\n",
        name = spec.name,
        dir = spec.working_dir.trim_end_matches('/'),
    );
    if let Some(user) = spec.user.as_deref().filter(|u| !u.is_empty()) {
        unit.push_str(&format!("User={user}\n"));
    }
    if let Some(group) = spec.group.as_deref().filter(|g| !g.is_empty()) {
        unit.push_str(&format!("Group={group}\n"));
    }
    for (key, value) in &spec.environment {
        unit.push_str(&format!("Environment=\"{key}={value}\"\n"));
    }
    unit.push_str(&format!(
        "LimitNOFILE={}\nRestart=on-failure\nRestartSec=10\nTimeoutStartSec={}\nTimeoutStopSec={}\n\n[Install]\nWantedBy=multi-user.target\n",
        spec.nofile, spec.ready_timeout_secs, spec.stop_grace_secs
    ));
    unit
}

impl SystemdManager {
    fn unit_path(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> PathBuf {
        ctx.paths
            .resolve(&format!("/etc/systemd/system/{}.service", spec.name))
    }

    fn systemctl(&self, args: &[&str]) -> Result<std::process::Output, ResourceError> {
        Command::new(&self.systemctl)
            .args(args)
            .output()
            .map_err(|e| err(format!("cannot run {}: {e}", self.systemctl.display())))
    }

    fn must(&self, args: &[&str]) -> Result<(), ResourceError> {
        let out = self.systemctl(args)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(err(format!(
                "systemctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Whether the unit on disk differs from what the catalog wants.
    pub fn unit_outdated(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> bool {
        fs::read_to_string(self.unit_path(spec, ctx))
            .ok()
            .as_deref()
            != Some(unit_file(spec).as_str())
    }

    /// Writes the unit when it changed and reloads systemd (only then).
    pub fn install_unit(
        &self,
        spec: &ServiceSpec,
        ctx: &ApplyContext,
    ) -> Result<bool, ResourceError> {
        if !self.unit_outdated(spec, ctx) {
            return Ok(false);
        }
        let path = self.unit_path(spec, ctx);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(super::io_error("cannot create", parent))?;
        }
        write_atomic(
            &path,
            unit_file(spec).as_bytes(),
            0o644,
            Ownership::default(),
        )?;
        self.must(&["daemon-reload"])?;
        self.must(&["enable", &format!("{}.service", spec.name)])?;
        Ok(true)
    }
}

impl ServiceManager for SystemdManager {
    fn running(&self, spec: &ServiceSpec, _ctx: &ApplyContext) -> Option<u32> {
        let unit = format!("{}.service", spec.name);
        let active = self
            .systemctl(&["is-active", "--quiet", &unit])
            .ok()?
            .status
            .success();
        if !active {
            return None;
        }
        let out = self
            .systemctl(&["show", "--property", "MainPID", "--value", &unit])
            .ok()?;
        Some(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
        )
    }

    fn start(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<u32, ResourceError> {
        self.install_unit(spec, ctx)?;
        self.must(&["start", &format!("{}.service", spec.name)])?;
        Ok(self.running(spec, ctx).unwrap_or(0))
    }

    fn stop(&self, spec: &ServiceSpec, _ctx: &ApplyContext) -> Result<(), ResourceError> {
        self.must(&["stop", &format!("{}.service", spec.name)])
    }

    fn definition_outdated(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> bool {
        self.unit_outdated(spec, ctx)
    }

    fn install(&self, spec: &ServiceSpec, ctx: &ApplyContext) -> Result<bool, ResourceError> {
        self.install_unit(spec, ctx)
    }
}

/// Whether the agent itself supervises this service (the process
/// provider; systemd restarts its own units).
pub fn supervised(spec: &ServiceSpec, _ctx: &ApplyContext) -> bool {
    match spec.provider.as_str() {
        "process" => true,
        "auto" => !systemd_is_init(),
        _ => false,
    }
}

/// Whether the server runs now.
pub fn is_running(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<bool, ResourceError> {
    Ok(provider(spec)?.running(spec, ctx).is_some())
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
    fs::create_dir_all(marker.parent().expect("marker has a parent"))
        .map_err(super::io_error("cannot create", &marker))?;
    write_atomic(&marker, b"", 0o644, Ownership::default())?;
    Ok(())
}

/// The server is up with everything applied: the restart is done and the
/// cluster's lease goes back.
fn finish(spec: &ServiceSpec, ctx: &ApplyContext) {
    let _ = fs::remove_file(pending_marker(spec, ctx));
    if let Some(leases) = &ctx.leases {
        leases.release(spec);
    }
}

/// What would change: a server that is not running would be started; one
/// whose restart is still due would be restarted.
pub fn check(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let manager = provider(spec)?;
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
    let manager = provider(spec)?;
    let unit_changed = manager.install(spec, ctx)?;
    if manager.running(spec, ctx).is_some() && (unit_changed || pending_marker(spec, ctx).exists())
    {
        restart(spec, ctx)?;
        return Ok(());
    }
    if manager.running(spec, ctx).is_none() {
        manager.start(spec, ctx)?;
    }
    wait_ready(spec, ctx, manager)?;
    finish(spec, ctx);
    Ok(())
}

/// Restarts the server (something it depends on changed) and waits until
/// ready. Returns a note when the node had to wait for its turn.
pub fn restart(spec: &ServiceSpec, ctx: &ApplyContext) -> Result<Option<String>, ResourceError> {
    mark_pending(spec, ctx)?;
    let manager = provider(spec)?;
    let note = take_down(spec, ctx, manager)?;
    manager.start(spec, ctx)?;
    wait_ready(spec, ctx, manager)?;
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
    take_down(spec, ctx, provider(spec)?)
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
            return Err(err(format!(
                "restarting {} needs the restart lease of cluster {}, and the master cannot be asked now: the server keeps running and the restart stays pending",
                spec.name, lease.group
            )));
        }
    };
    manager.stop(spec, ctx)?;
    Ok(note)
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
        if ctx.stopping.is_cancelled() {
            return Err(err(format!(
                "the agent is stopping before {} was ready: the next run checks it again",
                spec.name
            )));
        }
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

/// One readiness probe: `tcp://HOST:PORT` connects; `http://` and
/// `https://` URLs must answer with a 2xx or 3xx status line. HTTPS takes
/// the server's certificate as it is (WSO2's is self-signed).
fn probe(health: &str) -> Result<(), String> {
    let timeout = Duration::from_secs(2);
    let (scheme, rest) = match health.split_once("://") {
        Some((scheme @ ("tcp" | "http" | "https"), rest)) => (scheme, rest),
        _ => {
            return Err(format!(
                "unsupported health check {health:?} (tcp://, http:// or https://)"
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
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let head = match scheme {
        "tcp" => return Ok(()),
        "http" => exchange(stream, &request)?,
        _ => {
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host}: {e}"))?;
            let config = rigger_common::tls::health_check_client_config()
                .map_err(|e| rigger_common::error_chain(&e))?;
            let tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(rustls::StreamOwned::new(tls, stream), &request)?
        }
    };
    match head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("HTTP {code}")),
        None => Err("not an HTTP answer".into()),
    }
}

/// Sends `request` and returns the start of the answer (its status line).
fn exchange(mut stream: impl Read + Write, request: &str) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    // The status line may arrive in pieces (TLS records); 64 bytes hold it.
    while filled < 16 {
        match stream.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if filled == 0 => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&head[..filled]).into_owned())
}

/// The last lines of a log, for failure messages.
pub fn log_tail(path: &std::path::Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    fn spec(working_dir: &str) -> ServiceSpec {
        ServiceSpec {
            name: "wso2is".into(),
            provider: "systemd".into(),
            start: "bin/wso2server.sh".into(),
            args: vec![],
            working_dir: working_dir.into(),
            log_file: "/var/log/wso2/wso2is/console.log".into(),
            log_max_bytes: 1024,
            log_keep: 2,
            user: Some("wso2carbon".into()),
            group: Some("wso2".into()),
            environment: [("JAVA_HOME".to_string(), "/opt/java".to_string())].into(),
            nofile: 65535,
            health: None,
            ready_timeout_secs: 600,
            stop_grace_secs: 30,
            restart_lease: None,
        }
    }

    /// Serves one HTTPS request with a self-signed certificate on loopback.
    fn one_https_answer(status: &'static str) -> (std::thread::JoinHandle<()>, u16) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(rigger_common::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut request = [0u8; 256];
            let _ = tls.read(&mut request).unwrap();
            write!(tls, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").unwrap();
            tls.flush().unwrap();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        (server, port)
    }

    #[test]
    fn https_probes_accept_a_self_signed_certificate_and_read_the_status() {
        let (server, port) = one_https_answer("200 OK");
        probe(&format!("https://127.0.0.1:{port}/carbon/admin/login.jsp")).unwrap();
        server.join().unwrap();

        let (server, port) = one_https_answer("503 Service Unavailable");
        assert_eq!(
            probe(&format!("https://127.0.0.1:{port}/")).unwrap_err(),
            "HTTP 503"
        );
        server.join().unwrap();

        // A plain TCP listener that closes at once is not a ready HTTPS server.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let closer = std::thread::spawn(move || drop(listener.accept().unwrap()));
        assert!(probe(&format!("https://127.0.0.1:{port}/")).is_err());
        closer.join().unwrap();
        assert!(
            probe("ftp://127.0.0.1/")
                .unwrap_err()
                .contains("unsupported")
        );
    }

    #[test]
    fn unit_file_matches_the_golden_file() {
        let golden = "# Managed by Rigger. Local edits are replaced on the next run.
[Unit]
Description=wso2is (managed by Rigger)
After=network-online.target remote-fs.target
Wants=network-online.target

[Service]
Type=forking
ExecStart=/opt/wso2/wso2is-5.11.0/bin/wso2server.sh start
ExecStop=/opt/wso2/wso2is-5.11.0/bin/wso2server.sh stop
PIDFile=/opt/wso2/wso2is-5.11.0/wso2carbon.pid
WorkingDirectory=/opt/wso2/wso2is-5.11.0
User=wso2carbon
Group=wso2
Environment=\"JAVA_HOME=/opt/java\"
LimitNOFILE=65535
Restart=on-failure
RestartSec=10
TimeoutStartSec=600
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
";
        assert_eq!(unit_file(&spec("/opt/wso2/wso2is-5.11.0")), golden);
    }

    #[test]
    fn systemd_analyze_accepts_the_unit_where_installed() {
        let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
            eprintln!("systemd-analyze not installed: skipped");
            return;
        };
        if !out.status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        fs::write(dir.path().join("bin/wso2server.sh"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            dir.path().join("bin/wso2server.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let mut s = spec(&home);
        s.user = None;
        s.group = None;
        let unit = dir.path().join("wso2is.service");
        fs::write(&unit, unit_file(&s)).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("wso2is.service:"),
            "systemd-analyze found problems in the unit:\n{stderr}"
        );
    }

    #[test]
    fn unit_is_written_and_systemd_reloaded_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("systemctl.log");
        let state = dir.path().join("active");
        let fake = dir.path().join("systemctl");
        fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$1\" in\n  start) touch {state} ;;\n  stop) rm -f {state} ;;\n  is-active) [ -f {state} ] ;;\n  show) echo 4242 ;;\nesac\n",
                log = log.display(),
                state = state.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let manager = SystemdManager { systemctl: fake };
        let ctx = ApplyContext::new(Paths::new(dir.path().join("root")));
        let s = spec("/opt/wso2/wso2is-5.11.0");

        assert!(manager.definition_outdated(&s, &ctx));
        assert_eq!(manager.start(&s, &ctx).unwrap(), 4242);
        let unit =
            fs::read_to_string(ctx.paths.resolve("/etc/systemd/system/wso2is.service")).unwrap();
        assert_eq!(unit, unit_file(&s));
        assert!(!manager.definition_outdated(&s, &ctx));
        assert!(
            !manager.install(&s, &ctx).unwrap(),
            "unchanged unit rewritten"
        );
        assert_eq!(manager.running(&s, &ctx), Some(4242));
        manager.stop(&s, &ctx).unwrap();
        assert_eq!(manager.running(&s, &ctx), None);
        let calls = fs::read_to_string(&log).unwrap();
        assert_eq!(calls.matches("daemon-reload").count(), 1, "{calls}");
        assert!(
            calls.contains("enable wso2is.service") && calls.contains("start wso2is.service"),
            "{calls}"
        );

        let mut changed = s.clone();
        changed.nofile = 100_000;
        assert!(manager.definition_outdated(&changed, &ctx));
        assert!(manager.install(&changed, &ctx).unwrap());
        let calls = fs::read_to_string(&log).unwrap();
        assert_eq!(calls.matches("daemon-reload").count(), 2, "{calls}");
    }
}
