//! What an operator reads about history: every catalog names the site
//! revision it was compiled from (and the site's git commit when the site
//! is a checkout), on `agentctl status`, `masterctl node list` and
//! `masterctl catalog list`; bootstrap tokens are listed by id and revoked.

use std::process::Command;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster};

/// Runs git in the master's site.
fn git(master: &TestMaster, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(master.site())
        .args(["-c", "user.name=ops", "-c", "user.email=ops@localhost"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: &rigger_tests::Output) -> serde_json::Value {
    assert_eq!(out.code, 0, "{}", out.all());
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn every_catalog_names_the_site_revision_it_was_compiled_from() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance::at("i-history", "127.0.0.81"));
    let node = TestAgent::new("history-1");
    let run = || node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);

    // The site becomes a git checkout, and a change reaches it as
    // operators make it: committed elsewhere, pulled (files and commit in
    // one step). The next catalog names the commit.
    git(&master, &["init", "-q"]);
    git(&master, &["add", "."]);
    git(&master, &["commit", "-q", "-m", "site"]);
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("site");
    let in_clone = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=ops", "-c", "user.email=ops@localhost"])
            .args(args)
            .current_dir(&clone)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    let cloned = Command::new("git")
        .args(["clone", "-q"])
        .arg(master.site())
        .arg(&clone)
        .output()
        .unwrap();
    assert!(cloned.status.success(), "{cloned:?}");
    let demo = clone.join("environments/demo.toml");
    let text = std::fs::read_to_string(&demo).unwrap();
    std::fs::write(
        &demo,
        text.replace("is.demo.example.com", "login.example.com"),
    )
    .unwrap();
    in_clone(&["commit", "-q", "-am", "login host name"]);
    git(
        &master,
        &["pull", "-q", "--ff-only", clone.to_str().unwrap()],
    );
    let head = git(&master, &["rev-parse", "HEAD"]);
    assert_eq!(run().code, 2);

    let history = json(&master.ctl(&["catalog", "list", "history-1", "--json"]));
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history}");
    let (new, old) = (&versions[0], &versions[1]);
    assert_eq!(new["version"], 2, "{history}");
    assert_eq!(new["site_commit"].as_str(), Some(&head[..12]), "{history}");
    assert!(
        old["site_commit"].is_null(),
        "not yet a checkout: {history}"
    );
    let revision = new["site_revision"].as_str().unwrap();
    assert_eq!(revision.len(), 16, "{history}");
    assert_ne!(Some(revision), old["site_revision"].as_str(), "{history}");
    assert_eq!(
        new["marks"],
        serde_json::json!(["latest", "applied"]),
        "{history}"
    );
    let typo = master.ctl(&["catalog", "list", "histroy-1"]);
    assert_ne!(typo.code, 0, "{}", typo.all());
    assert!(
        typo.stderr.contains("no node named histroy-1"),
        "{}",
        typo.all()
    );
    let table = master.ctl(&["catalog", "list", "history-1"]);
    assert!(
        table
            .stdout
            .contains(&format!("{revision} (git {})", &head[..12])),
        "{}",
        table.all()
    );

    // The node list names the revision the node runs.
    let nodes = json(&master.ctl(&["node", "list", "--json"]));
    assert_eq!(
        nodes[0]["site_revision"].as_str(),
        Some(format!("{revision} (git {})", &head[..12]).as_str()),
        "{nodes}"
    );

    // What git does inside .git (a status, a fetch) is not a change; an
    // uncommitted edit is one, and says so.
    git(&master, &["status", "--porcelain"]);
    assert_eq!(run().code, 0);
    master.edit_site("environments/demo.toml", |t| {
        t.replace("login.example.com", "login2.example.com")
    });
    assert_eq!(run().code, 2);
    let history = json(&master.ctl(&["catalog", "list", "history-1", "--json"]));
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        3,
        "{history}"
    );
    assert_eq!(
        history["versions"][0]["site_commit"].as_str(),
        Some(format!("{}-dirty", &head[..12]).as_str()),
        "{history}"
    );
    let shown = master.ctl(&["catalog", "show", "history-1"]);
    assert!(
        shown.stdout.contains(&format!(
            "site:     revision {}",
            history["versions"][0]["site_revision"].as_str().unwrap()
        )),
        "{}",
        shown.all()
    );
}

#[test]
fn the_agent_shows_the_site_revision_it_runs() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance::at("i-history-2", "127.0.0.82"));
    let mut node = TestAgent::new("history-2");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    node.start_daemon(
        &master.url(),
        &["--imds-endpoint", &imds.url(), "--run-interval", "30m"],
    );
    let run = node.ctl(&["run"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let status = node.status();
    let history = json(&master.ctl(&["catalog", "list", "history-2", "--json"]));
    assert_eq!(
        status["site_revision"], history["versions"][0]["site_revision"],
        "{status}\n{history}"
    );
    assert!(status["site_commit"].is_null(), "{status}");
    let human = node.ctl(&["status"]);
    assert!(
        human.stdout.contains(&format!(
            "site:      revision {}",
            status["site_revision"].as_str().unwrap()
        )),
        "{}",
        human.all()
    );
    node.stop_daemon();
}

#[test]
fn a_token_is_listed_by_id_and_a_revoked_one_enrolls_no_node() {
    let master = TestMaster::start();
    let created = master.ctl(&["token", "create", "--role", "is", "--uses", "2"]);
    assert_eq!(created.code, 0, "{}", created.all());
    let token = created.stdout.trim().to_string();
    let id = created
        .stderr
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 12, "{}", created.all());
    assert!(!master.ctl(&["token", "list"]).stdout.contains(&token));

    let listed = json(&master.ctl(&["token", "list", "--json"]));
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["role"], "is", "{listed}");
    assert_eq!(listed[0]["uses_left"], 2, "{listed}");
    assert_eq!(listed[0]["state"], "valid", "{listed}");

    let typo = master.ctl(&["token", "revoke", "0000000000zz"]);
    assert_ne!(typo.code, 0, "{}", typo.all());
    assert!(typo.stderr.contains("is not a token id"), "{}", typo.all());
    let unknown = master.ctl(&["token", "revoke", "000000000000"]);
    assert!(
        unknown.stderr.contains("no token has the id 000000000000"),
        "{}",
        unknown.all()
    );
    let revoked = master.ctl(&["token", "revoke", &id]);
    assert_eq!(revoked.code, 0, "{}", revoked.all());
    assert!(
        revoked.stdout.contains(&format!("token {id} revoked")),
        "{}",
        revoked.all()
    );
    let listed = json(&master.ctl(&["token", "list", "--json"]));
    assert_eq!(listed[0]["state"], "revoked", "{listed}");

    let node = TestAgent::new("history-3");
    let refused = node.once(
        &master.url(),
        &["--token", &token, "--ca-fingerprint", &master.fingerprint()],
    );
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(
        refused.all().contains("bootstrap token was revoked at"),
        "{}",
        refused.all()
    );
}
