//! Where the agent keeps things, all under an optional root prefix
//! (`--root DIR`) so that tests and the demo never touch the real system.

use std::path::{Path, PathBuf};

/// The agent's file layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Paths under `root` (`/` for a real node).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves an absolute catalog path under the root.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The agent's state directory (certificates, cached catalog, run state).
    pub fn state_dir(&self) -> PathBuf {
        self.resolve("/var/lib/rigger/agent")
    }

    /// Where the node's key, certificate and the trusted CA live.
    pub fn ssl_dir(&self) -> PathBuf {
        self.state_dir().join("ssl")
    }

    /// The control socket `agentctl` talks to.
    pub fn socket(&self) -> PathBuf {
        self.resolve("/run/rigger/agent.sock")
    }

    /// Default configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.resolve("/etc/rigger/agent.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_resolves_under_the_root() {
        let p = Paths::new("/tmp/r");
        assert_eq!(p.resolve("/opt/wso2/x"), PathBuf::from("/tmp/r/opt/wso2/x"));
        assert_eq!(p.socket(), PathBuf::from("/tmp/r/run/rigger/agent.sock"));
        assert_eq!(Paths::new("/").resolve("/etc/x"), PathBuf::from("/etc/x"));
    }
}
