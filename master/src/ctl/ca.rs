//! `masterctl ca show | rotate`.

use rigger_common::proto::{RotateCaRequest, ShowCaRequest};

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

/// Introduces a new CA, or finishes a rotation.
pub async fn rotate(ctl: &Ctl, finish: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .rotate_ca(RotateCaRequest { finish })
        .await
        .map_err(status)?
        .into_inner();
    Ok(if finish {
        format!(
            "the new CA ({}) signs from the master's next start: restart it now; the old CA stays trusted for the certificates it signed. New nodes pin the new fingerprint (--ca-fingerprint {}).\n",
            reply.fingerprint, reply.fingerprint
        )
    } else {
        format!(
            "a new CA ({}) is introduced: every node trusts it from its next run. When all have run, `masterctl ca rotate --finish` and restart the master.\n",
            reply.fingerprint
        )
    })
}
