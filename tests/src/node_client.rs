//! Calls to the master as a node would make them, with a chosen client
//! certificate (or none): what tests of refusals need.

use std::sync::Arc;
use std::time::Duration;

use rigger_common::grpc::{MasterAddress, tls_channel};
use rigger_common::proto::catalog_service_client::CatalogServiceClient;
use rigger_common::proto::enrollment_service_client::EnrollmentServiceClient;
use rigger_common::proto::{GetCatalogRequest, RenewRequest};
use rigger_common::tls::{ClientIdentity, client_config};

/// Asks for a catalog over a fresh connection trusting `ca_pem`, as
/// `identity`; the error is the gRPC code and the whole error chain.
pub async fn get_catalog(
    master_url: &str,
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<(), String> {
    CatalogServiceClient::new(channel(master_url, ca_pem, identity).await?)
        .get_catalog(GetCatalogRequest::default())
        .await
        .map(|_| ())
        .map_err(|s| status_text(&s))
}

/// A channel to the master trusting `ca_pem`, presenting `identity`.
pub async fn channel(
    master_url: &str,
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<tonic::transport::Channel, String> {
    let config = client_config(ca_pem, identity).map_err(|e| e.to_string())?;
    let master = MasterAddress::parse(master_url).map_err(|e| e.to_string())?;
    tls_channel(&master, Arc::new(config), Duration::from_secs(10))
        .await
        .map_err(|e| rigger_common::error_chain(&e))
}

fn status_text(status: &tonic::Status) -> String {
    format!(
        "{:?}: {}",
        status.code(),
        rigger_common::error_chain(status)
    )
}

/// Asks the master, as `identity`, to renew a certificate for `certname`
/// with a new key; returns the new certificate.
pub async fn renew(
    master_url: &str,
    ca_pem: &str,
    identity: &ClientIdentity,
    certname: &str,
) -> Result<String, String> {
    let (_key, csr_pem) = new_key_and_csr(certname)?;
    EnrollmentServiceClient::new(channel(master_url, ca_pem, Some(identity)).await?)
        .renew(RenewRequest { csr_pem })
        .await
        .map(|reply| reply.into_inner().cert_pem)
        .map_err(|s| status_text(&s))
}

/// A new key and a PEM certificate request for `certname`, as a node
/// makes them to enroll or renew.
pub fn new_key_and_csr(certname: &str) -> Result<(rcgen::KeyPair, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, certname);
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| e.to_string())?;
    Ok((key, csr_pem))
}

/// [`renew`] from a test that is not async.
pub fn renew_blocking(
    master_url: &str,
    ca_pem: &str,
    identity: &ClientIdentity,
    certname: &str,
) -> Result<String, String> {
    runtime()?.block_on(renew(master_url, ca_pem, identity, certname))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// [`get_catalog`] from a test that is not async.
pub fn get_catalog_blocking(
    master_url: &str,
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<(), String> {
    runtime()?.block_on(get_catalog(master_url, ca_pem, identity))
}
