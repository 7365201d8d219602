//! `mount`: EFS over NFS 4.1 (AWS's options) or the `efs` helper through
//! the system's mount helpers; `bind` and `tmpfs` through mount(2).
//! An existing correct mount is left alone, a different one is reported and
//! never replaced; the fstab line is written exactly once. A network mount
//! is probed on a thread with a timeout, so a hung NFS server cannot freeze
//! the agent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::mount::{MsFlags, mount};
use rigger_common::catalog::{FsType, MountSpec};
use rigger_common::fsutil::Ownership;

use super::{ApplyContext, Change, ResourceError};

/// How long a network mount may take to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn err(message: String) -> ResourceError {
    ResourceError::Other(message)
}

/// A line of /proc/self/mountinfo: mount point, file system type, source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// Mount point.
    pub point: PathBuf,
    /// File system type.
    pub fstype: String,
    /// Source.
    pub source: String,
    /// The directory of the source file system mounted there (a bind
    /// mount's source directory).
    pub root: PathBuf,
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// What is mounted at `point` (the last mount there wins), if anything.
pub fn mounted_at(point: &Path) -> Option<Mounted> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = left.split(' ');
            let root = PathBuf::from(unescape(fields.nth(3)?));
            let mount_point = PathBuf::from(unescape(fields.next()?));
            let mut rest = right.split(' ');
            let fstype = rest.next()?.to_string();
            let source = unescape(rest.next()?);
            Some(Mounted {
                point: mount_point,
                fstype,
                source,
                root,
            })
        })
        .rfind(|m| m.point == point)
}

fn expected_fstype(spec: &MountSpec) -> &'static str {
    match spec.fstype {
        // EFS mounts show up as nfs4 (the efs helper wraps NFS in TLS).
        FsType::Efs => "nfs4",
        other => other.as_str(),
    }
}

/// Whether an existing mount is the one the catalog wants.
pub fn matches(spec: &MountSpec, ctx: &ApplyContext, m: &Mounted) -> bool {
    if spec.fstype == FsType::Bind {
        // A bind mount shows its backing file system, and its root is the
        // source's path within that file system (not on the node, unless
        // the source is on the root file system): it is the source when
        // the mount point is the source's own inode.
        return is_same_inode(&ctx.paths.resolve(&spec.source), &m.point);
    }
    if m.fstype != expected_fstype(spec) {
        return false;
    }
    match spec.fstype {
        FsType::Tmpfs => true,
        FsType::Efs => m.source.starts_with("127.0.0.1:") || m.source == spec.source,
        FsType::Nfs4 | FsType::Bind => {
            m.source == spec.source || ctx.paths.root() != Path::new("/")
        }
    }
}

/// Whether `a` and `b` name the same file (device and inode), following
/// links; `false` when either cannot be looked at.
fn is_same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The fstab line for the mount.
pub fn fstab_line(spec: &MountSpec) -> String {
    let mut options = spec.effective_options();
    if spec.is_network() {
        options.push_str(",_netdev");
    }
    let fstype = match spec.fstype {
        FsType::Bind => "none",
        other => other.as_str(),
    };
    format!("{} {} {fstype} {options} 0 0", spec.source, spec.path)
}

fn fstab_path(ctx: &ApplyContext) -> PathBuf {
    ctx.paths.resolve("/etc/fstab")
}

fn fstab_current(ctx: &ApplyContext, spec: &MountSpec) -> Vec<String> {
    std::fs::read_to_string(fstab_path(ctx))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(spec.path.as_str()))
        .map(str::to_string)
        .collect()
}

