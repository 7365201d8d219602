//! `agentctl status` reads the node itself: the agent's version and
//! uptime, the certificate's expiry, each product's release (and those kept
//! for a rollback), each service's process, the blob cache.

use std::time::Duration;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, wait_for};

#[test]
fn status_shows_what_is_on_the_node() {
    let master = TestMaster::start();
    master.enable_service("");
    let imds = FakeImds::start(Instance::at("i-status", "127.0.0.71"));
    let mut node = TestAgent::new("status-1");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    let before = rigger_common::time::now_ms();
    node.start_daemon(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--run-interval",
            "30m",
            "--splay",
            "0s",
        ],
    );
    let status = wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() >= Some(before) && s["running"] == false).then_some(s)
    });
    let now = rigger_common::time::now_ms();
    assert_eq!(
        status["agent_version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    let started = status["agent_started_at_ms"].as_i64().unwrap();
    assert!((before..=now).contains(&started), "{status}");
    // 90 days by default, renewed at two thirds of that.
    let cert = status["cert_not_after_ms"].as_i64().unwrap();
    assert!(
        cert > now + 89 * 86_400_000 && cert < now + 91 * 86_400_000,
        "{status}"
    );
    let renews = status["cert_renews_at_ms"].as_i64().unwrap();
    assert!(
        renews > now + 59 * 86_400_000 && renews < now + 61 * 86_400_000,
        "{status}"
    );
    let product = &status["products"][0];
    assert_eq!(
        (
            product["product"].as_str(),
            product["version"].as_str(),
            product["level"].as_u64()
        ),
        (Some("wso2is"), Some("5.11.0"), Some(0)),
        "{status}"
    );
    assert_eq!(product["current"], true, "{status}");
    assert!(
        product["release"]
            .as_str()
            .unwrap()
            .starts_with("wso2is-5.11.0-L0-"),
        "{status}"
    );
    let process = &status["processes"][0];
    assert_eq!(process["name"], "wso2is", "{status}");
    assert_eq!(
        process["pid"].as_i64().map(|p| p as i32),
        node.service_pid("wso2is"),
        "{status}"
    );
    let up_since = process["started_at_ms"].as_i64().unwrap();
    assert!(up_since > before - 120_000 && up_since <= now, "{status}");
    assert!(status["cache"]["files"].as_u64() > Some(0), "{status}");
    assert!(status["cache"]["bytes"].as_u64() > Some(0), "{status}");

    // A new level: the release before it is kept for a rollback.
    let update = rigger_tests::pack::SamplePack::new(40, 256 << 10).at_level(1, 50);
    assert_eq!(master.import_update(&update).code, 0);
    let status = wait_for("level 1 applied", Duration::from_secs(60), || {
        let s = node.status();
        (s["products"][0]["level"] == 1
            && s["products"][0]["current"] == true
            && s["running"] == false)
            .then_some(s)
    });
    // The demo environment follows the latest imported level.
    assert_eq!(status["products"][0]["level_source"], "latest", "{status}");
    let kept = status["products"][0]["kept"][0]
        .as_str()
        .unwrap_or_default();
    assert!(kept.starts_with("wso2is-5.11.0-L0-"), "{status}");
    let human = node.ctl(&["status"]);
    for line in [
        "agent:     ",
        "cert:      expires ",
        "product:   wso2is 5.11.0 level 1 (latest imported): release wso2is-5.11.0-L1-",
        "kept for a rollback: wso2is-5.11.0-L0-",
        "process:   wso2is pid ",
        "cache:     ",
    ] {
        assert!(
            human.stdout.contains(line),
            "{line:?} missing: {}",
            human.all()
        );
    }

    // The facts it sends and the catalog that runs, secrets masked.
    let facts = node.ctl(&["facts", "--json"]);
    assert_eq!(facts.code, 0, "{}", facts.all());
    let facts: serde_json::Value = serde_json::from_str(&facts.stdout).unwrap();
    assert_eq!(facts["ip"], "127.0.0.71", "{facts}");
    let flat = node.ctl(&["facts"]);
    assert!(flat.stdout.contains("ip: 127.0.0.71\n"), "{}", flat.all());
    let catalog = node.ctl(&["catalog", "--json"]);
    assert_eq!(catalog.code, 0, "{}", catalog.all());
    let catalog: serde_json::Value = serde_json::from_str(&catalog.stdout).unwrap();
    assert_eq!(catalog["version"], status["catalog_version"], "{status}");
    let secrets: Vec<&serde_json::Value> = catalog["content"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["secret"] == true)
        .collect();
    assert!(!secrets.is_empty(), "the role has secret files: {catalog}");
    for secret in secrets {
        let content = secret["content"].as_str().unwrap_or_default();
        assert!(
            content.contains("<redacted>") && !content.contains("change-me"),
            "{secret}"
        );
    }
    let shown = node.ctl(&["catalog"]);
    assert!(
        shown
            .stdout
            .contains(&format!("version:   {} (", status["catalog_version"])),
        "{}",
        shown.all()
    );

    // --watch refreshes until interrupted.
    let mut watch = std::process::Command::new(rigger_tests::bin("agentctl"))
        .arg("--root")
        .arg(node.root())
        .args(["status", "--watch", "--json", "--every", "200ms"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = rigger_tests::stdout_lines(&mut watch);
    for _ in 0..3 {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("a refresh");
        let refreshed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(refreshed["certname"], "status-1", "{line}");
    }
    let ended = rigger_tests::interrupt(&mut watch);
    assert_eq!(ended.code(), Some(0), "healthy");

    // The daemon's own log: each run's start and end, and --follow.
    let logs = node.ctl(&["logs", "-n", "500"]);
    assert_eq!(logs.code, 0, "{}", logs.all());
    for line in ["run started", "run finished", "agent started"] {
        assert!(logs.stdout.contains(line), "{line:?}: {}", logs.all());
    }
    let mut follow = std::process::Command::new(rigger_tests::bin("agentctl"))
        .arg("--root")
        .arg(node.root())
        .args(["logs", "--follow", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = rigger_tests::stdout_lines(&mut follow);
    // Following before the run: its lines arrive as they are logged.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(node.ctl(&["run"]).code, 0);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("run finished")) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no \"run finished\" line followed: {seen:?}"));
        seen.push(line);
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("run started") && l.contains("manual")),
        "{seen:?}"
    );
    follow.kill().unwrap();
    follow.wait().unwrap();
    node.stop_daemon();
}

#[test]
fn a_run_killed_mid_way_leaves_a_lock_the_next_run_takes_over() {
    let master = TestMaster::start();
    master.enable_service("");
    let imds = FakeImds::start(Instance::at("i-lock", "127.0.0.72"));
    let mut node = TestAgent::new("lock-1");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    let args = ["--imds-endpoint", &imds.url(), "--run-interval", "30m"];
    node.start_daemon(&master.url(), &args);
    assert_eq!(node.ctl(&["run"]).code, 0);
    // The daemon stays out of it: only the run beside it takes the lock.
    let disabled = node.ctl(&["disable", "--reason", "lock test"]);
    assert_eq!(disabled.code, 0, "{}", disabled.all());
    assert_eq!(node.status()["run_lock"]["state"], "free");

    // A change that restarts a server that takes 8 s to start: the run
    // beside the daemon holds the lock while it waits for it.
    rigger_tests::cluster::slow_start(&master, "lock-1", 8_000);
    let mut run = node.spawn_once(&master.url(), &["--imds-endpoint", &imds.url()]);
    let pid = u64::from(run.id());
    let held = wait_for("the run to hold the lock", Duration::from_secs(60), || {
        let s = node.status();
        (s["run_lock"]["state"] == "held").then_some(s)
    });
    assert_eq!(held["run_lock"]["pid"], pid, "{held}");
    assert_eq!(held["run_lock"]["for"], "run (once)", "{held}");
    let shown = node.ctl(&["status"]);
    assert!(
        shown
            .stdout
            .contains(&format!("run lock:  held by pid {pid}, run (once) since ")),
        "{}",
        shown.all()
    );

    // Killed mid-way: the lock is free, and says who was killed.
    run.kill().unwrap();
    run.wait().unwrap();
    let status = node.status();
    assert_eq!(
        status["run_lock"]["state"], "free after a killed run",
        "{status}"
    );
    assert_eq!(status["run_lock"]["pid"], pid, "{status}");
    let shown = node.ctl(&["status"]);
    assert!(
        shown.stdout.contains(&format!(
            "run lock:  free; the run that held it was killed before it finished (pid {pid}, run (once)"
        )),
        "{}",
        shown.all()
    );

    // The next run takes it over and finishes the job.
    let taken = node.ctl(&["run"]);
    assert_eq!(taken.code, 0, "{}", taken.all());
    assert!(
        node.log()
            .contains("the run lock was left by a run killed before it finished"),
        "{}",
        node.log()
    );
    let status = node.status();
    assert_eq!(status["run_lock"]["state"], "free", "{status}");
    assert!(
        ["changed", "unchanged"].contains(&status["last_run_result"].as_str().unwrap()),
        "{status}"
    );
    node.stop_daemon();
}
