//! The conformance suite every [`MetaStore`] backend runs: each behaviour
//! the master relies on, written once. A backend's tests call
//! [`meta_store_conformance!`](crate::meta_store_conformance) with a
//! function that opens an empty store (and returns a guard keeping its
//! files alive), or runs [`CASES`] itself (one database server for all of
//! them). Built for the master's tests and, with the `conformance`
//! feature, for `rigger-tests`.

use rigger_common::digest::Digest;
use rigger_common::signing::SignedCatalog;

use super::{
    ArtifactRecord, Budget, CatalogRecord, CertRecord, LeaseRecord, MetaStore, NodeRecord,
    PendingEnrollment, PromotionRecord, ReportRecord, RolloutNode, RolloutRecord,
    ServiceHealthRecord, TokenRecord, TreeInsert, TreeRecord,
};

/// A test that runs every case of [`CASES`] against a new, empty store
/// from `$open().await` (which returns `(guard, store)`), saying which case
/// runs so that a failure names it.
#[macro_export]
macro_rules! meta_store_conformance {
    ($open:path) => {
        #[tokio::test]
        async fn the_conformance_suite() {
            for (name, case) in $crate::store::conformance::CASES {
                eprintln!("conformance case {name}");
                let (_guard, store) = $open().await;
                case(&store).await;
            }
        }
    };
}

/// One behaviour every backend has, checked against an empty store.
pub type Case =
    for<'a> fn(&'a dyn MetaStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

conformance_cases!(
    tokens_are_limited_and_expire,
    enrollment_records_the_certificate_and_binds_the_node,
    nodes_remember_their_last_request_and_pin,
    a_cluster_s_live_nodes_are_read_without_the_fleet,
    catalog_history_keeps_every_version_once,
    pruning_keeps_the_latest_the_protected_and_the_newest,
    pruning_reports_keeps_what_the_screens_read,
    retention_never_prunes_what_a_rollback_or_a_screen_reads,
    the_last_report_is_the_newest,
    a_tree_level_is_recorded_once_and_never_rewritten,
    artifacts_are_replaced_by_name,
    a_group_grants_max_down_leases_and_expired_ones_do_not_count,
    removing_a_node_revokes_it_and_frees_its_lease,
    revoking_a_node_s_certificates_records_when_and_keeps_the_node,
    a_renewal_is_recorded_only_for_a_live_certificate_of_an_enrolled_node,
    pending_enrollments_wait_one_per_name_until_taken,
    the_budget_counts_only_settled_ready_nodes_heard_from,
    a_ready_streak_keeps_its_start_and_heartbeats_renew_leases,
    only_unchanged_health_is_refreshed,
    a_promotion_replaces_the_level_an_environment_runs,
    a_new_revision_of_a_rollout_forgets_its_nodes,
    the_first_master_s_keys_are_the_fleet_s,
);

fn cert(serial: &str, certname: &str, not_after_ms: i64) -> CertRecord {
    CertRecord {
        serial: serial.into(),
        certname: certname.into(),
        issued_at_ms: 100,
        not_after_ms,
        revoked: false,
        revoked_at_ms: 0,
        cert_pem: format!("PEM of {serial}"),
    }
}

fn catalog(version: u64) -> CatalogRecord {
    CatalogRecord {
        version,
        digest: Digest::of(&version.to_be_bytes()),
        signed: SignedCatalog {
            catalog_json: format!("{{\"version\":{version}}}").into_bytes(),
            signature: vec![version as u8; 64],
        },
    }
}

fn tree(level: u32, content: &[u8]) -> TreeRecord {
    TreeRecord {
        name: "wso2is".into(),
        version: "5.11.0".into(),
        level,
        digest: Digest::of(content),
        files: 3042,
        size: 200 << 20,
        imported_at_ms: 5,
    }
}

fn lease(node: &str, at: i64) -> LeaseRecord {
    LeaseRecord {
        group: "c1".into(),
        certname: node.into(),
        service: "wso2is".into(),
        acquired_at_ms: at,
        expires_at_ms: at + 1_000,
    }
}

