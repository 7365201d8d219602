//! The run against an in-memory master: what it applies, what it reports
//! and what it says when the master refuses or is out of reach.

use std::sync::Arc;
use std::time::Duration;

use rigger_common::catalog::{Catalog, CatalogContent, FileSpec, Resource, ResourceSpec};
use rigger_common::digest::Digest;
use rigger_common::grpc::MasterAddress;

use super::Agent;
use crate::client::fake::{FakeConnector, FakeMaster};
use crate::config::AgentConfig;
use crate::facts::ImdsSetting;
use crate::resources::ApplyContext;

fn config(root: &std::path::Path) -> AgentConfig {
    AgentConfig {
        root: root.to_path_buf(),
        master: MasterAddress {
            host: "127.0.0.1".into(),
            port: 9,
        }
        .into(),
        ca_cert: None,
        ca_fingerprint: None,
        token: None,
        certname: None,
        role: Some("is".into()),
        imds: ImdsSetting::Off,
        run_interval: Duration::from_secs(1800),
        splay: Duration::ZERO,
        timeout: Duration::from_secs(5),
        metrics_listen: None,
    }
}

fn file(id: &str, path: &str, spec: impl FnOnce(&mut FileSpec)) -> Resource {
    let mut file = FileSpec {
        path: path.into(),
        content: String::new(),
        source: None,
        mode: None,
        owner: None,
        group: None,
        secret: false,
        restart_key: None,
        redacted_content: None,
    };
    spec(&mut file);
    Resource {
        id: id.into(),
        requires: vec![],
        notifies: vec![],
        spec: ResourceSpec::File(file),
    }
}

fn content(resources: Vec<Resource>) -> CatalogContent {
    CatalogContent {
        role: "is".into(),
        profile: "test/test".into(),
        resources,
    }
}

/// An enrolled agent under a temporary root, talking to `master`.
fn agent(root: &std::path::Path, master: &Arc<FakeMaster>) -> Agent {
    let agent = Agent::with_connector(config(root), Arc::new(FakeConnector(master.clone())));
    master.enroll_into(&agent.paths.ssl_dir());
    for dir in ["etc", "opt/lib"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    agent
}

#[tokio::test]
async fn a_run_applies_the_masters_catalog_and_reports_it() {
    let root = tempfile::tempdir().unwrap();
    let master = FakeMaster::new("node1");
    let jar = master.add_blob(b"driver bytes");
    master.publish(
        3,
        content(vec![
            file("conf", "/etc/demo.conf", |f| f.content = "a = 1\n".into()),
            file("jar", "/opt/lib/driver.jar", |f| f.source = Some(jar)),
            // The same artifact twice is fetched once.
            file("jar2", "/etc/driver.jar", |f| f.source = Some(jar)),
        ]),
    );
    let agent = agent(root.path(), &master);

    let first = agent.run_once(false, false, None).await;
    assert_eq!(first.error, "");
    assert_eq!(
        (first.result.as_str(), first.changed),
        ("changed", 3),
        "{first:?}"
    );
    assert_eq!((first.catalog_version, first.fetched_blobs), (3, 1));
    let conf = std::fs::read_to_string(root.path().join("etc/demo.conf")).unwrap();
    assert_eq!(conf, "a = 1\n");
    let jar = std::fs::read(root.path().join("opt/lib/driver.jar")).unwrap();
    assert_eq!(jar, b"driver bytes");

    let second = agent.run_once(false, false, None).await;
    assert_eq!((second.result.as_str(), second.changed), ("unchanged", 0));

    let reports = master.reports();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        (reports[0].changed, reports[0].catalog_version),
        (3, 3),
        "{reports:?}"
    );
    assert_eq!(reports[0].resources.len(), 3);
    assert_eq!(reports[1].changed, 0);
    let requests = master.requests();
    assert_eq!(requests[0].role.as_deref(), Some("is"));
    assert!(requests[0].facts.is_object());
}

