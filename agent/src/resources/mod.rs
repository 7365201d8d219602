//! One module per resource kind. Each kind implements check (what would
//! change, with a diff) and apply (make it so); some also refresh (react to
//! a notification).

pub mod account;
pub mod directory;
pub mod exec;
pub mod file;
pub mod logrotate;
pub mod mount;
pub mod owner;
pub mod package;
pub mod service;
pub mod shared;
pub mod sharing;
pub mod symlink;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rigger_common::beneath::Beneath;

use crate::content::ContentCache;
use crate::paths::Paths;

/// What a resource needs from the run applying it.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    /// Where catalog paths resolve.
    pub paths: Paths,
    /// Content cache releases are copied from.
    pub cache: ContentCache,
    /// Re-hash every release file instead of trusting the index.
    pub full_verify: bool,
    /// The previously applied catalog, to tell peer-only changes apart.
    pub previous: Option<std::sync::Arc<rigger_common::catalog::CatalogContent>>,
    /// The cluster's restart leases (`None`: no master to ask this run).
    pub leases: Option<std::sync::Arc<dyn RestartLeases>>,
    /// Fetches blobs a repair found changed in the cache (`None`: no
    /// master this run; the repair fails and the next run fetches them).
    pub refetch: Option<std::sync::Arc<dyn Refetch>>,
    /// Cancelled when the agent is stopping: long waits (readiness, the
    /// cluster's lease) give up instead of holding the agent.
    pub stopping: tokio_util::sync::CancellationToken,
    /// The host programs resources run (tests put recording fakes here).
    pub host: Host,
    /// The version of the catalog being applied (0: unknown), which a
    /// server started now is recorded as started with.
    pub catalog_version: u64,
    /// Whether the daemon's supervisor applies (starting servers that
    /// exited), not a run.
    pub supervising: bool,
    /// The root every write resolves beneath (opened on first use).
    root: std::sync::Arc<std::sync::OnceLock<Beneath>>,
    /// Releases `tree::prepare` built in this run, with the folders they
    /// left out for the share: their switch, moments later, takes them as
    /// built instead of inspecting every file again.
    built_releases: std::sync::Arc<std::sync::Mutex<HashMap<PathBuf, Vec<String>>>>,
}

/// The host's programs a resource runs instead of making a system call:
/// one value, set by whoever builds the context, never read from the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// `systemctl`, for the systemd provider.
    pub systemctl: PathBuf,
    /// `mount(8)`, for NFS and EFS mounts (the kernel mounts bind and tmpfs).
    pub mount: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Self {
            systemctl: PathBuf::from("systemctl"),
            mount: PathBuf::from("mount"),
        }
    }
}

/// Coordinates restarts of running servers across a cluster: a node takes
/// its group's lease before it takes a server down and gives it back once
/// the server is ready again.
pub trait RestartLeases: Send + Sync + std::fmt::Debug {
    /// Blocks until this node may take `service`'s server down, up to the
    /// spec's wait. Returns a note for the report when it had to wait.
    fn acquire(
        &self,
        service: &rigger_common::catalog::ServiceSpec,
    ) -> Result<Option<String>, ResourceError>;
    /// Gives the node's lease back, whichever run took it (a no-op when
    /// the node holds none).
    fn release(&self, service: &rigger_common::catalog::ServiceSpec);
}

/// Fetches blobs into the content cache from the blocking apply thread.
pub trait Refetch: Send + Sync + std::fmt::Debug {
    /// Fetches `digests` (verified) into the cache.
    fn refetch(&self, digests: &[rigger_common::digest::Digest]) -> Result<(), String>;
}

impl ApplyContext {
    /// A context for `paths` with the cache in the agent's state directory.
    pub fn new(paths: Paths) -> Self {
        let cache = ContentCache::new(paths.state_dir().join("cache"));
        Self {
            paths,
            cache,
            full_verify: false,
            previous: None,
            leases: None,
            refetch: None,
            stopping: tokio_util::sync::CancellationToken::new(),
            host: Host::default(),
            catalog_version: 0,
            supervising: false,
            root: Default::default(),
            built_releases: Default::default(),
        }
    }

    /// Records that this run built the release at `release` (leaving
    /// `left_out` for the share).
    pub(crate) fn note_built_release(&self, release: PathBuf, left_out: Vec<String>) {
        self.built_releases
            .lock()
            .expect("built releases")
            .insert(release, left_out);
    }

    /// The folders the release at `release` left out, if this run built
    /// it and has not switched to it yet; once only.
    pub(crate) fn take_built_release(&self, release: &Path) -> Option<Vec<String>> {
        self.built_releases
            .lock()
            .expect("built releases")
            .remove(release)
    }

    /// The agent's root as a confinement root: every write under `--root`
    /// resolves beneath it in the kernel, whatever links lie on the way.
    pub fn beneath(&self) -> Result<&Beneath, ResourceError> {
        if let Some(root) = self.root.get() {
            return Ok(root);
        }
        // The root itself is the operator's (`--root`), trusted as given.
        let root = self.paths.root();
        std::fs::create_dir_all(root).map_err(io_error("cannot create the root", root))?;
        let opened = Beneath::open(root)?;
        Ok(self.root.get_or_init(|| opened))
    }
}

/// A pending change: a one-line summary and, for content, a unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What would change ("create file", "mode 0644 → 0600").
    pub summary: String,
    /// Unified diff of content, secrets redacted.
    pub diff: Option<String>,
}

impl Change {
    /// A change without a diff.
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            diff: None,
        }
    }
}

/// A resource that could not be checked or applied.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A file system operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An atomic write failed.
    #[error(transparent)]
    Write(#[from] rigger_common::fsutil::WriteError),
    /// The server must not go down: the cluster's restart lease could not
    /// be had (no master to ask, or it stayed with other nodes). The server
    /// keeps running and the restart stays pending.
    #[error("{0}; the server keeps running and the restart stays pending")]
    LeaseUnavailable(String),
    /// The agent is stopping: a long wait gave up (the whole message).
    #[error("{0}")]
    Stopping(String),
    /// A started server did not become ready.
    #[error("{service} {reason}; last output:\n{log_tail}")]
    NotReady {
        /// The service.
        service: String,
        /// What went wrong ("exited before it was ready", "was not ready after 600s …").
        reason: String,
        /// The last lines of its console log.
        log_tail: String,
    },
    /// Anything else, already worded for the operator.
    #[error("{0}")]
    Other(String),
}

/// Shorthand for an I/O error on a path.
pub fn io_error<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> ResourceError + 'a {
    move |source| ResourceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Formats permission bits as four octal digits.
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}
