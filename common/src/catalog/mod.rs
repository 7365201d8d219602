//! The catalog: everything a node must look like, fully rendered by the
//! master. The agent never templates; it only checks and applies resources.
//!
//! Invariant: `Catalog::digest` is the sha256 of the JSON of
//! [`CatalogContent`]; same content, same digest, same version.

mod spec;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub use spec::*;

/// Version of the catalog format; an agent refuses formats it does not know.
pub const FORMAT: u32 = 1;

/// A site revision as the screens show it: `3cc1eb9e8e80de3b (git
/// 1a2b3c4d5e6f)`, the commit only when the site is a checkout; "" when
/// there is no revision.
pub fn site_revision_text(revision: &str, commit: Option<&str>) -> String {
    match (revision, commit.filter(|c| !c.is_empty())) {
        ("", _) => String::new(),
        (revision, None) => revision.to_string(),
        (revision, Some(commit)) => format!("{revision} (git {commit})"),
    }
}

/// Text shown instead of secret content in diffs, reports and `catalog show`.
pub const REDACTED: &str = "<redacted>";

/// A compiled, versioned catalog for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Catalog format ([`FORMAT`]).
    pub format: u32,
    /// Certname of the node this catalog is for.
    pub node: String,
    /// Per-node version; increases whenever the content changes.
    pub version: u64,
    /// Digest of [`Catalog::content`].
    pub digest: Digest,
    /// When the master compiled this version (Unix ms).
    pub compiled_at_ms: i64,
    /// The master's epoch: a new one for each data directory and each
    /// restore from a backup, so that (epoch, version) names one content
    /// for ever ("" in catalogs made before epochs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// After this (Unix ms) a node still enforces the catalog but says it
    /// has expired: its master has not been heard from for long (0: never
    /// expires, catalogs made before expiry).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expires_at_ms: i64,
    /// The revision of the site and modules it was compiled from (the
    /// same for every node compiled from one change, whatever their
    /// versions); empty in catalogs made before revisions were recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub site_revision: String,
    /// The site's git commit, when the site is a git checkout (`-dirty`:
    /// tracked files differed from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_commit: Option<String>,
    /// Where each product version's update level came from, by "product
    /// version": "pinned" (the site names it), "promoted" (the level
    /// promoted to the node's environment) or "latest" (the highest
    /// imported, in a development environment).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub level_sources: std::collections::BTreeMap<String, String>,
    /// What the node must look like.
    pub content: CatalogContent,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The part of a catalog that its digest covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogContent {
    /// Role the node was classified into.
    pub role: String,
    /// Module and profile that produced the resources (`wso2is/is`).
    pub profile: String,
    /// Resources in the order the module declared them.
    pub resources: Vec<Resource>,
}

impl CatalogContent {
    /// The content digest: sha256 of this content's JSON.
    pub fn digest(&self) -> Digest {
        Digest::of(&serde_json::to_vec(self).expect("catalog content serializes"))
    }
}

/// One managed thing on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Unique id within the catalog (`file:deployment_toml`).
    pub id: String,
    /// Resources that must be applied (successfully) before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Resources refreshed when this one changes (e.g. an exec re-run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifies: Vec<String>,
    /// What kind of resource and its desired state.
    #[serde(flatten)]
    pub spec: ResourceSpec,
}

/// The desired state of a resource, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResourceSpec {
    /// A directory (parents created as needed).
    Directory(DirectorySpec),
    /// A regular file with inline content.
    File(FileSpec),
    /// A symbolic link.
    Symlink(SymlinkSpec),
    /// A command, guarded so that a converged node does not run it.
    Exec(ExecSpec),
    /// A product release: a tree materialised under `releases_dir` with
    /// `link` (CARBON_HOME) switched to it atomically.
    Tree(TreeSpec),
    /// A long-running server the agent keeps running (restarted only when
    /// something it depends on changed).
    Service(ServiceSpec),
    /// A system group with a fixed gid.
    Group(GroupSpec),
    /// A system user with a fixed uid and no login shell.
    User(UserSpec),
    /// A mounted file system (EFS over NFS 4.1, or bind/tmpfs), persisted
    /// in /etc/fstab exactly once.
    Mount(MountSpec),
    /// Release folders kept on the shared file system: seeded once across
    /// all nodes under a lock, then linked from the release.
    SharedDirs(SharedDirsSpec),
    /// An OS package, through the system's package manager.
    Package(PackageSpec),
}

