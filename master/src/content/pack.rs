//! Reading a product pack (GA or a full updated pack) or an update bundle
//! into a tree: every file stored once by digest, the manifest stored as a
//! blob whose digest names the tree. Runs on blocking threads (the archive
//! is read on every core); `import.rs` orchestrates and records.

use std::collections::BTreeMap;
use std::path::Path;

use rigger_common::digest::Digest;
use rigger_common::manifest::{Entry, EntryKind, Manifest, ManifestError, clean_path};

use std::sync::Mutex;

use super::archive::{
    ArchiveError, ArchiveLimits, RawKind, Totals, for_each_entry_part, parallel_parts,
};
use super::blobs::{BlobError, BlockingBlobs, IngestError};

/// The descriptor at the root of an update bundle.
pub const BUNDLE_DESCRIPTOR: &str = "rigger-update.toml";

/// An import that failed; nothing is recorded for it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The archive could not be read or holds an unsafe entry.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The resulting tree is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Storing or reading a blob failed.
    #[error(transparent)]
    Store(#[from] BlobError),
    /// Name or version could not be read from the pack.
    #[error(
        "cannot tell the product name and version of {0}: its top folder is not NAME-VERSION (give --name and --version)"
    )]
    NameVersion(String),
    /// The pack or update contradicts itself or the product.
    #[error("{0}")]
    Pack(String),
    /// The update bundle's descriptor is missing or wrong.
    #[error("update bundle {file}: {message}")]
    Bundle {
        /// The bundle.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// A tree read from an archive.
#[derive(Debug, Clone)]
pub struct ImportedTree {
    /// Product name (from the top folder unless given).
    pub name: Option<String>,
    /// Product version (idem).
    pub version: Option<String>,
    /// Update level from `updates/config.json`, if the pack has one.
    pub level: Option<u32>,
    /// The manifest.
    pub manifest: Manifest,
    /// Its digest (the tree id); the manifest JSON is stored under it.
    pub digest: Digest,
    /// Bytes of blobs that were not in the store before.
    pub new_bytes: u64,
    /// The blobs (content and manifest) this import stored that the store
    /// did not have: what [`discard_tree`] removes when a review refuses it.
    pub new_digests: Vec<Digest>,
}

/// Removes the blobs an import stored for a tree that is refused after it
/// was built (an update whose module edits no longer apply).
pub fn discard_tree(store: &BlockingBlobs, tree: &ImportedTree) {
    discard(store, &tree.new_digests);
}

/// Reads a product archive into the store; strips the single top folder
/// (`wso2is-5.11.0/`) and reads name and version from it.
pub fn import_pack(
    store: &BlockingBlobs,
    archive: &Path,
    limits: ArchiveLimits,
) -> Result<ImportedTree, ImportError> {
    pack_from(store, read_entries(store, archive, limits)?)
}

/// Whether the archive read is an update bundle (has the descriptor at its root).
pub fn is_bundle(read: &ReadEntries) -> bool {
    read.entries.contains_key(BUNDLE_DESCRIPTOR)
}

/// Turns entries read from a full pack into a tree.
/// (A refused tree removes the blobs its read stored.)
pub fn pack_from(store: &BlockingBlobs, read: ReadEntries) -> Result<ImportedTree, ImportError> {
    let new_digests = read.new_digests.clone();
    or_discard(store, &new_digests, || tree_of_pack(store, read))
}

fn tree_of_pack(store: &BlockingBlobs, read: ReadEntries) -> Result<ImportedTree, ImportError> {
    let top = single_top_folder(&read.entries);
    let (name, version) = top.as_deref().and_then(split_name_version).unzip();
    let mut entries = BTreeMap::new();
    for (path, mut entry) in read.entries {
        let relative = match &top {
            Some(t) if path == *t => continue,
            Some(t) => path[t.len() + 1..].to_string(),
            None => path,
        };
        entry.path = relative.clone();
        entries.insert(relative, entry);
    }
    let file = |path: &str| {
        entries.get(path).and_then(|e| match e.kind {
            EntryKind::File { digest, .. } => store.read(&digest).ok(),
            _ => None,
        })
    };
    let level = file("updates/config.json").and_then(|bytes| update_level_of(&bytes));
    // A pack the wso2update tool (Updates 2.0) updated names its product in
    // updates/product.txt: it must agree with the top folder, and names
    // the product when there is none.
    let (name, version) = match file("updates/product.txt")
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .filter(|text| !text.is_empty())
    {
        None => (name, version),
        Some(text) => {
            let (n, v) = split_name_version(&text).ok_or_else(|| {
                ImportError::Pack(format!("updates/product.txt: {text:?} is not NAME-VERSION"))
            })?;
            if let (Some(top_n), Some(top_v)) = (&name, &version) {
                if (top_n, top_v) != (&n, &v) {
                    return Err(ImportError::Pack(format!(
                        "updates/product.txt names {n}-{v}, but the pack's folder is {top_n}-{top_v}"
                    )));
                }
            }
            (Some(n), Some(v))
        }
    };
    finish(
        store,
        entries,
        (name, version, level),
        read.new_bytes,
        read.new_digests,
    )
}

/// Applies an update bundle (changed files under their product-relative
/// paths plus `rigger-update.toml` naming `level` and `removed` files) over
/// `base`, returning the new tree and the bundle's level.
/// (A refused tree removes the blobs its read stored.)
pub fn bundle_from(
    store: &BlockingBlobs,
    base: &Manifest,
    archive: &Path,
    read: ReadEntries,
) -> Result<(ImportedTree, Option<u32>), ImportError> {
    let new_digests = read.new_digests.clone();
    or_discard(store, &new_digests, || {
        tree_of_bundle(store, base, archive, read)
    })
}

fn tree_of_bundle(
    store: &BlockingBlobs,
    base: &Manifest,
    archive: &Path,
    read: ReadEntries,
) -> Result<(ImportedTree, Option<u32>), ImportError> {
    let bundle_err = |message: String| ImportError::Bundle {
        file: archive.display().to_string(),
        message,
    };
    let descriptor = match read.entries.get(BUNDLE_DESCRIPTOR).map(|e| &e.kind) {
        Some(EntryKind::File { digest, .. }) => store.read(digest)?,
        _ => return Err(bundle_err(format!("no {BUNDLE_DESCRIPTOR} at its root"))),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Descriptor {
        level: Option<u32>,
        #[serde(default)]
        removed: Vec<String>,
    }
    let descriptor: Descriptor = toml::from_str(&String::from_utf8_lossy(&descriptor))
        .map_err(|e| bundle_err(format!("{BUNDLE_DESCRIPTOR}: {}", e.message())))?;
    let mut entries: BTreeMap<String, Entry> = base
        .entries
        .iter()
        .map(|e| (e.path.clone(), e.clone()))
        .collect();
    for removed in &descriptor.removed {
        let path = clean_path(removed)?;
        if entries.remove(&path).is_none() {
            return Err(bundle_err(format!(
                "removes {path}, which the base level does not have"
            )));
        }
        let prefix = format!("{path}/");
        entries.retain(|p, _| !p.starts_with(&prefix));
    }
    for (path, entry) in read.entries {
        if path != BUNDLE_DESCRIPTOR {
            entries.insert(path, entry);
        }
    }
    let tree = finish(
        store,
        entries,
        (None, None, descriptor.level),
        read.new_bytes,
        read.new_digests,
    )?;
    Ok((tree, descriptor.level))
}

/// Every entry of an archive, file content already in the store.
pub struct ReadEntries {
    pub(super) entries: BTreeMap<String, Entry>,
    pub(super) new_bytes: u64,
    /// Blobs this read stored that the store did not have: removed again
    /// when the import is refused.
    pub(super) new_digests: Vec<Digest>,
}

/// Removes the blobs a refused import stored (best effort: a blob that
/// cannot be removed is only unreferenced content).
fn discard(store: &BlockingBlobs, digests: &[Digest]) {
    let mut removed = 0;
    for digest in digests {
        match store.delete(digest) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(blob = %digest, error = %e, "cannot remove a blob of a refused import")
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            blobs = removed,
            "removed the content a refused import had stored"
        );
    }
}

/// Runs `build` over what was read; when it fails, the blobs the read
/// stored go again.
pub(super) fn or_discard<T>(
    store: &BlockingBlobs,
    new_digests: &[Digest],
    build: impl FnOnce() -> Result<T, ImportError>,
) -> Result<T, ImportError> {
    let result = build();
    if result.is_err() {
        discard(store, new_digests);
    }
    result
}

/// Reads every entry of an archive, storing file content as it streams;
/// a zip is read by several threads at once (inflate and sha256 on every core).
pub fn read_entries(
    store: &BlockingBlobs,
    archive: &Path,
    limits: ArchiveLimits,
) -> Result<ReadEntries, ImportError> {
    let parts = parallel_parts(archive);
    let totals = Totals::default();
    let stored_new = Mutex::new(Vec::new());
    let results: Vec<Result<ReadEntries, ImportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..parts)
            .map(|part| {
                let (totals, stored_new) = (&totals, &stored_new);
                scope.spawn(move || {
                    read_part(store, archive, (part, parts), limits, totals, stored_new)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ImportError::Store(BlobError::io("read the archive")(
                        std::io::Error::other("import thread panicked"),
                    )))
                })
            })
            .collect()
    });
    let new_digests = stored_new.into_inner().expect("stored blobs");
    or_discard(store, &new_digests, || {
        let mut all = ReadEntries {
            entries: BTreeMap::new(),
            new_bytes: 0,
            new_digests: new_digests.clone(),
        };
        for result in results {
            let read = result?;
            for (path, entry) in read.entries {
                if all.entries.insert(path.clone(), entry).is_some() {
                    return Err(duplicate(&path));
                }
            }
            all.new_bytes += read.new_bytes;
        }
        Ok(all)
    })
}

