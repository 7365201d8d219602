//! `tree`: a product release. The tree is materialised from the content
//! cache into a fresh directory under `releases_dir`, the catalog's
//! resources under the link (rendered configuration, links) are placed in
//! it, and only then is the link (CARBON_HOME) switched atomically.
//! Earlier releases are kept for instant rollback.
//!
//! Invariant: the link only ever points at a complete release: a release
//! directory exists under its final name only after every file is in it.
//! Invariant: a converged run stats files against an index (size, mtime,
//! inode) instead of re-hashing them; `verify` re-hashes everything.
//! Files a release shares with the cache (hard links, `sharing.rs`) are
//! never changed in place: a repair links a fresh, verified object.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use rigger_common::beneath::Beneath;
use rigger_common::catalog::{CatalogContent, Resource, ResourceSpec, TreeSpec, is_within};
use rigger_common::digest::Digest;
use rigger_common::manifest::{Entry, EntryKind, Manifest};

use super::owner::DesiredOwner;
use super::sharing::{self, Sharing, is_linked_intact, link_into_new_release, place_linked};
use super::{ApplyContext, Change, ResourceError};
use crate::file_meta::{FileMeta, is_folder_in, link_in, open_folder, stat_in};
use crate::release::{
    Release, ReleaseMarker, StatIndex, StatKey, read_head, read_marker_with, stat_key,
    write_marker, write_new_marker,
};
use crate::release_index::{IndexedEntry, IndexedKind, ReleaseIndex};

pub use crate::release::{kept_trees, release_identity};

/// Room kept free beyond the release's size.
const DISK_MARGIN: u64 = 64 << 20;

fn err(message: String) -> ResourceError {
    ResourceError::Other(message)
}

fn manifest(
    spec: &TreeSpec,
    ctx: &ApplyContext,
) -> Result<std::sync::Arc<Manifest>, ResourceError> {
    ctx.cache.manifest(&spec.tree).map_err(err)?.ok_or_else(|| {
        err(format!(
            "manifest {} of {} {} level {} is not in the cache (master unreachable?)",
            spec.tree, spec.product, spec.version, spec.level
        ))
    })
}

/// What would change.
pub fn check(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    content: &CatalogContent,
) -> Result<Vec<Change>, ResourceError> {
    let l = Release::of(spec, &ctx.paths);
    let current = match fs::symlink_metadata(&l.link) {
        Ok(m) if m.file_type().is_symlink() => ctx.paths.read_link(&l.link),
        Ok(_) => {
            return Err(err(format!(
                "{} is a real file or directory (an install Rigger does not manage?): refusing to replace it",
                l.link.display()
            )));
        }
        Err(_) => None,
    };
    let installed = read_head(&l.release).filter(|m| m.tree == spec.tree);
    match (current.as_deref() == Some(l.release.as_path()), installed) {
        (true, Some(marker)) => {
            let (owner, pending) = DesiredOwner::resolve_for_check(
                &ctx.paths,
                spec.owner.as_deref(),
                spec.group.as_deref(),
            );
            let overlays = overlay_paths(spec, content);
            let sharing = Sharing::new(marker.shared, spec, &overlays);
            // A converged run reads the release's check index alone; the
            // manifest and the marker's stat index only when a file must
            // be hashed, or the index cannot be used.
            let index = ReleaseIndex::read(&l.release, &spec.tree);
            let damaged = match index
                .as_ref()
                .filter(|_| !ctx.full_verify)
                .and_then(|index| damaged_by_index(spec, index, sharing, &l.release, &owner))
            {
                Some(damaged) => damaged,
                None => {
                    let manifest = manifest(spec, ctx)?;
                    let indexed = index.is_some();
                    let full =
                        read_marker_with(&l.release, |tree| index.filter(|_| *tree == spec.tree))
                            .filter(|m| m.tree == spec.tree);
                    let Some(full) = full else {
                        return Err(err(format!(
                            "release {} changed while it was checked",
                            spec.release_id()
                        )));
                    };
                    let Inspection { damaged, refreshed } =
                        damaged_files(spec, ctx, &manifest, &full, sharing, &l.release, &owner);
                    refresh_index(spec, (&l.release, indexed), &full, refreshed, &manifest);
                    damaged.iter().map(|e| e.path.clone()).collect()
                }
            };
            let unshared = folders_to_restore(spec, content, &marker, &l.release);
            if !unshared.is_empty() {
                return Ok(vec![Change::new(format!(
                    "restore {} in release {}: left out for the share, which the catalog no longer keeps them on",
                    unshared.join(", "),
                    spec.release_id()
                ))]);
            }
            let meta =
                fs::metadata(&l.release).map_err(super::io_error("cannot stat", &l.release))?;
            if let Some(change) = pending.or_else(|| {
                (!owner.changes(&meta).is_empty()).then(|| {
                    Change::new(format!(
                        "give release {} to {}:{}",
                        spec.release_id(),
                        spec.owner.as_deref().unwrap_or_default(),
                        spec.group.as_deref().unwrap_or_default()
                    ))
                })
            }) {
                return Ok(vec![change]);
            }
            if damaged.is_empty() {
                Ok(vec![])
            } else {
                let mut names: Vec<&str> = damaged.iter().map(String::as_str).take(5).collect();
                if damaged.len() > 5 {
                    names.push("…");
                }
                Ok(vec![Change::new(format!(
                    "repair {} modified file(s) in release {}: {}",
                    damaged.len(),
                    spec.release_id(),
                    names.join(", ")
                ))])
            }
        }
        (false, Some(_)) => Ok(vec![Change::new(format!(
            "switch {} to kept release {} (nothing to fetch)",
            spec.link,
            spec.release_id()
        ))]),
        (_, None) => Ok(vec![Change::new(format!(
            "install {} {} level {} as release {} ({} files, {} bytes) and switch {} to it",
            spec.product,
            spec.version,
            spec.level,
            spec.release_id(),
            spec.files,
            spec.size,
            spec.link
        ))]),
    }
}

