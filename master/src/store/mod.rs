//! The master's metadata: tokens, certificates, node inventory, catalog
//! history and reports. SQLite in the data directory now; the SQL is kept
//! portable for PostgreSQL.

mod sqlite;

pub use sqlite::SqliteStore;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused the operation.
    #[error("metadata store: {context}")]
    Sql {
        /// What was being done.
        context: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

/// A bootstrap token as stored (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Role bound to nodes enrolled with it, if any.
    pub role: Option<String>,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
    /// Enrollments left.
    pub uses_left: i64,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// Serial, lower-case hex.
    pub serial: String,
    /// Node name.
    pub certname: String,
    /// When issued, Unix ms.
    pub issued_at_ms: i64,
    /// Expiry, Unix ms.
    pub not_after_ms: i64,
    /// Revoked certificates are refused.
    pub revoked: bool,
}

/// A node in the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Node name (certificate common name).
    pub certname: String,
    /// Role bound by its enrollment token, if any.
    pub bound_role: Option<String>,
    /// Role of its latest catalog.
    pub role: Option<String>,
    /// Enrollment time, Unix ms.
    pub enrolled_at_ms: i64,
    /// Last catalog request, Unix ms.
    pub last_seen_ms: i64,
    /// Its private IP from the last facts.
    pub ip: Option<String>,
}

/// One stored catalog version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    /// Version.
    pub version: u64,
    /// Content digest (`sha256:…`).
    pub digest: String,
    /// The signed JSON bytes.
    pub catalog_json: Vec<u8>,
    /// Signature over `catalog_json`.
    pub signature: Vec<u8>,
}

/// Summary of a node's last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// "unchanged", "changed" or "failed".
    pub status: String,
    /// When received, Unix ms.
    pub received_at_ms: i64,
}

/// An imported product tree (one update level of one version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRecord {
    /// Product name (`wso2is`, `jdk`).
    pub name: String,
    /// Product version.
    pub version: String,
    /// Update level (0 = GA).
    pub level: u32,
    /// Tree digest (`sha256:…` of the manifest).
    pub digest: String,
    /// Number of files.
    pub files: u64,
    /// Total file bytes.
    pub size: u64,
    /// Import time, Unix ms.
    pub imported_at_ms: i64,
}

/// A single file a module needs beside the pack (a JDBC driver jar, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    /// The name modules refer to it by.
    pub name: String,
    /// Content digest (`sha256:…`).
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Import time, Unix ms.
    pub imported_at_ms: i64,
}

/// A node's restart lease: its server may be down for a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The group (cluster).
    pub group: String,
    /// The holder.
    pub certname: String,
    /// The service it restarts.
    pub service: String,
    /// When granted (renewals keep the first time), Unix ms.
    pub acquired_at_ms: i64,
    /// When it lapses unless given back or renewed, Unix ms.
    pub expires_at_ms: i64,
}
