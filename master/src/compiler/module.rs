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
        Ok(Self {
            name: file.module.name,
            dir: dir.to_path_buf(),
            description: file.module.description,
            profiles: file.profiles,
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
