//! Imports as operations: a product pack, an update level (full pack or
//! bundle) over the latest imported level, a single artifact. Archives are
//! read on blocking threads (`pack.rs`), the result recorded in the
//! metadata store; an update names the changed files a module renders.
//!
//! Invariant: a level is recorded only after every blob of its tree is
//! stored and flushed; the same level with other content is refused.

use std::path::PathBuf;
use std::sync::Arc;

use rigger_common::digest::Digest;
use rigger_common::error_chain;
use rigger_common::manifest::{Entry, EntryKind, Manifest};
use rigger_common::time::now_ms;

use super::blobs::BlockingBlobs;
use super::pack::{self, ImportedTree};
use crate::compiler::{Products, TreeRef};
use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::{ArtifactRecord, TreeInsert, TreeRecord};

/// A changed file of an update that a module template also renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateReview {
    /// Product-relative path.
    pub path: String,
    /// The module.
    pub module: String,
    /// The template (`templates/…`).
    pub template: String,
    /// The pack's own change to the file, unified.
    pub diff: String,
}

/// A changed file of an update that a module makes by editing the
/// product's own file: the edits were applied to the level's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditReview {
    /// Product-relative path.
    pub path: String,
    /// The module.
    pub module: String,
    /// The edits (`templates/…`).
    pub edits: String,
    /// The site roles whose edits were applied to the level's file (none:
    /// no role of the site runs this version yet).
    pub roles: Vec<String>,
}

/// What an import recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Product name.
    pub name: String,
    /// Product version.
    pub version: String,
    /// Update level.
    pub level: u32,
    /// The tree.
    pub tree: Digest,
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub size: u64,
    /// Bytes the blob store did not have before.
    pub new_bytes: u64,
    /// False when the same content was imported at this level already.
    pub created: bool,
    /// Paths that differ from the previous level (updates only).
    pub changed_paths: Vec<String>,
    /// The level the update was applied over (updates only).
    pub previous_level: u32,
    /// Changed files a module renders: review their templates.
    pub reviews: Vec<TemplateReview>,
    /// Changed files a module edits: every edit still applies.
    pub edited: Vec<EditReview>,
}

fn blocking(state: &MasterState) -> BlockingBlobs {
    BlockingBlobs::new(state.blobs.clone(), tokio::runtime::Handle::current())
}

/// Imports a GA (or full) pack; name and version from its top folder
/// unless given.
pub async fn import_product(
    state: &MasterState,
    path: &str,
    name: Option<String>,
    version: Option<String>,
) -> Result<ImportOutcome> {
    let _guard = state.import_lock.lock().await;
    let blobs = blocking(state);
    let archive = PathBuf::from(path);
    let limits = state.settings().import_limits;
    let tree = tokio::task::spawn_blocking(move || pack::import_pack(&blobs, &archive, limits))
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::InvalidArgument(format!("{path}: {}", error_chain(&e))))?;
    let name = name.or(tree.name.clone());
    let version = version.or(tree.version.clone());
    let (Some(name), Some(version)) = (name, version) else {
        return Err(Error::InvalidArgument(format!(
            "cannot tell the product name and version of {path}: its top folder is not NAME-VERSION (give --name and --version)"
        )));
    };
    let level = tree.level.unwrap_or(0);
    review_edits(state, (&name, &version, level), &tree, None).await?;
    record(state, &name, &version, level, &tree, vec![], 0).await
}