/// A token is used at most `uses` times and never after it expired.
pub async fn tokens_are_limited_and_expire(store: &dyn MetaStore) {
    let rec = TokenRecord {
        role: Some("is".into()),
        expires_at_ms: 1_000,
        uses_left: 2,
        revoked_at_ms: None,
    };
    store.insert_token("h", &rec, 0).await.unwrap();
    assert_eq!(store.token("h").await.unwrap(), Some(rec.clone()));
    assert!(store.token("other").await.unwrap().is_none());
    assert!(store.consume_token("h", 10).await.unwrap());
    assert!(
        !store.consume_token("h", 2_000).await.unwrap(),
        "expired token consumed"
    );
    assert!(store.consume_token("h", 10).await.unwrap());
    assert!(
        !store.consume_token("h", 10).await.unwrap(),
        "used-up token consumed"
    );
    assert_eq!(store.token("h").await.unwrap().unwrap().uses_left, 0);
    assert!(!store.consume_token("unknown", 10).await.unwrap());

    // Listed newest first; a revoked token has no use left and is expired.
    store.insert_token("h2", &rec, 5).await.unwrap();
    let listed: Vec<(String, i64)> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|(hash, _, created)| (hash, created))
        .collect();
    assert_eq!(listed, [("h2".to_string(), 5), ("h".to_string(), 0)]);
    assert!(store.revoke_token("h2", 50).await.unwrap());
    assert!(!store.consume_token("h2", 10).await.unwrap());
    let revoked = store.token("h2").await.unwrap().unwrap();
    assert_eq!((revoked.uses_left, revoked.revoked_at_ms), (0, Some(50)));
    // Revoked again: the first time stays.
    assert!(store.revoke_token("h2", 60).await.unwrap());
    assert_eq!(
        store.token("h2").await.unwrap().unwrap().revoked_at_ms,
        Some(50)
    );
    assert!(!store.revoke_token("unknown", 50).await.unwrap());
}

/// Enrollment stores the certificate and the node with its bound role;
/// a valid certificate is one unrevoked and unexpired.
pub async fn enrollment_records_the_certificate_and_binds_the_node(store: &dyn MetaStore) {
    store
        .record_enrollment(&cert("0a", "n1", 10_000), Some("is"))
        .await
        .unwrap();
    let node = store.node("n1").await.unwrap().expect("enrolled node");
    assert_eq!(node.bound_role.as_deref(), Some("is"));
    assert_eq!((node.enrolled_at_ms, node.last_seen_ms), (100, 0));
    assert_eq!(store.cert("0a").await.unwrap().unwrap().certname, "n1");
    assert!(store.cert("0b").await.unwrap().is_none());
    assert!(store.has_valid_cert("n1", 5_000).await.unwrap());
    assert!(
        !store.has_valid_cert("n1", 20_000).await.unwrap(),
        "expired"
    );
    assert!(!store.has_valid_cert("n2", 5_000).await.unwrap());
    // Enrolling again (after the first certificate expired) re-binds.
    let mut second = cert("0b", "n1", 50_000);
    second.issued_at_ms = 200;
    store.record_enrollment(&second, None).await.unwrap();
    assert_eq!(store.node("n1").await.unwrap().unwrap().bound_role, None);
    let serials: Vec<String> = store
        .certs()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(serials, ["0b", "0a"], "newest first");
    let newest = store.valid_cert("n1", 5_000).await.unwrap().unwrap();
    assert_eq!(newest.serial, "0b", "the newest valid certificate");
}

/// A node's catalog request records role, address, facts and time; a pin
/// is set and cleared.
pub async fn nodes_remember_their_last_request_and_pin(store: &dyn MetaStore) {
    for name in ["b", "a"] {
        store
            .record_enrollment(&cert(name, name, 10_000), None)
            .await
            .unwrap();
    }
    let facts = serde_json::json!({"ip": "10.0.0.5"});
    store
        .touch_node("a", "is", Some("10.0.0.5"), &facts, 777)
        .await
        .unwrap();
    let a = store.node("a").await.unwrap().unwrap();
    assert_eq!(
        (a.role.as_deref(), a.ip.as_deref(), a.last_seen_ms),
        (Some("is"), Some("10.0.0.5"), 777)
    );
    let names: Vec<String> = store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.certname)
        .collect();
    assert_eq!(names, ["a", "b"], "by name");
    assert_eq!(store.pin("a").await.unwrap(), None);
    assert!(store.set_pin("a", Some(3)).await.unwrap());
    assert_eq!(store.pin("a").await.unwrap(), Some(3));
    assert!(store.set_pin("a", None).await.unwrap());
    assert_eq!(store.pin("a").await.unwrap(), None);
    assert!(!store.set_pin("nobody", Some(1)).await.unwrap());
}