/// Installs, repairs or switches to the release, then prunes old releases.
pub fn apply(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    content: &CatalogContent,
) -> Result<(), ResourceError> {
    let l = Release::of(spec, &ctx.paths);
    let root = ctx.beneath()?;
    // Built by `prepare` moments ago (its files linked, owned and
    // flushed) and unseen by any server yet: switched to as it is. Only
    // this once: a later apply inspects it like any installed release.
    let left_out = match ctx.take_built_release(&l.release) {
        Some(left_out) => left_out,
        None => install_or_repair(spec, ctx, content, &l)?,
    };
    place_overlays(spec, ctx, content, &l.release, &left_out)?;
    if let Some(parent) = l.link.parent() {
        root.create_dir_all(parent)?;
    }
    root.replace_symlink(&l.link, &ctx.paths.link_target(&l.link, &l.release))?;
    l.prune(root, spec)
}

/// Brings the release to its manifest: repairs an installed one (and
/// restores the folders the share no longer keeps), or builds it. Gives
/// back the folders it leaves out for the share.
fn install_or_repair(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    content: &CatalogContent,
    l: &Release,
) -> Result<Vec<String>, ResourceError> {
    let manifest = manifest(spec, ctx)?;
    let overlays = overlay_paths(spec, content);
    let index = ReleaseIndex::read(&l.release, &spec.tree);
    let indexed = index.is_some();
    let marker = read_marker_with(&l.release, |tree| index.filter(|_| *tree == spec.tree));
    match marker.filter(|m| m.tree == spec.tree) {
        Some(marker) => {
            let owner =
                DesiredOwner::resolve(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref())?;
            let sharing = Sharing::new(marker.shared, spec, &overlays);
            let Inspection { damaged, refreshed } =
                damaged_files(spec, ctx, &manifest, &marker, sharing, &l.release, &owner);
            let release = Beneath::open(&l.release)?;
            let marker = if damaged.is_empty() {
                refresh_index(spec, (&l.release, indexed), &marker, refreshed, &manifest);
                marker
            } else {
                let mut marker = marker;
                marker.index.extend(refreshed);
                repair(
                    spec,
                    ctx,
                    (l, &manifest),
                    &release,
                    &damaged,
                    marker,
                    sharing,
                )?
            };
            let left_out = restore_folders(spec, ctx, &manifest, &release, content, marker)?;
            give_to_owner(spec, ctx, &manifest, &release, sharing)?;
            Ok(left_out)
        }
        None => materialize(spec, ctx, &manifest, l, content),
    }
}

