//! gRPC handlers: enrollment (no client certificate needed), catalogs and
//! reports (client certificate required), and the admin API (Unix socket).

pub mod admin;
pub mod catalog;
pub mod content;
pub mod enrollment;
pub mod lease;

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rigger_common::tls::PeerIdentity;
use tokio::sync::Mutex;
use tonic::{Request, Status};

use crate::ca::CertificateAuthority;
use crate::compiler::Compiler;
use crate::store::{SqliteStore, StoreError};

/// Everything the handlers share.
pub struct MasterState {
    /// Metadata store.
    pub store: SqliteStore,
    /// The CA.
    pub ca: CertificateAuthority,
    /// Catalog signing key.
    pub signing_key: SigningKey,
    /// Catalog compiler.
    pub compiler: Compiler,
    /// Serialises catalog version assignment.
    pub catalog_lock: Mutex<()>,
    /// Content store (product files, manifests).
    pub blobs: crate::content::LocalBlobStore,
    /// Serialises imports (level numbering).
    pub import_lock: Mutex<()>,
    /// Nodes not seen for this long leave their peers' lists.
    pub peer_timeout: std::time::Duration,
}

/// Shared handle to the state.
pub type SharedState = Arc<MasterState>;

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %error_chain(&err), "metadata store failed");
        Status::internal(error_chain(&err))
    }
}

pub use rigger_common::error_chain;

/// The certname of the calling node: the common name of its verified client
/// certificate, which must be one this master issued and has not revoked.
pub async fn authenticated_node<T>(
    state: &MasterState,
    request: &Request<T>,
    rpc: &str,
) -> Result<String, Status> {
    let certs = request
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.certs.clone())
        .ok_or_else(|| {
            Status::unauthenticated(format!(
                "{rpc} requires a client certificate signed by this master's CA: enroll first with a bootstrap token"
            ))
        })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
    let certname = crate::ca::common_name(leaf)
        .ok_or_else(|| Status::unauthenticated("client certificate has no common name"))?;
    let serial = crate::ca::serial_of(leaf)
        .ok_or_else(|| Status::unauthenticated("client certificate cannot be parsed"))?;
    match state.store.cert(&serial).await? {
        Some(record) if record.revoked => Err(Status::permission_denied(format!(
            "certificate {serial} of node {certname} has been revoked"
        ))),
        Some(record) if record.certname == certname => Ok(certname),
        _ => Err(Status::permission_denied(format!(
            "certificate {serial} of node {certname} is not in this master's records"
        ))),
    }
}
