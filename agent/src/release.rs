//! The release layout on a node, in one place: where a product's releases
//! live (`releases_dir/<product>-<version>-L<level>-<hash>`), the link that
//! names the current one (CARBON_HOME), the temporary directory a release
//! is built in, the marker and stat index a complete release records about
//! itself, and pruning of old ones. `tree` builds releases, `shared_dirs`
//! links their folders onto the share, the run asks whether one is on disk.
//!
//! Invariant: a release has its final name only once complete, and only a
//! complete release carries a marker.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rigger_common::beneath::Beneath;
use rigger_common::catalog::TreeSpec;
use rigger_common::digest::Digest;
use rigger_common::fsutil::{Ownership, WriteError};
use rigger_common::manifest::Manifest;
use serde::{Deserialize, Serialize};

use crate::paths::Paths;
use crate::release_index::ReleaseIndex;
use crate::resources::ResourceError;

/// Marker and index file inside every complete release.
const MARKER: &str = ".rigger-release.json";
/// Prefix of a release being built.
const TEMPORARY_PREFIX: &str = ".tmp-";

/// Size, modification time (ns) and inode of a file when it was written.
pub type StatKey = (u64, i128, u64);
/// Release-relative path → its [`StatKey`], for every enforced file.
pub type StatIndex = BTreeMap<String, StatKey>;

/// The stat key of a file's metadata.
pub fn stat_key(meta: &impl crate::file_meta::FileMeta) -> StatKey {
    let (seconds, nanos) = meta.mtime_parts();
    let mtime = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    (meta.byte_len(), mtime, meta.inode())
}

/// What a release directory records about itself. `I` is its stat index:
/// a [`ReleaseHead`] skips it, for the readers that only ask what the
/// release is (decoding 3000 entries twice was a converged run's cost).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseMarker<I = StatIndex> {
    /// Product name.
    pub product: String,
    /// Product version.
    pub version: String,
    /// Update level.
    pub level: u32,
    /// The tree it was built from.
    pub tree: Digest,
    /// When it was completed, Unix ms.
    pub installed_at_ms: i64,
    /// Every enforced file when written. This agent keeps it in the
    /// release's check index (`release_index.rs`) and writes it empty
    /// here; releases of earlier agents have it here.
    #[serde(default)]
    pub index: I,
    /// Built with links to the cache's read-only objects (see
    /// `resources/sharing.rs`); releases of earlier agents are copies.
    #[serde(default)]
    pub shared: bool,
    /// Release folders (release-relative runtime paths) the catalog keeps
    /// on the shared file system, left out of the release when it was
    /// built: `shared_dirs` seeds the share from the manifest and links
    /// them; the tree puts them back if the catalog stops sharing them
    /// before the link was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

/// A release's marker without its stat index.
pub type ReleaseHead = ReleaseMarker<serde::de::IgnoredAny>;

impl<I> ReleaseMarker<I> {
    /// Whether `relative` (release-relative) is in a folder left out for the share.
    pub fn is_left_out(&self, relative: &str) -> bool {
        self.left_out
            .iter()
            .any(|folder| rigger_common::catalog::is_within(folder, relative))
    }
}

/// Where one tree's release, its siblings and its link live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The link naming the current release (CARBON_HOME).
    pub link: PathBuf,
    /// The directory holding every release of the product.
    pub releases: PathBuf,
    /// This tree's release directory.
    pub release: PathBuf,
}

impl Release {
    /// The layout of `spec`'s release under the agent's root.
    pub fn of(spec: &TreeSpec, paths: &Paths) -> Self {
        let releases = paths.resolve(&spec.releases_dir);
        Self {
            link: paths.resolve(&spec.link),
            release: releases.join(spec.release_id()),
            releases,
        }
    }

    /// Whether the release directory exists (complete: it has its final name).
    pub fn is_on_disk(&self) -> bool {
        self.release.is_dir()
    }

    /// The directory this process builds the release in before renaming it.
    pub fn temporary(&self) -> PathBuf {
        let name = self
            .release
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.releases
            .join(format!("{TEMPORARY_PREFIX}{name}-{}", std::process::id()))
    }