/// Builds the release when it is not on disk yet, without touching the
/// running one (the apply engine calls this before it stops any server).
pub fn prepare(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    content: &CatalogContent,
) -> Result<(), ResourceError> {
    let l = Release::of(spec, &ctx.paths);
    if read_head(&l.release).is_some_and(|m| m.tree == spec.tree) {
        return Ok(());
    }
    let left_out = materialize(spec, ctx, &*manifest(spec, ctx)?, &l, content)?;
    ctx.note_built_release(l.release, left_out);
    Ok(())
}

/// The release folders the catalog keeps on the shared file system (a
/// `shared_dirs` resource on this tree's link) that are runtime paths:
/// a new release leaves them out, `shared_dirs` seeds the share from the
/// manifest and links them. A folder the tree enforces stays in.
fn folders_for_the_share(spec: &TreeSpec, content: &CatalogContent) -> Vec<String> {
    let mut folders: Vec<String> = content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::SharedDirs(s) if s.is_for(&spec.link) => Some(s),
            _ => None,
        })
        .flat_map(|s| s.folders())
        .filter(|folder| spec.is_runtime_path(folder) && !spec.is_excluded(folder))
        .map(str::to_string)
        .collect();
    folders.sort();
    folders.dedup();
    folders
}

/// Folders left out of the release for the share that the catalog no
/// longer shares and that the release does not hold (neither the folder
/// nor a link to the share): they come back from the manifest.
fn folders_to_restore<I>(
    spec: &TreeSpec,
    content: &CatalogContent,
    marker: &ReleaseMarker<I>,
    release: &Path,
) -> Vec<String> {
    if marker.left_out.is_empty() {
        return vec![];
    }
    let shared = folders_for_the_share(spec, content);
    marker
        .left_out
        .iter()
        .filter(|folder| !shared.contains(folder))
        .filter(|folder| fs::symlink_metadata(release.join(folder)).is_err())
        .cloned()
        .collect()
}

/// Puts back the folders [`folders_to_restore`] names, copied from the
/// cache as the pack ships them, and records that they are in the release;
/// returns the folders still left out.
fn restore_folders(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    manifest: &Manifest,
    release: &Beneath,
    content: &CatalogContent,
    mut marker: ReleaseMarker,
) -> Result<Vec<String>, ResourceError> {
    let restore = folders_to_restore(spec, content, &marker, release.root());
    if restore.is_empty() {
        return Ok(marker.left_out);
    }
    let entries: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| restore.iter().any(|f| is_within(f, &e.path)))
        .collect();
    let blobs: Vec<(Digest, u64)> = entries.iter().filter_map(|e| e.file_blob()).collect();
    if let Some(missing) = ctx.cache.missing_sized(&blobs).first() {
        return Err(err(format!(
            "cannot restore {} in release {}: blob {missing} is not in the cache (the next run that reaches the master fetches it)",
            restore.join(", "),
            spec.release_id()
        )));
    }
    for e in entries {
        place_entry(ctx, release, Path::new(&e.path), e)?;
        if let EntryKind::Dir = e.kind {
            release.set_mode(Path::new(&e.path), e.mode | 0o700)?;
        }
    }
    tracing::warn!(release = %spec.release_id(), folders = %restore.join(", "), "restored folders left out for the share: the catalog no longer keeps them there");
    marker.left_out.retain(|f| !restore.contains(f));
    write_marker(release, &marker, manifest)?;
    Ok(marker.left_out)
}

/// Paths (release-relative) that other catalog resources manage inside the link.
fn overlay_paths(spec: &TreeSpec, content: &CatalogContent) -> HashSet<String> {
    overlays(spec, content)
        .into_iter()
        .map(|(rel, _)| rel)
        .collect()
}

fn overlays<'a>(spec: &TreeSpec, content: &'a CatalogContent) -> Vec<(String, &'a Resource)> {
    let prefix = format!("{}/", spec.link.trim_end_matches('/'));
    content
        .resources
        .iter()
        .filter_map(|r| {
            let rel = r.spec.placed_path()?.strip_prefix(&prefix)?;
            Some((rel.to_string(), r))
        })
        .collect()
}

