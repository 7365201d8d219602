//! The desired state of each resource kind: what a catalog says a
//! directory, file, link, command, package, account, mount, shared folder,
//! server or product release must look like, with the defaults a module
//! may leave out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A managed directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    /// Absolute path.
    pub path: String,
    /// Permission bits (`0o755`); `None` leaves them alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Owner user name; `None` leaves it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owner group name; `None` leaves it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A managed regular file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path.
    pub path: String,
    /// The whole content (when not `source`).
    #[serde(default)]
    pub content: String,
    /// Content by digest instead: a blob (an imported artifact such as a
    /// JDBC driver jar) the agent fetches from the master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Digest>,
    /// Permission bits; defaults to 0644 (0600 for secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Owner user name; `None` leaves it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owner group name; `None` leaves it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Content holds secrets: never shown in diffs, reports or logs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// Keyed digest (HMAC-SHA256 under a key only the master holds, so it
    /// says nothing of a secret file's content) of the content rendered
    /// without peers: when only the peer
    /// lists changed (same key as before), the file is rewritten but the
    /// resources it notifies (the server) are not restarted. `None`: any
    /// change notifies (the module marked the file as needing a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_key: Option<Digest>,
    /// A secret file's content with each secret value replaced by
    /// [`super::REDACTED`]: what diffs, reports and `catalog show` print
    /// (`None`: the content is shown as one redaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

impl FileSpec {
    /// The mode the file gets: the given one, else 0600 for secrets, 0644 otherwise.
    pub fn effective_mode(&self) -> u32 {
        self.mode.unwrap_or(if self.secret { 0o600 } else { 0o644 })
    }
}

/// A managed symbolic link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    /// Absolute path of the link.
    pub path: String,
    /// Where it points (absolute targets are resolved under the agent's root).
    pub target: String,
}

/// A guarded command, run with `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// Shell command.
    pub command: String,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Skip the command when this path exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    /// Skip the command when this shell command exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// Run only when notified by a changed resource.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_only: bool,
    /// Kill the command (and its process group) after this many seconds.
    #[serde(default = "default_exec_timeout")]
    pub timeout_secs: u64,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
}

/// An OS package (system-wide, whatever the agent's `--root`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Package name (`nfs-common`).
    pub name: String,
    /// Its name on RPM systems (dnf/yum: Amazon Linux, RHEL), when it
    /// differs (`nfs-utils`); `None` or empty: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_name: Option<String>,
}

/// Folders of a release kept on the shared file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedDirsSpec {
    /// The share's mount point (`/mnt/efs`); it must be mounted.
    pub share: String,
    /// CARBON_HOME (the release link).
    pub link: String,
    /// Release-relative folder → folder name on the share
    /// (`repository/deployment` → `Deployment`).
    pub dirs: BTreeMap<String, String>,
    /// How long a node waits for another node's seeding before the run
    /// gives up (and retries on the next).
    #[serde(default = "default_share_lock_wait")]
    pub lock_wait_secs: u64,
    /// What a seed or re-sync copies belongs to this user (the service
    /// user, which writes there: hot deployment); `None`: the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// And to this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl SharedDirsSpec {
    /// Whether it keeps folders of the release behind `link` on the share.
    pub fn is_for(&self, link: &str) -> bool {
        self.link.trim_end_matches('/') == link.trim_end_matches('/')
    }

    /// The release folders it keeps on the share (release-relative).
    pub fn folders(&self) -> impl Iterator<Item = &str> {
        self.dirs.keys().map(|folder| folder.trim_matches('/'))
    }

    /// Whether the absolute `path` lies in one of those folders.
    pub fn holds(&self, path: &str) -> bool {
        path.strip_prefix(self.link.trim_end_matches('/'))
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|relative| {
                self.folders()
                    .any(|folder| super::is_within(folder, relative))
            })
    }
}

fn default_share_lock_wait() -> u64 {
    600
}

/// A mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// Mount point (absolute).
    pub path: String,
    /// `nfs4`, `efs` (amazon-efs-utils), `bind` or `tmpfs`.
    pub fstype: FsType,
    /// What to mount: `fs-0123.efs.us-east-1.amazonaws.com:/`, a directory
    /// for `bind`, anything for `tmpfs`.
    pub source: String,
    /// Mount options; empty means the kind's defaults (AWS's for NFS).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
    /// Persist in /etc/fstab (with `_netdev` for network file systems).
    #[serde(default = "default_true")]
    pub fstab: bool,
}

