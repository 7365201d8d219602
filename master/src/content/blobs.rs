//! Content-addressed blob storage. Local disk now (`<data>/blobs`); S3 later
//! behind the same trait.
//!
//! Invariant: a blob is stored under its digest only after every byte was
//! hashed and written; a reader never sees a partial blob.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rigger_common::digest::Digest;
use sha2::{Digest as _, Sha256};

/// What storing a blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// False when the store already had it.
    pub new: bool,
}

/// A blob store.
pub trait BlobStore: Send + Sync {
    /// Whether the blob is present.
    fn has(&self, digest: &Digest) -> bool;
    /// Opens a blob for reading.
    fn open(&self, digest: &Digest) -> io::Result<File>;
    /// Streams `reader` into the store, hashing as it goes.
    fn ingest(&self, reader: &mut dyn Read) -> io::Result<Stored>;
    /// Stores bytes.
    fn put(&self, bytes: &[u8]) -> io::Result<Stored> {
        self.ingest(&mut &bytes[..])
    }
    /// Makes every blob stored so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Reads a whole (small) blob.
    fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(digest)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Blobs as files under a directory: `sha256/ab/cdef…`.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// A store rooted at `root` (created if missing).
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("sha256"))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Where a blob lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = hex::encode(digest.as_bytes());
        self.root.join("sha256").join(&hex[..2]).join(&hex[2..])
    }
}

impl BlobStore for LocalBlobStore {
    fn has(&self, digest: &Digest) -> bool {
        self.path_of(digest).exists()
    }

    fn open(&self, digest: &Digest) -> io::Result<File> {
        File::open(self.path_of(digest))
    }

    fn ingest(&self, reader: &mut dyn Read) -> io::Result<Stored> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            size += n as u64;
        }
        let digest = Digest::from_bytes(hasher.finalize().into());
        let target = self.path_of(&digest);
        if target.exists() {
            return Ok(Stored {
                digest,
                size,
                new: false,
            });
        }
        // Durability comes from `sync` once per import, not an fsync per blob.
        std::fs::create_dir_all(target.parent().expect("blob path has a parent"))?;
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(Stored {
            digest,
            size,
            new: true,
        })
    }

    fn sync(&self) -> io::Result<()> {
        rigger_common::fsutil::sync_filesystem(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_once_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let first = store.put(b"hello").unwrap();
        assert!(first.new);
        assert_eq!(first.digest, Digest::of(b"hello"));
        let again = store.put(b"hello").unwrap();
        assert!(!again.new);
        assert_eq!(store.read(&first.digest).unwrap(), b"hello");
        assert!(!store.has(&Digest::of(b"other")));
    }
}
