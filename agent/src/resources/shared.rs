//! `shared_dirs`: release folders kept on the shared file system (EFS), as
//! seed 004 does for `repository/deployment` and `repository/tenants`.
//!
//! Each share folder is seeded from a release exactly once across all
//! nodes: under a lock on the share (flock, which Linux's NFS client maps
//! to NFSv4 locks), into a temporary folder renamed into place, with a
//! marker naming the product, version and update level that seeded it and
//! the product files it put there (with their sha256). The first node on a
//! higher update level re-syncs: it replaces the files still as seeded,
//! removes those the product dropped if unchanged, and keeps everything
//! operators deployed or edited there. A node whose update is rolled back
//! (it ran a higher level before this run) takes the share back down the
//! same way; a node that was simply not updated yet never does. Then the
//! release's folder becomes a symlink to the share. A share that is not mounted stops the
//! resource (and the server that requires it) with a clear error, so a
//! server never starts on empty local folders.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rigger_common::beneath::Beneath;
use rigger_common::catalog::{ResourceSpec, SharedDirsSpec};
use rigger_common::digest::Digest;
use rigger_common::fsutil::Ownership;
use serde::{Deserialize, Serialize};

use super::owner::DesiredOwner;
use super::{ApplyContext, Change, ResourceError};
use crate::release::ReleaseHead;

const MARKER: &str = ".rigger-seed.json";
const LOCK: &str = ".rigger-seed.lock";
const LEASE: &str = ".rigger-seed.lease";

/// What a seeded share folder records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeedMarker {
    /// Product that seeded it.
    pub product: String,
    /// Its version.
    pub version: String,
    /// Its update level.
    pub level: u32,
    /// Which node (host name and pid) did it.
    pub by: String,
    /// The product's files it put there (folder-relative path → sha256):
    /// a later level replaces or removes only those still as they were.
    #[serde(default)]
    pub files: BTreeMap<String, Digest>,
}

fn err(message: String) -> ResourceError {
    ResourceError::Other(message)
}

fn read_marker(dir: &Path) -> Option<SeedMarker> {
    serde_json::from_slice(&fs::read(dir.join(MARKER)).ok()?).ok()
}

struct Layout {
    share: PathBuf,
    release: PathBuf,
    /// What the release records about itself (product, level, tree and
    /// the folders left out of it for the share).
    marker: ReleaseHead,
    /// This node ran a higher level of the product before this run: its
    /// update was rolled back, and the share goes back with it.
    rolled_back_from: Option<u32>,
}

impl Layout {
    /// Whether the share folder with `marker` must be (re)synced to this
    /// release's level: never seeded, seeded by a lower level, or seeded by
    /// a higher one this node is rolling back from. A node that simply has
    /// not been updated yet never takes the share down a level.
    fn needs_sync(&self, marker: Option<&SeedMarker>) -> bool {
        let level = self.marker.level;
        marker
            .is_none_or(|m| m.level < level || (m.level > level && self.rolled_back_from.is_some()))
    }
}

/// The higher level of the product behind `link` in the catalog this node
/// applied before, if this run takes it to a lower `level`.
fn rolled_back_from(link: &str, level: u32, ctx: &ApplyContext) -> Option<u32> {
    ctx.previous
        .as_ref()?
        .resources
        .iter()
        .find_map(|r| match &r.spec {
            ResourceSpec::Tree(t) if t.link == link && t.level > level => Some(t.level),
            _ => None,
        })
}

fn layout(spec: &SharedDirsSpec, ctx: &ApplyContext) -> Result<Layout, ResourceError> {
    let share = ctx.paths.resolve(&spec.share);
    if super::mount::mounted_at(&share).is_none() {
        return Err(err(format!(
            "the share {} is not mounted: not using local folders in its place (the server stays stopped until it is)",
            share.display()
        )));
    }
    super::mount::probe(&share).map_err(err)?;
    let link = ctx.paths.resolve(&spec.link);
    let release = ctx
        .paths
        .read_link(&link)
        .ok_or_else(|| err(format!("{} is not a release link yet", link.display())))?;
    let marker = crate::release::read_head(&release)
        .ok_or_else(|| err(format!("{} is not a complete release", release.display())))?;
    Ok(Layout {
        share,
        release,
        rolled_back_from: rolled_back_from(&spec.link, marker.level, ctx),
        marker,
    })
}