#[tokio::test]
async fn a_refusal_is_told_apart_from_an_unreachable_master() {
    let root = tempfile::tempdir().unwrap();
    let master = FakeMaster::new("node1");
    master.publish(1, content(vec![file("conf", "/etc/demo.conf", |_| {})]));
    let agent = agent(root.path(), &master);
    assert_eq!(agent.run_once(false, false, None).await.error, "");

    master.refuse(Some("cannot compile the catalog of node1: unknown module"));
    let refused = agent.run_once(false, false, None).await;
    assert!(refused.used_cached_catalog);
    assert!(refused.master_reachable);
    assert_eq!(
        refused.master_error,
        "the master gave no catalog: cannot compile the catalog of node1: unknown module"
    );
    // Enforcing the cache because the master refused is not a success.
    assert_eq!(refused.result, "failed");
    assert_eq!(super::detailed_exit_code(&refused), 4);

    master.set_down(true);
    let down = agent.run_once(false, false, None).await;
    assert!(down.used_cached_catalog);
    assert!(!down.master_reachable);
    assert!(down.master_error.contains("cannot connect"), "{down:?}");
    // The cached catalog is still enforced: the node stays converged, and
    // a master out of reach is not the node's failure.
    assert_eq!((down.error.as_str(), down.failed), ("", 0), "{down:?}");
    assert_eq!(
        (down.result.as_str(), super::detailed_exit_code(&down)),
        ("unchanged", 0)
    );
}

#[tokio::test]
async fn a_catalog_signed_by_another_key_is_refused_and_nothing_applied() {
    let root = tempfile::tempdir().unwrap();
    let pinned = FakeMaster::new("node1");
    let agent = agent(root.path(), &pinned);
    let impostor = FakeMaster::with_key("node1", 7);
    impostor.publish(1, content(vec![file("conf", "/etc/demo.conf", |_| {})]));
    let agent = Agent::with_connector(agent.config.clone(), Arc::new(FakeConnector(impostor)));

    let summary = agent.run_once(false, false, None).await;
    assert!(summary.error.contains("signature"), "{summary:?}");
    assert_eq!(summary.result, "failed");
    assert!(!root.path().join("etc/demo.conf").exists());
}

#[tokio::test]
async fn an_older_version_than_the_applied_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let master = FakeMaster::new("node1");
    master.publish(5, content(vec![]));
    let agent = agent(root.path(), &master);
    assert_eq!(agent.run_once(false, false, None).await.error, "");
    master.publish(4, content(vec![file("conf", "/etc/demo.conf", |_| {})]));

    let summary = agent.run_once(false, false, None).await;
    assert!(
        summary.error.contains("older than the applied version 5"),
        "{summary:?}"
    );
    assert!(!root.path().join("etc/demo.conf").exists());
}

#[tokio::test]
async fn the_applied_version_with_other_content_is_refused_and_the_same_content_is_not() {
    let root = tempfile::tempdir().unwrap();
    let master = FakeMaster::new("node1");
    master.publish(5, content(vec![]));
    let agent = agent(root.path(), &master);
    assert_eq!(agent.run_once(false, false, None).await.error, "");
    // The same version again (signed anew): fine.
    master.publish(5, content(vec![]));
    assert_eq!(agent.run_once(false, false, None).await.error, "");
    // Version 5 with other content: a master that lost its history.
    master.publish(5, content(vec![file("conf", "/etc/demo.conf", |_| {})]));
    let summary = agent.run_once(false, false, None).await;
    assert!(
        summary.error.contains("reuses a version number"),
        "{summary:?}"
    );
    assert!(!root.path().join("etc/demo.conf").exists());
    // Asked for a catalog, the agent said what it applied.
    let asked = master.requests();
    assert_eq!(asked.last().unwrap().applied.1, 5);
    // Above it: applied.
    master.publish(6, content(vec![file("conf", "/etc/demo.conf", |_| {})]));
    assert_eq!(agent.run_once(false, false, None).await.error, "");
    assert!(root.path().join("etc/demo.conf").exists());
}