/// Writes the catalog's files, links and directories under the link into
/// `release` (before the switch, so the server never sees a release
/// without its configuration). A folder `left_out` for the share gets the
/// catalog's files there from their own resources, once `shared_dirs`
/// linked it (they come after it).
fn place_overlays(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    content: &CatalogContent,
    release: &Path,
    left_out: &[String],
) -> Result<(), ResourceError> {
    let release_abs = format!(
        "{}/{}",
        spec.releases_dir.trim_end_matches('/'),
        spec.release_id()
    );
    let root = ctx.beneath()?;
    let mut sorted = overlays(spec, content);
    sorted.retain(|(rel, _)| !left_out.iter().any(|f| is_within(f, rel)));
    sorted.sort_by_key(|(rel, _)| rel.matches('/').count());
    for (rel, resource) in sorted {
        let path = format!("{release_abs}/{rel}");
        if let Some(parent) = release.join(&rel).parent() {
            root.create_dir_all(parent)?;
        }
        match &resource.spec {
            ResourceSpec::File(f) => {
                super::file::apply(&rigger_common::catalog::FileSpec { path, ..f.clone() }, ctx)?
            }
            ResourceSpec::Symlink(s) => {
                let target = release.join(&rel);
                if target.is_dir() && !target.is_symlink() {
                    // The pack ships a real folder where the module wants a
                    // link (e.g. repository/logs): the link wins in a fresh release.
                    root.remove_dir_all(&target)?;
                }
                super::symlink::apply(
                    &rigger_common::catalog::SymlinkSpec { path, ..s.clone() },
                    ctx,
                )?
            }
            ResourceSpec::Directory(d) => super::directory::apply(
                &rigger_common::catalog::DirectorySpec { path, ..d.clone() },
                ctx,
            )?,
            _ => {}
        }
    }
    Ok(())
}

/// Builds the release in a temporary directory and renames it into place:
/// files shared with the cache are linked, the others copied. Returns the
/// folders left out of it for the share.
fn materialize(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    manifest: &Manifest,
    l: &Release,
    content: &CatalogContent,
) -> Result<Vec<String>, ResourceError> {
    let overlays = &overlay_paths(spec, content);
    let left_out = folders_for_the_share(spec, content);
    let root = ctx.beneath()?;
    root.create_dir_all(&l.releases)?;
    l.remove_stale_temporaries(root);
    check_disk_space(&l.releases, manifest.total_size(), "the release")?;
    let sharing = Sharing::new(sharing::possible(&ctx.cache, &l.releases), spec, overlays);
    let tmp = l.temporary();
    root.create_dir_all(&tmp)?;
    // The pack's own files, folders and links are written beneath the new
    // release: none of its links can take a write out of it.
    let release = Beneath::open(&tmp)?;
    // Runtime paths are copied like the rest (they are only exempt from
    // enforcement afterwards), except the folders that go to the share.
    let enforced: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| !spec.is_excluded(&e.path))
        .filter(|e| !left_out.iter().any(|f| is_within(f, &e.path)))
        .collect();
    for e in &enforced {
        if matches!(e.kind, EntryKind::Dir) {
            let dir = Path::new(&e.path);
            release.create_dir_all(dir)?;
            release.set_mode(dir, e.mode | 0o700)?;
        }
    }
    let files: Vec<&Entry> = enforced
        .iter()
        .copied()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let chunk = files.len().div_ceil(threads).max(1);
    // Each thread gives back the stat keys of the files it linked (their
    // objects'): the index needs no second `stat` of those.
    type Linked<'e> = Vec<(&'e str, StatKey)>;
    // Objects are named relative to the open cache (without it, by path).
    let cache = ctx.cache.open_root().ok();
    let results: Vec<Result<Linked, ResourceError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let (release, cache) = (&release, cache.as_ref());
                scope.spawn(move || {
                    let mut linker = release.linker();
                    let mut linked = Vec::new();
                    for e in part {
                        let dest = Path::new(&e.path);
                        // Each blob was checked when the run fetched what
                        // the cache lacked: one gone since is found here.
                        let placed = if !sharing.links(e) {
                            place_entry(ctx, release, dest, e).map(|()| Placed::Copied)
                        } else {
                            link_into_new_release(ctx, (release, cache), &mut linker, dest, e)
                                .map(|key| key.map_or(Placed::NotCached, Placed::Linked))
                        };
                        match placed {
                            Ok(Placed::Linked(key)) => linked.push((e.path.as_str(), key)),
                            Ok(Placed::Copied) => {}
                            Ok(Placed::NotCached) => return Err(not_in_the_cache(e)),
                            Err(_) if !blob_is_cached(ctx, e) => {
                                return Err(not_in_the_cache(e));
                            }
                            Err(failed) => return Err(failed),
                        }
                        // Crash tests: `FAILPOINTS=materialize-file=100*off->return`
                        // kills the agent after 100 files (feature `failpoints` only).
                        fail::fail_point!("materialize-file", |_| -> Result<
                            Linked,
                            ResourceError,
                        > {
                            eprintln!("failpoint materialize-file: aborting");
                            std::process::abort()
                        });
                    }
                    Ok(linked)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(err("copy thread panicked".into())))
            })
            .collect()
    });
    let linked: HashMap<&str, StatKey> = match results.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(parts) => parts.into_iter().flatten().collect(),
        Err(e) => {
            let _ = root.remove_dir_all(&tmp);
            return Err(e);
        }
    };
    for e in &enforced {
        if let EntryKind::Symlink { target } = &e.kind {
            release.create_symlink(Path::new(&e.path), Path::new(target))?;
        }
    }
    give_to_owner(spec, ctx, manifest, &release, sharing)?;
    let marker = ReleaseMarker {
        product: spec.product.clone(),
        version: spec.version.clone(),
        level: spec.level,
        tree: spec.tree,
        installed_at_ms: rigger_common::time::now_ms(),
        index: index_of(
            &tmp,
            &files
                .iter()
                .copied()
                .filter(|e| !spec.is_runtime_path(&e.path))
                .collect::<Vec<_>>(),
            &linked,
        ),
        shared: sharing.is_on(),
        left_out: left_out.clone(),
    };
    write_new_marker(&release, &marker, manifest)?;
    // Every file of the release is on disk before it gets its final name.
    rigger_common::fsutil::sync_filesystem(&tmp).map_err(super::io_error("cannot flush", &tmp))?;
    root.rename(&tmp, &l.release)?;
    Ok(left_out)
}

