//! Unit tests of the apply engine.

use super::*;
use crate::paths::Paths;
use rigger_common::catalog::{DirectorySpec, ExecSpec, FileSpec};

fn file(id: &str, path: &str, content: &str, requires: &[&str], notifies: &[&str]) -> Resource {
    Resource {
        id: id.into(),
        requires: requires.iter().map(|s| s.to_string()).collect(),
        notifies: notifies.iter().map(|s| s.to_string()).collect(),
        spec: ResourceSpec::File(FileSpec {
            path: path.into(),
            content: content.into(),
            source: None,
            mode: None,
            owner: None,
            group: None,
            secret: false,
            restart_key: None,
            redacted_content: None,
        }),
    }
}

fn dir(id: &str, path: &str) -> Resource {
    Resource {
        id: id.into(),
        requires: vec![],
        notifies: vec![],
        spec: ResourceSpec::Directory(DirectorySpec {
            path: path.into(),
            mode: Some(0o755),
            owner: None,
            group: None,
        }),
    }
}

fn refresh_exec(id: &str, requires: &[&str]) -> Resource {
    Resource {
        id: id.into(),
        requires: requires.iter().map(|s| s.to_string()).collect(),
        notifies: vec![],
        spec: ResourceSpec::Exec(ExecSpec {
            command: "echo ran >> \"$RIGGER_ROOT/refreshes\"".into(),
            cwd: None,
            creates: None,
            unless: None,
            refresh_only: true,
            timeout_secs: 10,
            environment: Default::default(),
        }),
    }
}

fn content(resources: Vec<Resource>) -> CatalogContent {
    CatalogContent {
        role: "t".into(),
        profile: "t/t".into(),
        resources,
    }
}

fn statuses(report: &ApplyReport) -> Vec<(&str, Status)> {
    report
        .outcomes
        .iter()
        .map(|o| (o.id.as_str(), o.status))
        .collect()
}

#[test]
fn a_failure_skips_only_its_dependents() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(tmp.path()));
    // `blocker` is a file where a directory must be: it fails.
    std::fs::write(tmp.path().join("blocker"), "x").unwrap();
    let c = content(vec![
        dir("bad_dir", "/blocker"),
        file("under_bad", "/blocker/f", "x", &["bad_dir"], &[]),
        file("under_skipped", "/other", "y", &["under_bad"], &[]),
        dir("good_dir", "/good"),
        file("under_good", "/good/f", "z", &["good_dir"], &[]),
    ]);
    let report = apply_catalog(&c, &ctx, false, |_| {}).unwrap();
    assert_eq!(
        statuses(&report),
        vec![
            ("bad_dir", Status::Failed),
            ("under_bad", Status::Skipped),
            ("under_skipped", Status::Skipped),
            ("good_dir", Status::Changed),
            ("under_good", Status::Changed),
        ]
    );
    assert!(!tmp.path().join("other").exists());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("good/f")).unwrap(),
        "z"
    );
}

#[test]
fn a_restored_hand_edit_is_not_called_a_peer_change() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ctx = ApplyContext::new(Paths::new(tmp.path()));
    let keyed = |text: &str, key: &[u8]| {
        let mut r = file("conf", "/deployment.toml", text, &[], &[]);
        if let ResourceSpec::File(f) = &mut r.spec {
            f.restart_key = Some(rigger_common::digest::Digest::of(key));
        }
        content(vec![r])
    };
    let applied = keyed("members = [a]\n", b"k");
    apply_catalog(&applied, &ctx, false, |_| {}).unwrap();
    ctx.previous = Some(std::sync::Arc::new(applied.clone()));

    // An operator edits the file; the catalog did not change.
    std::fs::write(tmp.path().join("deployment.toml"), "edited\n").unwrap();
    let restored = apply_catalog(&applied, &ctx, false, |_| {}).unwrap();
    let message = &restored.outcomes[0].message;
    assert!(
        message.contains("restored: the file had been edited on the node"),
        "{message}"
    );
    assert!(!message.contains("peer lists"), "{message}");

    // The peer lists change, the restart key stays.
    let peers = apply_catalog(&keyed("members = [a, b]\n", b"k"), &ctx, false, |_| {}).unwrap();
    let message = &peers.outcomes[0].message;
    assert!(message.contains("only peer lists changed"), "{message}");
}

#[test]
fn notified_exec_runs_only_when_its_source_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(tmp.path()));
    let make = |text: &str| {
        content(vec![
            file("conf", "/app.conf", text, &[], &["reload"]),
            refresh_exec("reload", &[]),
        ])
    };
    let refreshes = || std::fs::read_to_string(tmp.path().join("refreshes")).unwrap_or_default();
    let first = apply_catalog(&make("a"), &ctx, false, |_| {}).unwrap();
    assert_eq!(
        statuses(&first),
        vec![("conf", Status::Changed), ("reload", Status::Changed)]
    );
    assert_eq!(refreshes(), "ran\n");
    let second = apply_catalog(&make("a"), &ctx, false, |_| {}).unwrap();
    assert_eq!(second.changed(), 0);
    assert_eq!(refreshes(), "ran\n", "refreshed without a change");
    let noop = apply_catalog(&make("b"), &ctx, true, |_| {}).unwrap();
    assert_eq!(
        statuses(&noop),
        vec![("conf", Status::Pending), ("reload", Status::Pending)]
    );
    assert_eq!(refreshes(), "ran\n", "noop refreshed");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("app.conf")).unwrap(),
        "a"
    );
}

#[test]
fn a_resource_whose_requirement_changed_is_checked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(tmp.path()));
    // /current points at release a, which has the file already.
    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    std::fs::create_dir_all(tmp.path().join("b")).unwrap();
    std::fs::write(tmp.path().join("a/app.conf"), "v").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("a"), tmp.path().join("current")).unwrap();
    let switch = Resource {
        id: "switch".into(),
        requires: vec![],
        notifies: vec![],
        spec: ResourceSpec::Symlink(rigger_common::catalog::SymlinkSpec {
            path: "/current".into(),
            target: "/b".into(),
        }),
    };
    let c = content(vec![
        switch,
        file("conf", "/current/app.conf", "v", &["switch"], &[]),
    ]);
    let report = apply_catalog(&c, &ctx, false, |_| {}).unwrap();
    assert_eq!(
        statuses(&report),
        vec![("switch", Status::Changed), ("conf", Status::Changed)]
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("b/app.conf")).unwrap(),
        "v"
    );
}

#[test]
fn a_cycle_is_refused_before_anything_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(Paths::new(tmp.path()));
    let c = content(vec![
        file("a", "/a", "a", &["b"], &[]),
        file("b", "/b", "b", &["a"], &[]),
    ]);
    assert!(apply_catalog(&c, &ctx, false, |_| {}).is_err());
    assert!(!tmp.path().join("a").exists());
}
