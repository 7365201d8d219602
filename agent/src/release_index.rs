//! A release's check index (`.rigger-release.index`, next to its marker):
//! every entry of the release's manifest, in the manifest's order, with
//! the stat key (size, mtime, inode) each enforced file had when it was
//! written. A converged run checks the release from this one file:
//! neither the manifest nor a map of paths is decoded, which were most of
//! a converged run's check. The columns decode into a few vectors, the
//! paths are read in place from the file's bytes. It holds no digests: a
//! file whose stat key moved is hashed against the manifest.
//!
//! It is the agent's own bookkeeping, made from a manifest it had
//! validated, and it names that manifest (the tree digest). An index that
//! does not decode, does not add up, or names another tree is not used:
//! the check reads the manifest instead and the next write replaces it.
//! Anyone who can replace it can replace the marker too: it trusts the
//! release folder exactly as the marker's stat index did.

use std::path::Path;

use bytes::Bytes;
use prost::Message;
use rigger_common::beneath::Beneath;
use rigger_common::digest::Digest;
use rigger_common::manifest::{EntryKind, Manifest};

use crate::release::{MarkerWrite, StatIndex, StatKey};
use crate::resources::ResourceError;

/// The index file inside every release written by this agent.
pub const INDEX: &str = ".rigger-release.index";

const FILE: u32 = 0;
const DIR: u32 = 1;
const SYMLINK: u32 = 2;
const NANOS: i128 = 1_000_000_000;

/// The file's form: columns, one value per entry, per file or per link.
#[derive(Clone, PartialEq, Message)]
struct Columns {
    /// The tree digest of the manifest it was made from.
    #[prost(bytes = "vec", tag = "1")]
    tree: Vec<u8>,
    /// Per entry: its path followed by a NUL.
    #[prost(bytes = "bytes", tag = "2")]
    paths: Bytes,
    /// Per entry: its mode.
    #[prost(uint32, repeated, tag = "3")]
    modes: Vec<u32>,
    /// Per entry: 0 a file, 1 a folder, 2 a link.
    #[prost(uint32, repeated, tag = "4")]
    kinds: Vec<u32>,
    /// Per file: its size in the manifest.
    #[prost(uint64, repeated, tag = "5")]
    sizes: Vec<u64>,
    /// Per file: whether it has a stat key (the next four columns).
    #[prost(bool, repeated, tag = "7")]
    indexed: Vec<bool>,
    #[prost(uint64, repeated, tag = "8")]
    stat_sizes: Vec<u64>,
    #[prost(int64, repeated, tag = "9")]
    stat_seconds: Vec<i64>,
    #[prost(uint32, repeated, tag = "10")]
    stat_nanos: Vec<u32>,
    #[prost(uint64, repeated, tag = "11")]
    stat_inodes: Vec<u64>,
    /// Per link: its target followed by a NUL.
    #[prost(bytes = "bytes", tag = "12")]
    targets: Bytes,
}

/// What one entry of the release should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedKind<'a> {
    /// A file of this size.
    File {
        /// Its size.
        size: u64,
        /// Its stat key when written, if it has one.
        stat: Option<StatKey>,
    },
    /// A folder.
    Dir,
    /// A link to `target`.
    Symlink {
        /// Where it points.
        target: &'a str,
    },
}

/// One entry of the index, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedEntry<'a> {
    /// Release-relative path.
    pub path: &'a str,
    /// Mode bits.
    pub mode: u32,
    /// What it is.
    pub kind: IndexedKind<'a>,
}

/// A decoded, consistent release index.
#[derive(Debug)]
pub struct ReleaseIndex {
    columns: Columns,
}

/// Writes the index of a release built from `manifest` (tree `tree`)
/// whose enforced files had the keys in `index`.
pub fn write(
    release: &Beneath,
    tree: &Digest,
    manifest: &Manifest,
    index: &StatIndex,
    how: MarkerWrite,
) -> Result<(), ResourceError> {
    Ok(how.write(release, INDEX, &encode(tree, manifest, index))?)
}

