//! JSON edits (the portals' `site.json`) with jsonc-parser's concrete
//! syntax tree: values are set, merged, appended or removed in the
//! product's own document, whose layout (and any comments) stay. Paths are
//! dotted keys, a key with dots quoted (`"a.b".c`).

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};

use super::{Declared, Edit, EditError, error};

/// Applies every edit in order.
pub fn apply(text: &str, edits: &[Declared]) -> Result<String, EditError> {
    let parse_error = |message: String| EditError {
        number: 0,
        edit: "parse".into(),
        message,
    };
    let root = CstRootNode::parse(text, &ParseOptions::default())
        .map_err(|e| parse_error(format!("the product's file is not valid JSON: {e}")))?;
    let object = root
        .object_value()
        .ok_or_else(|| parse_error("the product's file is not a JSON object".into()))?;
    for (index, declared) in edits.iter().enumerate() {
        apply_one(&object, &declared.edit)
            .map_err(|message| error(index, &declared.edit, message))?;
    }
    let out = root.to_string();
    serde_json::from_str::<serde_json::Value>(&out).map_err(|e| EditError {
        number: edits.len(),
        edit: "the result".into(),
        message: format!("the edited file would not be valid JSON: {e}"),
    })?;
    Ok(out)
}

fn apply_one(root: &CstObject, edit: &Edit) -> Result<(), String> {
    match edit {
        Edit::Set { path, value, .. } => {
            let (parent, key) = parent_of(root, path, true)?;
            match parent.get(&key) {
                Some(prop) => prop.set_value(input(value)),
                None => {
                    parent.append(&key, input(value));
                }
            }
            Ok(())
        }
        Edit::Merge { table } => {
            merge(root, table);
            Ok(())
        }
        Edit::Append { path, value } => {
            let (parent, key) = parent_of(root, path, false)?;
            let array = parent
                .get(&key)
                .and_then(|p| p.value())
                .and_then(|v| v.as_array())
                .ok_or_else(|| format!("no array {path:?} to append to"))?;
            array.append(input(value));
            Ok(())
        }
        Edit::Remove { path } => {
            let (parent, key) = parent_of(root, path, false)?;
            let prop = parent
                .get(&key)
                .ok_or_else(|| format!("no key {path:?} to remove"))?;
            prop.remove();
            Ok(())
        }
        Edit::Replace { .. } | Edit::Insert { .. } => {
            Err("JSON files take set, merge, append and remove".into())
        }
    }
}

/// The object holding the last key of `path`, and that key; missing
/// objects on the way are created when `create`.
fn parent_of(root: &CstObject, path: &str, create: bool) -> Result<(CstObject, String), String> {
    let keys = super::dotted_keys(path)?;
    let (last, parents) = keys.split_last().ok_or("an empty path")?;
    let mut current = root.clone();
    for key in parents {
        current = match current.get(key).and_then(|p| p.value()) {
            Some(value) => value
                .as_object()
                .ok_or_else(|| format!("{path:?}: {key:?} is not an object"))?,
            None if create => current
                .append(key, CstInputValue::Object(Vec::new()))
                .value()
                .and_then(|v| v.as_object())
                .ok_or_else(|| format!("{path:?}: cannot create {key:?}"))?,
            None => return Err(format!("no key {key:?} on the way to {path}")),
        };
    }
    Ok((current, last.clone()))
}

/// Merges `table` into `object`: objects key by key, everything else set.
fn merge(object: &CstObject, table: &toml::Table) {
    for (key, value) in table {
        let existing = object
            .get(key)
            .and_then(|p| p.value())
            .and_then(|v| v.as_object());
        match (value, existing, object.get(key)) {
            (toml::Value::Table(inner), Some(existing), _) => merge(&existing, inner),
            (_, _, Some(prop)) => prop.set_value(input(value)),
            (_, _, None) => {
                object.append(key, input(value));
            }
        }
    }
}

fn input(value: &toml::Value) -> CstInputValue {
    match value {
        toml::Value::String(s) => CstInputValue::String(s.clone()),
        toml::Value::Integer(i) => CstInputValue::Number(i.to_string()),
        toml::Value::Float(f) => CstInputValue::Number(f.to_string()),
        toml::Value::Boolean(b) => CstInputValue::Bool(*b),
        toml::Value::Datetime(d) => CstInputValue::String(d.to_string()),
        toml::Value::Array(items) => CstInputValue::Array(items.iter().map(input).collect()),
        toml::Value::Table(t) => {
            CstInputValue::Object(t.iter().map(|(k, v)| (k.clone(), input(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_edits;
    use super::*;

    const SITE: &str = "{\n    \"proxy\" : {\n        \"proxyHost\" : \"\",\n        \"proxyHTTPSPort\" : \"\",\n        \"proxyContextPath\" : \"\"\n    },\n    \"fido\": {\"appId\": \"https://localhost:9443\"},\n    \"ssoConfiguration\" : {\n        \"enabled\" : \"true\",\n        \"issuer\" : \"dashboard\"\n    }\n}\n";

    #[test]
    fn values_are_set_in_place_and_the_layout_stays() {
        let out = apply(
            SITE,
            &parse_edits("[[edit]]\nset = \"proxy.proxyHost\"\nvalue = \"is.example.com\"\n[[edit]]\n[edit.merge.proxy]\nproxyHTTPSPort = \"443\"\n").unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            SITE.replace("\"proxyHost\" : \"\"", "\"proxyHost\" : \"is.example.com\"")
                .replace("\"proxyHTTPSPort\" : \"\"", "\"proxyHTTPSPort\" : \"443\"")
        );
    }

    #[test]
    fn missing_keys_are_added_and_removals_need_the_key() {
        let out = apply(
            SITE,
            &parse_edits("[[edit]]\nset = \"fido.origins\"\nvalue = [\"https://a\"]\n").unwrap(),
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["fido"]["origins"][0], "https://a");
        let err = apply(
            SITE,
            &parse_edits("[[edit]]\nremove = \"proxy.nope\"\n").unwrap(),
        )
        .unwrap_err();
        assert!(err.message.contains("no key"), "{err}");
    }
}
