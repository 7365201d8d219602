//! Several masters serving one fleet from one PostgreSQL database and one
//! S3 bucket: a master with other keys is refused at start, naming what
//! to copy; a node enrolled through one master is served by the other,
//! with the same catalog version; the other carries on when one stops.

use rigger_common::grpc::MasterAddress;
use rigger_tests::databases::{Database, PASSWORD};
use rigger_tests::fleet_load::{self, LoadSettings};
use rigger_tests::shared_stores::{ENV, SharedStores};
use std::time::Duration;

use rigger_tests::{TestAgent, TestMaster};

/// Two masters, A then B joining it, on one database and bucket; `None`
/// (the test skips) without PostgreSQL or s3s-fs. The stores come first
/// in the tuple, so they outlive the masters.
fn two_masters(test: &str) -> Option<(SharedStores, TestMaster, TestMaster)> {
    let stores = SharedStores::start(test)?;
    let a = TestMaster::start_with_env(&stores.flags(), &ENV);
    let b = TestMaster::start_joining(&a, &stores.flags(), &ENV);
    Some((stores, a, b))
}

#[test]
fn two_masters_on_postgres_and_s3_serve_one_fleet_alike() {
    let Some(stores) = SharedStores::start("two_masters_on_postgres_and_s3_serve_one_fleet_alike")
    else {
        return;
    };
    let (db, flags, env) = (&stores.db, stores.flags(), ENV);
    let mut a = TestMaster::start_with_env(&flags, &env);

    // A master started on the same stores with keys of its own refuses
    // to serve, and says which files to copy.
    let stranger = tempfile::tempdir().unwrap();
    let said =
        rigger_tests::process::master_refusing(stranger.path(), &a.site(), &flags, &env).stderr;
    assert!(
        said.contains("the CA (ca.crt, ca.key)") && said.contains("copy ca.crt"),
        "{said}"
    );
    assert!(
        !said.contains(PASSWORD),
        "the store's password shows: {said}"
    );

    let b = TestMaster::start_joining(&a, &flags, &env);
    assert_eq!(a.fingerprint(), b.fingerprint(), "one CA");
    let status = b.ctl(&["status"]);
    assert!(
        status
            .stdout
            .contains("stores:    metadata in PostgreSQL postgres://")
            && status.stdout.contains("content in S3 bucket fleet-content"),
        "{}",
        status.all()
    );
    assert!(!status.all().contains(PASSWORD), "{}", status.all());

    // One node enrolled through A, then served by B: same version.
    let one = TestAgent::new("fleet-1");
    let first = one.enroll(&a, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    let through_b = one.once(&b.url(), &[]);
    assert_eq!(through_b.code, 0, "B changes nothing: {}", through_b.all());
    let versions = |db: &Database| {
        db.sql(
            "fleet",
            "SELECT certname || ':' || count(*) FROM catalogs GROUP BY certname ORDER BY certname",
        )
        .unwrap()
    };
    assert_eq!(
        versions(db),
        "fleet-1:1",
        "switching masters made a new version"
    );
    // Another enrolled with A's token through B: its blobs come from B.
    let two = TestAgent::new("fleet-2");
    let token = a.token(&["--role", "is"]);
    let fingerprint = a.fingerprint();
    let enrolled = two.once(
        &b.url(),
        &["--token", &token, "--ca-fingerprint", &fingerprint],
    );
    assert_eq!(enrolled.code, 2, "{}", enrolled.all());
    assert!(
        !enrolled.stdout.contains("fetched 0 blobs"),
        "{}",
        enrolled.all()
    );
    // The first node's peers changed (a new version, from either master);
    // once it has it, the other master has nothing newer for it.
    let peers = one.once(&a.url(), &[]);
    assert!(peers.code == 0 || peers.code == 2, "{}", peers.all());
    let settled = versions(db);

    // Both nodes are told of both masters; A stops: each carries on (the
    // one that kept to A fails over to B), with the versions it has.
    // Each node's list puts A where the node starts (its own place).
    let starting_at_a = |node: &TestAgent| {
        if rigger_agent::client::node_place(&node.certname, 2) == 0 {
            format!("{},{}", a.url(), b.url())
        } else {
            format!("{},{}", b.url(), a.url())
        }
    };
    for node in [&one, &two] {
        let run = node.once(&starting_at_a(node), &[]);
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let lists = [starting_at_a(&one), starting_at_a(&two)];
    a.stop();
    for (node, list) in [&one, &two].into_iter().zip(&lists) {
        let run = node.once(list, &[]);
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(!run.all().contains("cached catalog"), "{}", run.all());
        assert!(
            run.all().contains("using another of the fleet"),
            "{}",
            run.all()
        );
    }
    assert_eq!(versions(db), settled, "B made versions A had made already");
    assert_eq!(b.nodes().as_array().unwrap().len(), 2);
}

#[test]
fn a_new_version_made_on_one_master_is_pushed_through_the_other() {
    let Some((_stores, a, b)) =
        two_masters("a_new_version_made_on_one_master_is_pushed_through_the_other")
    else {
        return;
    };
    let mut node = TestAgent::new("pushed-1");
    assert_eq!(node.enroll(&a, &["--role", "is"]).code, 2);
    // Version 2 (a peer joined), through either master.
    let peer = TestAgent::new("pushed-2");
    assert_eq!(peer.enroll(&a, &["--role", "is"]).code, 2);
    let second = node.once(&b.url(), &[]);
    assert!(
        second.all().contains("catalog version 2"),
        "{}",
        second.all()
    );

    // The node watches B; its next scheduled run is half an hour away.
    node.start_daemon(&b.url(), &["--run-interval", "30m", "--splay", "0s"]);
    rigger_tests::wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0) && s["running"] == false).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    // An operator rolls the node back on A: version 3, made by A alone.
    let out = a.ctl(&["catalog", "rollback", "pushed-1", "--to", "1"]);
    assert!(
        out.stdout.contains("new catalog version 3"),
        "{}",
        out.all()
    );
    let status = rigger_tests::wait_for(
        "B to push A's version to the node",
        Duration::from_secs(30),
        || {
            let s = node.status();
            (s["catalog_version"] == 3 && s["running"] == false).then_some(s)
        },
    );
    assert_eq!(status["catalog_version"], 3, "{status}");
    assert!(
        node.log()
            .contains("the master has a newer catalog: running now"),
        "{}",
        node.log()
    );
    node.stop_daemon();
}

