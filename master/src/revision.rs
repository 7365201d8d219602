//! The site revision: one name for everything a catalog is compiled from
//! besides the inventory — the site's and the modules' files (by content),
//! the imported levels, artifacts and promotions — and, when the site is a
//! git checkout, its commit. Every catalog carries the revision it was
//! compiled from, so that two nodes can be seen to run the same change
//! even though their per-node versions differ; a rollout is one revision.
//!
//! Hidden files and folders (`.git`, an editor's swap file, a tool's
//! temporary file) are not site data: they are neither hashed nor watched.
//! While the master watches the site, the files' part is hashed once per
//! change, not once per compile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::state::MasterState;

/// What a catalog was compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRevision {
    /// 16 hex digits of sha256 over the files, levels, artifacts and
    /// promotions.
    pub digest: String,
    /// The site checkout's commit (12 hex digits, `-dirty` when tracked
    /// files differ from it); `None` when the site is not a git checkout.
    pub commit: Option<String>,
}

/// The files' part of the revision, kept while nothing changes on disk.
#[derive(Default)]
pub struct RevisionCache {
    files: tokio::sync::Mutex<Option<CachedFiles>>,
}

struct CachedFiles {
    /// How many changes the site watch had seen when the files were read.
    changes: u64,
    hash: Sha256,
    commit: Option<String>,
}

/// The imported levels, artifacts and promotions, read together: what a
/// compile resolves and what its revision names are the same records.
pub struct Imported {
    /// The imported trees (every level of every product version).
    pub trees: Vec<crate::store::TreeRecord>,
    /// The imported artifacts.
    pub artifacts: Vec<crate::store::ArtifactRecord>,
    /// The levels promoted to environments.
    pub promotions: Vec<crate::store::PromotionRecord>,
}

impl Imported {
    /// Reads them from the store.
    pub async fn read(state: &MasterState) -> Result<Self> {
        let (trees, artifacts, promotions) = tokio::try_join!(
            state.store.trees(),
            state.store.artifacts(),
            state.store.promotions()
        )?;
        Ok(Self {
            trees,
            artifacts,
            promotions,
        })
    }

    /// One line per record (`tree NAME VERSION LEVEL DIGEST`, `artifact …`,
    /// `promotion …`): what the revision and a compile's inputs hash.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let trees = self
            .trees
            .iter()
            .map(|t| format!("tree {} {} {} {}\n", t.name, t.version, t.level, t.digest));
        let artifacts = self
            .artifacts
            .iter()
            .map(|a| format!("artifact {} {}\n", a.name, a.digest));
        let promotions = self.promotions.iter().map(|p| {
            format!(
                "promotion {} {} {} {}\n",
                p.name, p.version, p.environment, p.level
            )
        });
        trees.chain(artifacts).chain(promotions)
    }
}

/// The current revision.
pub async fn current(state: &MasterState) -> Result<SiteRevision> {
    of(state, &Imported::read(state).await?).await
}

/// The revision of the site's files now and of `imported`.
pub async fn of(state: &MasterState, imported: &Imported) -> Result<SiteRevision> {
    let (mut hash, commit) = files_part(state).await?;
    for line in imported.lines() {
        hash.update(line);
    }
    Ok(SiteRevision {
        digest: hex::encode(&hash.finalize()[..8]),
        commit,
    })
}

/// The hash of the site's and modules' files and the site's commit: from
/// the cache while the site watch saw no change since, else read again.
async fn files_part(state: &MasterState) -> Result<(Sha256, Option<String>)> {
    let mut cache = state.revision_cache.files.lock().await;
    // Read before the files: a change while they are read makes the next
    // call read them again.
    let changes = state.site_quiet.changes();
    if let Some(cached) = cache.as_ref() {
        if state.site_quiet.watching() && cached.changes == changes {
            return Ok((cached.hash.clone(), cached.commit.clone()));
        }
    }
    let site = state.compiler.site().to_path_buf();
    let roots = roots(state);
    let hash = tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
        let mut hash = Sha256::new();
        for root in roots {
            hash_tree(&root, &mut hash)?;
        }
        Ok(hash)
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e| Error::Internal(format!("cannot read the site and modules: {e}")))?;
    let commit = git_commit(&site).await;
    *cache = Some(CachedFiles {
        changes,
        hash: hash.clone(),
        commit: commit.clone(),
    });
    Ok((hash, commit))
}

/// Whether a name is hidden (not site data).
pub fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Whether any part of `path` below `root` is hidden.
pub fn under_hidden(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .any(|c| hidden(c.as_os_str()))
}

