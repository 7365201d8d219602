//! Trees: a product distribution as a manifest of entries (relative path,
//! mode, and for files size and sha256). The manifest's own digest names
//! the tree; its JSON is stored as a blob like any file.
//!
//! Invariant: every path is relative, `/`-separated, free of `.`/`..` and
//! empty components; no symlink points outside the tree.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FlatEntry")]
pub struct Entry {
    /// Path relative to the tree root.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// What it is.
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// File, directory or symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file stored as a blob.
    File {
        /// Size in bytes.
        size: u64,
        /// Content digest.
        digest: Digest,
    },
    /// A directory.
    Dir,
    /// A symbolic link (relative target, inside the tree).
    Symlink {
        /// Link target.
        target: String,
    },
}

impl Entry {
    /// The blob of a regular file (`None` for a folder or a link).
    pub fn file_digest(&self) -> Option<Digest> {
        match self.kind {
            EntryKind::File { digest, .. } => Some(digest),
            _ => None,
        }
    }

    /// The blob of a regular file and its size (`None` for a folder or a
    /// link).
    pub fn file_blob(&self) -> Option<(Digest, u64)> {
        match self.kind {
            EntryKind::File { digest, size } => Some((digest, size)),
            _ => None,
        }
    }
}

/// An entry as it lies in the JSON, read in one pass: serde's `flatten`
/// over an internally tagged enum buffers every entry twice, and a
/// converged run reads a 3000-entry manifest each time.
#[derive(Deserialize)]
struct FlatEntry {
    path: String,
    mode: u32,
    #[serde(rename = "type")]
    kind: FlatKind,
    size: Option<u64>,
    digest: Option<Digest>,
    target: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FlatKind {
    File,
    Dir,
    Symlink,
}

impl TryFrom<FlatEntry> for Entry {
    type Error = String;

    fn try_from(e: FlatEntry) -> Result<Self, String> {
        let kind = match (e.kind, e.size, e.digest, e.target) {
            (FlatKind::File, Some(size), Some(digest), None) => EntryKind::File { size, digest },
            (FlatKind::Dir, None, None, None) => EntryKind::Dir,
            (FlatKind::Symlink, None, None, Some(target)) => EntryKind::Symlink { target },
            _ => {
                return Err(format!(
                    "entry {}: a file has a size and a digest, a link a target, a folder neither",
                    e.path
                ));
            }
        };
        Ok(Self {
            path: e.path,
            mode: e.mode,
            kind,
        })
    }
}

/// A tree's manifest: entries sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Entries, sorted by path, unique.
    pub entries: Vec<Entry>,
}

/// A path or entry that may not be part of a tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Absolute, `..`, empty component or NUL.
    #[error(
        "unsafe path {0:?} in the archive: absolute paths, `..` and empty components are refused"
    )]
    UnsafePath(String),
    /// A symlink pointing outside the tree.
    #[error("symlink {path:?} points outside the tree ({target:?})")]
    SymlinkEscape {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// An entry lies beneath a file or a symlink (writing it would follow
    /// the link, or the file would need children).
    #[error("{path:?} lies beneath {parent:?}, which is not a directory")]
    BeneathNonDirectory {
        /// The entry.
        path: String,
        /// The ancestor that is a file or a symlink.
        parent: String,
    },
    /// The JSON does not decode.
    #[error("manifest does not decode: {0}")]
    Decode(String),
}

/// Links followed at most while resolving one path (Linux's MAXSYMLINKS).
const MAX_LINK_HOPS: usize = 40;

/// Resolves `target` of the link at `path` against the tree's own links,
/// as the kernel would once the tree is on disk: `..` climbs from what a
/// link really points to, not from its name. False when the resolution
/// leaves the tree at any step, or follows more than [`MAX_LINK_HOPS`] links.
fn resolves_inside(links: &BTreeMap<&str, &str>, path: &str, target: &str) -> bool {
    // The real (link-free) components of where we are: the link's directory.
    let mut at: Vec<String> = path.split('/').map(str::to_string).collect();
    at.pop();
    let mut pending: Vec<String> = Vec::new();
    let mut hops = 0;
    push_target(&mut pending, target);
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            name => {
                at.push(name.to_string());
                if let Some(next) = links.get(at.join("/").as_str()) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS || next.starts_with('/') || next.is_empty() {
                        return false;
                    }
                    at.pop();
                    push_target(&mut pending, next);
                }
            }
        }
    }
    true
}

/// Queues a link target's components so that `pop` yields them in order.
fn push_target(pending: &mut Vec<String>, target: &str) {
    pending.extend(target.split('/').rev().map(str::to_string));
}