#[test]
fn a_master_killed_under_load_fails_no_run() {
    let Some((_stores, mut a, b)) = two_masters("a_master_killed_under_load_fails_no_run") else {
        return;
    };
    let settings = LoadSettings {
        masters: [&a, &b]
            .map(|m| MasterAddress::parse(&m.url()).unwrap())
            .to_vec(),
        ca_pem: std::fs::read_to_string(a.data_dir().join("ca.crt")).unwrap(),
        token: a.token(&["--role", "is", "--uses", "24"]),
        roles: vec!["is".into()],
        agents: 24,
        network: 32,
        prefix: "failover".into(),
        setup_concurrency: 8,
        concurrency: 8,
        duration: Duration::from_secs(8),
        timeout: Duration::from_secs(30),
        master_pids: vec![],
    };
    let load = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(fleet_load::run(&settings))
    });
    // The agents are enrolled and making runs, half of them through A.
    std::thread::sleep(Duration::from_secs(4));
    a.kill();
    let figures = load.join().unwrap().expect("the load starts");
    assert_eq!(figures.failed, 0, "{}", figures.summary());
    assert!(figures.failovers > 0, "{}", figures.summary());
    assert!(figures.runs >= 24, "{}", figures.summary());
    // B, on the same store, knows every agent, A's included.
    assert_eq!(b.nodes().as_array().unwrap().len(), 24);
}