/// What became of a file of a release being built.
enum Placed {
    /// Linked to its cached object, whose stat key it has.
    Linked(StatKey),
    /// Copied from the cache.
    Copied,
    /// Its blob is not in the cache.
    NotCached,
}

/// Whether the blob of a file entry is in the cache.
fn blob_is_cached(ctx: &ApplyContext, e: &Entry) -> bool {
    match &e.kind {
        EntryKind::File { digest, .. } => ctx.cache.has(digest),
        _ => true,
    }
}

fn not_in_the_cache(e: &Entry) -> ResourceError {
    err(format!(
        "{} of the release: its blob is not in the cache (removed or changed since the run's fetch; the next run fetches it again)",
        e.path
    ))
}

/// Gives the release's folders, files and links to the spec's owner and
/// group (when it names them and they differ), except the files it shares
/// with the cache. Rendered files placed afterwards keep their own owner.
fn give_to_owner(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    manifest: &Manifest,
    release: &Beneath,
    sharing: Sharing,
) -> Result<(), ResourceError> {
    let owner = DesiredOwner::resolve(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref())?;
    if !owner.is_managed() {
        return Ok(());
    }
    // The release folder itself, from the agent's root.
    let top = release.root();
    owner.apply(ctx.beneath()?, top)?;
    for e in manifest
        .entries
        .iter()
        .filter(|e| !spec.is_excluded(&e.path) && !sharing.links(e))
    {
        let path = top.join(&e.path);
        // Runtime paths may be gone (the server removed them): skip those.
        if fs::symlink_metadata(&path).is_ok() {
            owner.apply(release, &path)?;
        }
    }
    Ok(())
}

/// The stat index of `files` under `root`: the keys `known` has (linked
/// files, their objects'), the others' by a `stat`.
fn index_of(root: &Path, files: &[&Entry], known: &HashMap<&str, StatKey>) -> StatIndex {
    files
        .iter()
        .filter_map(|e| {
            let key = match known.get(e.path.as_str()) {
                Some(key) => *key,
                None => stat_key(&fs::metadata(root.join(&e.path)).ok()?),
            };
            Some((e.path.clone(), key))
        })
        .collect()
}

