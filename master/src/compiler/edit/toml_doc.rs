//! TOML edits (`deployment.toml`) with toml_edit: keys are set, merged or
//! removed in the product's own document, whose comments, order and
//! formatting stay. A key that does not exist is created (WSO2's 4.x
//! `deployment.toml` lists only what differs from the defaults), in a new
//! table after the tables it is nested in; `remove` of a missing key is an
//! error.

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Key, Table, Value};

use super::{Declared, Edit, EditError, error};

/// Applies every edit in order.
pub fn apply(text: &str, edits: &[Declared]) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e| EditError {
        number: 0,
        edit: "parse".into(),
        message: format!("the product's file is not valid TOML: {e}"),
    })?;
    for (index, declared) in edits.iter().enumerate() {
        apply_one(doc.as_table_mut(), &declared.edit)
            .map_err(|message| error(index, &declared.edit, message))?;
    }
    Ok(doc.to_string())
}

fn apply_one(root: &mut Table, edit: &Edit) -> Result<(), String> {
    match edit {
        Edit::Set { path, value, .. } => {
            let keys = keys(path)?;
            let (last, parents) = keys.split_last().ok_or("an empty key")?;
            let table = table_at(root, parents, path)?;
            set(table, last.get(), value);
            Ok(())
        }
        Edit::Merge { table } => {
            merge(root, table);
            Ok(())
        }
        Edit::Remove { path } => {
            let keys = keys(path)?;
            let (last, parents) = keys.split_last().ok_or("an empty key")?;
            let mut table: &mut dyn toml_edit::TableLike = root;
            for key in parents {
                table = table
                    .get_mut(key.get())
                    .and_then(Item::as_table_like_mut)
                    .ok_or_else(|| format!("no table {path:?} to remove from"))?;
            }
            table
                .remove(last.get())
                .map(drop)
                .ok_or_else(|| format!("no key {path:?} to remove"))
        }
        Edit::Replace { .. } | Edit::Insert { .. } | Edit::Append { .. } => {
            Err("TOML files take set, merge and remove".into())
        }
    }
}

fn keys(path: &str) -> Result<Vec<Key>, String> {
    Key::parse(path).map_err(|e| format!("{path:?} is not a TOML key path: {e}"))
}

/// The table at `keys` under `root`, created (implicit) where missing.
fn table_at<'t>(root: &'t mut Table, keys: &[Key], path: &str) -> Result<&'t mut Table, String> {
    let mut table = root;
    for key in keys {
        let item = table.entry(key.get()).or_insert_with(|| {
            let mut new = Table::new();
            new.set_implicit(true);
            Item::Table(new)
        });
        table = match item {
            Item::Table(t) => t,
            _ => {
                return Err(format!(
                    "{path:?}: {:?} holds a value, not a table",
                    key.get()
                ));
            }
        };
    }
    Ok(table)
}

/// Sets `key` in `table`, keeping the key's decoration when it exists.
fn set(table: &mut Table, key: &str, value: &toml::Value) {
    let item = item_of(value);
    match table.get_mut(key) {
        Some(existing @ Item::Value(_)) if item.is_value() => {
            let decor = existing.as_value().map(|v| v.decor().clone());
            *existing = item;
            if let (Some(decor), Some(v)) = (decor, existing.as_value_mut()) {
                *v.decor_mut() = decor;
            }
        }
        _ => {
            table.insert(key, item);
        }
    }
}

/// Merges `from` into `into`: tables key by key, everything else replaced.
fn merge(into: &mut Table, from: &toml::Table) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Item::Table(existing)), toml::Value::Table(inner)) => merge(existing, inner),
            _ => set(into, key, value),
        }
    }
}

/// A TOML value as a document item: tables become `[tables]`, arrays of
/// tables `[[tables]]`, the rest values.
fn item_of(value: &toml::Value) -> Item {
    match value {
        toml::Value::Table(table) => {
            let mut new = Table::new();
            new.set_implicit(true);
            merge(&mut new, table);
            Item::Table(new)
        }
        toml::Value::Array(items)
            if !items.is_empty() && items.iter().all(toml::Value::is_table) =>
        {
            let mut array = ArrayOfTables::new();
            for item in items {
                if let Item::Table(t) = item_of(item) {
                    let mut t = t;
                    t.set_implicit(false);
                    array.push(t);
                }
            }
            Item::ArrayOfTables(array)
        }
        other => Item::Value(value_of(other)),
    }
}

