//! SQLite backend of the metadata store.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use rigger_common::signing::SignedCatalog;

use super::{
    AppliedCatalog, ArtifactRecord, Budget, CatalogRecord, CatalogVersion, CertRecord, FleetKeys,
    LeaseDecision, LeaseRecord, MetaStore, NodeRecord, PendingEnrollment, PromotionRecord,
    ReportRecord, ReportSummary, RolloutNode, RolloutRecord, ServiceHealthRecord, StoreError,
    TokenRecord, TreeInsert, TreeRecord, sql, stored_digest,
};

/// The SQLite schema's history, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The metadata store in a SQLite file (write-ahead log).
///
/// Two pools share the file. Writes through `pool` are durable when they
/// return (`synchronous = FULL`: the log is flushed at each commit). The
/// writes the [`MetaStore`] documents as refreshed go through `refreshed`
/// (`synchronous = NORMAL`): they survive the master's crash, and a power
/// loss can take back only the last of them, never corrupt the file. The
/// log is one sequence, so the next durable commit flushes every commit
/// before it too.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    refreshed: SqlitePool,
}

impl SqliteStore {
    /// The pool of durable writes (for [`super::migrate`]).
    pub(super) fn durable_pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens (creating if needed) the database at `path` and its schema.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(sql("parse connection options"))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // A SQLite connection is an open file, not a socket: nothing
        // breaks it between uses, so sqlx's ping before each use (one more
        // round trip to the connection's thread per query) is left out.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(sql("open the database"))?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        let refreshed = SqlitePoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(sql("open the database"))?;
        Ok(Self { pool, refreshed })
    }
}

