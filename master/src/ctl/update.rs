//! `masterctl update import`.

use std::path::Path;

use rigger_common::proto::ImportUpdateRequest;

use super::product::import_text;
use super::{Ctl, absolute, status};

/// Imports an update level (a full updated pack or an update bundle).
pub async fn import(
    ctl: &Ctl,
    product: &str,
    file: &Path,
    level: Option<u32>,
) -> anyhow::Result<String> {
    let reply = ctl
        .client()
        .import_update(ImportUpdateRequest {
            product: product.to_string(),
            path: absolute(file)?,
            level: level.unwrap_or(0),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(import_text(&reply))
}