fn duplicate(path: &str) -> ImportError {
    ImportError::Archive(ArchiveError::Entry {
        entry: path.to_string(),
        message: "the archive holds this path more than once".into(),
    })
}

fn read_part(
    store: &BlockingBlobs,
    archive: &Path,
    (part, parts): (usize, usize),
    limits: ArchiveLimits,
    totals: &Totals,
    stored_new: &Mutex<Vec<Digest>>,
) -> Result<ReadEntries, ImportError> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut new_bytes = 0u64;
    for_each_entry_part(
        archive,
        part,
        parts,
        limits,
        totals,
        |raw_path, mode, kind| {
            let path = clean_path(raw_path).map_err(|e| e.to_string())?;
            let kind = match kind {
                RawKind::Dir => EntryKind::Dir,
                RawKind::Symlink(target) => EntryKind::Symlink { target },
                RawKind::File(reader) => {
                    let stored = store.ingest(reader).map_err(|e| match e {
                        IngestError::Read(e) => e.to_string(),
                        store_error => rigger_common::error_chain(&store_error),
                    })?;
                    if stored.new {
                        new_bytes += stored.size;
                        stored_new.lock().expect("stored blobs").push(stored.digest);
                    }
                    EntryKind::File {
                        size: stored.size,
                        digest: stored.digest,
                    }
                }
                RawKind::Hardlink(target) => {
                    let target = clean_path(&target).map_err(|e| e.to_string())?;
                    match entries.get(&target).map(|e| e.kind.clone()) {
                        Some(kind @ EntryKind::File { .. }) => kind,
                        _ => {
                            return Err(format!(
                                "hard link to {target}, which is not an earlier file"
                            ));
                        }
                    }
                }
            };
            if entries.contains_key(&path) {
                return Err("the archive holds this path more than once".into());
            }
            entries.insert(path.clone(), Entry { path, mode, kind });
            Ok(())
        },
    )?;
    Ok(ReadEntries {
        entries,
        new_bytes,
        new_digests: Vec::new(),
    })
}

