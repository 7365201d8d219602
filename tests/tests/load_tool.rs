//! `rigger-load` against a real master: its simulated agents enroll from
//! their own addresses (127.31.0.x), hold watch streams, fetch their
//! blobs and report; the master then knows each of them. A master given
//! as a name is refused before anything is sent (the tool resolves none).

use std::path::Path;
use std::process::Command;

use rigger_tests::process::Output;
use rigger_tests::{TestMaster, bin};

/// `rigger-load` against `master` with the CA and token files, and `more`.
fn load_against(master: &TestMaster, ca: &Path, token: &Path, more: &[&str]) -> Output {
    let mut args = vec![
        "--master".to_string(),
        master.url(),
        "--ca-cert".into(),
        ca.display().to_string(),
        "--token-file".into(),
        token.display().to_string(),
        "--network".into(),
        "31".into(),
    ];
    args.extend(more.iter().map(|a| a.to_string()));
    load(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn load(args: &[&str]) -> Output {
    Output::of(
        Command::new(bin("rigger-load"))
            .args(args)
            .output()
            .expect("run rigger-load"),
    )
}

#[test]
fn simulated_agents_enroll_watch_fetch_and_report() {
    let master = TestMaster::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, master.token(&["--role", "is", "--uses", "12"])).unwrap();
    let ca = master.data_dir().join("ca.crt");
    let pid = master.pid().to_string();
    let out = load_against(
        &master,
        &ca,
        &token,
        &[
            "--agents",
            "12",
            "--prefix",
            "loaded",
            "--concurrency",
            "4",
            "--duration",
            "2s",
            "--master-pid",
            &pid,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("enrolled 12 agents in")
            && out.stdout.contains("12 watch streams open"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(", 0 failed,"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("master {pid} RSS with every agent connected: ")),
        "{}",
        out.stdout
    );
    // Each agent fetched its tree's manifest on its first run.
    assert!(out.stdout.contains("fetched 12 blobs"), "{}", out.stdout);

    // The master saw them as nodes, each from its own address.
    let nodes = master.ctl(&["node", "list"]);
    for (i, address) in [(0, "127.31.0.1"), (11, "127.31.0.12")] {
        let line = nodes
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("loaded-{i} ")))
            .unwrap_or_else(|| panic!("loaded-{i} is not listed:\n{}", nodes.stdout));
        assert!(line.contains(address), "{line}");
    }

    // Tokens are spent: a second fleet with the same token is refused,
    // and the tool says so and fails.
    let again = load_against(
        &master,
        &ca,
        &token,
        &["--agents", "1", "--prefix", "spent", "--duration", "1s"],
    );
    assert_ne!(again.code, 0, "{}", again.all());
    assert!(
        again.stderr.contains("spent-0 was not enrolled"),
        "{}",
        again.all()
    );
}

#[test]
fn a_master_given_by_name_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty");
    std::fs::write(&file, "").unwrap();
    let out = load(&[
        "--master",
        "https://rigger-master:8140",
        "--ca-cert",
        file.to_str().unwrap(),
        "--token-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(
        out.stderr
            .contains("--master https://rigger-master:8140: give the master as an IP address"),
        "{}",
        out.all()
    );
}
