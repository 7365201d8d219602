//! The SQLite store against the conformance suite, and its own migrations.

use super::*;

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("m.db")).await.unwrap();
    (dir, store)
}

crate::meta_store_conformance!(open);

#[tokio::test]
async fn a_database_from_before_migrations_adopts_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let options = SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(&path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE tokens (hash TEXT PRIMARY KEY, role TEXT, expires_at_ms BIGINT NOT NULL, uses_left BIGINT NOT NULL, created_at_ms BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tokens VALUES ('h', NULL, 10, 1, 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.token("h").await.unwrap().is_some());
    // Opening again applies nothing twice.
    drop(store);
    SqliteStore::open(&path).await.unwrap();
}

#[tokio::test]
async fn a_digest_that_does_not_parse_is_an_error_naming_the_row() {
    let (_dir, store) = open().await;
    sqlx::query("INSERT INTO artifacts VALUES ('mysql.jar', 'sha256:nothex', 1, 0)")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.artifacts().await.unwrap_err().to_string();
    assert!(err.contains("artifact mysql.jar"), "{err}");
}

#[tokio::test]
async fn only_the_refreshed_writes_commit_without_flushing_the_log() {
    let (_dir, store) = open().await;
    let synchronous = |pool: &SqlitePool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // 2 = FULL, 1 = NORMAL (https://sqlite.org/pragma.html#pragma_synchronous).
    assert_eq!(synchronous(&store.pool).await, 2);
    assert_eq!(synchronous(&store.refreshed).await, 1);
    let mode = sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
        .fetch_one(&store.refreshed)
        .await
        .unwrap();
    assert_eq!(
        mode, "wal",
        "NORMAL is only crash-safe with the write-ahead log"
    );
}
