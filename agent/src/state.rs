//! What the agent remembers between runs, in its state directory: the last
//! applied catalog version, the cached signed catalog (enforced when the
//! master is unreachable), the last run's summary and its splay.
//!
//! Invariant: the cached catalog is stored exactly as signed and verified
//! again every time it is used.

use std::path::{Path, PathBuf};

use rigger_common::fsutil::{Ownership, write_atomic};
use rigger_common::signing::SignedCatalog;
use serde::{Deserialize, Serialize};

/// Summary of one run, as `agentctl status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Start, Unix ms.
    pub started_at_ms: i64,
    /// Duration.
    pub duration_ms: u64,
    /// "unchanged", "changed" or "failed".
    pub result: String,
    /// Catalog version applied (0 when none).
    pub catalog_version: u64,
    /// Its digest.
    pub catalog_digest: String,
    /// Resources changed (pending, in noop).
    pub changed: u32,
    /// Resources failed.
    pub failed: u32,
    /// Resources skipped.
    pub skipped: u32,
    /// The cached catalog was enforced because no fresh one could be had.
    pub used_cached_catalog: bool,
    /// Whether the run only planned.
    pub noop: bool,
    /// Whether the master answered.
    pub master_reachable: bool,
    /// Why the master could not be reached or gave no catalog.
    #[serde(default)]
    pub master_error: String,
    /// A run-level error (no catalog applied).
    #[serde(default)]
    pub error: String,
    /// Blobs fetched from the master in this run.
    #[serde(default)]
    pub fetched_blobs: u64,
    /// Bytes fetched from the master in this run.
    #[serde(default)]
    pub fetched_bytes: u64,
    /// `resource: message` of the resources that failed (the first few).
    #[serde(default)]
    pub failures: Vec<String>,
    /// Why the run happened ("scheduled", "pushed", "drift", "manual", "once").
    #[serde(default)]
    pub trigger: String,
    /// Why the master kept the node on this version although the site
    /// holds a newer change for it (a rollout); "" when it did not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub held_back: String,
}

/// Persistent agent state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Highest catalog version applied; older ones are refused.
    pub applied_version: u64,
    /// Digest of that catalog.
    pub applied_digest: String,
    /// The epoch of the master that issued it ("" before epochs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub applied_epoch: String,
    /// The last run that enforced a catalog (a noop run is not one).
    pub last_run: Option<RunSummary>,
    /// The last noop run: what it would change; never what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_noop: Option<RunSummary>,
    /// When `applied_version` was applied, Unix ms (0: unknown).
    #[serde(default)]
    pub applied_at_ms: i64,
    /// The site revision it was compiled from ("" before revisions).
    #[serde(default)]
    pub applied_site_revision: String,
    /// The site's git commit, when the site is a checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_site_commit: Option<String>,
}

/// The marker `agentctl disable` leaves in the state directory.
const DISABLED: &str = "disabled.json";