fn encode(tree: &Digest, manifest: &Manifest, index: &StatIndex) -> Vec<u8> {
    let mut c = Columns {
        tree: tree.as_bytes().to_vec(),
        ..Columns::default()
    };
    let mut paths = Vec::new();
    let mut targets = Vec::new();
    for e in &manifest.entries {
        paths.extend_from_slice(e.path.as_bytes());
        paths.push(0);
        c.modes.push(e.mode);
        match &e.kind {
            EntryKind::File { size, .. } => {
                c.kinds.push(FILE);
                c.sizes.push(*size);
                let stat = index.get(&e.path).and_then(|&(size, mtime, inode)| {
                    let seconds = i64::try_from(mtime.div_euclid(NANOS)).ok()?;
                    let nanos = u32::try_from(mtime.rem_euclid(NANOS)).ok()?;
                    Some((size, seconds, nanos, inode))
                });
                c.indexed.push(stat.is_some());
                let (size, seconds, nanos, inode) = stat.unwrap_or_default();
                c.stat_sizes.push(size);
                c.stat_seconds.push(seconds);
                c.stat_nanos.push(nanos);
                c.stat_inodes.push(inode);
            }
            EntryKind::Dir => c.kinds.push(DIR),
            EntryKind::Symlink { target } => {
                c.kinds.push(SYMLINK);
                targets.extend_from_slice(target.as_bytes());
                targets.push(0);
            }
        }
    }
    c.paths = paths.into();
    c.targets = targets.into();
    c.encode_to_vec()
}

impl ReleaseIndex {
    /// The index of the release at `dir`, when it is there, consistent and
    /// made from tree `tree`.
    pub fn read(dir: &Path, tree: &Digest) -> Option<Self> {
        let bytes = std::fs::read(dir.join(INDEX)).ok()?;
        match Self::decode(bytes.into(), tree) {
            Ok(index) => Some(index),
            Err(why) => {
                tracing::warn!(release = %dir.display(), why, "the release's check index is not used: the release is checked against its manifest and the index written again");
                None
            }
        }
    }

