//! Product modules as data: `module.toml` (profiles and the resources each
//! declares), `templates/` (minijinja) and `data/` (defaults).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Table;

use super::CompileError;
use super::data::{merge, read_table};

/// A loaded module.
#[derive(Debug, Clone)]
pub struct Module {
    /// Module name (its folder name).
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// One-line description.
    pub description: String,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Library modules (beside this one) whose profiles this one's extend
    /// as `extends = "<library>/<profile>"`; their default data comes
    /// beneath this module's.
    pub libraries: Vec<PathBuf>,
    /// Data tables whose keys the site names (`databases`), this module's
    /// and its libraries' ([`super::schema`]).
    pub open_maps: BTreeSet<String>,
}

/// One profile of a module: the resources a node of that profile gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Resource declarations; string values are minijinja templates, and a
    /// `template` key names a file under `templates/` rendered into `content`.
    #[serde(default)]
    pub resources: Vec<Table>,
    /// A profile whose resources come first (profiles named `_…` are only
    /// bases, never roles' profiles on their own); `<library>/<profile>`
    /// names a profile of a library module beside this one (the node
    /// runtime, `wso2-runtime/_runtime`).
    #[serde(default)]
    pub extends: Option<String>,
    /// How the product runs: start script and arguments, ports, health
    /// URL, shared folders and service user (used by the node runtime).
    #[serde(default)]
    pub service: Option<ServiceInfo>,
    /// The file that declares each resource (the module's own
    /// `module.toml`, or a library's), for error messages.
    #[serde(skip)]
    pub origins: Vec<PathBuf>,
}

/// How a profile's server runs; the node runtime (`wso2-runtime`) turns
/// it into the `service` resource. Strings are templates, rendered with
/// the node's context (`runtime.*` in resource declarations).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceInfo {
    /// Start script, relative to CARBON_HOME (`bin/wso2server.sh`).
    pub start_script: String,
    /// Arguments (`-Dprofile=gateway-worker`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Ports the server listens on (before `ports_offset`), for operators.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Readiness URL, e.g.
    /// `https://{{ self.ip }}:{{ 9443 + server.ports_offset }}/carbon/admin/login.jsp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    /// The pid file the server writes, relative to CARBON_HOME (the
    /// systemd unit's `PIDFile`; the Carbon default `wso2carbon.pid`).
    #[serde(default = "default_pid_file")]
    pub pid_file: String,
}

