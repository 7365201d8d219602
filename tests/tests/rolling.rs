//! One node of a cluster at a time: a change that restarts every server of
//! a cluster goes through the master's restart lease, so that one node
//! keeps serving while the other restarts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rigger_tests::cluster::{assert_no_leases, cluster, set_hostname, slow_start, up};
use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, wait_for};

use rigger_tests::http_get as get;

/// Both servers serve the new host name, and every lease was given back.
fn rolled_out(master: &TestMaster, servers: [&str; 2]) {
    for addr in servers {
        assert_eq!(
            get(addr, "/rigger/hostname").as_deref(),
            Some("login.example.com"),
            "{addr}"
        );
    }
    assert_no_leases(master);
}

#[test]
fn a_cluster_restarts_one_node_at_a_time_and_keeps_serving() {
    let master = TestMaster::start();
    let [(a, imds_a), (mut b, imds_b)] = cluster(
        &master,
        "",
        [("roll-a", "127.0.0.21"), ("roll-b", "127.0.0.22")],
    );
    let (url_a, url_b) = (imds_a.url(), imds_b.url());
    for (node, url) in [(&a, &url_a), (&b, &url_b)] {
        let out = node.once(&master.url(), &["--imds-endpoint", url]);
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let (pid_a, pid_b) = (
        a.service_pid("wso2is").unwrap(),
        b.service_pid("wso2is").unwrap(),
    );
    assert!(up("127.0.0.21:9763") && up("127.0.0.22:9763"));

    // A value every node's server reads changes: both must restart, and
    // each server takes seconds to come up.
    master.edit_site("environments/demo.toml", |t| {
        t.replace("is.demo.example.com", "login.example.com")
    });
    slow_start(&master, "roll-a", 3000);
    slow_start(&master, "roll-b", 3000);
    let done = AtomicBool::new(false);
    let (out_a, b_log, samples) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut samples: Vec<(bool, bool)> = Vec::new();
            // Bounded: at most ~1 minute of samples.
            for _ in 0..1500 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                samples.push((up("127.0.0.21:9763"), up("127.0.0.22:9763")));
                std::thread::sleep(Duration::from_millis(40));
            }
            samples
        });
        let run_a = s.spawn(|| a.once(&master.url(), &["--imds-endpoint", &url_a]));
        // b starts while a's server is down for its restart, so b must wait.
        wait_for("a's server to go down", Duration::from_secs(60), || {
            (!up("127.0.0.21:9763")).then_some(())
        });
        // b's daemon runs at once; while it waits, `agentctl status` says for whom.
        let started_b = rigger_common::time::now_ms();
        b.start_daemon(&master.url(), &["--imds-endpoint", &url_b, "--splay", "0s"]);
        let finished = |status: &serde_json::Value| {
            status["last_run_at_ms"].as_i64().unwrap_or(0) >= started_b
                && status["running"] == false
        };
        let waiting = wait_for("b to wait for the lease", Duration::from_secs(60), || {
            let status = b.status();
            let activity = status["activity"].as_str().unwrap_or_default().to_string();
            (finished(&status) || activity.contains("lease")).then_some(activity)
        });
        assert_eq!(
            waiting,
            "restarting wso2is waits for the restart lease of cluster is-demo (waiting for roll-a: it is restarting (it holds the lease); 1 node(s) at a time)"
        );
        // (A run the master's push asks for may follow the one that
        // restarted b: the version applied tells.)
        let status = wait_for("b's run to end", Duration::from_secs(120), || {
            let status = b.status();
            (finished(&status) && status["catalog_version"] == status["last_run_catalog_version"])
                .then_some(status)
        });
        assert_ne!(status["last_run_result"], "failed", "{status}");
        let out_a = run_a.join().unwrap();
        done.store(true, Ordering::SeqCst);
        let b_log = b.log();
        b.stop_daemon();
        (out_a, b_log, watcher.join().unwrap())
    });
    assert_eq!(out_a.code, 2, "{}", out_a.all());
    assert!(
        b_log.contains("for the restart lease of cluster is-demo (for roll-a)"),
        "b did not wait for a: {b_log}"
    );
    let both_down = samples.iter().filter(|(x, y)| !x && !y).count();
    assert_eq!(
        both_down,
        0,
        "both servers were down at once in {both_down} of {} samples",
        samples.len()
    );
    assert!(samples.iter().any(|(x, _)| !x), "a never restarted");
    assert!(samples.iter().any(|(_, y)| !y), "b never restarted");
    assert_ne!(a.service_pid("wso2is"), Some(pid_a));
    assert_ne!(b.service_pid("wso2is"), Some(pid_b));
    rolled_out(&master, ["127.0.0.21:9763", "127.0.0.22:9763"]);
}

