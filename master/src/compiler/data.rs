//! Site data: a hierarchy of TOML files merged most specific first —
//! `nodes/<certname>.toml` → `roles/<role>.toml` → `patterns/<pattern>.toml`
//! → `environments/<env>.toml` → `common.toml` → module defaults. Tables
//! merge deeply; any other value from a more specific file wins.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Table;

use std::sync::Arc;

use super::files::{SourceFiles, Stamp, StampedText};
use super::schema::{DataProblem, Schema};
use super::{CompileError, Module};

/// A role's definition: the `[role]` table of `roles/<role>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Module (product) name, e.g. `wso2is`.
    pub module: String,
    /// Profile within the module, e.g. `is`.
    pub profile: String,
    /// Product version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Deployment pattern (selects `patterns/<pattern>.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Environment (selects `environments/<env>.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Cluster the node belongs to (for peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Update level of the product: "latest" or a number. Overrides the
    /// `update_level` of the data hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_level: Option<toml::Value>,
}

/// The site directory.
pub struct SiteData<'a> {
    dir: &'a Path,
    /// Files kept parsed across compiles (none: every file is read).
    files: Option<&'a SourceFiles>,
}

impl<'a> SiteData<'a> {
    /// The site rooted at `dir`.
    pub fn new(dir: &'a Path) -> Self {
        Self { dir, files: None }
    }

    /// The site rooted at `dir`, its files (and the modules' data) kept
    /// parsed in `files` while they are unchanged.
    pub fn kept_in(dir: &'a Path, files: &'a SourceFiles) -> Self {
        Self {
            dir,
            files: Some(files),
        }
    }

    /// A TOML file as a table; a missing file is `None`.
    fn table(&self, path: &Path) -> Result<Option<Table>, CompileError> {
        match self.files {
            Some(files) => Ok(files.table(path)?.map(|t| Table::clone(&*t))),
            None => read_table(path),
        }
    }

    /// A file's text, with its stamp when it may key a cache.
    fn text(&self, path: &Path) -> Result<Option<StampedText>, CompileError> {
        match self.files {
            Some(files) => files.text(path),
            None => Ok(read_text(path)?.map(|t| (Arc::from(t), None))),
        }
    }

    /// The module's default data for `profile` (its layers merged), and a
    /// fingerprint of the layers it came from when they may key a cache.
    fn defaults(
        &self,
        module: &Module,
        profile: &str,
    ) -> Result<(Table, Option<u64>), CompileError> {
        use std::hash::{Hash, Hasher};
        let mut data = Table::new();
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        let mut trusted = self.files.is_some();
        for layer in module.default_layers(profile) {
            layer.hash(&mut fingerprint);
            // Read once: the stamp keys the fingerprint, the text merges.
            let Some((text, stamp)) = self.text(&layer)? else {
                0u8.hash(&mut fingerprint);
                continue;
            };
            match stamp {
                Some(stamp) => stamp.hash(&mut fingerprint),
                None => trusted = false,
            }
            merge(&mut data, self.parse(&layer, &text, stamp)?);
        }
        module.open_maps.hash(&mut fingerprint);
        Ok((data, trusted.then(|| fingerprint.finish())))
    }

    /// One site file's table (without its `[role]`), or its problems
    /// against `schema` (whose defaults have `fingerprint`); the same text
    /// is checked and parsed, and a file found clean before is not
    /// checked again. A missing file is an empty table.
    fn checked_table(
        &self,
        schema: &Schema<'_>,
        fingerprint: Option<u64>,
        layer: &Path,
    ) -> Result<Result<Table, Vec<DataProblem>>, CompileError> {
        let Some((text, stamp)) = self.text(layer)? else {
            return Ok(Ok(Table::new()));
        };
        let problems = self.problems(schema, fingerprint, layer, (&text, stamp));
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let mut table = self.parse(layer, &text, stamp)?;
        table.remove("role");
        Ok(Ok(table))
    }

    /// A file's `text` (as [`Self::text`] gave it) parsed as a table.
    fn parse(&self, path: &Path, text: &str, stamp: Option<Stamp>) -> Result<Table, CompileError> {
        match self.files {
            Some(files) => Ok(Table::clone(&*files.parsed(path, text, stamp)?)),
            None => parse_table(path, text),
        }
    }