impl ResourceSpec {
    /// The kind's name as written in catalogs and modules.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Directory(_) => "directory",
            Self::File(_) => "file",
            Self::Symlink(_) => "symlink",
            Self::Exec(_) => "exec",
            Self::Tree(_) => "tree",
            Self::Service(_) => "service",
            Self::Group(_) => "group",
            Self::User(_) => "user",
            Self::Mount(_) => "mount",
            Self::SharedDirs(_) => "shared_dirs",
            Self::Package(_) => "package",
        }
    }

    /// The path a file, folder or link resource puts in place.
    pub fn placed_path(&self) -> Option<&str> {
        match self {
            Self::File(f) => Some(&f.path),
            Self::Symlink(l) => Some(&l.path),
            Self::Directory(d) => Some(&d.path),
            _ => None,
        }
    }
}

/// A catalog that cannot be applied as it stands.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogError {
    /// Two resources share an id.
    #[error("resource id {0:?} is used more than once")]
    DuplicateId(String),
    /// A `requires` or `notifies` names no resource.
    #[error("resource {from:?} {relation} {to:?}, which is not in the catalog")]
    UnknownReference {
        /// The resource holding the reference.
        from: String,
        /// `requires` or `notifies`.
        relation: &'static str,
        /// The missing id.
        to: String,
    },
    /// A path-like value does not have the form its field needs (it is
    /// not absolute, not relative, or it climbs with `..`).
    #[error("resource {id:?}: {field} {path:?} must be {form}")]
    BadPath {
        /// The resource.
        id: String,
        /// The field it is in (`path`, `dirs`, `target`, …).
        field: &'static str,
        /// The offending value.
        path: String,
        /// What the field needs.
        form: PathForm,
    },
    /// The `requires`/`notifies` edges form a cycle.
    #[error("dependency cycle through resources {0:?}")]
    Cycle(Vec<String>),
    /// An empty or non-printable id.
    #[error("resource id {0:?} is empty or contains control characters")]
    BadId(String),
}

impl CatalogContent {
    /// Checks ids, references and paths and returns the resources' indexes in
    /// an order where every resource comes after what it requires (named
    /// or implied: [`Self::requirements`]) and before what it notifies
    /// (ties keep declaration order).
    pub fn apply_order(&self) -> Result<Vec<usize>, CatalogError> {
        let mut index = HashMap::new();
        for (i, r) in self.resources.iter().enumerate() {
            if r.id.is_empty() || r.id.chars().any(char::is_control) {
                return Err(CatalogError::BadId(r.id.clone()));
            }
            if index.insert(r.id.as_str(), i).is_some() {
                return Err(CatalogError::DuplicateId(r.id.clone()));
            }
            for (field, path, form) in r.path_fields() {
                if !form.admits(path) {
                    return Err(CatalogError::BadPath {
                        id: r.id.clone(),
                        field,
                        path: path.to_string(),
                        form,
                    });
                }
            }
        }
        let implied = self.implied_requirements();
        // edges[a] = resources that must come after a.
        let mut edges = vec![Vec::new(); self.resources.len()];
        let mut indegree = vec![0usize; self.resources.len()];
        for (i, r) in self.resources.iter().enumerate() {
            let lookup = |to: &String, relation| {
                index
                    .get(to.as_str())
                    .copied()
                    .ok_or_else(|| CatalogError::UnknownReference {
                        from: r.id.clone(),
                        relation,
                        to: to.clone(),
                    })
            };
            for req in &r.requires {
                let j = lookup(req, "requires")?;
                edges[j].push(i);
                indegree[i] += 1;
            }
            for &j in &implied[i] {
                edges[j].push(i);
                indegree[i] += 1;
            }
            for n in &r.notifies {
                let j = lookup(n, "notifies")?;
                edges[i].push(j);
                indegree[j] += 1;
            }
        }
        // Kahn's algorithm, always taking the lowest ready index.
        let mut ready: std::collections::BTreeSet<usize> =
            (0..indegree.len()).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(self.resources.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &edges[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        if order.len() != self.resources.len() {
            let stuck = (0..indegree.len())
                .filter(|&i| indegree[i] > 0)
                .map(|i| self.resources[i].id.clone())
                .collect();
            return Err(CatalogError::Cycle(stuck));
        }
        Ok(order)
    }

    /// Each resource's requirements: the ids it names in `requires`, and
    /// those it requires without naming them ([`Self::apply_order`]).
    pub fn requirements(&self) -> Vec<Vec<&str>> {
        self.implied_requirements()
            .into_iter()
            .zip(&self.resources)
            .map(|(implied, r)| {
                let mut ids: Vec<&str> = r.requires.iter().map(String::as_str).collect();
                ids.extend(implied.iter().map(|&j| self.resources[j].id.as_str()));
                ids
            })
            .collect()
    }

    /// The `shared_dirs` resources (indexes) each resource requires without
    /// naming them: a file, folder or link inside a folder kept on the
    /// share comes after the link to the share is made (as Puppet
    /// autorequires a file's parent). Written before it, it would land in
    /// the release's own folder and be lost when the link replaces it.
    fn implied_requirements(&self) -> Vec<Vec<usize>> {
        let mut implied = vec![Vec::new(); self.resources.len()];
        for (j, shared) in self.resources.iter().enumerate() {
            let ResourceSpec::SharedDirs(s) = &shared.spec else {
                continue;
            };
            for (i, r) in self.resources.iter().enumerate() {
                let inside = r.spec.placed_path().is_some_and(|path| s.holds(path));
                if inside && !r.requires.contains(&shared.id) && !shared.requires.contains(&r.id) {
                    implied[i].push(j);
                }
            }
        }
        implied
    }

    /// A copy with every secret file's content replaced by its redacted
    /// content (each secret value masked), or by [`REDACTED`] whole.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for r in &mut copy.resources {
            if let ResourceSpec::File(f) = &mut r.spec {
                if f.secret {
                    f.content = f
                        .redacted_content
                        .take()
                        .unwrap_or_else(|| REDACTED.to_string());
                }
            }
        }
        copy
    }
}

