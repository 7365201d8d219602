//! `masterctl catalog list | show | diff | rollback | unpin`.

use std::collections::BTreeMap;
use std::fmt::Write;

use rigger_common::catalog::{Catalog, Resource, ResourceSpec};
use rigger_common::proto::{
    ListCatalogsRequest, RollbackCatalogRequest, ShowCatalogRequest, UnpinCatalogRequest,
};
use rigger_common::time::format_ms;

use super::{Ctl, render, status, table};

/// The node's catalog JSON (redacted by the master), latest or `version`.
async fn fetch(ctl: &Ctl, node: &str, version: u64) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .show_catalog(ShowCatalogRequest {
            certname: node.to_string(),
            version,
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(reply.catalog_json)
}

/// A node's catalog versions, newest first, marking the latest, the one
/// it applied and the one it is pinned to.
pub async fn list(ctl: &Ctl, node: &str, limit: u32, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_catalogs(ListCatalogsRequest {
            certname: node.to_string(),
            limit,
        })
        .await
        .map_err(status)?
        .into_inner();
    let latest = reply.versions.first().map_or(0, |v| v.version);
    let marks = |version: u64| {
        let mut marks = Vec::new();
        if version == latest {
            marks.push("latest");
        }
        if version == reply.applied_version {
            marks.push("applied");
        }
        if version == reply.pinned_to {
            marks.push("pinned to");
        }
        marks
    };
    if json {
        let versions: Vec<_> = reply
            .versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "version": v.version,
                    "digest": v.digest,
                    "created_at_ms": v.created_at_ms,
                    "site_revision": v.site_revision,
                    "site_commit": (!v.site_commit.is_empty()).then_some(&v.site_commit),
                    "marks": marks(v.version),
                })
            })
            .collect();
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "node": node,
                "applied_version": reply.applied_version,
                "pinned_to": (reply.pinned_to > 0).then_some(reply.pinned_to),
                "versions": versions,
            }))?
        ));
    }
    if reply.versions.is_empty() {
        return Ok(format!("{node} has no catalog yet\n"));
    }
    let mut t = table(&["VERSION", "MADE", "SITE", "DIGEST", ""]);
    for v in &reply.versions {
        let site = match rigger_common::catalog::site_revision_text(
            &v.site_revision,
            Some(&v.site_commit),
        ) {
            none if none.is_empty() => "-".to_string(),
            site => site,
        };
        t.add_row(vec![
            v.version.to_string(),
            format_ms(v.created_at_ms),
            site,
            v.digest.clone(),
            marks(v.version).join(", "),
        ]);
    }
    Ok(render(t, &[0]))
}

/// A node's catalog: a summary, or the JSON as is.
pub async fn show(
    ctl: &Ctl,
    node: &str,
    version: Option<u64>,
    json: bool,
) -> anyhow::Result<String> {
    let text = fetch(ctl, node, version.unwrap_or(0)).await?;
    if json {
        return Ok(format!("{text}\n"));
    }
    Ok(summary(&serde_json::from_str(&text)?))
}

/// What changed between two versions of a node's catalog.
pub async fn diff(ctl: &Ctl, node: &str, a: u64, b: u64) -> anyhow::Result<String> {
    let old: Catalog = serde_json::from_str(&fetch(ctl, node, a).await?)?;
    let new: Catalog = serde_json::from_str(&fetch(ctl, node, b).await?)?;
    Ok(catalog_diff(&old, &new))
}

/// Pins a node to an earlier version's content.
pub async fn rollback(ctl: &Ctl, node: &str, to: u64) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .rollback_catalog(RollbackCatalogRequest {
            certname: node.to_string(),
            to_version: to,
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(format!(
        "{node} is pinned to the content of version {to}: new catalog version {} ({}); `masterctl catalog unpin {node}` to follow the site again\n",
        reply.version, reply.digest
    ))
}

/// Lets a pinned node follow the site again.
pub async fn unpin(ctl: &Ctl, node: &str) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .unpin_catalog(UnpinCatalogRequest {
            certname: node.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(if reply.was_pinned {
        format!("{node} follows the site again from its next run\n")
    } else {
        format!("{node} was not pinned\n")
    })
}

/// A per-resource diff of two (already redacted) catalogs.
pub fn catalog_diff(old: &Catalog, new: &Catalog) -> String {
    let index = |c: &Catalog| -> BTreeMap<String, Resource> {
        c.content
            .resources
            .iter()
            .map(|r| (r.id.clone(), r.clone()))
            .collect()
    };
    let (before, after) = (index(old), index(new));
    let mut out = format!(
        "catalog {} → {} of {} ({} → {})\n",
        old.version, new.version, new.node, old.digest, new.digest
    );
    let text = |r: &Resource| -> String {
        match &r.spec {
            ResourceSpec::File(f) if f.source.is_none() => {
                let mut header = f.clone();
                header.content = String::new();
                format!(
                    "{}\n{}",
                    serde_json::to_string_pretty(&header).unwrap_or_default(),
                    f.content
                )
            }
            _ => serde_json::to_string_pretty(r).unwrap_or_default() + "\n",
        }
    };
    let mut changed = 0;
    for (id, r) in &after {
        match before.get(id) {
            None => {
                changed += 1;
                let _ = writeln!(out, "+ added {} {id}", r.spec.kind());
            }
            Some(o) if o != r => {
                changed += 1;
                let _ = writeln!(out, "~ changed {} {id}:", r.spec.kind());
                let diff = similar::TextDiff::from_lines(&text(o), &text(r))
                    .unified_diff()
                    .context_radius(2)
                    .to_string();
                out.push_str(&diff);
            }
            Some(_) => {}
        }
    }
    for (id, r) in &before {
        if !after.contains_key(id) {
            changed += 1;
            let _ = writeln!(out, "- removed {} {id}", r.spec.kind());
        }
    }
    if changed == 0 {
        out.push_str("no resource changed\n");
    }
    out
}

/// A catalog's header and one line per resource.
fn summary(catalog: &Catalog) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node:     {}", catalog.node);
    let _ = writeln!(out, "version:  {}", catalog.version);
    let _ = writeln!(out, "digest:   {}", catalog.digest);
    let _ = writeln!(out, "compiled: {}", format_ms(catalog.compiled_at_ms));
    let site = rigger_common::catalog::site_revision_text(
        &catalog.site_revision,
        catalog.site_commit.as_deref(),
    );
    if !site.is_empty() {
        let _ = writeln!(out, "site:     revision {site}");
    }
    let _ = writeln!(
        out,
        "role:     {} ({})",
        catalog.content.role, catalog.content.profile
    );
    out.push_str("resources:\n");
    for r in &catalog.content.resources {
        let what = r
            .paths()
            .first()
            .map(|p| p.to_string())
            .unwrap_or_else(|| match &r.spec {
                ResourceSpec::Exec(e) => e.command.clone(),
                _ => String::new(),
            });
        let _ = writeln!(out, "  {:<10} {:<32} {}", r.spec.kind(), r.id, what);
    }
    out
}
