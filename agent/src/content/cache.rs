//! Blobs on the node, by digest: `<state>/cache/sha256/ab/cdef…`.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use rigger_common::blob_layout::BlobLayout;
use rigger_common::digest::Digest;
use rigger_common::manifest::Manifest;

/// The node's content cache.
#[derive(Debug, Clone)]
pub struct ContentCache {
    layout: BlobLayout,
}

impl ContentCache {
    /// A cache rooted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            layout: BlobLayout::new(root),
        }
    }

    /// Where a blob lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.layout.path_of(digest)
    }

    /// The directory for partial downloads.
    pub fn tmp_dir(&self) -> PathBuf {
        self.layout.tmp_dir()
    }

    /// Removes partial downloads an interrupted fetch left (under the run
    /// lock, when no fetch is under way).
    pub fn remove_temporaries(&self) {
        match self.layout.remove_temporaries() {
            Ok(0) => {}
            Ok(files) => {
                tracing::info!(files, "removed partial downloads an interrupted fetch left")
            }
            Err(e) => tracing::warn!(error = %e, "cannot clean the cache's partial downloads"),
        }
    }

    /// Whether the blob is cached.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// A cached manifest, if present and valid.
    pub fn manifest(&self, digest: &Digest) -> Result<Option<Manifest>, String> {
        match std::fs::read(self.path_of(digest)) {
            Ok(bytes) => Manifest::from_json(&bytes)
                .map(Some)
                .map_err(|e| format!("cached manifest {digest}: {e}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read cached manifest {digest}: {e}")),
        }
    }

    /// Digests among `wanted` that are not cached.
    pub fn missing(&self, wanted: &[Digest]) -> Vec<Digest> {
        wanted.iter().filter(|d| !self.has(d)).copied().collect()
    }

    /// Deletes every cached blob not in `keep`; returns (blobs, bytes) removed.
    pub fn retain(&self, keep: &HashSet<Digest>) -> io::Result<(u64, u64)> {
        let mut removed = (0, 0);
        for blob in self.layout.files()? {
            if !keep.contains(&blob.digest) {
                let size = std::fs::metadata(&blob.path).map_or(0, |m| m.len());
                std::fs::remove_file(&blob.path)?;
                removed.0 += 1;
                removed.1 += size;
            }
        }
        Ok(removed)
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }
}
