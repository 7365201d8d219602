//! `masterctl product import | list`.

use std::fmt::Write;
use std::path::Path;

use rigger_common::proto::{ImportProductRequest, ImportResponse, ListProductsRequest};
use rigger_common::time::format_ms;

use super::{Ctl, absolute, import_status, render, status, table};

/// Imports a product pack.
pub async fn import(
    ctl: &Ctl,
    file: &Path,
    name: Option<String>,
    version: Option<String>,
) -> anyhow::Result<String> {
    let path = absolute(file)?;
    let reply = ctl
        .client()
        .import_product(ImportProductRequest {
            path: path.clone(),
            name: name.unwrap_or_default(),
            version: version.unwrap_or_default(),
        })
        .await
        .map_err(|e| import_status(e, &path))?
        .into_inner();
    Ok(import_text(&reply))
}

/// Imported products, versions and levels, as a table or JSON.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_products(ListProductsRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if json {
        let levels: Vec<_> = reply
            .levels
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.name, "version": l.version, "level": l.level,
                    "tree": l.tree_digest, "files": l.files, "size": l.size,
                    "imported_at_ms": l.imported_at_ms,
                    "environments": l.environments,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&levels)?));
    }
    let mut t = table(&[
        "PRODUCT",
        "VERSION",
        "LEVEL",
        "FILES",
        "BYTES",
        "IMPORTED",
        "ENVIRONMENTS",
        "TREE",
    ]);
    for l in reply.levels {
        t.add_row(vec![
            l.name,
            l.version,
            l.level.to_string(),
            l.files.to_string(),
            l.size.to_string(),
            format_ms(l.imported_at_ms),
            if l.environments.is_empty() {
                "-".into()
            } else {
                l.environments.join(", ")
            },
            l.tree_digest,
        ]);
    }
    Ok(render(t, &[2, 3, 4]))
}

/// What an import did: the level, its size, the paths an update changed
/// and the templates to review.
pub fn import_text(reply: &ImportResponse) -> String {
    let verb = if reply.created {
        "imported"
    } else {
        "already imported (nothing to do)"
    };
    let mut out = format!(
        "{} {} level {}: {verb}; tree {}\n",
        reply.name, reply.version, reply.level, reply.tree_digest
    );
    let _ = writeln!(
        out,
        "  {} files, {} bytes; {} bytes of new content stored",
        reply.files, reply.size, reply.new_bytes
    );
    if !reply.changed_paths.is_empty() {
        let _ = writeln!(
            out,
            "  {} paths differ from level {}:",
            reply.changed_paths.len(),
            reply.previous_level
        );
        for path in reply.changed_paths.iter().take(50) {
            let _ = writeln!(out, "    {path}");
        }
        if reply.changed_paths.len() > 50 {
            let _ = writeln!(out, "    … and {} more", reply.changed_paths.len() - 50);
        }
    }
    for review in &reply.reviews {
        let _ = writeln!(
            out,
            "REVIEW {}: module {} renders it from {}; the pack's own version changed:",
            review.path, review.module, review.template
        );
        out.push_str(&review.diff);
    }
    for edited in &reply.edited {
        let checked = if edited.roles.is_empty() {
            "no site role runs this version yet".to_string()
        } else {
            format!("applied for role(s) {}", edited.roles.join(", "))
        };
        let _ = writeln!(
            out,
            "EDITED {}: the level changes it; every edit of module {} ({}) still applies ({checked})",
            edited.path, edited.module, edited.edits
        );
    }
    out
}
