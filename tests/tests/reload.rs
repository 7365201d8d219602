//! SIGHUP reloads the master: its configuration (what can change while it
//! runs takes effect at once), its site and modules; a configuration that
//! does not load changes nothing and the master keeps serving.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rigger_tests::pack::SamplePack;
use rigger_tests::{TestMaster, wait_for};

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