#[async_trait::async_trait]
impl MetaStore for SqliteStore {
    /// Stores a new token by hash.
    async fn insert_token(
        &self,
        hash: &str,
        record: &TokenRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tokens (hash, role, expires_at_ms, uses_left, created_at_ms) VALUES (?, ?, ?, ?, ?)")
            .bind(hash)
            .bind(&record.role)
            .bind(record.expires_at_ms)
            .bind(record.uses_left)
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(sql("store a token"))?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<(String, TokenRecord, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT hash, role, expires_at_ms, uses_left, created_at_ms, revoked_at_ms FROM tokens
             ORDER BY created_at_ms DESC, hash",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list tokens"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let record = TokenRecord {
                    role: r.get(1),
                    expires_at_ms: r.get(2),
                    uses_left: r.get(3),
                    revoked_at_ms: r.get(5),
                };
                (r.get(0), record, r.get(4))
            })
            .collect())
    }

    async fn revoke_token(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tokens SET uses_left = 0, revoked_at_ms = COALESCE(revoked_at_ms, ?1) WHERE hash = ?2",
        )
        .bind(now_ms)
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(sql("revoke a token"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Looks a token up by hash.
    async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT role, expires_at_ms, uses_left, revoked_at_ms FROM tokens WHERE hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("look up a token"))?;
        Ok(row.map(|r| TokenRecord {
            role: r.get(0),
            expires_at_ms: r.get(1),
            uses_left: r.get(2),
            revoked_at_ms: r.get(3),
        }))
    }

    /// Consumes one use of a token if it is unexpired and not used up;
    /// returns whether it did (atomic against concurrent enrollments).
    async fn consume_token(&self, hash: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE hash = ? AND uses_left > 0 AND expires_at_ms > ?",
        )
        .bind(hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("consume a token"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an issued certificate and enrolls (or re-binds) its node.
    async fn record_enrollment(
        &self,
        cert: &CertRecord,
        bound_role: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("begin enrollment"))?;
        insert_cert(&mut tx, cert).await?;
        sqlx::query(
            "INSERT INTO nodes (certname, bound_role, enrolled_at_ms) VALUES (?, ?, ?)
             ON CONFLICT (certname) DO UPDATE SET bound_role = excluded.bound_role, enrolled_at_ms = excluded.enrolled_at_ms",
        )
        .bind(&cert.certname)
        .bind(bound_role)
        .bind(cert.issued_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(sql("store a node"))?;
        tx.commit().await.map_err(sql("commit enrollment"))
    }

    async fn record_renewal(&self, cert: &CertRecord, renewed: &str) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("begin a renewal"))?;
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM certs JOIN nodes USING (certname)
             WHERE certs.serial = ? AND certs.certname = ? AND certs.revoked = 0",
        )
        .bind(renewed)
        .bind(&cert.certname)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("check the renewed certificate"))?;
        if live.is_none() {
            return Ok(false);
        }
        insert_cert(&mut tx, cert).await?;
        tx.commit().await.map_err(sql("commit a renewal"))?;
        Ok(true)
    }

    async fn record_cert(&self, cert: &CertRecord) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(sql("begin storing a certificate"))?;
        insert_cert(&mut tx, cert).await?;
        tx.commit().await.map_err(sql("commit a certificate"))
    }

    async fn issued_count(&self, certname: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM certs WHERE certname = ?")
            .bind(certname)
            .fetch_one(&self.pool)
            .await
            .map_err(sql("count certificates"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn put_pending(&self, p: &PendingEnrollment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO pending_enrollments (certname, csr_pem, asked_role, document, why, remote, received_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.certname)
        .bind(&p.csr_pem)
        .bind(&p.asked_role)
        .bind(&p.document)
        .bind(&p.why)
        .bind(&p.remote)
        .bind(p.received_at_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("record a pending enrollment"))?;
        Ok(())
    }

    async fn pending(&self) -> Result<Vec<PendingEnrollment>, StoreError> {
        let rows = sqlx::query(
            "SELECT certname, csr_pem, asked_role, document, why, remote, received_at_ms
             FROM pending_enrollments ORDER BY received_at_ms, certname",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list pending enrollments"))?;
        Ok(rows.iter().map(pending_from_row).collect())
    }

    async fn take_pending(&self, certname: &str) -> Result<Option<PendingEnrollment>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM pending_enrollments WHERE certname = ?
             RETURNING certname, csr_pem, asked_role, document, why, remote, received_at_ms",
        )
        .bind(certname)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("take a pending enrollment"))?;
        Ok(row.as_ref().map(pending_from_row))
    }

    /// Certificates, newest first.
    async fn certs(&self) -> Result<Vec<CertRecord>, StoreError> {
        let rows = sqlx::query("SELECT serial, certname, issued_at_ms, not_after_ms, revoked, cert_pem, revoked_at_ms FROM certs ORDER BY issued_at_ms DESC")
            .fetch_all(&self.pool)
            .await
            .map_err(sql("list certificates"))?;
        Ok(rows.iter().map(cert_from_row).collect())
    }

    /// The certificate with this serial.
    async fn cert(&self, serial: &str) -> Result<Option<CertRecord>, StoreError> {
        let row = sqlx::query("SELECT serial, certname, issued_at_ms, not_after_ms, revoked, cert_pem, revoked_at_ms FROM certs WHERE serial = ?")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql("look up a certificate"))?;
        Ok(row.as_ref().map(cert_from_row))
    }

    async fn valid_cert(
        &self,
        certname: &str,
        now_ms: i64,
    ) -> Result<Option<CertRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, certname, issued_at_ms, not_after_ms, revoked, cert_pem, revoked_at_ms FROM certs
             WHERE certname = ? AND revoked = 0 AND not_after_ms > ? ORDER BY issued_at_ms DESC LIMIT 1",
        )
        .bind(certname)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("look up a valid certificate"))?;
        Ok(row.as_ref().map(cert_from_row))
    }

    /// The node's inventory record.
    async fn node(&self, certname: &str) -> Result<Option<NodeRecord>, StoreError> {
        let row = sqlx::query("SELECT certname, bound_role, role, enrolled_at_ms, last_seen_ms, ip, catalog_error FROM nodes WHERE certname = ?")
            .bind(certname)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql("look up a node"))?;
        Ok(row.as_ref().map(node_from_row))
    }

    /// Every node, by name.
    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query("SELECT certname, bound_role, role, enrolled_at_ms, last_seen_ms, ip, catalog_error FROM nodes ORDER BY certname")
            .fetch_all(&self.pool)
            .await
            .map_err(sql("list nodes"))?;
        Ok(rows.iter().map(node_from_row).collect())
    }

    async fn live_nodes_in_roles(
        &self,
        roles: &[String],
        seen_since_ms: i64,
    ) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query("SELECT certname, bound_role, role, enrolled_at_ms, last_seen_ms, ip, catalog_error FROM nodes WHERE role IN (SELECT value FROM json_each(?)) AND last_seen_ms >= ? ORDER BY certname")
            .bind(serde_json::to_string(roles).expect("names serialize"))
            .bind(seen_since_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(sql("list a cluster's live nodes"))?;
        Ok(rows.iter().map(node_from_row).collect())
    }

    async fn node_facts(&self, certname: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let facts: Option<Option<String>> =
            sqlx::query_scalar("SELECT facts_json FROM nodes WHERE certname = ?")
                .bind(certname)
                .fetch_optional(&self.pool)
                .await
                .map_err(sql("read a node's facts"))?;
        Ok(facts
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok()))
    }

    async fn set_catalog_error(&self, certname: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET catalog_error = ? WHERE certname = ? AND catalog_error != ?")
            .bind(error)
            .bind(certname)
            .bind(error)
            .execute(&self.refreshed)
            .await
            .map_err(sql("record why a node got no catalog"))?;
        Ok(())
    }

    /// Records that a node asked for its catalog with these facts.
    async fn touch_node(
        &self,
        certname: &str,
        role: &str,
        ip: Option<&str>,
        facts: &serde_json::Value,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET role = ?, ip = ?, facts_json = ?, last_seen_ms = ? WHERE certname = ?")
            .bind(role)
            .bind(ip)
            .bind(facts.to_string())
            .bind(now_ms)
            .bind(certname)
            .execute(&self.refreshed)
            .await
            .map_err(sql("update a node"))?;
        Ok(())
    }

    /// The node's latest catalog, or the given version.
    async fn catalog(
        &self,
        certname: &str,
        version: Option<u64>,
    ) -> Result<Option<CatalogRecord>, StoreError> {
        let query = match version {
            Some(v) => sqlx::query("SELECT version, digest, catalog_json, signature FROM catalogs WHERE certname = ? AND version = ?")
                .bind(certname)
                .bind(v as i64),
            None => sqlx::query("SELECT version, digest, catalog_json, signature FROM catalogs WHERE certname = ? ORDER BY version DESC LIMIT 1")
                .bind(certname),
        };
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(sql("look up a catalog"))?;
        row.map(|r| {
            let version = r.get::<i64, _>(0) as u64;
            Ok(CatalogRecord {
                version,
                digest: stored_digest(r.get(1), || {
                    format!("the digest of catalog version {version} of {certname}")
                })?,
                signed: SignedCatalog {
                    catalog_json: r.get(2),
                    signature: r.get(3),
                },
            })
        })
        .transpose()
    }

    /// Appends a catalog version to the node's history.
    async fn insert_catalog(
        &self,
        certname: &str,
        record: &CatalogRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (site_revision, site_commit) = record.site_revision();
        sqlx::query("INSERT INTO catalogs (certname, version, digest, catalog_json, signature, created_at_ms, site_revision, site_commit) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(certname)
            .bind(record.version as i64)
            .bind(record.digest.to_string())
            .bind(&record.signed.catalog_json)
            .bind(&record.signed.signature)
            .bind(now_ms)
            .bind(site_revision)
            .bind(site_commit)
            .execute(&self.refreshed)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_unique_violation() => StoreError::VersionTaken {
                    certname: certname.to_string(),
                    version: record.version,
                },
                _ => sql("store a catalog")(e),
            })?;
        Ok(())
    }

    async fn record_applied(
        &self,
        certname: &str,
        applied: &AppliedCatalog,
    ) -> Result<(), StoreError> {
        // Unchanged (every converged run): no row changes, nothing to sync.
        let version = i64::try_from(applied.version).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE nodes SET applied_epoch = ?, applied_version = ?, applied_digest = ? WHERE certname = ? \
             AND (applied_epoch IS NOT ? OR applied_version IS NOT ? OR applied_digest IS NOT ?)",
        )
            .bind(&applied.epoch)
            .bind(version)
            .bind(&applied.digest)
            .bind(certname)
            .bind(&applied.epoch)
            .bind(version)
            .bind(&applied.digest)
            .execute(&self.refreshed)
            .await
            .map_err(sql("record the applied catalog"))?;
        Ok(())
    }

    async fn applied(&self, certname: &str) -> Result<Option<AppliedCatalog>, StoreError> {
        let row = sqlx::query(
            "SELECT applied_epoch, applied_version, applied_digest FROM nodes WHERE certname = ?",
        )
        .bind(certname)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("read the applied catalog"))?;
        Ok(row
            .map(|r| AppliedCatalog {
                epoch: r.get(0),
                version: u64::try_from(r.get::<i64, _>(1)).unwrap_or(0),
                digest: r.get(2),
            })
            .filter(|a| a.version > 0))
    }

    async fn replace_signed(
        &self,
        certname: &str,
        version: u64,
        signed: &SignedCatalog,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE catalogs SET catalog_json = ?, signature = ? WHERE certname = ? AND version = ?")
            .bind(&signed.catalog_json)
            .bind(&signed.signature)
            .bind(certname)
            .bind(version as i64)
            .execute(&self.refreshed)
            .await
            .map_err(sql("re-sign a catalog"))?;
        Ok(())
    }

    async fn catalog_history(
        &self,
        certname: &str,
        limit: u32,
    ) -> Result<Vec<CatalogVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, digest, created_at_ms, site_revision, site_commit FROM catalogs
             WHERE certname = ? ORDER BY version DESC LIMIT ?",
        )
        .bind(certname)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list a node's catalog versions"))?;
        rows.iter()
            .map(|r| {
                let version = r.get::<i64, _>(0) as u64;
                Ok(CatalogVersion {
                    version,
                    digest: stored_digest(r.get(1), || {
                        format!("the digest of catalog version {version} of {certname}")
                    })?,
                    created_at_ms: r.get(2),
                    site_revision: r.get(3),
                    site_commit: r.get(4),
                })
            })
            .collect()
    }

    async fn prune_catalogs(
        &self,
        certname: &str,
        keep: u32,
        before_ms: i64,
        protect: &[u64],
    ) -> Result<u64, StoreError> {
        let protect = serde_json::to_string(protect).expect("versions serialize");
        let done = sqlx::query(
            "DELETE FROM catalogs WHERE certname = ?1
               AND version < (SELECT MAX(version) FROM catalogs WHERE certname = ?1)
               AND (version <= (SELECT MAX(version) FROM catalogs WHERE certname = ?1) - ?2
                    OR created_at_ms < ?3)
               AND version NOT IN (SELECT value FROM json_each(?4))",
        )
        .bind(certname)
        .bind(i64::from(keep))
        .bind(before_ms)
        .bind(protect)
        .execute(&self.pool)
        .await
        .map_err(sql("prune a node's catalog versions"))?;
        Ok(done.rows_affected())
    }

    async fn prune_reports(&self, keep: u32, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM reports WHERE id IN (
                 SELECT id FROM (
                     SELECT id, received_at_ms,
                            ROW_NUMBER() OVER (PARTITION BY certname ORDER BY id DESC) AS n
                     FROM reports)
                 WHERE n > ?1 OR received_at_ms < ?2)
               AND id NOT IN (SELECT MAX(id) FROM reports GROUP BY certname)
               AND id NOT IN (SELECT MAX(id) FROM reports
                              WHERE json_extract(report_json, '$.noop') = 0 GROUP BY certname)",
        )
        .bind(i64::from(keep))
        .bind(before_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("prune reports"))?;
        Ok(done.rows_affected())
    }

    async fn insert_report(
        &self,
        certname: &str,
        report: &ReportRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(report).expect("a report serializes");
        sqlx::query("INSERT INTO reports (certname, catalog_version, received_at_ms, status, changed, failed, duration_ms, report_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(certname)
            .bind(report.catalog_version as i64)
            .bind(now_ms)
            .bind(report.status())
            .bind(i64::from(report.changed))
            .bind(i64::from(report.failed))
            .bind(report.duration_ms as i64)
            .bind(json)
            .execute(if report.only_confirms() {
                &self.refreshed
            } else {
                &self.pool
            })
            .await
            .map_err(sql("store a report"))?;
        Ok(())
    }

    async fn reports(
        &self,
        certname: &str,
        limit: u32,
    ) -> Result<Vec<(i64, ReportRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT received_at_ms, report_json FROM reports WHERE certname = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(certname)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list a node's reports"))?;
        rows.iter()
            .map(|r| {
                let json: String = r.get(1);
                let report = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    what: format!("a report of {certname}"),
                    message: e.to_string(),
                })?;
                Ok((r.get(0), report))
            })
            .collect()
    }

    /// The node's last report.
    async fn last_report(&self, certname: &str) -> Result<Option<ReportSummary>, StoreError> {
        let row = sqlx::query(
            "SELECT status, received_at_ms, catalog_version, changed, failed, report_json,
               (SELECT catalog_version FROM reports a WHERE a.certname = r.certname
                  AND json_extract(a.report_json, '$.noop') = 0 ORDER BY a.id DESC LIMIT 1)
             FROM reports r WHERE certname = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(certname)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("look up a report"))?;
        Ok(row.map(|r| {
            let json: String = r.get(5);
            let noop = serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .and_then(|v| v.get("noop").and_then(serde_json::Value::as_bool))
                .unwrap_or(false);
            ReportSummary {
                status: r.get(0),
                received_at_ms: r.get(1),
                catalog_version: r.get::<i64, _>(2) as u64,
                changed: r.get::<i64, _>(3) as u32,
                failed: r.get::<i64, _>(4) as u32,
                noop,
                applied_version: r.get::<Option<i64>, _>(6).unwrap_or(0) as u64,
            }
        }))
    }

    async fn insert_tree(&self, tree: &TreeRecord, now_ms: i64) -> Result<TreeInsert, StoreError> {
        if let Some(existing) = self.tree(&tree.name, &tree.version, tree.level).await? {
            return Ok(if existing.digest == tree.digest {
                TreeInsert::Same
            } else {
                TreeInsert::Conflict(existing.digest)
            });
        }
        sqlx::query("INSERT INTO trees (name, version, level, digest, files, size, imported_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&tree.name)
            .bind(&tree.version)
            .bind(i64::from(tree.level))
            .bind(tree.digest.to_string())
            .bind(tree.files as i64)
            .bind(tree.size as i64)
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(sql("store a tree"))?;
        Ok(TreeInsert::New)
    }

    /// One level of a product version.
    async fn tree(
        &self,
        name: &str,
        version: &str,
        level: u32,
    ) -> Result<Option<TreeRecord>, StoreError> {
        let row = sqlx::query("SELECT name, version, level, digest, files, size, imported_at_ms FROM trees WHERE name = ? AND version = ? AND level = ?")
            .bind(name)
            .bind(version)
            .bind(i64::from(level))
            .fetch_optional(&self.pool)
            .await
            .map_err(sql("look up a tree"))?;
        row.as_ref().map(tree_from_row).transpose()
    }

    /// Pins a node to the content of one of its catalog versions (`None` unpins).
    async fn set_pin(&self, certname: &str, version: Option<u64>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE nodes SET pinned_version = ? WHERE certname = ?")
            .bind(version.map(|v| v as i64))
            .bind(certname)
            .execute(&self.pool)
            .await
            .map_err(sql("pin a node"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The catalog version a node is pinned to, if any.
    async fn pin(&self, certname: &str) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT pinned_version FROM nodes WHERE certname = ?")
            .bind(certname)
            .fetch_optional(&self.pool)
            .await
            .map_err(sql("look up a pin"))?;
        Ok(row
            .and_then(|r| r.get::<Option<i64>, _>(0))
            .map(|v| v as u64))
    }

    /// Records (or replaces) a named artifact.
    async fn upsert_artifact(&self, artifact: &ArtifactRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO artifacts (name, digest, size, imported_at_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, size = excluded.size, imported_at_ms = excluded.imported_at_ms",
        )
        .bind(&artifact.name)
        .bind(artifact.digest.to_string())
        .bind(artifact.size as i64)
        .bind(artifact.imported_at_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("store an artifact"))?;
        Ok(())
    }

    /// Removes a node from the inventory and revokes its certificates;
    /// returns whether it was there. Its catalog history is kept.
    async fn revoke_certs(&self, certname: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "UPDATE certs SET revoked = 1, revoked_at_ms = ? WHERE certname = ? AND revoked = 0 RETURNING serial",
        )
        .bind(now_ms)
        .bind(certname)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("revoke certificates"))
    }

    async fn remove_node(&self, certname: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("begin node removal"))?;
        let removed = sqlx::query("DELETE FROM nodes WHERE certname = ?")
            .bind(certname)
            .execute(&mut *tx)
            .await
            .map_err(sql("remove a node"))?
            .rows_affected();
        sqlx::query(
            "UPDATE certs SET revoked = 1, revoked_at_ms = ? WHERE certname = ? AND revoked = 0",
        )
        .bind(now_ms)
        .bind(certname)
        .execute(&mut *tx)
        .await
        .map_err(sql("revoke certificates"))?;
        // A removed node restarts nothing any more: its cluster may go on.
        sqlx::query("DELETE FROM restart_leases WHERE certname = ?")
            .bind(certname)
            .execute(&mut *tx)
            .await
            .map_err(sql("free its restart leases"))?;
        // Nor does it count for (or against) its cluster's restart budget.
        sqlx::query("DELETE FROM service_health WHERE certname = ?")
            .bind(certname)
            .execute(&mut *tx)
            .await
            .map_err(sql("forget its service health"))?;
        tx.commit().await.map_err(sql("commit node removal"))?;
        Ok(removed == 1)
    }

    async fn put_rollout(&self, r: &RolloutRecord) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("begin a rollout"))?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT revision FROM rollouts WHERE cluster = ?")
                .bind(&r.cluster)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql("read a rollout"))?;
        if old.is_some_and(|old| old != r.revision) {
            sqlx::query("DELETE FROM rollout_nodes WHERE cluster = ?")
                .bind(&r.cluster)
                .execute(&mut *tx)
                .await
                .map_err(sql("forget a superseded rollout's nodes"))?;
        }
        sqlx::query(
            "INSERT INTO rollouts (cluster, revision, state, created_at_ms, updated_at_ms, reason)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (cluster) DO UPDATE SET revision = excluded.revision,
               state = excluded.state, created_at_ms = excluded.created_at_ms,
               updated_at_ms = excluded.updated_at_ms, reason = excluded.reason",
        )
        .bind(&r.cluster)
        .bind(&r.revision)
        .bind(&r.state)
        .bind(r.created_at_ms)
        .bind(r.updated_at_ms)
        .bind(&r.reason)
        .execute(&mut *tx)
        .await
        .map_err(sql("record a rollout"))?;
        tx.commit().await.map_err(sql("commit a rollout"))?;
        Ok(())
    }

    async fn rollout(&self, cluster: &str) -> Result<Option<RolloutRecord>, StoreError> {
        Ok(self
            .rollouts()
            .await?
            .into_iter()
            .find(|r| r.cluster == cluster))
    }

    async fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT cluster, revision, state, created_at_ms, updated_at_ms, reason FROM rollouts ORDER BY cluster",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list rollouts"))?;
        Ok(rows
            .iter()
            .map(|r| RolloutRecord {
                cluster: r.get(0),
                revision: r.get(1),
                state: r.get(2),
                created_at_ms: r.get(3),
                updated_at_ms: r.get(4),
                reason: r.get(5),
            })
            .collect())
    }

    async fn put_rollout_node(&self, n: &RolloutNode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rollout_nodes (cluster, certname, state, version, previous_version, since_ms, error)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (cluster, certname) DO UPDATE SET state = excluded.state,
               version = excluded.version, previous_version = excluded.previous_version,
               since_ms = excluded.since_ms, error = excluded.error",
        )
        .bind(&n.cluster)
        .bind(&n.certname)
        .bind(&n.state)
        .bind(n.version as i64)
        .bind(n.previous_version as i64)
        .bind(n.since_ms)
        .bind(&n.error)
        .execute(&self.pool)
        .await
        .map_err(sql("record a rollout's node"))?;
        Ok(())
    }

    async fn rollout_nodes(&self, cluster: &str) -> Result<Vec<RolloutNode>, StoreError> {
        let rows = sqlx::query(
            "SELECT cluster, certname, state, version, previous_version, since_ms, error
             FROM rollout_nodes WHERE cluster = ? ORDER BY since_ms, certname",
        )
        .bind(cluster)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list a rollout's nodes"))?;
        Ok(rows
            .iter()
            .map(|r| RolloutNode {
                cluster: r.get(0),
                certname: r.get(1),
                state: r.get(2),
                version: r.get::<i64, _>(3) as u64,
                previous_version: r.get::<i64, _>(4) as u64,
                since_ms: r.get(5),
                error: r.get(6),
            })
            .collect())
    }

    async fn promote(&self, p: &PromotionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO promotions (name, version, environment, level, promoted_at_ms)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name, version, environment) DO UPDATE SET
               level = excluded.level, promoted_at_ms = excluded.promoted_at_ms",
        )
        .bind(&p.name)
        .bind(&p.version)
        .bind(&p.environment)
        .bind(i64::from(p.level))
        .bind(p.promoted_at_ms)
        .execute(&self.pool)
        .await
        .map_err(sql("promote a level"))?;
        Ok(())
    }

    async fn promotions(&self) -> Result<Vec<PromotionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, environment, level, promoted_at_ms FROM promotions
             ORDER BY name, version, environment",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("list promotions"))?;
        Ok(rows
            .iter()
            .map(|r| PromotionRecord {
                name: r.get(0),
                version: r.get(1),
                environment: r.get(2),
                level: r.get::<i64, _>(3) as u32,
                promoted_at_ms: r.get(4),
            })
            .collect())
    }

    /// Every artifact, by name.
    async fn artifacts(&self) -> Result<Vec<ArtifactRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT name, digest, size, imported_at_ms FROM artifacts ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(sql("list artifacts"))?;
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                Ok(ArtifactRecord {
                    digest: stored_digest(r.get(1), || format!("the digest of artifact {name}"))?,
                    name,
                    size: r.get::<i64, _>(2) as u64,
                    imported_at_ms: r.get(3),
                })
            })
            .collect()
    }

    /// Every imported tree, by name, version and level.
    async fn trees(&self) -> Result<Vec<TreeRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, version, level, digest, files, size, imported_at_ms FROM trees ORDER BY name, version, level")
            .fetch_all(&self.pool)
            .await
            .map_err(sql("list trees"))?;
        rows.iter().map(tree_from_row).collect()
    }

    /// Grants `lease` unless `max_down` other nodes of its group hold an
    /// unexpired lease; a node asking again renews its own. Atomic: one
    /// immediate transaction. Returns whether it was granted and the
    /// holders afterwards.
    async fn acquire_lease(
        &self,
        lease: &LeaseRecord,
        max_down: u32,
        budget: Option<&Budget>,
    ) -> Result<LeaseDecision, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("begin a lease transaction"))?;
        sqlx::query("DELETE FROM restart_leases WHERE lease_group = ? AND expires_at_ms <= ?")
            .bind(&lease.group)
            .bind(lease.acquired_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql("expire leases"))?;
        let holders_before = leases_in(&mut tx, Some(&lease.group)).await?;
        let others = holders_before
            .iter()
            .filter(|l| l.certname != lease.certname)
            .count();
        let mut decision = LeaseDecision {
            granted: others < max_down as usize,
            ..LeaseDecision::default()
        };
        if let Some(budget) = budget {
            let rows = sqlx::query(
                "SELECT certname, ready, ready_since_ms, reported_at_ms, detail FROM service_health
                 WHERE lease_group = ? AND certname != ? ORDER BY certname",
            )
            .bind(&lease.group)
            .bind(&lease.certname)
            .fetch_all(&mut *tx)
            .await
            .map_err(sql("read the group's health"))?;
            let mut members: Vec<String> = Vec::new();
            for row in &rows {
                let certname: String = row.get(0);
                if members.contains(&certname) {
                    continue;
                }
                members.push(certname.clone());
                let ready: bool = row.get(1);
                let since: Option<i64> = row.get(2);
                let reported: i64 = row.get(3);
                let detail: String = row.get(4);
                let why = if holders_before.iter().any(|l| l.certname == certname) {
                    Some("it is restarting (it holds the lease)".to_string())
                } else if reported < budget.fresh_since_ms {
                    Some("it has not been heard from".to_string())
                } else if !ready {
                    Some(if detail.is_empty() {
                        "it is not ready".to_string()
                    } else {
                        format!("it is not ready: {detail}")
                    })
                } else if since.is_none_or(|s| s > budget.ready_before_ms) {
                    Some("it has not been ready for the settle time yet".to_string())
                } else {
                    None
                };
                match why {
                    Some(why) => decision.unavailable.push(format!("{certname}: {why}")),
                    None => decision.available.push(certname),
                }
            }
            // The group: the nodes that reported, and the one asking.
            let group_size = members.len() as u32 + 1;
            decision.min_ready = budget
                .min_ready
                .unwrap_or(group_size.saturating_sub(max_down));
            decision.granted &= decision.available.len() as u32 >= decision.min_ready;
        }
        if decision.granted {
            sqlx::query(
                "INSERT INTO restart_leases (lease_group, certname, service, acquired_at_ms, expires_at_ms)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (lease_group, certname) DO UPDATE SET
                   service = excluded.service, expires_at_ms = excluded.expires_at_ms",
            )
            .bind(&lease.group)
            .bind(&lease.certname)
            .bind(&lease.service)
            .bind(lease.acquired_at_ms)
            .bind(lease.expires_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql("grant a lease"))?;
            // It goes down now: its next ready report starts a new streak,
            // so that the settle time counts from after the restart.
            sqlx::query(
                "UPDATE service_health SET ready_since_ms = NULL WHERE certname = ? AND lease_group = ?",
            )
            .bind(&lease.certname)
            .bind(&lease.group)
            .execute(&mut *tx)
            .await
            .map_err(sql("break a ready streak"))?;
        }
        decision.holders = leases_in(&mut tx, Some(&lease.group)).await?;
        tx.commit().await.map_err(sql("commit a lease"))?;
        Ok(decision)
    }

    async fn renew_leases(&self, certname: &str, until_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE restart_leases SET expires_at_ms = MAX(expires_at_ms, ?) WHERE certname = ?",
        )
        .bind(until_ms)
        .bind(certname)
        .execute(&self.pool)
        .await
        .map_err(sql("renew leases"))?;
        Ok(())
    }

    async fn record_service_health(&self, h: &ServiceHealthRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO service_health
               (certname, service, lease_group, running, ready, ready_since_ms, reported_at_ms, detail, peers_changed)
             VALUES (?, ?, ?, ?, ?, CASE WHEN ? THEN ? ELSE NULL END, ?, ?, ?)
             ON CONFLICT (certname, service) DO UPDATE SET
               lease_group = excluded.lease_group,
               running = excluded.running,
               ready_since_ms = CASE
                 WHEN excluded.ready = 0 THEN NULL
                 WHEN service_health.ready = 1 AND service_health.ready_since_ms IS NOT NULL
                   THEN service_health.ready_since_ms
                 ELSE excluded.ready_since_ms END,
               ready = excluded.ready,
               reported_at_ms = excluded.reported_at_ms,
               detail = excluded.detail,
               peers_changed = excluded.peers_changed",
        )
        .bind(&h.certname)
        .bind(&h.service)
        .bind(&h.group)
        .bind(h.running)
        .bind(h.ready)
        .bind(h.ready)
        .bind(h.ready_since_ms.unwrap_or(h.reported_at_ms))
        .bind(h.reported_at_ms)
        .bind(&h.detail)
        .bind(&h.peers_changed)
        .execute(&self.pool)
        .await
        .map_err(sql("record service health"))?;
        Ok(())
    }

    async fn update_service_health(&self, h: &ServiceHealthRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE service_health SET
               running = ?,
               ready_since_ms = CASE
                 WHEN ? = 0 THEN NULL
                 WHEN ready = 1 AND ready_since_ms IS NOT NULL THEN ready_since_ms
                 ELSE ? END,
               ready = ?,
               reported_at_ms = ?,
               detail = ?,
               peers_changed = ?
             WHERE certname = ? AND service = ?",
        )
        .bind(h.running)
        .bind(h.ready)
        .bind(h.reported_at_ms)
        .bind(h.ready)
        .bind(h.reported_at_ms)
        .bind(&h.detail)
        .bind(&h.peers_changed)
        .bind(&h.certname)
        .bind(&h.service)
        .execute(&self.pool)
        .await
        .map_err(sql("update service health"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn refresh_service_health(
        &self,
        h: &ServiceHealthRecord,
        keep_group: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE service_health SET reported_at_ms = ?, detail = ?
             WHERE certname = ? AND service = ? AND running = ? AND ready = ?
               AND (ready = 0 OR ready_since_ms IS NOT NULL)
               AND peers_changed = ? AND (? OR lease_group = ?)",
        )
        .bind(h.reported_at_ms)
        .bind(&h.detail)
        .bind(&h.certname)
        .bind(&h.service)
        .bind(h.running)
        .bind(h.ready)
        .bind(&h.peers_changed)
        .bind(keep_group)
        .bind(&h.group)
        .execute(&self.refreshed)
        .await
        .map_err(sql("refresh service health"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn service_health(&self) -> Result<Vec<ServiceHealthRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT certname, service, lease_group, running, ready, ready_since_ms, reported_at_ms, detail,
               peers_changed
             FROM service_health ORDER BY lease_group, certname, service",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("read service health"))?;
        Ok(rows
            .iter()
            .map(|r| ServiceHealthRecord {
                certname: r.get(0),
                service: r.get(1),
                group: r.get(2),
                running: r.get(3),
                ready: r.get(4),
                ready_since_ms: r.get(5),
                reported_at_ms: r.get(6),
                detail: r.get(7),
                peers_changed: r.get(8),
            })
            .collect())
    }

    /// Gives back a node's lease of a group; returns whether it held one.
    async fn release_lease(&self, group: &str, certname: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM restart_leases WHERE lease_group = ? AND certname = ?")
            .bind(group)
            .bind(certname)
            .execute(&self.pool)
            .await
            .map_err(sql("release a lease"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Unexpired leases, by group and acquisition time.
    async fn leases(&self, now_ms: i64) -> Result<Vec<LeaseRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(sql("list leases"))?;
        let all = leases_in(&mut conn, None).await?;
        Ok(all
            .into_iter()
            .filter(|l| l.expires_at_ms > now_ms)
            .collect())
    }

    async fn claim_fleet_keys(&self, mine: &FleetKeys) -> Result<FleetKeys, StoreError> {
        sqlx::query(
            "INSERT INTO fleet (id, ca, signing, restart, epoch) VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&mine.ca)
        .bind(&mine.signing)
        .bind(&mine.restart)
        .bind(&mine.epoch)
        .execute(&self.pool)
        .await
        .map_err(sql("record the fleet's keys"))?;
        let row = sqlx::query("SELECT ca, signing, restart, epoch FROM fleet WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(sql("read the fleet's keys"))?;
        Ok(FleetKeys {
            ca: row.get(0),
            signing: row.get(1),
            restart: row.get(2),
            epoch: row.get(3),
        })
    }

    async fn replace_fleet_keys(&self, keys: &FleetKeys) -> Result<(), StoreError> {
        sqlx::query("UPDATE fleet SET ca = ?, signing = ?, restart = ?, epoch = ? WHERE id = 1")
            .bind(&keys.ca)
            .bind(&keys.signing)
            .bind(&keys.restart)
            .bind(&keys.epoch)
            .execute(&self.pool)
            .await
            .map_err(sql("replace the fleet's keys"))?;
        Ok(())
    }
}

async fn leases_in(
    conn: &mut sqlx::SqliteConnection,
    group: Option<&str>,
) -> Result<Vec<LeaseRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT lease_group, certname, service, acquired_at_ms, expires_at_ms FROM restart_leases
         WHERE ? IS NULL OR lease_group = ? ORDER BY lease_group, acquired_at_ms",
    )
    .bind(group)
    .bind(group)
    .fetch_all(conn)
    .await
    .map_err(sql("read leases"))?;
    Ok(rows
        .iter()
        .map(|r| LeaseRecord {
            group: r.get(0),
            certname: r.get(1),
            service: r.get(2),
            acquired_at_ms: r.get(3),
            expires_at_ms: r.get(4),
        })
        .collect())
}

fn tree_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<TreeRecord, StoreError> {
    let (name, version, level): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
    Ok(TreeRecord {
        digest: stored_digest(r.get(3), || {
            format!("the digest of tree {name} {version} level {level}")
        })?,
        name,
        version,
        level: level as u32,
        files: r.get::<i64, _>(4) as u64,
        size: r.get::<i64, _>(5) as u64,
        imported_at_ms: r.get(6),
    })
}

/// Stores an issued certificate, unrevoked.
async fn insert_cert(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    cert: &CertRecord,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO certs (serial, certname, issued_at_ms, not_after_ms, revoked, cert_pem) VALUES (?, ?, ?, ?, 0, ?)")
        .bind(&cert.serial)
        .bind(&cert.certname)
        .bind(cert.issued_at_ms)
        .bind(cert.not_after_ms)
        .bind(&cert.cert_pem)
        .execute(&mut **tx)
        .await
        .map_err(sql("store a certificate"))?;
    Ok(())
}

fn pending_from_row(r: &sqlx::sqlite::SqliteRow) -> PendingEnrollment {
    PendingEnrollment {
        certname: r.get(0),
        csr_pem: r.get(1),
        asked_role: r.get(2),
        document: r.get(3),
        why: r.get(4),
        remote: r.get(5),
        received_at_ms: r.get(6),
    }
}

fn cert_from_row(r: &sqlx::sqlite::SqliteRow) -> CertRecord {
    CertRecord {
        serial: r.get(0),
        certname: r.get(1),
        issued_at_ms: r.get(2),
        not_after_ms: r.get(3),
        revoked: r.get::<i64, _>(4) != 0,
        cert_pem: r.get(5),
        revoked_at_ms: r.get(6),
    }
}

fn node_from_row(r: &sqlx::sqlite::SqliteRow) -> NodeRecord {
    NodeRecord {
        certname: r.get(0),
        bound_role: r.get(1),
        role: r.get(2),
        enrolled_at_ms: r.get(3),
        last_seen_ms: r.get(4),
        ip: r.get(5),
        catalog_error: r.get(6),
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