#[tokio::test]
async fn a_signed_catalog_whose_shared_folder_climbs_out_is_refused_before_anything_happens() {
    let root = tempfile::tempdir().unwrap();
    let master = FakeMaster::new("node1");
    let jar = master.add_blob(b"driver bytes");
    let climbing: Resource = Resource {
        id: "shared_dirs".into(),
        requires: vec![],
        notifies: vec![],
        spec: serde_json::from_value(serde_json::json!({
            "kind": "shared_dirs", "share": "/mnt/efs", "link": "/opt/wso2/is",
            "dirs": {"repository/deployment": "../../etc"},
        }))
        .unwrap(),
    };
    master.publish(
        1,
        content(vec![
            file("jar", "/opt/lib/driver.jar", |f| f.source = Some(jar)),
            climbing,
        ]),
    );
    let agent = agent(root.path(), &master);

    let summary = agent.run_once(false, false, None).await;
    assert!(
        summary.error.contains("catalog refused")
            && summary
                .error
                .contains("dirs \"../../etc\" must be a relative path"),
        "{summary:?}"
    );
    assert_eq!(
        (summary.result.as_str(), summary.fetched_blobs),
        ("failed", 0)
    );
    assert!(!root.path().join("opt/lib/driver.jar").exists());
    assert_eq!(agent.state.load().unwrap().applied_version, 0);
}

/// A catalog (not signed: nothing is applied) whose file resources take
/// their content from `sources`.
fn catalog_of(sources: &[Digest]) -> Catalog {
    let content = content(
        sources
            .iter()
            .enumerate()
            .map(|(i, digest)| {
                file(&format!("file{i}"), &format!("/opt/file{i}"), |f| {
                    f.source = Some(*digest)
                })
            })
            .collect(),
    );
    Catalog {
        format: rigger_common::catalog::FORMAT,
        node: "gc-1".into(),
        version: 1,
        digest: content.digest(),
        compiled_at_ms: 0,
        epoch: String::new(),
        expires_at_ms: 0,
        site_revision: String::new(),
        site_commit: None,
        level_sources: Default::default(),
        content,
    }
}

/// Puts `bytes` in the cache as a fetch leaves a blob.
fn cached(ctx: &ApplyContext, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    let path = ctx.cache.path_of(&digest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    crate::content::cache::seal(&file, crate::content::cache::BLOB_MODE).unwrap();
    digest
}

#[test]
fn the_cache_is_collected_when_a_root_goes_and_left_alone_while_roots_only_grow() {
    use super::content::{GC_ROOTS, collect_garbage};
    let dir = tempfile::tempdir().unwrap();
    let ctx = ApplyContext::new(crate::paths::Paths::new(dir.path()));
    std::fs::create_dir_all(ctx.paths.state_dir()).unwrap();
    let (a, b, c) = (cached(&ctx, b"a"), cached(&ctx, b"b"), cached(&ctx, b"c"));
    // The first collection: what no root needs goes.
    collect_garbage(&ctx, &catalog_of(&[a, b]));
    assert!(ctx.cache.has(&a) && ctx.cache.has(&b));
    assert!(!ctx.cache.has(&c), "an unused blob stayed");
    // Roots that only grew: nothing is looked at (an orphan stays).
    let orphan = cached(&ctx, b"orphan");
    let d = cached(&ctx, b"d");
    collect_garbage(&ctx, &catalog_of(&[a, b, d]));
    assert!(ctx.cache.has(&orphan));
    // A root gone: collected again, the orphan with it.
    collect_garbage(&ctx, &catalog_of(&[a, d]));
    assert!(ctx.cache.has(&a) && ctx.cache.has(&d));
    assert!(!ctx.cache.has(&b) && !ctx.cache.has(&orphan));
    // A record that does not read: collected, never trusted.
    let e = cached(&ctx, b"e");
    std::fs::write(ctx.paths.state_dir().join(GC_ROOTS), b"not json").unwrap();
    collect_garbage(&ctx, &catalog_of(&[a, d]));
    assert!(!ctx.cache.has(&e));
}