#[test]
fn two_masters_compiling_one_node_at_once_never_give_a_version_two_contents() {
    let Some((stores, a, b)) =
        two_masters("two_masters_compiling_one_node_at_once_never_give_a_version_two_contents")
    else {
        return;
    };
    let node = TestAgent::new("raced-1");
    assert_eq!(node.enroll(&a, &["--role", "is"]).code, 2);
    let read = |file: &str| {
        std::fs::read_to_string(node.path(&format!("/var/lib/rigger/agent/ssl/{file}"))).unwrap()
    };
    let identity = rigger_common::tls::ClientIdentity {
        cert_pem: read("node.crt"),
        key_pem: read("node.key"),
    };
    let ca = read("ca.crt");
    let answers = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use rigger_common::proto::GetCatalogRequest;
        use rigger_common::proto::catalog_service_client::CatalogServiceClient;
        let mut channels = Vec::new();
        for master in [&a, &b] {
            channels.push(
                rigger_tests::node_client::channel(&master.url(), &ca, Some(&identity))
                    .await
                    .unwrap(),
            );
        }
        let mut answers = Vec::new();
        // Each round, six requests at once through both masters, each
        // with another private IP (which the rendered files name): each
        // master may compile other content for the same next version.
        for round in 0..4 {
            let mut asked = tokio::task::JoinSet::new();
            for i in 0..6 {
                let mut client = CatalogServiceClient::new(channels[i % 2].clone());
                let facts = serde_json::json!({"ip": format!("10.9.{round}.{}", i + 1)});
                asked.spawn(async move {
                    client
                        .get_catalog(GetCatalogRequest {
                            facts_json: facts.to_string(),
                            role: "is".into(),
                            ..Default::default()
                        })
                        .await
                });
            }
            while let Some(answer) = asked.join_next().await {
                answers.push(answer.unwrap());
            }
        }
        answers
    });
    let mut contents: std::collections::BTreeMap<u64, std::collections::BTreeSet<String>> =
        Default::default();
    for answer in &answers {
        match answer {
            Ok(signed) => {
                let catalog: serde_json::Value =
                    serde_json::from_slice(&signed.get_ref().catalog_json).unwrap();
                contents
                    .entry(catalog["version"].as_u64().unwrap())
                    .or_default()
                    .insert(catalog["digest"].as_str().unwrap().to_string());
            }
            // The master that lost the race says so; the node asks again.
            Err(status) => assert!(
                status
                    .message()
                    .contains("another master stored catalog version"),
                "{status:?}"
            ),
        }
    }
    let lost = answers.iter().filter(|a| a.is_err()).count();
    println!(
        "{} answers, {lost} told another master won the race; versions {contents:?}",
        answers.len()
    );
    assert!(contents.len() >= 2, "versions served: {contents:?}");
    for (version, digests) in &contents {
        assert_eq!(
            digests.len(),
            1,
            "version {version} was served with {digests:?}"
        );
    }
    // And the database holds each version once, with the content served.
    let stored = stores
        .db
        .sql(
            "fleet",
            "SELECT version || ' ' || digest FROM catalogs WHERE certname = 'raced-1' ORDER BY version",
        )
        .unwrap();
    for (version, digests) in &contents {
        let digest = digests.iter().next().unwrap();
        assert!(
            stored.contains(&format!("{version} {digest}")),
            "version {version} ({digest}) is not stored as served:\n{stored}"
        );
    }
}

#[test]
fn a_certificate_revoked_on_one_master_is_refused_by_the_other_within_seconds() {
    let Some((_stores, a, b)) =
        two_masters("a_certificate_revoked_on_one_master_is_refused_by_the_other_within_seconds")
    else {
        return;
    };
    let (node, other) = (TestAgent::new("revoked-a"), TestAgent::new("kept-a"));
    for n in [&node, &other] {
        assert_eq!(n.enroll(&a, &["--role", "is"]).code, 2);
    }
    let identity = |n: &TestAgent| {
        let read = |file: &str| {
            std::fs::read_to_string(n.path(&format!("/var/lib/rigger/agent/ssl/{file}"))).unwrap()
        };
        (
            read("ca.crt"),
            rigger_common::tls::ClientIdentity {
                cert_pem: read("node.crt"),
                key_pem: read("node.key"),
            },
        )
    };
    let (ca, revoked) = identity(&node);
    let (_, kept) = identity(&other);
    let ask = |master: &TestMaster, who| {
        rigger_tests::node_client::get_catalog_blocking(&master.url(), &ca, Some(who))
    };
    ask(&b, &revoked).expect("B serves the node before the revocation");

    let out = a.ctl(&["cert", "revoke", "revoked-a"]);
    assert_eq!(out.code, 0, "{}", out.all());
    // B refuses its requests at once (it reads the certificate's record),
    // and within seconds hears of it from the store: it refuses it at the
    // handshake and closes its connections; the other node is not touched.
    let refused = ask(&b, &revoked).unwrap_err();
    assert!(refused.contains("has been revoked"), "{refused}");
    rigger_tests::wait_for(
        "master B to refuse the revoked node at the handshake",
        Duration::from_secs(15),
        || {
            ask(&b, &revoked)
                .is_err_and(|e| e.contains("transport error"))
                .then_some(())
        },
    );
    ask(&b, &kept).expect("B still serves the other node");
    assert!(
        b.log().contains("the store's revocations changed"),
        "{}",
        b.log()
    );
}