/// Puts a manifest entry at `dest` beneath `root`: a folder, a link, or
/// a file copied from the cache with the entry's mode (its blob must be
/// cached).
pub fn place_entry(
    ctx: &ApplyContext,
    root: &Beneath,
    dest: &Path,
    entry: &Entry,
) -> Result<(), ResourceError> {
    if let EntryKind::Dir = entry.kind {
        return Ok(root.create_dir_all(dest)?);
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        root.create_dir_all(parent)?;
    }
    match &entry.kind {
        EntryKind::Symlink { target } => root.replace_symlink(dest, Path::new(target))?,
        EntryKind::File { digest, size } => {
            let blob = ctx.cache.path_of(digest);
            // Not the size the manifest gives (cut short by a crash before
            // the fetch's flush): hashed, and dropped when wrong, as for a
            // link (`link_into_new_release`).
            if fs::symlink_metadata(&blob).is_ok_and(|meta| meta.len() != *size)
                && ctx
                    .cache
                    .sized_object(digest, crate::content::cache::BLOB_MODE, *size)
                    .map_err(super::io_error("cannot read", &blob))?
                    .is_none()
            {
                return Err(not_in_the_cache(entry));
            }
            root.copy_file(&blob, dest, entry.mode)?
        }
        EntryKind::Dir => {}
    }
    Ok(())
}

/// What a look at a release found: the enforced files that differ from
/// the manifest, and the index entries to refresh (files whose size,
/// mtime or inode moved — a restored or copied node root — but whose
/// content hashed equal: without the refresh, every run would hash them
/// again).
struct Inspection<'a> {
    damaged: Vec<&'a Entry>,
    refreshed: Vec<(String, StatKey)>,
}

/// Enforced files that differ from the manifest: by the index (size, mtime,
/// inode) and a re-hash of those that moved, or by a full re-hash when
/// verifying; also files given to someone else than the release's owner.
/// A large tree is looked at on two threads (a converged run's check is
/// thousands of `stat`s).
fn damaged_files<'a>(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    manifest: &'a Manifest,
    marker: &ReleaseMarker,
    sharing: Sharing,
    release: &Path,
    owner: &DesiredOwner,
) -> Inspection<'a> {
    let enforced: Vec<&'a Entry> = manifest
        .entries
        .iter()
        .filter(|e| {
            !spec.is_runtime_path(&e.path)
                && !spec.is_excluded(&e.path)
                && !sharing.is_overlay(&e.path)
        })
        .collect();
    let full_verify = ctx.full_verify;
    let inspect = |entries: &[&'a Entry]| {
        inspect_files(entries, (marker, &sharing, owner), release, full_verify)
    };
    crate::halves::in_halves(&enforced, PARALLEL_FROM, inspect, |mut found, rest| {
        found.damaged.extend(rest.damaged);
        found.refreshed.extend(rest.refreshed);
        found
    })
}

/// From how many enforced entries a release is looked at on two threads.
const PARALLEL_FROM: usize = 512;

/// [`damaged_files`] for some of the release's entries.
fn inspect_files<'a>(
    entries: &[&'a Entry],
    (marker, sharing, owner): (&ReleaseMarker, &Sharing, &DesiredOwner),
    release: &Path,
    full_verify: bool,
) -> Inspection<'a> {
    let mut found = Inspection {
        damaged: Vec::new(),
        refreshed: Vec::new(),
    };
    // Entries are looked at relative to the open release folder, not by their
    // full paths (each of which the kernel would walk from `/`).
    let Ok(folder) = open_folder(release) else {
        found.damaged.extend(entries);
        return found;
    };
    for &e in entries {
        let (expected, digest) = match &e.kind {
            EntryKind::Dir => (Expected::Dir, None),
            EntryKind::Symlink { target } => (Expected::Link(target), None),
            EntryKind::File { size, digest } => (Expected::File(*size), Some(digest)),
        };
        let look = look_at(
            &folder,
            &e.path,
            e.mode,
            expected,
            sharing.links(e),
            owner,
            |key| marker.index.get(&e.path) == Some(key),
        );
        let damaged = match (look, digest) {
            (Look::Damaged, _) => true,
            (Look::Intact, _) if !full_verify => false,
            (Look::Intact | Look::Moved(_), None) => false,
            (Look::Intact | Look::Moved(_), Some(digest)) => {
                if Digest::of_file(&release.join(&e.path)).ok().as_ref() == Some(digest) {
                    if let Look::Moved(key) = look {
                        found.refreshed.push((e.path.clone(), key));
                    }
                    false
                } else {
                    true
                }
            }
        };
        if damaged {
            found.damaged.push(e);
        }
    }
    found
}

/// What a release entry should be, for [`look_at`].
#[derive(Clone, Copy)]
enum Expected<'a> {
    File(u64),
    Dir,
    Link(&'a str),
}

