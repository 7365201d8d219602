//! Drift, noticed as it happens: the daemon watches (inotify, through
//! notify) the folders of the files and links the applied catalog manages,
//! and a change made outside the agent to one of them starts a repair run
//! at once, which also reports it to the master. A change is drift only if
//! the resource's own check finds it no longer as the catalog wants it (a
//! run's own writes are not; changes seen during a run are checked after
//! it); repairs are rate-limited so that a fight with another writer
//! cannot spin. What lives on a mount the catalog makes (the EFS share:
//! its mount, the folders kept there, files under it) is polled instead
//! ([`poll_share`]): NFS gives no event for another client's write, and an
//! unmount gives none at all.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use rigger_common::catalog::{Catalog, Resource, ResourceSpec};
use tokio::sync::mpsc;

use crate::paths::Paths;
use crate::resources::ApplyContext;

/// At most this many repairs …
const MAX_REPAIRS: usize = 5;
/// … in this window (a burst of 5, then one every 2 s): more means another
/// writer keeps changing the files, and a fight costs a run every 2 s.
const REPAIR_WINDOW: Duration = Duration::from_secs(10);

/// How often what lives on the share is looked at between runs.
pub const SHARE_POLL_EVERY: Duration = Duration::from_secs(2);

/// The watch over the applied catalog's managed paths. One watcher lives
/// as long as the daemon; each applied catalog updates what it watches.
pub struct DriftWatch {
    watcher: RecommendedWatcher,
    managed: Arc<Mutex<HashSet<PathBuf>>>,
    folders: HashSet<PathBuf>,
}

/// The paths a catalog manages that a change on the node can break: its
/// files and links, resolved under the agent's root.
pub fn managed_paths(catalog: &Catalog, paths: &Paths) -> HashSet<PathBuf> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::File(f) => Some(paths.resolve(&f.path)),
            ResourceSpec::Symlink(l) => Some(paths.resolve(&l.path)),
            _ => None,
        })
        .collect()
}

impl DriftWatch {
    /// A watch sending on `changed` the managed paths that changed
    /// (created, written, removed, renamed over); it watches nothing until
    /// [`DriftWatch::follow`].
    pub fn new(changed: mpsc::UnboundedSender<Vec<PathBuf>>) -> Result<Self, notify::Error> {
        let managed: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let watched = managed.clone();
        // (A burst of events becomes one repair: the daemon queues one run.)
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else {
                return;
            };
            // Reads (a server's, an operator's `cat`) are not drift.
            if !rigger_common::fswatch::is_change(&event.kind) {
                return;
            }
            let managed = watched.lock().expect("managed paths");
            let hit: Vec<PathBuf> = event
                .paths
                .into_iter()
                .filter(|p| managed.contains(p))
                .collect();
            drop(managed);
            if !hit.is_empty() {
                let _ = changed.send(hit);
            }
        })?;
        Ok(Self {
            watcher,
            managed,
            folders: HashSet::new(),
        })
    }

    /// Watches `managed` (the applied catalog's paths) from now on, in
    /// place of what it watched before.
    pub fn follow(&mut self, managed: HashSet<PathBuf>) -> Result<(), notify::Error> {
        let folders: HashSet<PathBuf> = managed
            .iter()
            .filter_map(|p| p.parent().map(PathBuf::from))
            .filter(|p| p.is_dir())
            .collect();
        for gone in self.folders.difference(&folders) {
            let _ = self.watcher.unwatch(gone);
        }
        // Every folder again: one replaced since (a new release) is
        // watched by its path, not by the inode that went away.
        for folder in &folders {
            let _ = self.watcher.unwatch(folder);
            self.watcher.watch(folder, RecursiveMode::NonRecursive)?;
        }
        self.folders = folders;
        *self.managed.lock().expect("managed paths") = managed;
        Ok(())
    }

    /// How many paths it watches.
    pub fn paths(&self) -> usize {
        self.managed.lock().expect("managed paths").len()
    }
}

/// Of the `changed` paths, those no longer as the catalog wants them
/// (content, mode, owner, link target): a run's own writes and a change
/// put back already are not drift.
pub fn drifted(catalog: &Catalog, ctx: &ApplyContext, changed: &[PathBuf]) -> Vec<PathBuf> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| {
            let path = match &r.spec {
                ResourceSpec::File(f) => ctx.paths.resolve(&f.path),
                ResourceSpec::Symlink(l) => ctx.paths.resolve(&l.path),
                _ => return None,
            };
            let differs = changed.contains(&path)
                && crate::apply::check(r, ctx, &catalog.content).is_ok_and(|c| !c.is_empty());
            differs.then_some(path)
        })
        .collect()
}