fn default_pid_file() -> String {
    "wso2carbon.pid".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFile {
    module: ModuleHeader,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleHeader {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    open_maps: Vec<String>,
}

impl Module {
    /// Loads `dir/module.toml`.
    pub fn load(dir: &Path) -> Result<Self, CompileError> {
        Self::load_as(dir, true)
    }

    /// Loads a module; a library (`may_use_libraries` false) may not extend
    /// other modules' profiles itself.
    fn load_as(dir: &Path, may_use_libraries: bool) -> Result<Self, CompileError> {
        let path = dir.join("module.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| CompileError::Read {
            path: path.clone(),
            source,
        })?;
        let file: ModuleFile = toml::from_str(&text).map_err(|e| CompileError::Toml {
            path: path.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut profiles = file.profiles;
        for profile in profiles.values_mut() {
            profile.origins = vec![path.clone(); profile.resources.len()];
        }
        let mut libraries: Vec<PathBuf> = Vec::new();
        // Each library is read once, whichever profiles extend it.
        let mut loaded: std::collections::HashMap<PathBuf, Module> = Default::default();
        // Resolve `extends` chains from the profiles as written (cycles refused).
        let original = profiles.clone();
        for (name, own) in &original {
            let mut chain = vec![name.clone()];
            let mut resources = own.resources.clone();
            let mut origins = vec![path.clone(); resources.len()];
            let mut service = own.service.clone();
            let mut base = own.extends.clone();
            while let Some(b) = base {
                if chain.contains(&b) {
                    return Err(CompileError::Toml {
                        path,
                        message: format!("profile {name:?}: `extends` forms a cycle through {b:?}"),
                    });
                }
                let parent = match b.split_once('/') {
                    Some((library_name, profile)) => {
                        if !may_use_libraries {
                            return Err(CompileError::Toml {
                                path,
                                message: format!(
                                    "profile {name:?} of a library extends {b:?}: libraries extend only their own profiles"
                                ),
                            });
                        }
                        let library_dir = dir.parent().unwrap_or(Path::new(".")).join(library_name);
                        if !loaded.contains_key(&library_dir) {
                            let library = Self::load_as(&library_dir, false)?;
                            loaded.insert(library_dir.clone(), library);
                            libraries.push(library_dir.clone());
                        }
                        loaded[&library_dir].profile(profile)?
                    }
                    None => original.get(&b).ok_or_else(|| CompileError::Toml {
                        path: path.clone(),
                        message: format!("profile {name:?} extends {b:?}, which does not exist"),
                    })?,
                };
                let mut merged = parent.resources.clone();
                merged.extend(resources);
                resources = merged;
                let mut merged_origins = if b.contains('/') {
                    parent.origins.clone()
                } else {
                    vec![path.clone(); parent.resources.len()]
                };
                merged_origins.extend(origins);
                origins = merged_origins;
                service = service.or_else(|| parent.service.clone());
                chain.push(b.clone());
                // A library's profile comes with its own bases resolved.
                base = if b.contains('/') {
                    None
                } else {
                    parent.extends.clone()
                };
            }
            let profile = profiles.get_mut(name).expect("profile exists");
            profile.resources = resources;
            profile.origins = origins;
            profile.service = service;
        }
        let mut open_maps: BTreeSet<String> = file.module.open_maps.into_iter().collect();
        for library in loaded.values() {
            open_maps.extend(library.open_maps.iter().cloned());
        }
        Ok(Self {
            name: file.module.name,
            dir: dir.to_path_buf(),
            description: file.module.description,
            profiles,
            libraries,
            open_maps,
        })
    }

    /// The path of `module.toml`, for error messages.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("module.toml")
    }

    /// The named profile.
    pub fn profile(&self, name: &str) -> Result<&Profile, CompileError> {
        self.profiles
            .get(name)
            .ok_or_else(|| CompileError::UnknownProfile {
                module: self.name.clone(),
                profile: name.to_string(),
                available: self.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Default data files: each library's `data/defaults.toml`, then
    /// `data/defaults.toml`, then `data/<profile>.toml`.
    pub fn default_layers(&self, profile: &str) -> Vec<PathBuf> {
        let data_dir = self.dir.join("data");
        let mut layers: Vec<PathBuf> = self
            .libraries
            .iter()
            .map(|library| library.join("data/defaults.toml"))
            .collect();
        layers.push(data_dir.join("defaults.toml"));
        layers.push(data_dir.join(format!("{profile}.toml")));
        layers
    }

    /// Profiles a role may name (bases, named `_…`, left out).
    pub fn concrete_profiles(&self) -> impl Iterator<Item = &String> {
        self.profiles.keys().filter(|p| !p.starts_with('_'))
    }

    /// Default data: the default layers merged.
    pub fn defaults(&self, profile: &str) -> Result<Table, CompileError> {
        let mut data = Table::new();
        for layer in self.default_layers(profile) {
            if let Some(over) = read_table(&layer)? {
                merge(&mut data, over);
            }
        }
        Ok(data)
    }

    /// Reads a template file by its name under `templates/`.
    pub fn template_source(&self, name: &str) -> Result<(PathBuf, String), CompileError> {
        template_source_in(&self.dir, name)
    }
}

/// Where a template named `name` lies under `dir/templates/` (a module's
/// or a library's folder); a name that climbs out is refused.
pub fn template_path_in(dir: &Path, name: &str) -> Result<PathBuf, CompileError> {
    if name.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(CompileError::Template {
            file: dir.join("module.toml"),
            message: format!("template name {name:?} must be a relative path inside templates/"),
        });
    }
    Ok(dir.join("templates").join(name))
}

/// Reads a template file by its name under `dir/templates/` (a module's or
/// a library's folder).
pub fn template_source_in(dir: &Path, name: &str) -> Result<(PathBuf, String), CompileError> {
    let path = template_path_in(dir, name)?;
    let source = std::fs::read_to_string(&path).map_err(|source| CompileError::Read {
        path: path.clone(),
        source,
    })?;
    Ok((path, source))
}