/// A compile reads only the live nodes of its cluster's roles, by name.
pub async fn a_cluster_s_live_nodes_are_read_without_the_fleet(store: &dyn MetaStore) {
    let facts = serde_json::json!({});
    for (name, role, seen) in [
        ("is-2", "is", 900),
        ("is-1", "is", 800),
        ("km-1", "is_km", 900),
        ("gone", "is", 100),
        ("apim-1", "apim", 900),
    ] {
        store
            .record_enrollment(&cert(name, name, 10_000), None)
            .await
            .unwrap();
        store
            .touch_node(name, role, Some("10.0.0.9"), &facts, seen)
            .await
            .unwrap();
    }
    // Enrolled, never asked: no role yet.
    store
        .record_enrollment(&cert("new", "new", 10_000), None)
        .await
        .unwrap();
    let names =
        |nodes: Vec<NodeRecord>| -> Vec<String> { nodes.into_iter().map(|n| n.certname).collect() };
    let roles = ["is".to_string(), "is_km".to_string()];
    assert_eq!(
        names(store.live_nodes_in_roles(&roles, 500).await.unwrap()),
        ["is-1", "is-2", "km-1"]
    );
    assert_eq!(
        names(store.live_nodes_in_roles(&roles, 0).await.unwrap()),
        ["gone", "is-1", "is-2", "km-1"]
    );
    assert!(store.live_nodes_in_roles(&[], 0).await.unwrap().is_empty());
    assert!(
        store
            .live_nodes_in_roles(&["is' OR 1=1 --".to_string()], 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The latest version or a given one comes back as stored; a version is
/// never stored twice.
pub async fn catalog_history_keeps_every_version_once(store: &dyn MetaStore) {
    assert!(store.catalog("n", None).await.unwrap().is_none());
    for v in 1..=3u64 {
        store.insert_catalog("n", &catalog(v), 0).await.unwrap();
    }
    assert_eq!(store.catalog("n", None).await.unwrap(), Some(catalog(3)));
    assert_eq!(store.catalog("n", Some(2)).await.unwrap(), Some(catalog(2)));
    assert!(store.catalog("n", Some(9)).await.unwrap().is_none());
    assert!(store.catalog("other", None).await.unwrap().is_none());
    assert!(
        matches!(
            store.insert_catalog("n", &catalog(3), 0).await,
            Err(super::StoreError::VersionTaken { version: 3, .. })
        ),
        "a version was rewritten, or its refusal does not say it is taken"
    );
    assert_eq!(store.catalog("n", Some(3)).await.unwrap(), Some(catalog(3)));
}

/// Pruning a node's history keeps its newest `keep` versions and those
/// younger than the cut, its latest whatever its age, and the protected
/// ones (applied, pinned, a rollout's last good); the history lists what
/// is left, newest first, with the revision each was compiled from.
pub async fn pruning_keeps_the_latest_the_protected_and_the_newest(store: &dyn MetaStore) {
    for v in 1..=6u64 {
        let mut record = catalog(v);
        record.signed.catalog_json =
            format!("{{\"version\":{v},\"site_revision\":\"rev{v}\",\"site_commit\":\"c{v}\"}}")
                .into_bytes();
        store
            .insert_catalog("n", &record, v as i64 * 10)
            .await
            .unwrap();
    }
    store.insert_catalog("other", &catalog(1), 0).await.unwrap();
    let history = store.catalog_history("n", 2).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|c| (c.version, c.created_at_ms, c.site_revision.as_str()))
            .collect::<Vec<_>>(),
        vec![(6, 60, "rev6"), (5, 50, "rev5")]
    );
    assert_eq!(history[0].site_commit.as_deref(), Some("c6"));
    assert_eq!(history[0].digest, catalog(6).digest);

    // Keep 3: 4, 5 and 6, and 1, protected.
    assert_eq!(store.prune_catalogs("n", 3, 0, &[1]).await.unwrap(), 2);
    let left = |h: Vec<super::CatalogVersion>| h.iter().map(|c| c.version).collect::<Vec<_>>();
    assert_eq!(
        left(store.catalog_history("n", 10).await.unwrap()),
        [6, 5, 4, 1]
    );
    // Older than 55: only the latest and the protected stay.
    assert_eq!(store.prune_catalogs("n", 3, 55, &[1]).await.unwrap(), 2);
    assert_eq!(left(store.catalog_history("n", 10).await.unwrap()), [6, 1]);
    assert_eq!(
        store.prune_catalogs("n", 1, i64::MAX, &[]).await.unwrap(),
        1
    );
    assert_eq!(left(store.catalog_history("n", 10).await.unwrap()), [6]);
    assert!(store.catalog("other", Some(1)).await.unwrap().is_some());
}

/// Pruning reports keeps each node's newest `keep` and younger than the
/// cut, and always its newest report and its newest that was not a noop.
pub async fn pruning_reports_keeps_what_the_screens_read(store: &dyn MetaStore) {
    let report = |version: u64, noop: bool| ReportRecord {
        catalog_version: version,
        noop,
        ..Default::default()
    };
    for at in 1..=4 {
        store
            .insert_report("n", &report(at, false), at as i64)
            .await
            .unwrap();
    }
    store.insert_report("n", &report(5, true), 5).await.unwrap();
    store.insert_report("n", &report(6, true), 6).await.unwrap();
    store
        .insert_report("other", &report(1, false), 1)
        .await
        .unwrap();
    // Keep 2 (6 and 5), and 4: the newest that applied.
    assert_eq!(store.prune_reports(2, 0).await.unwrap(), 3);
    let kept = |certname: &'static str| async move {
        store
            .reports(certname, 10)
            .await
            .unwrap()
            .iter()
            .map(|(at, _)| *at)
            .collect::<Vec<_>>()
    };
    assert_eq!(kept("n").await, [6, 5, 4]);
    let last = store.last_report("n").await.unwrap().unwrap();
    assert_eq!((last.catalog_version, last.applied_version), (6, 4));
    // Everything is old: the newest and the newest applied stay.
    assert_eq!(store.prune_reports(100, i64::MAX).await.unwrap(), 1);
    assert_eq!(kept("n").await, [6, 4]);
    assert_eq!(kept("other").await, [1]);
}

