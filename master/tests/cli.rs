//! The master binaries' command-line contract: exit codes for usage and
//! configuration errors.

use std::process::Command;

fn master() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rigger-master"))
}

#[test]
fn usage_errors_exit_64() {
    let out = master().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(env!("CARGO_BIN_EXE_masterctl"))
        .args(["token", "create", "--ttl", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn bad_configuration_exits_78_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = master()
        .args([
            "--site",
            "/nonexistent/site",
            "--modules",
            "/nonexistent/mods",
            "--listen",
            "bogus",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--check-config")
        .env_remove("RIGGER_MASTER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["/nonexistent/site", "/nonexistent/mods", "bogus"] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
}

#[test]
fn check_config_accepts_the_example_site() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = master()
        .arg("--site")
        .arg(root.join("examples/site"))
        .arg("--modules")
        .arg(root.join("modules"))
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
