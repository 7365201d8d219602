//! `agentctl` on a terminal, as an operator's ssh session gives it one: a
//! pseudo-terminal. The status screen renders as on a pipe, and `--watch`
//! redraws it in place (clear and home) on a terminal only.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::pty::openpty;
use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, bin, wait_for};

const CLEAR_AND_HOME: &str = "\x1b[2J\x1b[H";

/// `agentctl ARGS` with a pseudo-terminal for stdin, stdout and stderr;
/// returns the child and what it writes (read until it closes the
/// terminal).
fn on_terminal(node: &TestAgent, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let pty = openpty(None, None).expect("a pseudo-terminal");
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let child = Command::new(bin("agentctl"))
        .arg("--root")
        .arg(node.root())
        .args(args)
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    drop(pty.slave);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut master = std::fs::File::from(pty.master);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        // EIO once every holder of the terminal closed it.
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&chunk[..n]).into_owned())
                    .is_err()
            {
                return;
            }
        }
    });
    (child, rx)
}

/// Everything received until `until` holds of it (30 s at most).
fn read_until(rx: &std::sync::mpsc::Receiver<String>, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !until(&text) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => text.push_str(&chunk),
            Err(_) => panic!("the terminal never showed what was expected: {text:?}"),
        }
    }
    text
}

#[test]
fn the_status_screen_renders_on_a_terminal_and_watch_redraws_it() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance::at("i-term", "127.0.0.98"));
    let mut node = TestAgent::new("term-1");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    node.start_daemon(
        &master.url(),
        &["--imds-endpoint", &imds.url(), "--run-interval", "30m"],
    );
    assert_eq!(node.ctl(&["run"]).code, 0);

    // The screen on a terminal is the screen on a pipe.
    let (mut status, rx) = on_terminal(&node, &["status"]);
    let shown = read_until(&rx, |t| t.contains("cache:"));
    let code = wait_for("agentctl status to end", Duration::from_secs(10), || {
        status.try_wait().unwrap()
    });
    assert_eq!(code.code(), Some(0), "{shown}");
    let piped = node.ctl(&["status"]);
    for line in piped.stdout.lines().filter(|l| {
        // Lines that name a moment may differ by a second between the two.
        !l.contains(" ago") && !l.starts_with("next run:") && !l.starts_with("process:")
    }) {
        assert!(
            shown.contains(line),
            "{line:?} is not on the terminal:\n{shown}"
        );
    }
    assert!(!shown.contains('\x1b'), "no escape codes: {shown:?}");
    assert!(
        shown.contains("node:      term-1") && shown.contains("result:    unchanged"),
        "{shown}"
    );

    // --watch redraws in place on a terminal; on a pipe it only appends.
    let (mut watch, rx) = on_terminal(&node, &["status", "--watch", "--every", "200ms"]);
    let redrawn = read_until(&rx, |t| t.matches(CLEAR_AND_HOME).count() >= 3);
    assert!(redrawn.starts_with(CLEAR_AND_HOME), "{redrawn:?}");
    assert!(
        redrawn.matches("node:      term-1").count() >= 3,
        "{redrawn:?}"
    );
    let ended = rigger_tests::interrupt(&mut watch);
    assert_eq!(ended.code(), Some(0));
    let mut piped = Command::new(bin("agentctl"))
        .arg("--root")
        .arg(node.root())
        .args(["status", "--watch", "--every", "200ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = rigger_tests::stdout_lines(&mut piped);
    let mut appended = String::new();
    while appended.matches("node:      term-1").count() < 2 {
        appended.push_str(&lines.recv_timeout(Duration::from_secs(30)).unwrap());
        appended.push('\n');
    }
    assert!(!appended.contains(CLEAR_AND_HOME), "{appended:?}");
    piped.kill().unwrap();
    piped.wait().unwrap();

    // A new level and a new host name, applied by hand on a terminal: the
    // release's fetch draws a bar, the diffs are coloured. (Disabled: the
    // push does not apply them first.)
    assert_eq!(node.ctl(&["disable", "--reason", "terminal test"]).code, 0);
    let level = rigger_tests::pack::SamplePack::new(40, 256 << 10).at_level(1, 50);
    assert_eq!(master.import_update(&level).code, 0);
    rigger_tests::cluster::set_hostname(&master, "term.example.com");
    let (mut run, rx) = on_terminal(&node, &["run"]);
    let shown = read_until(&rx, |t| t.contains("catalog version"));
    let code = wait_for("agentctl run to end", Duration::from_secs(60), || {
        run.try_wait().unwrap()
    });
    assert_eq!(code.code(), Some(0), "{shown}");
    assert!(shown.contains("fetching  ["), "no fetch bar: {shown:?}");
    assert!(
        shown.contains("\x1b[32m+") && shown.contains("term.example.com"),
        "no coloured diff: {shown:?}"
    );
    let piped = node.ctl(&["run"]);
    assert!(!piped.stdout.contains('\x1b'), "{}", piped.all());
    node.stop_daemon();
}
