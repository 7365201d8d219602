//! Fetching blobs from the master: several streams in flight, every byte
//! hashed as it arrives, a blob renamed into the cache only once verified.
//! An interrupted fetch resumes from the blobs already cached.

use std::io::Write;
use std::sync::Arc;

use rigger_common::blob_encoding;
use rigger_common::digest::Digest;
use sha2::{Digest as _, Sha256};
use tokio_stream::StreamExt;

use super::ContentCache;
use super::new_blob::NewBlob;
use crate::client::MasterClient;

/// Streams run in parallel.
const STREAMS: usize = 4;
/// Free space under which a failed fetch gives back what it stored.
const FULL_BELOW: u64 = 64 << 20;

/// What a fetch transferred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Blobs fetched.
    pub blobs: u64,
    /// Bytes fetched.
    pub bytes: u64,
}

/// Told the bytes of each chunk as it is written to the cache.
pub type FetchProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Fetches `digests` (those not yet cached) into the cache; `progress`
/// hears of each chunk written.
pub async fn fetch_blobs(
    master: &Arc<dyn MasterClient>,
    cache: &ContentCache,
    digests: &[Digest],
    progress: Option<FetchProgress>,
) -> Result<FetchStats, String> {
    // Each blob once (two files may take the same artifact): the master
    // refuses a request that names one twice.
    let mut missing = cache.missing(digests);
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(FetchStats::default());
    }
    let mut groups: Vec<Vec<Digest>> = vec![Vec::new(); STREAMS.min(missing.len())];
    let count = groups.len();
    for (i, d) in missing.into_iter().enumerate() {
        groups[i % count].push(d);
    }
    let stored = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for group in groups {
        let master = master.clone();
        let cache = cache.clone();
        let stored = stored.clone();
        let progress = progress.clone();
        tasks.spawn(async move {
            fetch_group(master.as_ref(), &cache, group, &stored, progress.as_ref()).await
        });
    }
    let mut total = FetchStats::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(stats) => {
                total.blobs += stats.blobs;
                total.bytes += stats.bytes;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // One flush for the whole fetch instead of an fsync per blob.
    let flush = std::time::Instant::now();
    rigger_common::fsutil::sync_filesystem(cache.root())
        .map_err(|e| format!("cannot flush the cache {}: {e}", cache.root().display()))?;
    tracing::debug!(
        blobs = total.blobs,
        bytes = total.bytes,
        flush_micros = flush.elapsed().as_micros() as u64,
        "fetched into the cache and flushed it"
    );
    match first_error {
        Some(e) => {
            let stored = std::mem::take(&mut *stored.lock().expect("not poisoned"));
            remove_when_disk_is_full(cache, &stored);
            Err(e)
        }
        None => Ok(total),
    }
}

/// Fetches from the master for the blocking apply thread (a repair that
/// found a cached object changed).
#[derive(Debug)]
pub struct MasterRefetch {
    master: Arc<dyn MasterClient>,
    cache: ContentCache,
    runtime: tokio::runtime::Handle,
}

impl MasterRefetch {
    /// Fetches from `master` into `cache`, driven by `runtime`.
    pub fn new(
        master: Arc<dyn MasterClient>,
        cache: ContentCache,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            master,
            cache,
            runtime,
        }
    }
}

impl crate::resources::Refetch for MasterRefetch {
    fn refetch(&self, digests: &[Digest]) -> Result<(), String> {
        self.runtime
            .block_on(fetch_blobs(&self.master, &self.cache, digests, None))
            .map(drop)
    }
}

/// After a failed fetch on a (nearly) full disk, removes the blobs it
/// stored, so that the server and its logs keep their room; on a disk with
/// room they stay, and the next run resumes from them.
fn remove_when_disk_is_full(cache: &ContentCache, stored: &[Digest]) {
    let full = nix::sys::statvfs::statvfs(cache.root())
        .is_ok_and(|s| s.blocks_available().saturating_mul(s.fragment_size()) < FULL_BELOW);
    if !full || stored.is_empty() {
        return;
    }
    let removed = stored
        .iter()
        .filter(|d| std::fs::remove_file(cache.path_of(d)).is_ok())
        .count();
    tracing::warn!(
        removed,
        "the disk is full: removed the blobs the failed fetch stored"
    );
}

struct Partial {
    digest: Digest,
    file: NewBlob,
    hasher: Sha256,
    /// Bytes received (encoded bytes for an encoded blob).
    written: u64,
    /// An encoded blob's decoder (it decodes to at most 4 MiB, kept in
    /// memory until the blob is whole).
    decoder: Option<blob_encoding::Decoder<Vec<u8>>>,
}

impl Partial {
    /// Hashes and writes (decoded) bytes of the blob.
    fn take(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.hasher.update(bytes);
        self.file
            .file()
            .write_all(bytes)
            .map_err(|e| format!("cannot write blob {} to the cache: {e}", self.digest))
    }
}

