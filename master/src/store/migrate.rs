//! `masterctl store migrate --to postgres`: a SQLite master's metadata
//! copied whole into an empty PostgreSQL database, in one transaction (all
//! of it or nothing), with the master stopped. Every table, every row, the
//! same values: report ids and catalog versions keep their numbers.

use std::path::Path;

use sqlx::Row;

use super::{PostgresSettings, PostgresStore, SqliteStore, StoreError, sql};

/// How a column's values travel.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer (or NULL).
    Int,
    /// Text (or NULL).
    Text,
    /// Bytes (or NULL).
    Bytes,
    /// A flag, an integer in SQLite, a boolean in PostgreSQL.
    Flag,
}

use Kind::{Bytes, Flag, Int, Text};

/// Every table of the schema, with its columns.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "tokens",
        &[
            ("hash", Text),
            ("role", Text),
            ("expires_at_ms", Int),
            ("uses_left", Int),
            ("created_at_ms", Int),
            ("revoked_at_ms", Int),
        ],
    ),
    (
        "certs",
        &[
            ("serial", Text),
            ("certname", Text),
            ("issued_at_ms", Int),
            ("not_after_ms", Int),
            ("revoked", Flag),
            ("cert_pem", Text),
            ("revoked_at_ms", Int),
        ],
    ),
    (
        "nodes",
        &[
            ("certname", Text),
            ("bound_role", Text),
            ("role", Text),
            ("enrolled_at_ms", Int),
            ("last_seen_ms", Int),
            ("ip", Text),
            ("facts_json", Text),
            ("pinned_version", Int),
            ("catalog_error", Text),
            ("applied_epoch", Text),
            ("applied_version", Int),
            ("applied_digest", Text),
        ],
    ),
    (
        "catalogs",
        &[
            ("certname", Text),
            ("version", Int),
            ("digest", Text),
            ("catalog_json", Bytes),
            ("signature", Bytes),
            ("created_at_ms", Int),
            ("site_revision", Text),
            ("site_commit", Text),
        ],
    ),
    (
        "reports",
        &[
            ("id", Int),
            ("certname", Text),
            ("catalog_version", Int),
            ("received_at_ms", Int),
            ("status", Text),
            ("changed", Int),
            ("failed", Int),
            ("duration_ms", Int),
            ("report_json", Text),
        ],
    ),
    (
        "trees",
        &[
            ("name", Text),
            ("version", Text),
            ("level", Int),
            ("digest", Text),
            ("files", Int),
            ("size", Int),
            ("imported_at_ms", Int),
        ],
    ),
    (
        "restart_leases",
        &[
            ("lease_group", Text),
            ("certname", Text),
            ("service", Text),
            ("acquired_at_ms", Int),
            ("expires_at_ms", Int),
        ],
    ),
    (
        "artifacts",
        &[
            ("name", Text),
            ("digest", Text),
            ("size", Int),
            ("imported_at_ms", Int),
        ],
    ),
    (
        "service_health",
        &[
            ("certname", Text),
            ("service", Text),
            ("lease_group", Text),
            ("running", Flag),
            ("ready", Flag),
            ("ready_since_ms", Int),
            ("reported_at_ms", Int),
            ("detail", Text),
            ("peers_changed", Text),
        ],
    ),
    (
        "promotions",
        &[
            ("name", Text),
            ("version", Text),
            ("environment", Text),
            ("level", Int),
            ("promoted_at_ms", Int),
        ],
    ),
    (
        "rollouts",
        &[
            ("cluster", Text),
            ("revision", Text),
            ("state", Text),
            ("created_at_ms", Int),
            ("updated_at_ms", Int),
            ("reason", Text),
        ],
    ),
    (
        "rollout_nodes",
        &[
            ("cluster", Text),
            ("certname", Text),
            ("state", Text),
            ("version", Int),
            ("previous_version", Int),
            ("since_ms", Int),
            ("error", Text),
        ],
    ),
    (
        "pending_enrollments",
        &[
            ("certname", Text),
            ("csr_pem", Text),
            ("asked_role", Text),
            ("document", Text),
            ("why", Text),
            ("remote", Text),
            ("received_at_ms", Int),
        ],
    ),
    (
        "fleet",
        &[
            ("id", Int),
            ("ca", Text),
            ("signing", Text),
            ("restart", Text),
            ("epoch", Text),
        ],
    ),
];

