//! Release files shared with the content cache by hard links: a release
//! writes a product's bytes once, and an update level links the files it
//! did not change instead of copying them (see "Releases share the cache's
//! read-only objects" in ARCHITECTURE.md).
//!
//! A linked file is the cache's object: the agent's, read-only (the
//! pack's mode without write bits), modified at the epoch. The service
//! user can read and run it, not change it; a change by root moves its
//! modification time, which the release's check and the cache both see.
//! Files the server writes (runtime paths), the catalog's own files,
//! files with special bits and files the service user could only read as
//! their owner are copies, as before.
//!
//! Invariant: a repair never changes a shared inode: it links a fresh,
//! verified object in its place, in this release and in every kept
//! release that linked the changed inode.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rigger_common::beneath::{Beneath, Linker};
use rigger_common::catalog::TreeSpec;
use rigger_common::digest::Digest;
use rigger_common::manifest::{Entry, EntryKind};

use super::{ApplyContext, ResourceError};
use crate::content::ContentCache;
use crate::content::cache::{is_intact, shared_mode};
use crate::file_meta::FileMeta;
use crate::release::{Release, StatKey, read_marker, stat_key, write_marker};

/// Which files of one release are links to the cache's objects.
#[derive(Debug, Clone, Copy)]
pub struct Sharing<'a> {
    on: bool,
    /// The release is the agent's (no owner or group named).
    unowned: bool,
    spec: &'a TreeSpec,
    overlays: &'a HashSet<String>,
}

impl<'a> Sharing<'a> {
    /// The rule for a release of `spec` built with links (`on`) or copies,
    /// whose `overlays` are the catalog's own files inside it.
    pub fn new(on: bool, spec: &'a TreeSpec, overlays: &'a HashSet<String>) -> Self {
        let unowned = spec.owner.as_deref().is_none_or(str::is_empty)
            && spec.group.as_deref().is_none_or(str::is_empty);
        Self {
            on,
            unowned,
            spec,
            overlays,
        }
    }

    /// Whether the release is built with links at all.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Whether `path` (release-relative) is one of the catalog's own files.
    pub fn is_overlay(&self, path: &str) -> bool {
        self.overlays.contains(path)
    }

    /// Whether the release links `entry` to the cache's object.
    pub fn links(&self, entry: &Entry) -> bool {
        matches!(entry.kind, EntryKind::File { .. }) && self.links_file(&entry.path, entry.mode)
    }

    /// Whether the release links its file at `path` (with `mode`) to the
    /// cache's object.
    pub fn links_file(&self, path: &str, mode: u32) -> bool {
        self.on
            && !self.spec.is_runtime_path(path)
            && !self.overlays.contains(path)
            && mode & 0o7000 == 0
            // Owned by the agent, the file must be readable by everyone
            // for the service user to read it.
            && (self.unowned || mode & 0o004 != 0)
    }
}

/// Whether releases under `releases` can link the cache's objects: both
/// on one file system.
pub fn possible(cache: &ContentCache, releases: &Path) -> bool {
    let device = |path: &Path| fs::metadata(path).ok().map(|m| m.dev());
    let cache = device(cache.root());
    cache.is_some() && cache == device(releases)
}

/// Whether a linked file's metadata is what the cache made (a write,
/// `chmod` or `chown` through any of its names shows here).
pub fn is_linked_intact(meta: &impl crate::file_meta::FileMeta, mode: u32) -> bool {
    is_intact(meta, shared_mode(mode))
}

/// Links `entry`'s object at `dest` beneath `root`. An object whose inode
/// is in `suspect` is verified first; `Ok(false)` when the blob is not in
/// the cache (or was dropped as changed): fetch it and ask again.
pub fn place_linked(
    ctx: &ApplyContext,
    root: &Beneath,
    dest: &Path,
    entry: &Entry,
    suspect: &HashSet<u64>,
) -> Result<bool, ResourceError> {
    let EntryKind::File { digest, .. } = &entry.kind else {
        return Ok(true);
    };
    let Some((object, _)) = cached_object(ctx, digest, entry.mode, suspect)? else {
        return Ok(false);
    };
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        root.create_dir_all(parent)?;
    }
    root.link_file(&object, dest)?;
    Ok(true)
}