async fn fetch_group(
    master: &dyn MasterClient,
    cache: &ContentCache,
    digests: Vec<Digest>,
    stored: &std::sync::Mutex<Vec<Digest>>,
    progress: Option<&FetchProgress>,
) -> Result<FetchStats, String> {
    let mut stream = master
        .fetch_blobs(digests.clone())
        .await
        .map_err(|e| format!("the master refused the blobs: {e}"))?;
    let mut stats = FetchStats::default();
    let mut current: Option<Partial> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("blob stream failed: {e}"))?;
        let digest = chunk.digest;
        let partial = match &mut current {
            Some(p) if p.digest == digest => p,
            _ => {
                if chunk.offset != 0 {
                    return Err(format!("blob {digest} started at offset {}", chunk.offset));
                }
                let file = NewBlob::create(&cache.path_of(&digest), &cache.tmp_dir())
                    .map_err(|e| format!("cannot create blob {digest} in the cache: {e}"))?;
                current.insert(Partial {
                    digest,
                    file,
                    hasher: Sha256::new(),
                    written: 0,
                    decoder: chunk.gzip.then(|| blob_encoding::Decoder::new(Vec::new())),
                })
            }
        };
        if chunk.offset != partial.written {
            return Err(format!(
                "blob {digest}: chunk at {} after {} bytes",
                chunk.offset, partial.written
            ));
        }
        if chunk.gzip != partial.decoder.is_some() {
            return Err(format!("blob {digest}: its chunks change encoding"));
        }
        match &mut partial.decoder {
            Some(decoder) => decoder
                .write(&chunk.data)
                .map_err(|e| format!("blob {digest} does not decode: {e}"))?,
            None => partial.take(&chunk.data)?,
        }
        partial.written += chunk.data.len() as u64;
        stats.bytes += chunk.data.len() as u64;
        if let Some(progress) = progress {
            progress(chunk.data.len() as u64);
        }
        if chunk.last {
            let mut done = current.take().expect("a blob in progress");
            if let Some(decoder) = done.decoder.take() {
                let (decoded, _) = decoder
                    .finish()
                    .map_err(|e| format!("blob {} does not decode: {e}", done.digest))?;
                done.take(&decoded)?;
            }
            let actual = Digest::from_bytes(done.hasher.finalize().into());
            if actual != done.digest {
                return Err(format!(
                    "blob {} failed verification: its content hashes to {actual}",
                    done.digest
                ));
            }
            super::cache::seal(done.file.file(), super::cache::BLOB_MODE)
                .map_err(|e| format!("cannot seal blob {}: {e}", done.digest))?;
            done.file
                .persist(&cache.path_of(&done.digest))
                .map_err(|e| format!("cannot store blob {}: {e}", done.digest))?;
            stored.lock().expect("not poisoned").push(done.digest);
            stats.blobs += 1;
        }
    }
    if let Some(p) = current {
        return Err(format!("blob stream ended inside blob {}", p.digest));
    }
    let still_missing = cache.missing(&digests);
    if !still_missing.is_empty() {
        return Err(format!(
            "the master did not send {} blob(s), e.g. {}",
            still_missing.len(),
            still_missing[0]
        ));
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::FakeMaster;

    #[tokio::test]
    async fn a_blob_whose_bytes_do_not_hash_to_its_name_is_refused_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::new(dir.path().to_path_buf());
        let master = FakeMaster::new("n");
        let good = master.add_blob(b"the real keystore");
        let named = Digest::of(b"what the catalog names");
        master.add_blob_as(named, b"something else entirely");
        let client: Arc<dyn MasterClient> = master.clone();
        let err = fetch_blobs(&client, &cache, &[named], None)
            .await
            .unwrap_err();
        assert!(err.contains(&named.to_string()), "{err}");
        assert!(!cache.has(&named), "a lying blob was kept");
        fetch_blobs(&client, &cache, &[good], None).await.unwrap();
        assert!(cache.has(&good));
    }

    #[tokio::test]
    async fn an_encoded_blob_is_kept_decoded_and_a_bomb_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::new(dir.path().to_path_buf());
        let master = FakeMaster::new("n");
        let manifest = "{\"entries\": []}\n".repeat(1000);
        let named = Digest::of(manifest.as_bytes());
        master.add_gzipped_blob_as(named, &blob_encoding::encode(manifest.as_bytes()).unwrap());
        // Small on the wire, more than an encoded blob may be once decoded.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![b' '; blob_encoding::MAX_ENCODED_BLOB + 1])
            .unwrap();
        let bombed = Digest::of(b"a configuration file");
        master.add_gzipped_blob_as(bombed, &bomb.finish().unwrap());
        let client: Arc<dyn MasterClient> = master.clone();

        fetch_blobs(&client, &cache, &[named], None).await.unwrap();
        assert_eq!(
            std::fs::read(cache.path_of(&named)).unwrap(),
            manifest.as_bytes()
        );
        let err = fetch_blobs(&client, &cache, &[bombed], None)
            .await
            .unwrap_err();
        assert!(
            err.contains("does not decode") && err.contains("more than"),
            "{err}"
        );
        assert!(!cache.has(&bombed), "a bomb was kept");
    }
}
