//! The catalog compiler: facts + role + hierarchical site data + module
//! templates → a fully rendered [`CatalogContent`].
//!
//! Invariant: the output depends only on the module files, the site data,
//! the role and the facts passed in; same inputs, same content digest.

mod check;
pub mod credentials;
mod data;
pub mod edit;
pub mod escape;
mod files;
mod module;
mod products;
mod reference;
mod render;
mod restart_key;
mod review;
pub mod schema;
mod templates;

use std::path::{Path, PathBuf};

use rigger_common::catalog::{CatalogContent, CatalogError};
use serde_json::Value;

pub use data::{RoleSpec, SiteData};
pub use module::Module;
pub use products::{PackFiles, Products, TreeFile, TreeRef};
pub use reference::ReferenceFiles;
pub use restart_key::RestartKey;
pub use review::LevelReview;

impl CompileError {
    /// Whether the error (or one of several) is about the product's own
    /// files: an edit that does not apply, a file the pack lacks.
    pub fn is_about_product_files(&self) -> bool {
        match self {
            Self::Edit { .. } => true,
            Self::Several(errors) => errors.iter().any(Self::is_about_product_files),
            _ => false,
        }
    }
}

/// Why a catalog could not be compiled. Every variant names the file (and
/// where possible the line or resource) to fix.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TOML file does not parse or has the wrong shape.
    #[error("{}: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// No site file defines the role.
    #[error("role {role:?} is not defined: expected {}", expected.display())]
    UnknownRole {
        /// The role.
        role: String,
        /// Where its definition should be.
        expected: PathBuf,
    },
    /// The role's module is on none of the module paths.
    #[error("module {module:?} (role {role:?}) is not in any module path: {searched}")]
    UnknownModule {
        /// The module.
        module: String,
        /// The role naming it.
        role: String,
        /// The module paths searched, comma-separated.
        searched: String,
    },
    /// The module has no such profile.
    #[error("module {module:?} has no profile {profile:?} (it has: {available})")]
    UnknownProfile {
        /// The module.
        module: String,
        /// The missing profile.
        profile: String,
        /// Profiles it has.
        available: String,
    },
    /// A template failed to render (syntax error, undefined value, …).
    #[error("{}: {message}", file.display())]
    Template {
        /// The template or module file.
        file: PathBuf,
        /// What failed, with the line.
        message: String,
    },
    /// A rendered resource is not a valid resource.
    #[error("{}: resource {id:?}: {message}", file.display())]
    Resource {
        /// The module file declaring it.
        file: PathBuf,
        /// The resource id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A data value has the wrong type or range.
    #[error("{}: data key {key}: {message} (`masterctl lookup NODE {key}` shows where it is set)", site.display())]
    Data {
        /// The site directory.
        site: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Site files set keys the module does not define, or values of the
    /// wrong type.
    #[error("{} problem(s) in site data:\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    SiteData(Vec<schema::DataProblem>),
    /// Credentials the node would get from the module's defaults.
    #[error("{} credential(s) must come from the site's secrets/:\n  {}", .0.len(), .0.join("\n  "))]
    Credentials(Vec<String>),
    /// A module's edits do not apply to the product's own file (a target
    /// the level removed or renamed, a file the pack lacks).
    #[error("{}: {message}", file.display())]
    Edit {
        /// The edits file.
        file: PathBuf,
        /// Which edit, what it found, in which file of which level.
        message: String,
    },
    /// More than one of the above.
    #[error("{} errors:\n  {}", .0.len(), .0.iter().map(|e| rigger_common::error_chain(e)).collect::<Vec<_>>().join("\n  "))]
    Several(Vec<CompileError>),
    /// The resources do not form a valid catalog (a bad path from the
    /// module or from site data, a reference to no resource, a cycle).
    #[error("{}: profile {profile:?} of module {module:?} produced an invalid catalog", file.display())]
    Catalog {
        /// The module's `module.toml`.
        file: PathBuf,
        /// The module.
        module: String,
        /// The profile.
        profile: String,
        /// Why.
        #[source]
        source: Box<CatalogError>,
    },
}

/// Refuses the credentials in `defaulted` (those the node would get from
/// the module's defaults, [`credentials`]) that it may not run with.
fn check_credentials(
    (module, profile): (&Module, &module::Profile),
    (context, templates): (&Value, &templates::Templates),
    products: &Products,
    (defaulted, development): (&[credentials::DefaultCredential], bool),
    role: &str,
) -> Result<(), CompileError> {
    if defaulted.is_empty() {
        return Ok(());
    }
    // Only the credentials whose use changes the outcome are looked for:
    // none (a development node whose admin password is a secret) skips
    // the rendering under markers.
    let looked_for: Vec<_> = defaulted
        .iter()
        .filter(|c| credentials::use_matters(c, development))
        .cloned()
        .collect();
    let used = if looked_for.is_empty() {
        Vec::new()
    } else {
        let (marked, markers) = credentials::marked_context(context, &looked_for);
        render::used_markers(module, profile, &marked, products, &markers, templates)
    };
    let problems = credentials::problems(defaulted, &used, development, role);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CompileError::Credentials(problems))
    }
}

