//! The `systemd` provider: the agent writes the server's unit, reloads
//! systemd only when the unit changed, enables and starts it; systemd
//! restarts it when it dies (`Restart=on-failure`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rigger_common::catalog::ServiceSpec;
use rigger_common::fsutil::Ownership;

use super::{ServiceManager, err};
use crate::resources::{ApplyContext, ResourceError};

/// Whether systemd runs this machine (PID 1).
pub(super) fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
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
         PIDFile={dir}/{pid_file}\n\
         WorkingDirectory={dir}\n",
        name = spec.name,
        dir = spec.working_dir.trim_end_matches('/'),
        pid_file = spec.pid_file.trim_start_matches('/'),
    );
    if let Some(user) = spec.user.as_deref().filter(|u| !u.is_empty()) {
        unit.push_str(&format!("User={user}\n"));
    }
    if let Some(group) = spec.group.as_deref().filter(|g| !g.is_empty()) {
        unit.push_str(&format!("Group={group}\n"));
    }
    for (key, value) in &spec.environment {
        unit.push_str(&format!(
            "Environment=\"{}={}\"\n",
            unit_quoted(key),
            unit_quoted(value)
        ));
    }
    if let Some(file) = &spec.environment_file {
        unit.push_str(&format!("EnvironmentFile={file}\n"));
    }
    unit.push_str(&format!(
        "LimitNOFILE={}\nRestart=on-failure\nRestartSec=10\nTimeoutStartSec={}\nTimeoutStopSec={}\n\n[Install]\nWantedBy=multi-user.target\n",
        spec.nofile, spec.ready_timeout_secs, spec.stop_grace_secs
    ));
    unit
}

/// Text for inside a double-quoted unit-file value: C-style escapes for
/// quotes, backslashes and control characters, `%%` for a percent sign (a
/// specifier otherwise).
fn unit_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
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
        let root = ctx.beneath()?;
        if let Some(parent) = path.parent() {
            root.create_dir_all(parent)?;
        }
        root.write_atomic(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;
    use rigger_common::catalog::ServiceProvider;

    fn spec(working_dir: &str) -> ServiceSpec {
        ServiceSpec {
            name: "wso2is".into(),
            provider: ServiceProvider::Systemd,
            start: "bin/wso2server.sh".into(),
            args: vec![],
            working_dir: working_dir.into(),
            log_file: "/var/log/wso2/wso2is/console.log".into(),
            log_max_bytes: 1024,
            log_keep: 2,
            user: Some("wso2carbon".into()),
            group: Some("wso2".into()),
            environment: [
                ("JAVA_HOME".to_string(), "/opt/java".to_string()),
                ("NOTE".to_string(), "50% \"quoted\"".to_string()),
            ]
            .into(),
            environment_file: Some("/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh".into()),
            nofile: 65535,
            health: None,
            ready_timeout_secs: 600,
            stop_grace_secs: 30,
            restart_lease: None,
            pid_file: "wso2carbon.pid".into(),
            pre_stop: String::new(),
            post_ready: String::new(),
        }
    }

    #[test]
    fn the_unit_waits_on_the_pid_file_the_server_writes() {
        let mut worker = spec("/opt/wso2/wso2is-analytics-5.8.0");
        worker.pid_file = "wso2/worker/runtime.pid".into();
        assert!(
            unit_file(&worker)
                .contains("PIDFile=/opt/wso2/wso2is-analytics-5.8.0/wso2/worker/runtime.pid\n"),
            "{}",
            unit_file(&worker)
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
Environment=\"NOTE=50%% \\\"quoted\\\"\"
EnvironmentFile=/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh
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