    /// `bytes` as an index of tree `tree` (its paths stay in `bytes`).
    fn decode(bytes: Bytes, tree: &Digest) -> Result<Self, &'static str> {
        let c = Columns::decode(bytes).map_err(|_| "it does not decode")?;
        if c.tree.as_slice() != tree.as_bytes() {
            return Err("it was made from another tree");
        }
        let entries = c.modes.len();
        let count = |kind| c.kinds.iter().filter(|&&k| k == kind).count();
        let ends = |text: &[u8]| text.iter().filter(|&&b| b == 0).count();
        let files = count(FILE);
        let consistent = c.kinds.len() == entries
            && files + count(DIR) + count(SYMLINK) == entries
            && ends(&c.paths) == entries
            && c.paths.last().is_none_or(|&b| b == 0)
            && ends(&c.targets) == count(SYMLINK)
            && c.targets.last().is_none_or(|&b| b == 0)
            && c.sizes.len() == files
            && [
                c.indexed.len(),
                c.stat_sizes.len(),
                c.stat_seconds.len(),
                c.stat_nanos.len(),
                c.stat_inodes.len(),
            ]
            .iter()
            .all(|&n| n == files);
        if !consistent {
            return Err("its columns do not add up");
        }
        if std::str::from_utf8(&c.paths).is_err() || std::str::from_utf8(&c.targets).is_err() {
            return Err("a path is not UTF-8");
        }
        Ok(Self { columns: c })
    }

    /// Every entry, in the manifest's order.
    pub fn entries(&self) -> impl Iterator<Item = IndexedEntry<'_>> {
        let c = &self.columns;
        // Checked in `decode`: UTF-8, one NUL-terminated text per entry or link.
        fn texts(bytes: &[u8]) -> std::str::SplitTerminator<'_, char> {
            std::str::from_utf8(bytes)
                .unwrap_or_default()
                .split_terminator('\0')
        }
        let mut paths = texts(&c.paths);
        let mut targets = texts(&c.targets);
        let mut file = 0;
        c.kinds.iter().zip(&c.modes).map(move |(&kind, &mode)| {
            let path = paths.next().unwrap_or_default();
            let kind = match kind {
                FILE => {
                    let i = file;
                    file += 1;
                    IndexedKind::File {
                        size: c.sizes[i],
                        stat: c.indexed[i].then(|| {
                            (
                                c.stat_sizes[i],
                                i128::from(c.stat_seconds[i]) * NANOS + i128::from(c.stat_nanos[i]),
                                c.stat_inodes[i],
                            )
                        }),
                    }
                }
                DIR => IndexedKind::Dir,
                _ => IndexedKind::Symlink {
                    target: targets.next().unwrap_or_default(),
                },
            };
            IndexedEntry { path, mode, kind }
        })
    }

    /// The stat keys as a map by path (for the writers, which add to it).
    pub fn stat_index(&self) -> StatIndex {
        self.entries()
            .filter_map(|e| match e.kind {
                IndexedKind::File {
                    stat: Some(key), ..
                } => Some((e.path.to_string(), key)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rigger_common::manifest::Entry;

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
                    path: "lib/current".into(),
                    mode: 0o777,
                    kind: EntryKind::Symlink {
                        target: "../lib/v1 é".into(),
                    },
                },
                file("repository/conf/é \"quoted\".xml", 0o644, b"<x/>"),
                file("lib/a.jar", 0o644, b"jar"),
            ],
        }
    }

    #[test]
    fn every_entry_and_stat_key_reads_back_in_the_manifest_s_order() {
        let manifest = sample();
        let tree = Digest::of(b"tree");
        let index: StatIndex = [
            (
                "bin/wso2server.sh".to_string(),
                (10, 1_700_000_000_123_456_789, 42),
            ),
            // Before 1970: the seconds are negative, the nanoseconds not.
            ("lib/a.jar".to_string(), (3, -1_500_000_000, 7)),
        ]
        .into();
        let read = ReleaseIndex::decode(encode(&tree, &manifest, &index).into(), &tree).unwrap();
        let entries: Vec<IndexedEntry> = read.entries().collect();
        assert_eq!(entries.len(), manifest.entries.len());
        for (got, want) in entries.iter().zip(&manifest.entries) {
            assert_eq!((got.path, got.mode), (want.path.as_str(), want.mode));
            match (&got.kind, &want.kind) {
                (IndexedKind::File { size, stat }, EntryKind::File { size: s, .. }) => {
                    assert_eq!(size, s);
                    assert_eq!(stat.as_ref(), index.get(&want.path), "{}", want.path);
                }
                (IndexedKind::Dir, EntryKind::Dir) => {}
                (IndexedKind::Symlink { target }, EntryKind::Symlink { target: t }) => {
                    assert_eq!(target, t)
                }
                other => panic!("kinds differ: {other:?}"),
            }
        }
        assert_eq!(read.stat_index(), index);
    }

    #[test]
    fn an_index_of_another_tree_or_that_does_not_add_up_is_refused() {
        let manifest = sample();
        let tree = Digest::of(b"tree");
        let bytes = encode(&tree, &manifest, &StatIndex::new());
        let refused = |columns: Columns| {
            ReleaseIndex::decode(columns.encode_to_vec().into(), &tree).unwrap_err()
        };
        let columns = || Columns::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            ReleaseIndex::decode(bytes.clone().into(), &Digest::of(b"other")).unwrap_err(),
            "it was made from another tree"
        );
        assert!(ReleaseIndex::decode(Bytes::from_static(b"\xff\xff\xff"), &tree).is_err());
        let mut short = columns();
        short.stat_inodes.pop();
        assert_eq!(refused(short), "its columns do not add up");
        let mut unended = columns();
        unended.paths = [&unended.paths[..], b"x"].concat().into();
        assert_eq!(refused(unended), "its columns do not add up");
        let mut kind = columns();
        kind.kinds[0] = 7;
        assert_eq!(refused(kind), "its columns do not add up");
        let mut latin1 = columns();
        latin1.paths = [&[0xe9][..], &latin1.paths[1..]].concat().into();
        assert_eq!(refused(latin1), "a path is not UTF-8");
    }
}