/// What would change.
pub fn check(spec: &SharedDirsSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let share = ctx.paths.resolve(&spec.share);
    let link = ctx.paths.resolve(&spec.link);
    if fs::read_link(&link).is_err() {
        // The release is installed earlier in this run.
        return Ok(vec![Change::new(format!(
            "seed and link {} folder(s) on {}",
            spec.dirs.len(),
            spec.share
        ))]);
    }
    let l = layout(spec, ctx)?;
    let mut changes = Vec::new();
    for (relative, name) in &spec.dirs {
        let target = share.join(name);
        match read_marker(&target) {
            None => changes.push(Change::new(format!(
                "seed {}/{name} from the release",
                spec.share
            ))),
            Some(m) if l.needs_sync(Some(&m)) => changes.push(Change::new(format!(
                "{} {}/{name} from level {} to {}",
                if m.level > l.marker.level {
                    "roll back"
                } else {
                    "re-sync"
                },
                spec.share,
                m.level,
                l.marker.level
            ))),
            Some(_) => {}
        }
        if ctx.paths.read_link(&l.release.join(relative)).as_deref() != Some(target.as_path()) {
            changes.push(Change::new(format!(
                "link {relative} → {}/{name}",
                spec.share
            )));
        }
    }
    Ok(changes)
}

/// Seeds (once, under the share's lock), re-syncs on a higher level, links.
pub fn apply(spec: &SharedDirsSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let l = layout(spec, ctx)?;
    // Everything written on the share stays beneath it, whatever links
    // another node (or anyone with the share mounted) put there.
    let on_share = Beneath::open(&l.share)?;
    let needs_seed = spec
        .dirs
        .values()
        .any(|name| l.needs_sync(read_marker(&l.share.join(name)).as_ref()));
    if needs_seed {
        let owner =
            DesiredOwner::resolve(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref())?;
        let _lock = lock_share(
            &on_share,
            std::time::Duration::from_secs(spec.lock_wait_secs),
        )?;
        for (relative, name) in &spec.dirs {
            // Only the folders that need it: one on disk is hashed whole.
            if !l.needs_sync(read_marker(&l.share.join(name)).as_ref()) {
                continue;
            }
            let source = Shipped::of(&l, relative, ctx)?;
            seed(&l, &on_share, source.as_ref(), name, owner)?;
        }
        let _ = on_share.remove_file(Path::new(LEASE));
    }
    let root = ctx.beneath()?;
    for (relative, name) in &spec.dirs {
        let local = l.release.join(relative);
        let target = l.share.join(name);
        if ctx.paths.read_link(&local).as_deref() == Some(target.as_path()) {
            continue;
        }
        if fs::symlink_metadata(&local).is_ok_and(|m| m.is_dir()) {
            // The release's copy is on the share now.
            root.remove_dir_all(&local)?;
        }
        if let Some(parent) = local.parent() {
            root.create_dir_all(parent)?;
        }
        root.replace_symlink(&local, &ctx.paths.link_target(&local, &target))?;
    }
    Ok(())
}

/// The lease file beside the lock: who seeds, and until when at most.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeedLease {
    /// Host name of the holder.
    pub holder: String,
    /// Its agent's pid.
    pub pid: u32,
    /// When it took the lock, Unix ms.
    pub since_ms: i64,
    /// When its seeding should be over, Unix ms. A lock held past that
    /// belongs to a holder that died or hangs.
    pub expires_ms: i64,
}

/// How long seeding may take before the lease says the holder is stuck.
const LEASE_SECS: i64 = 600;

