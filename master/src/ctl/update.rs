//! `masterctl update import` and `update promote`.

use std::path::Path;

use rigger_common::proto::ImportUpdateRequest;

use super::product::import_text;
use super::{Ctl, absolute, import_status, status};

/// Imports an update level (a full updated pack or an update bundle).
pub async fn import(
    ctl: &Ctl,
    product: &str,
    file: &Path,
    level: Option<u32>,
) -> anyhow::Result<String> {
    let path = absolute(file)?;
    let reply = ctl
        .client()
        .import_update(ImportUpdateRequest {
            product: product.to_string(),
            path: path.clone(),
            level: level.unwrap_or(0),
        })
        .await
        .map_err(|e| import_status(e, &path))?
        .into_inner();
    Ok(import_text(&reply))
}

/// `masterctl update promote NAME@VERSION --level N --to ENV`.
pub async fn promote(
    ctl: &Ctl,
    product: &str,
    level: u32,
    environment: &str,
) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .promote_level(rigger_common::proto::PromoteLevelRequest {
            product: product.to_string(),
            level,
            environment: environment.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(format!(
        "{} {}: environment {} runs level {} (was {}); its nodes take it on their next run, one node of a cluster at a time\n",
        reply.name, reply.version, reply.environment, reply.level, reply.previous
    ))
}
