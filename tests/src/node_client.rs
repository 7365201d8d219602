//! Calls to the master as a node would make them, with a chosen client
//! certificate (or none): what tests of refusals need.

use std::sync::Arc;
use std::time::Duration;

use rigger_common::grpc::{MasterAddress, tls_channel};
use rigger_common::proto::GetCatalogRequest;
use rigger_common::proto::catalog_service_client::CatalogServiceClient;
use rigger_common::tls::{ClientIdentity, client_config};

/// Asks for a catalog over a fresh connection trusting `ca_pem`, as
/// `identity`; the error is the gRPC code and the whole error chain.
pub async fn get_catalog(
    master_url: &str,
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<(), String> {
    let config = client_config(ca_pem, identity).map_err(|e| e.to_string())?;
    let master = MasterAddress::parse(master_url).map_err(|e| e.to_string())?;
    let channel = tls_channel(&master, Arc::new(config), Duration::from_secs(10))
        .await
        .map_err(|e| rigger_common::error_chain(&e))?;
    CatalogServiceClient::new(channel)
        .get_catalog(GetCatalogRequest::default())
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), rigger_common::error_chain(&s)))
}

/// [`get_catalog`] from a test that is not async.
pub fn get_catalog_blocking(
    master_url: &str,
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(get_catalog(master_url, ca_pem, identity))
}
