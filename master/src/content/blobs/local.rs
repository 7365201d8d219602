//! Blobs as files under a directory, in the layout the agent's cache shares
//! ([`BlobLayout`]): written to `tmp/`, hashed on the way, renamed into
//! place. Durability comes from [`BlobStore::sync`] once per import, not an
//! fsync per blob.

use std::io::Read;
use std::path::Path;

use rigger_common::blob_layout::BlobLayout;
use rigger_common::digest::Digest;

use super::{BlobError, BlobReader, BlobStore, Stored};

/// Blobs on the local disk.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    layout: BlobLayout,
}

impl LocalBlobStore {
    /// A store rooted at `root` (created if missing). Partial blobs an
    /// interrupted import left in `tmp/` are removed: open it before any
    /// import runs.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let layout = BlobLayout::new(root);
        std::fs::create_dir_all(layout.tmp_dir())?;
        std::fs::create_dir_all(root.join("sha256"))?;
        let removed = layout.remove_temporaries()?;
        if removed > 0 {
            tracing::info!(
                files = removed,
                "removed partial blobs an interrupted import left"
            );
        }
        Ok(Self { layout })
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn has(&self, digest: &Digest) -> Result<bool, BlobError> {
        tokio::fs::try_exists(self.layout.path_of(digest))
            .await
            .map_err(BlobError::io(format!("look for blob {digest}")))
    }

    async fn put_stream(&self, body: BlobReader) -> Result<Stored, BlobError> {
        let tmp_dir = self.layout.tmp_dir();
        let tmp = tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(tmp_dir))
            .await
            .map_err(|e| BlobError::io("create a temporary blob")(std::io::Error::other(e)))?
            .map_err(BlobError::io("create a temporary blob"))?;
        let (file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let (digest, size) = super::write_hashing(body, &mut file).await?;
        drop(file);
        let target = self.layout.path_of(&digest);
        if self.has(&digest).await? {
            return Ok(Stored {
                digest,
                size,
                new: false,
            });
        }
        let parent = target
            .parent()
            .expect("blob path has a parent")
            .to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(BlobError::io(format!("create {}", parent.display())))?;
        tokio::task::spawn_blocking(move || tmp_path.persist(&target).map_err(|e| e.error))
            .await
            .map_err(|e| BlobError::io("store a blob")(std::io::Error::other(e)))?
            .map_err(BlobError::io(format!("store blob {digest}")))?;
        Ok(Stored {
            digest,
            size,
            new: true,
        })
    }

    async fn open(&self, digest: &Digest) -> Result<BlobReader, BlobError> {
        tokio::fs::File::open(self.layout.path_of(digest))
            .await
            .map(|file| Box::pin(file) as BlobReader)
            .map_err(|e| open_failed(digest, e))
    }

    async fn open_head(
        &self,
        digest: &Digest,
        limit: usize,
    ) -> Result<(Vec<u8>, BlobReader), BlobError> {
        let path = self.layout.path_of(digest);
        let digest = *digest;
        // One blocking step: open, and read the head into a buffer of the
        // blob's size (not `limit`: most blobs are small).
        let (head, file) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| open_failed(&digest, e))?;
            let read = |e| BlobError::io(format!("read blob {digest}"))(e);
            let size = file.metadata().map_err(read)?.len();
            let mut head = Vec::with_capacity(size.min(limit as u64) as usize);
            (&file)
                .take(limit as u64)
                .read_to_end(&mut head)
                .map_err(read)?;
            Ok::<_, BlobError>((head, file))
        })
        .await
        .map_err(|e| BlobError::io(format!("read blob {digest}"))(std::io::Error::other(e)))??;
        Ok((head, Box::pin(tokio::fs::File::from_std(file))))
    }

    async fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let layout = self.layout.clone();
        let files = tokio::task::spawn_blocking(move || layout.files())
            .await
            .map_err(|e| BlobError::io("list blobs")(std::io::Error::other(e)))?
            .map_err(BlobError::io("list blobs"))?;
        Ok(files.into_iter().map(|f| f.digest).collect())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        match tokio::fs::remove_file(self.layout.path_of(digest)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::io(format!("delete blob {digest}"))(e)),
        }
    }

    async fn sync(&self) -> Result<(), BlobError> {
        let root = self.layout.root().to_path_buf();
        tokio::task::spawn_blocking(move || rigger_common::fsutil::sync_filesystem(&root))
            .await
            .map_err(|e| BlobError::io("flush the blob store")(std::io::Error::other(e)))?
            .map_err(BlobError::io("flush the blob store"))
    }
}

/// Why blob `digest` could not be opened: missing, or the error.
fn open_failed(digest: &Digest, e: std::io::Error) -> BlobError {
    match e.kind() {
        std::io::ErrorKind::NotFound => BlobError::Missing(*digest),
        _ => BlobError::io(format!("open blob {digest}"))(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open() -> (tempfile::TempDir, LocalBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    crate::blob_store_conformance!(open);

    #[tokio::test]
    async fn a_damaged_file_is_refused_when_read() {
        let (dir, store) = open().await;
        let stored = store.put(b"manifest".to_vec()).await.unwrap();
        let path = BlobLayout::new(dir.path()).path_of(&stored.digest);
        std::fs::write(&path, b"tampered").unwrap();
        assert!(matches!(
            store.read(&stored.digest).await,
            Err(BlobError::Damaged { .. })
        ));
    }
}
