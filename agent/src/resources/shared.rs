//! `shared_dirs`: release folders kept on the shared file system (EFS), as
//! seed 004 does for `repository/deployment` and `repository/tenants`.
//!
//! Each share folder is seeded from a release exactly once across all
//! nodes: under a lock on the share (flock, which Linux's NFS client maps
//! to NFSv4 locks), into a temporary folder renamed into place, with a
//! marker naming the product, version and update level that seeded it. The
//! first node on a higher update level re-syncs the product's files into
//! it (files operators deployed there are kept). Then the release's folder
//! becomes a symlink to the share. A share that is not mounted stops the
//! resource (and the server that requires it) with a clear error, so a
//! server never starts on empty local folders.

use std::fs;
use std::path::{Path, PathBuf};

use rigger_common::catalog::SharedDirsSpec;
use rigger_common::fsutil::{Ownership, replace_symlink, write_atomic};
use serde::{Deserialize, Serialize};

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
    let identity = super::tree::release_identity(&release)
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
        let _lock = lock_share(&l.share)?;
        for (relative, name) in &spec.dirs {
            seed(&l, relative, name)?;
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

/// Holds the share-wide lock; a lease file names the holder for operators.
fn lock_share(share: &Path) -> Result<nix::fcntl::Flock<fs::File>, ResourceError> {
    let path = share.join(LOCK);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(super::io_error("cannot open the share lock", &path))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| err(format!("cannot lock {}: {e}", path.display())))?;
    let holder = format!(
        "{{\"holder\": \"{}\", \"pid\": {}, \"since_ms\": {}}}\n",
        hostname(),
        std::process::id(),
        rigger_common::time::now_ms()
    );
    write_atomic(
        &share.join(LEASE),
        holder.as_bytes(),
        0o644,
        Ownership::default(),
    )?;
    Ok(lock)
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
fn seed(l: &Layout, relative: &str, name: &str) -> Result<(), ResourceError> {
    let target = l.share.join(name);
    let source = l.release.join(relative);
    let marker = SeedMarker {
        product: l.identity.0.clone(),
        version: l.identity.1.clone(),
        level: l.identity.2,
        by: format!("{} pid {}", hostname(), std::process::id()),
    };
    match read_marker(&target) {
        Some(m) if m.level >= marker.level => return Ok(()), // another node did it meanwhile
        Some(_) => {
            if source.is_dir() && !source.is_symlink() {
                copy_tree(&source, &target, true)?;
            }
        }
        None if target.exists() => {
            // A folder someone made before Rigger: adopt it, add what is missing.
            if source.is_dir() && !source.is_symlink() {
                copy_tree(&source, &target, false)?;
            }
        }
        None => {
            let tmp = l.share.join(format!(".tmp-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).map_err(super::io_error("cannot create", &tmp))?;
            if source.is_dir() && !source.is_symlink() {
                copy_tree(&source, &tmp, true)?;
            }
            fs::rename(&tmp, &target)
                .map_err(super::io_error("cannot move the seed into", &target))?;
        }
    }
    let bytes = serde_json::to_vec_pretty(&marker).expect("marker serializes");
    write_atomic(&target.join(MARKER), &bytes, 0o644, Ownership::default())?;
    tracing::info!(share = %target.display(), level = marker.level, "shared folder seeded");
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