/// The restart coordination of a role's services: one group per cluster;
/// `restart.max_down` nodes at a time (default 1; 0 turns coordination
/// off), each waiting up to `restart.wait_secs` (default 1800) for its turn.
fn restart_lease(
    role: &RoleSpec,
    data: &toml::Table,
    site: &Path,
) -> Result<Option<rigger_common::catalog::RestartLeaseSpec>, CompileError> {
    let Some(cluster) = &role.cluster else {
        return Ok(None);
    };
    let number = |key: &str, default: i64| -> Result<u64, CompileError> {
        match data::lookup(data, key) {
            None => Ok(default as u64),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as u64),
            Some(other) => Err(CompileError::Data {
                site: site.to_path_buf(),
                key: key.to_string(),
                message: format!("expected a whole number of at least 0, found {other}"),
            }),
        }
    };
    let max_down = number("restart.max_down", 1)?;
    let wait_secs = number("restart.wait_secs", 1800)?;
    let bad = |key: &str, message: String| CompileError::Data {
        site: site.to_path_buf(),
        key: key.to_string(),
        message,
    };
    // `rollout.min_ready`: "auto" (all but max_down) or a number of nodes.
    let min_ready = match data::lookup(data, "rollout.min_ready") {
        None => None,
        Some(toml::Value::String(s)) if s == "auto" => None,
        Some(toml::Value::Integer(n)) if *n >= 0 => Some((*n).min(u32::MAX as i64) as u32),
        Some(other) => {
            return Err(bad(
                "rollout.min_ready",
                format!("expected \"auto\" or a whole number of nodes, found {other}"),
            ));
        }
    };
    let settle_secs = duration_secs(data, "rollout.settle", 30, &bad)?;
    let rollout = rollout_spec(data, &bad)?;
    Ok(
        (max_down > 0).then(|| rigger_common::catalog::RestartLeaseSpec {
            group: cluster.clone(),
            max_down: max_down.min(u32::MAX as u64) as u32,
            wait_secs,
            min_ready,
            settle_secs,
            rollout,
        }),
    )
}

/// A duration written with its unit (`settle = "30s"`), in seconds.
fn duration_secs(
    data: &toml::Table,
    key: &str,
    default: u64,
    bad: &dyn Fn(&str, String) -> CompileError,
) -> Result<u64, CompileError> {
    match data::lookup(data, key) {
        None => Ok(default),
        Some(toml::Value::String(s)) => {
            humantime::parse_duration(s)
                .map(|d| d.as_secs())
                .map_err(|e| {
                    bad(
                        key,
                        format!("{s:?} is not a duration such as \"{default}s\": {e}"),
                    )
                })
        }
        Some(other) => Err(bad(
            key,
            format!("expected a duration such as \"{default}s\", found {other}"),
        )),
    }
}

