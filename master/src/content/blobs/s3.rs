//! Blobs in an S3 bucket (or an S3-compatible store), through the
//! `object_store` crate: what several masters share.
//!
//! A blob is stored under `PREFIX/sha256/ab/abcd…` (its digest), so two
//! masters storing the same bytes write the same object. It is spooled to
//! a local temporary file while it is hashed (its key is its digest), then
//! uploaded whole, in parts above [`PART_SIZE`]. Reads are verified as they
//! stream: a reader whose bytes do not hash to the key fails at its end,
//! so a damaged or foreign object never passes for the blob. S3 makes an
//! object durable before it acknowledges it: [`BlobStore::sync`] has
//! nothing to do.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use rigger_common::digest::Digest;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio_stream::StreamExt;

use super::{BlobError, BlobReader, BlobStore, Stored};

/// Parts of a multipart upload; a blob up to this size goes in one request.
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Which bucket, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// Keys start with this (`""`: at the bucket's root).
    pub prefix: String,
    /// The bucket's region.
    pub region: String,
    /// An S3-compatible endpoint (`None`: AWS's for the region).
    pub endpoint: Option<String>,
    /// An access key and its secret; `None`: AWS's credential chain (the
    /// `AWS_…` variables, then the instance's role).
    pub credentials: Option<(String, String)>,
}

/// Blobs in S3.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    bucket: Arc<AmazonS3>,
    /// `PREFIX/sha256`.
    root: Key,
    /// Where blobs are spooled while they are hashed.
    spool: PathBuf,
}

impl S3BlobStore {
    /// A store on `settings`' bucket, spooling through `spool` (created if
    /// missing; what an interrupted import left there is removed: one
    /// master's own folder). Nothing is asked of S3 yet.
    pub fn open(settings: &S3Settings, spool: &Path) -> Result<Self, BlobError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some((key, secret)) = &settings.credentials {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        let bucket = builder
            .build()
            .map_err(|e| BlobError::io("configure the S3 store")(std::io::Error::other(e)))?;
        std::fs::create_dir_all(spool)
            .map_err(BlobError::io(format!("create {}", spool.display())))?;
        let left =
            std::fs::read_dir(spool).map_err(BlobError::io(format!("read {}", spool.display())))?;
        for entry in left.flatten() {
            std::fs::remove_file(entry.path())
                .map_err(BlobError::io(format!("remove {}", entry.path().display())))?;
        }
        let prefix = settings.prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            Key::from("sha256")
        } else {
            Key::from(format!("{prefix}/sha256"))
        };
        Ok(Self {
            bucket: Arc::new(bucket),
            root,
            spool: spool.to_path_buf(),
        })
    }

    fn key(&self, digest: &Digest) -> Key {
        let hex = hex::encode(digest.as_bytes());
        self.root.child(&hex[..2]).child(hex)
    }

    /// Uploads the spooled blob: one request, or parts above [`PART_SIZE`].
    async fn upload(&self, key: &Key, spooled: &Path, size: u64) -> Result<(), BlobError> {
        let action = || format!("upload {key}");
        let mut file = tokio::fs::File::open(spooled)
            .await
            .map_err(BlobError::io(action()))?;
        if size <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes)
                .await
                .map_err(BlobError::io(action()))?;
            self.bucket
                .put(key, PutPayload::from(bytes))
                .await
                .map_err(s3(action()))?;
            return Ok(());
        }
        let upload = self.bucket.put_multipart(key).await.map_err(s3(action()))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = file.read(&mut buf).await.map_err(BlobError::io(action()))?;
            if n == 0 {
                break;
            }
            if let Err(e) = parts.wait_for_capacity(PARTS_IN_FLIGHT).await {
                return Err(s3(action())(e));
            }
            parts.write(&buf[..n]);
        }
        // A failed upload is aborted (no parts left to pay for).
        parts.finish().await.map_err(s3(action()))?;
        Ok(())
    }
}

/// An S3 failure while doing `action`.
fn s3(action: String) -> impl FnOnce(object_store::Error) -> BlobError {
    move |e| BlobError::io(action)(std::io::Error::other(e))
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn has(&self, digest: &Digest) -> Result<bool, BlobError> {
        match self.bucket.head(&self.key(digest)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3(format!("look for blob {digest}"))(e)),
        }
    }

    async fn put_stream(&self, body: BlobReader) -> Result<Stored, BlobError> {
        let spool = self.spool.clone();
        let spooled = tokio::task::spawn_blocking(move || tempfile::NamedTempFile::new_in(spool))
            .await
            .map_err(|e| BlobError::io("spool a blob")(std::io::Error::other(e)))?
            .map_err(BlobError::io("spool a blob"))?;
        let (file, path) = spooled.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let (digest, size) = super::write_hashing(body, &mut file).await?;
        drop(file);
        if self.has(&digest).await? {
            return Ok(Stored {
                digest,
                size,
                new: false,
            });
        }
        self.upload(&self.key(&digest), &path, size).await?;
        Ok(Stored {
            digest,
            size,
            new: true,
        })
    }

    async fn open(&self, digest: &Digest) -> Result<BlobReader, BlobError> {
        let got = match self.bucket.get(&self.key(digest)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::Missing(*digest)),
            Err(e) => return Err(s3(format!("open blob {digest}"))(e)),
        };
        let bytes = got
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(Box::pin(Verified {
            inner: tokio_util::io::StreamReader::new(bytes),
            digest: *digest,
            hasher: Some(Sha256::new()),
        }))
    }

    async fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let mut objects = self.bucket.list(Some(&self.root));
        let mut digests = Vec::new();
        while let Some(object) = objects.next().await {
            let object = object.map_err(s3("list blobs".into()))?;
            match object
                .location
                .filename()
                .map(|name| Digest::parse(&format!("sha256:{name}")))
            {
                Some(Ok(digest)) => digests.push(digest),
                _ => tracing::debug!(key = %object.location, "not a blob: left alone"),
            }
        }
        Ok(digests)
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        // S3 deletes what is absent without a word: look first.
        if !self.has(digest).await? {
            return Ok(false);
        }
        self.bucket
            .delete(&self.key(digest))
            .await
            .map_err(s3(format!("delete blob {digest}")))?;
        Ok(true)
    }

    async fn sync(&self) -> Result<(), BlobError> {
        Ok(())
    }
}

/// A blob's bytes as they stream from S3, hashed on the way: at the end, a
/// blob whose bytes are not its digest's is an error, not an end (and an
/// end again when read past: the check is made once).
struct Verified<R> {
    inner: R,
    digest: Digest,
    /// `None` once the whole blob was checked.
    hasher: Option<Sha256>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Verified<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                let Some(hasher) = &mut this.hasher else {
                    return Poll::Ready(Ok(()));
                };
                if !read.is_empty() {
                    hasher.update(read);
                    return Poll::Ready(Ok(()));
                }
                let hasher = this.hasher.take().expect("checked above");
                let actual = Digest::from_bytes(hasher.finalize().into());
                if actual == this.digest {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        BlobError::Damaged {
                            digest: this.digest,
                            actual,
                        },
                    )))
                }
            }
            other => other,
        }
    }
}
