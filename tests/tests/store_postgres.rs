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
