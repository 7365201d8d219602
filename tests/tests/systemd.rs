//! Rigger's daemons under systemd: `Type=notify` readiness, the watchdog
//! and stopping, told over a real notify socket the test binds; the unit
//! files pass `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rigger_tests::services::program_or_skip;
use rigger_tests::{bin, interrupt, repo_root};

/// A notify socket like systemd's: the datagrams a daemon sends to it.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self {
            _dir: dir,
            path,
            socket,
        }
    }

    /// Every message received until `until` holds for one, or 30 s pass.
    fn messages_until(&self, until: impl Fn(&[String]) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline && !until(&seen) {
            if let Ok(n) = self.socket.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        seen
    }
}

fn has(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

fn under_systemd(command: &mut Command, notify: &NotifySocket) -> Child {
    command
        .env("NOTIFY_SOCKET", &notify.path)
        // No WATCHDOG_PID: the watchdog is meant for the daemon itself.
        .env("WATCHDOG_USEC", "300000")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon")
}

fn assert_ready_pinged_and_stopping(mut child: Child, notify: &NotifySocket, status: &str) {
    let seen = notify.messages_until(|m| has(m, "READY=1") == 1 && has(m, "WATCHDOG=1") >= 3);
    let ready = seen
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 among {seen:?}"));
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains(status)),
        "the READY message says what is up ({status}): {ready:?}"
    );
    assert!(
        has(&seen, "WATCHDOG=1") >= 3,
        "the watchdog is pinged within its 300 ms: {seen:?}"
    );
    let exit = interrupt(&mut child);
    assert!(exit.success(), "the daemon stops cleanly: {exit}");
    let mut buf = [0u8; 4096];
    let mut stopping = false;
    while let Ok(n) = notify.socket.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1");
    }
    assert!(stopping, "the daemon tells systemd it is stopping");
}

#[test]
fn the_master_is_ready_once_it_listens_and_pings_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind();
    let child = under_systemd(
        Command::new(bin("rigger-master"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--site")
            .arg(repo_root().join("examples/site"))
            .arg("--modules")
            .arg(repo_root().join("modules"))
            .arg("--admin-socket")
            .arg(dir.path().join("master.sock"))
            .env_remove("RIGGER_MASTER_CONFIG"),
        &notify,
    );
    assert_ready_pinged_and_stopping(child, &notify, "listening on 127.0.0.1:");
}

#[test]
fn the_agent_is_ready_once_its_control_socket_is_up_not_after_a_run() {
    let root = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind();
    // No master answers at this address: readiness does not wait for a run.
    let child = under_systemd(
        Command::new(bin("rigger-agent"))
            .arg("--root")
            .arg(root.path())
            .args(["--master", "127.0.0.1:9", "--certname", "notify-node"])
            .args(["--imds-endpoint", "off"])
            .env_remove("RIGGER_AGENT_CONFIG")
            .env_remove("RIGGER_TOKEN"),
        &notify,
    );
    assert_ready_pinged_and_stopping(child, &notify, "control socket");
    assert!(
        !root.path().join("run/rigger/agent.sock").exists(),
        "the socket is removed on stop"
    );
}

#[test]
fn the_unit_files_pass_systemd_analyze_verify() {
    let Some(analyze) = program_or_skip(
        "the_unit_files_pass_systemd_analyze_verify",
        "systemd-analyze",
        "systemd",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for (unit, binary) in [
        ("rigger-master.service", "rigger-master"),
        ("rigger-agent.service", "rigger-agent"),
    ] {
        let text = std::fs::read_to_string(repo_root().join("deploy/systemd").join(unit)).unwrap();
        // verify checks that ExecStart's program exists: the built one
        // stands in for /usr/bin's (the package test verifies the installed
        // units as they are).
        let path = dir.path().join(unit);
        std::fs::write(
            &path,
            text.replace(
                &format!("/usr/bin/{binary}"),
                &bin(binary).display().to_string(),
            ),
        )
        .unwrap();
        units.push(path);
    }
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on an unknown key or a bad value: any word from it is
    // a defect.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    for (unit, required, forbidden) in [
        (
            "rigger-master.service",
            &[
                "Type=notify",
                "ProtectSystem=strict",
                "PrivateTmp=yes",
                "NoNewPrivileges=yes",
                "User=rigger",
                "RestartPreventExitStatus=78",
                "WatchdogSec=",
            ][..],
            &[][..],
        ),
        (
            "rigger-agent.service",
            &[
                "Type=notify",
                "KillMode=process",
                "Restart=on-failure",
                "RestartPreventExitStatus=78",
                "WatchdogSec=",
            ][..],
            &[
                "ProtectSystem",
                "PrivateTmp",
                "ProtectHome",
                "CapabilityBoundingSet",
                "PrivateMounts",
            ][..],
        ),
    ] {
        let text = std::fs::read_to_string(repo_root().join("deploy/systemd").join(unit)).unwrap();
        let directives: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        for r in required {
            assert!(
                directives.iter().any(|l| l.starts_with(r)),
                "{unit} has {r}"
            );
        }
        for f in forbidden {
            assert!(
                !directives.iter().any(|l| l.starts_with(f)),
                "{unit} must not have {f}: the agent's mounts must be the host's"
            );
        }
    }
}
