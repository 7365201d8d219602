//! Push: the master watches its site and modules, recompiles the nodes a
//! change affects and tells them through `WatchCatalog`; an agent whose
//! next scheduled run is half an hour away applies the change at once.

use std::time::{Duration, Instant};

use rigger_tests::{TestAgent, TestMaster, wait_for};

const ENV_FILE: &str = "/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh";

#[test]
fn a_site_change_reaches_a_node_at_once_without_it_asking() {
    let master = TestMaster::start();
    let mut node = TestAgent::new("push-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    node.start_daemon(&master.url(), &["--run-interval", "30m", "--splay", "0s"]);
    wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0) && s["running"] == false).then_some(())
    });
    let env = || std::fs::read_to_string(node.path(ENV_FILE)).unwrap_or_default();
    assert!(env().contains("-Xms512m"), "{}", env());
    // The watch stream is up once the master has logged it; give it a moment.
    std::thread::sleep(Duration::from_millis(500));

    for (round, heap) in ["1g", "768m"].iter().enumerate() {
        let started = Instant::now();
        master.edit_site("roles/is.toml", |t| {
            let line = t
                .lines()
                .find(|l| l.starts_with("xms = "))
                .unwrap()
                .to_string();
            t.replace(&line, &format!("xms = \"{heap}\""))
        });
        wait_for(
            "the pushed change to be applied",
            Duration::from_secs(30),
            || env().contains(&format!("-Xms{heap}")).then_some(()),
        );
        println!(
            "round {round}: site edit to applied on the node in {} ms (no run asked for)",
            started.elapsed().as_millis()
        );
    }
    let status = wait_for("the last run to end", Duration::from_secs(30), || {
        let s = node.status();
        (s["running"] == false).then_some(s)
    });
    assert_eq!(status["catalog_version"], 3, "{status}");
    assert_eq!(
        status["drift"]["repairs"], 0,
        "reads are not drift: {status}"
    );
    let log = node.log();
    assert!(
        log.contains("the master has a newer catalog: running now"),
        "{log}"
    );
    node.stop_daemon();
}

#[test]
fn an_edit_to_a_managed_file_on_the_node_is_repaired_at_once() {
    let master = TestMaster::start();
    let mut node = TestAgent::new("drift-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    node.start_daemon(&master.url(), &["--run-interval", "30m", "--splay", "0s"]);
    wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0)
            && s["running"] == false
            && s["drift"]["watched"].as_u64() > Some(0))
        .then_some(())
    });
    let env = || std::fs::read_to_string(node.path(ENV_FILE)).unwrap_or_default();
    let good = env();
    let mut took = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        std::fs::write(node.path(ENV_FILE), format!("tampered {round}\n")).unwrap();
        wait_for("the edit to be repaired", Duration::from_secs(30), || {
            (env() == good).then_some(())
        });
        took.push(started.elapsed().as_millis());
        // The next edit comes after the repair run has ended.
        wait_for("the repair run to end", Duration::from_secs(30), || {
            (node.status()["running"] == false).then_some(())
        });
    }
    println!("drift repaired in {took:?} ms (edit to restored content)");
    let status = node.status();
    assert_eq!(status["drift"]["repairs"], 3, "{status}");
    assert!(
        status["drift"]["last_paths"]
            .as_str()
            .unwrap()
            .ends_with("bin/rigger-env.sh"),
        "{status}"
    );
    let human = node.ctl(&["status"]);
    assert!(
        human
            .stdout
            .contains("drift:     3 change(s) made outside the agent repaired"),
        "{}",
        human.all()
    );
    // The master heard of it at once: the repair run's report, with what
    // was put back.
    let listed = master.nodes();
    assert_eq!(listed[0]["last_run_status"], "changed", "{listed}");
    let shown = master.ctl(&["node", "show", "drift-1"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    assert!(
        shown.stdout.contains("changed (drift): catalog version 1")
            && shown.stdout.contains("jvm_env")
            && shown.stdout.contains("-tampered 2"),
        "{}",
        shown.all()
    );
    let json: serde_json::Value =
        serde_json::from_str(&master.ctl(&["node", "show", "drift-1", "--json"]).stdout).unwrap();
    assert_eq!(json["reports"][0]["trigger"], "drift", "{json}");
    // Where the run's time went, phase by phase, as the agent measured it.
    let phases: Vec<&str> = json["reports"][0]["timings"]
        .as_array()
        .unwrap_or_else(|| panic!("no timings: {json}"))
        .iter()
        .map(|t| t["phase"].as_str().unwrap())
        .collect();
    for phase in ["catalog", "verify", "plan", "file", "remember"] {
        assert!(phases.contains(&phase), "{phase} missing: {phases:?}");
    }
    assert!(shown.stdout.contains("  took "), "{}", shown.all());
    assert_eq!(json["facts"]["ip"], json["ip"], "{json}");
    assert!(
        node.log()
            .contains("changed outside the agent: repairing now"),
        "{}",
        node.log()
    );
    node.stop_daemon();
}
