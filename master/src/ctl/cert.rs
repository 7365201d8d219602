//! `masterctl cert list | revoke | pending | sign`.

use rigger_common::proto::{
    CertInfo, ListCertsRequest, ListPendingRequest, RevokeCertRequest, SignPendingRequest,
};
use rigger_common::time::{format_ms, now_ms};

use super::{Ctl, render, status, table};

/// Issued certificates, newest first.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_certs(ListCertsRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let now = now_ms();
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
                    "revoked_at_ms": (c.revoked_at_ms > 0).then_some(c.revoked_at_ms),
                    "state": state_of(c, now),
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&certs)?));
    }
    let mut t = table(&["CERTNAME", "SERIAL", "ISSUED", "EXPIRES", "STATE"]);
    for c in &reply.certs {
        let state = match state_of(c, now) {
            "revoked" if c.revoked_at_ms > 0 => format!("revoked {}", format_ms(c.revoked_at_ms)),
            "valid" => format!(
                "valid ({} days left)",
                (c.not_after_ms - now) / (24 * 3600 * 1000)
            ),
            other => other.to_string(),
        };
        t.add_row(vec![
            c.certname.clone(),
            c.serial.clone(),
            format_ms(c.issued_at_ms),
            format_ms(c.not_after_ms),
            state,
        ]);
    }
    Ok(render(t, &[]))
}

/// A certificate's state: revoked, expired or valid.
fn state_of(c: &CertInfo, now_ms: i64) -> &'static str {
    if c.revoked {
        "revoked"
    } else if c.not_after_ms <= now_ms {
        "expired"
    } else {
        "valid"
    }
}

/// Revokes a node's certificates (by certname or serial).
pub async fn revoke(ctl: &Ctl, name: &str) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .revoke_cert(RevokeCertRequest {
            name: name.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(format!(
        "revoked {} certificate(s) of {} ({}): refused from the next TLS handshake; {} open connection(s) closed\n",
        reply.serials.len(),
        reply.certname,
        reply.serials.join(", "),
        reply.connections_closed
    ))
}

/// EC2 enrollments waiting for an operator.
pub async fn pending(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_pending(ListPendingRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let field = |document: &str, key: &str| -> String {
        serde_json::from_str::<serde_json::Value>(document)
            .ok()
            .and_then(|d| d.get(key).and_then(|v| v.as_str()).map(str::to_string))
            .unwrap_or_default()
    };
    if json {
        let listed: Vec<_> = reply
            .pending
            .iter()
            .map(|p| {
                serde_json::json!({
                    "certname": p.certname,
                    "asked_role": (!p.asked_role.is_empty()).then_some(&p.asked_role),
                    "document": serde_json::from_str::<serde_json::Value>(&p.document).unwrap_or_default(),
                    "why": p.why,
                    "remote": p.remote,
                    "received_at_ms": p.received_at_ms,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&listed)?));
    }
    let mut t = table(&[
        "INSTANCE",
        "ACCOUNT",
        "REGION",
        "IMAGE",
        "ADDRESS",
        "ASKED ROLE",
        "SINCE",
        "WHY",
    ]);
    for p in &reply.pending {
        t.add_row(vec![
            p.certname.clone(),
            field(&p.document, "accountId"),
            field(&p.document, "region"),
            field(&p.document, "imageId"),
            field(&p.document, "privateIp"),
            p.asked_role.clone(),
            format_ms(p.received_at_ms),
            p.why.clone(),
        ]);
    }
    Ok(render(t, &[]))
}

/// Signs a waiting enrollment.
pub async fn sign(ctl: &Ctl, name: &str, role: Option<&str>) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .sign_pending(SignPendingRequest {
            certname: name.to_string(),
            role: role.unwrap_or_default().to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(format!(
        "{name} enrolled with role {}: it gets its certificate when it next asks\n",
        reply.role
    ))
}