/// Hashes the files beneath `root` by path (relative to it) and content,
/// in name order; links are hashed by target, not followed; hidden entries
/// are skipped.
fn hash_tree(root: &Path, hash: &mut Sha256) -> std::io::Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let entries = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !hidden(e.file_name()));
    for entry in entries {
        let entry = entry.map_err(std::io::Error::other)?;
        let path = entry.path();
        let name = path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        if entry.path_is_symlink() {
            hash.update(format!(
                "link {name} {}\n",
                std::fs::read_link(path)?.display()
            ));
        } else if entry.file_type().is_file() {
            let bytes = std::fs::read(path)?;
            hash.update(format!("file {name} {}\n", bytes.len()));
            hash.update(bytes);
        }
    }
    Ok(())
}

/// The checkout's commit, `-dirty` when a tracked file differs from it;
/// `None` when `site` is not a git checkout or git cannot say (logged).
async fn git_commit(site: &Path) -> Option<String> {
    if !site.join(".git").exists() {
        return None;
    }
    let head = git(site, &["rev-parse", "--verify", "--quiet", "HEAD"]).await?;
    let status = git(site, &["status", "--porcelain", "--untracked-files=no"]).await?;
    let short: String = head.trim().chars().take(12).collect();
    Some(if status.trim().is_empty() {
        short
    } else {
        format!("{short}-dirty")
    })
}

/// Runs git in `dir` (bounded to 10 s); its output, or `None` (logged).
/// The site is trusted whoever owns it: the master runs as its own user,
/// the checkout is often an operator's, and git refuses a repository of
/// another owner ("dubious ownership") unless told it is safe.
async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let run = tokio::process::Command::new("git")
        .arg("-c")
        .arg(format!("safe.directory={}", dir.display()))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let warn = |why: String| {
        tracing::warn!(site = %dir.display(), "cannot read the site's git commit: {why}");
        None
    };
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Err(_) => warn(format!("git {} took more than 10 s", args.join(" "))),
        Ok(Err(e)) => warn(format!("cannot run git: {e}")),
        Ok(Ok(out)) if !out.status.success() => warn(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Ok(out)) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
    }
}

/// The folders whose files make the revision (the site, then each module
/// folder).
pub fn roots(state: &MasterState) -> Vec<PathBuf> {
    let mut roots = vec![state.compiler.site().to_path_buf()];
    roots.extend(state.compiler.module_paths().iter().cloned());
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(root: &Path) -> String {
        let mut hash = Sha256::new();
        hash_tree(root, &mut hash).unwrap();
        hex::encode(hash.finalize())
    }

    #[test]
    fn hidden_files_are_not_site_data_and_content_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("environments")).unwrap();
        std::fs::write(dir.path().join("environments/demo.toml"), "a = 1\n").unwrap();
        let before = digest(dir.path());

        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/index"), "x").unwrap();
        std::fs::write(dir.path().join("environments/.demo.toml.swp"), "y").unwrap();
        assert_eq!(digest(dir.path()), before);

        std::fs::write(dir.path().join("environments/demo.toml"), "a = 2\n").unwrap();
        assert_ne!(digest(dir.path()), before);
    }

    #[test]
    fn a_path_under_a_hidden_folder_is_hidden() {
        let root = Path::new("/srv/site");
        assert!(under_hidden(root, Path::new("/srv/site/.git/index")));
        assert!(under_hidden(root, Path::new("/srv/site/nodes/.a.toml.swp")));
        assert!(!under_hidden(root, Path::new("/srv/site/nodes/a.toml")));
    }

    #[tokio::test]
    async fn a_git_checkout_names_its_commit_and_says_when_it_differs() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        assert_eq!(git_commit(site).await, None);
        let sh = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(site)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        sh(&["init", "-q"]);
        std::fs::write(site.join("common.toml"), "a = 1\n").unwrap();
        sh(&["add", "common.toml"]);
        sh(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "commit",
            "-q",
            "-m",
            "site",
        ]);
        let head = sh(&["rev-parse", "HEAD"]);
        assert_eq!(git_commit(site).await, Some(head[..12].to_string()));
        // A checkout another user owns (as root: nobody's) still names its
        // commit: the master runs as its own user.
        if nix::unistd::geteuid().is_root() {
            let nobody = Some(nix::unistd::Uid::from_raw(65534));
            for entry in walkdir::WalkDir::new(site) {
                let entry = entry.unwrap();
                nix::unistd::chown(entry.path(), nobody, None).unwrap();
            }
            assert_eq!(git_commit(site).await, Some(head[..12].to_string()));
            for entry in walkdir::WalkDir::new(site) {
                let entry = entry.unwrap();
                nix::unistd::chown(entry.path(), Some(nix::unistd::Uid::from_raw(0)), None)
                    .unwrap();
            }
        }
        std::fs::write(site.join("common.toml"), "a = 2\n").unwrap();
        assert_eq!(
            git_commit(site).await,
            Some(format!("{}-dirty", &head[..12]))
        );
    }
}
