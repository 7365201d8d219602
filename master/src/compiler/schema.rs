//! The shape of site data. A module's default data (with its libraries')
//! is the schema: a key a site file sets that the defaults do not define is
//! a typo (`[databses.shared_db]` would otherwise leave the node on the
//! module's H2 database without a word), and a value of another type than
//! the default's is a mistake. Open maps (`[module] open_maps`, such as
//! `databases`) take entries of any name, each checked field by field
//! against the module's own entries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::Table;
use toml::de::{DeTable, DeValue};

/// Keys whose value may be a string or a whole number: `update_level` is
/// `"latest"` or a level, `rollout.min_ready` `"auto"` or a node count.
const STRING_OR_INTEGER: &[&str] = &["update_level", "rollout.min_ready", "rollout.canary"];

/// One problem in one site file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProblem {
    /// The site file.
    pub file: PathBuf,
    /// The line of the key (1-based).
    pub line: usize,
    /// The dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for DataProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.key,
            self.message
        )
    }
}

/// What site data may set for one profile.
pub struct Schema<'a> {
    defaults: &'a Table,
    open_maps: &'a BTreeSet<String>,
}

impl<'a> Schema<'a> {
    /// The schema of `defaults` (the merged default layers) with the
    /// module's open maps.
    pub fn new(defaults: &'a Table, open_maps: &'a BTreeSet<String>) -> Self {
        Self {
            defaults,
            open_maps,
        }
    }

    /// Checks one site file (missing files and files that do not parse are
    /// someone else's report); a `[role]` table is not data.
    pub fn check_file(&self, path: &Path) -> Vec<DataProblem> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.check_text(path, &text),
            Err(_) => Vec::new(),
        }
    }

    /// Checks the text of the site file at `path`.
    pub fn check_text(&self, path: &Path, text: &str) -> Vec<DataProblem> {
        let Ok(parsed) = DeTable::parse(text) else {
            return Vec::new();
        };
        let mut check = Check {
            file: path,
            text,
            open_maps: self.open_maps,
            problems: Vec::new(),
        };
        check.table("", Some(self.defaults), parsed.get_ref());
        check.problems.sort_by_key(|p| p.line);
        check.problems
    }
}

struct Check<'t> {
    file: &'t Path,
    text: &'t str,
    open_maps: &'t BTreeSet<String>,
    problems: Vec<DataProblem>,
}

impl Check<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn problem(&mut self, offset: usize, key: String, message: String) {
        let line = self.line(offset);
        self.problems.push(DataProblem {
            file: self.file.to_path_buf(),
            line,
            key,
            message,
        });
    }

    /// Checks `site` against `schema` (`None`: anything goes).
    fn table(&mut self, prefix: &str, schema: Option<&Table>, site: &DeTable<'_>) {
        let Some(schema) = schema else {
            return;
        };
        for (key, value) in site {
            let name: &str = key.get_ref();
            if prefix.is_empty() && name == "role" {
                continue;
            }
            let full = join(prefix, name);
            let offset = key.span().start;
            let Some(expected) = schema.get(name) else {
                let message = match nearest(name, schema.keys()) {
                    Some(known) => format!("unknown key (did you mean `{}`?)", join(prefix, known)),
                    None => "unknown key: the module's defaults do not define it".to_string(),
                };
                self.problem(offset, full, message);
                continue;
            };
            if self.open_maps.contains(&full) {
                self.open_map(&full, expected, value.get_ref(), offset);
            } else {
                self.value(&full, expected, value.get_ref(), offset);
            }
        }
    }

    fn value(&mut self, full: &str, expected: &toml::Value, site: &DeValue<'_>, offset: usize) {
        match (expected, site) {
            (toml::Value::Table(schema), DeValue::Table(site)) => {
                self.table(full, Some(schema), site);
            }
            _ if same_type(full, expected, site) => {}
            _ => self.problem(
                offset,
                full.to_string(),
                format!(
                    "expected {}, found {}",
                    type_name(expected),
                    de_type_name(site)
                ),
            ),
        }
    }

    /// An open map: any entry name, each entry shaped like the defaults'.
    fn open_map(&mut self, full: &str, expected: &toml::Value, site: &DeValue<'_>, offset: usize) {
        let (toml::Value::Table(defaults), DeValue::Table(site)) = (expected, site) else {
            return self.value(full, expected, site, offset);
        };
        let entry = entry_schema(defaults);
        for (key, value) in site {
            let entry_key = join(full, key.get_ref());
            if let Some(entry) = &entry {
                self.value(&entry_key, entry, value.get_ref(), key.span().start);
            }
        }
    }
}

