//! Imported products as the compiler sees them: which trees exist for each
//! product version and level, so a `tree` resource's `update_level`
//! ("latest" or a number) resolves to a tree digest.

use std::collections::BTreeMap;

use rigger_common::digest::Digest;
use serde_json::{Map, Value};

use crate::store::{ArtifactRecord, TreeRecord};

/// One imported tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeRef {
    /// Manifest digest.
    pub digest: Digest,
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub size: u64,
}

/// A snapshot of the imported products and artifacts. It also keeps the
/// secret files a compile resolved (their bytes by digest), so the caller
/// stores exactly those without reading and hashing them again.
#[derive(Debug, Default)]
pub struct Products {
    levels: BTreeMap<(String, String), BTreeMap<u32, TreeRef>>,
    artifacts: BTreeMap<String, Digest>,
    /// Accept any product and artifact (module checks without a master).
    permissive: bool,
    /// The site's `secrets/files/` (keystores and other secret files).
    secret_files: Option<std::path::PathBuf>,
    /// Secret files resolved so far, by digest.
    resolved_secrets: std::sync::Mutex<BTreeMap<Digest, Vec<u8>>>,
    /// Where the product's own files are read from, for edits.
    pack_files: Option<std::sync::Arc<dyn PackFiles>>,
    /// The levels promoted to environments, by (product, version, environment).
    promotions: BTreeMap<(String, String, String), u32>,
    /// A level under review: resolves its product version whatever level
    /// is asked for.
    reviewed: Option<((String, String), (u32, TreeRef))>,
    /// Product files read so far, by tree and path.
    read_files: std::sync::Mutex<BTreeMap<(Digest, String), std::sync::Arc<str>>>,
    /// Where each product version's level came from, as resolved so far.
    level_sources: std::sync::Mutex<BTreeMap<String, String>>,
}

/// How `update_level` marks the level promoted to the node's environment
/// (`promoted:3`), as opposed to a level the site pins (`3`).
pub const PROMOTED: &str = "promoted:";

/// A file of an imported tree, as edits name it.
#[derive(Debug, Clone, Copy)]
pub struct TreeFile<'a> {
    /// Product name (`wso2is`).
    pub product: &'a str,
    /// Product version (`5.8.0`).
    pub version: &'a str,
    /// Update level.
    pub level: u32,
    /// The tree's manifest digest.
    pub tree: Digest,
    /// Path inside the tree (`repository/conf/carbon.xml`).
    pub path: &'a str,
}

impl std::fmt::Display for TreeFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} {} level {}",
            self.path, self.product, self.version, self.level
        )
    }
}