/// A migration that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// There is no SQLite database to move.
    #[error("{0} does not exist: no SQLite metadata to move")]
    NoDatabase(String),
    /// The target already holds a fleet's metadata.
    #[error(
        "the PostgreSQL database is not empty ({0} rows in tokens, certs, nodes, trees and fleet): moving into it would mix two fleets; give it an empty database"
    )]
    NotEmpty(i64),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows moved, per table.
pub type Moved = Vec<(&'static str, u64)>;

/// Copies the SQLite database at `sqlite` into the (empty) PostgreSQL
/// database `to`, whose schema it brings up to date first.
pub async fn sqlite_to_postgres(
    sqlite: &Path,
    to: &PostgresSettings,
) -> Result<Moved, MigrateError> {
    if !sqlite.is_file() {
        return Err(MigrateError::NoDatabase(sqlite.display().to_string()));
    }
    // Opening brings the SQLite schema up to date too: every table is there.
    let from = SqliteStore::open(sqlite).await?;
    let to = PostgresStore::open(to).await?;
    let pg = to.durable_pool();
    let present: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM tokens) + (SELECT count(*) FROM certs)
              + (SELECT count(*) FROM nodes) + (SELECT count(*) FROM trees)
              + (SELECT count(*) FROM fleet)",
    )
    .fetch_one(pg)
    .await
    .map_err(sql("look into the PostgreSQL database"))?;
    if present > 0 {
        return Err(MigrateError::NotEmpty(present));
    }
    let mut tx = pg.begin().await.map_err(sql("begin the migration"))?;
    let mut moved = Vec::new();
    for (table, columns) in TABLES {
        let selected: Vec<String> = columns
            .iter()
            .map(|(name, kind)| match kind {
                Bytes => format!("CAST({name} AS BLOB)"),
                _ => name.to_string(),
            })
            .collect();
        let rows = sqlx::query(&format!("SELECT {} FROM {table}", selected.join(", ")))
            .fetch_all(from.durable_pool())
            .await
            .map_err(sql("read the SQLite database"))?;
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let overriding = if *table == "reports" {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let insert = format!(
            "INSERT INTO {table} ({}){overriding} VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        for row in &rows {
            let mut query = sqlx::query(&insert);
            for (i, (_, kind)) in columns.iter().enumerate() {
                query = match kind {
                    Int => query.bind(
                        row.try_get::<Option<i64>, _>(i)
                            .map_err(sql("read a row"))?,
                    ),
                    Text => query.bind(
                        row.try_get::<Option<String>, _>(i)
                            .map_err(sql("read a row"))?,
                    ),
                    Bytes => query.bind(
                        row.try_get::<Option<Vec<u8>>, _>(i)
                            .map_err(sql("read a row"))?,
                    ),
                    Flag => query.bind(
                        row.try_get::<Option<i64>, _>(i)
                            .map_err(sql("read a row"))?
                            .map(|v| v != 0),
                    ),
                };
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(sql("write a row into PostgreSQL"))?;
        }
        moved.push((*table, rows.len() as u64));
    }
    // New reports number on from the last one moved.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('reports', 'id'), COALESCE((SELECT max(id) FROM reports), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await
    .map_err(sql("number new reports on"))?;
    tx.commit().await.map_err(sql("commit the migration"))?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_table_and_column_of_the_schema_is_moved() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("m.db")).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(store.durable_pool())
        .await
        .unwrap();
        let mut known: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
        known.sort_unstable();
        assert_eq!(tables, known, "a table the migration does not move");
        for (table, columns) in TABLES {
            let mut names: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(store.durable_pool())
                    .await
                    .unwrap();
            names.sort();
            let mut moved: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
            moved.sort_unstable();
            assert_eq!(
                names, moved,
                "a column of {table} the migration does not move"
            );
        }
    }
}