/// What every entry of an open map looks like: the union of the default
/// entries' fields (for tables), or the default entries' type.
fn entry_schema(defaults: &Table) -> Option<toml::Value> {
    let mut entries = defaults.values();
    let first = entries.next()?.clone();
    match first {
        toml::Value::Table(mut union) => {
            for entry in entries {
                if let toml::Value::Table(fields) = entry {
                    super::data::merge(&mut union, fields.clone());
                }
            }
            Some(toml::Value::Table(union))
        }
        scalar => Some(scalar),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The known key closest to `name`, if it is close enough to be a typo.
fn nearest<'k>(name: &str, known: impl Iterator<Item = &'k String>) -> Option<&'k str> {
    known
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(distance, k)| *distance <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.as_str())
}

fn same_type(key: &str, expected: &toml::Value, site: &DeValue<'_>) -> bool {
    match (expected, site) {
        (toml::Value::String(_), DeValue::String(_))
        | (toml::Value::Integer(_), DeValue::Integer(_))
        | (toml::Value::Float(_), DeValue::Float(_) | DeValue::Integer(_))
        | (toml::Value::Boolean(_), DeValue::Boolean(_))
        | (toml::Value::Datetime(_), DeValue::Datetime(_))
        | (toml::Value::Array(_), DeValue::Array(_)) => true,
        (
            toml::Value::String(_) | toml::Value::Integer(_),
            DeValue::String(_) | DeValue::Integer(_),
        ) => STRING_OR_INTEGER.contains(&key),
        _ => false,
    }
}

fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn de_type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = r#"
update_level = "latest"
[server]
hostname = "localhost"
ports_offset = 0
[databases.identity_db]
url = "jdbc:h2:x"
password = "wso2carbon"
[databases.shared_db]
url = "jdbc:h2:y"
pool_size = 10
[shared_fs.dirs]
"repository/deployment" = "Deployment"
"#;

    fn check(site: &str) -> Vec<String> {
        let defaults: Table = toml::from_str(DEFAULTS).unwrap();
        let open: BTreeSet<String> = ["databases", "shared_fs.dirs"].map(String::from).into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("common.toml");
        std::fs::write(&path, site).unwrap();
        Schema::new(&defaults, &open)
            .check_file(&path)
            .iter()
            .map(|p| p.to_string().replace(&format!("{}:", path.display()), ""))
            .collect()
    }

    #[test]
    fn a_typo_names_the_line_and_the_nearest_key() {
        let problems = check(
            "[server]\nhostname = \"is\"\n\n[databses.shared_db]\nurl = \"jdbc:mysql://db\"\n",
        );
        assert_eq!(
            problems,
            ["4: databses: unknown key (did you mean `databases`?)"]
        );
        assert_eq!(
            check("[server]\nhostnme = \"is\"\n"),
            ["2: server.hostnme: unknown key (did you mean `server.hostname`?)"]
        );
        assert_eq!(
            check("colour = 1\n"),
            ["1: colour: unknown key: the module's defaults do not define it"]
        );
    }

    #[test]
    fn types_are_checked() {
        assert_eq!(
            check("[server]\nports_offset = \"10\"\n"),
            ["2: server.ports_offset: expected a whole number, found a string"]
        );
        assert_eq!(
            check("server = \"x\"\n"),
            ["1: server: expected a table, found a string"]
        );
        assert!(check("update_level = 3\n").is_empty());
        assert!(check("update_level = \"latest\"\n").is_empty());
    }

    #[test]
    fn open_map_entries_take_any_name_and_are_checked_field_by_field() {
        assert!(check("[databases.reg_db]\nurl = \"jdbc:mysql://db\"\npool_size = 5\n").is_empty());
        assert_eq!(
            check("[databases.reg_db]\nulr = \"jdbc:mysql://db\"\n"),
            ["2: databases.reg_db.ulr: unknown key (did you mean `databases.reg_db.url`?)"]
        );
        assert_eq!(
            check("[databases.reg_db]\npool_size = \"5\"\n"),
            ["2: databases.reg_db.pool_size: expected a whole number, found a string"]
        );
        assert!(check("[shared_fs.dirs]\n\"repository/tenants\" = \"Tenants\"\n").is_empty());
        assert_eq!(
            check("[shared_fs.dirs]\n\"repository/tenants\" = 1\n"),
            ["2: shared_fs.dirs.repository/tenants: expected a string, found a whole number"]
        );
    }

    #[test]
    fn the_role_table_is_not_data() {
        assert!(check("[role]\nmodule = \"wso2is\"\n").is_empty());
    }
}