impl Resource {
    /// Every path-like value this resource holds, with its field and the
    /// form it must have: what validation checks before anything applies.
    pub fn path_fields(&self) -> Vec<(&'static str, &str, PathForm)> {
        use PathForm::{Absolute, AbsoluteOrRelative, Relative};
        let mut fields: Vec<(&'static str, &str, PathForm)> = self
            .paths()
            .into_iter()
            .map(|p| ("path", p, Absolute))
            .collect();
        match &self.spec {
            ResourceSpec::Symlink(s) => fields.push(("target", &s.target, AbsoluteOrRelative)),
            ResourceSpec::Service(s) => fields.push(("start", &s.start, AbsoluteOrRelative)),
            ResourceSpec::Tree(t) => {
                fields.extend(
                    t.runtime_paths
                        .iter()
                        .map(|p| ("runtime_paths", p.as_str(), Relative)),
                );
                fields.extend(t.exclude.iter().map(|p| ("exclude", p.as_str(), Relative)));
            }
            ResourceSpec::SharedDirs(s) => {
                for (release_dir, share_dir) in &s.dirs {
                    fields.push(("dirs", release_dir.as_str(), Relative));
                    fields.push(("dirs", share_dir.as_str(), Relative));
                }
            }
            _ => {}
        }
        fields
    }

    /// Every absolute path this resource names.
    pub fn paths(&self) -> Vec<&str> {
        match &self.spec {
            ResourceSpec::Directory(d) => vec![d.path.as_str()],
            ResourceSpec::File(f) => vec![f.path.as_str()],
            ResourceSpec::Symlink(s) => vec![s.path.as_str()],
            ResourceSpec::Exec(e) => e
                .cwd
                .iter()
                .chain(e.creates.iter())
                .map(String::as_str)
                .collect(),
            ResourceSpec::Tree(t) => vec![t.link.as_str(), t.releases_dir.as_str()],
            ResourceSpec::Service(s) => {
                let mut paths = vec![s.working_dir.as_str(), s.log_file.as_str()];
                paths.extend(s.environment_file.as_deref());
                paths
            }
            ResourceSpec::Group(_) => vec![],
            ResourceSpec::User(u) => vec![u.home.as_str()],
            ResourceSpec::Mount(m) => vec![m.path.as_str()],
            ResourceSpec::SharedDirs(s) => vec![s.share.as_str(), s.link.as_str()],
            ResourceSpec::Package(_) => vec![],
        }
    }
}

/// The form a path-like value of a resource must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathForm {
    /// Absolute, no `..` component (it resolves under the agent's `--root`).
    Absolute,
    /// Relative and normal: no leading `/`, no empty, `.` or `..` component
    /// (it stays beneath what it is relative to).
    Relative,
    /// Either of the two.
    AbsoluteOrRelative,
}

