//! Remote administrators: `masterctl admin issue NAME` (on the master, as
//! root) signs a certificate named `admin/NAME` for a key made where
//! masterctl runs; with it, `masterctl --master URL --cert … --key … --ca …`
//! reaches the admin API over the node listener's TLS. The `/` keeps admin
//! names apart from node certnames (which may not hold one); admin
//! certificates are listed, revoked and refused at the handshake like
//! nodes'; node RPCs refuse them, and the admin API refuses node
//! certificates.

use rigger_common::time::now_ms;

use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::CertRecord;

/// The prefix of an admin certificate's common name.
const PREFIX: &str = "admin/";

/// The administrator an admin certificate's common name names, if it is
/// one.
pub fn name_of(common_name: &str) -> Option<&str> {
    common_name.strip_prefix(PREFIX).filter(|n| !n.is_empty())
}

/// Signs `csr_pem` as the admin certificate of `name` (letters, digits,
/// `.`, `-`, `_`); returns the certificate and the CA, PEM.
pub async fn issue(state: &MasterState, name: &str, csr_pem: &str) -> Result<(String, String)> {
    crate::enrollment::validate_certname(name)?;
    let certname = format!("{PREFIX}{name}");
    let issued = state
        .ca
        .sign_node_csr(csr_pem, &certname)
        .map_err(|e| Error::InvalidArgument(rigger_common::error_chain(&e)))?;
    state
        .store
        .record_cert(&CertRecord::issued(&certname, &issued, now_ms()))
        .await?;
    tracing::warn!(admin = %name, serial = %issued.serial, "admin certificate issued");
    Ok((issued.pem, state.ca.trusted_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_names_never_look_like_nodes() {
        assert_eq!(name_of("admin/alice"), Some("alice"));
        assert_eq!(name_of("admin/"), None);
        assert_eq!(name_of("i-0abc"), None);
        assert!(crate::enrollment::validate_certname("admin/alice").is_err());
    }
}
