//! `masterctl artifact import | list`.

use std::path::Path;

use rigger_common::proto::{ImportArtifactRequest, ListArtifactsRequest};
use rigger_common::time::format_ms;

use super::{Ctl, absolute, import_status, render, status, table};

/// Imports a file under a name modules refer to.
pub async fn import(ctl: &Ctl, file: &Path, name: &str) -> anyhow::Result<String> {
    let path = absolute(file)?;
    let reply = ctl
        .client()
        .import_artifact(ImportArtifactRequest {
            path: path.clone(),
            name: name.to_string(),
        })
        .await
        .map_err(|e| import_status(e, &path))?
        .into_inner();
    Ok(format!(
        "artifact {}: {} ({} bytes)\n",
        reply.name, reply.digest, reply.size
    ))
}

/// Imported artifacts.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .list_artifacts(ListArtifactsRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if json {
        let artifacts: Vec<_> = reply
            .artifacts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "size": a.size,
                    "imported_at_ms": a.imported_at_ms,
                    "digest": a.digest,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&artifacts)?));
    }
    let mut t = table(&["NAME", "BYTES", "IMPORTED", "DIGEST"]);
    for a in reply.artifacts {
        t.add_row(vec![
            a.name,
            a.size.to_string(),
            format_ms(a.imported_at_ms),
            a.digest,
        ]);
    }
    Ok(render(t, &[1]))
}
