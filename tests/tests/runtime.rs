//! The node runtime: the server runs under the agent's supervision, is
//! (re)started only when something it depends on changed, and is started
//! again when it died. The stand-in server (tests/src/bin) plays WSO2.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, wait_for};

fn get(addr: &str, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split("\r\n\r\n").nth(1).map(str::to_string)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn the_server_starts_once_restarts_only_on_change_and_comes_back_when_it_dies() {
    let master = TestMaster::start();
    master.edit_site("roles/is.toml", |t| {
        format!("{t}\n[service]\nenabled = true\n")
    });
    let imds = FakeImds::start(Instance {
        instance_id: "i-runtime".into(),
        private_ip: "127.0.0.6".into(),
        availability_zone: "us-east-1a".into(),
        tags: BTreeMap::new(),
    });
    let node = TestAgent::new("rt-1");
    let token = master.token(&["--role", "is"]);
    let fp = master.fingerprint();
    let url = imds.url();
    let run = |extra: &[&str]| {
        let mut args = vec!["--imds-endpoint", url.as_str()];
        args.extend_from_slice(extra);
        node.once(&master.url(), &args)
    };

    let first = run(&["--token", &token, "--ca-fingerprint", &fp]);
    assert_eq!(first.code, 2, "{}", first.all());
    assert!(
        first.stdout.contains("start service wso2is"),
        "{}",
        first.all()
    );
    // The run waited for readiness: the server answers right away.
    assert_eq!(
        get("127.0.0.6:9763", "/rigger/hostname").as_deref(),
        Some("is.demo.example.com")
    );
    let pid = node.service_pid("wso2is").expect("pidfile");
    assert!(alive(pid));

    let second = run(&[]);
    assert_eq!(
        second.code,
        0,
        "a converged run touches nothing: {}",
        second.all()
    );
    assert_eq!(
        node.service_pid("wso2is"),
        Some(pid),
        "the server was restarted"
    );

    // One value changes: exactly one restart, and the new value is served.
    master.edit_site("environments/demo.toml", |t| {
        t.replace("is.demo.example.com", "login.example.com")
    });
    let change = run(&[]);
    assert_eq!(change.code, 2, "{}", change.all());
    assert_eq!(
        change.stdout.matches("refreshed").count(),
        2,
        "record_config and server: {}",
        change.all()
    );
    let restarted = node.service_pid("wso2is").unwrap();
    assert_ne!(restarted, pid);
    assert!(!alive(pid), "the old server still runs");
    assert_eq!(
        get("127.0.0.6:9763", "/rigger/hostname").as_deref(),
        Some("login.example.com")
    );
    assert_eq!(run(&[]).code, 0);
    assert_eq!(node.service_pid("wso2is"), Some(restarted));

    // The server dies: the next run starts it again and says so.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(restarted),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the server to die", Duration::from_secs(10), || {
        (!alive(restarted)).then_some(())
    });
    let revived = run(&[]);
    assert_eq!(revived.code, 2, "{}", revived.all());
    assert!(
        revived.stdout.contains("start service wso2is"),
        "{}",
        revived.all()
    );
    let again = node.service_pid("wso2is").unwrap();
    assert!(alive(again));
    assert_eq!(
        get("127.0.0.6:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
}

/// Whether a root-only test may run: as root yes; otherwise it is skipped,
/// unless `RIGGER_REQUIRE_ROOT_TESTS=1` makes that a failure.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("RIGGER_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
        "{test} needs root and RIGGER_REQUIRE_ROOT_TESTS=1"
    );
    eprintln!("skipping {test}: needs root");
    false
}

#[test]
fn the_server_runs_as_the_service_user_created_in_the_nodes_root() {
    if !root_or_skip("the_server_runs_as_the_service_user_created_in_the_nodes_root") {
        return;
    }
    let master = TestMaster::start();
    master.edit_site("roles/is.toml", |t| {
        format!("{t}\n[service]\nenabled = true\nuser = \"wso2carbon\"\ngroup = \"wso2\"\n")
    });
    let imds = FakeImds::start(Instance {
        instance_id: "i-user".into(),
        private_ip: "127.0.0.7".into(),
        availability_zone: "us-east-1a".into(),
        tags: BTreeMap::new(),
    });
    let node = TestAgent::new("rt-user");
    // The service user must be able to reach its release under the test root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(node.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = master.token(&["--role", "is"]);
    let fp = master.fingerprint();
    let out = node.once(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--token",
            &token,
            "--ca-fingerprint",
            &fp,
        ],
    );
    let console =
        std::fs::read_to_string(node.path("/var/log/wso2/wso2is/console.log")).unwrap_or_default();
    assert_eq!(out.code, 2, "{}\nconsole.log:\n{console}", out.all());
    let passwd = std::fs::read_to_string(node.path("/etc/passwd")).unwrap();
    assert!(passwd.contains("wso2carbon:x:802:802:"), "{passwd}");
    assert!(
        std::fs::read_to_string(node.path("/etc/group"))
            .unwrap()
            .contains("wso2:x:802:")
    );
    let pid = node.service_pid("wso2is").expect("pidfile");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|id| id == "802"),
        "{uid_line}"
    );
    assert_eq!(
        get("127.0.0.7:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
    let again = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(again.code, 0, "{}", again.all());
}

#[test]
fn wait_ready_returns_once_the_first_catalog_is_applied_and_the_server_answers() {
    let master = TestMaster::start();
    master.edit_site("roles/is.toml", |t| {
        format!("{t}\n[service]\nenabled = true\n")
    });
    let imds = FakeImds::start(Instance {
        instance_id: "i-ready".into(),
        private_ip: "127.0.0.8".into(),
        availability_zone: "us-east-1a".into(),
        tags: BTreeMap::new(),
    });
    let mut node = TestAgent::new("rt-ready");
    let token = master.token(&["--role", "is"]);
    let fp = master.fingerprint();
    node.start_daemon(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--token",
            &token,
            "--ca-fingerprint",
            &fp,
            "--splay",
            "0s",
        ],
    );
    let ready = node.ctl(&["wait-ready", "--timeout", "2m"]);
    assert_eq!(ready.code, 0, "{}\n{}", ready.all(), node.log());
    assert_eq!(
        get("127.0.0.8:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
    node.stop_daemon();

    // A node that cannot enroll never becomes ready: wait-ready says why.
    let mut stuck = TestAgent::new("rt-stuck");
    stuck.start_daemon(
        &master.url(),
        &["--token", "not-a-token", "--ca-fingerprint", &fp],
    );
    let out = stuck.ctl(&["wait-ready", "--timeout", "3s"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not ready after 3s"), "{}", out.all());
    assert!(
        out.stderr.contains("bootstrap token is not valid"),
        "{}",
        out.all()
    );
}