/// `[rollout]`: how a change reaches the cluster (`enabled = false`: at
/// once, still under the restart budget).
fn rollout_spec(
    data: &toml::Table,
    bad: &dyn Fn(&str, String) -> CompileError,
) -> Result<Option<Box<rigger_common::catalog::RolloutSpec>>, CompileError> {
    let enabled = data::lookup(data, "rollout.enabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    if !enabled {
        return Ok(None);
    }
    let step = |key: &str, value: &toml::Value| -> Result<String, CompileError> {
        let text = match value {
            toml::Value::Integer(n) if *n > 0 => n.to_string(),
            toml::Value::String(s) => s.trim().to_string(),
            other => {
                return Err(bad(
                    key,
                    format!("expected a count or a percentage, found {other}"),
                ));
            }
        };
        let valid = match text.strip_suffix('%') {
            Some(p) => p.parse::<u32>().is_ok_and(|p| (1..=100).contains(&p)),
            None => text.parse::<u32>().is_ok_and(|n| n > 0),
        };
        if !valid {
            return Err(bad(
                key,
                format!("{text:?} is not a count such as \"1\" or a percentage such as \"50%\""),
            ));
        }
        Ok(text)
    };
    let canary = match data::lookup(data, "rollout.canary") {
        None => "1".to_string(),
        Some(v) => step("rollout.canary", v)?,
    };
    let waves = match data::lookup(data, "rollout.waves") {
        None => vec!["100%".to_string()],
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| step("rollout.waves", v))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(bad(
                "rollout.waves",
                format!("expected a list such as [\"50%\", \"100%\"], found {other}"),
            ));
        }
    };
    let bake_secs = duration_secs(data, "rollout.bake", 60, bad)?;
    let auto_rollback = data::lookup(data, "rollout.auto_rollback")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    Ok(Some(Box::new(rigger_common::catalog::RolloutSpec {
        canary,
        waves,
        bake_secs,
        auto_rollback,
    })))
}

/// Update levels are promoted, not pushed everywhere: `update_level =
/// "latest"` is the highest imported level only in a development
/// environment (`[environment] development = true`); any other environment
/// runs the level promoted to it (`masterctl update promote`), else the GA
/// level. A numbered level is taken as it is.
pub(super) fn follow_channel(
    data: &mut toml::Table,
    role: &RoleSpec,
    development: bool,
    products: &Products,
) {
    let latest = matches!(data.get("update_level"), Some(toml::Value::String(s)) if s == "latest");
    if !latest || development {
        return;
    }
    let product = data
        .get("product")
        .and_then(toml::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = role.version.clone().unwrap_or_default();
    let environment = role.environment.clone().unwrap_or_default();
    let level = products.channel_level(&product, &version, &environment);
    // Marked as the environment's promoted level, not one the site pins.
    data.insert(
        "update_level".into(),
        toml::Value::String(format!("{}{level}", products::PROMOTED)),
    );
}

/// A data key explained: its merged value and where it is set.
#[derive(Debug, Clone)]
pub struct Explained {
    /// The value the node's templates see (`None`: not set anywhere).
    pub value: Option<toml::Value>,
    /// Files setting it, most specific first, with their values.
    pub sources: Vec<(PathBuf, toml::Value)>,
}

/// What the compiler knows about the node asking.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// The node's certname.
    pub certname: String,
    /// The role it was classified into.
    pub role: String,
    /// Its facts (a JSON object).
    pub facts: Value,
    /// Live nodes of the inventory (the compiler keeps those of the same cluster).
    pub inventory: Vec<Peer>,
}

/// A live node as its peers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    /// Certname.
    pub certname: String,
    /// Role.
    pub role: String,
    /// Private IP.
    pub ip: String,
}

/// Compiles catalogs from module paths and a site directory.
#[derive(Debug, Clone)]
pub struct Compiler {
    module_paths: Vec<PathBuf>,
    site: PathBuf,
    /// Parsed modules, kept while their `module.toml` files (and their
    /// libraries') are unchanged on disk.
    modules: std::sync::Arc<std::sync::Mutex<ModuleCache>>,
    /// What files' restart keys are made with.
    restart_key: RestartKey,
    /// The site's and modules' data files, kept parsed while unchanged.
    files: std::sync::Arc<files::SourceFiles>,
    /// The modules' templates, kept parsed while unchanged.
    templates: std::sync::Arc<templates::Templates>,
}

