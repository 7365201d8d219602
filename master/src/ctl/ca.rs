//! `masterctl ca show`.

use rigger_common::proto::ShowCaRequest;

use super::{Ctl, status};

/// The CA certificate (PEM) and its fingerprint.
pub async fn show(ctl: &Ctl) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .show_ca(ShowCaRequest {})
        .await
        .map_err(status)?
        .into_inner();
    Ok(format!(
        "{}fingerprint: {}\n",
        reply.ca_cert_pem, reply.fingerprint
    ))
}
