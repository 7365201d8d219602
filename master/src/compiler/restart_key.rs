//! The key a file's `restart_key` is made with. The restart key tells a
//! peer-list-only change apart (same key: no restart); as a plain sha256 it
//! would let anyone who reads a catalog test guesses of a secret file's
//! content, so it is an HMAC-SHA256 under a key only the master holds.

use std::path::Path;

use hmac::{Hmac, Mac};
use rigger_common::digest::Digest;
use sha2::Sha256;

/// The master's restart-key key.
#[derive(Clone)]
pub struct RestartKey([u8; 32]);

impl std::fmt::Debug for RestartKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestartKey(<secret>)")
    }
}

impl RestartKey {
    /// Loads the key at `path` (32 random bytes, hex, 0600: stored like the
    /// catalog signing key), creating it on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, rigger_common::signing::KeyError> {
        Ok(Self(
            rigger_common::signing::load_or_create_key(path)?.to_bytes(),
        ))
    }

    /// A key for checks that publish nothing (`module check`, tests).
    pub fn for_checks() -> Self {
        Self([0; 32])
    }

    /// The keyed digest of `content`.
    pub fn of(&self, content: &[u8]) -> Digest {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(content);
        Digest::from_bytes(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_kept_and_the_digest_is_not_a_plain_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restart-key");
        let key = RestartKey::load_or_create(&path).unwrap();
        let again = RestartKey::load_or_create(&path).unwrap();
        assert_eq!(key.of(b"password=s3cret"), again.of(b"password=s3cret"));
        assert_ne!(key.of(b"password=s3cret"), Digest::of(b"password=s3cret"));
        assert_ne!(key.of(b"a"), RestartKey::for_checks().of(b"a"));
        assert!(!format!("{key:?}").contains(&hex::encode(key.0)));
    }
}