/// Why the agent does not run on its own (`agentctl disable`): scheduled
/// and pushed runs are skipped; a run asked for by hand still happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// Why, in the operator's words.
    pub reason: String,
    /// Who (the user who ran `agentctl disable`).
    pub by: String,
    /// When, Unix ms.
    pub at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct CachedCatalog {
    catalog_json: String,
    signature: String,
}

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is corrupt.
    #[error("{} is corrupt: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] rigger_common::fsutil::WriteError),
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// State kept in `dir` (created 0700 by [`StateDir::ensure`]).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (0700) if needed.
    pub fn ensure(&self) -> Result<(), StateError> {
        use std::os::unix::fs::PermissionsExt;
        let create = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
        };
        create().map_err(|source| StateError::Read {
            path: self.dir.clone(),
            source,
        })
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, StateError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(value).expect("state serializes");
        let path = self.dir.join(name);
        // The same bytes (the catalog of a converged run): no write, no fsync.
        if std::fs::read(&path).is_ok_and(|current| current == bytes) {
            return Ok(());
        }
        write_atomic(&path, &bytes, 0o600, Ownership::default())?;
        Ok(())
    }

    /// Loads the state (default when absent).
    pub fn load(&self) -> Result<AgentState, StateError> {
        Ok(self.read_json("state.json")?.unwrap_or_default())
    }

    /// Saves the state.
    pub fn save(&self, state: &AgentState) -> Result<(), StateError> {
        self.write_json("state.json", state)
    }

    /// Whether (and why) the agent is disabled. A marker that cannot be
    /// read still disables: better a node that waits than one that runs
    /// against its operator's word.
    pub fn disabled(&self) -> Option<Disabled> {
        match self.read_json::<Disabled>(DISABLED) {
            Ok(disabled) => disabled,
            Err(e) => Some(Disabled {
                reason: format!(
                    "the disable marker is unreadable ({e}); `agentctl enable` clears it"
                ),
                by: String::new(),
                at_ms: 0,
            }),
        }
    }

    /// Disables the agent's own runs.
    pub fn disable(&self, disabled: &Disabled) -> Result<(), StateError> {
        self.ensure()?;
        self.write_json(DISABLED, disabled)
    }

    /// Enables them again; returns whether the agent was disabled.
    pub fn enable(&self) -> Result<bool, StateError> {
        let path = self.dir.join(DISABLED);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// The cached signed catalog, if any.
    pub fn cached_catalog(&self) -> Result<Option<SignedCatalog>, StateError> {
        let Some(cached) = self.read_json::<CachedCatalog>("catalog.json")? else {
            return Ok(None);
        };
        let signature = hex::decode(&cached.signature).map_err(|e| StateError::Corrupt {
            path: self.dir.join("catalog.json"),
            message: format!("signature: {e}"),
        })?;
        Ok(Some(SignedCatalog {
            catalog_json: cached.catalog_json.into_bytes(),
            signature,
        }))
    }

    /// When the cached catalog was last written (`None`: no cache).
    pub fn cached_catalog_modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.dir.join("catalog.json"))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Caches a signed catalog exactly as received.
    pub fn cache_catalog(&self, signed: &SignedCatalog) -> Result<(), StateError> {
        let cached = CachedCatalog {
            catalog_json: String::from_utf8_lossy(&signed.catalog_json).into_owned(),
            signature: hex::encode(&signed.signature),
        };
        self.write_json("catalog.json", &cached)
    }

    /// This node's persistent splay, chosen once in `[0, max_ms)`.
    pub fn splay_ms(&self, max_ms: u64) -> u64 {
        if max_ms == 0 {
            return 0;
        }
        if let Ok(Some(stored)) = self.read_json::<u64>("splay.json") {
            if stored < max_ms {
                return stored;
            }
        }
        let chosen = rand::random::<u64>() % max_ms;
        // The daemon asks before the first run has created the directory.
        if let Err(e) = self
            .ensure()
            .and_then(|()| self.write_json("splay.json", &chosen))
        {
            tracing::warn!(error = %e, "cannot persist the splay");
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_cache_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path().join("state"));
        sd.ensure().unwrap();
        assert_eq!(sd.load().unwrap(), AgentState::default());
        let state = AgentState {
            applied_version: 4,
            applied_digest: "d".into(),
            applied_epoch: "e".into(),
            last_run: Some(RunSummary {
                changed: 2,
                ..Default::default()
            }),
            last_noop: Some(RunSummary {
                noop: true,
                changed: 3,
                ..Default::default()
            }),
            applied_at_ms: 17,
            applied_site_revision: "0123456789abcdef".into(),
            applied_site_commit: Some("1a2b3c4d5e6f".into()),
        };
        sd.save(&state).unwrap();
        // A state written before the noop and the time were kept still reads.
        std::fs::write(
            sd.path().join("state.json"),
            r#"{"applied_version":4,"applied_digest":"d","last_run":null}"#,
        )
        .unwrap();
        assert_eq!(sd.load().unwrap().applied_version, 4);
        sd.save(&state).unwrap();
        assert_eq!(sd.load().unwrap(), state);
        let signed = SignedCatalog {
            catalog_json: b"{\"a\":1}".to_vec(),
            signature: vec![1, 2, 3],
        };
        sd.cache_catalog(&signed).unwrap();
        assert_eq!(sd.cached_catalog().unwrap(), Some(signed));
    }

    #[test]
    fn splay_is_persistent_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // Not created yet, as on a node's first start.
        let sd = StateDir::new(dir.path().join("var/lib/rigger/agent"));
        let first = sd.splay_ms(60_000);
        assert!(first < 60_000);
        assert_eq!(sd.splay_ms(60_000), first);
        assert!(sd.path().join("splay.json").is_file());
        assert_eq!(sd.splay_ms(0), 0);
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), "{not json").unwrap();
        let err = StateDir::new(dir.path().to_path_buf()).load().unwrap_err();
        assert!(err.to_string().contains("state.json"), "{err}");
    }
}