/// Reads the product's own files: the master's imported packs, or (for
/// `module check` without a master) the modules' reference files.
pub trait PackFiles: Send + Sync + std::fmt::Debug {
    /// The file's bytes; `Ok(None)` when the tree has no such file.
    fn read(&self, file: &TreeFile<'_>) -> Result<Option<Vec<u8>>, String>;

    /// What the files are read from, for messages ("the imported pack",
    /// "the reference files of modules/wso2is").
    fn describe(&self, file: &TreeFile<'_>) -> String;
}

impl Products {
    /// From the store's records.
    pub fn from_records(records: &[TreeRecord]) -> Self {
        let mut levels: BTreeMap<(String, String), BTreeMap<u32, TreeRef>> = BTreeMap::new();
        for r in records {
            levels
                .entry((r.name.clone(), r.version.clone()))
                .or_default()
                .insert(
                    r.level,
                    TreeRef {
                        digest: r.digest,
                        files: r.files,
                        size: r.size,
                    },
                );
        }
        Self {
            levels,
            ..Self::default()
        }
    }

    /// A snapshot in which every product version and artifact exists (with
    /// placeholder digests), for checking modules without imports.
    pub fn permissive() -> Self {
        Self {
            permissive: true,
            ..Self::default()
        }
    }

    /// Adds the levels promoted to environments.
    pub fn with_promotions(mut self, records: &[crate::store::PromotionRecord]) -> Self {
        self.promotions = records
            .iter()
            .map(|p| {
                (
                    (p.name.clone(), p.version.clone(), p.environment.clone()),
                    p.level,
                )
            })
            .collect();
        self
    }

    /// The level a non-development environment runs of a product version:
    /// the one promoted to it, else the GA level (0).
    pub fn channel_level(&self, name: &str, version: &str, environment: &str) -> u32 {
        self.promotions
            .get(&(
                name.to_string(),
                version.to_string(),
                environment.to_string(),
            ))
            .copied()
            .unwrap_or(0)
    }

    /// Adds the imported artifacts.
    pub fn with_artifacts(mut self, records: &[ArtifactRecord]) -> Self {
        self.artifacts = records.iter().map(|a| (a.name.clone(), a.digest)).collect();
        self
    }

    /// The same snapshot with `name` `version` resolving to `level`
    /// (`tree`) whatever level a role asks for: the review of a level
    /// before it is recorded.
    pub fn reviewing(mut self, name: &str, version: &str, level: u32, tree: TreeRef) -> Self {
        self.reviewed = Some(((name.to_string(), version.to_string()), (level, tree)));
        self
    }

    /// Where edited files of the product are read from.
    pub fn with_pack_files(mut self, files: std::sync::Arc<dyn PackFiles>) -> Self {
        self.pack_files = Some(files);
        self
    }

    /// The text of a product file that edits apply to (read once per
    /// snapshot). A file the tree lacks, or that is not UTF-8, is an error
    /// naming it.
    pub fn product_file(&self, file: &TreeFile<'_>) -> Result<std::sync::Arc<str>, String> {
        let key = (file.tree, file.path.to_string());
        if let Some(text) = self.read_files.lock().expect("product files").get(&key) {
            return Ok(text.clone());
        }
        let reader = self.pack_files.as_ref().ok_or_else(|| {
            format!(
                "{file}: the product's files cannot be read here (no pack and no reference files)"
            )
        })?;
        let bytes = reader
            .read(file)?
            .ok_or_else(|| format!("{file}: no such file in {}", reader.describe(file)))?;
        let text: std::sync::Arc<str> = String::from_utf8(bytes)
            .map_err(|_| format!("{file}: not UTF-8 text, so it cannot be edited"))?
            .into();
        self.read_files
            .lock()
            .expect("product files")
            .insert(key, text.clone());
        Ok(text)
    }

    /// What product files are read from, for messages.
    pub fn describe_files(&self, file: &TreeFile<'_>) -> String {
        self.pack_files
            .as_ref()
            .map_or_else(|| "nothing".into(), |r| r.describe(file))
    }

    /// Where `secret_file = "NAME"` resources take their content from.
    pub fn with_secret_files(mut self, dir: std::path::PathBuf) -> Self {
        self.secret_files = Some(dir);
        self
    }

    /// Replaces a rendered file declaration's `secret_file` (a name under
    /// the site's `secrets/files/`) with its content digest and marks the
    /// file secret; the master serves the content from there.
    pub fn resolve_secret_file(&self, rendered: &mut Map<String, Value>) -> Result<(), String> {
        let Some(name) = rendered.remove("secret_file") else {
            return Ok(());
        };
        let name = name
            .as_str()
            .ok_or("field \"secret_file\" must be a string")?
            .to_string();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!(
                "secret_file {name:?} must be a file name in secrets/files/"
            ));
        }
        let digest = match &self.secret_files {
            None if self.permissive => Digest::of(name.as_bytes()),
            None => return Err("secret files need a site (secrets/files/)".into()),
            Some(dir) => {
                let path = dir.join(&name);
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("secret file {} cannot be read: {e}", path.display()))?;
                let digest = Digest::of(&bytes);
                self.resolved_secrets
                    .lock()
                    .expect("secret files")
                    .insert(digest, bytes);
                digest
            }
        };
        rendered.insert("source".into(), Value::String(digest.to_string()));
        rendered.insert("secret".into(), Value::Bool(true));
        Ok(())
    }

    /// Where each product version's level came from ("pinned", "latest",
    /// "promoted"), by "product version", taken out.
    pub fn take_level_sources(&self) -> BTreeMap<String, String> {
        std::mem::take(&mut *self.level_sources.lock().expect("level sources"))
    }

    /// The secret files compiles with this snapshot resolved (bytes by
    /// digest), taken out.
    pub fn take_resolved_secret_files(&self) -> BTreeMap<Digest, Vec<u8>> {
        std::mem::take(&mut *self.resolved_secrets.lock().expect("secret files"))
    }

    /// Replaces a rendered file declaration's `artifact` (a name) with the
    /// artifact's `source` digest.
    pub fn resolve_artifact(&self, rendered: &mut Map<String, Value>) -> Result<(), String> {
        let Some(name) = rendered.remove("artifact") else {
            return Ok(());
        };
        let name = name
            .as_str()
            .ok_or("field \"artifact\" must be a string")?
            .to_string();
        let placeholder = Digest::of(name.as_bytes());
        let found = self
            .artifacts
            .get(&name)
            .or(self.permissive.then_some(&placeholder));
        let digest = found.ok_or_else(|| {
            format!("artifact {name:?} is not imported: run `masterctl artifact import FILE --name {name}`")
        })?;
        rendered.insert("source".into(), Value::String(digest.to_string()));
        Ok(())
    }

    /// Resolves `level` ("latest", or a number as text or JSON) of a product version.
    pub fn resolve(
        &self,
        name: &str,
        version: &str,
        level: &Value,
    ) -> Result<(u32, TreeRef), String> {
        if let Some(((n, v), found)) = &self.reviewed {
            if n == name && v == version {
                return Ok(*found);
            }
        }
        if self.permissive {
            let digest = Digest::of(format!("{name}-{version}").as_bytes());
            return Ok((
                0,
                TreeRef {
                    digest,
                    files: 0,
                    size: 0,
                },
            ));
        }
        let levels = self.levels.get(&(name.to_string(), version.to_string())).ok_or_else(|| {
            format!("product {name} {version} is not imported: run `masterctl product import` with its pack")
        })?;
        let wanted = match level {
            Value::Null => None,
            Value::String(s) if s == "latest" => None,
            Value::String(s) if s.starts_with(PROMOTED) => Some(
                s[PROMOTED.len()..]
                    .parse::<u32>()
                    .map_err(|_| format!("update_level {s:?} must be \"latest\" or a number"))?,
            ),
            Value::String(s) => Some(
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("update_level {s:?} must be \"latest\" or a number"))?,
            ),
            Value::Number(n) => Some(
                n.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("update_level {n} is not a valid level"))?,
            ),
            other => {
                return Err(format!(
                    "update_level {other} must be \"latest\" or a number"
                ));
            }
        };
        match wanted {
            None => levels
                .iter()
                .next_back()
                .map(|(l, t)| (*l, *t))
                .ok_or_else(|| format!("product {name} {version} has no imported level")),
            Some(l) => levels.get(&l).map(|t| (l, *t)).ok_or_else(|| {
                let known: Vec<String> = levels.keys().map(u32::to_string).collect();
                format!(
                    "update level {l} of {name} {version} is not imported (imported: {})",
                    known.join(", ")
                )
            }),
        }
    }

    /// Replaces a rendered tree declaration's `update_level` with the
    /// resolved `level`, `tree`, `files` and `size`.
    pub fn resolve_into(&self, rendered: &mut Map<String, Value>) -> Result<(), String> {
        let text = |key: &str| {
            rendered
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("a tree needs a string field {key:?}"))
        };
        let (name, version) = (text("product")?, text("version")?);
        let wanted = rendered.remove("update_level").unwrap_or(Value::Null);
        if let Some(Value::String(keep)) = rendered.get("keep") {
            let keep: u32 = keep
                .trim()
                .parse()
                .map_err(|_| format!("keep {keep:?} must be a number of releases"))?;
            rendered.insert("keep".into(), Value::from(keep));
        }
        let (level, tree) = self.resolve(&name, &version, &wanted)?;
        let source = match &wanted {
            Value::Null => "latest",
            Value::String(s) if s == "latest" => "latest",
            Value::String(s) if s.starts_with(PROMOTED) => "promoted",
            _ => "pinned",
        };
        self.level_sources
            .lock()
            .expect("level sources")
            .insert(format!("{name} {version}"), source.to_string());
        rendered.insert("level".into(), Value::from(level));
        rendered.insert("tree".into(), Value::String(tree.digest.to_string()));
        rendered.insert("files".into(), Value::from(tree.files));
        rendered.insert("size".into(), Value::from(tree.size));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(level: u32, content: &[u8]) -> TreeRecord {
        TreeRecord {
            name: "wso2is".into(),
            version: "5.11.0".into(),
            level,
            digest: Digest::of(content),
            files: 1,
            size: 1,
            imported_at_ms: 0,
        }
    }

    #[test]
    fn latest_and_numbered_levels_resolve() {
        let p = Products::from_records(&[record(0, b"ga"), record(7, b"l7"), record(3, b"l3")]);
        let latest = p
            .resolve("wso2is", "5.11.0", &Value::from("latest"))
            .unwrap();
        assert_eq!((latest.0, latest.1.digest), (7, Digest::of(b"l7")));
        assert_eq!(p.resolve("wso2is", "5.11.0", &Value::from(3)).unwrap().0, 3);
        assert_eq!(
            p.resolve("wso2is", "5.11.0", &Value::from("0")).unwrap().0,
            0
        );
        let err = p.resolve("wso2is", "5.11.0", &Value::from(5)).unwrap_err();
        assert!(err.contains("imported: 0, 3, 7"), "{err}");
        assert!(
            p.resolve("wso2am", "4.2.0", &Value::Null)
                .unwrap_err()
                .contains("not imported")
        );
    }

    #[test]
    fn each_resolved_level_says_where_it_came_from() {
        let p = Products::from_records(&[record(0, b"ga"), record(3, b"l3")]);
        let tree = |level: Value| {
            let mut rendered = Map::new();
            rendered.insert("product".into(), Value::from("wso2is"));
            rendered.insert("version".into(), Value::from("5.11.0"));
            rendered.insert("update_level".into(), level);
            p.resolve_into(&mut rendered).unwrap();
            (
                rendered["level"].as_u64().unwrap(),
                p.take_level_sources()["wso2is 5.11.0"].clone(),
            )
        };
        assert_eq!(tree(Value::from("latest")), (3, "latest".into()));
        assert_eq!(tree(Value::from("0")), (0, "pinned".into()));
        assert_eq!(
            tree(Value::from(format!("{PROMOTED}3"))),
            (3, "promoted".into())
        );
        assert!(p.take_level_sources().is_empty(), "taken out");
    }
}