/// Imports an update level of `product` (`NAME@VERSION`) from a full
/// updated pack or an update bundle, over the latest imported level; the
/// level comes from the pack unless given.
pub async fn import_update(
    state: &MasterState,
    product: &str,
    path: &str,
    level: Option<u32>,
) -> Result<ImportOutcome> {
    let (name, version) = product.split_once('@').ok_or_else(|| {
        Error::InvalidArgument(format!(
            "product {product:?} must be NAME@VERSION, e.g. wso2is@5.11.0"
        ))
    })?;
    let (name, version) = (name.to_string(), version.to_string());
    let _guard = state.import_lock.lock().await;
    let base = state
        .store
        .trees()
        .await?
        .into_iter()
        .filter(|t| t.name == name && t.version == version)
        .max_by_key(|t| t.level)
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "{name} {version} is not imported: import its GA pack first with `masterctl product import`"
            ))
        })?;
    let blobs = blocking(state);
    let archive = PathBuf::from(path);
    let base_digest = base.digest;
    let limits = state.settings().import_limits;
    let product_id = (name.clone(), version.clone());
    let (tree, base_manifest) = tokio::task::spawn_blocking(move || {
        let base_manifest =
            Manifest::from_json(&blobs.read(&base_digest).map_err(|e| error_chain(&e))?)
                .map_err(|e| e.to_string())?;
        let read = pack::read_entries(&blobs, &archive, limits).map_err(|e| error_chain(&e))?;
        let (name, version) = (&product_id.0, &product_id.1);
        let tree = if super::wum::is_wum_update(&read) {
            super::wum::wum_from(&blobs, &base_manifest, &archive, read, (name, version))
                .map(|(t, _)| t)
        } else if pack::is_bundle(&read) {
            pack::bundle_from(&blobs, &base_manifest, &archive, read).map(|(t, _)| t)
        } else {
            pack::pack_from(&blobs, read)
        };
        let tree = tree.map_err(|e| error_chain(&e))?;
        // A pack of another product (or version) is no update of this one.
        if let (Some(n), Some(v)) = (&tree.name, &tree.version) {
            if (n, v) != (name, version) {
                pack::discard_tree(&blobs, &tree);
                return Err(format!("it is {n}-{v}, not an update of {name}-{version}"));
            }
        }
        Ok((tree, base_manifest))
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e| Error::InvalidArgument(format!("{path}: {e}")))?;
    let level = level.or(tree.level).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "cannot tell the update level of {path}: it has no updates/config.json \"update-level\" (give --level)"
        ))
    })?;
    let changed = pack::changed_paths(&base_manifest, &tree.manifest);
    let reviews = reviews(state, &name, &base_manifest, &tree.manifest, &changed).await;
    for review in &reviews {
        tracing::warn!(product = %name, level, path = %review.path, template = %review.template, "the update changes a file the module renders: review the template");
    }
    let edited = review_edits(state, (&name, &version, level), &tree, Some(&changed)).await?;
    let mut outcome = record(state, &name, &version, level, &tree, changed, base.level).await?;
    outcome.reviews = reviews;
    outcome.edited = edited;
    Ok(outcome)
}

/// Imports a single file (a JDBC driver) that modules reference by `name`.
pub async fn import_artifact(
    state: &MasterState,
    path: &str,
    name: &str,
) -> Result<ArtifactRecord> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "artifact name {name:?} is not valid"
        )));
    }
    // Imports are serialised: a refused pack removes the blobs it stored,
    // which must not be ones another import just recorded.
    let _guard = state.import_lock.lock().await;
    let blobs = blocking(state);
    let file = PathBuf::from(path);
    let stored = tokio::task::spawn_blocking(move || {
        let mut reader = std::fs::File::open(&file).map_err(|e| e.to_string())?;
        let stored = blobs.ingest(&mut reader).map_err(|e| error_chain(&e))?;
        blobs.sync().map_err(|e| error_chain(&e))?;
        Ok::<_, String>(stored)
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e| Error::InvalidArgument(format!("cannot import {path}: {e}")))?;
    let record = ArtifactRecord {
        name: name.to_string(),
        digest: stored.digest,
        size: stored.size,
        imported_at_ms: now_ms(),
    };
    state.store.upsert_artifact(&record).await?;
    // Nodes whose catalogs name the artifact get the new one now.
    state.site_changed.notify_one();
    tracing::info!(artifact = %record.name, digest = %record.digest, size = record.size, "artifact imported");
    Ok(record)
}