/// Module folder → the stamps of the files it was parsed from, and the module.
type ModuleCache = std::collections::HashMap<PathBuf, (Vec<FileStamp>, std::sync::Arc<Module>)>;

/// A module file and what tells it changed ([`files::Stamp`]).
type FileStamp = (PathBuf, Option<files::Stamp>);

fn stamp(path: PathBuf) -> FileStamp {
    let stamp = files::Stamp::of(&path).ok().flatten();
    (path, stamp)
}

fn stamps_of(module: &Module) -> Vec<FileStamp> {
    std::iter::once(module.manifest_path())
        .chain(module.libraries.iter().map(|l| l.join("module.toml")))
        .map(stamp)
        .collect()
}

impl Compiler {
    /// A compiler over `module_paths` (searched in order) and `site`.
    pub fn new(module_paths: Vec<PathBuf>, site: PathBuf) -> Self {
        let files = std::sync::Arc::new(files::SourceFiles::default());
        Self {
            module_paths,
            site,
            modules: Default::default(),
            restart_key: RestartKey::for_checks(),
            files: files.clone(),
            templates: std::sync::Arc::new(templates::Templates::new(files)),
        }
    }

    /// Makes files' restart keys with the master's own key.
    pub fn with_restart_key(mut self, key: RestartKey) -> Self {
        self.restart_key = key;
        self
    }

    /// Forgets every parsed module: the next compile reads them all again
    /// (a SIGHUP, whatever the files' stamps say).
    pub fn forget_modules(&self) {
        self.modules.lock().expect("module cache").clear();
    }

    /// Loads a module folder, or takes it from the cache when none of its
    /// files changed since. A module whose files changed just before it was
    /// loaded is not kept (as [`files`] does: the kernel's timestamps
    /// would not tell a second edit in the same tick).
    fn load_module(&self, dir: &Path) -> Result<std::sync::Arc<Module>, CompileError> {
        if let Some((stamps, module)) = self.modules.lock().expect("module cache").get(dir) {
            if stamps.iter().all(|s| stamp(s.0.clone()) == *s) {
                return Ok(module.clone());
            }
        }
        let started = std::time::SystemTime::now();
        let module = std::sync::Arc::new(Module::load(dir)?);
        let stamps = stamps_of(&module);
        let settled = stamps
            .iter()
            .all(|(_, s)| s.is_some_and(|s| s.settled_at(started)));
        let mut modules = self.modules.lock().expect("module cache");
        if settled {
            modules.insert(dir.to_path_buf(), (stamps, module.clone()));
        } else {
            modules.remove(dir);
        }
        Ok(module)
    }

    /// The folders modules are searched in, in order.
    pub fn module_paths(&self) -> &[PathBuf] {
        &self.module_paths
    }

    /// The site directory.
    pub fn site(&self) -> &Path {
        &self.site
    }

    /// Loads the role's definition from the site.
    pub fn role(&self, role: &str) -> Result<RoleSpec, CompileError> {
        SiteData::new(&self.site).role(role)
    }

    /// The roles whose nodes are `role`'s nodes' peers: the site's roles
    /// in its cluster (itself included), or `None` when it names no
    /// cluster or cannot be read (its nodes then have no peers). What a
    /// compile reads of the inventory: `peers` keeps exactly these.
    pub fn cluster_roles(&self, role: &str) -> Option<Vec<String>> {
        let site = SiteData::kept_in(&self.site, &self.files);
        let cluster = site.role(role).ok()?.cluster?;
        Some(
            site.role_names()
                .into_iter()
                .filter(|name| {
                    site.role(name).ok().and_then(|r| r.cluster).as_deref()
                        == Some(cluster.as_str())
                })
                .collect(),
        )
    }