/// A retention pass keeps each node's applied, pinned and rollout versions
/// however old, and prunes the rest beyond the newest kept.
pub async fn retention_never_prunes_what_a_rollback_or_a_screen_reads(store: &dyn MetaStore) {
    for name in ["a", "b"] {
        store
            .record_enrollment(&cert(name, name, i64::MAX), None)
            .await
            .unwrap();
        for v in 1..=8u64 {
            store.insert_catalog(name, &catalog(v), 0).await.unwrap();
        }
    }
    // a applied 2 and is pinned to 3; b is in a rollout from 4 to 5.
    let applied = ReportRecord {
        catalog_version: 2,
        ..Default::default()
    };
    store.insert_report("a", &applied, 0).await.unwrap();
    assert!(store.set_pin("a", Some(3)).await.unwrap());
    store
        .put_rollout(&RolloutRecord {
            cluster: "is".into(),
            revision: "r".into(),
            state: "halted".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
            reason: String::new(),
        })
        .await
        .unwrap();
    store
        .put_rollout_node(&RolloutNode {
            cluster: "is".into(),
            certname: "b".into(),
            state: "failed".into(),
            version: 5,
            previous_version: 4,
            since_ms: 0,
            error: String::new(),
        })
        .await
        .unwrap();
    let retention = crate::retention::Retention {
        keep_catalogs: 2,
        ..Default::default()
    };
    let pruned = crate::retention::prune(store, &retention, 1_000)
        .await
        .unwrap();
    let left = |certname: &'static str| async move {
        store
            .catalog_history(certname, 100)
            .await
            .unwrap()
            .iter()
            .map(|c| c.version)
            .collect::<Vec<_>>()
    };
    assert_eq!(left("a").await, [8, 7, 3, 2]);
    assert_eq!(left("b").await, [8, 7, 5, 4]);
    assert_eq!(pruned.catalogs, 8);
}

/// Reports are kept; the last one is the newest received.
pub async fn the_last_report_is_the_newest(store: &dyn MetaStore) {
    assert!(store.last_report("n").await.unwrap().is_none());
    let changed = ReportRecord {
        catalog_version: 1,
        changed: 2,
        ..Default::default()
    };
    let failed = ReportRecord {
        catalog_version: 2,
        failed: 1,
        ..Default::default()
    };
    store.insert_report("n", &changed, 10).await.unwrap();
    store.insert_report("n", &failed, 20).await.unwrap();
    store
        .insert_report("other", &ReportRecord::default(), 30)
        .await
        .unwrap();
    let last = store.last_report("n").await.unwrap().unwrap();
    assert_eq!((last.status.as_str(), last.received_at_ms), ("failed", 20));
    let other = store.last_report("other").await.unwrap().unwrap();
    assert_eq!(other.status, "unchanged");
}

/// A level is recorded once; the same content again changes nothing, other
/// content at that level is refused and reported.
pub async fn a_tree_level_is_recorded_once_and_never_rewritten(store: &dyn MetaStore) {
    assert_eq!(
        store.insert_tree(&tree(1, b"l1"), 0).await.unwrap(),
        TreeInsert::New
    );
    assert_eq!(
        store.insert_tree(&tree(0, b"ga"), 0).await.unwrap(),
        TreeInsert::New
    );
    assert_eq!(
        store.insert_tree(&tree(1, b"l1"), 9).await.unwrap(),
        TreeInsert::Same
    );
    assert_eq!(
        store.insert_tree(&tree(1, b"other"), 9).await.unwrap(),
        TreeInsert::Conflict(Digest::of(b"l1"))
    );
    let stored = store.tree("wso2is", "5.11.0", 1).await.unwrap().unwrap();
    assert_eq!(stored.digest, Digest::of(b"l1"));
    assert_eq!((stored.files, stored.size), (3042, 200 << 20));
    assert!(store.tree("wso2is", "5.11.0", 2).await.unwrap().is_none());
    let levels: Vec<u32> = store
        .trees()
        .await
        .unwrap()
        .iter()
        .map(|t| t.level)
        .collect();
    assert_eq!(levels, [0, 1]);
}

