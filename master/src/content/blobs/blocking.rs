//! The blob store from blocking code: pack imports read archives on every
//! core with synchronous readers (zip, tar) and hand each entry to the
//! async [`BlobStore`] through a pipe, driven by the runtime's handle.

use std::io::Read;
use std::sync::Arc;

use rigger_common::digest::Digest;
use tokio::io::AsyncWriteExt;

use super::{BlobError, BlobStore, Stored};

/// Bytes in flight between a reader thread and the store.
const PIPE: usize = 256 * 1024;

/// Why content could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The content's reader failed (or refused: an archive over its limits).
    #[error(transparent)]
    Read(std::io::Error),
    /// The store failed.
    #[error("cannot store the content")]
    Store(#[source] BlobError),
}

/// A [`BlobStore`] for threads outside the runtime (or in `spawn_blocking`).
#[derive(Debug, Clone)]
pub struct BlockingBlobs {
    store: Arc<dyn BlobStore>,
    runtime: tokio::runtime::Handle,
}

impl BlockingBlobs {
    /// `store`, driven by `runtime`.
    pub fn new(store: Arc<dyn BlobStore>, runtime: tokio::runtime::Handle) -> Self {
        Self { store, runtime }
    }

    /// Streams `reader` into the store. When the reader fails, nothing is
    /// stored: the store never sees the end of a blob it did not get whole.
    pub fn ingest(&self, reader: &mut dyn Read) -> Result<Stored, IngestError> {
        let (mut writer, pipe) = tokio::io::duplex(PIPE);
        let store = self.store.clone();
        let storing = self
            .runtime
            .spawn(async move { store.put_stream(Box::pin(pipe)).await });
        let mut buf = vec![0u8; PIPE];
        let mut fed = || -> Result<(), IngestError> {
            loop {
                let n = reader.read(&mut buf).map_err(IngestError::Read)?;
                if n == 0 {
                    break;
                }
                // A write fails only when the store gave up: its error says why.
                if self.runtime.block_on(writer.write_all(&buf[..n])).is_err() {
                    return Ok(());
                }
            }
            let _ = self.runtime.block_on(writer.shutdown());
            Ok(())
        };
        if let Err(e) = fed() {
            // Cancel while the pipe is still open, so the store cannot take
            // the cut as the end of the blob; its temporary file goes.
            storing.abort();
            let _ = self.runtime.block_on(storing);
            return Err(e);
        }
        drop(writer);
        self.runtime
            .block_on(storing)
            .map_err(|e| {
                IngestError::Store(BlobError::io("store a blob")(std::io::Error::other(e)))
            })?
            .map_err(IngestError::Store)
    }

    /// Stores bytes.
    pub fn put(&self, bytes: Vec<u8>) -> Result<Stored, BlobError> {
        self.runtime.block_on(self.store.put(bytes))
    }

    /// Reads a whole (small) blob, verified.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        self.runtime.block_on(self.store.read(digest))
    }

    /// Deletes a blob; returns whether it was there.
    pub fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        self.runtime.block_on(self.store.delete(digest))
    }

    /// Makes what was stored durable.
    pub fn sync(&self) -> Result<(), BlobError> {
        self.runtime.block_on(self.store.sync())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_on_a_blocking_thread_lands_in_the_async_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> =
            Arc::new(super::super::LocalBlobStore::open(dir.path()).unwrap());
        let blobs = BlockingBlobs::new(store.clone(), tokio::runtime::Handle::current());
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let expected = Digest::of(&bytes);
        let stored = tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                s.spawn(|| blobs.ingest(&mut &bytes[..]).unwrap())
                    .join()
                    .unwrap()
            })
        })
        .await
        .unwrap();
        assert_eq!(stored.digest, expected);
        assert!(store.has(&expected).await.unwrap());
    }

    /// A reader that gives some bytes, then fails.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the archive is over its limits"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_fails_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> =
            Arc::new(super::super::LocalBlobStore::open(dir.path()).unwrap());
        let blobs = BlockingBlobs::new(store.clone(), tokio::runtime::Handle::current());
        let err = tokio::task::spawn_blocking(move || {
            blobs.ingest(&mut Failing(3 * PIPE + 5)).unwrap_err()
        })
        .await
        .unwrap();
        assert!(matches!(err, IngestError::Read(_)), "{err}");
        assert!(
            store.list().await.unwrap().is_empty(),
            "a cut blob was stored"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
