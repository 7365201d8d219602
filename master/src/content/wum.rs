//! WUM-era update zips (`WSO2-CARBON-UPDATE-4.4.0-NNNN.zip`): the changed
//! files under `carbon.home/` at their CARBON_HOME-relative paths, and a
//! descriptor listing what the update adds, modifies and removes —
//! `update-descriptor3.yaml` (per compatible product) or the older
//! `update-descriptor.yaml` (`applies_to`, `file_changes`). Applied over the
//! latest imported level, the update's number becomes the level. Whatever
//! the descriptor and the files disagree on refuses the update: nothing
//! changes that the descriptor does not list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rigger_common::manifest::{Entry, EntryKind, Manifest, clean_path};
use serde::Deserialize;

use super::blobs::BlockingBlobs;
use super::pack::{ImportError, ImportedTree, ReadEntries, finish, or_discard, single_top_folder};

/// WUM 3's descriptor.
pub const DESCRIPTOR3: &str = "update-descriptor3.yaml";
/// The older descriptor.
pub const DESCRIPTOR: &str = "update-descriptor.yaml";
/// The folder holding the files, as CARBON_HOME.
const CARBON_HOME: &str = "carbon.home/";

/// The files an update adds, modifies and removes.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
struct FileChanges {
    #[serde(default)]
    added_files: Vec<String>,
    #[serde(default)]
    modified_files: Vec<String>,
    #[serde(default)]
    removed_files: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Product3 {
    product_name: String,
    product_version: String,
    #[serde(flatten)]
    changes: FileChanges,
}

#[derive(Debug, Deserialize)]
struct Descriptor3 {
    update_number: serde_json::Value,
    #[serde(default)]
    compatible_products: Vec<Product3>,
    #[serde(default)]
    partially_applicable_products: Vec<Product3>,
}

#[derive(Debug, Deserialize)]
struct Descriptor1 {
    update_number: serde_json::Value,
    #[serde(default)]
    applies_to: Option<String>,
    #[serde(default)]
    file_changes: FileChanges,
}

/// The folder the descriptor is in (`""` at the root, else a top folder
/// with a `/`), when the archive is a WUM update.
fn descriptor_folder(read: &ReadEntries) -> Option<String> {
    let top = single_top_folder(&read.entries).map(|t| format!("{t}/"));
    [String::new()].into_iter().chain(top).find(|folder| {
        read.entries.contains_key(&format!("{folder}{DESCRIPTOR3}"))
            || read.entries.contains_key(&format!("{folder}{DESCRIPTOR}"))
    })
}

/// Whether the archive read is a WUM update zip.
pub fn is_wum_update(read: &ReadEntries) -> bool {
    descriptor_folder(read).is_some()
}

/// Applies a WUM update over `base` for product `name` `version`; the new
/// tree and the update's number (its level).
/// (A refused tree removes the blobs its read stored.)
pub fn wum_from(
    store: &BlockingBlobs,
    base: &Manifest,
    archive: &Path,
    read: ReadEntries,
    (name, version): (&str, &str),
) -> Result<(ImportedTree, u32), ImportError> {
    let new_digests = read.new_digests.clone();
    or_discard(store, &new_digests, || {
        tree_of_wum(store, base, archive, read, (name, version))
    })
}

fn tree_of_wum(
    store: &BlockingBlobs,
    base: &Manifest,
    archive: &Path,
    read: ReadEntries,
    (name, version): (&str, &str),
) -> Result<(ImportedTree, u32), ImportError> {
    let wrong =
        |message: String| ImportError::Pack(format!("WUM update {}: {message}", archive.display()));
    let folder = descriptor_folder(&read).unwrap_or_default();
    let text = |file: &str| -> Result<Option<String>, ImportError> {
        match read
            .entries
            .get(&format!("{folder}{file}"))
            .map(|e| &e.kind)
        {
            Some(EntryKind::File { digest, .. }) => Ok(Some(
                String::from_utf8_lossy(&store.read(digest)?).into_owned(),
            )),
            _ => Ok(None),
        }
    };
    let (number, changes) = if let Some(yaml) = text(DESCRIPTOR3)? {
        let descriptor: Descriptor3 =
            serde_saphyr::from_str(&yaml).map_err(|e| wrong(format!("{DESCRIPTOR3}: {e}")))?;
        let mut products = descriptor
            .compatible_products
            .into_iter()
            .chain(descriptor.partially_applicable_products);
        let mut seen: Vec<String> = Vec::new();
        let found = products.find(|p| {
            seen.push(format!("{}-{}", p.product_name, p.product_version));
            p.product_name == name && p.product_version == version
        });
        let Some(product) = found else {
            return Err(wrong(format!(
                "{DESCRIPTOR3} does not apply to {name}-{version} (it lists: {})",
                if seen.is_empty() {
                    "no product".to_string()
                } else {
                    seen.join(", ")
                }
            )));
        };
        (descriptor.update_number, product.changes)
    } else {
        let yaml = text(DESCRIPTOR)?.unwrap_or_default();
        let descriptor: Descriptor1 =
            serde_saphyr::from_str(&yaml).map_err(|e| wrong(format!("{DESCRIPTOR}: {e}")))?;
        if let Some(applies) = &descriptor.applies_to {
            let wanted = format!("{name}-{version}");
            if !applies.split(',').any(|a| a.trim() == wanted) {
                return Err(wrong(format!(
                    "{DESCRIPTOR} applies to {applies}, not {wanted}"
                )));
            }
        }
        (descriptor.update_number, descriptor.file_changes)
    };
    let level = match &number {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse::<u32>().ok(),
        _ => None,
    }
    .ok_or_else(|| wrong(format!("update_number {number} is not a number")))?;

    // The files the zip carries, CARBON_HOME-relative.
    let prefix = format!("{folder}{CARBON_HOME}");
    let mut carried: BTreeMap<String, Entry> = BTreeMap::new();
    for (path, entry) in read.entries {
        if let Some(relative) = path.strip_prefix(&prefix).filter(|r| !r.is_empty()) {
            let relative = clean_path(relative)?;
            carried.insert(
                relative.clone(),
                Entry {
                    path: relative,
                    ..entry
                },
            );
        }
    }
    let mut entries: BTreeMap<String, Entry> = base
        .entries
        .iter()
        .map(|e| (e.path.clone(), e.clone()))
        .collect();
    for removed in &changes.removed_files {
        let path = clean_path(removed)?;
        if entries.remove(&path).is_none() {
            return Err(wrong(format!(
                "removes {path}, which level the update applies over does not have"
            )));
        }
    }
    let mut listed = BTreeSet::new();
    for (path, must_exist) in changes
        .added_files
        .iter()
        .map(|p| (p, false))
        .chain(changes.modified_files.iter().map(|p| (p, true)))
    {
        let path = clean_path(path)?;
        let Some(entry) = carried.get(&path) else {
            return Err(wrong(format!(
                "lists {path} but carries no {CARBON_HOME}{path}"
            )));
        };
        if must_exist && !entries.contains_key(&path) {
            return Err(wrong(format!(
                "modifies {path}, which the level it applies over does not have"
            )));
        }
        entries.insert(path.clone(), entry.clone());
        listed.insert(path);
    }
    if let Some((path, _)) = carried
        .iter()
        .find(|(p, e)| matches!(e.kind, EntryKind::File { .. }) && !listed.contains(*p))
    {
        return Err(wrong(format!(
            "carries {CARBON_HOME}{path}, which its descriptor does not list"
        )));
    }
    // Folders a new file needs.
    for (path, entry) in carried {
        if !matches!(entry.kind, EntryKind::File { .. }) {
            entries.entry(path).or_insert(entry);
        }
    }
    let tree = finish(
        store,
        entries,
        (
            Some(name.to_string()),
            Some(version.to_string()),
            Some(level),
        ),
        read.new_bytes,
        read.new_digests,
    )?;
    Ok((tree, level))
}
