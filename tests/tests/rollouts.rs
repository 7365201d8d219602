//! Rollouts: a change reaches a cluster canary first, then in waves, each
//! step after the nodes before it applied the change and stayed ready for
//! the bake time; a node that fails halts the rollout and gets its last
//! good content back; an operator pauses, resumes and aborts.

use std::time::Duration;

use rigger_tests::TestMaster;
use rigger_tests::cluster::{cluster, hostname, set_hostname};

/// Rollouts on (the demo environment turns them off), short bake.
const ROLLOUT: &str = "[rollout]\nenabled = true\ncanary = 1\nwaves = [\"100%\"]\nbake = \"2s\"\n";

/// The run ended with `code`; else the run's output and the master's log.
fn expect_code(master: &TestMaster, out: &rigger_tests::Output, code: i32) {
    assert_eq!(
        out.code,
        code,
        "{}\n--- master log\n{}",
        out.all(),
        master.log()
    );
}

/// The cluster's rollout, as `masterctl rollout status --json` shows it.
fn rollout(master: &TestMaster) -> serde_json::Value {
    let out = master.ctl(&["rollout", "status", "is-demo", "--json"]);
    expect_code(master, &out, 0);
    serde_json::from_str(&out.stdout).unwrap()
}

/// The state the rollout gives `node`.
fn node_state(rollout: &serde_json::Value, node: &str) -> String {
    rollout["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["certname"] == node)
        .map(|n| n["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn a_change_reaches_the_canary_first_and_the_rest_after_it_baked() {
    let master = TestMaster::start();
    let nodes = cluster(
        &master,
        ROLLOUT,
        [
            ("wave-a", "127.0.0.51"),
            ("wave-b", "127.0.0.52"),
            ("wave-c", "127.0.0.53"),
        ],
    );
    let run = |i: usize| {
        let (node, imds) = &nodes[i];
        node.once(&master.url(), &["--imds-endpoint", &imds.url()])
    };
    let none = master.ctl(&["rollout", "list"]);
    assert!(
        none.stdout.contains("no cluster has a rollout"),
        "{}",
        none.all()
    );

    set_hostname(&master, "login.example.com");
    let canary = run(0);
    expect_code(&master, &canary, 2);
    assert_eq!(
        hostname("127.0.0.51:9763").as_deref(),
        Some("login.example.com")
    );
    // b asks while the canary bakes: it keeps its catalog and its server,
    // and is told why.
    let held = run(1);
    expect_code(&master, &held, 0);
    assert!(
        held.stdout.contains(
            "a newer catalog is held back: cluster is-demo's rollout is waiting for wave-a to stay ready for 2s"
        ),
        "{}",
        held.all()
    );
    assert_eq!(
        hostname("127.0.0.52:9763").as_deref(),
        Some("is.demo.example.com")
    );
    let status = rollout(&master);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["steps"], serde_json::json!([1, 3]), "{status}");
    assert_eq!(node_state(&status, "wave-a"), "applied", "{status}");
    assert_eq!(node_state(&status, "wave-b"), "waiting", "{status}");
    assert!(
        status["waiting_for"]
            .as_str()
            .unwrap()
            .starts_with("wave-a to stay ready for 2s"),
        "{status}"
    );
    let shown = master.ctl(&["rollout", "status", "is-demo"]);
    assert!(
        shown.stdout.contains("cluster is-demo: running"),
        "{}",
        shown.all()
    );
    assert!(shown.stdout.contains("1 of 3 admitted"), "{}", shown.all());

    // Baked: the wave takes every other node.
    std::thread::sleep(Duration::from_millis(2100));
    for (i, addr) in [(1, "127.0.0.52:9763"), (2, "127.0.0.53:9763")] {
        let out = run(i);
        expect_code(&master, &out, 2);
        assert_eq!(hostname(addr).as_deref(), Some("login.example.com"));
    }
    let status = rollout(&master);
    for node in ["wave-a", "wave-b", "wave-c"] {
        assert_eq!(node_state(&status, node), "applied", "{status}");
    }
    std::thread::sleep(Duration::from_millis(2100));
    let status = rollout(&master);
    assert_eq!(status["state"], "complete", "{status}");
    let list = master.ctl(&["rollout", "list"]);
    assert!(
        list.stdout.contains("is-demo") && list.stdout.contains("complete"),
        "{}",
        list.all()
    );
}

#[test]
fn a_change_that_fails_on_the_canary_halts_and_is_rolled_back() {
    let master = TestMaster::start();
    let [(a, imds_a), (b, imds_b)] = cluster(
        &master,
        ROLLOUT,
        [("canary-a", "127.0.0.54"), ("canary-b", "127.0.0.55")],
    );
    let run_a = || a.once(&master.url(), &["--imds-endpoint", &imds_a.url()]);
    let run_b = || b.once(&master.url(), &["--imds-endpoint", &imds_b.url()]);
    let pid_b = b.service_pid("wso2is").unwrap();

    // A change that compiles but fails at start.
    set_hostname(&master, rigger_tests::server_config::FAILING_HOST);
    let failed = run_a();
    expect_code(&master, &failed, 6);
    let status = rollout(&master);
    assert_eq!(status["state"], "halted", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("canary-a failed with catalog version")
            && reason.contains("refusing hostname fail.invalid"),
        "the operator does not see the server's error: {status}"
    );
    assert_eq!(node_state(&status, "canary-a"), "rolled back", "{status}");
    let shown = master.ctl(&["rollout", "status", "is-demo"]);
    assert!(
        shown.stdout.contains("halted: canary-a failed"),
        "{}",
        shown.all()
    );

    // b is never given the change; a gets its last good content back (a
    // higher version) and is ready again without an operator.
    let held = run_b();
    expect_code(&master, &held, 0);
    assert!(
        held.stdout.contains(
            "a newer catalog is held back: cluster is-demo's rollout is halted: canary-a failed"
        ),
        "{}",
        held.all()
    );
    assert_eq!(b.service_pid("wso2is"), Some(pid_b));
    let back = run_a();
    expect_code(&master, &back, 2);
    assert_eq!(
        hostname("127.0.0.54:9763").as_deref(),
        Some("is.demo.example.com")
    );
    let catalog = master.ctl(&["catalog", "show", "canary-a", "--json"]);
    let version = serde_json::from_str::<serde_json::Value>(&catalog.stdout).unwrap()["version"]
        .as_u64()
        .unwrap();
    assert!(version > 2, "{}", catalog.all());

    // The operator fixes the change: a newer rollout supersedes the halted
    // one, and the node it rolled back follows the site again, first (the
    // master recompiles live nodes in name order as soon as the site
    // changes: a, whether or not it asked first, is the canary again).
    set_hostname(&master, "login.example.com");
    let canary = run_a();
    expect_code(&master, &canary, 2);
    let status = rollout(&master);
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(node_state(&status, "canary-a"), "applied", "{status}");
    let waits = run_b();
    expect_code(&master, &waits, 0);
    std::thread::sleep(Duration::from_millis(2100));
    let follows = run_b();
    expect_code(&master, &follows, 2);
    for addr in ["127.0.0.54:9763", "127.0.0.55:9763"] {
        assert_eq!(
            hostname(addr).as_deref(),
            Some("login.example.com"),
            "{addr}"
        );
    }
}

#[test]
fn an_operator_pauses_resumes_and_aborts_a_rollout() {
    let master = TestMaster::start();
    let [(a, imds_a), (b, imds_b)] = cluster(
        &master,
        ROLLOUT,
        [("pause-a", "127.0.0.56"), ("pause-b", "127.0.0.57")],
    );
    let run_a = || a.once(&master.url(), &["--imds-endpoint", &imds_a.url()]);
    let run_b = || b.once(&master.url(), &["--imds-endpoint", &imds_b.url()]);
    let refused = master.ctl(&["rollout", "pause", "is-demo"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.stderr.contains("cluster is-demo has no rollout"),
        "{}",
        refused.all()
    );

    set_hostname(&master, "login.example.com");
    assert_eq!(run_a().code, 2);
    let paused = master.ctl(&["rollout", "pause", "is-demo"]);
    expect_code(&master, &paused, 0);
    assert!(
        paused.stdout.contains("cluster is-demo: paused"),
        "{}",
        paused.all()
    );
    std::thread::sleep(Duration::from_millis(2100));
    // Paused: however long a has baked, b keeps its catalog.
    let held = run_b();
    expect_code(&master, &held, 0);
    assert_eq!(
        hostname("127.0.0.57:9763").as_deref(),
        Some("is.demo.example.com")
    );
    let again = master.ctl(&["rollout", "pause", "is-demo"]);
    assert!(
        again.stderr.contains("is paused: it cannot be paused"),
        "{}",
        again.all()
    );

    let resumed = master.ctl(&["rollout", "resume", "is-demo"]);
    expect_code(&master, &resumed, 0);
    let admitted = run_b();
    expect_code(&master, &admitted, 2);
    assert_eq!(
        hostname("127.0.0.57:9763").as_deref(),
        Some("login.example.com")
    );

    // Abort: every admitted node gets its content from before the change.
    let aborted = master.ctl(&["rollout", "abort", "is-demo"]);
    expect_code(&master, &aborted, 0);
    assert!(
        aborted.stdout.contains("cluster is-demo: aborted"),
        "{}",
        aborted.all()
    );
    for (run, addr) in [
        (
            &run_a as &dyn Fn() -> rigger_tests::Output,
            "127.0.0.56:9763",
        ),
        (&run_b, "127.0.0.57:9763"),
    ] {
        let out = run();
        expect_code(&master, &out, 2);
        assert_eq!(
            hostname(addr).as_deref(),
            Some("is.demo.example.com"),
            "{addr}"
        );
    }
    let status = rollout(&master);
    assert_eq!(status["state"], "aborted", "{status}");
    assert_eq!(node_state(&status, "pause-a"), "rolled back", "{status}");
}

#[test]
fn a_canary_that_goes_bad_while_it_bakes_halts_and_is_rolled_back() {
    let master = TestMaster::start();
    let [(mut a, imds_a), (b, imds_b)] = cluster(
        &master,
        &ROLLOUT.replace("bake = \"2s\"", "bake = \"5m\""),
        [("bake-a", "127.0.0.58"), ("bake-b", "127.0.0.59")],
    );
    a.start_daemon(
        &master.url(),
        &["--imds-endpoint", &imds_a.url(), "--run-interval", "1h"],
    );
    set_hostname(&master, "login.example.com");
    let canary = a.ctl(&["run"]);
    expect_code(&master, &canary, 0);
    let status = rollout(&master);
    assert_eq!(
        node_state(&status, "bake-a"),
        "applied",
        "{status}\n{}\n{}",
        a.log(),
        master.log()
    );

    // The server keeps running but stops answering its readiness check:
    // the heartbeat says so while the canary bakes.
    assert!(rigger_tests::http_get("127.0.0.58:9763", "/rigger/sick").is_some());
    // (A heartbeat goes out every 15 s; a loaded machine may be slower.)
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        // Halted first (no other node is admitted), then rolled back.
        let status = rollout(&master);
        if status["state"] == "halted" && node_state(&status, "bake-a") == "rolled back" {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout did not halt: {status}\n{}\n--- master log\n{}",
            a.log(),
            master.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("bake-a stopped being ready with catalog version")
            && reason.contains("503"),
        "{status}"
    );
    assert_eq!(node_state(&status, "bake-a"), "rolled back", "{status}");
    let held = b.once(&master.url(), &["--imds-endpoint", &imds_b.url()]);
    expect_code(&master, &held, 0);
    // The next run brings the last good content back; the restart cures it.
    let back = a.ctl(&["run"]);
    expect_code(&master, &back, 0);
    assert_eq!(
        hostname("127.0.0.58:9763").as_deref(),
        Some("is.demo.example.com")
    );
    a.stop_daemon();
}
