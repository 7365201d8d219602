//! Configuration as edits over the product's own files. A module declares,
//! for a file the product ships, the edits to make (`edits = "NAME"`, a
//! template under `templates/` that renders to a TOML list of `[[edit]]`
//! tables); the compiler applies them to the file exactly as it is in the
//! imported pack at the node's update level. Everything an edit does not
//! touch stays byte for byte as the product shipped it, comments included,
//! so an update level's changes to the file reach the node with the edits
//! on top.
//!
//! Operations (one per `[[edit]]` table):
//! - `set = PATH`, `value = …`: an XML element's text or attribute
//!   (`/Server/Ports/Offset`, `/axisconfig/clustering/@enable`), a TOML key
//!   (`server.hostname`, tables created as needed), a properties key;
//! - `replace = PATH`, `with = "<xml/>"`: an XML element and its subtree;
//! - `insert = PATH`, `xml = "<xml/>"` (`before`/`after` = a child step):
//!   new XML elements inside the element at PATH, last by default;
//! - `remove = PATH`: an XML element or attribute, a TOML key or table, a
//!   properties key;
//! - `append = PATH`, `value = …`: a new item at the end of a YAML sequence;
//! - `merge = { … }`: a table deep-merged into a TOML or YAML document
//!   (tables key by key, other values replaced) or into properties (dotted
//!   keys).
//!
//! An edit whose target is missing (an element an update level renamed or
//! removed, a key a `remove` names) is an error naming the edit: it is
//! never skipped. `all = true` lets an XML edit change every match; without
//! it a path that matches several elements is an error.

mod json_doc;
mod properties;
mod toml_doc;
mod xml;
mod yaml_doc;

use std::fmt;

/// The formats edits apply to, by the edited file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditFormat {
    /// XML (`carbon.xml`, `axis2.xml`, …): splices into the text.
    Xml,
    /// TOML (`deployment.toml`): toml_edit, comments and order kept.
    Toml,
    /// Java properties: line by line, comments kept.
    Properties,
    /// YAML (`deployment.yaml`): yaml-edit, comments and layout kept.
    Yaml,
    /// JSON (`site.json`): jsonc-parser's syntax tree, layout kept.
    Json,
}

impl EditFormat {
    /// The format of the edited file by its name.
    pub fn of(path: &str) -> Option<Self> {
        let extension = path.rsplit_once('.').map(|(_, e)| e)?;
        Some(match extension {
            "xml" => Self::Xml,
            "toml" => Self::Toml,
            "properties" => Self::Properties,
            "yaml" | "yml" => Self::Yaml,
            "json" => Self::Json,
            _ => return None,
        })
    }
}

/// One edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Set an element's text or attribute, or a key's value.
    Set {
        /// Where.
        path: String,
        /// The value (XML and properties take its text).
        value: toml::Value,
        /// XML: create the element (in its parent, at this position) when
        /// the product's file has none (`create = true`, with `before` or
        /// `after` a sibling step).
        create: Option<Position>,
    },
    /// Replace an XML element and its subtree.
    Replace {
        /// The element.
        path: String,
        /// The XML that takes its place.
        with: String,
    },
    /// Insert XML elements into the element at `path`.
    Insert {
        /// The parent element.
        path: String,
        /// The elements.
        xml: String,
        /// Where among the parent's children.
        position: Position,
    },
    /// Append a value to a sequence (YAML) or an array (TOML).
    Append {
        /// The sequence.
        path: String,
        /// The new item.
        value: toml::Value,
    },
    /// Remove an element, attribute, key or table.
    Remove {
        /// What.
        path: String,
    },
    /// Deep-merge a table (TOML, properties).
    Merge {
        /// The table.
        table: toml::Table,
    },
}

/// Where an insert goes among the parent's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// After the last child.
    Last,
    /// Before the child matching this step (`Parameter[@name='x']`).
    Before(String),
    /// After the child matching this step.
    After(String),
}

