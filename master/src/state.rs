//! What the master's domain operations share: the stores (as trait
//! objects), the CA, the signing key, the compiler and the locks that
//! serialise version assignment and imports on this master.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tokio::sync::Mutex;

use crate::ca::CertificateAuthority;
use crate::compiler::Compiler;
use crate::content::blobs::BlobStore;
use crate::store::MetaStore;

/// Everything the master's operations share.
pub struct MasterState {
    /// Metadata store.
    pub store: Arc<dyn MetaStore>,
    /// Content store (product files, manifests, artifacts, secret files).
    pub blobs: Arc<dyn BlobStore>,
    /// The CA.
    pub ca: CertificateAuthority,
    /// When this master started, Unix ms.
    pub started_at_ms: i64,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
    /// The lineage of catalog versions this data directory issues
    /// ([`crate::epoch`]).
    pub epoch: String,
    /// Which metadata and content stores it uses, as screens show them
    /// (never a password).
    pub stores: (String, String),
    /// The revocation list the TLS verifier checks, and the connections
    /// a revocation closes.
    pub revocation: crate::revocation::Revocation,
    /// Catalog signing key.
    pub signing_key: SigningKey,
    /// Catalog compiler.
    pub compiler: Compiler,
    /// The imported packs' own files, which edits apply to.
    pub pack_files: crate::content::pack_files::ImportedPackFiles,
    /// Tree manifests as they travel gzip-encoded, kept for the next node.
    pub encoded_manifests: crate::content::encoded::EncodedManifests,
    /// Serialises catalog version assignment.
    pub catalog_lock: Mutex<()>,
    /// Serialises imports (level numbering).
    pub import_lock: Mutex<()>,
    /// The settings a SIGHUP reloads ([`MasterState::settings`]).
    pub live: std::sync::RwLock<LiveSettings>,
    /// Budget of enrollment attempts per address, throttled refusal log.
    pub enroll_throttle: crate::throttle::EnrollThrottle,
    /// New catalog versions, by node: what each node's `WatchCatalog`
    /// streams push.
    pub notices: std::sync::Arc<crate::notices::CatalogNotices>,
    /// Cancelled when the master stops: long-lived streams end with it.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Something every catalog is compiled from changed (the site, a
    /// module, a promotion): the live nodes are recompiled.
    pub site_changed: tokio::sync::Notify,
    /// When the site or a module last changed on disk (compiles wait for
    /// the files to stop changing).
    pub site_quiet: crate::refresh::SiteQuiet,
    /// What `/metrics` shows.
    pub metrics: crate::metrics::MasterMetrics,
    /// How many catalog requests and blob streams are served at once.
    pub work: crate::overload::WorkLimits,
    /// The site revision's file part, read once per change.
    pub revision_cache: crate::revision::RevisionCache,
    /// Each node's last compile inputs and content (a request with the
    /// same inputs takes the stored version).
    pub compile_memo: crate::compile_memo::CompileMemo,
}

/// Shared handle to the state.
pub type SharedState = Arc<MasterState>;

/// The settings that take effect without a restart: read from the
/// configuration at start and again on each SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSettings {
    /// Nodes not seen for this long leave their peers' lists.
    pub peer_timeout: std::time::Duration,
    /// What an imported archive may hold.
    pub import_limits: crate::content::archive::ArchiveLimits,
    /// How much report and catalog history is kept.
    pub retention: crate::retention::Retention,
    /// What an EC2 identity enrollment is checked against.
    pub ec2: crate::ec2::Ec2Settings,
    /// How long a catalog is valid without being signed again.
    pub catalog_ttl: std::time::Duration,
}

impl LiveSettings {
    /// The live part of a configuration.
    pub fn of(config: &crate::config::MasterConfig) -> Self {
        Self {
            peer_timeout: config.peer_timeout,
            import_limits: config.import_limits,
            retention: config.retention.clone(),
            ec2: config.ec2.clone(),
            catalog_ttl: config.catalog_ttl,
        }
    }
}

impl MasterState {
    /// The live settings now.
    pub fn settings(&self) -> LiveSettings {
        self.live.read().expect("live settings").clone()
    }

    /// Nodes heard from since this moment (Unix ms) are live: within the
    /// peer timeout.
    pub fn live_since_ms(&self) -> i64 {
        let timeout = self.live.read().expect("live settings").peer_timeout;
        rigger_common::time::now_ms() - timeout.as_millis() as i64
    }
}