/// The resources events cannot follow, polled instead: the catalog's
/// mounts, the folders it keeps on a share, and the files, links and
/// directories under a mount point it makes.
pub fn polled<'a>(catalog: &'a Catalog, paths: &Paths) -> Vec<&'a Resource> {
    let resources = &catalog.content.resources;
    let mount_points: Vec<PathBuf> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::Mount(m) => Some(paths.resolve(&m.path)),
            _ => None,
        })
        .collect();
    let on_a_mount = |path: &str| {
        let path = paths.resolve(path);
        mount_points.iter().any(|m| path.starts_with(m))
    };
    resources
        .iter()
        .filter(|r| match &r.spec {
            ResourceSpec::Mount(_) | ResourceSpec::SharedDirs(_) => true,
            ResourceSpec::File(f) => on_a_mount(&f.path),
            ResourceSpec::Symlink(l) => on_a_mount(&l.path),
            ResourceSpec::Directory(d) => on_a_mount(&d.path),
            _ => false,
        })
        .collect()
}

/// Of the [`polled`] resources, what no longer agrees with the catalog,
/// one `id: change` line each (a check that fails says its error). May
/// block on a hung NFS server: call it off the daemon's loop.
pub fn poll_share(catalog: &Catalog, ctx: &ApplyContext) -> Vec<String> {
    polled(catalog, &ctx.paths)
        .into_iter()
        .flat_map(|r| match crate::apply::check(r, ctx, &catalog.content) {
            Ok(changes) => changes
                .into_iter()
                .map(|c| format!("{}: {}", r.id, c.summary))
                .collect::<Vec<_>>(),
            Err(e) => vec![format!("{}: {e}", r.id)],
        })
        .collect()
}

/// Limits repairs, so that a fight with another writer cannot spin.
#[derive(Debug, Default)]
pub struct RepairLimiter {
    recent: VecDeque<Instant>,
}

impl RepairLimiter {
    /// Whether a repair may start now (and counts it).
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now - *t > REPAIR_WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_REPAIRS {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rigger_common::digest::Digest;

    #[test]
    fn repairs_are_limited() {
        let mut limiter = RepairLimiter::default();
        for _ in 0..MAX_REPAIRS {
            assert!(limiter.allow());
        }
        assert!(!limiter.allow());
    }

    #[test]
    fn what_lives_on_a_mount_the_catalog_makes_is_polled_and_nothing_else() {
        let catalog: Catalog = serde_json::from_value(serde_json::json!({
            "format": 1, "node": "n", "version": 1, "digest": Digest::of(b"x"),
            "compiled_at_ms": 0,
            "content": {"role": "is", "profile": "wso2is/is", "resources": [
                {"id": "shared_fs", "kind": "mount", "path": "/mnt/efs",
                 "fstype": "nfs4", "source": "fs-1.efs:/"},
                {"id": "shared_dirs", "kind": "shared_dirs", "share": "/mnt/efs",
                 "link": "/opt/wso2/is", "dirs": {"repository/deployment": "Deployment"}},
                {"id": "on_share", "kind": "file", "path": "/mnt/efs/README"},
                {"id": "share_dir", "kind": "directory", "path": "/mnt/efs/logs"},
                {"id": "local", "kind": "file", "path": "/opt/wso2/is/conf/deployment.toml"},
                {"id": "sibling", "kind": "file", "path": "/mnt/efs-old/README"},
            ]},
        }))
        .unwrap();
        let ids: Vec<&str> = polled(&catalog, &Paths::new("/tmp/root"))
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["shared_fs", "shared_dirs", "on_share", "share_dir"]);
        // A catalog without a mount polls nothing.
        let mut local = catalog.clone();
        local.content.resources.retain(|r| r.id == "local");
        assert!(polled(&local, &Paths::new("/")).is_empty());
    }

    #[tokio::test]
    async fn a_change_to_a_managed_file_is_reported_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let managed = dir.path().join("deployment.toml");
        std::fs::write(&managed, "a").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watch = DriftWatch::new(tx).unwrap();
        watch.follow(HashSet::from([managed.clone()])).unwrap();
        // Following a new catalog again keeps the watch working.
        watch.follow(HashSet::from([managed.clone()])).unwrap();
        std::fs::write(dir.path().join("other.log"), "x").unwrap();
        // A read is not a change.
        assert_eq!(std::fs::read_to_string(&managed).unwrap(), "a");
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "a read was taken for drift");
        std::fs::write(&managed, "edited").unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed, vec![managed]);
    }
}
