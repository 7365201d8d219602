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

    /// What a link the agent makes at `link` should hold to reach
    /// `target` (both paths under the root). Under `/` that is `target`
    /// itself; under another root it is the path from the link's folder,
    /// so the link resolves the same from outside the root and inside it
    /// (the agent's writes resolve with the root as `/`).
    pub fn link_target(&self, link: &Path, target: &Path) -> PathBuf {
        if self.root == Path::new("/") {
            return target.to_path_buf();
        }
        self.physical_parent(link)
            .and_then(|from| pathdiff::diff_paths(target, from))
            .unwrap_or_else(|| target.to_path_buf())
    }

    /// The folder holding `link` as the kernel finds it (links on the way
    /// resolved, such as CARBON_HOME in `<home>/repository/deployment`),
    /// spelled under this root; the lexical parent when it does not exist.
    fn physical_parent(&self, link: &Path) -> Option<PathBuf> {
        let parent = link.parent()?;
        let (Ok(real), Ok(real_root)) = (
            std::fs::canonicalize(parent),
            std::fs::canonicalize(&self.root),
        ) else {
            return Some(parent.to_path_buf());
        };
        Some(match real.strip_prefix(&real_root) {
            Ok(rest) => self.root.join(rest),
            Err(_) => real,
        })
    }

    /// Where the link at `link` points, as an absolute path (a relative
    /// target is taken from the folder the link is in, as the kernel finds
    /// it); `None` when `link` is not a symlink.
    pub fn read_link(&self, link: &Path) -> Option<PathBuf> {
        let target = std::fs::read_link(link).ok()?;
        if target.is_absolute() {
            return Some(target);
        }
        let mut resolved = self.physical_parent(link)?;
        for component in target.components() {
            match component {
                std::path::Component::ParentDir => {
                    resolved.pop();
                }
                std::path::Component::Normal(name) => resolved.push(name),
                _ => {}
            }
        }
        Some(resolved)
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

    #[test]
    fn links_are_relative_under_a_root_and_absolute_under_slash() {
        let p = Paths::new("/tmp/r");
        assert_eq!(
            p.link_target(
                Path::new("/tmp/r/opt/wso2/wso2is"),
                Path::new("/tmp/r/opt/wso2/releases/is-1")
            ),
            PathBuf::from("releases/is-1")
        );
        assert_eq!(
            p.link_target(
                Path::new("/tmp/r/opt/wso2/releases/is-1/repository/deployment"),
                Path::new("/tmp/r/mnt/efs/deployment")
            ),
            PathBuf::from("../../../../../mnt/efs/deployment")
        );
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::new(dir.path());
        let (link, target) = (p.resolve("/opt/a/b"), p.resolve("/mnt/efs/d"));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(p.link_target(&link, &target), &link).unwrap();
        assert_eq!(p.read_link(&link), Some(target.clone()));
        // A link reached through another link (CARBON_HOME) is taken from
        // the folder it really is in.
        let home = p.resolve("/opt/home");
        std::os::unix::fs::symlink("a", &home).unwrap();
        let through = home.join("share");
        std::os::unix::fs::symlink(p.link_target(&through, &target), &through).unwrap();
        assert_eq!(p.read_link(&through), Some(target.clone()));
        assert_eq!(
            std::fs::canonicalize(&through).ok(),
            None,
            "target is not created"
        );
        std::fs::create_dir_all(&target).unwrap();
        assert_eq!(
            std::fs::canonicalize(&through).unwrap(),
            std::fs::canonicalize(&target).unwrap()
        );
        let slash = Paths::new("/");
        assert_eq!(
            slash.link_target(Path::new("/opt/a"), Path::new("/mnt/efs/d")),
            PathBuf::from("/mnt/efs/d")
        );
    }
}
