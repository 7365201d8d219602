//! `masterctl cert list`.

use rigger_common::proto::ListCertsRequest;
use rigger_common::time::format_ms;

use super::{Ctl, render, status, table};

/// Issued certificates, newest first.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_certs(ListCertsRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if json {
        let certs: Vec<_> = reply
            .certs
            .iter()
            .map(|c| {
                serde_json::json!({
                    "certname": c.certname,
                    "serial": c.serial,
                    "issued_at_ms": c.issued_at_ms,
                    "not_after_ms": c.not_after_ms,
                    "revoked": c.revoked,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&certs)?));
    }
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