/// An artifact imported again under its name replaces the old one.
pub async fn artifacts_are_replaced_by_name(store: &dyn MetaStore) {
    let artifact = |name: &str, content: &[u8]| ArtifactRecord {
        name: name.into(),
        digest: Digest::of(content),
        size: content.len() as u64,
        imported_at_ms: 1,
    };
    store
        .upsert_artifact(&artifact("mysql.jar", b"v1"))
        .await
        .unwrap();
    store
        .upsert_artifact(&artifact("h2.jar", b"h2"))
        .await
        .unwrap();
    store
        .upsert_artifact(&artifact("mysql.jar", b"v2!"))
        .await
        .unwrap();
    let all = store.artifacts().await.unwrap();
    assert_eq!(
        all,
        [artifact("h2.jar", b"h2"), artifact("mysql.jar", b"v2!")]
    );
}

/// No more than `max_down` nodes of a group hold a lease; renewals keep
/// it; expired ones count for nothing.
pub async fn a_group_grants_max_down_leases_and_expired_ones_do_not_count(store: &dyn MetaStore) {
    let decision = store.acquire_lease(&lease("a", 0), 1, None).await.unwrap();
    assert!(decision.granted);
    assert_eq!(decision.holders.len(), 1);
    let decision = store.acquire_lease(&lease("b", 10), 1, None).await.unwrap();
    assert!(!decision.granted, "two nodes of one group down at once");
    assert_eq!(decision.holders[0].certname, "a");
    assert!(
        store
            .acquire_lease(&lease("a", 20), 1, None)
            .await
            .unwrap()
            .granted,
        "renewal"
    );
    assert!(
        store
            .acquire_lease(&lease("b", 30), 2, None)
            .await
            .unwrap()
            .granted,
        "max_down 2"
    );
    assert!(store.release_lease("c1", "b").await.unwrap());
    assert!(!store.release_lease("c1", "b").await.unwrap());
    // a's renewed lease lapses at 1020: then b gets it.
    assert!(
        !store
            .acquire_lease(&lease("b", 1_019), 1, None)
            .await
            .unwrap()
            .granted
    );
    let decision = store
        .acquire_lease(&lease("b", 1_020), 1, None)
        .await
        .unwrap();
    assert!(decision.granted);
    let names: Vec<&str> = decision
        .holders
        .iter()
        .map(|l| l.certname.as_str())
        .collect();
    assert_eq!(names, ["b"]);
    assert_eq!(store.leases(1_500).await.unwrap().len(), 1);
    assert!(store.leases(5_000).await.unwrap().is_empty());
}

/// Removing a node revokes its certificates and frees its leases; its
/// catalog history stays.
pub async fn removing_a_node_revokes_it_and_frees_its_lease(store: &dyn MetaStore) {
    store
        .record_enrollment(&cert("0c", "b", 10_000), None)
        .await
        .unwrap();
    store.insert_catalog("b", &catalog(1), 0).await.unwrap();
    assert!(
        store
            .acquire_lease(&lease("b", 0), 1, None)
            .await
            .unwrap()
            .granted
    );
    store
        .record_service_health(&health("b", false, 0))
        .await
        .unwrap();
    assert!(store.remove_node("b", 700).await.unwrap());
    assert!(
        store.service_health().await.unwrap().is_empty(),
        "a removed node counts for nothing in its cluster's budget"
    );
    assert!(!store.remove_node("b", 800).await.unwrap());
    assert!(store.node("b").await.unwrap().is_none());
    let revoked = store.cert("0c").await.unwrap().unwrap();
    assert_eq!((revoked.revoked, revoked.revoked_at_ms), (true, 700));
    assert!(!store.has_valid_cert("b", 5_000).await.unwrap());
    assert!(store.valid_cert("b", 5_000).await.unwrap().is_none());
    assert!(store.leases(500).await.unwrap().is_empty());
    assert!(store.catalog("b", None).await.unwrap().is_some());
}

fn health(node: &str, ready: bool, at: i64) -> ServiceHealthRecord {
    ServiceHealthRecord {
        certname: node.into(),
        service: "wso2is".into(),
        group: "c1".into(),
        running: ready,
        ready,
        ready_since_ms: None,
        reported_at_ms: at,
        detail: if ready {
            String::new()
        } else {
            "exited: refusing hostname fail.invalid".into()
        },
        peers_changed: String::new(),
    }
}

