//! A manifest in a compact binary form (protobuf, through prost), for a
//! node's own cache: decoding it is several times cheaper than the JSON,
//! and a converged run reads the manifest of every release it checks.
//!
//! The JSON stays the manifest's identity (its digest is the tree digest)
//! and what the master sends. A packed copy is only ever made from a
//! manifest that was already decoded and validated, and it names the
//! digest of the manifest it was made from; one that does not decode or
//! names another manifest is refused, and the caller reads the JSON.

use prost::Message;

use crate::digest::Digest;
use crate::manifest::{Entry, EntryKind, Manifest};

/// The packed form: the source manifest's digest and its entries.
#[derive(Clone, PartialEq, Message)]
struct PackedManifest {
    #[prost(bytes = "vec", tag = "1")]
    source: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<PackedEntry>,
}

/// One entry: `kind` 0 a file (size, digest), 1 a folder, 2 a link (target).
#[derive(Clone, PartialEq, Message)]
struct PackedEntry {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(uint32, tag = "2")]
    mode: u32,
    #[prost(uint32, tag = "3")]
    kind: u32,
    #[prost(uint64, tag = "4")]
    size: u64,
    #[prost(bytes = "vec", tag = "5")]
    digest: Vec<u8>,
    #[prost(string, tag = "6")]
    target: String,
}

const FILE: u32 = 0;
const DIR: u32 = 1;
const SYMLINK: u32 = 2;

/// Why a packed manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackedError {
    /// Not a packed manifest.
    #[error("does not decode: {0}")]
    Decode(String),
    /// Made from another manifest than the one asked for.
    #[error("was made from manifest sha256:{found}, not {wanted}")]
    OtherSource {
        /// The digest asked for.
        wanted: Digest,
        /// The digest it names.
        found: String,
    },
    /// An entry that is neither a file, a folder nor a link.
    #[error("entry {0:?} has an unknown kind or a malformed digest")]
    BadEntry(String),
}

/// `manifest` (whose digest is `source`) in the packed form.
pub fn pack(manifest: &Manifest, source: &Digest) -> Vec<u8> {
    let entries = manifest
        .entries
        .iter()
        .map(|e| {
            let mut packed = PackedEntry {
                path: e.path.clone(),
                mode: e.mode,
                ..Default::default()
            };
            match &e.kind {
                EntryKind::File { size, digest } => {
                    packed.kind = FILE;
                    packed.size = *size;
                    packed.digest = digest.as_bytes().to_vec();
                }
                EntryKind::Dir => packed.kind = DIR,
                EntryKind::Symlink { target } => {
                    packed.kind = SYMLINK;
                    packed.target = target.clone();
                }
            }
            packed
        })
        .collect();
    PackedManifest {
        source: source.as_bytes().to_vec(),
        entries,
    }
    .encode_to_vec()
}

/// The manifest `bytes` packs, when they were made from manifest `source`.
pub fn unpack(bytes: &[u8], source: &Digest) -> Result<Manifest, PackedError> {
    let packed = PackedManifest::decode(bytes).map_err(|e| PackedError::Decode(e.to_string()))?;
    if packed.source.as_slice() != source.as_bytes() {
        return Err(PackedError::OtherSource {
            wanted: *source,
            found: hex::encode(&packed.source),
        });
    }
    let entries = packed
        .entries
        .into_iter()
        .map(|e| {
            let kind = match e.kind {
                FILE => EntryKind::File {
                    size: e.size,
                    digest: Digest::from_bytes(
                        e.digest
                            .as_slice()
                            .try_into()
                            .map_err(|_| PackedError::BadEntry(e.path.clone()))?,
                    ),
                },
                DIR => EntryKind::Dir,
                SYMLINK => EntryKind::Symlink { target: e.target },
                _ => return Err(PackedError::BadEntry(e.path)),
            };
            Ok(Entry {
                path: e.path,
                mode: e.mode,
                kind,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Manifest { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let file = |path: &str, mode, text: &[u8]| Entry {
            path: path.into(),
            mode,
            kind: EntryKind::File {
                size: text.len() as u64,
                digest: Digest::of(text),
            },
        };
        Manifest {
            entries: vec![
                Entry {
                    path: "bin".into(),
                    mode: 0o755,
                    kind: EntryKind::Dir,
                },
                file("bin/wso2server.sh", 0o755, b"#!/bin/sh\n"),
                Entry {
                    path: "latest".into(),
                    mode: 0o777,
                    kind: EntryKind::Symlink {
                        target: "bin".into(),
                    },
                },
                file("README.txt", 0o644, b""),
            ],
        }
    }

    #[test]
    fn a_packed_manifest_unpacks_to_the_same_entries() {
        let manifest = sample();
        let source = manifest.digest();
        let packed = pack(&manifest, &source);
        assert_eq!(unpack(&packed, &source), Ok(manifest.clone()));
        assert!(packed.len() < manifest.to_json().len());
    }

    #[test]
    fn a_copy_made_from_another_manifest_is_refused() {
        let manifest = sample();
        let packed = pack(&manifest, &manifest.digest());
        let other = Digest::of(b"another tree");
        assert!(matches!(
            unpack(&packed, &other),
            Err(PackedError::OtherSource { wanted, .. }) if wanted == other
        ));
    }

    #[test]
    fn damaged_bytes_are_refused_not_guessed() {
        let manifest = sample();
        let source = manifest.digest();
        let packed = pack(&manifest, &source);
        assert!(unpack(&packed[..packed.len() - 3], &source).is_err());
        assert!(unpack(b"{\"entries\":[]}", &source).is_err());
        let mut bad = PackedManifest::decode(packed.as_slice()).unwrap();
        bad.entries[1].kind = 7;
        assert_eq!(
            unpack(&bad.encode_to_vec(), &source),
            Err(PackedError::BadEntry("bin/wso2server.sh".into()))
        );
        bad.entries[1].kind = FILE;
        bad.entries[1].digest.truncate(31);
        assert!(unpack(&bad.encode_to_vec(), &source).is_err());
    }
}