#[test]
fn a_restart_that_cannot_get_the_lease_stays_pending_and_the_server_keeps_serving() {
    let master = TestMaster::start();
    let [(a, imds_a), (b, imds_b)] = cluster(
        &master,
        "[restart]\nwait_secs = 2\n",
        [("pending-a", "127.0.0.23"), ("pending-b", "127.0.0.24")],
    );
    let (url_a, url_b) = (imds_a.url(), imds_b.url());
    let pid_a = a.service_pid("wso2is").unwrap();

    master.edit_site("environments/demo.toml", |t| {
        t.replace("is.demo.example.com", "login.example.com")
    });
    slow_start(&master, "pending-b", 8000);
    std::thread::scope(|s| {
        // b restarts slowly and holds the cluster's lease meanwhile.
        let run_b = s.spawn(|| b.once(&master.url(), &["--imds-endpoint", &url_b]));
        wait_for("b's server to go down", Duration::from_secs(60), || {
            (!up("127.0.0.24:9763")).then_some(())
        });
        let waited = a.once(&master.url(), &["--imds-endpoint", &url_a]);
        assert_eq!(waited.code, 6, "changes and a failure: {}", waited.all());
        assert!(
            waited
                .all()
                .contains("the restart lease of cluster is-demo was not granted for 2 s (restart.wait_secs): waiting for pending-b: it is restarting"),
            "{}",
            waited.all()
        );
        assert_eq!(
            a.service_pid("wso2is"),
            Some(pid_a),
            "a restarted without the lease"
        );
        assert_eq!(
            get("127.0.0.23:9763", "/rigger/hostname").as_deref(),
            Some("is.demo.example.com"),
            "a stopped serving while it waited"
        );
        let out_b = run_b.join().unwrap();
        assert_eq!(out_b.code, 2, "{}", out_b.all());
    });
    // The configuration is on disk already; the restart it needs is not lost.
    let pending = a.once(&master.url(), &["--imds-endpoint", &url_a]);
    assert_eq!(pending.code, 2, "{}", pending.all());
    assert!(
        pending.stdout.contains(
            "restart service wso2is (a change of an earlier run is still waiting for it)"
        ),
        "{}",
        pending.all()
    );
    assert_ne!(a.service_pid("wso2is"), Some(pid_a));
    assert_eq!(
        get("127.0.0.23:9763", "/rigger/hostname").as_deref(),
        Some("login.example.com")
    );
    let converged = a.once(&master.url(), &["--imds-endpoint", &url_a]);
    assert_eq!(converged.code, 0, "{}", converged.all());
}