impl PathForm {
    /// Whether `path` has this form (never with a NUL byte or a control character).
    pub fn admits(self, path: &str) -> bool {
        let control = if path.is_ascii() {
            path.bytes().any(|b| b.is_ascii_control())
        } else {
            path.chars().any(char::is_control)
        };
        if control {
            return false;
        }
        match self {
            Self::Absolute => is_clean_absolute(path),
            Self::Relative => is_normal_relative(path),
            Self::AbsoluteOrRelative => is_clean_absolute(path) || is_normal_relative(path),
        }
    }
}

impl std::fmt::Display for PathForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Absolute => "an absolute path free of `..`",
            Self::Relative => "a relative path free of `..`, `.` and empty parts",
            Self::AbsoluteOrRelative => {
                "an absolute path free of `..`, or a relative one free of `..`, `.` and empty parts"
            }
        })
    }
}

fn is_clean_absolute(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(is_dot_dot)
}

fn is_normal_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && !is_dot_dot(c))
}

/// `..`, checked by length first (this runs for every path of every run).
fn is_dot_dot(component: &str) -> bool {
    component.len() == 2 && component.as_bytes() == b".."
}

impl Catalog {
    /// A copy with secret content redacted, for display.
    pub fn redacted(&self) -> Self {
        Self {
            content: self.content.redacted(),
            ..self.clone()
        }
    }
}

