//! `masterctl node list | remove`.

use rigger_common::proto::{ListNodesRequest, RemoveNodeRequest};
use rigger_common::time::format_ms;

use super::{Ctl, render, status, table};

/// Enrolled nodes, as a table or JSON.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_nodes(ListNodesRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if json {
        let nodes: Vec<_> = reply
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "certname": n.certname,
                    "role": n.role,
                    "ip": n.ip,
                    "enrolled_at_ms": n.enrolled_at_ms,
                    "last_seen_ms": n.last_seen_ms,
                    "catalog_version": n.catalog_version,
                    "last_run_status": n.last_run_status,
                    "last_report_ms": n.last_report_ms,
                    "services": n.services,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&nodes)?));
    }
    let mut t = table(&[
        "CERTNAME",
        "ROLE",
        "IP",
        "CATALOG",
        "LAST RUN",
        "LAST SEEN",
        "SERVICES",
    ]);
    for n in reply.nodes {
        let last_run = if n.last_run_status.is_empty() {
            "-".to_string()
        } else {
            n.last_run_status
        };
        t.add_row(vec![
            n.certname,
            n.role,
            n.ip,
            n.catalog_version.to_string(),
            last_run,
            format_ms(n.last_seen_ms),
            if n.services.is_empty() {
                "-".into()
            } else {
                rigger_common::text::printable(&n.services).into_owned()
            },
        ]);
    }
    Ok(render(t, &[3]))
}

/// Removes a node and revokes its certificate.
pub async fn remove(ctl: &Ctl, node: &str) -> anyhow::Result<String> {
    ctl.client()
        .remove_node(RemoveNodeRequest {
            certname: node.to_string(),
        })
        .await
        .map_err(status)?;
    Ok(format!(
        "{node} removed from the inventory; its certificate is revoked\n"
    ))
}
