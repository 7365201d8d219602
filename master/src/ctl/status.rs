//! `masterctl status`: the master at a glance, with what needs the
//! operator's attention first (a CA near its end, certificates nodes have
//! not renewed).

use rigger_common::proto::{ListCertsRequest, ShowStatusRequest};
use rigger_common::time::{format_ms, now_ms};

use super::{Ctl, status};

/// The CA is flagged this long before it expires.
const CA_WARNING_DAYS: i64 = 90;
/// A node certificate this close to its end was not renewed in time.
const NOT_RENEWED_DAYS: i64 = 7;

const DAY_MS: i64 = 86_400_000;

/// Node certificates by state.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
struct CertCounts {
    valid: usize,
    /// Valid but within [`NOT_RENEWED_DAYS`] of their end, and no newer
    /// valid certificate for the node: its agent has not renewed.
    not_renewed: Vec<String>,
    revoked: usize,
    expired: usize,
}

/// The master's status, human or JSON.
pub async fn show(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let s = ctl
        .client()
        .show_status(ShowStatusRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let certs = ctl
        .client()
        .list_certs(ListCertsRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .certs;
    let now = now_ms();
    let mut counts = CertCounts::default();
    for c in &certs {
        if c.revoked {
            counts.revoked += 1;
        } else if c.not_after_ms <= now {
            counts.expired += 1;
        } else {
            counts.valid += 1;
            let renewed = certs
                .iter()
                .any(|o| o.certname == c.certname && !o.revoked && o.not_after_ms > c.not_after_ms);
            if c.not_after_ms - now < NOT_RENEWED_DAYS * DAY_MS && !renewed {
                counts.not_renewed.push(c.certname.clone());
            }
        }
    }
    let ca_days = (s.ca_not_after_ms - now) / DAY_MS;
    if json {
        let value = serde_json::json!({
            "version": s.version,
            "started_at_ms": s.started_at_ms,
            "ca": {
                "subject": s.ca_subject,
                "not_after_ms": s.ca_not_after_ms,
                "fingerprint": s.ca_fingerprint,
                "next_fingerprint": (!s.next_ca_fingerprint.is_empty()).then_some(&s.next_ca_fingerprint),
                "expires_soon": ca_days < CA_WARNING_DAYS,
            },
            "revocation_list": {
                "number": s.crl_number,
                "issued_at_ms": s.crl_issued_at_ms,
                "next_update_ms": s.crl_next_update_ms,
                "revoked": s.crl_revoked,
            },
            "cert_lifetime_secs": s.cert_lifetime_secs,
            "stores": {
                "metadata": s.metadata_store,
                "content": s.content_store,
            },
            "certs": counts,
            "nodes": s.nodes,
        });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    let mut out = String::new();
    let mut say = |line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    say(format!(
        "master:    {} (running since {})",
        s.version,
        format_ms(s.started_at_ms)
    ));
    say(format!(
        "CA:        {} ({}), expires {} ({ca_days} days left)",
        s.ca_subject,
        s.ca_fingerprint,
        format_ms(s.ca_not_after_ms)
    ));
    say(format!(
        "stores:    metadata in {}; content in {}",
        s.metadata_store, s.content_store
    ));
    if !s.next_ca_fingerprint.is_empty() {
        say(format!(
            "rotation:  a new CA ({}) is introduced and announced to the nodes; `masterctl ca rotate --finish` once all have run",
            s.next_ca_fingerprint
        ));
    }
    if ca_days < CA_WARNING_DAYS {
        say(format!(
            "WARNING:   the CA expires in {ca_days} days: rotate it before (`masterctl ca rotate`, then `--finish`)"
        ));
    }
    say(format!(
        "revoked:   list #{} issued {} names {} certificate(s); checked at every TLS handshake, issued again daily (next update {}, never enforced)",
        s.crl_number,
        format_ms(s.crl_issued_at_ms),
        s.crl_revoked,
        format_ms(s.crl_next_update_ms)
    ));
    say(format!(
        "certs:     {} valid, {} revoked, {} expired; nodes renew theirs at two thirds of {}",
        counts.valid,
        counts.revoked,
        counts.expired,
        humantime::format_duration(std::time::Duration::from_secs(s.cert_lifetime_secs))
    ));
    if !counts.not_renewed.is_empty() {
        say(format!(
            "WARNING:   not renewed and expiring within {NOT_RENEWED_DAYS} days: {} (is the agent running? `agentctl status` on the node)",
            counts.not_renewed.join(", ")
        ));
    }
    say(format!("nodes:     {}", s.nodes));
    Ok(out)
}
