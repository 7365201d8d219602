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

    /// Streams `reader` into the store.
    pub fn ingest(&self, reader: &mut dyn Read) -> Result<Stored, BlobError> {
        let (mut writer, pipe) = tokio::io::duplex(PIPE);
        let store = self.store.clone();
        let stored = self
            .runtime
            .spawn(async move { store.put_stream(Box::pin(pipe)).await });
        let mut buf = vec![0u8; PIPE];
        let fed = (|| -> std::io::Result<()> {
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                self.runtime.block_on(writer.write_all(&buf[..n]))?;
            }
            self.runtime.block_on(writer.shutdown())
        })();
        drop(writer);
        let stored = self
            .runtime
            .block_on(stored)
            .map_err(|e| BlobError::io("store a blob")(std::io::Error::other(e)))?;
        fed.map_err(BlobError::io("read the content being stored"))?;
        stored
    }

    /// Stores bytes.
    pub fn put(&self, bytes: Vec<u8>) -> Result<Stored, BlobError> {
        self.runtime.block_on(self.store.put(bytes))
    }

    /// Reads a whole (small) blob, verified.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        self.runtime.block_on(self.store.read(digest))
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
}