/// Takes the share-wide lock (an fcntl/flock lock, which NFSv4 honours
/// across clients), waiting at most `wait`; then writes the lease file
/// naming this node and removes what dead holders left behind.
fn lock_share(
    on_share: &Beneath,
    wait: std::time::Duration,
) -> Result<nix::fcntl::Flock<fs::File>, ResourceError> {
    use nix::fcntl::{Flock, FlockArg};
    let share = on_share.root();
    let path = share.join(LOCK);
    let deadline = std::time::Instant::now() + wait;
    let mut reported = None;
    let lock = loop {
        let file = on_share.open_for_write(&path, 0o644, false)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => break lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
            Err((_, e)) => return Err(err(format!("cannot lock {}: {e}", path.display()))),
        }
        let lease = read_lease(share);
        let holder = describe_holder(lease.as_ref());
        if reported.as_deref() != Some(holder.as_str()) {
            tracing::info!(share = %share.display(), "waiting for the share's seeding lock: {holder}");
            reported = Some(holder.clone());
        }
        if std::time::Instant::now() >= deadline {
            return Err(err(format!(
                "the share's seeding lock {} is still held after {} s: {holder}; the next run tries again",
                path.display(),
                wait.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let now = rigger_common::time::now_ms();
    let lease = SeedLease {
        holder: hostname(),
        pid: std::process::id(),
        since_ms: now,
        expires_ms: now + LEASE_SECS * 1000,
    };
    let bytes = serde_json::to_vec_pretty(&lease).expect("lease serializes");
    on_share.write_atomic(Path::new(LEASE), &bytes, 0o644, Ownership::default())?;
    remove_abandoned_seeds(on_share);
    Ok(lock)
}

fn read_lease(share: &Path) -> Option<SeedLease> {
    serde_json::from_slice(&fs::read(share.join(LEASE)).ok()?).ok()
}

/// Who holds the lock, in words, and whether its lease has run out.
fn describe_holder(lease: Option<&SeedLease>) -> String {
    let Some(lease) = lease else {
        return "held by a node that wrote no lease yet".into();
    };
    let who = format!(
        "held by {} (agent pid {}) since {}",
        lease.holder,
        lease.pid,
        rigger_common::time::format_ms(lease.since_ms)
    );
    if lease.expires_ms <= rigger_common::time::now_ms() {
        format!(
            "{who}, whose lease ran out at {}: that node died or hangs while seeding; the NFS server frees its lock when the client's own lease lapses, or stop its agent",
            rigger_common::time::format_ms(lease.expires_ms)
        )
    } else {
        who
    }
}

/// Under the lock: temporary seed folders are those of holders that died
/// before renaming them into place; nobody else can be writing them.
fn remove_abandoned_seeds(on_share: &Beneath) {
    let Ok(entries) = fs::read_dir(on_share.root()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            tracing::warn!(path = %entry.path().display(), "removing a seed a dead holder left behind");
            let _ = on_share.remove_dir_all(&entry.path());
        }
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Under the lock: seeds the share folder from the release (first time),
/// or re-syncs the product's files (higher level); never loses what the
/// share already holds.
fn seed(
    l: &Layout,
    on_share: &Beneath,
    source: Option<&Shipped>,
    name: &str,
    owner: DesiredOwner,
) -> Result<(), ResourceError> {
    let target = l.share.join(name);
    let level = l.marker.level;
    let seeded = read_marker(&target);
    if !l.needs_sync(seeded.as_ref()) {
        return Ok(()); // another node did it meanwhile
    }
    let files = source.map(Shipped::files).unwrap_or_default();
    // Whether this seed may have left bytes on their way to the share's
    // disk (a re-sync to a level that changes nothing in the folder does not).
    let unflushed = match seeded {
        Some(seeded) => {
            let mut written = vec![target.clone()];
            let mut unflushed = false;
            if let Some(source) = source {
                let done = resync(on_share, source, &target, &seeded.files)?;
                unflushed = done.may_be_unflushed();
                written.extend(done.written.iter().cloned());
                let verb = if seeded.level > level {
                    "rolled back"
                } else {
                    "re-synced"
                };
                tracing::info!(share = %target.display(), from = seeded.level, to = level, copied = done.copied, removed = done.removed, "shared folder {verb}");
                if !done.kept.is_empty() {
                    tracing::warn!(
                        share = %target.display(),
                        release = %l.release.display(),
                        "level {} → {level}: kept {} file(s) that were changed on the share after level {} seeded them, and that level {level} ships differently (an operator's or a server's edit wins): {}",
                        seeded.level,
                        done.kept.len(),
                        seeded.level,
                        done.kept.join(", ")
                    );
                }
            }
            // What the re-sync wrote belongs to the server. The rest was
            // given at the seed or is the servers' own: not walked again
            // (a share holds every tenant's files, over NFS).
            give_paths(on_share, &written, owner)?;
            unflushed
        }
        None if target.exists() => {
            // A folder someone made before Rigger: adopt it, add what is missing.
            if let Some(source) = source {
                source.copy_into(on_share, &target, Fill::Missing)?;
            }
            // Adopted: everything in it belongs to the server, once.
            give_tree(on_share, &target, owner)?;
            true
        }
        None => {
            let tmp = l.share.join(format!(".tmp-{name}-{}", std::process::id()));
            on_share.remove_dir_all(&tmp)?;
            on_share.create_dir_all(&tmp)?;
            if let Some(source) = source {
                source.copy_into(on_share, &tmp, Fill::Everything)?;
            }
            give_tree(on_share, &tmp, owner)?;
            on_share.rename_unflushed(&tmp, &target)?;
            true
        }
    };
    // What was copied is on the share's disk before the marker says so: one
    // flush of its file system (on EFS, NFS wrote each file at its close).
    if unflushed {
        rigger_common::fsutil::sync_filesystem(&target)
            .map_err(super::io_error("cannot flush the share at", &target))?;
    }
    let marker = SeedMarker {
        product: l.marker.product.clone(),
        version: l.marker.version.clone(),
        level,
        by: format!("{} pid {}", hostname(), std::process::id()),
        files,
    };
    let bytes = serde_json::to_vec_pretty(&marker).expect("marker serializes");
    on_share.write_atomic(&target.join(MARKER), &bytes, 0o644, Ownership::default())?;
    tracing::info!(share = %target.display(), level, "shared folder seeded");
    Ok(())
}

/// What a release ships in one of its shared folders, which the share is
/// seeded and re-synced from: folder-relative paths, parents first.
struct Shipped {
    items: Vec<(String, Item)>,
}

/// One thing in a [`Shipped`] folder.
enum Item {
    Dir,
    /// A file: where its bytes are, its mode and sha256.
    File {
        from: PathBuf,
        mode: u32,
        digest: Digest,
    },
    Symlink(PathBuf),
}

impl Shipped {
    /// The release's folder `relative`: as the manifest ships it, read
    /// from the cache's objects, when the release does not hold the folder
    /// itself (left out of it for the share, or a kept release whose folder
    /// is linked to the share already); else the folder on disk (a release
    /// built by an earlier agent, with its files hashed). `None` when the
    /// release has no such folder.
    fn of(l: &Layout, relative: &str, ctx: &ApplyContext) -> Result<Option<Self>, ResourceError> {
        let relative = relative.trim_matches('/');
        let local = l.release.join(relative);
        let meta = fs::symlink_metadata(&local).ok();
        if l.marker.is_left_out(relative) || meta.as_ref().is_some_and(|m| m.is_symlink()) {
            return Self::from_manifest(l, relative, ctx);
        }
        match meta {
            Some(m) if m.is_dir() => Self::on_disk(&local).map(Some),
            _ => Ok(None),
        }
    }

    /// The folder as the release's manifest ships it, from the cache.
    fn from_manifest(
        l: &Layout,
        relative: &str,
        ctx: &ApplyContext,
    ) -> Result<Option<Self>, ResourceError> {
        use rigger_common::manifest::EntryKind;
        let level = l.marker.level;
        let manifest = ctx
            .cache
            .manifest(&l.marker.tree)
            .map_err(err)?
            .ok_or_else(|| {
                err(format!(
                    "the manifest of level {level} is not in the cache: cannot bring the share to it"
                ))
            })?;
        let mut items = Vec::new();
        let mut blobs = Vec::new();
        for e in &manifest.entries {
            if !rigger_common::catalog::is_within(relative, &e.path) {
                continue;
            }
            let inner = e.path[relative.len()..].trim_start_matches('/').to_string();
            let item = match &e.kind {
                EntryKind::Dir => Item::Dir,
                EntryKind::Symlink { target } => Item::Symlink(PathBuf::from(target)),
                EntryKind::File { digest, size } => {
                    blobs.push((*digest, *size));
                    Item::File {
                        from: ctx.cache.path_of(digest),
                        mode: e.mode,
                        digest: *digest,
                    }
                }
            };
            items.push((inner, item));
        }
        if items.is_empty() {
            return Ok(None);
        }
        if let Some(missing) = ctx.cache.missing_sized(&blobs).first() {
            return Err(err(format!(
                "level {level}'s files for the share are not in the cache (e.g. {missing}): cannot bring the share to it"
            )));
        }
        Ok(Some(Self { items }))
    }

    /// The folder `dir` as it is on disk, its files hashed.
    fn on_disk(dir: &Path) -> Result<Self, ResourceError> {
        fn walk(
            root: &Path,
            dir: &Path,
            items: &mut Vec<(String, Item)>,
        ) -> Result<(), ResourceError> {
            for entry in fs::read_dir(dir).map_err(super::io_error("cannot read", dir))? {
                let entry = entry.map_err(super::io_error("cannot read", dir))?;
                let path = entry.path();
                let kind = entry
                    .file_type()
                    .map_err(super::io_error("cannot stat", &path))?;
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if kind.is_dir() {
                    items.push((relative, Item::Dir));
                    walk(root, &path, items)?;
                } else if kind.is_symlink() {
                    let target =
                        fs::read_link(&path).map_err(super::io_error("cannot read link", &path))?;
                    items.push((relative, Item::Symlink(target)));
                } else if kind.is_file() {
                    let digest =
                        Digest::of_file(&path).map_err(super::io_error("cannot read", &path))?;
                    let mode = mode_of(&path)?;
                    items.push((
                        relative,
                        Item::File {
                            from: path,
                            mode,
                            digest,
                        },
                    ));
                }
            }
            Ok(())
        }
        let mut items = Vec::new();
        walk(dir, dir, &mut items)?;
        Ok(Self { items })
    }

    /// The regular files, by folder-relative path, with their sha256.
    fn files(&self) -> BTreeMap<String, Digest> {
        self.items
            .iter()
            .filter_map(|(relative, item)| match item {
                Item::File { digest, .. } => Some((relative.clone(), *digest)),
                _ => None,
            })
            .collect()
    }

    /// Copies the folder into `to` on the share, as `fill` says. Returns
    /// what it wrote. Not flushed: the seed flushes the share once.
    fn copy_into(
        &self,
        on_share: &Beneath,
        to: &Path,
        fill: Fill,
    ) -> Result<Vec<PathBuf>, ResourceError> {
        on_share.create_dir_all(to)?;
        let overwrite = matches!(fill, Fill::Everything);
        let mut written = Vec::new();
        for (relative, item) in &self.items {
            if let Fill::MissingFoldersAndLinks { there } = fill {
                if matches!(item, Item::File { .. }) || there.contains(relative.as_str()) {
                    continue;
                }
            }
            let dst = to.join(relative);
            let missing = fs::symlink_metadata(&dst).is_err();
            match item {
                Item::Dir if missing => on_share.create_dir_all(&dst)?,
                Item::Symlink(target) if overwrite || missing => {
                    make_parent(on_share, &dst)?;
                    on_share.replace_symlink(&dst, target)?;
                }
                Item::File { from, mode, .. } if overwrite || missing => {
                    make_parent(on_share, &dst)?;
                    on_share.copy_file(from, &dst, *mode)?;
                }
                _ => continue,
            }
            written.push(dst);
        }
        Ok(written)
    }
}

/// What [`Shipped::copy_into`] writes.
#[derive(Debug, Clone, Copy)]
enum Fill<'a> {
    /// Everything, replacing files and links that exist (the product's
    /// own).
    Everything,
    /// Only what is missing.
    Missing,
    /// Only the folders and links that are missing (a re-sync, which
    /// looked at the files itself); the folders in `there` are known to
    /// be on the share already.
    MissingFoldersAndLinks {
        /// Folders the re-sync found files in.
        there: &'a HashSet<&'a str>,
    },
}

/// Creates the folder `path` goes in, on the share.
fn make_parent(on_share: &Beneath, path: &Path) -> Result<(), ResourceError> {
    if let Some(parent) = path.parent() {
        on_share.create_dir_all(parent)?;
    }
    Ok(())
}

/// What a re-sync did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resync {
    copied: usize,
    removed: usize,
    /// Files changed on the share that the new level changes too: kept.
    kept: Vec<String>,
    /// The files, folders and links it wrote.
    written: Vec<PathBuf>,
    /// Files already as the level ships them though the marker does not
    /// say so (an interrupted seed copied them, or an operator): their
    /// bytes may not be on the share's disk yet.
    found_unrecorded: usize,
}

impl Resync {
    /// Whether it wrote or removed anything, or found files an earlier
    /// seed may not have flushed.
    fn may_be_unflushed(&self) -> bool {
        !self.written.is_empty() || self.removed > 0 || self.found_unrecorded > 0
    }
}

/// Brings a share folder to a new level's product files: copies what the
/// share lacks, replaces files still exactly as the earlier seed left them,
/// removes files the product no longer ships if nobody changed them, and
/// keeps everything else (operators' own artifacts and edits). A marker
/// from before files were recorded (`seeded` empty) replaces product files.
/// Only the files the level changes are read on the share: one it ships
/// as seeded stays whatever the share holds (an edit wins either way),
/// and an update level changes a few files of thousands.
fn resync(
    on_share: &Beneath,
    source: &Shipped,
    target: &Path,
    seeded: &BTreeMap<String, Digest>,
) -> Result<Resync, ResourceError> {
    let mut done = Resync::default();
    let files: Vec<ShippedFile> = source
        .items
        .iter()
        .filter_map(|(relative, item)| match item {
            Item::File { from, mode, digest } => {
                Some((relative.as_str(), from.as_path(), *mode, *digest))
            }
            _ => None,
        })
        .collect();
    let shipped: HashSet<&str> = files.iter().map(|f| f.0).collect();
    // Looked at on both cores (a level ships thousands of files, and the
    // share may be NFS); written afterwards, one at a time.
    let look = |part: &[ShippedFile]| -> Result<Vec<OnShare>, ResourceError> {
        part.iter()
            .map(|&(relative, _, _, digest)| on_share_as(target, relative, digest, seeded))
            .collect()
    };
    let found = crate::halves::in_halves(&files, 256, look, |first, second| {
        let mut found = first?;
        found.extend(second?);
        Ok(found)
    })?;
    // A folder a file was found in is on the share: the pass over folders
    // and links below need not look at it again.
    let mut there: HashSet<&str> = HashSet::new();
    for (&(relative, ..), _) in files
        .iter()
        .zip(&found)
        .filter(|(_, f)| **f != OnShare::Gone)
    {
        let mut path = relative;
        while let Some((folder, _)) = path.rsplit_once('/') {
            if !there.insert(folder) {
                break;
            }
            path = folder;
        }
    }
    for (&(relative, from, mode, digest), found) in files.iter().zip(found) {
        let replace = match found {
            OnShare::AsSeeded => false,
            OnShare::Gone => true,
            OnShare::Holds(current) if current == digest => {
                done.found_unrecorded += 1;
                false
            }
            OnShare::Holds(current) => {
                let replace = seeded.is_empty() || seeded.get(relative) == Some(&current);
                if !replace {
                    done.kept.push(relative.to_string());
                }
                replace
            }
        };
        if replace {
            let to = target.join(relative);
            copy_in(on_share, from, &to, mode)?;
            done.copied += 1;
            done.written.push(to);
        }
    }
    // Folders and links the level adds.
    done.written.extend(source.copy_into(
        on_share,
        target,
        Fill::MissingFoldersAndLinks { there: &there },
    )?);
    for (relative, digest) in seeded {
        if shipped.contains(relative.as_str()) {
            continue;
        }
        let path = target.join(relative);
        if Digest::of_file(&path).ok() == Some(*digest) {
            on_share.remove_file(&path)?;
            done.removed += 1;
        }
    }
    Ok(done)
}

/// A file a level ships into a share folder: its folder-relative path,
/// where its bytes are, its mode and sha256.
type ShippedFile<'s> = (&'s str, &'s Path, u32, Digest);

/// What a re-sync finds on the share of a file the level ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnShare {
    /// Nothing there.
    Gone,
    /// There, and shipped as the earlier seed wrote it: not read (an edit
    /// wins either way).
    AsSeeded,
    /// There, with this sha256.
    Holds(Digest),
}

/// Looks at the share's `relative` in `target`, which the level ships as
/// `digest` and the earlier seed recorded in `seeded`.
fn on_share_as(
    target: &Path,
    relative: &str,
    digest: Digest,
    seeded: &BTreeMap<String, Digest>,
) -> Result<OnShare, ResourceError> {
    let path = target.join(relative);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(OnShare::Gone);
    }
    if seeded.get(relative) == Some(&digest) {
        return Ok(OnShare::AsSeeded);
    }
    Digest::of_file(&path)
        .map(OnShare::Holds)
        .map_err(super::io_error("cannot read", &path))
}

/// Copies a product file onto the share, whole or not at all (through a
/// temporary name renamed into place).
fn copy_in(on_share: &Beneath, from: &Path, to: &Path, mode: u32) -> Result<(), ResourceError> {
    make_parent(on_share, to)?;
    let tmp = to.with_file_name(format!(
        ".rigger-{}",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    on_share.copy_file(from, &tmp, mode)?;
    // Flushed with the rest of the seed, before its marker.
    Ok(on_share.rename_unflushed(&tmp, to)?)
}

/// The permission bits of a file the share gets a copy of.
fn mode_of(path: &Path) -> Result<u32, ResourceError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(super::io_error("cannot stat", path))?;
    Ok(meta.permissions().mode() & 0o7777)
}

/// Gives each of `paths` (not what is under them) to `owner` (when it
/// names one).
fn give_paths(
    on_share: &Beneath,
    paths: &[PathBuf],
    owner: DesiredOwner,
) -> Result<(), ResourceError> {
    if !owner.is_managed() {
        return Ok(());
    }
    for path in paths {
        owner.apply(on_share, path)?;
    }
    Ok(())
}

/// Gives a folder and everything under it to `owner` (when it names one).
fn give_tree(on_share: &Beneath, dir: &Path, owner: DesiredOwner) -> Result<(), ResourceError> {
    if !owner.is_managed() {
        return Ok(());
    }
    owner.apply(on_share, dir)?;
    let entries = fs::read_dir(dir).map_err(super::io_error("cannot read", dir))?;
    for entry in entries {
        let entry = entry.map_err(super::io_error("cannot read", dir))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            give_tree(on_share, &entry.path(), owner)?;
        } else {
            owner.apply(on_share, &entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_resync_replaces_and_removes_only_what_nobody_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, share) = (
            dir.path().join("old"),
            dir.path().join("new"),
            dir.path().join("share"),
        );
        let put = |root: &Path, relative: &str, text: &str| {
            let path = root.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        // Level 1 as seeded.
        for (f, t) in [
            ("webapps/a.war", "a1"),
            ("webapps/b.war", "b1"),
            ("webapps/gone.war", "g1"),
            ("webapps/edited.war", "e1"),
            ("webapps/gone-edited.war", "x1"),
            ("webapps/same-edited.war", "s1"),
            ("webapps/lost.war", "l1"),
        ] {
            put(&old, f, t);
            put(&share, f, t);
        }
        // Enough files shipped as seeded for the share to be looked at on
        // both cores.
        let libs: Vec<String> = (0..300).map(|i| format!("lib/{i}.jar")).collect();
        for f in &libs {
            for root in [&old, &share, &new] {
                put(root, f, f);
            }
        }
        let seeded = Shipped::on_disk(&old).unwrap().files();
        // Operators change three product files, remove one and deploy their own.
        put(&share, "webapps/edited.war", "operator's edit");
        put(&share, "webapps/gone-edited.war", "operator's edit");
        put(&share, "webapps/same-edited.war", "operator's edit");
        fs::remove_file(share.join("webapps/lost.war")).unwrap();
        put(&share, "carbonapps/orders.car", "operator's own");
        // An interrupted re-sync to level 2 copied d before it stopped.
        put(&share, "webapps/d.war", "d2");
        // Level 2: a and edited change, gone and gone-edited go, c comes;
        // b, same-edited and lost are shipped as seeded.
        for (f, t) in [
            ("webapps/a.war", "a2"),
            ("webapps/b.war", "b1"),
            ("webapps/edited.war", "e2"),
            ("webapps/c.war", "c2"),
            ("webapps/d.war", "d2"),
            ("webapps/same-edited.war", "s1"),
            ("webapps/lost.war", "l1"),
        ] {
            put(&new, f, t);
        }
        // Level 2 also adds an empty folder and a link.
        fs::create_dir_all(new.join("webapps/empty")).unwrap();
        std::os::unix::fs::symlink("webapps/a.war", new.join("latest.war")).unwrap();
        let level_2 = Shipped::on_disk(&new).unwrap();
        let mut done = resync(&Beneath::open(&share).unwrap(), &level_2, &share, &seeded).unwrap();
        done.written.sort();
        let read = |f: &str| fs::read_to_string(share.join(f)).ok();
        assert_eq!(read("webapps/a.war").as_deref(), Some("a2"));
        assert_eq!(read("webapps/b.war").as_deref(), Some("b1"));
        assert_eq!(read("webapps/c.war").as_deref(), Some("c2"));
        assert_eq!(
            read("webapps/gone.war"),
            None,
            "a file the product dropped stayed"
        );
        assert_eq!(
            read("webapps/edited.war").as_deref(),
            Some("operator's edit")
        );
        assert_eq!(
            read("webapps/gone-edited.war").as_deref(),
            Some("operator's edit")
        );
        assert_eq!(
            read("carbonapps/orders.car").as_deref(),
            Some("operator's own")
        );
        // Shipped as seeded: an edit stays (not reported: the level does
        // not change the file), a removed file comes back.
        assert_eq!(
            read("webapps/same-edited.war").as_deref(),
            Some("operator's edit")
        );
        assert_eq!(read("webapps/lost.war").as_deref(), Some("l1"));
        assert_eq!(read("latest.war").as_deref(), Some("a2"));
        assert!(share.join("webapps/empty").is_dir());
        assert!(libs.iter().all(|f| read(f).as_deref() == Some(f.as_str())));
        assert_eq!(
            done,
            Resync {
                copied: 3,
                removed: 1,
                kept: vec!["webapps/edited.war".into()],
                written: [
                    "latest.war",
                    "webapps/a.war",
                    "webapps/c.war",
                    "webapps/empty",
                    "webapps/lost.war"
                ]
                .map(|f| share.join(f))
                .into(),
                // d: as level 2 ships it, not copied again, but its bytes
                // may still be on their way to the disk.
                found_unrecorded: 1,
            }
        );
        let leftovers: Vec<_> = fs::read_dir(share.join("webapps"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".rigger-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_held_lock_is_waited_for_within_bounds_and_a_dead_holders_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let share = Beneath::open(dir.path()).unwrap();
        let held = lock_share(&share, Duration::from_secs(1)).unwrap();
        let lease = read_lease(share.root()).unwrap();
        assert_eq!(lease.pid, std::process::id());
        assert!(lease.expires_ms > lease.since_ms);

        // A holder whose lease ran out: the waiting node says so, and gives
        // up after its wait instead of hanging.
        let stale = SeedLease {
            holder: "ip-10-0-1-5".into(),
            pid: 4242,
            since_ms: 1_000,
            expires_ms: 2_000,
        };
        rigger_common::fsutil::write_atomic(
            &share.root().join(LEASE),
            &serde_json::to_vec(&stale).unwrap(),
            0o644,
            Ownership::default(),
        )
        .unwrap();
        let e = lock_share(&share, Duration::from_millis(500)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("held by ip-10-0-1-5 (agent pid 4242)") && text.contains("lease ran out"),
            "{text}"
        );

        // The holder died mid-seed: its lock is gone, its temporary folder
        // is not; the next holder removes it.
        fs::create_dir_all(share.root().join(".tmp-Deployment-4242/webapps")).unwrap();
        drop(held);
        let _lock = lock_share(&share, Duration::from_secs(1)).unwrap();
        assert!(!share.root().join(".tmp-Deployment-4242").exists());
        assert_eq!(read_lease(share.root()).unwrap().pid, std::process::id());
    }
}