    /// The problems of one site file's `text` against `schema`.
    fn problems(
        &self,
        schema: &Schema<'_>,
        fingerprint: Option<u64>,
        layer: &Path,
        (text, stamp): (&str, Option<Stamp>),
    ) -> Vec<DataProblem> {
        let memo = self.files.zip(stamp).zip(fingerprint);
        if let Some(((files, stamp), fingerprint)) = memo {
            if files.known_clean(layer, stamp, fingerprint) {
                return Vec::new();
            }
        }
        let problems = schema.check_text(layer, text);
        if let (Some(((files, stamp), fingerprint)), true) = (memo, problems.is_empty()) {
            files.found_clean(layer, stamp, fingerprint);
        }
        problems
    }

    fn role_file(&self, role: &str) -> PathBuf {
        self.dir.join("roles").join(format!("{role}.toml"))
    }

    /// Every TOML file of the site that does not parse (or cannot be read),
    /// as "file: problem", and a site that is not a directory at all.
    pub fn file_problems(&self) -> Vec<String> {
        if !self.dir.is_dir() {
            return vec![format!("site {} is not a directory", self.dir.display())];
        }
        let mut problems = Vec::new();
        let mut pending = vec![self.dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                problems.push(format!("cannot read {}", dir.display()));
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    if let Err(e) = read_table(&path) {
                        problems.push(rigger_common::error_chain(&e));
                    }
                }
            }
        }
        problems
    }

    /// Names of every role the site defines (`roles/*.toml`).
    pub fn role_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("roles")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(str::to_string)
            })
            .filter(|n| is_safe_name(n))
            .collect();
        names.sort();
        names
    }

    /// Reads the `[role]` table of `roles/<role>.toml`.
    pub fn role(&self, role: &str) -> Result<RoleSpec, CompileError> {
        let path = self.role_file(role);
        if !is_safe_name(role) || !path.is_file() {
            return Err(CompileError::UnknownRole {
                role: role.to_string(),
                expected: path,
            });
        }
        let mut table = self.table(&path)?.unwrap_or_default();
        let spec = table.remove("role").ok_or_else(|| CompileError::Toml {
            path: path.clone(),
            message: "missing the [role] table (module, profile, …)".to_string(),
        })?;
        spec.try_into()
            .map_err(|e: toml::de::Error| CompileError::Toml {
                path,
                message: format!("[role]: {}", e.message()),
            })
    }

    /// The data files for a node, least specific first: the module's
    /// defaults, then common, environment, pattern, role and node.
    pub fn layers(
        &self,
        module: &Module,
        role_name: &str,
        role: &RoleSpec,
        certname: &str,
    ) -> Vec<PathBuf> {
        let mut layers = module.default_layers(&role.profile);
        layers.extend(self.site_layers(role_name, role, certname));
        layers
    }

    /// The site's own data files for a node, least specific first.
    fn site_layers(&self, role_name: &str, role: &RoleSpec, certname: &str) -> Vec<PathBuf> {
        let mut layers = vec![self.dir.join("common.toml")];
        if let Some(env) = role.environment.as_deref().filter(|e| is_safe_name(e)) {
            layers.push(self.dir.join("environments").join(format!("{env}.toml")));
        }
        if let Some(pattern) = role.pattern.as_deref().filter(|p| is_safe_name(p)) {
            layers.push(self.dir.join("patterns").join(format!("{pattern}.toml")));
        }
        layers.push(self.role_file(role_name));
        if is_safe_name(certname) {
            layers.push(self.dir.join("nodes").join(format!("{certname}.toml")));
        }
        layers
    }

    /// The data for a node: every layer merged onto the module's defaults,
    /// after each site file (data and secrets) was checked against them
    /// ([`Schema`]).
    pub fn merged_data(
        &self,
        module: &Module,
        role_name: &str,
        role: &RoleSpec,
        certname: &str,
    ) -> Result<Table, CompileError> {
        let (mut data, fingerprint) = self.defaults(module, &role.profile)?;
        let site_layers = self.site_layers(role_name, role, certname);
        let secret_layers = self.secret_layers(role_name, role, certname);
        let schema = Schema::new(&data, &module.open_maps);
        // Each site file is checked and parsed from the same text.
        let mut tables = Vec::new();
        let mut problems: Vec<DataProblem> = Vec::new();
        for layer in &site_layers {
            match self.checked_table(&schema, fingerprint, layer)? {
                Ok(table) => tables.push(table),
                Err(found) => problems.extend(found),
            }
        }
        for layer in &secret_layers {
            if let Some((text, stamp)) = self.text(layer)? {
                problems.extend(self.problems(&schema, fingerprint, layer, (&text, stamp)));
            }
        }
        if !problems.is_empty() {
            return Err(CompileError::SiteData(problems));
        }
        for table in tables {
            merge(&mut data, table);
        }
        if let Some(level) = &role.update_level {
            data.insert("update_level".into(), level.clone());
        }
        // Secrets override data at the same keys (templates need not know).
        merge(&mut data, self.secrets(role_name, role, certname)?);
        Ok(data)
    }

    /// The node's secrets: `secrets/common.toml`, `secrets/environments/<env>.toml`,
    /// `secrets/roles/<role>.toml`, `secrets/nodes/<certname>.toml`, merged
    /// like data and over it, at the same keys (`[databases.identity_db]
    /// password = …`); a file whose content uses one becomes a secret file.
    /// Secrets files should be private to their owner (a warning says so).
    pub fn secrets(
        &self,
        role_name: &str,
        role: &RoleSpec,
        certname: &str,
    ) -> Result<Table, CompileError> {
        let mut secrets = Table::new();
        for layer in self.secret_layers(role_name, role, certname) {
            if let Ok(meta) = std::fs::metadata(&layer) {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %layer.display(), "secrets file is readable by group or others: chmod 600 it");
                }
            }
            if let Some(table) = self.table(&layer)? {
                merge(&mut secrets, table);
            }
        }
        Ok(secrets)
    }

    /// The secrets files of a node, least specific first.
    fn secret_layers(&self, role_name: &str, role: &RoleSpec, certname: &str) -> Vec<PathBuf> {
        let dir = self.dir.join("secrets");
        let mut layers = vec![dir.join("common.toml")];
        if let Some(env) = role.environment.as_deref().filter(|e| is_safe_name(e)) {
            layers.push(dir.join("environments").join(format!("{env}.toml")));
        }
        layers.push(dir.join("roles").join(format!("{role_name}.toml")));
        if is_safe_name(certname) {
            layers.push(dir.join("nodes").join(format!("{certname}.toml")));
        }
        layers
    }

    /// The secrets files that set a dotted key, most specific first, with
    /// their values (for `lookup`, which shows where, never what).
    pub fn explain_secrets(
        &self,
        role_name: &str,
        role: &RoleSpec,
        certname: &str,
        key: &str,
    ) -> Result<Vec<(PathBuf, toml::Value)>, CompileError> {
        setting(self.secret_layers(role_name, role, certname), key)
    }

    /// Where a dotted key's value comes from: the files that set it, most
    /// specific first (the first one wins, unless the values are tables,
    /// which merge).
    pub fn explain(
        &self,
        module: &Module,
        role_name: &str,
        role: &RoleSpec,
        certname: &str,
        key: &str,
    ) -> Result<Vec<(PathBuf, toml::Value)>, CompileError> {
        setting(self.layers(module, role_name, role, certname), key)
    }
}