/// An edit with its options, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// The operation.
    pub edit: Edit,
    /// Change every match of the path (XML), not exactly one.
    pub all: bool,
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Set { path, .. } => write!(f, "set {path}"),
            Self::Replace { path, .. } => write!(f, "replace {path}"),
            Self::Insert { path, .. } => write!(f, "insert into {path}"),
            Self::Remove { path } => write!(f, "remove {path}"),
            Self::Append { path, .. } => write!(f, "append to {path}"),
            Self::Merge { table } => {
                let keys: Vec<&str> = table.keys().map(String::as_str).collect();
                write!(f, "merge {}", keys.join(", "))
            }
        }
    }
}

/// Why an edit could not be applied: which edit (1-based, as declared)
/// and what it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edit {number} ({edit}): {message}")]
pub struct EditError {
    /// The edit's number in the edits file.
    pub number: usize,
    /// The edit, described (`set /Server/HostName`).
    pub edit: String,
    /// What went wrong.
    pub message: String,
}

/// Parses a rendered edits file: `[[edit]]` tables, one operation each.
pub fn parse(text: &str) -> Result<Vec<Declared>, String> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let edits = match table.remove("edit") {
        Some(toml::Value::Array(items)) => items,
        Some(_) => return Err("`edit` must be an array of tables ([[edit]])".into()),
        None => Vec::new(),
    };
    if let Some(unknown) = table.keys().next() {
        return Err(format!(
            "unknown top-level key {unknown:?}: an edits file holds only [[edit]] tables"
        ));
    }
    edits
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            toml::Value::Table(t) => declared(t).map_err(|e| format!("edit {}: {e}", i + 1)),
            _ => Err(format!("edit {}: must be a table", i + 1)),
        })
        .collect()
}

fn declared(mut t: toml::Table) -> Result<Declared, String> {
    let all = match t.remove("all") {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => return Err("`all` must be true or false".into()),
    };
    let text = |t: &mut toml::Table, key: &str| -> Result<Option<String>, String> {
        match t.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!(
                "`{key}` must be a string, not {}",
                other.type_str()
            )),
        }
    };
    let ops: Vec<&str> = ["set", "replace", "insert", "remove", "merge", "append"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    let edit = match ops.as_slice() {
        ["set"] => {
            let path = text(&mut t, "set")?.unwrap_or_default();
            let value = t.remove("value").ok_or("`set` needs a `value`")?;
            let create = match t.remove("create") {
                None | Some(toml::Value::Boolean(false)) => None,
                Some(toml::Value::Boolean(true)) => Some(position(&mut t, text)?),
                Some(_) => return Err("`create` must be true or false".into()),
            };
            Edit::Set {
                path,
                value,
                create,
            }
        }
        ["replace"] => Edit::Replace {
            path: text(&mut t, "replace")?.unwrap_or_default(),
            with: text(&mut t, "with")?.ok_or("`replace` needs `with` (the new XML)")?,
        },
        ["insert"] => {
            let path = text(&mut t, "insert")?.unwrap_or_default();
            let xml = text(&mut t, "xml")?.ok_or("`insert` needs `xml`")?;
            let position = position(&mut t, text)?;
            Edit::Insert {
                path,
                xml,
                position,
            }
        }
        ["remove"] => Edit::Remove {
            path: text(&mut t, "remove")?.unwrap_or_default(),
        },
        ["append"] => Edit::Append {
            path: text(&mut t, "append")?.unwrap_or_default(),
            value: t.remove("value").ok_or("`append` needs a `value`")?,
        },
        ["merge"] => match t.remove("merge") {
            Some(toml::Value::Table(table)) => Edit::Merge { table },
            _ => return Err("`merge` must be a table".into()),
        },
        [] => {
            return Err("names no operation: one of set, replace, insert, remove or merge".into());
        }
        several => return Err(format!("names several operations: {}", several.join(", "))),
    };
    if let Some(unknown) = t.keys().next() {
        return Err(format!("unknown key {unknown:?} for `{edit}`"));
    }
    Ok(Declared { edit, all })
}