impl MountSpec {
    /// The options to mount with: the given ones or the kind's defaults.
    pub fn effective_options(&self) -> String {
        if !self.options.is_empty() {
            return self.options.clone();
        }
        match self.fstype {
            FsType::Nfs4 => {
                "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport".into()
            }
            FsType::Efs => "tls".into(),
            FsType::Bind => "bind".into(),
            FsType::Tmpfs => "defaults".into(),
        }
    }

    /// Whether it is a network file system (needs `_netdev`, health probes).
    pub fn is_network(&self) -> bool {
        matches!(self.fstype, FsType::Nfs4 | FsType::Efs)
    }
}

/// The kinds of mount a catalog may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    /// NFS 4.1 (EFS mounted with AWS's options).
    Nfs4,
    /// EFS through amazon-efs-utils (`mount -t efs`, TLS).
    Efs,
    /// A bind mount of a directory (tests, local shares).
    Bind,
    /// A memory file system.
    Tmpfs,
}

impl FsType {
    /// The name as a catalog and mount(8) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nfs4 => "nfs4",
            Self::Efs => "efs",
            Self::Bind => "bind",
            Self::Tmpfs => "tmpfs",
        }
    }
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who runs a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceProvider {
    /// The agent supervises the process itself.
    #[default]
    Process,
    /// A systemd unit.
    Systemd,
    /// systemd where it is the init system, else the agent.
    Auto,
}

impl ServiceProvider {
    /// The name as a catalog spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Systemd => "systemd",
            Self::Auto => "auto",
        }
    }
}

fn default_true() -> bool {
    true
}

/// A system group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name (`wso2`).
    pub name: String,
    /// Fixed gid (802), the same on every node so shared files match.
    pub gid: u32,
}

/// A system user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// User name (`wso2carbon`).
    pub name: String,
    /// Fixed uid (802).
    pub uid: u32,
    /// Primary group name.
    pub group: String,
    /// Home directory (not created).
    pub home: String,
    /// Login shell (none by default).
    #[serde(default = "default_shell")]
    pub shell: String,
}

fn default_shell() -> String {
    "/usr/sbin/nologin".into()
}

/// A supervised server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name (`wso2is`).
    pub name: String,
    /// `process` (the agent supervises it), `systemd` or `auto`.
    #[serde(default)]
    pub provider: ServiceProvider,
    /// Program, absolute or relative to `working_dir` (`bin/wso2server.sh`).
    pub start: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Working directory (CARBON_HOME).
    pub working_dir: String,
    /// Where its output goes (absolute).
    pub log_file: String,
    /// The output log is rotated once larger than this (0: never).
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// Rotated copies kept (`console.log.1` …).
    #[serde(default = "default_log_keep")]
    pub log_keep: u32,
    /// Run as this user (name or uid); `None`: the agent's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run with this group (name or gid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A file of `KEY="value"` lines the server's environment is read from
    /// at each start (absolute; `bin/rigger-env.sh`: JAVA_HOME,
    /// JVM_MEM_OPTS, JAVA_OPTS); the systemd unit's `EnvironmentFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_file: Option<String>,
    /// More environment, over the file's (site data `service.environment`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Open-files limit (WSO2 wants 65535).
    #[serde(default = "default_nofile")]
    pub nofile: u64,
    /// Readiness: `tcp://HOST:PORT`, or an `http://` or `https://` URL
    /// answering 2xx/3xx (any certificate: WSO2's own is self-signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// How long to wait for readiness after a (re)start.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_secs: u64,
    /// Grace between SIGTERM and SIGKILL when stopping.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_secs: u64,
    /// Restarts of a running server are coordinated across the cluster
    /// through the master (`None`: the node restarts on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_lease: Option<RestartLeaseSpec>,
    /// The pid file the server writes, relative to `working_dir` (the
    /// systemd unit's `PIDFile`): `wso2carbon.pid` for Carbon servers,
    /// `wso2/worker/runtime.pid` for an analytics worker.
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
    /// A shell command run on the node before a restart takes the server
    /// down (after the cluster's lease): deregister from the load balancer
    /// and wait for its connections to drain. Its failure leaves the
    /// server running and the restart pending. Empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pre_stop: String,
    /// A shell command run once a restarted server is ready, before the
    /// lease goes back: register with the load balancer again. Its failure
    /// fails the service (it does not count as ready). Empty: none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub post_ready: String,
}

fn default_pid_file() -> String {
    "wso2carbon.pid".into()
}

