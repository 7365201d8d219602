//! Content-addressed blob storage behind [`BlobStore`]: local disk
//! ([`LocalBlobStore`], `<data>/blobs`, the default) or an S3 bucket
//! ([`S3BlobStore`], what several masters share).
//! The interface names no local path: blobs go in as byte streams and come
//! out as async readers, so a remote backend fits. Every implementation
//! passes the one conformance suite (`conformance.rs`).
//!
//! Invariant: a blob is stored under its digest only after every byte was
//! hashed and written; a reader never sees a partial blob.

mod blocking;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod local;
mod s3;

use std::pin::Pin;
use std::time::Duration;

use rigger_common::digest::Digest;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use blocking::{BlockingBlobs, IngestError};
pub use local::LocalBlobStore;
pub use s3::{PART_SIZE, S3BlobStore, S3Settings};

/// A blob's bytes, read as they come.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

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

/// A blob operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The store has no such blob.
    #[error("blob {0} is not in the store")]
    Missing(Digest),
    /// The stored bytes do not hash to their digest.
    #[error("blob {digest} is damaged: its content hashes to {actual}")]
    Damaged {
        /// The digest it is stored under.
        digest: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// The backend failed.
    #[error("blob store: cannot {action}")]
    Io {
        /// What was being done ("write blob sha256:…").
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl BlobError {
    /// A backend failure while doing `action`.
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| Self::Io { action, source }
    }
}

/// Writes `body` into `file` (a new blob's temporary), hashing it on the
/// way; returns its digest and size.
pub(crate) async fn write_hashing(
    mut body: BlobReader,
    file: &mut tokio::fs::File,
) -> Result<(Digest, u64), BlobError> {
    use sha2::Digest as _;
    use tokio::io::AsyncWriteExt;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .await
            .map_err(BlobError::io("read the blob being stored"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .map_err(BlobError::io("write a temporary blob"))?;
        size += n as u64;
    }
    file.flush()
        .await
        .map_err(BlobError::io("write a temporary blob"))?;
    Ok((Digest::from_bytes(hasher.finalize().into()), size))
}

/// Blobs by sha256.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Whether the blob is present.
    async fn has(&self, digest: &Digest) -> Result<bool, BlobError>;
    /// Streams `body` into the store, hashing as it goes.
    async fn put_stream(&self, body: BlobReader) -> Result<Stored, BlobError>;
    /// Opens a blob for reading.
    async fn open(&self, digest: &Digest) -> Result<BlobReader, BlobError>;
    /// Opens a blob and reads its first `limit` bytes (fewer only when the
    /// blob ends there), with a reader of the rest: what a stream sends
    /// first, in one step where the backend can (a small blob is then one
    /// trip to the disk, not three).
    async fn open_head(
        &self,
        digest: &Digest,
        limit: usize,
    ) -> Result<(Vec<u8>, BlobReader), BlobError> {
        let mut reader = self.open(digest).await?;
        let mut head = Vec::new();
        (&mut reader)
            .take(limit as u64)
            .read_to_end(&mut head)
            .await
            .map_err(BlobError::io(format!("read blob {digest}")))?;
        Ok((head, reader))
    }
    /// Every stored blob's digest.
    async fn list(&self) -> Result<Vec<Digest>, BlobError>;
    /// Deletes a blob; returns whether it was there.
    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError>;
    /// Makes every blob stored so far durable.
    async fn sync(&self) -> Result<(), BlobError>;

    /// Stores bytes.
    async fn put(&self, bytes: Vec<u8>) -> Result<Stored, BlobError> {
        self.put_stream(Box::pin(std::io::Cursor::new(bytes))).await
    }

    /// Reads a whole (small) blob and checks it against its digest.
    async fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        let mut bytes = Vec::new();
        self.open(digest)
            .await?
            .read_to_end(&mut bytes)
            .await
            .map_err(BlobError::io(format!("read blob {digest}")))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(BlobError::Damaged {
                digest: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// A URL a node may fetch the blob from directly for `ttl`, when the
    /// backend can give one (S3); `None`: the master streams it.
    async fn presigned_url(
        &self,
        _digest: &Digest,
        _ttl: Duration,
    ) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}
