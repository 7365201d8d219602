//! `masterctl lease list | free`.

use rigger_common::proto::{FreeLeaseRequest, ListLeasesRequest};
use rigger_common::time::format_ms;

use super::{Ctl, render, status, table};

/// The restart leases nodes hold now.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_leases(ListLeasesRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if json {
        let leases: Vec<_> = reply
            .leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "cluster": l.group,
                    "certname": l.certname,
                    "service": l.service,
                    "acquired_at_ms": l.acquired_at_ms,
                    "expires_at_ms": l.expires_at_ms,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&leases)?));
    }
    if reply.leases.is_empty() {
        return Ok("no node holds a restart lease\n".into());
    }
    let mut t = table(&["CLUSTER", "NODE", "SERVICE", "SINCE", "EXPIRES"]);
    for l in reply.leases {
        t.add_row(vec![
            l.group,
            l.certname,
            l.service,
            format_ms(l.acquired_at_ms),
            format_ms(l.expires_at_ms),
        ]);
    }
    Ok(render(t, &[]))
}

/// Frees a node's lease before it lapses.
pub async fn free(ctl: &Ctl, cluster: &str, node: &str) -> anyhow::Result<String> {
    ctl.client()
        .free_lease(FreeLeaseRequest {
            group: cluster.to_string(),
            certname: node.to_string(),
        })
        .await
        .map_err(status)?;
    Ok(format!(
        "the restart lease of {node} in cluster {cluster} is free\n"
    ))
}