/// An enrollment waiting for an operator is kept once per name (the
/// latest ask), listed oldest first, and taken once.
pub async fn pending_enrollments_wait_one_per_name_until_taken(store: &dyn MetaStore) {
    let pending = |name: &str, at: i64| PendingEnrollment {
        certname: name.into(),
        csr_pem: format!("CSR {at}"),
        asked_role: (at > 1).then(|| "is".to_string()),
        document: "{}".into(),
        why: "no rule".into(),
        remote: "127.0.0.2:1".into(),
        received_at_ms: at,
    };
    store.put_pending(&pending("i-b", 2)).await.unwrap();
    store.put_pending(&pending("i-a", 1)).await.unwrap();
    store.put_pending(&pending("i-b", 3)).await.unwrap();
    let listed = store.pending().await.unwrap();
    assert_eq!(listed, vec![pending("i-a", 1), pending("i-b", 3)]);
    assert_eq!(
        store.take_pending("i-b").await.unwrap(),
        Some(pending("i-b", 3))
    );
    assert_eq!(store.take_pending("i-b").await.unwrap(), None);
    assert_eq!(store.pending().await.unwrap().len(), 1);
    assert_eq!(store.issued_count("i-a").await.unwrap(), 0);
    store
        .record_enrollment(&cert("0a", "i-a", 10_000), None)
        .await
        .unwrap();
    store.revoke_certs("i-a", 5).await.unwrap();
    assert_eq!(
        store.issued_count("i-a").await.unwrap(),
        1,
        "revoked ones count"
    );
}

/// A renewal is recorded only while the certificate it renews is
/// unrevoked and its node enrolled.
pub async fn a_renewal_is_recorded_only_for_a_live_certificate_of_an_enrolled_node(
    store: &dyn MetaStore,
) {
    store
        .record_enrollment(&cert("0a", "a", 10_000), Some("is"))
        .await
        .unwrap();
    assert!(
        store
            .record_renewal(&cert("0b", "a", 20_000), "0a")
            .await
            .unwrap()
    );
    assert_eq!(
        store.valid_cert("a", 15_000).await.unwrap().unwrap().serial,
        "0b"
    );
    assert_eq!(
        store
            .node("a")
            .await
            .unwrap()
            .unwrap()
            .bound_role
            .as_deref(),
        Some("is"),
        "a renewal keeps the node's role"
    );
    // Another node's certificate renews nothing of a's.
    assert!(
        !store
            .record_renewal(&cert("0c", "b", 20_000), "0a")
            .await
            .unwrap()
    );
    store.revoke_certs("a", 500).await.unwrap();
    assert!(
        !store
            .record_renewal(&cert("0d", "a", 30_000), "0b")
            .await
            .unwrap()
    );
    assert!(store.cert("0d").await.unwrap().is_none());
    store
        .record_enrollment(&cert("0e", "e", 10_000), None)
        .await
        .unwrap();
    store.remove_node("e", 600).await.unwrap();
    assert!(
        !store
            .record_renewal(&cert("0f", "e", 30_000), "0e")
            .await
            .unwrap()
    );
}

/// Revoking a node's certificates records when, once, and leaves the
/// node in the inventory.
pub async fn revoking_a_node_s_certificates_records_when_and_keeps_the_node(store: &dyn MetaStore) {
    for (serial, name) in [("0a", "a"), ("0b", "a"), ("0c", "c")] {
        store
            .record_enrollment(&cert(serial, name, 10_000), None)
            .await
            .unwrap();
    }
    let mut serials = store.revoke_certs("a", 600).await.unwrap();
    serials.sort();
    assert_eq!(serials, ["0a", "0b"]);
    // Already revoked: nothing more, and the first time stays recorded.
    assert!(store.revoke_certs("a", 900).await.unwrap().is_empty());
    assert_eq!(store.cert("0a").await.unwrap().unwrap().revoked_at_ms, 600);
    assert!(!store.has_valid_cert("a", 500).await.unwrap());
    assert!(store.has_valid_cert("c", 500).await.unwrap());
    assert!(
        store.node("a").await.unwrap().is_some(),
        "still in the inventory"
    );
    assert!(store.revoke_certs("nobody", 600).await.unwrap().is_empty());
}