/// [`place_linked`] for a file entry of a release being built, whose
/// folders were made first: through `linker`, which keeps each folder open
/// for the files after it (a folder the manifest does not list is made
/// when missing). Returns the file's stat key (its object's), `None` when
/// its blob is not cached.
pub fn link_into_new_release(
    ctx: &ApplyContext,
    (release, cache): (&Beneath, Option<&fs::File>),
    linker: &mut Linker,
    dest: &Path,
    entry: &Entry,
) -> Result<Option<StatKey>, ResourceError> {
    let EntryKind::File { digest, size } = &entry.kind else {
        return Err(ResourceError::Other(format!(
            "{} is not a file: it cannot be linked",
            entry.path
        )));
    };
    // An intact object is stated and linked relative to the open cache
    // (a release's thousands of files, each path walked from the cache
    // instead of from `/`); anything else takes the full path below.
    if let Some(root) = cache
        && let Some((object, stat)) = ctx.cache.intact_object_in(root, digest, entry.mode)
        && stat.byte_len() == *size
        && linker.link_file_at(root, &object, dest).is_ok()
    {
        // A hard link shows its object's size, mtime and inode.
        return Ok(Some(stat_key(&stat)));
    }
    let Some((object, meta)) = ctx
        .cache
        .sized_object(digest, entry.mode, *size)
        .map_err(unreadable(digest))?
    else {
        return Ok(None);
    };
    match linker.link_file(&object, dest) {
        Err(e) if e.io_error().kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                release.create_dir_all(parent)?;
            }
            release.link_file(&object, dest)?;
        }
        linked => linked?,
    }
    // A hard link shows its object's size, mtime and inode.
    Ok(Some(stat_key(&meta)))
}

/// The intact cached object of `digest` with `mode` and its metadata, as
/// [`ContentCache::object_and_metadata`] gives them.
fn cached_object(
    ctx: &ApplyContext,
    digest: &Digest,
    mode: u32,
    suspect: &HashSet<u64>,
) -> Result<Option<(std::path::PathBuf, fs::Metadata)>, ResourceError> {
    ctx.cache
        .object_and_metadata(digest, mode, suspect)
        .map_err(unreadable(digest))
}

/// The error of a cached blob that could not be read.
fn unreadable(digest: &Digest) -> impl Fn(std::io::Error) -> ResourceError + '_ {
    move |e| ResourceError::Other(format!("cannot read cached blob {digest}: {e}"))
}

/// The inodes of `paths` (regular files only): a changed linked file's
/// inode is the one its cached object and other releases may share.
pub fn inodes_of(paths: impl Iterator<Item = std::path::PathBuf>) -> HashSet<u64> {
    paths
        .filter_map(|p| fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.ino())
        .collect()
}

/// Gives every other complete release of the product that links one of
/// the `suspect` inodes (for a blob in `digests`) the intact object
/// instead; returns how many files were replaced.
pub fn repair_siblings(
    ctx: &ApplyContext,
    spec: &TreeSpec,
    layout: &Release,
    digests: &HashSet<Digest>,
    suspect: &HashSet<u64>,
) -> Result<usize, ResourceError> {
    let Ok(dirs) = fs::read_dir(&layout.releases) else {
        return Ok(0);
    };
    let mut replaced = 0;
    for dir in dirs.flatten().map(|d| d.path()) {
        if dir == layout.release {
            continue;
        }
        let Some(mut marker) = read_marker(&dir).filter(|m| m.shared) else {
            continue;
        };
        let Ok(Some(manifest)) = ctx.cache.manifest(&marker.tree) else {
            continue;
        };
        let root = Beneath::open(&dir)?;
        let mut changed = false;
        for e in &manifest.entries {
            let EntryKind::File { digest, .. } = &e.kind else {
                continue;
            };
            let path = dir.join(&e.path);
            let shares = digests.contains(digest)
                && fs::symlink_metadata(&path).is_ok_and(|m| suspect.contains(&m.ino()));
            if !shares {
                continue;
            }
            if !place_linked(ctx, &root, Path::new(&e.path), e, &HashSet::new())? {
                return Err(ResourceError::Other(format!(
                    "cannot repair {} in release {}: blob {digest} is not in the cache",
                    e.path,
                    dir.display()
                )));
            }
            if let Ok(meta) = fs::metadata(&path) {
                marker.index.insert(e.path.clone(), stat_key(&meta));
            }
            replaced += 1;
            changed = true;
        }
        if changed {
            tracing::warn!(release = %dir.display(), spec = %spec.release_id(), "repaired files a kept release shared with a changed one");
            write_marker(&root, &marker, &manifest)?;
        }
    }
    Ok(replaced)
}
