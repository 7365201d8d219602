//! The imported packs' own files, for edits: a tree's manifest (parsed once
//! and kept by digest) names the blob of each path; the files edits read
//! are kept by digest too (content-addressed: never stale), so that a
//! compile does not read and verify the same blob again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rigger_common::digest::Digest;
use rigger_common::manifest::{EntryKind, Manifest};

use super::blobs::BlockingBlobs;
use crate::compiler::{PackFiles, TreeFile};

/// Paths of a tree to their file digests.
pub type FileIndex = Arc<BTreeMap<String, Digest>>;

/// Reads files of imported trees from the blob store (from a blocking thread).
#[derive(Clone)]
pub struct ImportedPackFiles {
    blobs: BlockingBlobs,
    indexes: Arc<Mutex<HashMap<Digest, FileIndex>>>,
    files: Arc<Mutex<FileCache>>,
}

/// Files read so far, by digest, and their total size.
#[derive(Default)]
struct FileCache {
    bytes: usize,
    files: HashMap<Digest, Arc<[u8]>>,
}

impl std::fmt::Debug for ImportedPackFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedPackFiles").finish_non_exhaustive()
    }
}

/// The most manifests kept parsed; past it the cache starts again.
const MAX_INDEXES: usize = 64;
/// The most bytes of files kept; past it the cache starts again.
const MAX_FILE_BYTES: usize = 32 << 20;

impl ImportedPackFiles {
    /// Over `blobs`, with a manifest cache shared by clones.
    pub fn new(blobs: BlockingBlobs) -> Self {
        Self {
            blobs,
            indexes: Default::default(),
            files: Default::default(),
        }
    }

    /// The files of imported tree `tree` by path, from its manifest,
    /// which is read and parsed once (kept for the next requests: a tree
    /// never changes, its digest names its content).
    pub fn index(&self, tree: &Digest) -> Result<FileIndex, String> {
        if let Some(index) = self.indexes.lock().expect("indexes").get(tree) {
            return Ok(index.clone());
        }
        let bytes = self
            .blobs
            .read(tree)
            .map_err(|e| format!("the manifest of tree {tree} cannot be read: {e}"))?;
        let manifest = Manifest::from_json(&bytes)
            .map_err(|e| format!("the manifest of tree {tree} is not valid: {e}"))?;
        let index: FileIndex = Arc::new(
            manifest
                .entries
                .into_iter()
                .filter_map(|e| match e.kind {
                    EntryKind::File { digest, .. } => Some((e.path, digest)),
                    _ => None,
                })
                .collect(),
        );
        let mut indexes = self.indexes.lock().expect("indexes");
        if indexes.len() >= MAX_INDEXES {
            indexes.clear();
        }
        indexes.insert(*tree, index.clone());
        Ok(index)
    }
}

impl PackFiles for ImportedPackFiles {
    fn read(&self, file: &TreeFile<'_>) -> Result<Option<Vec<u8>>, String> {
        let index = self.index(&file.tree)?;
        let Some(digest) = index.get(file.path) else {
            return Ok(None);
        };
        if let Some(bytes) = self.files.lock().expect("files").files.get(digest) {
            return Ok(Some(bytes.to_vec()));
        }
        let bytes = self
            .blobs
            .read(digest)
            .map_err(|e| format!("{file}: its blob {digest} cannot be read: {e}"))?;
        let mut cache = self.files.lock().expect("files");
        if cache.bytes + bytes.len() > MAX_FILE_BYTES {
            *cache = FileCache::default();
        }
        if bytes.len() <= MAX_FILE_BYTES {
            cache.bytes += bytes.len();
            cache.files.insert(*digest, Arc::from(bytes.as_slice()));
        }
        Ok(Some(bytes))
    }

    fn describe(&self, _file: &TreeFile<'_>) -> String {
        "the imported pack".into()
    }
}