/// The PodDisruptionBudget rule: a lease is granted only while the other
/// nodes that stay available (ready, heard from, settled, not restarting)
/// are at least `min_ready` (all but `max_down` by default).
pub async fn the_budget_counts_only_settled_ready_nodes_heard_from(store: &dyn MetaStore) {
    let budget = |now: i64| Budget {
        min_ready: None,
        fresh_since_ms: now - 1_000,
        ready_before_ms: now - 100,
    };
    // b failed to start: nobody else may go down, whoever holds what.
    store
        .record_service_health(&health("a", true, 0))
        .await
        .unwrap();
    store
        .record_service_health(&health("b", false, 50))
        .await
        .unwrap();
    let decision = store
        .acquire_lease(&lease("a", 200), 1, Some(&budget(200)))
        .await
        .unwrap();
    assert!(!decision.granted, "{decision:?}");
    assert_eq!(decision.min_ready, 1);
    assert!(
        decision.unavailable[0]
            .contains("b: it is not ready: exited: refusing hostname fail.invalid"),
        "{decision:?}"
    );
    // b is ready again, but not settled yet.
    store
        .record_service_health(&health("b", true, 300))
        .await
        .unwrap();
    let decision = store
        .acquire_lease(&lease("a", 350), 1, Some(&budget(350)))
        .await
        .unwrap();
    assert!(!decision.granted, "{decision:?}");
    assert!(decision.unavailable[0].contains("settle"), "{decision:?}");
    // Settled: a may go.
    assert!(
        store
            .acquire_lease(&lease("a", 450), 1, Some(&budget(450)))
            .await
            .unwrap()
            .granted
    );
    // b is not heard from any more (a dead node): it counts as down.
    assert!(store.release_lease("c1", "a").await.unwrap());
    let decision = store
        .acquire_lease(&lease("a", 5_000), 1, Some(&budget(5_000)))
        .await
        .unwrap();
    assert!(!decision.granted, "{decision:?}");
    assert!(
        decision.unavailable[0].contains("not been heard from"),
        "{decision:?}"
    );
    // An explicit min_ready of 0 lets it go anyway.
    let mut none_needed = budget(5_000);
    none_needed.min_ready = Some(0);
    assert!(
        store
            .acquire_lease(&lease("a", 5_000), 1, Some(&none_needed))
            .await
            .unwrap()
            .granted
    );
}

/// A node that stays ready keeps the start of its ready streak; a
/// heartbeat extends the leases it holds.
pub async fn a_ready_streak_keeps_its_start_and_heartbeats_renew_leases(store: &dyn MetaStore) {
    store
        .record_service_health(&health("a", true, 10))
        .await
        .unwrap();
    store
        .record_service_health(&health("a", true, 90))
        .await
        .unwrap();
    let all = store.service_health().await.unwrap();
    assert_eq!(
        (all[0].ready_since_ms, all[0].reported_at_ms),
        (Some(10), 90)
    );
    store
        .record_service_health(&health("a", false, 95))
        .await
        .unwrap();
    store
        .record_service_health(&health("a", true, 120))
        .await
        .unwrap();
    assert_eq!(
        store.service_health().await.unwrap()[0].ready_since_ms,
        Some(120)
    );
    assert!(
        store
            .acquire_lease(&lease("a", 0), 1, None)
            .await
            .unwrap()
            .granted
    );
    // The lease holder goes down: its next ready report starts a new
    // streak, even with no report of it being down in between.
    store
        .record_service_health(&health("a", true, 200))
        .await
        .unwrap();
    assert_eq!(
        store.service_health().await.unwrap()[0].ready_since_ms,
        Some(200)
    );
    // A heartbeat says the server missed a peer-list change.
    let missed = ServiceHealthRecord {
        peers_changed: "started with an older peer list".into(),
        ..health("a", true, 210)
    };
    assert!(store.update_service_health(&missed).await.unwrap());
    let row = &store.service_health().await.unwrap()[0];
    assert_eq!(
        (row.peers_changed.as_str(), row.ready_since_ms),
        ("started with an older peer list", Some(200))
    );
    store.renew_leases("a", 9_000).await.unwrap();
    assert_eq!(
        store.leases(8_999).await.unwrap().len(),
        1,
        "renewed past its TTL"
    );
}

