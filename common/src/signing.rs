//! Catalog signatures (ed25519). The master signs the exact JSON bytes it
//! sends; the agent verifies them with the key it pinned at enrollment.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::catalog::{self, Catalog};
use crate::fsutil::{Ownership, write_atomic};

/// Loading or storing a signing key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold 32 hex-encoded bytes.
    #[error("key file {} does not hold a 32-byte hex key", path.display())]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// The key could not be written.
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
}

/// A signed catalog that must not be applied.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The public key is not a valid ed25519 key.
    #[error("the pinned catalog signing key is not a valid ed25519 public key")]
    BadKey,
    /// The signature is malformed or does not match the pinned key.
    #[error("catalog signature does not verify with the master's pinned signing key")]
    BadSignature,
    /// The signed bytes are not a catalog.
    #[error("signed catalog is not valid catalog JSON")]
    Malformed(#[source] serde_json::Error),
    /// A format this agent does not understand.
    #[error("catalog format {0} is not supported (this agent knows format {FORMAT})", FORMAT = catalog::FORMAT)]
    Format(u32),
    /// The digest field does not match the content.
    #[error("catalog digest {claimed} does not match its content ({actual})")]
    DigestMismatch {
        /// What the catalog says.
        claimed: String,
        /// What its content hashes to.
        actual: String,
    },
}

/// Loads the ed25519 key stored (hex, mode 0600) at `path`, creating it first if absent.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand_core::OsRng);
            write_atomic(
                path,
                hex::encode(key.to_bytes()).as_bytes(),
                0o600,
                Ownership::default(),
            )?;
            Ok(key)
        }
        Err(source) => Err(KeyError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_key(path: &Path, text: &str) -> Result<SigningKey, KeyError> {
    let malformed = || KeyError::Malformed {
        path: path.to_path_buf(),
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|_| malformed())?
        .try_into()
        .map_err(|_| malformed())?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A catalog as the master signed it: the exact JSON bytes and their
/// ed25519 signature. The agent caches it verbatim and verifies it on use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCatalog {
    /// The JSON form of [`Catalog`], byte for byte as signed.
    pub catalog_json: Vec<u8>,
    /// ed25519 signature over `catalog_json`.
    pub signature: Vec<u8>,
}

/// Serializes and signs a catalog.
pub fn sign_catalog(key: &SigningKey, catalog: &Catalog) -> SignedCatalog {
    let catalog_json = serde_json::to_vec(catalog).expect("catalog serializes");
    let signature = key.sign(&catalog_json).to_bytes().to_vec();
    SignedCatalog {
        catalog_json,
        signature,
    }
}

/// Verifies a signed catalog against the raw 32-byte public key and decodes it.
pub fn verify_catalog(public_key: &[u8], signed: &SignedCatalog) -> Result<Catalog, VerifyError> {
    let key_bytes: [u8; 32] = public_key.try_into().map_err(|_| VerifyError::BadKey)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| VerifyError::BadKey)?;
    let signature =
        Signature::from_slice(&signed.signature).map_err(|_| VerifyError::BadSignature)?;
    key.verify(&signed.catalog_json, &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let catalog: Catalog =
        serde_json::from_slice(&signed.catalog_json).map_err(VerifyError::Malformed)?;
    if catalog.format != catalog::FORMAT {
        return Err(VerifyError::Format(catalog.format));
    }
    let actual = catalog.content.digest();
    if actual != catalog.digest {
        return Err(VerifyError::DigestMismatch {
            claimed: catalog.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogContent;

    fn sample() -> Catalog {
        let content = CatalogContent {
            role: "is".into(),
            profile: "wso2is/is".into(),
            resources: vec![],
        };
        Catalog {
            format: catalog::FORMAT,
            node: "node1".into(),
            version: 3,
            digest: content.digest(),
            compiled_at_ms: 1,
            epoch: String::new(),
            expires_at_ms: 0,
            site_revision: "0123456789abcdef".into(),
            site_commit: None,
            level_sources: Default::default(),
            content,
        }
    }

    #[test]
    fn key_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let first = load_or_create_key(&path).unwrap();
        let second = load_or_create_key(&path).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn verifies_own_signature_and_rejects_others() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let signed = sign_catalog(&key, &sample());
        let public = key.verifying_key().to_bytes();
        assert_eq!(verify_catalog(&public, &signed).unwrap(), sample());
        let foreign = sign_catalog(&other, &sample());
        assert!(matches!(
            verify_catalog(&public, &foreign),
            Err(VerifyError::BadSignature)
        ));
        let mut tampered = signed.clone();
        let last = tampered.catalog_json.len() - 2;
        tampered.catalog_json[last] ^= 1;
        assert!(verify_catalog(&public, &tampered).is_err());
    }

    #[test]
    fn rejects_a_digest_that_does_not_match_the_content() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut catalog = sample();
        catalog.digest = crate::digest::Digest::of(b"other");
        let signed = sign_catalog(&key, &catalog);
        assert!(matches!(
            verify_catalog(&key.verifying_key().to_bytes(), &signed),
            Err(VerifyError::DigestMismatch { .. })
        ));
    }
}
