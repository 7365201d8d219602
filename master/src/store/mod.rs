//! The master's metadata: tokens, certificates, node inventory, catalog
//! history, reports, imported trees and artifacts, restart leases. Behind
//! the [`MetaStore`] trait; [`SqliteStore`] is the embedded default,
//! [`PostgresStore`] what several masters share, and every backend passes
//! the one conformance suite (`conformance.rs`).
//! Records come back decoded (digests as [`Digest`], catalogs as signed
//! bytes with their typed digest): a row that does not decode is an error.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod meta;
pub mod migrate;
mod postgres;
mod sqlite;

use rigger_common::digest::Digest;
use rigger_common::signing::SignedCatalog;

pub use meta::MetaStore;
pub use postgres::{PostgresSettings, PostgresStore};
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
    /// The schema could not be brought up to date.
    #[error("metadata store: cannot migrate the schema")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Another master stored this catalog version of the node first.
    #[error("metadata store: catalog version {version} of {certname} is taken")]
    VersionTaken {
        /// The node.
        certname: String,
        /// The version.
        version: u64,
    },
    /// A stored value does not decode (a damaged or foreign database).
    #[error("metadata store: {what} is corrupt: {message}")]
    Corrupt {
        /// What was read ("the digest of tree wso2is 5.11.0 level 2").
        what: String,
        /// Why it does not decode.
        message: String,
    },
}

impl StoreError {
    /// A stored value that does not decode.
    pub fn corrupt(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// A database failure while doing `context` ("store a catalog").
pub(crate) fn sql(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Sql { context, source }
}

/// Parses a stored digest, naming what it belongs to when it does not parse.
pub fn stored_digest(text: &str, what: impl FnOnce() -> String) -> Result<Digest, StoreError> {
    Digest::parse(text).map_err(|e| StoreError::corrupt(what(), e))
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
    /// When an operator revoked it, Unix ms.
    pub revoked_at_ms: Option<i64>,
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
    /// When it was revoked, Unix ms (0: not revoked, or before this was
    /// recorded).
    pub revoked_at_ms: i64,
    /// The certificate, PEM ("" for certificates issued before it was kept).
    pub cert_pem: String,
}

impl CertRecord {
    /// The record of a certificate the CA just issued to `certname`.
    pub fn issued(certname: &str, issued: &crate::ca::IssuedCert, now_ms: i64) -> Self {
        Self {
            serial: issued.serial.clone(),
            certname: certname.to_string(),
            issued_at_ms: now_ms,
            not_after_ms: issued.not_after_ms,
            revoked: false,
            revoked_at_ms: 0,
            cert_pem: issued.pem.clone(),
        }
    }
}

/// An enrollment waiting for an operator's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEnrollment {
    /// The name it asks for (its instance id).
    pub certname: String,
    /// Its CSR.
    pub csr_pem: String,
    /// The role it asked for, if any.
    pub asked_role: Option<String>,
    /// Its verified instance identity document (JSON).
    pub document: String,
    /// Why no rule accepted it.
    pub why: String,
    /// Where it came from.
    pub remote: String,
    /// When it last asked, Unix ms.
    pub received_at_ms: i64,
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
    /// Why the master could not give it a catalog the last time it asked
    /// ("" when it could).
    pub catalog_error: String,
}

/// What every master serving one fleet must hold alike, as recorded by
/// the first master on the store: never a secret, only names of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetKeys {
    /// The CA certificate's sha256 fingerprint (what nodes pin).
    pub ca: String,
    /// The catalog signing key's public half (what nodes verify with).
    pub signing: String,
    /// A keyed digest by the restart key (catalogs compiled anywhere
    /// restart the same servers).
    pub restart: String,
    /// The lineage of catalog versions ([`crate::epoch`]).
    pub epoch: String,
}

/// Held while a master decides which nodes a rollout admits: every master
/// on the store waits for it. Dropping it lets the next one decide.
pub struct RolloutsLock {
    /// What holds the lock (a connection); kept only to be dropped.
    _held: Option<Box<dyn std::any::Any + Send>>,
}

impl RolloutsLock {
    /// No lock to hold: a store only one master uses (its own catalog
    /// lock serialises its decisions).
    pub fn local() -> Self {
        Self { _held: None }
    }

    /// A lock that lasts as long as `held` does.
    pub fn holding(held: Box<dyn std::any::Any + Send>) -> Self {
        Self { _held: Some(held) }
    }
}

/// New catalog versions announced by other masters: (certname, version).
pub type CatalogAnnouncements =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = (String, u64)> + Send>>;

/// The catalog a node says it applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedCatalog {
    /// The epoch of the master that issued it ("" before epochs).
    pub epoch: String,
    /// Its version.
    pub version: u64,
    /// Its content digest.
    pub digest: String,
}

/// One stored catalog version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    /// Version.
    pub version: u64,
    /// Content digest.
    pub digest: Digest,
    /// The catalog as signed (JSON bytes and signature).
    pub signed: SignedCatalog,
}