#[test]
fn an_agent_stopped_while_it_waits_for_the_lease_leaves_the_server_running() {
    let master = TestMaster::start();
    let [(a, imds_a), (mut b, imds_b)] = cluster(
        &master,
        "",
        [("stop-a", "127.0.0.26"), ("stop-b", "127.0.0.27")],
    );
    let (url_a, url_b) = (imds_a.url(), imds_b.url());
    let pid_b = b.service_pid("wso2is").unwrap();
    master.edit_site("environments/demo.toml", |t| {
        t.replace("is.demo.example.com", "login.example.com")
    });
    slow_start(&master, "stop-a", 6000);
    std::thread::scope(|s| {
        // a holds the cluster's lease while its server starts slowly.
        let run_a = s.spawn(|| a.once(&master.url(), &["--imds-endpoint", &url_a]));
        wait_for("a's server to go down", Duration::from_secs(60), || {
            (!up("127.0.0.26:9763")).then_some(())
        });
        b.start_daemon(&master.url(), &["--imds-endpoint", &url_b, "--splay", "0s"]);
        wait_for("b to wait for the lease", Duration::from_secs(60), || {
            let status = b.status();
            status["activity"]
                .as_str()
                .is_some_and(|a| a.contains("stop-a: it is restarting"))
                .then_some(())
        });
        // SIGTERM while it waits: the agent stops without waiting out its
        // turn, and b's server is not touched.
        b.stop_daemon();
        let log = b.log();
        assert!(
            log.contains(
                "the agent is stopping: the server keeps running and the restart stays pending"
            ),
            "{log}"
        );
        assert!(log.contains("agent stopped"), "the agent was killed: {log}");
        assert_eq!(b.service_pid("wso2is"), Some(pid_b));
        assert!(up("127.0.0.27:9763"), "b stopped serving");
        assert!(
            b.path("/var/lib/rigger/agent/services/wso2is.restart-pending")
                .exists(),
            "the restart b still owes was forgotten"
        );
        let out_a = run_a.join().unwrap();
        assert_eq!(out_a.code, 2, "{}", out_a.all());
    });
}

#[test]
fn a_change_that_breaks_the_first_node_stops_there_and_the_cluster_keeps_serving() {
    let master = TestMaster::start();
    let [(a, imds_a), (b, imds_b)] = cluster(
        &master,
        "[restart]\nwait_secs = 2\n",
        [("halt-a", "127.0.0.29"), ("halt-b", "127.0.0.30")],
    );
    let (url_a, url_b) = (imds_a.url(), imds_b.url());
    let pid_b = b.service_pid("wso2is").unwrap();
    let set_hostname = |name: &str| set_hostname(&master, name);

    // A broken value: a's server does not come back, and a keeps the
    // cluster's lease, so b does not take its server down into the same
    // failure; b keeps serving the old configuration.
    set_hostname("");
    let broken = a.once(&master.url(), &["--imds-endpoint", &url_a]);
    assert_eq!(broken.code, 6, "{}", broken.all());
    assert!(
        broken.stderr.contains("[server] hostname is empty"),
        "the run does not show the server's own error: {}",
        broken.all()
    );
    let leases = master.ctl(&["lease", "list"]);
    assert!(leases.stdout.contains("halt-a"), "{}", leases.all());
    let held = b.once(&master.url(), &["--imds-endpoint", &url_b]);
    assert_eq!(held.code, 6, "{}", held.all());
    assert!(
        held.all().contains("waiting for halt-a: it is restarting"),
        "{}",
        held.all()
    );
    assert_eq!(b.service_pid("wso2is"), Some(pid_b));
    assert_eq!(
        get("127.0.0.30:9763", "/rigger/hostname").as_deref(),
        Some("is.demo.example.com")
    );

    // The operator fixes the value: a comes back (its restart was pending),
    // gives the lease back, and b follows.
    set_hostname("login.example.com");
    let fixed = a.once(&master.url(), &["--imds-endpoint", &url_a]);
    assert_eq!(fixed.code, 2, "{}", fixed.all());
    let follows = b.once(&master.url(), &["--imds-endpoint", &url_b]);
    assert_eq!(follows.code, 2, "{}", follows.all());
    rolled_out(&master, ["127.0.0.29:9763", "127.0.0.30:9763"]);
}

