//! `masterctl cert list`.

use rigger_common::proto::ListCertsRequest;
use rigger_common::time::format_ms;

use super::{Ctl, render, status, table};

/// Issued certificates, newest first.
pub async fn list(ctl: &Ctl) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_certs(ListCertsRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let mut t = table(&["CERTNAME", "SERIAL", "ISSUED", "EXPIRES", "STATE"]);
    for c in reply.certs {
        let state = if c.revoked { "revoked" } else { "valid" };
        t.add_row(vec![
            c.certname,
            c.serial,
            format_ms(c.issued_at_ms),
            format_ms(c.not_after_ms),
            state.to_string(),
        ]);
    }
    Ok(render(t, &[]))
}
