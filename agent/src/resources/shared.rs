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
//! operators deployed or edited there. Then the release's folder
//! becomes a symlink to the share. A share that is not mounted stops the
//! resource (and the server that requires it) with a clear error, so a
//! server never starts on empty local folders.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rigger_common::catalog::SharedDirsSpec;
use rigger_common::digest::Digest;
use rigger_common::fsutil::{Ownership, replace_symlink, write_atomic};
use serde::{Deserialize, Serialize};

use super::owner::DesiredOwner;
use super::{ApplyContext, Change, ResourceError};

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
    identity: (String, String, u32),
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
    let release = fs::read_link(&link)
        .map_err(|_| err(format!("{} is not a release link yet", link.display())))?;
    let identity = crate::release::release_identity(&release)
        .ok_or_else(|| err(format!("{} is not a complete release", release.display())))?;
    Ok(Layout {
        share,
        release,
        identity,
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
            Some(m) if m.level < l.identity.2 => changes.push(Change::new(format!(
                "re-sync {}/{name} from level {} to {}",
                spec.share, m.level, l.identity.2
            ))),
            Some(_) => {}
        }
        if fs::read_link(l.release.join(relative)).ok().as_deref() != Some(target.as_path()) {
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
    let needs_seed = spec
        .dirs
        .values()
        .any(|name| read_marker(&l.share.join(name)).is_none_or(|m| m.level < l.identity.2));
    if needs_seed {
        let owner =
            DesiredOwner::resolve(&ctx.paths, spec.owner.as_deref(), spec.group.as_deref())?;
        let _lock = lock_share(
            &l.share,
            std::time::Duration::from_secs(spec.lock_wait_secs),
        )?;
        for (relative, name) in &spec.dirs {
            seed(&l, relative, name, owner)?;
        }
        let _ = fs::remove_file(l.share.join(LEASE));
    }
    for (relative, name) in &spec.dirs {
        let local = l.release.join(relative);
        let target = l.share.join(name);
        if fs::read_link(&local).ok().as_deref() == Some(target.as_path()) {
            continue;
        }
        if fs::symlink_metadata(&local).is_ok_and(|m| m.is_dir()) {
            // The release's copy is on the share now.
            fs::remove_dir_all(&local).map_err(super::io_error("cannot replace", &local))?;
        }
        if let Some(parent) = local.parent() {
            fs::create_dir_all(parent).map_err(super::io_error("cannot create", parent))?;
        }
        replace_symlink(&local, &target)?;
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
    share: &Path,
    wait: std::time::Duration,
) -> Result<nix::fcntl::Flock<fs::File>, ResourceError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = share.join(LOCK);
    let deadline = std::time::Instant::now() + wait;
    let mut reported = None;
    let lock = loop {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(super::io_error("cannot open the share lock", &path))?;
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
    write_atomic(&share.join(LEASE), &bytes, 0o644, Ownership::default())?;
    remove_abandoned_seeds(share);
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
fn remove_abandoned_seeds(share: &Path) {
    let Ok(entries) = fs::read_dir(share) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            tracing::warn!(path = %entry.path().display(), "removing a seed a dead holder left behind");
            let _ = fs::remove_dir_all(entry.path());
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
fn seed(l: &Layout, relative: &str, name: &str, owner: DesiredOwner) -> Result<(), ResourceError> {
    let target = l.share.join(name);
    let source = l.release.join(relative);
    let level = l.identity.2;
    let seeded = read_marker(&target);
    if seeded.as_ref().is_some_and(|m| m.level >= level) {
        return Ok(()); // another node did it meanwhile
    }
    let has_source = source.is_dir() && !source.is_symlink();
    let files = if has_source {
        product_files(&source)?
    } else {
        BTreeMap::new()
    };
    match seeded {
        Some(seeded) => {
            if has_source {
                let done = resync(&source, &target, &seeded.files, &files)?;
                tracing::info!(share = %target.display(), from = seeded.level, to = level, copied = done.copied, removed = done.removed, "shared folder re-synced");
                if !done.kept.is_empty() {
                    tracing::warn!(
                        share = %target.display(),
                        release = %source.display(),
                        "kept {} file(s) changed on the share that the new level also changes (the level's own versions are in the release): {}",
                        done.kept.len(),
                        done.kept.join(", ")
                    );
                }
            }
            // What is there belongs to the server.
            give_tree(&target, owner)?;
        }
        None if target.exists() => {
            // A folder someone made before Rigger: adopt it, add what is missing.
            if has_source {
                copy_tree(&source, &target, false)?;
            }
            give_tree(&target, owner)?;
        }
        None => {
            let tmp = l.share.join(format!(".tmp-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).map_err(super::io_error("cannot create", &tmp))?;
            if has_source {
                copy_tree(&source, &tmp, true)?;
            }
            give_tree(&tmp, owner)?;
            fs::rename(&tmp, &target)
                .map_err(super::io_error("cannot move the seed into", &target))?;
        }
    }
    let marker = SeedMarker {
        product: l.identity.0.clone(),
        version: l.identity.1.clone(),
        level,
        by: format!("{} pid {}", hostname(), std::process::id()),
        files,
    };
    let bytes = serde_json::to_vec_pretty(&marker).expect("marker serializes");
    write_atomic(&target.join(MARKER), &bytes, 0o644, Ownership::default())?;
    tracing::info!(share = %target.display(), level, "shared folder seeded");
    Ok(())
}

/// The regular files under `dir`, by relative path, with their sha256.
fn product_files(dir: &Path) -> Result<BTreeMap<String, Digest>, ResourceError> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, Digest>,
    ) -> Result<(), ResourceError> {
        for entry in fs::read_dir(dir).map_err(super::io_error("cannot read", dir))? {
            let entry = entry.map_err(super::io_error("cannot read", dir))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(super::io_error("cannot stat", &path))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let digest =
                    Digest::of_file(&path).map_err(super::io_error("cannot read", &path))?;
                let relative = path.strip_prefix(root).unwrap_or(&path);
                out.insert(relative.to_string_lossy().into_owned(), digest);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// What a re-sync did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resync {
    copied: usize,
    removed: usize,
    /// Files changed on the share that the new level changes too: kept.
    kept: Vec<String>,
}

/// Brings a share folder to a new level's product files: copies what the
/// share lacks, replaces files still exactly as the earlier seed left them,
/// removes files the product no longer ships if nobody changed them, and
/// keeps everything else (operators' own artifacts and edits). A marker
/// from before files were recorded (`seeded` empty) replaces product files.
fn resync(
    source: &Path,
    target: &Path,
    seeded: &BTreeMap<String, Digest>,
    files: &BTreeMap<String, Digest>,
) -> Result<Resync, ResourceError> {
    let mut done = Resync::default();
    for (relative, digest) in files {
        let (from, to) = (source.join(relative), target.join(relative));
        let current = match fs::symlink_metadata(&to) {
            Ok(_) => Some(Digest::of_file(&to).map_err(super::io_error("cannot read", &to))?),
            Err(_) => None,
        };
        let replace = match current {
            None => true,
            Some(current) if current == *digest => false,
            Some(current) => seeded.is_empty() || seeded.get(relative) == Some(&current),
        };
        if replace {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(super::io_error("cannot create", parent))?;
            }
            let tmp = to.with_file_name(format!(
                ".rigger-{}",
                to.file_name().unwrap_or_default().to_string_lossy()
            ));
            fs::copy(&from, &tmp).map_err(super::io_error("cannot copy to", &tmp))?;
            fs::rename(&tmp, &to).map_err(super::io_error("cannot replace", &to))?;
            done.copied += 1;
        } else if current != Some(*digest) {
            done.kept.push(relative.clone());
        }
    }
    // Folders and links the level adds.
    copy_tree(source, target, false)?;
    for (relative, digest) in seeded {
        if files.contains_key(relative) {
            continue;
        }
        let path = target.join(relative);
        if Digest::of_file(&path).ok() == Some(*digest) {
            fs::remove_file(&path).map_err(super::io_error("cannot remove", &path))?;
            done.removed += 1;
        }
    }
    Ok(done)
}

/// Gives a folder and everything under it to `owner` (when it names one).
fn give_tree(dir: &Path, owner: DesiredOwner) -> Result<(), ResourceError> {
    if !owner.is_managed() {
        return Ok(());
    }
    owner.apply(dir)?;
    let entries = fs::read_dir(dir).map_err(super::io_error("cannot read", dir))?;
    for entry in entries {
        let entry = entry.map_err(super::io_error("cannot read", dir))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            give_tree(&entry.path(), owner)?;
        } else {
            owner.apply(&entry.path())?;
        }
    }
    Ok(())
}

/// Copies a folder tree; `overwrite` replaces files that exist (the
/// product's own), otherwise only missing files are added.
fn copy_tree(from: &Path, to: &Path, overwrite: bool) -> Result<(), ResourceError> {
    fs::create_dir_all(to).map_err(super::io_error("cannot create", to))?;
    for entry in fs::read_dir(from).map_err(super::io_error("cannot read", from))? {
        let entry = entry.map_err(super::io_error("cannot read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(super::io_error("cannot stat", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst, overwrite)?;
        } else if kind.is_symlink() {
            if overwrite || fs::symlink_metadata(&dst).is_err() {
                let target =
                    fs::read_link(&src).map_err(super::io_error("cannot read link", &src))?;
                replace_symlink(&dst, &target)?;
            }
        } else if overwrite || !dst.exists() {
            fs::copy(&src, &dst).map_err(super::io_error("cannot copy to", &dst))?;
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
        ] {
            put(&old, f, t);
            put(&share, f, t);
        }
        let seeded = product_files(&old).unwrap();
        // Operators change two product files and deploy their own.
        put(&share, "webapps/edited.war", "operator's edit");
        put(&share, "webapps/gone-edited.war", "operator's edit");
        put(&share, "carbonapps/orders.car", "operator's own");
        // Level 2: a and edited change, gone and gone-edited go, c comes.
        for (f, t) in [
            ("webapps/a.war", "a2"),
            ("webapps/b.war", "b1"),
            ("webapps/edited.war", "e2"),
            ("webapps/c.war", "c2"),
        ] {
            put(&new, f, t);
        }
        let files = product_files(&new).unwrap();
        let done = resync(&new, &share, &seeded, &files).unwrap();
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
        assert_eq!(
            done,
            Resync {
                copied: 2,
                removed: 1,
                kept: vec!["webapps/edited.war".into()],
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
        let share = tempfile::tempdir().unwrap();
        let held = lock_share(share.path(), Duration::from_secs(1)).unwrap();
        let lease = read_lease(share.path()).unwrap();
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
        write_atomic(
            &share.path().join(LEASE),
            &serde_json::to_vec(&stale).unwrap(),
            0o644,
            Ownership::default(),
        )
        .unwrap();
        let e = lock_share(share.path(), Duration::from_millis(500)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("held by ip-10-0-1-5 (agent pid 4242)") && text.contains("lease ran out"),
            "{text}"
        );

        // The holder died mid-seed: its lock is gone, its temporary folder
        // is not; the next holder removes it.
        fs::create_dir_all(share.path().join(".tmp-Deployment-4242/webapps")).unwrap();
        drop(held);
        let _lock = lock_share(share.path(), Duration::from_secs(1)).unwrap();
        assert!(!share.path().join(".tmp-Deployment-4242").exists());
        assert_eq!(read_lease(share.path()).unwrap().pid, std::process::id());
    }
}
