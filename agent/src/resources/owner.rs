//! Owner and group of managed paths: names resolved to ids, changed only
//! when they differ (which needs root).

use std::path::Path;

use nix::unistd::geteuid;
use rigger_common::beneath::Beneath;
use rigger_common::fsutil::Ownership;

use super::account;
use crate::paths::Paths;

use super::{Change, ResourceError};

/// The desired owner and group, resolved to ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DesiredOwner {
    /// User id, if managed.
    pub uid: Option<u32>,
    /// Group id, if managed.
    pub gid: Option<u32>,
}

impl DesiredOwner {
    /// Resolves user and group names (or numeric ids): through NSS on a
    /// real node, through the root's own `etc/passwd`/`etc/group` under `--root`.
    pub fn resolve(
        paths: &Paths,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<Self, ResourceError> {
        // An empty name (a module's "{{ service.user }}" left unset) manages nothing.
        let (owner, group) = (
            owner.filter(|s| !s.is_empty()),
            group.filter(|s| !s.is_empty()),
        );
        let uid = owner
            .map(|name| match name.parse::<u32>() {
                Ok(id) => Ok(id),
                Err(_) => account::user(paths, name)
                    .map(|u| u.id)
                    .ok_or_else(|| ResourceError::Other(format!("user {name:?} does not exist"))),
            })
            .transpose()?;
        let gid = group
            .map(|name| match name.parse::<u32>() {
                Ok(id) => Ok(id),
                Err(_) => account::group(paths, name)
                    .map(|g| g.id)
                    .ok_or_else(|| ResourceError::Other(format!("group {name:?} does not exist"))),
            })
            .transpose()?;
        Ok(Self { uid, gid })
    }

    /// Like [`DesiredOwner::resolve`] for a check: an account that does not
    /// exist yet (an earlier resource of this run creates it) is a pending
    /// change rather than an error; applying resolves it again.
    pub fn resolve_for_check(
        paths: &Paths,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> (Self, Option<Change>) {
        match Self::resolve(paths, owner, group) {
            Ok(resolved) => (resolved, None),
            Err(e) => (
                Self::default(),
                Some(Change::new(format!(
                    "set owner/group once the account exists ({e})"
                ))),
            ),
        }
    }

    /// The ownership changes `meta` needs, if any.
    pub fn changes(&self, meta: &impl crate::file_meta::FileMeta) -> Vec<Change> {
        let (has_uid, has_gid) = meta.owner_ids();
        let mut out = Vec::new();
        if let Some(uid) = self.uid.filter(|u| *u != has_uid) {
            out.push(Change::new(format!("owner uid {has_uid} → {uid}")));
        }
        if let Some(gid) = self.gid.filter(|g| *g != has_gid) {
            out.push(Change::new(format!("group gid {has_gid} → {gid}")));
        }
        out
    }

    /// Whether anything is managed.
    pub fn is_managed(&self) -> bool {
        self.uid.is_some() || self.gid.is_some()
    }

    /// Sets owner and group on `path` (not following a final symlink) when
    /// they differ; `path` resolves beneath `root`.
    pub fn apply(&self, root: &Beneath, path: &Path) -> Result<(), ResourceError> {
        let meta = std::fs::symlink_metadata(path).map_err(super::io_error("cannot stat", path))?;
        if self.changes(&meta).is_empty() {
            return Ok(());
        }
        if !geteuid().is_root() {
            return Err(ResourceError::Other(format!(
                "cannot change the owner of {}: the agent is not running as root",
                path.display()
            )));
        }
        Ok(root.set_owner(
            path,
            Ownership {
                uid: self.uid,
                gid: self.gid,
            },
        )?)
    }
}