/// What [`look_at`] found.
#[derive(Clone, Copy)]
enum Look {
    /// As expected (a file: with its indexed stat key).
    Intact,
    /// Not as expected.
    Damaged,
    /// A file as expected except for its stat key (this one): only its
    /// content's hash can tell.
    Moved(StatKey),
}

/// Looks at one entry of a release (relative to its open folder): one
/// `fstatat`, and for a file its size, type, mode, owner and stat key
/// (`indexed` says whether a key is the one written).
fn look_at(
    folder: &fs::File,
    path: &str,
    mode: u32,
    expected: Expected,
    linked: bool,
    owner: &DesiredOwner,
    indexed: impl FnOnce(&StatKey) -> bool,
) -> Look {
    let intact = match expected {
        Expected::Dir => is_folder_in(folder, path),
        Expected::Link(target) => link_in(folder, path).as_deref() == Some(Path::new(target)),
        Expected::File(size) => match stat_in(folder, path) {
            Err(_) => false,
            // A linked file: a write, chmod or chown shows in its
            // metadata (the object's mode, owner and epoch mtime).
            Ok(meta) if linked && (meta.byte_len() != size || !is_linked_intact(&meta, mode)) => {
                false
            }
            Ok(meta)
                if !linked
                    && (!meta.is_regular()
                        || meta.byte_len() != size
                        || meta.permission_bits() != mode
                        || !owner.changes(&meta).is_empty()) =>
            {
                false
            }
            Ok(meta) => {
                let key = stat_key(&meta);
                return if indexed(&key) {
                    Look::Intact
                } else {
                    Look::Moved(key)
                };
            }
        },
    };
    if intact { Look::Intact } else { Look::Damaged }
}

/// The enforced entries of the release that differ, from its check
/// index alone: their paths, or `None` when a file must be hashed to
/// tell (its stat key moved) and the caller must look with the manifest.
fn damaged_by_index(
    spec: &TreeSpec,
    index: &ReleaseIndex,
    sharing: Sharing,
    release: &Path,
    owner: &DesiredOwner,
) -> Option<Vec<String>> {
    let enforced: Vec<IndexedEntry> = index
        .entries()
        .filter(|e| {
            !spec.is_runtime_path(e.path)
                && !spec.is_excluded(e.path)
                && !sharing.is_overlay(e.path)
        })
        .collect();
    let inspect = |entries: &[IndexedEntry]| -> Option<Vec<String>> {
        let Ok(folder) = open_folder(release) else {
            return Some(entries.iter().map(|e| e.path.to_string()).collect());
        };
        let mut damaged = Vec::new();
        for e in entries {
            let (expected, stat, linked) = match e.kind {
                IndexedKind::Dir => (Expected::Dir, None, false),
                IndexedKind::Symlink { target } => (Expected::Link(target), None, false),
                IndexedKind::File { size, stat } => (
                    Expected::File(size),
                    stat,
                    sharing.links_file(e.path, e.mode),
                ),
            };
            match look_at(&folder, e.path, e.mode, expected, linked, owner, |key| {
                stat.as_ref() == Some(key)
            }) {
                Look::Intact => {}
                Look::Damaged => damaged.push(e.path.to_string()),
                Look::Moved(_) => return None,
            }
        }
        Some(damaged)
    };
    crate::halves::in_halves(&enforced, PARALLEL_FROM, inspect, |found, rest| {
        let mut found = found?;
        found.extend(rest?);
        Some(found)
    })
}

/// Records the refreshed index entries in the release's marker (the
/// agent's own bookkeeping; a failure only costs the next run a re-hash).
fn refresh_index(
    spec: &TreeSpec,
    (release, indexed): (&Path, bool),
    marker: &ReleaseMarker,
    refreshed: Vec<(String, StatKey)>,
    manifest: &Manifest,
) {
    // A release without a usable check index (`indexed`: one written by
    // an earlier agent, or one that was damaged) gets one.
    if refreshed.is_empty() && indexed {
        return;
    }
    let count = refreshed.len();
    let mut marker = marker.clone();
    marker.index.extend(refreshed);
    let written = Beneath::open(release)
        .map_err(ResourceError::from)
        .and_then(|r| write_marker(&r, &marker, manifest));
    match written {
        Ok(()) if count == 0 => {
            tracing::info!(release = %spec.release_id(), "the release's check index written")
        }
        Ok(()) => {
            tracing::info!(release = %spec.release_id(), files = count, "stat index refreshed: the files moved (a restored or copied node?) but their content is verified equal")
        }
        Err(e) => {
            tracing::warn!(release = %spec.release_id(), error = %e, "cannot refresh the stat index")
        }
    }
}