#[test]
fn an_update_level_rolls_out_one_node_at_a_time() {
    let master = TestMaster::start();
    let [(a, imds_a), (b, imds_b)] = cluster(
        &master,
        "",
        [("up-a", "127.0.0.31"), ("up-b", "127.0.0.32")],
    );
    let (url_a, url_b) = (imds_a.url(), imds_b.url());
    // The same pack TestMaster imports, at level 1.
    let update = rigger_tests::pack::SamplePack::new(40, 256 << 10).at_level(1, 50);
    let out = master.import_update(&update);
    assert_eq!(out.code, 0, "{}", out.all());
    slow_start(&master, "up-a", 3000);
    slow_start(&master, "up-b", 3000);
    let (out_a, out_b) = std::thread::scope(|s| {
        let run_a = s.spawn(|| a.once(&master.url(), &["--imds-endpoint", &url_a]));
        wait_for("a's server to go down", Duration::from_secs(60), || {
            (!up("127.0.0.31:9763")).then_some(())
        });
        // b's release switch waits until a is back.
        let out_b = b.once(&master.url(), &["--imds-endpoint", &url_b]);
        (run_a.join().unwrap(), out_b)
    });
    assert_eq!(out_a.code, 2, "{}", out_a.all());
    assert_eq!(out_b.code, 2, "{}", out_b.all());
    assert!(
        out_a.stdout.contains("level 1") && out_a.stdout.contains("(wso2is stopped first)"),
        "{}",
        out_a.all()
    );
    assert!(
        out_b
            .stdout
            .contains("wso2is stopped first, after it waited")
            && out_b.stdout.contains("(for up-a)"),
        "b switched while a was down: {}",
        out_b.all()
    );
    for (node, addr) in [(&a, "127.0.0.31:9763"), (&b, "127.0.0.32:9763")] {
        let release = node.link_target("/opt/wso2/wso2is-5.11.0");
        assert!(
            release.to_string_lossy().contains("-L1-"),
            "{}",
            release.display()
        );
        assert!(up(addr), "{addr} is down");
    }
    assert_no_leases(&master);
}

#[test]
fn a_failed_node_blocks_every_other_restart_even_after_its_lease_is_gone() {
    let master = TestMaster::start();
    let [(a, imds_a), (b, imds_b)] = cluster(
        &master,
        "[restart]\nwait_secs = 2\n",
        [("budget-a", "127.0.0.33"), ("budget-b", "127.0.0.34")],
    );
    let (url_a, url_b) = (imds_a.url(), imds_b.url());
    let pid_b = b.service_pid("wso2is").unwrap();
    let set_hostname = |name: &str| set_hostname(&master, name);

    // A change that compiles but fails at start: a's server does not come
    // back. Its lease then goes (an operator frees it, as a lapse would):
    // b still may not take its server down, because a is not ready.
    set_hostname(rigger_tests::server_config::FAILING_HOST);
    let broken = a.once(&master.url(), &["--imds-endpoint", &url_a]);
    assert_eq!(broken.code, 6, "{}", broken.all());
    assert!(
        broken.all().contains("refusing hostname fail.invalid"),
        "{}",
        broken.all()
    );
    let freed = master.ctl(&["lease", "free", "is-demo", "budget-a"]);
    assert_eq!(freed.code, 0, "{}", freed.all());
    assert_no_leases(&master);
    let held = b.once(&master.url(), &["--imds-endpoint", &url_b]);
    assert_eq!(held.code, 6, "{}", held.all());
    assert!(
        held.all().contains("waiting for budget-a: it is not ready")
            && held.all().contains("refusing hostname fail.invalid"),
        "b must wait for a to be ready: {}",
        held.all()
    );
    assert_eq!(b.service_pid("wso2is"), Some(pid_b), "b went down too");
    // The operator sees why: node list shows a's service not ready.
    let nodes = master.nodes();
    let a_row = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["certname"] == "budget-a")
        .unwrap();
    assert!(
        a_row["services"]
            .as_str()
            .unwrap()
            .starts_with("wso2is not ready: "),
        "{a_row}"
    );
    assert_eq!(
        get("127.0.0.34:9763", "/rigger/hostname").as_deref(),
        Some("is.demo.example.com")
    );

    // Fixed: a comes back; once it has been ready for the settle time, b follows.
    set_hostname("login.example.com");
    let fixed = a.once(&master.url(), &["--imds-endpoint", &url_a]);
    assert_eq!(fixed.code, 2, "{}", fixed.all());
    std::thread::sleep(Duration::from_millis(1200));
    let follows = b.once(&master.url(), &["--imds-endpoint", &url_b]);
    assert_eq!(follows.code, 2, "{}", follows.all());
    rolled_out(&master, ["127.0.0.33:9763", "127.0.0.34:9763"]);
}

