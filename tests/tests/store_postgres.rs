//! The master's PostgreSQL metadata store against a real PostgreSQL
//! (Debian's package, a temporary cluster on a free loopback port): the
//! same conformance suite as SQLite, and what several masters on one
//! database do at once.

use std::sync::Arc;

use rigger_master::store::conformance::CASES;
use rigger_master::store::{
    Budget, LeaseRecord, MetaStore, PostgresSettings, PostgresStore, TokenRecord,
};
use rigger_tests::databases::{Database, PASSWORD, USER};

/// A new, empty database on `server`, and a master's store on it.
async fn store_on(server: &Database, database: &str) -> PostgresStore {
    server
        .sql("postgres", &format!("CREATE DATABASE {database}"))
        .unwrap_or_else(|e| panic!("create database {database}: {e}"));
    open(server, database).await
}

/// A master's store on an existing database.
async fn open(server: &Database, database: &str) -> PostgresStore {
    PostgresStore::open(&PostgresSettings {
        url: format!("postgres://{USER}@{}/{database}", server.addr()),
        password: Some(PASSWORD.to_string()),
        pool_size: 4,
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "open the store on {database}: {}",
            rigger_common::error_chain(&e)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_passes_the_conformance_suite() {
    let Some(server) = Database::postgres("the_postgres_store_passes_the_conformance_suite") else {
        return;
    };
    for (i, (name, case)) in CASES.iter().enumerate() {
        eprintln!("conformance case {name}");
        let store = store_on(&server, &format!("case_{i}")).await;
        case(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_sharing_one_database_never_overspend_a_token_or_a_lease() {
    let Some(server) =
        Database::postgres("masters_sharing_one_database_never_overspend_a_token_or_a_lease")
    else {
        return;
    };
    // Two masters start at once on a new database: the migrations run once.
    server.sql("postgres", "CREATE DATABASE shared").unwrap();
    let (a, b) = tokio::join!(open(&server, "shared"), open(&server, "shared"));
    let masters: [Arc<dyn MetaStore>; 2] = [Arc::new(a), Arc::new(b)];

    // A token with three uses, twenty enrollments through both masters.
    let token = TokenRecord {
        role: Some("is".into()),
        expires_at_ms: i64::MAX,
        uses_left: 3,
        revoked_at_ms: None,
    };
    masters[0].insert_token("t", &token, 0).await.unwrap();
    let uses = (0..20).map(|i| {
        let store = masters[i % 2].clone();
        tokio::spawn(async move { store.consume_token("t", 1).await.unwrap() })
    });
    let mut consumed = 0;
    for used in uses.collect::<Vec<_>>() {
        consumed += usize::from(used.await.unwrap());
    }
    assert_eq!(consumed, 3, "a three-use token was used {consumed} times");

    // Ten nodes of one cluster ask both masters for its one restart lease
    // at once: one gets it, whoever it asked.
    let asks = (0..10).map(|i| {
        let store = masters[i % 2].clone();
        tokio::spawn(async move {
            let lease = LeaseRecord {
                group: "is-cluster".into(),
                certname: format!("is-{i}"),
                service: "wso2is".into(),
                acquired_at_ms: 1_000,
                expires_at_ms: 600_000,
            };
            store
                .acquire_lease(&lease, 1, None::<&Budget>)
                .await
                .unwrap()
                .granted
        })
    });
    let mut granted = 0;
    for ask in asks.collect::<Vec<_>>() {
        granted += usize::from(ask.await.unwrap());
    }
    assert_eq!(granted, 1, "max_down 1, yet {granted} nodes were let down");
    let holders = masters[1].leases(2_000).await.unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
}

#[test]
fn a_master_on_postgres_serves_a_node_and_keeps_its_history_across_a_restart() {
    let Some(server) = Database::postgres(
        "a_master_on_postgres_serves_a_node_and_keeps_its_history_across_a_restart",
    ) else {
        return;
    };
    server.sql("postgres", "CREATE DATABASE rigger").unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("store-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let url = format!("postgres://{USER}@{}/rigger", server.addr());
    let mut master = rigger_tests::TestMaster::start_with(&[
        "--store",
        "postgres",
        "--store-url",
        &url,
        "--store-password-file",
        password_file.to_str().unwrap(),
    ]);
    // Nothing of the metadata is in the data directory.
    assert!(!master.data_dir().join("master.db").exists());
    let node = rigger_tests::TestAgent::new("pg-node");
    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    let second = node.once(&master.url(), &[]);
    assert_eq!(second.code, 0, "{}", second.all());
    let versions = server
        .sql(
            "rigger",
            "SELECT count(*) FROM catalogs WHERE certname = 'pg-node'",
        )
        .unwrap();
    assert_eq!(versions, "1", "one catalog version, in PostgreSQL");

    // A restarted master finds the node, its catalog and its reports there.
    master.restart();
    let again = node.once(&master.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    let nodes = master.nodes();
    assert_eq!(nodes[0]["certname"], "pg-node", "{nodes}");
    let reports = server
        .sql(
            "rigger",
            "SELECT count(*) FROM reports WHERE certname = 'pg-node'",
        )
        .unwrap();
    assert_eq!(reports, "3", "every run's report");

    // The data directory's backup does not pretend to hold the metadata.
    let ctl = rigger_tests::process::masterctl_offline;
    let key = secrets.path().join("backup.key");
    assert_eq!(ctl(&["backup", "key", key.to_str().unwrap()]).code, 0);
    let backup = ctl(&[
        "backup",
        "create",
        secrets.path().join("master.backup").to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--data-dir",
        master.data_dir().to_str().unwrap(),
    ]);
    assert_ne!(backup.code, 0, "{}", backup.all());
    assert!(
        backup.all().contains("keeps its metadata in PostgreSQL"),
        "{}",
        backup.all()
    );
    assert!(!secrets.path().join("master.backup").exists());
}

#[test]
fn a_wrong_store_setting_stops_the_master_naming_it_and_hiding_the_password() {
    let bin = rigger_tests::bin("rigger-master");
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(["--data-dir", dir.path().to_str().unwrap(), "--check-config"])
            .args([
                "--site",
                rigger_tests::repo_root()
                    .join("examples/site")
                    .to_str()
                    .unwrap(),
                "--modules",
                rigger_tests::repo_root().join("modules").to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = check(&["--store", "postgress"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("store.kind: \"postgress\""), "{err}");
    let (code, err) = check(&["--store", "postgres"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("store.url"), "{err}");
    let (code, err) = check(&[
        "--store",
        "postgres",
        "--store-url",
        "mysql://rigger:hunter2@127.0.0.1/rigger",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("is not a postgres:// URL"), "{err}");
    assert!(!err.contains("hunter2"), "the password shows: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_decide_about_rollouts_one_at_a_time() {
    let Some(server) = Database::postgres("masters_decide_about_rollouts_one_at_a_time") else {
        return;
    };
    server.sql("postgres", "CREATE DATABASE rollouts").unwrap();
    let (a, b) = (
        open(&server, "rollouts").await,
        open(&server, "rollouts").await,
    );
    let held = a.lock_rollouts().await.unwrap();
    let waiting = tokio::spawn(async move {
        let lock = b.lock_rollouts().await.unwrap();
        (b, lock)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "B decided while A held the rollouts"
    );
    drop(held);
    let (_b, _lock) = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("B decides once A let go")
        .unwrap();
}

#[test]
fn a_sqlite_master_moves_to_postgres_and_its_nodes_do_not_notice() {
    let Some(server) =
        Database::postgres("a_sqlite_master_moves_to_postgres_and_its_nodes_do_not_notice")
    else {
        return;
    };
    server.sql("postgres", "CREATE DATABASE moved").unwrap();
    let mut master = rigger_tests::TestMaster::start();
    let node = rigger_tests::TestAgent::new("moved-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    assert_eq!(node.once(&master.url(), &[]).code, 0);
    master.stop();

    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("store-password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let url = format!("postgres://{USER}@{}/moved", server.addr());
    let data_dir = master.data_dir();
    let migrate = || {
        rigger_tests::process::masterctl_offline(&[
            "store",
            "migrate",
            "--to",
            "postgres",
            "--url",
            &url,
            "--password-file",
            password_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
    };
    let moved = migrate();
    assert_eq!(moved.code, 0, "{}", moved.all());
    assert!(
        moved.stdout.contains("nodes                1 rows"),
        "{}",
        moved.all()
    );
    assert!(
        moved.stdout.contains("reports              2 rows"),
        "{}",
        moved.all()
    );
    // A second move into the same database would mix two fleets.
    let again = migrate();
    assert_ne!(again.code, 0);
    assert!(again.all().contains("is not empty"), "{}", again.all());

    master.restart_with_flags(&[
        "--store",
        "postgres",
        "--store-url",
        &url,
        "--store-password-file",
        password_file.to_str().unwrap(),
    ]);
    let run = node.once(&master.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("catalog version 1"), "{}", run.all());
    assert_eq!(master.nodes()[0]["certname"], "moved-1");
    let reports = server
        .sql("moved", "SELECT count(*) || ' ' || max(id) FROM reports")
        .unwrap();
    assert_eq!(
        reports, "3 3",
        "the new report numbers on from the moved ones"
    );
}