    /// Removes releases an interrupted run left half-built.
    pub fn remove_stale_temporaries(&self, root: &Beneath) {
        let Ok(entries) = fs::read_dir(&self.releases) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(TEMPORARY_PREFIX)
            {
                tracing::warn!(path = %entry.path().display(), "removing an incomplete release left by an interrupted run");
                let _ = root.remove_dir_all(&entry.path());
            }
        }
    }

    /// Deletes this product version's releases beyond the `keep` most
    /// recent ones that are not this one.
    pub fn prune(&self, root: &Beneath, spec: &TreeSpec) -> Result<(), ResourceError> {
        let Ok(entries) = fs::read_dir(&self.releases) else {
            return Ok(());
        };
        let mut others: Vec<(i64, PathBuf)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| *p != self.release)
            .filter_map(|p| {
                let m = read_head(&p)?;
                (m.product == spec.product && m.version == spec.version)
                    .then_some((m.installed_at_ms, p))
            })
            .collect();
        others.sort_by_key(|o| std::cmp::Reverse(o.0));
        for (_, old) in others.into_iter().skip(spec.keep as usize) {
            tracing::info!(release = %old.display(), "removing an old release");
            root.remove_dir_all(&old)?;
        }
        Ok(())
    }
}

/// The marker of the release at `dir`, if it is a complete release, with
/// its stat index (from the release's check index when the marker's own
/// is empty; an index that cannot be used leaves it empty: every file is
/// hashed, and the index written again).
pub fn read_marker(dir: &Path) -> Option<ReleaseMarker> {
    read_marker_with(dir, |tree| ReleaseIndex::read(dir, tree))
}

/// [`read_marker`], the stat index taken from the check index `index`
/// gives for the marker's tree (one the caller has already read).
pub fn read_marker_with(
    dir: &Path,
    index: impl FnOnce(&Digest) -> Option<ReleaseIndex>,
) -> Option<ReleaseMarker> {
    let mut marker: ReleaseMarker = read_as(dir)?;
    if marker.index.is_empty() {
        if let Some(index) = index(&marker.tree) {
            marker.index = index.stat_index();
        }
    }
    Some(marker)
}

/// The marker of the release at `dir` without its index, if it is a
/// complete release.
pub fn read_head(dir: &Path) -> Option<ReleaseHead> {
    read_as(dir)
}

fn read_as<I: serde::de::DeserializeOwned + Default>(dir: &Path) -> Option<ReleaseMarker<I>> {
    serde_json::from_slice(&fs::read(dir.join(MARKER)).ok()?).ok()
}

/// How a release's marker and check index are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerWrite {
    /// Over an installed release's: atomically, fsynced.
    Replace,
    /// Into a release being built: not fsynced, its build flushes the
    /// file system once before the release gets its name.
    New,
}

impl MarkerWrite {
    /// Writes `bytes` as the file `name` of `release`.
    pub fn write(self, release: &Beneath, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        match self {
            Self::Replace => {
                release.write_atomic(Path::new(name), bytes, 0o644, Ownership::default())
            }
            Self::New => release.write_new(Path::new(name), bytes, 0o644),
        }
    }
}

/// Writes the marker that makes `release` (the confinement root of an
/// installed release directory) a complete release, built from
/// `manifest`: its check index first, then the marker without the stat
/// index.
pub fn write_marker(
    release: &Beneath,
    marker: &ReleaseMarker,
    manifest: &Manifest,
) -> Result<(), ResourceError> {
    write_marker_as(release, marker, manifest, MarkerWrite::Replace)
}

/// Writes the marker of a release being built, as [`write_marker`] does
/// but not fsynced ([`MarkerWrite::New`]).
pub fn write_new_marker(
    release: &Beneath,
    marker: &ReleaseMarker,
    manifest: &Manifest,
) -> Result<(), ResourceError> {
    write_marker_as(release, marker, manifest, MarkerWrite::New)
}

fn write_marker_as(
    release: &Beneath,
    marker: &ReleaseMarker,
    manifest: &Manifest,
    how: MarkerWrite,
) -> Result<(), ResourceError> {
    crate::release_index::write(release, &marker.tree, manifest, &marker.index, how)?;
    let head = ReleaseMarker {
        product: marker.product.clone(),
        version: marker.version.clone(),
        level: marker.level,
        tree: marker.tree,
        installed_at_ms: marker.installed_at_ms,
        index: &StatIndex::new(),
        shared: marker.shared,
        left_out: marker.left_out.clone(),
    };
    let bytes = serde_json::to_vec(&head).expect("marker serializes");
    Ok(how.write(release, MARKER, &bytes)?)
}

/// Product, version and update level of the release at `dir`, if it is one.
pub fn release_identity(dir: &Path) -> Option<(String, String, u32)> {
    read_head(dir).map(|m| (m.product, m.version, m.level))
}

/// Tree digests of every complete release under `releases` (what the
/// content cache must keep).
pub fn kept_trees(releases: &Path) -> Vec<Digest> {
    let Ok(entries) = fs::read_dir(releases) else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| read_head(&e.path()))
        .map(|m| m.tree)
        .collect()
}
