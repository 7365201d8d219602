//! When the master is down the agent keeps enforcing its last good catalog
//! and says so in `agentctl status`; `agentctl run` streams a run's result.

use std::time::Duration;

use rigger_tests::{TestAgent, TestMaster, wait_for};

const ENV_FILE: &str = "/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh";

#[test]
fn master_down_means_the_cached_catalog_is_enforced_and_status_says_so() {
    let mut master = TestMaster::start();
    let mut node = TestAgent::new("cache-node");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);

    node.start_daemon(&master.url(), &["--run-interval", "1h", "--splay", "0s"]);
    let status = wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0) && s["running"] == false).then_some(s)
    });
    assert_eq!(status["master_reachable"], true, "{status}");
    assert_eq!(status["used_cached_catalog"], false, "{status}");
    assert_eq!(status["catalog_version"], 1);
    assert_eq!(status["last_run_result"], "unchanged");

    // Someone edits a managed file, then the master goes away. (Disabled,
    // the agent leaves the edit for the run asked for by hand below,
    // rather than repair it at once.)
    assert_eq!(node.ctl(&["disable", "--reason", "test"]).code, 0);
    std::fs::write(node.path(ENV_FILE), "tampered\n").unwrap();
    master.stop();
    let run = node.ctl(&["run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("jvm_env"),
        "the repair is streamed: {}",
        run.all()
    );
    assert!(run.stdout.contains("cached catalog"), "{}", run.all());
    assert!(
        std::fs::read_to_string(node.path(ENV_FILE))
            .unwrap()
            .contains("JVM_MEM_OPTS")
    );

    let status = node.status();
    assert_eq!(status["master_reachable"], false, "{status}");
    assert_eq!(status["used_cached_catalog"], true, "{status}");
    assert_eq!(status["catalog_version"], 1);
    assert!(
        status["master_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{status}"
    );
    let human = node.ctl(&["status"]);
    assert!(human.stdout.contains("CACHED catalog"), "{}", human.all());
    assert!(human.stdout.contains("UNREACHABLE"), "{}", human.all());

    node.stop_daemon();
    assert!(
        !node.path("/run/rigger/agent.sock").exists(),
        "socket left behind"
    );
}

/// An enrolled node whose daemon (hourly runs) finished its first run.
fn converged_daemon(master: &TestMaster, name: &str) -> TestAgent {
    let mut node = TestAgent::new(name);
    assert_eq!(node.enroll(master, &["--role", "is"]).code, 2);
    node.start_daemon(&master.url(), &["--run-interval", "1h", "--splay", "0s"]);
    wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0) && s["running"] == false).then_some(())
    });
    node
}

#[test]
fn a_noop_run_streams_pending_changes_and_leaves_the_applied_version_on_every_screen() {
    let master = TestMaster::start();
    let node = converged_daemon(&master, "stream-node");
    // Disabled: the change the master pushes is only planned.
    let disabled = node.ctl(&["disable", "--reason", "change freeze until Monday"]);
    assert_eq!(disabled.code, 0, "{}", disabled.all());
    master.edit_site("roles/is.toml", |t| {
        t.replace("xms = \"512m\"", "xms = \"1g\"")
    });
    wait_for("the push to be skipped", Duration::from_secs(30), || {
        node.log()
            .contains("pushed run skipped: the agent is disabled")
            .then_some(())
    });
    let run = node.ctl(&["run", "--noop"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("pending") && run.stdout.contains("+JVM_MEM_OPTS=\"-Xms1g"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("would change"), "{}", run.all());
    assert!(
        !std::fs::read_to_string(node.path(ENV_FILE))
            .unwrap()
            .contains("-Xms1g")
    );

    // Version 2 was only planned: every screen says version 1 runs.
    let status = node.status();
    assert_eq!(status["catalog_version"], 1, "{status}");
    assert_eq!(status["last_run_result"], "unchanged", "{status}");
    assert_eq!(status["noop"]["catalog_version"], 2, "{status}");
    assert!(status["noop"]["pending"].as_u64() > Some(0), "{status}");
    let human = node.ctl(&["status"]);
    assert_eq!(human.code, 3, "disabled: {}", human.all());
    assert!(
        human.stdout.contains("DISABLED:  by ")
            && human.stdout.contains(": change freeze until Monday"),
        "{}",
        human.all()
    );
    assert_eq!(
        status["disabled"]["reason"], "change freeze until Monday",
        "{status}"
    );
    assert!(
        human.stdout.contains("catalog:   version 1 (")
            && human
                .stdout
                .contains("changes pending against catalog version 2; nothing applied"),
        "{}",
        human.all()
    );
    let ready = node.ctl(&["wait-ready", "--timeout", "10s"]);
    assert!(
        ready.stdout.contains("catalog version 1 applied"),
        "{}",
        ready.all()
    );
    let listed = master.nodes();
    let row = &listed[0];
    assert_eq!(
        (
            row["applied_version"].as_u64(),
            row["catalog_version"].as_u64(),
            row["last_run_status"].as_str()
        ),
        (Some(1), Some(2), Some("noop")),
        "{listed}"
    );
    let table = master.ctl(&["node", "list"]);
    assert!(
        table.stdout.contains("1 (latest 2)") && table.stdout.contains("noop: "),
        "{}",
        table.all()
    );

    // Enabled again: the node catches up with what was pushed meanwhile.
    let enabled = node.ctl(&["enable"]);
    assert!(
        enabled.stdout.contains("agent enabled"),
        "{}",
        enabled.all()
    );
    wait_for(
        "the skipped change to be applied",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(node.path(ENV_FILE))
                .unwrap_or_default()
                .contains("-Xms1g")
                .then_some(())
        },
    );
    let status = wait_for("the status to settle", Duration::from_secs(30), || {
        let s = node.status();
        (s["catalog_version"] == 2 && s["running"] == false).then_some(s)
    });
    assert!(status["disabled"].is_null(), "{status}");
    assert_eq!(node.ctl(&["status"]).code, 0);
}

#[test]
fn a_catalog_the_master_cannot_compile_is_shown_on_both_screens() {
    let master = TestMaster::start();
    let node = converged_daemon(&master, "broken-node");
    // A typo in the role's module name.
    master.edit_site("roles/is.toml", |t| {
        t.replace("module = \"wso2is\"", "module = \"wso2iss\"")
    });
    let run = node.ctl(&["run"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(
            "(cached catalog: the master gave no catalog: cannot compile the catalog of broken-node"
        ) && run.stdout.contains("wso2iss"),
        "{}",
        run.all()
    );
    let human = node.ctl(&["status"]);
    assert!(
        human
            .stdout
            .contains("(reachable, but it gave no catalog: ")
            && !human.stdout.contains("UNREACHABLE"),
        "{}",
        human.all()
    );
    let table = master.ctl(&["node", "list"]);
    assert!(
        table.stdout.contains("no new catalog (see below)")
            && table.stdout.contains(
                "broken-node: the master gives it no catalog, so it enforces its cached version 1: "
            )
            && table.stdout.contains("wso2iss"),
        "{}",
        table.all()
    );
    // Fixed: the note goes.
    master.edit_site("roles/is.toml", |t| t.replace("wso2iss", "wso2is"));
    let run = node.ctl(&["run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let table = master.ctl(&["node", "list"]);
    assert!(!table.stdout.contains("no new catalog"), "{}", table.all());
}
