//! Which blobs a node may fetch: those its own latest catalog references
//! (each tree's manifest and every file in it, and file sources).
//!
//! Invariant: a node receives only the blobs its own latest catalog references.

use std::collections::HashSet;

use rigger_common::catalog::ResourceSpec;
use rigger_common::digest::Digest;
use rigger_common::manifest::Manifest;

use crate::error::{Error, Result};
use crate::state::MasterState;

/// The blobs the node's latest catalog references.
pub async fn allowed_blobs(state: &MasterState, certname: &str) -> Result<HashSet<Digest>> {
    let mut allowed = HashSet::new();
    let Some(record) = state.store.catalog(certname, None).await? else {
        return Ok(allowed);
    };
    for resource in &record.catalog()?.content.resources {
        match &resource.spec {
            ResourceSpec::File(file) => allowed.extend(file.source),
            ResourceSpec::Tree(tree) => {
                let json = state.blobs.read(&tree.tree).await?;
                let manifest = Manifest::from_json(&json).map_err(|e| {
                    Error::Internal(format!("manifest {} does not decode: {e}", tree.tree))
                })?;
                allowed.insert(tree.tree);
                allowed.extend(manifest.file_digests());
            }
            _ => {}
        }
    }
    Ok(allowed)
}

/// Checks that `certname` may fetch every blob in `wanted`.
pub async fn check_fetch(state: &MasterState, certname: &str, wanted: &[Digest]) -> Result<()> {
    let allowed = allowed_blobs(state, certname).await?;
    if let Some(refused) = wanted.iter().find(|d| !allowed.contains(d)) {
        tracing::warn!(node = %certname, blob = %refused, "blob request refused");
        return Err(Error::PermissionDenied(format!(
            "blob {refused} is not referenced by the catalog of node {certname}"
        )));
    }
    Ok(())
}