/// Compiles every site role that runs `name` `version` against the new
/// tree: an edit that no longer applies (a target the level removed or
/// renamed) refuses the import, its blobs removed again, with the role, the
/// edits file, the edit and the level named. Gives the `changed` files the
/// module edits (all of them for a first import, `changed` None).
async fn review_edits(
    state: &MasterState,
    (name, version, level): (&str, &str, u32),
    tree: &ImportedTree,
    changed: Option<&[String]>,
) -> Result<Vec<EditReview>> {
    let records = state.store.trees().await?;
    let artifacts = state.store.artifacts().await?;
    let first = !records
        .iter()
        .any(|r| r.name == name && r.version == version);
    let tree_ref = TreeRef {
        digest: tree.digest,
        files: tree
            .manifest
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count() as u64,
        size: tree.manifest.total_size(),
    };
    let (compiler, pack_files) = (state.compiler.clone(), state.pack_files.clone());
    let (product, product_version) = (name.to_string(), version.to_string());
    let review = tokio::task::spawn_blocking(move || {
        let snapshot = || {
            Products::from_records(&records)
                .with_artifacts(&artifacts)
                .with_secret_files(compiler.site().join("secrets/files"))
                .with_pack_files(Arc::new(pack_files.clone()))
        };
        let current = (!first).then(snapshot);
        let new = snapshot().reviewing(&product, &product_version, level, tree_ref);
        compiler.review_level(&product, &product_version, current.as_ref(), &new)
    })
    .await
    .map_err(Error::internal)?;
    if !review.problems.is_empty() {
        let blobs = blocking(state);
        let refused = tree.clone();
        let _ = tokio::task::spawn_blocking(move || pack::discard_tree(&blobs, &refused)).await;
        tracing::warn!(product = name, version, level, problems = ?review.problems, "update refused: the module's edits do not apply");
        return Err(Error::FailedPrecondition(format!(
            "level {level} of {name} {version} was not imported: the module's edits do not apply to its files (fix the module, or the level):\n  {}",
            review.problems.join("\n  ")
        )));
    }
    let edited = state
        .compiler
        .edited_files(name)
        .into_iter()
        .filter(|(path, _)| changed.is_none_or(|c| c.contains(path)))
        .map(|(path, edits)| EditReview {
            path,
            module: name.to_string(),
            edits: format!("templates/{edits}"),
            roles: review.roles.clone(),
        })
        .collect();
    Ok(edited)
}

/// The changed files a module also renders, with the pack's own diff.
async fn reviews(
    state: &MasterState,
    module: &str,
    old: &Manifest,
    new: &Manifest,
    changed: &[String],
) -> Vec<TemplateReview> {
    let (old, new) = (old.by_path(), new.by_path());
    let mut reviews = Vec::new();
    for (path, template) in state.compiler.templated_files(module) {
        if !changed.contains(&path) {
            continue;
        }
        let before = text_of(state, old.get(path.as_str())).await;
        let after = text_of(state, new.get(path.as_str())).await;
        let diff = similar::TextDiff::from_lines(&before, &after)
            .unified_diff()
            .context_radius(3)
            .header(&path, &path)
            .to_string();
        reviews.push(TemplateReview {
            path,
            module: module.to_string(),
            template: format!("templates/{template}"),
            diff,
        });
    }
    reviews
}

async fn text_of(state: &MasterState, entry: Option<&&Entry>) -> String {
    match entry.map(|e| &e.kind) {
        Some(EntryKind::File { digest, .. }) => state
            .blobs
            .read(digest)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Records an imported tree.
async fn record(
    state: &MasterState,
    name: &str,
    version: &str,
    level: u32,
    tree: &ImportedTree,
    changed_paths: Vec<String>,
    previous_level: u32,
) -> Result<ImportOutcome> {
    let files = tree
        .manifest
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .count() as u64;
    let record = TreeRecord {
        name: name.to_string(),
        version: version.to_string(),
        level,
        digest: tree.digest,
        files,
        size: tree.manifest.total_size(),
        imported_at_ms: now_ms(),
    };
    let created = match state.store.insert_tree(&record, now_ms()).await? {
        TreeInsert::New => true,
        TreeInsert::Same => false,
        TreeInsert::Conflict(existing) => {
            return Err(Error::AlreadyExists(format!(
                "level {level} of {name} {version} is already imported with other content (tree {existing})"
            )));
        }
    };
    if created {
        tracing::info!(product = name, version, level, tree = %tree.digest, files, new_bytes = tree.new_bytes, "product level imported");
        state
            .encoded_manifests
            .encode_from(state.blobs.as_ref(), tree.digest)
            .await;
        // Development environments run the highest level: their nodes get
        // it now (others only once it is promoted).
        state.site_changed.notify_one();
    }
    Ok(ImportOutcome {
        name: name.to_string(),
        version: version.to_string(),
        level,
        tree: tree.digest,
        files,
        size: record.size,
        new_bytes: tree.new_bytes,
        created,
        changed_paths,
        previous_level,
        reviews: Vec::new(),
        edited: Vec::new(),
    })
}
