//! The agent binaries' command-line contract: usage errors exit 64, bad
//! configuration 78, so that no error reads as "changes" (2).

use std::process::Command;

#[test]
fn usage_errors_exit_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_rigger-agent"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(env!("CARGO_BIN_EXE_agentctl"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn bad_configuration_exits_78_and_names_the_problems() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rigger-agent"))
        .arg("--root")
        .arg(root.path())
        .args([
            "--master",
            "ftp://nowhere",
            "--imds-endpoint",
            "sometimes",
            "--once",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ftp://nowhere") && stderr.contains("sometimes"),
        "{stderr}"
    );
    let config = root.path().join("agent.toml");
    std::fs::write(&config, "mastr = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rigger-agent"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mastr"));
}

#[test]
fn not_enrolled_without_a_token_is_a_clear_failure_not_changes() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rigger-agent"))
        .arg("--root")
        .arg(root.path())
        .args([
            "--master",
            "https://127.0.0.1:1",
            "--imds-endpoint",
            "off",
            "--certname",
            "n1",
        ])
        .args(["--once", "--detailed-exitcodes"])
        .env_remove("RIGGER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}