/// `before = STEP` or `after = STEP` (neither: last).
fn position(
    t: &mut toml::Table,
    text: impl Fn(&mut toml::Table, &str) -> Result<Option<String>, String>,
) -> Result<Position, String> {
    Ok(match (text(t, "before")?, text(t, "after")?) {
        (None, None) => Position::Last,
        (Some(b), None) => Position::Before(b),
        (None, Some(a)) => Position::After(a),
        (Some(_), Some(_)) => return Err("`before` and `after` exclude each other".into()),
    })
}

/// Applies `edits` in order to `text`, a file of `format`.
pub fn apply(format: EditFormat, text: &str, edits: &[Declared]) -> Result<String, EditError> {
    match format {
        EditFormat::Xml => xml::apply(text, edits),
        EditFormat::Toml => toml_doc::apply(text, edits),
        EditFormat::Properties => properties::apply(text, edits),
        EditFormat::Yaml => yaml_doc::apply(text, edits),
        EditFormat::Json => json_doc::apply(text, edits),
    }
}

pub use xml::{element_paths as xml_element_paths, values as xml_values};

/// A dotted key path (`a.b`, `"key.with.dots".c`) as its keys.
pub fn dotted_keys(path: &str) -> Result<Vec<String>, String> {
    let (mut keys, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in path.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => keys.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    keys.push(current);
    if quoted || keys.iter().any(String::is_empty) {
        return Err(format!("{path:?} is not a dotted key path"));
    }
    Ok(keys)
}

/// Escapes text for XML content or a double- or single-quoted attribute.
pub fn escape_xml(text: &str) -> String {
    xml::escape(text, Some('"')).replace('\'', "&apos;")
}

/// An [`EditError`] for edit `index` (0-based).
fn error(index: usize, edit: &Edit, message: impl Into<String>) -> EditError {
    EditError {
        number: index + 1,
        edit: edit.to_string(),
        message: message.into(),
    }
}

/// A value as the text XML and properties take.
fn scalar_text(value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => {
            return Err(format!(
                "the value must be a string, number or boolean, not {}",
                other.type_str()
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_files_parse_with_one_operation_per_table() {
        let edits = parse(
            "[[edit]]\nset = \"/Server/HostName\"\nvalue = \"is.example.com\"\n\n[[edit]]\nremove = \"/Server/Foo\"\nall = true\n\n[[edit]]\ninsert = \"/a\"\nxml = \"<b/>\"\nafter = \"c\"\n[[edit]]\n[edit.merge.server]\nhostname = \"x\"\n",
        )
        .unwrap();
        assert_eq!(edits.len(), 4);
        assert_eq!(edits[0].edit.to_string(), "set /Server/HostName");
        assert!(edits[1].all);
        assert!(matches!(
            &edits[2].edit,
            Edit::Insert { position: Position::After(c), .. } if c == "c"
        ));
        assert_eq!(edits[3].edit.to_string(), "merge server");
    }

    #[test]
    fn a_misspelt_edit_is_an_error_naming_it() {
        let err = parse("[[edit]]\nset = \"/a\"\nvalu = \"x\"\n").unwrap_err();
        assert!(err.contains("edit 1") && err.contains("value"), "{err}");
        let err = parse("[[edit]]\nset = \"/a\"\nvalue = \"x\"\nwhit = 1\n").unwrap_err();
        assert!(err.contains("\"whit\""), "{err}");
        let err = parse("[[edit]]\nset = \"/a\"\nremove = \"/b\"\nvalue = 1\n").unwrap_err();
        assert!(err.contains("several"), "{err}");
        let err = parse("[[edits]]\nset = \"/a\"\n").unwrap_err();
        assert!(err.contains("\"edits\""), "{err}");
    }

    #[test]
    fn formats_come_from_the_file_name() {
        assert_eq!(
            EditFormat::of("repository/conf/carbon.xml"),
            Some(EditFormat::Xml)
        );
        assert_eq!(
            EditFormat::of("conf/deployment.toml"),
            Some(EditFormat::Toml)
        );
        assert_eq!(
            EditFormat::of("repository/conf/identity/identity-event.properties"),
            Some(EditFormat::Properties)
        );
        assert_eq!(EditFormat::of("bin/wso2server.sh"), None);
    }
}