#[test]
fn restart_hooks_run_around_a_restart_and_a_failing_pre_stop_leaves_the_server_serving() {
    let master = TestMaster::start();
    master.enable_service(
        "pre_stop = 'echo \"pre $RIGGER_SERVICE $RIGGER_HOOK\" >> \"$RIGGER_ROOT/hooks.log\"'\npost_ready = 'echo \"post $RIGGER_SERVICE\" >> \"$RIGGER_ROOT/hooks.log\"'\n",
    );
    let imds = FakeImds::start(Instance::at("i-hooks", "127.0.0.35"));
    let node = TestAgent::new("hooks-1");
    let first = node.enroll_at(&master, "is", &imds.url());
    assert_eq!(first.code, 2, "{}", first.all());
    let log = || std::fs::read_to_string(node.root().join("hooks.log")).unwrap_or_default();
    assert_eq!(
        log(),
        "post wso2is\n",
        "post_ready runs once the server is ready"
    );

    let set_hostname = |name: &str| set_hostname(&master, name);
    set_hostname("login.example.com");
    let restarted = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(restarted.code, 2, "{}", restarted.all());
    assert_eq!(log(), "post wso2is\npre wso2is pre_stop\npost wso2is\n");
    assert_eq!(
        get("127.0.0.35:9763", "/rigger/hostname").as_deref(),
        Some("login.example.com")
    );

    // A pre_stop that fails: the server is not taken down, the restart
    // stays pending, the lease goes back.
    master.edit_site("roles/is.toml", |t| {
        t.replace("pre_stop = 'echo", "pre_stop = 'exit 3; echo")
    });
    let pid = node.service_pid("wso2is").unwrap();
    set_hostname("other.example.com");
    let refused = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(refused.code, 6, "{}", refused.all());
    assert!(
        refused.all().contains("the pre_stop hook of wso2is failed"),
        "{}",
        refused.all()
    );
    assert_eq!(
        node.service_pid("wso2is"),
        Some(pid),
        "the server went down"
    );
    assert_eq!(
        get("127.0.0.35:9763", "/rigger/hostname").as_deref(),
        Some("login.example.com")
    );
    assert_no_leases(&master);
}

#[test]
fn a_server_that_kept_running_over_a_peer_change_says_so_until_it_restarts() {
    let master = TestMaster::start();
    // b's enrollment gave a a peer-only change: a's server kept running.
    let [(mut a, imds_a), _b] = cluster(
        &master,
        "",
        [("older-a", "127.0.0.36"), ("older-b", "127.0.0.37")],
    );
    let url_a = imds_a.url();
    a.start_daemon(
        &master.url(),
        &["--imds-endpoint", &url_a, "--run-interval", "1h"],
    );
    let older = "started with an older peer list: deployment_toml rewritten";
    let status = wait_for(
        "a's status to show its services",
        Duration::from_secs(30),
        || {
            let out = a.ctl(&["status"]);
            out.stdout
                .contains("service:   wso2is ready")
                .then_some(out)
        },
    );
    assert!(status.stdout.contains(older), "{}", status.all());
    let json = a.status();
    assert!(
        json["services"][0]["peers_changed"]
            .as_str()
            .unwrap()
            .starts_with(older),
        "{json}"
    );
    let listed = wait_for("the master to hear it", Duration::from_secs(30), || {
        let out = master.ctl(&["node", "list"]);
        out.stdout
            .lines()
            .any(|l| {
                l.starts_with("older-a")
                    && l.contains("wso2is ready, started with an older peer list")
            })
            .then_some(out)
    });
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("older-b") && l.ends_with("wso2is ready")),
        "b started after a joined: {}",
        listed.all()
    );

    // A restart reads the new lists: nothing more to say.
    set_hostname(&master, "login.example.com");
    let out = a.ctl(&["run"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let status = wait_for(
        "a's status after the restart",
        Duration::from_secs(30),
        || {
            let out = a.ctl(&["status"]);
            (!out.stdout.contains(older) && out.stdout.contains("service:   wso2is ready"))
                .then_some(out)
        },
    );
    assert!(
        !status.stdout.contains("older peer list"),
        "{}",
        status.all()
    );
    a.stop_daemon();
}