/// The layers (least specific first) that set `key`, most specific first,
/// with their values; a layer's `[role]` table is not data.
fn setting(layers: Vec<PathBuf>, key: &str) -> Result<Vec<(PathBuf, toml::Value)>, CompileError> {
    let mut found = Vec::new();
    for layer in layers.into_iter().rev() {
        if let Some(mut table) = read_table(&layer)? {
            table.remove("role");
            if let Some(value) = lookup(&table, key) {
                found.push((layer, value.clone()));
            }
        }
    }
    Ok(found)
}

/// Reads a TOML file as a table; a missing file is `None`.
pub fn read_table(path: &Path) -> Result<Option<Table>, CompileError> {
    read_text(path)?
        .map(|text| parse_table(path, &text))
        .transpose()
}

/// Reads a file's text; a missing file is `None`.
pub(super) fn read_text(path: &Path) -> Result<Option<String>, CompileError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CompileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses the text of the TOML file at `path`.
pub(super) fn parse_table(path: &Path, text: &str) -> Result<Table, CompileError> {
    text.parse::<Table>().map_err(|e| CompileError::Toml {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// The value at a dotted key (`databases.identity_db.url`).
pub fn lookup<'t>(table: &'t Table, key: &str) -> Option<&'t toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Deep-merges `over` onto `base`: tables merge key by key, anything else
/// in `over` replaces what `base` had.
pub fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Names used as file names must not climb out of the site.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_and_specific_wins() {
        let mut base: Table = toml::from_str("a = 1\n[db]\nurl = 'x'\nuser = 'u'\n").unwrap();
        let over: Table = toml::from_str("b = 2\n[db]\nurl = 'y'\n").unwrap();
        merge(&mut base, over);
        let expected: Table =
            toml::from_str("a = 1\nb = 2\n[db]\nurl = 'y'\nuser = 'u'\n").unwrap();
        assert_eq!(base, expected);
    }

    #[test]
    fn role_names_cannot_climb_out_of_the_site() {
        for bad in ["../etc/passwd", "", ".hidden", "a/b"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name("apim_gateway-2.x"));
    }
}