impl CatalogRecord {
    /// The catalog itself, decoded from the signed bytes.
    pub fn catalog(&self) -> Result<rigger_common::catalog::Catalog, StoreError> {
        serde_json::from_slice(&self.signed.catalog_json)
            .map_err(|e| StoreError::corrupt(format!("catalog version {}", self.version), e))
    }

    /// The site revision (and git commit) it was compiled from, read
    /// without decoding the content ("" for catalogs made before).
    pub fn site_revision(&self) -> (String, Option<String>) {
        #[derive(serde::Deserialize)]
        struct Revision {
            #[serde(default)]
            site_revision: String,
            #[serde(default)]
            site_commit: Option<String>,
        }
        serde_json::from_slice::<Revision>(&self.signed.catalog_json)
            .map(|r| (r.site_revision, r.site_commit))
            .unwrap_or_default()
    }
}

/// One version in a node's catalog history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogVersion {
    /// Version.
    pub version: u64,
    /// Content digest.
    pub digest: Digest,
    /// When it was made, Unix ms.
    pub created_at_ms: i64,
    /// The site revision it was compiled from ("" before revisions).
    pub site_revision: String,
    /// The site's git commit, when the site is a checkout.
    pub site_commit: Option<String>,
}

/// A run report as the master keeps it (the agent's report, as sent).
pub type ReportRecord = rigger_common::report::RunReport;

/// What recording an imported tree did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeInsert {
    /// A new level was recorded.
    New,
    /// The same content was recorded at that level already.
    Same,
    /// That level holds other content (its digest): nothing was recorded.
    Conflict(Digest),
}

/// Summary of a node's last report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// "unchanged", "changed", "noop" or "failed".
    pub status: String,
    /// When received, Unix ms.
    pub received_at_ms: i64,
    /// The catalog version the run applied (or, for a noop, planned).
    pub catalog_version: u64,
    /// Resources changed (pending, for a noop).
    pub changed: u32,
    /// Resources failed.
    pub failed: u32,
    /// Whether it was a noop run.
    pub noop: bool,
    /// The catalog version the node's last run that was not a noop
    /// applied (0: none).
    pub applied_version: u64,
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
    /// Tree digest (of the manifest).
    pub digest: Digest,
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
    /// Content digest.
    pub digest: Digest,
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

/// What a node last said about one of its services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealthRecord {
    /// The node.
    pub certname: String,
    /// The service resource's name.
    pub service: String,
    /// Its restart group (the cluster; "" when uncoordinated).
    pub group: String,
    /// Whether its process runs.
    pub running: bool,
    /// Whether it answers its readiness check.
    pub ready: bool,
    /// Since when it has been ready without a break (the store keeps the
    /// first time of a ready streak), Unix ms.
    pub ready_since_ms: Option<i64>,
    /// When the node said so, Unix ms.
    pub reported_at_ms: i64,
    /// Why it is not ready (the run's error, the server's last output).
    pub detail: String,
    /// What the running server missed: it started before its peer lists
    /// changed ("" when it did not).
    pub peers_changed: String,
}

/// The readiness rule a restart lease is granted under (the
/// PodDisruptionBudget rule): after the requester goes down, at least
/// `min_ready` other nodes of the group must be available — ready, heard
/// from since `fresh_since_ms`, ready since at least `ready_before_ms`
/// (the settle time) and not holding a lease themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Nodes that must stay available (`None`: all but `max_down`).
    pub min_ready: Option<u32>,
    /// Health older than this is no longer believed.
    pub fresh_since_ms: i64,
    /// A node ready only since after this has not settled yet.
    pub ready_before_ms: i64,
}

/// A lease decision and what it was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseDecision {
    /// Whether the node holds the lease now.
    pub granted: bool,
    /// The group's holders afterwards.
    pub holders: Vec<LeaseRecord>,
    /// Other nodes of the group that count as available.
    pub available: Vec<String>,
    /// Other nodes of the group that do not, each with why.
    pub unavailable: Vec<String>,
    /// The nodes that must stay available.
    pub min_ready: u32,
}

/// The update level promoted to an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionRecord {
    /// Product name.
    pub name: String,
    /// Product version.
    pub version: String,
    /// The environment (`environments/<env>.toml`).
    pub environment: String,
    /// The level its roles run.
    pub level: u32,
    /// When, Unix ms.
    pub promoted_at_ms: i64,
}

/// A cluster's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRecord {
    /// The cluster (the restart group).
    pub cluster: String,
    /// The configuration revision it rolls out.
    pub revision: String,
    /// `running`, `paused`, `halted`, `aborted` or `done`.
    pub state: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms.
    pub updated_at_ms: i64,
    /// Why it halted.
    pub reason: String,
}

/// A node of a cluster a rollout reached (or held back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutNode {
    /// The cluster.
    pub cluster: String,
    /// The node.
    pub certname: String,
    /// `waiting` (held back), `admitted`, `applied`, `failed` or
    /// `rolled back`.
    pub state: String,
    /// The catalog version that carried the change (0 while waiting).
    pub version: u64,
    /// Its version before.
    pub previous_version: u64,
    /// Since when it is in this state, Unix ms.
    pub since_ms: i64,
    /// The error it failed with.
    pub error: String,
}