/// Mount points whose probe has not come back yet (a hung file server).
static UNANSWERED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Probes a network mount with `statfs(2)` on a thread, waiting at most
/// [`PROBE_TIMEOUT`]: a hung NFS server blocks that thread in the kernel
/// (NFS waits are killable: the process still exits), never the run; while
/// it stays blocked, later probes of the point fail at once instead of
/// adding threads. (It was a `stat -f` child polled every 50 ms: 50 ms of
/// every converged run on a node with a share.)
pub fn probe(point: &Path) -> Result<(), String> {
    let unanswered = || UNANSWERED.lock().unwrap_or_else(|e| e.into_inner());
    if !unanswered().insert(point.to_path_buf()) {
        return Err(format!(
            "{} has not answered an earlier probe yet: the file server is unreachable",
            point.display()
        ));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = point.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("mount-probe".into())
        .spawn(move || {
            let answer = nix::sys::statfs::statfs(&owned).map(drop);
            UNANSWERED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&owned);
            let _ = tx.send(answer);
        });
    if let Err(e) = spawned {
        unanswered().remove(point);
        return Err(format!("cannot probe {}: {e}", point.display()));
    }
    match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{} does not answer ({e})", point.display())),
        Err(_) => Err(format!(
            "{} did not answer within {}s: the file server is unreachable",
            point.display(),
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// What would change.
pub fn check(spec: &MountSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    let point = ctx.paths.resolve(&spec.path);
    let mut changes = Vec::new();
    match mounted_at(&point) {
        Some(m) if matches(spec, ctx, &m) => {
            if spec.is_network() {
                probe(&point).map_err(err)?;
            }
        }
        Some(m) => {
            return Err(err(format!(
                "{} already has {} from {} mounted, not the {} from {} the catalog wants: refusing to replace it",
                point.display(),
                m.fstype,
                m.source,
                spec.fstype,
                spec.source
            )));
        }
        None => changes.push(Change::new(format!(
            "mount {} {} at {}",
            spec.fstype, spec.source, spec.path
        ))),
    }
    if spec.fstab {
        let lines = fstab_current(ctx, spec);
        if lines != [fstab_line(spec)] {
            changes.push(Change::new(format!("fstab: {}", fstab_line(spec))));
        }
    }
    Ok(changes)
}

/// Mounts (if not mounted) and writes the fstab line (replacing any other
/// line for the same mount point, so it is there exactly once).
pub fn apply(spec: &MountSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    apply_with(spec, ctx, &ctx.host.mount)
}

/// [`apply`] with an explicit mount(8) helper for network file systems.
pub fn apply_with(
    spec: &MountSpec,
    ctx: &ApplyContext,
    helper: &Path,
) -> Result<(), ResourceError> {
    let point = ctx.paths.resolve(&spec.path);
    let root = ctx.beneath()?;
    root.create_dir_all(&point)?;
    if mounted_at(&point).is_none() {
        do_mount(spec, ctx, &point, helper)?;
    }
    if spec.fstab && fstab_current(ctx, spec) != [fstab_line(spec)] {
        let path = fstab_path(ctx);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1) != Some(spec.path.as_str()))
            .map(str::to_string)
            .collect();
        lines.push(fstab_line(spec));
        if let Some(parent) = path.parent() {
            root.create_dir_all(parent)?;
        }
        root.write_atomic(
            &path,
            format!("{}\n", lines.join("\n")).as_bytes(),
            0o644,
            Ownership::default(),
        )?;
    }
    Ok(())
}

fn do_mount(
    spec: &MountSpec,
    ctx: &ApplyContext,
    point: &Path,
    helper: &Path,
) -> Result<(), ResourceError> {
    match spec.fstype {
        FsType::Tmpfs => mount(
            Some("tmpfs"),
            point,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| err(format!("cannot mount tmpfs at {}: {e}", point.display()))),
        FsType::Bind => {
            let source = ctx.paths.resolve(&spec.source);
            mount(
                Some(&source),
                point,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| {
                err(format!(
                    "cannot bind {} at {}: {e}",
                    source.display(),
                    point.display()
                ))
            })
        }
        FsType::Nfs4 | FsType::Efs => {
            let out = Command::new(helper)
                .args([
                    "-t",
                    spec.fstype.as_str(),
                    "-o",
                    &spec.effective_options(),
                    &spec.source,
                ])
                .arg(point)
                .output()
                .map_err(|e| err(format!("cannot run the mount helper: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(err(format!(
                    "mount -t {} {} {} failed: {}",
                    spec.fstype,
                    spec.source,
                    point.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    #[test]
    fn a_probe_answers_for_a_file_system_and_names_a_missing_point() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        // Answered: the point is asked again, not refused as still hanging.
        probe(dir.path()).unwrap();
        let missing = dir.path().join("gone");
        let err = probe(&missing).unwrap_err();
        assert!(
            err.contains("gone") && err.contains("does not answer"),
            "{err}"
        );
        assert!(UNANSWERED.lock().unwrap().is_empty());
    }

    fn spec(fstype: &str, source: &str) -> MountSpec {
        MountSpec {
            path: "/mnt/efs".into(),
            fstype: serde_json::from_value(fstype.into()).unwrap(),
            source: source.into(),
            options: String::new(),
            fstab: true,
        }
    }

    #[test]
    fn nfs_options_and_fstab_lines_follow_aws_advice() {
        let efs = spec("nfs4", "fs-0123456789.efs.us-east-1.amazonaws.com:/");
        assert_eq!(
            fstab_line(&efs),
            "fs-0123456789.efs.us-east-1.amazonaws.com:/ /mnt/efs nfs4 nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev 0 0"
        );
        assert_eq!(
            fstab_line(&spec("efs", "fs-1:/")),
            "fs-1:/ /mnt/efs efs tls,_netdev 0 0"
        );
        assert_eq!(
            fstab_line(&spec("tmpfs", "tmpfs")),
            "tmpfs /mnt/efs tmpfs defaults 0 0"
        );
    }

    #[test]
    fn nfs_mounts_go_through_the_helper_and_fstab_gets_one_line() {
        // A recording fake of mount(8): this machine has no NFS client.
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path().join("root")));
        std::fs::create_dir_all(ctx.paths.resolve("/etc")).unwrap();
        std::fs::write(
            ctx.paths.resolve("/etc/fstab"),
            "/dev/vda1 / ext4 defaults 0 1\n",
        )
        .unwrap();
        let log = dir.path().join("mount.log");
        let fake = dir.path().join("mount");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let efs = spec("nfs4", "fs-0123456789.efs.us-east-1.amazonaws.com:/");
        apply_with(&efs, &ctx, &fake).unwrap();
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(calls.starts_with("-t nfs4 -o nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport fs-0123456789.efs.us-east-1.amazonaws.com:/ "), "{calls}");
        for _ in 0..3 {
            // The fake does not really mount (so it is asked again); the
            // fstab line must still be there exactly once.
            apply_with(&efs, &ctx, &fake).unwrap();
        }
        let fstab = std::fs::read_to_string(ctx.paths.resolve("/etc/fstab")).unwrap();
        assert!(fstab.starts_with("/dev/vda1 / ext4"), "{fstab}");
        assert_eq!(fstab.matches("/mnt/efs").count(), 1, "{fstab}");
    }

    #[test]
    fn tmpfs_and_bind_mounts_are_real_and_idempotent() {
        if !super::super::file::tests_support::root_or_skip(
            "tmpfs_and_bind_mounts_are_real_and_idempotent",
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let tmpfs = spec("tmpfs", "tmpfs");
        assert_eq!(check(&tmpfs, &ctx).unwrap().len(), 2);
        apply(&tmpfs, &ctx).unwrap();
        let point = ctx.paths.resolve("/mnt/efs");
        let guard = Unmount(point.clone());
        assert_eq!(mounted_at(&point).unwrap().fstype, "tmpfs");
        assert!(check(&tmpfs, &ctx).unwrap().is_empty());
        apply(&tmpfs, &ctx).unwrap();
        // Something else at the mount point is reported, never replaced.
        let mut other = spec("bind", "/srv/data");
        other.fstab = false;
        let e = check(&other, &ctx).unwrap_err().to_string();
        assert!(e.contains("refusing to replace"), "{e}");
        drop(guard);
        assert!(mounted_at(&point).is_none());

        std::fs::create_dir_all(ctx.paths.resolve("/srv/data")).unwrap();
        std::fs::write(ctx.paths.resolve("/srv/data/marker"), "x").unwrap();
        apply(&other, &ctx).unwrap();
        let _guard = Unmount(point.clone());
        assert_eq!(std::fs::read_to_string(point.join("marker")).unwrap(), "x");
        assert!(check(&other, &ctx).unwrap().is_empty());
    }

    #[test]
    fn a_bind_from_a_folder_on_another_file_system_is_known_on_the_next_run() {
        if !super::super::file::tests_support::root_or_skip(
            "a_bind_from_a_folder_on_another_file_system_is_known_on_the_next_run",
        ) {
            return;
        }
        // The source on its own file system (a data volume), so that the
        // bind's root in mountinfo is `/data`, not the source's path.
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let volume = ctx.paths.resolve("/srv");
        std::fs::create_dir_all(&volume).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &volume,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let _volume = Unmount(volume.clone());
        std::fs::create_dir_all(volume.join("data")).unwrap();
        std::fs::create_dir_all(volume.join("other")).unwrap();
        let mut bind = spec("bind", "/srv/data");
        bind.fstab = false;
        apply(&bind, &ctx).unwrap();
        let point = ctx.paths.resolve("/mnt/efs");
        let _bind = Unmount(point.clone());
        assert_eq!(mounted_at(&point).unwrap().root, Path::new("/data"));
        assert!(
            check(&bind, &ctx).unwrap().is_empty(),
            "the bind it made is not the one it wants"
        );
        // Another folder of the same file system is not the source.
        let mut other = spec("bind", "/srv/other");
        other.fstab = false;
        let e = check(&other, &ctx).unwrap_err().to_string();
        assert!(e.contains("refusing to replace"), "{e}");
    }

    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