/// A TOML value as a document value, written in toml_edit's default form
/// (the form its own text would parse to; converted directly, not through
/// text: this was a fifth of applying a module's edits).
fn value_of(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::from(*b),
        toml::Value::Datetime(d) => Value::from(*d),
        toml::Value::Array(items) => Value::Array(items.iter().map(value_of).collect::<Array>()),
        toml::Value::Table(table) => Value::InlineTable(
            table
                .iter()
                .map(|(key, value)| (key.as_str(), value_of(value)))
                .collect::<InlineTable>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_edits;
    use super::*;

    const DEPLOYMENT: &str = "# WSO2 Identity Server configuration\n[server]\n# the host name\nhostname = \"localhost\"\nnode_ip = \"127.0.0.1\"  # set per node\n\n[super_admin]\nusername = \"admin\"\npassword = \"admin\"\ncreate_admin_account = true\n\n[keystore.primary]\nfile_name = \"wso2carbon.jks\"\npassword = \"wso2carbon\"\n";

    fn edit(text: &str, edits: &str) -> Result<String, EditError> {
        apply(text, &parse_edits(edits).unwrap())
    }

    #[test]
    fn set_keeps_comments_and_order() {
        let out = edit(
            DEPLOYMENT,
            "[[edit]]\nset = \"server.hostname\"\nvalue = \"is.example.com\"\n[[edit]]\nset = \"server.node_ip\"\nvalue = \"10.0.0.5\"\n",
        )
        .unwrap();
        assert_eq!(
            out,
            DEPLOYMENT
                .replace("\"localhost\"", "\"is.example.com\"")
                .replace("\"127.0.0.1\"", "\"10.0.0.5\"")
        );
    }

    #[test]
    fn merge_adds_tables_after_their_parents_and_replaces_values() {
        let out = edit(
            DEPLOYMENT,
            "[[edit]]\n[edit.merge.super_admin]\npassword = \"s3cret\"\n[edit.merge.keystore.internal]\nfile_name = \"internal.jks\"\n[edit.merge.database.identity_db]\ntype = \"mysql\"\n[[edit.merge.event_listener]]\nid = \"token_revocation\"\n[[edit.merge.event_listener]]\nid = \"other\"\n",
        )
        .unwrap();
        let doc: toml::Table = out.parse().unwrap();
        assert_eq!(doc["super_admin"]["password"].as_str(), Some("s3cret"));
        assert_eq!(
            doc["super_admin"]["create_admin_account"].as_bool(),
            Some(true)
        );
        assert_eq!(
            doc["keystore"]["internal"]["file_name"].as_str(),
            Some("internal.jks")
        );
        assert_eq!(
            doc["database"]["identity_db"]["type"].as_str(),
            Some("mysql")
        );
        assert_eq!(doc["event_listener"].as_array().unwrap().len(), 2);
        assert!(out.contains("# the host name\nhostname"), "{out}");
        assert!(out.contains("[keystore.internal]"), "{out}");
        assert!(
            !out.contains("[database]\n"),
            "implicit parents get no header: {out}"
        );
        assert!(out.find("[keystore.primary]").unwrap() < out.find("[keystore.internal]").unwrap());
    }

    #[test]
    fn remove_needs_the_key() {
        let out = edit(
            DEPLOYMENT,
            "[[edit]]\nremove = \"super_admin.create_admin_account\"\n",
        )
        .unwrap();
        assert!(!out.contains("create_admin_account"));
        let err = edit(DEPLOYMENT, "[[edit]]\nremove = \"server.offset\"\n").unwrap_err();
        assert!(err.message.contains("no key \"server.offset\""), "{err}");
        let err = edit(
            DEPLOYMENT,
            "[[edit]]\nset = \"server.hostname.x\"\nvalue = 1\n",
        )
        .unwrap_err();
        assert!(err.message.contains("holds a value"), "{err}");
    }

    #[test]
    fn values_are_written_as_their_text_would_parse() {
        let values: toml::Table = r#"
plain = "is.example.com"
quoted = "say \"hi\" to C:\\path"
single = 'C:\dir\it s'
lines = "one\ntwo\tthree"
unicode = "pässwörd ✓"
control = "bell\u0007"
empty = ""
int = -42
big = 9223372036854775807
float = 1.0
exp = 6.02e23
inf = inf
nan = nan
yes = true
when = 1979-05-27T07:32:00Z
day = 1979-05-27
mixed = [1, "two", 3.5, [true], { a = 1, "b c" = "d" }]
empty_list = []
inline = { "x.y" = 1, nested = { deep = [1, 2] } }
"#
        .parse()
        .unwrap();
        for (key, value) in &values {
            let through_text: Value = value.to_string().parse().unwrap();
            assert_eq!(
                value_of(value).to_string(),
                through_text.to_string(),
                "{key}"
            );
        }
    }
}
