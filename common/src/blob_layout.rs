//! How blobs lie on a local disk, shared by the master's local blob store
//! and the agent's content cache: `ROOT/sha256/ab/cdef…` (the first two hex
//! digits as a folder), partial writes in `ROOT/tmp`.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// A directory of blobs by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLayout {
    root: PathBuf,
}

/// One blob found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFile {
    /// Its digest (from its path).
    pub digest: Digest,
    /// Where it is.
    pub path: PathBuf,
}

impl BlobLayout {
    /// Blobs under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.root.join(Self::relative_path_of(digest))
    }

    /// Where a blob lives, relative to the root (`sha256/ab/cdef…`).
    pub fn relative_path_of(digest: &Digest) -> String {
        let hex = hex::encode(digest.as_bytes());
        format!("sha256/{}/{}", &hex[..2], &hex[2..])
    }

    /// The directory for partial writes (same file system: renamed into place).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes every partial write in the temporary directory (call it when
    /// no write is under way); returns how many.
    pub fn remove_temporaries(&self) -> io::Result<usize> {
        let entries = match std::fs::read_dir(self.tmp_dir()) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Every blob on disk; files whose names are not digests are left out.
    pub fn files(&self) -> io::Result<Vec<BlobFile>> {
        let mut found = Vec::new();
        let prefixes = match std::fs::read_dir(self.root.join("sha256")) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for prefix in prefixes {
            let prefix = prefix?;
            if !prefix.file_type()?.is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(prefix.path())? {
                let blob = blob?;
                let name = format!(
                    "sha256:{}{}",
                    prefix.file_name().to_string_lossy(),
                    blob.file_name().to_string_lossy()
                );
                if let Ok(digest) = Digest::parse(&name) {
                    found.push(BlobFile {
                        digest,
                        path: blob.path(),
                    });
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_written_at_its_path_is_found_by_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let layout = BlobLayout::new(dir.path());
        assert!(layout.files().unwrap().is_empty());
        let digest = Digest::of(b"x");
        let path = layout.path_of(&digest);
        assert!(path.starts_with(dir.path().join("sha256")));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
        std::fs::write(path.parent().unwrap().join("not-a-digest"), b"").unwrap();
        assert_eq!(layout.files().unwrap(), [BlobFile { digest, path }]);
    }

    #[test]
    fn partial_writes_are_removed_and_blobs_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = BlobLayout::new(dir.path());
        assert_eq!(layout.remove_temporaries().unwrap(), 0);
        std::fs::create_dir_all(layout.tmp_dir()).unwrap();
        std::fs::write(layout.tmp_dir().join(".tmpA"), b"half").unwrap();
        let digest = Digest::of(b"x");
        std::fs::create_dir_all(layout.path_of(&digest).parent().unwrap()).unwrap();
        std::fs::write(layout.path_of(&digest), b"x").unwrap();
        assert_eq!(layout.remove_temporaries().unwrap(), 1);
        assert_eq!(std::fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
        assert_eq!(layout.files().unwrap().len(), 1);
    }
}