pub(super) fn finish(
    store: &BlockingBlobs,
    entries: BTreeMap<String, Entry>,
    (name, version, level): (Option<String>, Option<String>, Option<u32>),
    new_bytes: u64,
    mut new_digests: Vec<Digest>,
) -> Result<ImportedTree, ImportError> {
    let manifest = Manifest::from_entries(entries)?;
    let stored = store.put(manifest.to_json())?;
    if stored.new {
        new_digests.push(stored.digest);
    }
    // Every blob must be durable before the tree is recorded.
    store.sync()?;
    Ok(ImportedTree {
        name,
        version,
        level,
        digest: stored.digest,
        manifest,
        new_bytes,
        new_digests,
    })
}

pub(super) fn single_top_folder(entries: &BTreeMap<String, Entry>) -> Option<String> {
    let mut tops = entries.keys().map(|p| p.split('/').next().unwrap_or(""));
    let first = tops.next()?.to_string();
    if tops.all(|t| t == first) && entries.keys().any(|p| p.contains('/')) {
        Some(first)
    } else {
        None
    }
}

/// Paths whose entry differs between two trees (added, changed or removed).
pub fn changed_paths(old: &Manifest, new: &Manifest) -> Vec<String> {
    let (old, new) = (old.by_path(), new.by_path());
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(path, entry)| {
            old.get(*path)
                .is_none_or(|o| o.kind != entry.kind || o.mode != entry.mode)
        })
        .map(|(path, _)| path.to_string())
        .collect();
    changed.extend(
        old.keys()
            .filter(|p| !new.contains_key(*p))
            .map(|p| p.to_string()),
    );
    changed.sort();
    changed
}

/// `wso2is-5.11.0` → (`wso2is`, `5.11.0`); `wso2am-3.2.0+1602172186640.full` → (`wso2am`, `3.2.0`).
pub fn split_name_version(folder: &str) -> Option<(String, String)> {
    let (name, rest) = folder.split_once('-')?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.');
    if name.is_empty() || version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((name.to_string(), version.to_string()))
}

/// `"update-level"` of an `updates/config.json` (a number or a numeric string).
pub fn update_level_of(config_json: &[u8]) -> Option<u32> {
    let value: serde_json::Value = serde_json::from_slice(config_json).ok()?;
    match value.get("update-level")? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_come_from_the_top_folder() {
        let cases = [
            ("wso2is-5.11.0", Some(("wso2is", "5.11.0"))),
            ("wso2am-3.2.0+1602172186640.full", Some(("wso2am", "3.2.0"))),
            ("jdk-17.0.6+10", Some(("jdk", "17.0.6"))),
            ("product", None),
            ("x-beta", None),
        ];
        for (folder, expected) in cases {
            let got = split_name_version(folder);
            assert_eq!(
                got.as_ref().map(|(n, v)| (n.as_str(), v.as_str())),
                expected,
                "{folder}"
            );
        }
    }

    #[test]
    fn update_levels_parse_as_numbers_or_strings() {
        assert_eq!(update_level_of(br#"{"update-level": 42}"#), Some(42));
        assert_eq!(update_level_of(br#"{"update-level": "7"}"#), Some(7));
        assert_eq!(update_level_of(br#"{"other": 1}"#), None);
    }
}
