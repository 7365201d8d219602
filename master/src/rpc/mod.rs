//! gRPC handlers: the master's door to the wire. Each handler
//! authenticates the caller, converts the request to domain types, calls a
//! domain module and converts the answer back; [`Error`] kinds map to gRPC
//! statuses here, in one place. Enrollment needs no client certificate;
//! catalogs, reports, leases and content do; the admin API is served on a
//! root-only Unix socket.

pub mod admin;
pub mod catalog;
pub mod content;
pub mod enrollment;

use rigger_common::tls::PeerIdentity;
use tonic::{Request, Status};

use crate::error::Error;
pub use crate::state::{MasterState, SharedState};
use crate::store::StoreError;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let text = error_chain(&err);
        match err {
            Error::Unauthenticated(_) => Status::unauthenticated(text),
            Error::PermissionDenied(_) => Status::permission_denied(text),
            Error::InvalidArgument(_) => Status::invalid_argument(text),
            Error::FailedPrecondition(_) => Status::failed_precondition(text),
            Error::NotFound(_) => Status::not_found(text),
            Error::AlreadyExists(_) => Status::already_exists(text),
            Error::ResourceExhausted(_) => Status::resource_exhausted(text),
            Error::Store(_) | Error::Blobs(_) | Error::Internal(_) => {
                tracing::error!(error = %text, "internal failure");
                Status::internal(text)
            }
        }
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        Error::Store(err).into()
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
    Ok(node_cert(state, request, rpc).await?.certname)
}

/// [`authenticated_cert`], refusing an admin certificate: node RPCs are
/// for nodes.
pub async fn node_cert<T>(
    state: &MasterState,
    request: &Request<T>,
    rpc: &str,
) -> Result<crate::store::CertRecord, Status> {
    let cert = authenticated_cert(state, request, rpc).await?;
    if crate::admins::name_of(&cert.certname).is_some() {
        return Err(Status::permission_denied(format!(
            "{} is an admin certificate: {rpc} is for nodes",
            cert.certname
        )));
    }
    Ok(cert)
}

/// The record of the calling node's verified client certificate, which
/// must be one this master issued (to the name it carries) and has not
/// revoked.
pub async fn authenticated_cert<T>(
    state: &MasterState,
    request: &Request<T>,
    rpc: &str,
) -> Result<crate::store::CertRecord, Status> {
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
        Some(record) if record.certname == certname => Ok(record),
        _ => Err(Status::permission_denied(format!(
            "certificate {serial} of node {certname} is not in this master's records"
        ))),
    }
}
