//! Which blobs a node may fetch: those its own latest catalog references
//! (each tree's manifest and every file in it, and file sources).
//!
//! Invariant: a node receives only the blobs its own latest catalog references.

use std::collections::HashSet;

use rigger_common::catalog::ResourceSpec;
use rigger_common::digest::Digest;

use crate::error::{Error, Result};
use crate::state::MasterState;

/// What a node may fetch.
#[derive(Debug, Default)]
pub struct Allowed {
    /// Every blob the node's latest catalog references.
    pub blobs: HashSet<Digest>,
    /// Those that are its trees' manifests.
    pub manifests: HashSet<Digest>,
}

/// The blobs the node's latest catalog references.
pub async fn allowed_blobs(state: &MasterState, certname: &str) -> Result<Allowed> {
    let mut allowed = HashSet::new();
    let mut manifests = HashSet::new();
    let Some(record) = state.store.catalog(certname, None).await? else {
        return Ok(Allowed::default());
    };
    for resource in &record.catalog()?.content.resources {
        match &resource.spec {
            ResourceSpec::File(file) => allowed.extend(file.source),
            ResourceSpec::Tree(tree) => {
                // Parsed once per tree, not on each of a node's four streams.
                let (files, digest) = (state.pack_files.clone(), tree.tree);
                let index = tokio::task::spawn_blocking(move || files.index(&digest))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .map_err(Error::Internal)?;
                allowed.insert(tree.tree);
                manifests.insert(tree.tree);
                allowed.extend(index.values().copied());
            }
            _ => {}
        }
    }
    Ok(Allowed {
        blobs: allowed,
        manifests,
    })
}

/// The most digests one fetch may ask for (a release of a large product
/// has a few thousand files; agents ask in four streams).
pub const MAX_FETCH_DIGESTS: usize = 100_000;

/// A fetch request's own shape: not empty of sense, not oversized, no
/// digest twice (a node asks for what it lacks, once).
pub fn check_request(wanted: &[Digest]) -> Result<()> {
    if wanted.len() > MAX_FETCH_DIGESTS {
        return Err(Error::InvalidArgument(format!(
            "a fetch asks for {} blobs, more than {MAX_FETCH_DIGESTS}",
            wanted.len()
        )));
    }
    let mut seen = HashSet::with_capacity(wanted.len());
    if let Some(again) = wanted.iter().find(|d| !seen.insert(**d)) {
        return Err(Error::InvalidArgument(format!(
            "a fetch asks for blob {again} more than once"
        )));
    }
    Ok(())
}

/// Checks that `certname` may fetch every blob in `wanted`; returns the
/// tree manifests among them.
pub async fn check_fetch(
    state: &MasterState,
    certname: &str,
    wanted: &[Digest],
) -> Result<HashSet<Digest>> {
    check_request(wanted)?;
    let allowed = allowed_blobs(state, certname).await?;
    if let Some(refused) = wanted.iter().find(|d| !allowed.blobs.contains(d)) {
        tracing::warn!(node = %certname, blob = %refused, "blob request refused");
        return Err(Error::PermissionDenied(format!(
            "blob {refused} is not referenced by the catalog of node {certname}"
        )));
    }
    Ok(allowed.manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_asks_for_each_blob_once_and_not_too_many() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        check_request(&[a, b]).unwrap();
        let err = check_request(&[a, b, a]).unwrap_err().to_string();
        assert!(err.contains("more than once"), "{err}");
        let many = vec![a; MAX_FETCH_DIGESTS + 1];
        assert!(
            check_request(&many)
                .unwrap_err()
                .to_string()
                .contains("more than 100000")
        );
    }
}