/// How many nodes of a group may have their server down for a restart at
/// once. The compiler sets it from the role's cluster; the master grants
/// leases from the node's stored catalog, never from what an agent claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartLeaseSpec {
    /// The group (the role's cluster).
    pub group: String,
    /// Nodes of the group that may restart at the same time.
    pub max_down: u32,
    /// How long a node waits for the lease before the run gives up (the
    /// restart stays pending for the next run).
    pub wait_secs: u64,
    /// Other nodes of the group that must stay ready while this one is
    /// down (`None`: all but `max_down`, counted from real readiness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready: Option<u32>,
    /// How long a node must have been ready before it counts as available
    /// again (the time a load balancer needs to mark it healthy).
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// How a change reaches the group's nodes (`None`: to every node at
    /// once, still under the budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<RolloutSpec>>,
}

/// A change reaches a cluster in steps: `canary` nodes first, then each
/// of `waves` (a count or a percentage of the cluster), each step waiting
/// until every admitted node applied the change, is ready and has stayed
/// ready for `bake_secs`. A node that fails halts the rollout and, with
/// `auto_rollback`, gets its last good content back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// Nodes of the first step: a count ("1") or a percentage ("10%").
    pub canary: String,
    /// The following steps, each the total admitted so far ("50%", "100%").
    pub waves: Vec<String>,
    /// How long every admitted node must stay ready before the next step.
    pub bake_secs: u64,
    /// Give the failed nodes their last good content again.
    pub auto_rollback: bool,
}

fn default_settle_secs() -> u64 {
    30
}

fn default_log_max_bytes() -> u64 {
    50 * 1024 * 1024
}

fn default_log_keep() -> u32 {
    5
}

fn default_nofile() -> u64 {
    65535
}

fn default_ready_timeout() -> u64 {
    300
}

fn default_stop_grace() -> u64 {
    30
}

/// A product release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    /// Product name (`wso2is`).
    pub product: String,
    /// Product version (`5.11.0`).
    pub version: String,
    /// Update level (0 = GA).
    pub level: u32,
    /// Tree digest: the manifest blob.
    pub tree: Digest,
    /// Number of files and their total size, for the plan and the disk check.
    pub files: u64,
    /// Total file bytes.
    pub size: u64,
    /// The switched link, e.g. `/opt/wso2/wso2is-5.11.0` (CARBON_HOME).
    pub link: String,
    /// Where releases live, e.g. `/opt/wso2/releases`.
    pub releases_dir: String,
    /// Release-relative paths the server writes at run time: never
    /// enforced or verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_paths: Vec<String>,
    /// Releases kept besides the current one's predecessors (default 2).
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Release-relative paths of the pack never installed (samples,
    /// test-only jars).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// The release's folders and files belong to this user (the product's
    /// service user, as WSO2 asks); `None` or empty: the agent's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// And to this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl TreeSpec {
    /// The release directory name: `<product>-<version>-L<level>-<12 hex of the tree>`.
    pub fn release_id(&self) -> String {
        let hex = hex::encode(self.tree.as_bytes());
        format!(
            "{}-{}-L{}-{}",
            self.product,
            self.version,
            self.level,
            &hex[..12]
        )
    }

    /// Whether a release-relative path is excluded from the release (or below an excluded one).
    pub fn is_excluded(&self, relative: &str) -> bool {
        under_any(&self.exclude, relative)
    }

    /// Whether a release-relative path is a runtime path (or below one).
    pub fn is_runtime_path(&self, relative: &str) -> bool {
        under_any(&self.runtime_paths, relative)
    }
}

/// Whether `relative` is one of `roots` or below one (no allocation: a
/// converged run asks this for every file of a release).
fn under_any(roots: &[String], relative: &str) -> bool {
    roots
        .iter()
        .any(|r| super::is_within(r.trim_matches('/'), relative))
}

fn default_keep() -> u32 {
    2
}

fn default_exec_timeout() -> u64 {
    300
}

#[cfg(test)]
mod tests {
    use super::under_any;

    #[test]
    fn a_path_is_under_a_root_only_at_a_component_boundary() {
        let roots = vec!["repository/database".to_string(), "/samples/".to_string()];
        assert!(under_any(&roots, "repository/database"));
        assert!(under_any(&roots, "repository/database/WSO2CARBON_DB.mv.db"));
        assert!(under_any(&roots, "samples/a.txt"));
        assert!(!under_any(&roots, "repository/databases/x"));
        assert!(!under_any(&roots, "repository"));
        assert!(!under_any(&roots, "samplesx"));
        assert!(!under_any(&[String::new()], "anything"));
    }
}