/// A refresh moves only the time (and detail) of health said again; a
/// changed state, group or peer note, a streak a lease ended, or a service
/// never reported is left to the durable record.
pub async fn only_unchanged_health_is_refreshed(store: &dyn MetaStore) {
    let row = || async { store.service_health().await.unwrap().remove(0) };
    assert!(
        !store
            .refresh_service_health(&health("a", true, 5), false)
            .await
            .unwrap(),
        "no row yet"
    );
    store
        .record_service_health(&health("a", true, 10))
        .await
        .unwrap();
    let again = ServiceHealthRecord {
        detail: "serving".into(),
        ..health("a", true, 50)
    };
    assert!(store.refresh_service_health(&again, false).await.unwrap());
    let now = row().await;
    assert_eq!(
        (now.reported_at_ms, now.ready_since_ms, now.detail.as_str()),
        (50, Some(10), "serving")
    );
    let moved = ServiceHealthRecord {
        group: "c2".into(),
        ..health("a", true, 60)
    };
    assert!(!store.refresh_service_health(&moved, false).await.unwrap());
    assert!(store.refresh_service_health(&moved, true).await.unwrap());
    assert_eq!(row().await.group, "c1", "a heartbeat keeps the group");
    let noted = ServiceHealthRecord {
        peers_changed: "started with an older peer list".into(),
        ..health("a", true, 70)
    };
    assert!(!store.refresh_service_health(&noted, true).await.unwrap());
    assert!(
        !store
            .refresh_service_health(&health("a", false, 80), true)
            .await
            .unwrap()
    );
    assert_eq!(row().await.reported_at_ms, 60, "changes are not refreshed");
    // A lease ends the streak: the next ready report starts a new one.
    assert!(
        store
            .acquire_lease(&lease("a", 0), 1, None)
            .await
            .unwrap()
            .granted
    );
    assert!(
        !store
            .refresh_service_health(&health("a", true, 90), true)
            .await
            .unwrap()
    );
}

/// An environment runs one promoted level of a product version; promoting
/// again replaces it.
pub async fn a_promotion_replaces_the_level_an_environment_runs(store: &dyn MetaStore) {
    let promotion = |env: &str, level: u32, at: i64| PromotionRecord {
        name: "wso2is".into(),
        version: "5.11.0".into(),
        environment: env.into(),
        level,
        promoted_at_ms: at,
    };
    store
        .promote(&promotion("production", 1, 10))
        .await
        .unwrap();
    store.promote(&promotion("staging", 2, 20)).await.unwrap();
    store
        .promote(&promotion("production", 2, 30))
        .await
        .unwrap();
    let all = store.promotions().await.unwrap();
    assert_eq!(
        all,
        vec![promotion("production", 2, 30), promotion("staging", 2, 20)]
    );
}

/// A cluster has one rollout; its nodes are updated in place, and a new
/// revision (a newer change) starts with no node admitted.
pub async fn a_new_revision_of_a_rollout_forgets_its_nodes(store: &dyn MetaStore) {
    let rollout = |revision: &str, state: &str| RolloutRecord {
        cluster: "is".into(),
        revision: revision.into(),
        state: state.into(),
        created_at_ms: 10,
        updated_at_ms: 20,
        reason: String::new(),
    };
    let node = |certname: &str, state: &str, since_ms: i64| RolloutNode {
        cluster: "is".into(),
        certname: certname.into(),
        state: state.into(),
        version: 3,
        previous_version: 2,
        since_ms,
        error: String::new(),
    };
    assert_eq!(store.rollout("is").await.unwrap(), None);
    store.put_rollout(&rollout("r1", "running")).await.unwrap();
    store
        .put_rollout_node(&node("n1", "admitted", 1))
        .await
        .unwrap();
    store
        .put_rollout_node(&node("n2", "waiting", 2))
        .await
        .unwrap();
    store
        .put_rollout_node(&node("n1", "applied", 3))
        .await
        .unwrap();
    assert_eq!(
        store.rollout_nodes("is").await.unwrap(),
        vec![node("n2", "waiting", 2), node("n1", "applied", 3)]
    );
    // The same revision keeps its nodes.
    store.put_rollout(&rollout("r1", "halted")).await.unwrap();
    assert_eq!(store.rollout_nodes("is").await.unwrap().len(), 2);
    assert_eq!(
        store.rollout("is").await.unwrap(),
        Some(rollout("r1", "halted"))
    );
    store.put_rollout(&rollout("r2", "running")).await.unwrap();
    assert_eq!(store.rollout_nodes("is").await.unwrap(), vec![]);
    assert_eq!(
        store.rollouts().await.unwrap(),
        vec![rollout("r2", "running")]
    );
}

/// The first master's keys are recorded; a later master with other keys
/// is told the recorded ones, which stay.
pub async fn the_first_master_s_keys_are_the_fleet_s(store: &dyn MetaStore) {
    let first = super::FleetKeys {
        ca: "sha256:ca".into(),
        signing: "signing".into(),
        restart: "restart".into(),
        epoch: "e1".into(),
    };
    assert_eq!(store.claim_fleet_keys(&first).await.unwrap(), first);
    let other = super::FleetKeys {
        ca: "sha256:other".into(),
        ..first.clone()
    };
    assert_eq!(store.claim_fleet_keys(&other).await.unwrap(), first);
    assert_eq!(store.claim_fleet_keys(&first).await.unwrap(), first);
    store.replace_fleet_keys(&other).await.unwrap();
    assert_eq!(store.claim_fleet_keys(&first).await.unwrap(), other);
}