/// Puts the damaged files back from verified content. A linked file's
/// inode may be the cache's object and other releases' files: the cache
/// verifies (or drops and fetches again) that object, the file gets a
/// fresh link, and so does every kept release that linked the inode.
fn repair(
    spec: &TreeSpec,
    ctx: &ApplyContext,
    (layout, manifest): (&Release, &Manifest),
    release: &Beneath,
    damaged: &[&Entry],
    mut marker: ReleaseMarker,
    sharing: Sharing,
) -> Result<ReleaseMarker, ResourceError> {
    let linked: Vec<&Entry> = damaged
        .iter()
        .copied()
        .filter(|e| sharing.links(e))
        .collect();
    let suspect = sharing::inodes_of(linked.iter().map(|e| release.root().join(&e.path)));
    let mut refetch = Vec::new();
    for e in damaged {
        let path = release.root().join(&e.path);
        if let EntryKind::File { digest, .. } = &e.kind {
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                release.remove_dir_all(&path)?;
            }
            if sharing.links(e) {
                if !place_linked(ctx, release, &path, e, &suspect)? {
                    refetch.push(*e);
                }
                continue;
            }
            if !ctx.cache.has(digest) {
                return Err(err(format!(
                    "cannot repair {}: blob {digest} is not in the cache",
                    e.path
                )));
            }
        }
        place_entry(ctx, release, &path, e)?;
    }
    if !refetch.is_empty() {
        fetch_again(ctx, &refetch)?;
        for e in &refetch {
            if !place_linked(
                ctx,
                release,
                &release.root().join(&e.path),
                e,
                &HashSet::new(),
            )? {
                return Err(err(format!(
                    "cannot repair {}: its blob was not fetched",
                    e.path
                )));
            }
        }
    }
    for e in damaged
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
    {
        if let Ok(meta) = fs::metadata(release.root().join(&e.path)) {
            marker.index.insert(e.path.clone(), stat_key(&meta));
        }
    }
    tracing::warn!(release = %spec.release_id(), files = damaged.len(), "repaired modified files in the release");
    write_marker(release, &marker, manifest)?;
    if !suspect.is_empty() {
        let digests = linked.iter().filter_map(|e| e.file_digest()).collect();
        sharing::repair_siblings(ctx, spec, layout, &digests, &suspect)?;
    }
    Ok(marker)
}

/// Fetches the blobs of `entries` again: the cache dropped them as changed.
fn fetch_again(ctx: &ApplyContext, entries: &[&Entry]) -> Result<(), ResourceError> {
    let mut digests: Vec<Digest> = entries.iter().filter_map(|e| e.file_digest()).collect();
    digests.sort();
    digests.dedup();
    let Some(refetch) = &ctx.refetch else {
        return Err(err(format!(
            "{} blob(s) of the release were changed on disk and dropped from the cache (e.g. {}); the next run that reaches the master fetches them again",
            digests.len(),
            digests[0]
        )));
    };
    tracing::warn!(
        blobs = digests.len(),
        "fetching blobs again: they were changed on disk"
    );
    refetch
        .refetch(&digests)
        .map_err(|e| err(format!("cannot fetch the changed blobs again: {e}")))
}

/// Fails when `dir`'s file system has less than `needed` bytes (plus a
/// margin) free.
pub fn check_disk_space(dir: &Path, needed: u64, what: &str) -> Result<(), ResourceError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        err(format!(
            "cannot read the free space of {}: {e}",
            dir.display()
        ))
    })?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free < needed + DISK_MARGIN {
        return Err(err(format!(
            "not enough free disk space in {}: {what} needs {} MB (+{} MB margin), {} MB are free",
            dir.display(),
            needed >> 20,
            DISK_MARGIN >> 20,
            free >> 20
        )));
    }
    Ok(())
}

/// The file blobs a release of `spec` needs, with their sizes (excluded
/// paths left out).
pub fn needed_blobs(spec: &TreeSpec, manifest: &Manifest) -> Vec<(Digest, u64)> {
    let mut blobs: Vec<(Digest, u64)> = manifest
        .entries
        .iter()
        .filter(|e| !spec.is_excluded(&e.path))
        .filter_map(Entry::file_blob)
        .collect();
    blobs.sort();
    blobs.dedup();
    blobs
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