/// Whether the relative `path` is `folder` or beneath it.
pub fn is_within(folder: &str, path: &str) -> bool {
    path.strip_prefix(folder)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(id: &str, path: &str, requires: &[&str]) -> Resource {
        Resource {
            id: id.into(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
            notifies: vec![],
            spec: ResourceSpec::Directory(DirectorySpec {
                path: path.into(),
                mode: None,
                owner: None,
                group: None,
            }),
        }
    }

    fn content(resources: Vec<Resource>) -> CatalogContent {
        CatalogContent {
            role: "is".into(),
            profile: "wso2is/is".into(),
            resources,
        }
    }

    /// A resource from its catalog JSON (`{"kind": …, fields…}`).
    fn resource(id: &str, spec: serde_json::Value) -> Resource {
        Resource {
            id: id.into(),
            requires: vec![],
            notifies: vec![],
            spec: serde_json::from_value(spec).unwrap(),
        }
    }

    #[test]
    fn path_like_data_must_stay_beneath_its_root() {
        use serde_json::json;
        let shared = |release: &str, share: &str| {
            resource(
                "shared",
                json!({"kind": "shared_dirs", "share": "/mnt/efs", "link": "/opt/wso2/is",
                       "dirs": {release: share}}),
            )
        };
        let link = |target: &str| {
            resource(
                "logs",
                json!({"kind": "symlink", "path": "/opt/wso2/is/repository/logs", "target": target}),
            )
        };
        let fine = [
            shared("repository/deployment", "Deployment"),
            link("/var/log/wso2/is"),
            link("conf/x"),
        ];
        for r in fine {
            content(vec![r]).apply_order().unwrap();
        }
        let refused = [
            (
                shared("repository/deployment", "../../etc"),
                "dirs",
                "../../etc",
            ),
            (
                shared("../../root/.ssh", "Deployment"),
                "dirs",
                "../../root/.ssh",
            ),
            (shared("repository/deployment", "/etc"), "dirs", "/etc"),
            (
                shared("repository//deployment", "D"),
                "dirs",
                "repository//deployment",
            ),
            (link("/var/log/../../etc"), "target", "/var/log/../../etc"),
            (link("../../../etc"), "target", "../../../etc"),
            (
                resource(
                    "server",
                    json!({"kind": "service", "name": "s", "start": "../../bin/sh",
                           "working_dir": "/opt/s", "log_file": "/var/log/s.log"}),
                ),
                "start",
                "../../bin/sh",
            ),
            (dir("d", "/opt/a\nb", &[]), "path", "/opt/a\nb"),
        ];
        for (r, field, path) in refused {
            let err = content(vec![r]).apply_order().unwrap_err();
            assert!(
                matches!(&err, CatalogError::BadPath { field: f, path: p, .. } if *f == field && p == path),
                "{field} {path:?}: {err}"
            );
        }
    }

    #[test]
    fn order_puts_requirements_first() {
        let c = content(vec![
            dir("b", "/b", &["a"]),
            dir("a", "/a", &[]),
            dir("c", "/c", &[]),
        ]);
        assert_eq!(c.apply_order().unwrap(), vec![1, 0, 2]);
    }

    #[test]
    fn what_lies_on_a_shared_folder_comes_after_the_link_to_the_share() {
        use serde_json::json;
        let file = |id: &str, path: &str| {
            resource(id, json!({"kind": "file", "path": path, "content": "x"}))
        };
        let mut shared = resource(
            "shared_dirs",
            json!({"kind": "shared_dirs", "share": "/mnt/efs", "link": "/opt/wso2/is/",
                   "dirs": {"repository/deployment": "Deployment"}}),
        );
        shared.requires = vec!["product".into()];
        let mut named = file("named", "/opt/wso2/is/repository/deployment/b.xml");
        named.requires = vec!["shared_dirs".into()];
        let c = content(vec![
            file(
                "publisher",
                "/opt/wso2/is/repository/deployment/server/a.xml",
            ),
            file("conf", "/opt/wso2/is/repository/conf/deployment.toml"),
            file("lookalike", "/opt/wso2/is/repository/deployment2/c.xml"),
            named,
            dir("product", "/opt/wso2/is/repository/deployment", &[]),
            shared,
        ]);
        let order: Vec<&str> = c
            .apply_order()
            .unwrap()
            .into_iter()
            .map(|i| c.resources[i].id.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "conf",
                "lookalike",
                "product",
                "shared_dirs",
                "publisher",
                "named"
            ]
        );
        let requirements = c.requirements();
        assert_eq!(requirements[0], ["shared_dirs"], "implied");
        assert!(requirements[1].is_empty() && requirements[2].is_empty());
        assert_eq!(requirements[3], ["shared_dirs"], "named once");
        // What the shared_dirs requires is never made to require it back.
        assert!(requirements[4].is_empty());
    }

    #[test]
    fn notified_resources_come_after_their_source() {
        let mut src = dir("src", "/src", &[]);
        src.notifies = vec!["dst".into()];
        let c = content(vec![dir("dst", "/dst", &[]), src]);
        assert_eq!(c.apply_order().unwrap(), vec![1, 0]);
    }

    #[test]
    fn invalid_catalogs_are_refused() {
        let cases = vec![
            (
                content(vec![dir("a", "/a", &[]), dir("a", "/b", &[])]),
                CatalogError::DuplicateId("a".into()),
            ),
            (
                content(vec![dir("a", "/a", &["zz"])]),
                CatalogError::UnknownReference {
                    from: "a".into(),
                    relation: "requires",
                    to: "zz".into(),
                },
            ),
            (
                content(vec![dir("a", "relative", &[])]),
                CatalogError::BadPath {
                    id: "a".into(),
                    field: "path",
                    path: "relative".into(),
                    form: PathForm::Absolute,
                },
            ),
            (
                content(vec![dir("a", "/x/../etc", &[])]),
                CatalogError::BadPath {
                    id: "a".into(),
                    field: "path",
                    path: "/x/../etc".into(),
                    form: PathForm::Absolute,
                },
            ),
            (
                content(vec![dir("a", "/a", &["b"]), dir("b", "/b", &["a"])]),
                CatalogError::Cycle(vec!["a".into(), "b".into()]),
            ),
        ];
        for (c, expected) in cases {
            assert_eq!(c.apply_order().unwrap_err(), expected);
        }
    }

    #[test]
    fn json_round_trips_and_digest_is_stable() {
        let c = content(vec![Resource {
            id: "f".into(),
            requires: vec![],
            notifies: vec![],
            spec: ResourceSpec::File(FileSpec {
                path: "/f".into(),
                content: "x = 1\n".into(),
                source: None,
                mode: Some(0o640),
                owner: None,
                group: None,
                secret: true,
                restart_key: None,
                redacted_content: None,
            }),
        }]);
        let json = serde_json::to_string(&c).unwrap();
        let back: CatalogContent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.digest(), c.digest());
        let redacted = c.redacted();
        assert_ne!(redacted.digest(), c.digest());
        assert!(serde_json::to_string(&redacted).unwrap().contains(REDACTED));
    }
}
