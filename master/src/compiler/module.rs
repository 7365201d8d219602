//! Product modules as data: `module.toml` (profiles and the resources each
//! declares), `templates/` (minijinja) and `data/` (defaults).

use std::collections::BTreeMap;
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
    /// bases, never roles' profiles on their own).
    #[serde(default)]
    pub extends: Option<String>,
    /// How the product runs: start script and arguments, ports, health
    /// URL, shared folders and service user (used by the node runtime).
    #[serde(default)]
    pub service: Option<ServiceInfo>,
}

/// How a profile's server runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceInfo {
    /// Start script, relative to CARBON_HOME (`bin/wso2server.sh`).
    pub start_script: String,
    /// Arguments (`-Dprofile=gateway-worker`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Ports the server listens on (before `ports_offset`).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Readiness URL (`https://localhost:9443/carbon/admin/login.jsp`).
    #[serde(default)]
    pub health_url: Option<String>,
    /// CARBON_HOME-relative folders kept on the shared file system.
    #[serde(default)]
    pub shared_dirs: Vec<String>,
    /// Service user and group with their fixed ids.
    #[serde(default = "default_user")]
    pub user: String,
    /// Service group.
    #[serde(default = "default_group")]
    pub group: String,
    /// Uid and gid of the user and group.
    #[serde(default = "default_id")]
    pub id: u32,
}

fn default_user() -> String {
    "wso2carbon".into()
}

fn default_group() -> String {
    "wso2".into()
}

fn default_id() -> u32 {
    802
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
}

impl Module {
    /// Loads `dir/module.toml`.
    pub fn load(dir: &Path) -> Result<Self, CompileError> {
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
        // Resolve `extends` chains from the profiles as written (cycles refused).
        let original = profiles.clone();
        for (name, own) in &original {
            let mut chain = vec![name.clone()];
            let mut resources = own.resources.clone();
            let mut service = own.service.clone();
            let mut base = own.extends.clone();
            while let Some(b) = base {
                if chain.contains(&b) {
                    return Err(CompileError::Toml {
                        path,
                        message: format!("profile {name:?}: `extends` forms a cycle through {b:?}"),
                    });
                }
                let parent = original.get(&b).ok_or_else(|| CompileError::Toml {
                    path: path.clone(),
                    message: format!("profile {name:?} extends {b:?}, which does not exist"),
                })?;
                let mut merged = parent.resources.clone();
                merged.extend(resources);
                resources = merged;
                service = service.or_else(|| parent.service.clone());
                chain.push(b.clone());
                base = parent.extends.clone();
            }
            let profile = profiles.get_mut(name).expect("profile exists");
            profile.resources = resources;
            profile.service = service;
        }
        Ok(Self {
            name: file.module.name,
            dir: dir.to_path_buf(),
            description: file.module.description,
            profiles,
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

    /// Default data files: `data/defaults.toml`, then `data/<profile>.toml`.
    pub fn default_layers(&self, profile: &str) -> Vec<PathBuf> {
        let data_dir = self.dir.join("data");
        vec![
            data_dir.join("defaults.toml"),
            data_dir.join(format!("{profile}.toml")),
        ]
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
        let path = self.dir.join("templates").join(name);
        if name.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(CompileError::Template {
                file: self.manifest_path(),
                message: format!(
                    "template name {name:?} must be a relative path inside templates/"
                ),
            });
        }
        let source = std::fs::read_to_string(&path).map_err(|source| CompileError::Read {
            path: path.clone(),
            source,
        })?;
        Ok((path, source))
    }
}
