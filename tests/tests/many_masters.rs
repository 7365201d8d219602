//! Several masters serving one fleet from one PostgreSQL database and one
//! S3 bucket: a master with other keys is refused at start, naming what
//! to copy; a node enrolled through one master is served by the other,
//! with the same catalog version; the other carries on when one stops.

use rigger_tests::databases::{Database, PASSWORD, USER};
use rigger_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use rigger_tests::{TestAgent, TestMaster};

#[test]
fn two_masters_on_postgres_and_s3_serve_one_fleet_alike() {
    let test = "two_masters_on_postgres_and_s3_serve_one_fleet_alike";
    let (Some(db), Some(s3)) = (Database::postgres(test), S3Server::start(test)) else {
        return;
    };
    db.sql("postgres", "CREATE DATABASE fleet").unwrap();
    s3.bucket("fleet-content");
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("store-password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let url = format!("postgres://{USER}@{}/fleet", db.addr());
    let endpoint = s3.endpoint();
    let flags = [
        "--store",
        "postgres",
        "--store-url",
        &url,
        "--store-password-file",
        password_file.to_str().unwrap(),
        "--blobs",
        "s3",
        "--blobs-bucket",
        "fleet-content",
        "--blobs-endpoint",
        &endpoint,
    ];
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let mut a = TestMaster::start_with_env(&flags, &env);

    // A master started on the same stores with keys of its own refuses
    // to serve, and says which files to copy.
    let stranger = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(rigger_tests::bin("rigger-master"))
        .arg("--data-dir")
        .arg(stranger.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(flags)
        .arg("--site")
        .arg(a.site())
        .arg("--modules")
        .arg(rigger_tests::repo_root().join("modules"))
        .arg("--admin-socket")
        .arg(stranger.path().join("master.sock"))
        .env_remove("RIGGER_MASTER_CONFIG")
        .envs(env)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a master with other keys started: {said}"
    );
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
        versions(&db),
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
    let settled = versions(&db);

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
    assert_eq!(versions(&db), settled, "B made versions A had made already");
    assert_eq!(b.nodes().as_array().unwrap().len(), 2);
}