    /// Finds and loads a module by name.
    pub fn module(&self, name: &str, role: &str) -> Result<std::sync::Arc<Module>, CompileError> {
        for dir in &self.module_paths {
            let candidate = dir.join(name);
            if candidate.join("module.toml").is_file() {
                return self.load_module(&candidate);
            }
        }
        Err(CompileError::UnknownModule {
            module: name.to_string(),
            role: role.to_string(),
            searched: self
                .module_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// `peers.<role>`: the live nodes of the node's cluster, by role, sorted
    /// by certname; every role the site defines has a (maybe empty) list.
    fn peers(
        &self,
        site: &SiteData<'_>,
        role: &RoleSpec,
        node: &NodeContext,
    ) -> Result<Value, CompileError> {
        let mut peers = serde_json::Map::new();
        for name in site.role_names() {
            peers.insert(name, Value::Array(Vec::new()));
        }
        let Some(cluster) = &role.cluster else {
            return Ok(Value::Object(peers));
        };
        let mut clusters = std::collections::HashMap::new();
        let mut members: Vec<&Peer> = Vec::new();
        for peer in &node.inventory {
            if !clusters.contains_key(&peer.role) {
                let spec_cluster = site.role(&peer.role).ok().and_then(|r| r.cluster);
                clusters.insert(peer.role.clone(), spec_cluster);
            }
            if clusters[&peer.role].as_deref() == Some(cluster.as_str()) {
                members.push(peer);
            }
        }
        members.sort_by(|a, b| a.certname.cmp(&b.certname));
        for peer in members {
            let entry = peers
                .entry(peer.role.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(serde_json::json!({"certname": peer.certname, "ip": peer.ip}));
            }
        }
        Ok(Value::Object(peers))
    }

    /// Files (product-relative path, template) that the module named
    /// `module` renders into the product, for update reviews.
    pub fn templated_files(&self, module: &str) -> Vec<(String, String)> {
        self.declared_files(module, "template")
    }

    /// Files (product-relative path, edits) that the module named `module`
    /// makes by editing the product's own file, for update reviews.
    pub fn edited_files(&self, module: &str) -> Vec<(String, String)> {
        self.declared_files(module, "edits")
    }

    /// (product-relative path, `key`'s value) of the module's file declarations with `key`.
    fn declared_files(&self, module: &str, key: &str) -> Vec<(String, String)> {
        let Ok(module) = self.module(module, "") else {
            return Vec::new();
        };
        let mut files: Vec<(String, String)> = module
            .profiles
            .values()
            .flat_map(|p| p.resources.iter())
            .filter_map(|r| {
                let template = r.get(key)?.as_str()?;
                let path = r.get("path")?.as_str()?;
                let (_, relative) = path.rsplit_once("}}/")?;
                (!relative.contains("{{")).then(|| (relative.to_string(), template.to_string()))
            })
            .collect();
        files.sort();
        files.dedup();
        files
    }

    /// Every module on the module paths, by name (first path wins).
    pub fn modules(&self) -> Vec<Result<Module, CompileError>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for dir in &self.module_paths {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("module.toml").is_file())
                .collect();
            names.sort();
            for path in names {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if seen.insert(name) {
                    out.push(Module::load(&path));
                }
            }
        }
        out
    }

    /// Compiles the node's catalog content; `products` resolves `tree`
    /// resources to imported trees.
    pub fn compile(
        &self,
        node: &NodeContext,
        products: &Products,
    ) -> Result<CatalogContent, CompileError> {
        let site = SiteData::kept_in(&self.site, &self.files);
        let role = site.role(&node.role)?;
        let module = self.module(&role.module, &node.role)?;
        let profile = module.profile(&role.profile)?;
        let mut data = site.merged_data(&module, &node.role, &role, &node.certname)?;
        let peers = self.peers(&site, &role, node)?;
        let secrets = site.secrets(&node.role, &role, &node.certname)?;
        let lease = restart_lease(&role, &data, &self.site)?;
        let defaulted = credentials::defaulted(&data, &secrets);
        let development = data::lookup(&data, "environment.development")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        follow_channel(&mut data, &role, development, products);
        let mut context = render::context(data, &role, node, peers);
        render::add_runtime(
            &mut context,
            profile.service.as_ref(),
            &module.manifest_path(),
            &self.templates,
        )?;
        check_credentials(
            (&module, profile),
            (&context, &self.templates),
            products,
            (&defaulted, development),
            &node.role,
        )?;
        let mut resources = render::resources(
            &module,
            profile,
            &context,
            (products, &secrets),
            (&self.restart_key, &self.templates),
        )?;
        for resource in &mut resources {
            if let rigger_common::catalog::ResourceSpec::Service(service) = &mut resource.spec {
                service.restart_lease = lease.clone();
            }
        }
        let content = CatalogContent {
            role: node.role.clone(),
            profile: format!("{}/{}", module.name, role.profile),
            resources,
        };
        content
            .apply_order()
            .map_err(|source| CompileError::Catalog {
                file: module.manifest_path(),
                module: module.name.clone(),
                profile: role.profile.clone(),
                source: Box::new(source),
            })?;
        Ok(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes module `app` in `dir` (its `module.toml` and its defaults)
    /// and a site whose role `r` takes its profile `p`; gives back the
    /// modules folder and the site.
    fn app_and_role_r(dir: &Path, module_toml: &str, defaults: &str) -> (PathBuf, PathBuf) {
        let (modules, site) = (dir.join("modules"), dir.join("site"));
        write(&modules.join("app/module.toml"), module_toml);
        write(&modules.join("app/data/defaults.toml"), defaults);
        write(
            &site.join("roles/r.toml"),
            "[role]\nmodule = \"app\"\nprofile = \"p\"\n",
        );
        (modules, site)
    }

    #[test]
    fn rollout_settings_are_checked_where_they_are_written() {
        let bad = |key: &str, message: String| CompileError::Data {
            site: PathBuf::from("site"),
            key: key.to_string(),
            message,
        };
        let spec = |text: &str| rollout_spec(&text.parse::<toml::Table>().unwrap(), &bad);
        let defaults = spec("").unwrap().unwrap();
        assert_eq!(
            (
                defaults.canary.as_str(),
                defaults.bake_secs,
                defaults.auto_rollback
            ),
            ("1", 60, true)
        );
        let set = spec("[rollout]\ncanary = \"10%\"\nwaves = [2, \"100%\"]\nbake = \"2m\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (set.canary.as_str(), set.waves.clone(), set.bake_secs),
            ("10%", vec!["2".into(), "100%".into()], 120)
        );
        assert_eq!(spec("[rollout]\nenabled = false\n").unwrap(), None);
        for (typo, said) in [
            ("canary = \"1O%\"", "\"1O%\" is not a count"),
            ("canary = 0", "expected a count or a percentage, found 0"),
            ("waves = \"100%\"", "expected a list"),
            ("waves = [\"150%\"]", "\"150%\" is not a count"),
            ("bake = \"60\"", "is not a duration such as \"60s\""),
            ("bake = 60", "expected a duration"),
        ] {
            let err = spec(&format!("[rollout]\n{typo}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(said), "{typo}: {err}");
        }
    }

    #[test]
    fn a_library_profile_brings_its_resources_and_defaults_and_module_check_renders_them() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        write(
            &modules.join("lib/module.toml"),
            r#"
[module]
name = "lib"
[profiles._run]
[[profiles._run.resources]]
id = "server"
kind = "service"
when = "{{ service.enabled }}"
name = "app"
start = "{{ runtime.start_script }}"
working_dir = "/opt/app"
log_file = "/var/log/app.log"
health = "{{ runtime.health_url }}"
"#,
        );
        write(
            &modules.join("lib/data/defaults.toml"),
            "[service]\nenabled = false\nport = 9443\n",
        );
        let app = |health: &str| {
            write(
                &modules.join("app/module.toml"),
                &format!(
                    "[module]\nname = \"app\"\n[profiles.p]\nextends = \"lib/_run\"\n[profiles.p.service]\nstart_script = \"bin/start.sh\"\nhealth_url = \"{health}\"\n"
                ),
            );
        };
        app("https://{{ self.ip }}:{{ service.port }}/");
        let compiler = Compiler::new(vec![modules.clone()], dir.path().join("site"));
        let module = compiler.module("app", "r").unwrap();
        // The library's defaults lie beneath the module's; module check
        // switches the runtime on and renders the server.
        let content = compiler.check_profile(&module, "p").unwrap();
        let rigger_common::catalog::ResourceSpec::Service(server) = &content.resources[0].spec
        else {
            panic!("not a service")
        };
        assert_eq!(server.start, "bin/start.sh");
        assert_eq!(server.health.as_deref(), Some("https://192.0.2.10:9443/"));

        app("https://{{ self.ip }}:{{ service.no_such_port }}/");
        let module = compiler.module("app", "r").unwrap();
        let e = compiler.check_profile(&module, "p").unwrap_err();
        let text = rigger_common::error_chain(&e);
        assert!(
            text.contains("app/module.toml") && text.contains("[service]"),
            "{text}"
        );

        // An error in a library's resource names the library's file.
        app("https://{{ self.ip }}:{{ service.port }}/");
        let library = std::fs::read_to_string(modules.join("lib/module.toml")).unwrap();
        write(
            &modules.join("lib/module.toml"),
            &library.replace("/var/log/app.log", "{{ no_such_root }}/app.log"),
        );
        let module = compiler.module("app", "r").unwrap();
        let text = rigger_common::error_chain(&compiler.check_profile(&module, "p").unwrap_err());
        assert!(
            text.contains("lib/module.toml") && text.contains("\"server\""),
            "{text}"
        );
    }

    #[test]
    fn an_edited_module_is_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        let site = dir.path().join("site");
        let module = |content: &str| {
            write(
                &modules.join("app/module.toml"),
                &format!(
                    "[module]\nname = \"app\"\n[profiles.p]\n[[profiles.p.resources]]\nid = \"f\"\nkind = \"file\"\npath = \"/etc/app.conf\"\ncontent = \"{content}\"\n"
                ),
            )
        };
        write(
            &site.join("roles/r.toml"),
            "[role]\nmodule = \"app\"\nprofile = \"p\"\n",
        );
        let compiler = Compiler::new(vec![modules.clone()], site);
        let node = node_of_role_r();
        let content_of = |c: &CatalogContent| match &c.resources[0].spec {
            rigger_common::catalog::ResourceSpec::File(f) => f.content.clone(),
            _ => unreachable!(),
        };
        module("one");
        let first = compiler.compile(&node, &Products::default()).unwrap();
        assert_eq!(content_of(&first), "one");
        assert_eq!(
            content_of(&compiler.compile(&node, &Products::default()).unwrap()),
            "one"
        );
        module("three");
        let edited = compiler.compile(&node, &Products::default()).unwrap();
        assert_eq!(content_of(&edited), "three", "the cached module was used");
        // Rewritten at once with the same size (the same clock tick, as
        // likely as not): still seen.
        module("seven");
        let same_size = compiler.compile(&node, &Products::default()).unwrap();
        assert_eq!(
            content_of(&same_size),
            "seven",
            "the cached module was used"
        );
    }

    /// Node `n1` of role `r`, without facts or peers.
    fn node_of_role_r() -> NodeContext {
        NodeContext {
            certname: "n1".into(),
            role: "r".into(),
            facts: serde_json::json!({}),
            inventory: vec![],
        }
    }

    /// The file resource `id` of a compiled catalog.
    fn file_resource(content: &CatalogContent, id: &str) -> rigger_common::catalog::FileSpec {
        content
            .resources
            .iter()
            .find_map(|r| match (&r.spec, r.id == id) {
                (rigger_common::catalog::ResourceSpec::File(f), true) => Some(f.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no file resource {id}"))
    }

    #[test]
    fn files_using_a_secret_become_secret_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (modules, site) = app_and_role_r(
            dir.path(),
            r#"
[module]
name = "app"
[profiles.p]
[[profiles.p.resources]]
id = "uses_secret"
kind = "file"
path = "/etc/app/db.conf"
template = "db.conf.j2"
[[profiles.p.resources]]
id = "plain"
kind = "file"
path = "/etc/app/jvm.conf"
content = "heap = {{ heap }}"
"#,
            "heap = \"1g\"\n[environment]\ndevelopment = true\n[db]\nurl = \"jdbc:h2:x\"\npassword = \"default\"\n",
        );
        write(
            &modules.join("app/templates/db.conf.j2"),
            "url = {{ db.url }}\npassword = {{ db.password }}\n",
        );
        let compiler = Compiler::new(vec![modules], site.clone());
        let node = node_of_role_r();
        let secret_of = |content: &CatalogContent, id: &str| {
            let file = file_resource(content, id);
            (file.secret, file.content)
        };
        let before = compiler.compile(&node, &Products::default()).unwrap();
        assert!(!secret_of(&before, "uses_secret").0, "no secrets yet");

        write(
            &site.join("secrets/roles/r.toml"),
            "[db]\npassword = \"hunter2\"\n",
        );
        let after = compiler.compile(&node, &Products::default()).unwrap();
        let (secret, content) = secret_of(&after, "uses_secret");
        assert!(secret && content.contains("hunter2"), "{content}");
        assert!(!secret_of(&after, "plain").0);
        assert!(
            !serde_json::to_string(&after.redacted())
                .unwrap()
                .contains("hunter2")
        );
    }

    #[test]
    fn edits_and_template_vars_using_a_secret_make_their_file_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (modules, site) = app_and_role_r(
            dir.path(),
            r#"
[module]
name = "app"
[profiles.p]
[[profiles.p.resources]]
id = "product"
kind = "tree"
product = "app"
version = "1.0"
update_level = "0"
link = "/opt/app"
releases_dir = "/opt/releases"
[[profiles.p.resources]]
id = "edited_with_secret"
kind = "file"
path = "/opt/app/conf/app.toml"
edits = "app.toml.edits.toml"
from = "product"
[[profiles.p.resources]]
id = "edited_plain"
kind = "file"
path = "/opt/app/conf/other.toml"
edits = "other.toml.edits.toml"
from = "product"
[[profiles.p.resources]]
id = "vars_with_secret"
kind = "file"
path = "/etc/app/db.conf"
template = "db.conf.j2"
vars = { pass = "{{ db.password }}" }
"#,
            "heap = \"2g\"\n[db]\npassword = \"default\"\n",
        );
        write(
            &modules.join("app/templates/app.toml.edits.toml"),
            "[[edit]]\nset = \"db.password\"\nvalue = \"{{ db.password }}\"\n",
        );
        write(
            &modules.join("app/templates/other.toml.edits.toml"),
            "[[edit]]\nset = \"server.heap\"\nvalue = \"{{ heap }}\"\n",
        );
        write(
            &modules.join("app/templates/db.conf.j2"),
            "password = {{ pass }}\n",
        );
        for file in ["app.toml", "other.toml"] {
            write(
                &modules.join("app/reference/app-1.0/conf").join(file),
                "# shipped\n[db]\npassword = \"changeme\"\n[server]\nheap = \"1g\"\n",
            );
        }
        write(
            &site.join("secrets/roles/r.toml"),
            "[db]\npassword = \"hunter2\"\n",
        );
        let compiler = Compiler::new(vec![modules.clone()], site);
        let products = Products::permissive()
            .with_pack_files(std::sync::Arc::new(ReferenceFiles::new(vec![modules])));
        let content = compiler.compile(&node_of_role_r(), &products).unwrap();
        let file = |id: &str| file_resource(&content, id);
        let edited = file("edited_with_secret");
        assert!(edited.secret, "{edited:?}");
        assert!(edited.content.contains("hunter2"), "{}", edited.content);
        let redacted = edited.redacted_content.as_deref().unwrap();
        assert!(
            redacted.contains(rigger_common::catalog::REDACTED)
                && !redacted.contains("hunter2")
                && redacted.contains("# shipped"),
            "{redacted}"
        );
        let plain = file("edited_plain");
        assert!(!plain.secret && plain.content.contains("2g"), "{plain:?}");
        let vars = file("vars_with_secret");
        assert!(vars.secret && vars.content.contains("hunter2"), "{vars:?}");
        assert_eq!(
            vars.redacted_content.as_deref(),
            Some(format!("password = {}\n", rigger_common::catalog::REDACTED).as_str())
        );
    }
}
