//! `masterctl node list | remove`.

use rigger_common::proto::{ListNodesRequest, RemoveNodeRequest, ShowNodeRequest};
use rigger_common::report::RunReport;
use rigger_common::text::printable;
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
                    "applied_version": n.applied_version,
                    "site_revision": n.site_revision,
                    "catalog_error": n.catalog_error,
                    "last_run_changed": n.last_run_changed,
                    "last_run_failed": n.last_run_failed,
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
        "SITE",
        "LAST RUN",
        "LAST SEEN",
        "SERVICES",
    ]);
    let mut notes = String::new();
    for n in reply.nodes {
        let mut last_run = match n.last_run_status.as_str() {
            "" => "-".to_string(),
            "noop" => format!("noop: {} pending", n.last_run_changed),
            "failed" => format!("failed ({})", n.last_run_failed),
            other => other.to_string(),
        };
        let applied = if n.applied_version == 0 {
            n.catalog_version
        } else {
            n.applied_version
        };
        let catalog = if applied == n.catalog_version {
            applied.to_string()
        } else {
            format!("{applied} (latest {})", n.catalog_version)
        };
        if !n.catalog_error.is_empty() {
            last_run.push_str(", no new catalog (see below)");
            notes.push_str(&format!(
                "{}: the master gives it no catalog, so it enforces its cached version {applied}: {}\n",
                n.certname,
                rigger_common::text::printable(&n.catalog_error)
            ));
        }
        t.add_row(vec![
            n.certname,
            n.role,
            n.ip,
            catalog,
            if n.site_revision.is_empty() {
                "-".into()
            } else {
                n.site_revision
            },
            last_run,
            format_ms(n.last_seen_ms),
            if n.services.is_empty() {
                "-".into()
            } else {
                rigger_common::text::printable(&n.services).into_owned()
            },
        ]);
    }
    Ok(render(t, &[3]) + &notes)
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

/// One node: its line, its last reports with each resource's outcome (and
/// diff), and its facts.
pub async fn show(ctl: &Ctl, node: &str, reports: u32, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .show_node(ShowNodeRequest {
            certname: node.to_string(),
            reports,
        })
        .await
        .map_err(status)?
        .into_inner();
    let facts: serde_json::Value = serde_json::from_str(&reply.facts_json).unwrap_or_default();
    let runs: Vec<(i64, RunReport)> = reply
        .reports
        .iter()
        .filter_map(|r| Some((r.received_at_ms, serde_json::from_str(&r.report_json).ok()?)))
        .collect();
    let n = reply.node.unwrap_or_default();
    if json {
        let reports: Vec<serde_json::Value> = runs
            .iter()
            .map(|(at, r)| {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                value["received_at_ms"] = (*at).into();
                value["status"] = r.status().into();
                value
            })
            .collect();
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "certname": n.certname,
                "role": n.role,
                "ip": n.ip,
                "catalog_version": n.catalog_version,
                "applied_version": n.applied_version,
                "site_revision": n.site_revision,
                "catalog_error": n.catalog_error,
                "last_seen_ms": n.last_seen_ms,
                "services": n.services,
                "facts": facts,
                "reports": reports,
            }))?
        ));
    }
    let mut out = format!(
        "node:      {}\nrole:      {}\nip:        {}\ncatalog:   applied {}, latest {}\nsite:      {}\nlast seen: {}\nservices:  {}\n",
        n.certname,
        n.role,
        n.ip,
        n.applied_version,
        n.catalog_version,
        if n.site_revision.is_empty() {
            "-"
        } else {
            &n.site_revision
        },
        format_ms(n.last_seen_ms),
        if n.services.is_empty() {
            "-"
        } else {
            &n.services
        },
    );
    if !n.catalog_error.is_empty() {
        out += &format!("NO CATALOG: {}\n", n.catalog_error);
    }
    for (at, r) in &runs {
        let why = if r.trigger.is_empty() {
            "run"
        } else {
            r.trigger.as_str()
        };
        out += &format!(
            "\n{} {} ({why}): catalog version {}, {} changed, {} failed{}\n",
            format_ms(*at),
            r.status(),
            r.catalog_version,
            r.changed,
            r.failed,
            if r.used_cached_catalog {
                ", cached catalog"
            } else {
                ""
            }
        );
        if !r.timings.is_empty() {
            out += &format!(
                "  took {} ms: {}\n",
                r.duration_ms,
                printable(&rigger_common::report::timings_line(&r.timings))
            );
        }
        for o in &r.resources {
            out += &format!("  {:<9} {}: {}\n", o.status, o.id, o.message);
            for line in o.diff.lines() {
                out += &format!("    {line}\n");
            }
        }
    }
    let interesting = ["ip", "hostname", "os", "ec2"];
    let shown: Vec<String> = interesting
        .iter()
        .filter_map(|k| facts.get(k).map(|v| format!("  {k}: {v}")))
        .collect();
    if !shown.is_empty() {
        out += &format!("\nfacts (`--json` has them all):\n{}\n", shown.join("\n"));
    }
    Ok(printable(&out).into_owned())
}
