//! Disaster recovery: the master's data directory is destroyed and
//! restored from an encrypted backup taken earlier; its nodes converge
//! without enrolling again, and the restored master (a new epoch) issues
//! its versions above the ones they applied since the backup. A backup
//! opens only with its key, whole and unchanged.

use rigger_tests::{TestAgent, TestMaster};

/// `masterctl ARGS` with no master to talk to (backups run offline).
use rigger_tests::process::masterctl_offline as ctl_offline;

#[test]
fn a_master_restored_from_an_older_backup_serves_its_nodes_without_reenrollment() {
    let mut master = TestMaster::start();
    let node = TestAgent::new("dr-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let cert_before =
        std::fs::read_to_string(node.path("/var/lib/rigger/agent/ssl/node.crt")).unwrap();
    let fingerprint = master.fingerprint();
    let epoch_before = std::fs::read_to_string(master.data_dir().join("epoch")).unwrap();

    let keep = tempfile::tempdir().unwrap();
    let key = keep.path().join("backup.key");
    let backup = keep.path().join("master.backup");
    let data_dir = master.data_dir().to_path_buf();
    let out = ctl_offline(&["backup", "key", key.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all());
    // Taken while the master runs.
    let out = ctl_offline(&[
        "backup",
        "create",
        backup.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("backed up"), "{}", out.all());
    let sealed = std::fs::read(&backup).unwrap();
    assert!(
        !sealed.windows(11).any(|w| w == b"PRIVATE KEY"),
        "the CA key is readable in the backup"
    );

    // The site moves on after the backup: the node applies version 2.
    master.edit_site("roles/is.toml", |t| {
        t.replace("xmx = \"2048m\"", "xmx = \"3g\"")
    });
    let out = node.once(&master.url(), &[]);
    assert!(out.stdout.contains("catalog version 2"), "{}", out.all());

    // The master's disk is lost.
    master.stop();
    std::fs::remove_dir_all(&data_dir).unwrap();

    // Refused: another key, a changed backup, a directory not empty.
    let other_key = keep.path().join("other.key");
    assert_eq!(
        ctl_offline(&["backup", "key", other_key.to_str().unwrap()]).code,
        0
    );
    let restore = |file: &std::path::Path, key: &std::path::Path| {
        ctl_offline(&[
            "backup",
            "restore",
            file.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
    };
    let out = restore(&backup, &other_key);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("does not decrypt with this key"),
        "{}",
        out.all()
    );
    assert!(!data_dir.exists() || std::fs::read_dir(&data_dir).unwrap().next().is_none());
    let changed = keep.path().join("changed.backup");
    let mut bytes = sealed.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&changed, &bytes).unwrap();
    let out = restore(&changed, &key);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("does not decrypt"), "{}", out.all());
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("stray"), "x").unwrap();
    let out = restore(&backup, &key);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("empty data directory"), "{}", out.all());
    std::fs::remove_dir_all(&data_dir).unwrap();

    // Restored, the master is the same CA with a new epoch.
    let out = restore(&backup, &key);
    assert_eq!(out.code, 0, "{}", out.all());
    let epoch_after = std::fs::read_to_string(data_dir.join("epoch")).unwrap();
    assert_ne!(epoch_after, epoch_before);
    master.restart();
    assert_eq!(master.fingerprint(), fingerprint);

    // The node converges with its own certificate; the restored master,
    // whose history ends at version 1, goes above the version 2 it applied.
    let out = node.once(&master.url(), &[]);
    assert!(out.code == 0 || out.code == 2, "{}", out.all());
    assert!(out.stdout.contains("catalog version 3"), "{}", out.all());
    let again = node.once(&master.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(
        std::fs::read_to_string(node.path("/var/lib/rigger/agent/ssl/node.crt")).unwrap(),
        cert_before,
        "the node enrolled again"
    );
    let env =
        std::fs::read_to_string(node.path("/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh")).unwrap();
    assert!(env.contains("-Xmx3g"), "{env}");
    let shown: serde_json::Value =
        serde_json::from_str(&master.ctl(&["catalog", "show", "dr-1", "--json"]).stdout).unwrap();
    assert_eq!(shown["epoch"], epoch_after.trim(), "{shown}");
}
