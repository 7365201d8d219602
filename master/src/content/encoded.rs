//! Tree manifests as they travel gzip-encoded, kept after the first node
//! asked for one: when a level rolls out, every node of the fleet fetches
//! the same manifest (a few hundred kilobytes of JSON for a WSO2 pack), and
//! encoding it again for each of them would be most of the master's work
//! for those fetches. Only manifests are kept (never a rendered file,
//! which may hold a secret); a digest names its content, so a kept
//! encoding is never stale. An import encodes the manifest it made, so
//! that the first node of a rollout (its canary) does not wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rigger_common::blob_encoding;
use rigger_common::digest::Digest;

use super::blobs::BlobStore;

/// The most encoded bytes kept; past it the cache starts again.
const MAX_BYTES: usize = 16 << 20;

/// Encoded manifests by digest (`None`: the manifest is better sent as it
/// is), shared by the fetch streams.
#[derive(Debug, Default)]
pub struct EncodedManifests {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    bytes: usize,
    by_digest: HashMap<Digest, Option<Arc<[u8]>>>,
}

impl EncodedManifests {
    /// The encoding kept for manifest `digest`: `Some(None)` when it is
    /// known not to shrink, `None` when it is not kept.
    pub fn get(&self, digest: &Digest) -> Option<Option<Arc<[u8]>>> {
        self.kept
            .lock()
            .expect("encoded manifests")
            .by_digest
            .get(digest)
            .cloned()
    }

    /// Keeps the encoding of manifest `digest` (`None`: sent as it is).
    pub fn keep(&self, digest: Digest, encoded: Option<Arc<[u8]>>) {
        let size = encoded.as_ref().map_or(0, |e| e.len());
        if size > MAX_BYTES {
            return;
        }
        let mut kept = self.kept.lock().expect("encoded manifests");
        if kept.bytes + size > MAX_BYTES {
            *kept = Kept::default();
        }
        if kept.by_digest.insert(digest, encoded).is_none() {
            kept.bytes += size;
        }
    }

    /// Reads manifest `digest` from `blobs` (verified) and keeps its
    /// encoding, unless one is kept already; a manifest that cannot be
    /// read is left to the first fetch, which says why.
    pub async fn encode_from(&self, blobs: &dyn BlobStore, digest: Digest) {
        if self.get(&digest).is_some() {
            return;
        }
        let bytes = match blobs.read(&digest).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(manifest = %digest, error = %e, "cannot encode the manifest ahead of its first fetch");
                return;
            }
        };
        match tokio::task::spawn_blocking(move || blob_encoding::encode(&bytes)).await {
            Ok(encoded) => self.keep(digest, encoded.map(Arc::from)),
            Err(e) => {
                tracing::debug!(manifest = %digest, error = %e, "cannot encode the manifest ahead of its first fetch")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manifest_is_encoded_ahead_and_a_missing_one_is_left_to_its_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = crate::content::blobs::LocalBlobStore::open(dir.path()).unwrap();
        let manifest = "{\"path\": \"repository/components/plugins/a.jar\"}\n".repeat(500);
        let digest = blobs
            .put(manifest.clone().into_bytes())
            .await
            .unwrap()
            .digest;
        let cache = EncodedManifests::default();
        cache.encode_from(&blobs, digest).await;
        let Some(Some(encoded)) = cache.get(&digest) else {
            panic!("the manifest was not encoded")
        };
        let mut decoder = blob_encoding::Decoder::new(Vec::new());
        decoder.write(&encoded).unwrap();
        assert_eq!(decoder.finish().unwrap().0, manifest.as_bytes());
        let absent = Digest::of(b"absent");
        cache.encode_from(&blobs, absent).await;
        assert_eq!(cache.get(&absent), None);
    }

    #[test]
    fn an_encoding_is_kept_by_digest_within_its_bound() {
        let cache = EncodedManifests::default();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        assert_eq!(cache.get(&a), None);
        cache.keep(a, Some(Arc::from(&b"encoded"[..])));
        cache.keep(b, None);
        assert_eq!(cache.get(&a), Some(Some(Arc::from(&b"encoded"[..]))));
        assert_eq!(cache.get(&b), Some(None));
        // Past the bound it starts again rather than grow.
        let big = Digest::of(b"big");
        cache.keep(big, Some(Arc::from(vec![0u8; MAX_BYTES - 3])));
        assert_eq!(cache.get(&a), None);
        assert!(cache.get(&big).is_some());
        cache.keep(
            Digest::of(b"huge"),
            Some(Arc::from(vec![0u8; MAX_BYTES + 1])),
        );
        assert_eq!(cache.get(&Digest::of(b"huge")), None);
    }
}