/// Checks what a tree may not hold: a symlink that escapes it (alone or by
/// a chain of its links), an entry beneath a file or a link.
fn check_tree<'a>(entries: impl Iterator<Item = &'a Entry> + Clone) -> Result<(), ManifestError> {
    // Paths nothing may lie beneath: files and links.
    let not_folders: HashSet<&str> = entries
        .clone()
        .filter(|e| !matches!(e.kind, EntryKind::Dir))
        .map(|e| e.path.as_str())
        .collect();
    let links: BTreeMap<&str, &str> = entries
        .clone()
        .filter_map(|e| match &e.kind {
            EntryKind::Symlink { target } => Some((e.path.as_str(), target.as_str())),
            _ => None,
        })
        .collect();
    // Folders already known to be no file or link, nor beneath one: most
    // entries share their parents, which are looked at once.
    let mut clean: HashSet<&str> = HashSet::new();
    for entry in entries {
        let mut parent = entry.path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            if clean.contains(dir) {
                break;
            }
            if not_folders.contains(dir) {
                return Err(ManifestError::BeneathNonDirectory {
                    path: entry.path.clone(),
                    parent: dir.to_string(),
                });
            }
            parent = dir;
        }
        // Every folder walked above is clean now.
        let mut walked = entry.path.as_str();
        while let Some((dir, _)) = walked.rsplit_once('/') {
            if !clean.insert(dir) {
                break;
            }
            walked = dir;
        }
        if let EntryKind::Symlink { target } = &entry.kind {
            if !symlink_stays_inside(&entry.path, target)
                || !resolves_inside(&links, &entry.path, target)
            {
                return Err(ManifestError::SymlinkEscape {
                    path: entry.path.clone(),
                    target: target.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Normalises an archive path (`./a//b/` → `a/b`) and refuses unsafe ones.
pub fn clean_path(raw: &str) -> Result<String, ManifestError> {
    if raw.starts_with('/') || raw.contains('\0') || raw.contains('\\') {
        return Err(ManifestError::UnsafePath(raw.to_string()));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err(ManifestError::UnsafePath(raw.to_string())),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(ManifestError::UnsafePath(raw.to_string()));
    }
    Ok(parts.join("/"))
}

/// Whether `path` is already what [`clean_path`] makes of it (checked
/// without making it).
pub fn is_clean_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\0', '\\'])
        && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// Whether a symlink at `path` with `target` stays inside the tree.
pub fn symlink_stays_inside(path: &str, target: &str) -> bool {
    if target.starts_with('/') || target.is_empty() {
        return false;
    }
    let mut depth: i64 = path.matches('/').count() as i64; // the link's directory depth
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

impl Manifest {
    /// Builds a manifest from entries keyed by path (sorted, unique), checking
    /// symlinks and adding missing parent directories.
    pub fn from_entries(entries: BTreeMap<String, Entry>) -> Result<Self, ManifestError> {
        let mut entries = entries;
        let paths: Vec<String> = entries.keys().cloned().collect();
        for path in paths {
            let mut parent = path.as_str();
            while let Some((dir, _)) = parent.rsplit_once('/') {
                entries.entry(dir.to_string()).or_insert_with(|| Entry {
                    path: dir.to_string(),
                    mode: 0o755,
                    kind: EntryKind::Dir,
                });
                parent = dir;
            }
        }
        check_tree(entries.values())?;
        Ok(Self {
            entries: entries.into_values().collect(),
        })
    }

    /// The canonical JSON (what the tree digest covers).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }

    /// Decodes manifest JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Decode(e.to_string()))?;
        for entry in &manifest.entries {
            if !is_clean_path(&entry.path) {
                return Err(ManifestError::UnsafePath(entry.path.clone()));
            }
        }
        check_tree(manifest.entries.iter())?;
        Ok(manifest)
    }

    /// The tree digest: sha256 of the canonical JSON.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_json())
    }

    /// Every file blob digest, once each.
    pub fn file_digests(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self.entries.iter().filter_map(Entry::file_digest).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Total bytes of the files.
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }

    /// Entries by path.
    pub fn by_path(&self) -> BTreeMap<&str, &Entry> {
        self.entries.iter().map(|e| (e.path.as_str(), e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written_and_a_mixed_entry_is_refused() {
        let json = br#"{"entries":[{"path":"bin","mode":493,"type":"dir"},{"path":"bin/a","mode":420,"type":"file","size":1,"digest":"sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"},{"path":"bin/l","mode":511,"type":"symlink","target":"a"}]}"#;
        let manifest = Manifest::from_json(json).unwrap();
        assert_eq!(manifest.to_json(), json.to_vec());
        let mixed = br#"{"entries":[{"path":"bin","mode":493,"type":"dir","target":"x"}]}"#;
        let err = Manifest::from_json(mixed).unwrap_err().to_string();
        assert!(err.contains("entry bin"), "{err}");
    }

    fn file(path: &str, content: &[u8]) -> (String, Entry) {
        (
            path.to_string(),
            Entry {
                path: path.to_string(),
                mode: 0o644,
                kind: EntryKind::File {
                    size: content.len() as u64,
                    digest: Digest::of(content),
                },
            },
        )
    }

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean_path("./a//b/").unwrap(), "a/b");
        for bad in ["/etc/passwd", "a/../../b", "..", "", "a\\b"] {
            assert!(clean_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_clean_path_is_one_cleaning_leaves_as_it_is() {
        for path in [
            "a/b",
            "./a//b/",
            "a/./b",
            "a/",
            "/a",
            "a/..",
            "..",
            "",
            ".",
            "a\\b",
            "a\0b",
            "lib/x.jar",
        ] {
            assert_eq!(
                is_clean_path(path),
                clean_path(path).as_deref() == Ok(path),
                "{path:?}"
            );
        }
    }

    #[test]
    fn symlinks_may_not_escape() {
        assert!(symlink_stays_inside("a/b/link", "../c"));
        assert!(symlink_stays_inside("link", "a/b"));
        assert!(!symlink_stays_inside("link", "../x"));
        assert!(!symlink_stays_inside("a/link", "../../x"));
        assert!(!symlink_stays_inside("a/link", "/etc"));
    }

    #[test]
    fn parents_are_added_and_json_round_trips() {
        let m = Manifest::from_entries(BTreeMap::from([
            file("a/b/c.txt", b"x"),
            file("d.txt", b"y"),
        ]))
        .unwrap();
        let paths: Vec<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["a", "a/b", "a/b/c.txt", "d.txt"]);
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.digest(), m.digest());
        assert_eq!(m.file_digests().len(), 2);
        assert_eq!(m.total_size(), 2);
    }

    fn link(path: &str, target: &str) -> (String, Entry) {
        (
            path.to_string(),
            Entry {
                path: path.to_string(),
                mode: 0o777,
                kind: EntryKind::Symlink {
                    target: target.to_string(),
                },
            },
        )
    }

    fn dir(path: &str) -> (String, Entry) {
        (
            path.to_string(),
            Entry {
                path: path.to_string(),
                mode: 0o755,
                kind: EntryKind::Dir,
            },
        )
    }

    /// The hostile pack: every link points "inside" on its own, but
    /// `lib/e1 -> ..` makes `lib/e1/e2/..` climb from the root.
    #[test]
    fn a_chain_of_links_that_climbs_out_is_refused() {
        let chain = BTreeMap::from([
            dir("lib"),
            link("lib/e1", ".."),
            link("e2", ".."),
            link("bin", "lib/e1/e2/OUTSIDE"),
        ]);
        let err = Manifest::from_entries(chain.clone()).unwrap_err();
        assert_eq!(
            err,
            ManifestError::SymlinkEscape {
                path: "bin".into(),
                target: "lib/e1/e2/OUTSIDE".into()
            }
        );
        // The same entries as a manifest a (compromised) master sends.
        let json = serde_json::to_vec(&Manifest {
            entries: chain.into_values().collect(),
        })
        .unwrap();
        assert!(matches!(
            Manifest::from_json(&json),
            Err(ManifestError::SymlinkEscape { .. })
        ));
        // A loop never resolves.
        let looping = BTreeMap::from([link("a", "b/x"), link("b", "a")]);
        assert!(Manifest::from_entries(looping).is_err());
        // Links through links that stay inside are fine.
        let fine = BTreeMap::from([
            dir("lib"),
            link("lib/current", "v2"),
            file("lib/v2/a.jar", b"a"),
            link("bin/a.jar", "../lib/current/a.jar"),
        ]);
        Manifest::from_entries(fine).unwrap();
    }

    #[test]
    fn an_entry_beneath_a_file_or_a_link_is_refused() {
        let under_link = BTreeMap::from([link("conf", "/etc"), file("conf/passwd", b"x")]);
        assert!(Manifest::from_entries(under_link).is_err(), "absolute link");
        let under_link = BTreeMap::from([dir("d"), link("conf", "d"), file("conf/x", b"x")]);
        assert_eq!(
            Manifest::from_entries(under_link).unwrap_err(),
            ManifestError::BeneathNonDirectory {
                path: "conf/x".into(),
                parent: "conf".into()
            }
        );
        let under_file = BTreeMap::from([file("a", b"x"), file("a/b", b"y")]);
        assert!(matches!(
            Manifest::from_entries(under_file),
            Err(ManifestError::BeneathNonDirectory { .. })
        ));
        // Folders seen clean once are not looked at again; a file among
        // them still is, whatever order a master lists the entries in.
        let sibling = BTreeMap::from([
            dir("a"),
            dir("a/b"),
            file("a/b/c", b"x"),
            file("a/b/f", b"y"),
            file("a/b/f/g", b"z"),
        ]);
        assert!(matches!(
            Manifest::from_entries(sibling.clone()),
            Err(ManifestError::BeneathNonDirectory { parent, .. }) if parent == "a/b/f"
        ));
        let reversed = Manifest {
            entries: sibling.into_values().rev().collect(),
        };
        assert!(matches!(
            Manifest::from_json(&serde_json::to_vec(&reversed).unwrap()),
            Err(ManifestError::BeneathNonDirectory { parent, .. }) if parent == "a/b/f"
        ));
    }

    #[test]
    fn a_decoded_manifest_with_an_unsafe_path_is_refused() {
        let json = br#"{"entries":[{"path":"../x","mode":420,"type":"dir"}]}"#;
        assert!(Manifest::from_json(json).is_err());
    }
}
