//! SIGHUP reloads the master: its configuration (what can change while it
//! runs takes effect at once), its site and modules; a configuration that
//! does not load changes nothing and the master keeps serving.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rigger_tests::imds::Instance;
use rigger_tests::pack::SamplePack;
use rigger_tests::{FakeImds, TestAgent, TestMaster, wait_for};

/// Sends SIGHUP and waits until the master's log has `line` one more time.
fn hang_up(master: &TestMaster, line: &str) {
    let before = master.log().matches(line).count();
    kill(Pid::from_raw(master.pid() as i32), Signal::SIGHUP).unwrap();
    wait_for(line, Duration::from_secs(20), || {
        (master.log().matches(line).count() > before).then_some(())
    });
}

const RELOADED: &str = "SIGHUP: configuration, site and modules read again";

#[test]
fn sighup_applies_a_new_configuration_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, "import_max_entries = 200000\n").unwrap();
    let master = TestMaster::start_empty_with(&["--config", config.to_str().unwrap()]);
    let pack = SamplePack::new(40, 1 << 10);

    // A tighter limit: the next import is refused by it, at once.
    std::fs::write(&config, "import_max_entries = 5\n").unwrap();
    hang_up(&master, RELOADED);
    let refused = master.import_pack(&pack);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("more than 5 entries (the master's import_max_entries)"),
        "{}",
        refused.all()
    );

    // A typo: refused, said why; the master keeps serving, limit unchanged.
    std::fs::write(&config, "import_max_entriez = 200000\n").unwrap();
    hang_up(&master, "SIGHUP: the configuration is not valid");
    assert!(
        master.log().contains("import_max_entriez"),
        "the log does not name the typo: {}",
        master.log()
    );
    let still = master.import_pack(&pack);
    assert!(
        still.stderr.contains("more than 5 entries"),
        "{}",
        still.all()
    );

    // A setting only a restart applies is named, the rest applied.
    std::fs::write(
        &config,
        "import_max_entries = 200000\nmax_connections = 64\n",
    )
    .unwrap();
    hang_up(&master, RELOADED);
    assert!(
        master.log().contains("setting=\"max_connections\""),
        "{}",
        master.log()
    );
    let imported = master.import_pack(&pack);
    assert_eq!(imported.code, 0, "{}", imported.all());
    assert_eq!(master.ctl(&["product", "list"]).code, 0);
}

/// Sends SIGHUP to the agent's daemon and waits until its log has `line`
/// one more time.
fn hang_up_agent(node: &TestAgent, line: &str) {
    let before = node.log().matches(line).count();
    kill(Pid::from_raw(node.daemon_pid() as i32), Signal::SIGHUP).unwrap();
    wait_for(line, Duration::from_secs(20), || {
        (node.log().matches(line).count() > before).then_some(())
    });
}

#[test]
fn sighup_gives_the_agent_a_new_run_interval_and_a_bad_file_changes_nothing() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance::at("i-hup", "127.0.0.99"));
    let mut node = TestAgent::new("hup-1");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "run_interval = \"1h\"\nsplay = \"0s\"\n").unwrap();
    node.start_daemon(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let hour_away = wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0) && s["running"] == false).then_some(s)
    });
    let now = rigger_common::time::now_ms();
    assert!(
        hour_away["next_run_at_ms"].as_i64().unwrap() > now + 50 * 60_000,
        "{hour_away}"
    );

    // A shorter interval: the next scheduled run comes within it.
    std::fs::write(&config, "run_interval = \"2s\"\nsplay = \"0s\"\n").unwrap();
    hang_up_agent(&node, "SIGHUP: configuration read again");
    let first = hour_away["last_run_at_ms"].as_i64().unwrap();
    wait_for("a scheduled run 2 s apart", Duration::from_secs(30), || {
        (node.status()["last_run_at_ms"].as_i64() > Some(first)).then_some(())
    });

    // A typo: said, nothing changes, the daemon keeps running.
    std::fs::write(&config, "run_intervall = \"1h\"\n").unwrap();
    hang_up_agent(&node, "SIGHUP: the configuration is not valid");
    assert!(node.log().contains("run_intervall"), "{}", node.log());
    let status = node.status();
    assert!(
        status["next_run_at_ms"].as_i64().unwrap() < rigger_common::time::now_ms() + 10_000,
        "still every 2 s: {status}"
    );

    // A setting only a restart applies is named.
    std::fs::write(&config, "run_interval = \"2s\"\ntimeout = \"5s\"\n").unwrap();
    hang_up_agent(&node, "SIGHUP: configuration read again");
    assert!(node.log().contains("setting=\"timeout\""), "{}", node.log());
    node.stop_daemon();
}
