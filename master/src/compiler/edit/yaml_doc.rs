//! YAML edits (the analytics runtimes' `deployment.yaml`) with yaml-edit, a
//! lossless syntax tree: values are set, merged or removed in the product's
//! own document, whose comments, order and layout stay.
//!
//! Paths are keys separated by dots, a key with dots quoted
//! (`"wso2.carbon".id`), and a step into a sequence selects one item by a
//! key's value or by position (`"wso2.datasources".dataSources[name='WSO2_CLUSTER_DB'].definition`,
//! `users[0]`). The result must parse again.

use yaml_edit::{Document, Mapping, YamlNode, YamlValue};

use super::{Declared, Edit, EditError, error};

/// Applies every edit in order.
pub fn apply(text: &str, edits: &[Declared]) -> Result<String, EditError> {
    let parse_error = |message: String| EditError {
        number: 0,
        edit: "parse".into(),
        message,
    };
    let doc: Document = text
        .parse()
        .map_err(|e| parse_error(format!("the product's file is not valid YAML: {e}")))?;
    let root = doc
        .as_mapping()
        .ok_or_else(|| parse_error("the product's file is not a YAML mapping".into()))?;
    for (index, declared) in edits.iter().enumerate() {
        apply_one(&root, &declared.edit)
            .map_err(|message| error(index, &declared.edit, message))?;
    }
    let out = doc.to_string();
    serde_saphyr::from_str::<serde_json::Value>(&out).map_err(|e| EditError {
        number: edits.len(),
        edit: "the result".into(),
        message: format!("the edited file would not be valid YAML: {e}"),
    })?;
    Ok(out)
}

fn apply_one(root: &Mapping, edit: &Edit) -> Result<(), String> {
    match edit {
        Edit::Set { path, value, .. } => {
            let steps = parse_path(path)?;
            let (last, parents) = steps.split_last().ok_or("an empty path")?;
            if last.select.is_some() {
                return Err(format!(
                    "{path}: the last step names a key, not a sequence item"
                ));
            }
            let mapping = navigate(root, parents, path, true)?;
            mapping.set(last.key.as_str(), yaml_value(value));
            Ok(())
        }
        Edit::Merge { table } => {
            merge(root, table);
            Ok(())
        }
        Edit::Remove { path } => {
            let steps = parse_path(path)?;
            let (last, parents) = steps.split_last().ok_or("an empty path")?;
            let mapping = navigate(root, parents, path, false)?;
            mapping
                .remove(last.key.as_str())
                .map(drop)
                .ok_or_else(|| format!("no key {path:?} to remove"))
        }
        Edit::Append { path, value } => {
            let steps = parse_path(path)?;
            let (last, parents) = steps.split_last().ok_or("an empty path")?;
            let mapping = navigate(root, parents, path, false)?;
            let sequence = mapping
                .get_sequence(last.key.as_str())
                .ok_or_else(|| format!("no sequence {path:?} to append to"))?;
            sequence.push(yaml_value(value));
            Ok(())
        }
        Edit::Replace { .. } | Edit::Insert { .. } => {
            Err("YAML files take set, merge, append and remove".into())
        }
    }
}

/// One step: a key, and optionally which item of the sequence under it.
#[derive(Debug, PartialEq)]
struct Step {
    key: String,
    select: Option<Select>,
}

#[derive(Debug, PartialEq)]
enum Select {
    Index(usize),
    Where(String, String),
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("{path:?} is not a YAML path ({why})");
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let (key, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| bad("an unclosed quote"))?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        if key.is_empty() {
            return Err(bad("an empty key"));
        }
        let (select, after) = match after.strip_prefix('[') {
            Some(inner) => {
                let end = inner.find(']').ok_or_else(|| bad("an unclosed ["))?;
                let body = inner[..end].trim();
                let select = match body.parse::<usize>() {
                    Ok(i) => Select::Index(i),
                    Err(_) => {
                        let (k, v) = body
                            .split_once('=')
                            .ok_or_else(|| bad("[key='value'] or [N]"))?;
                        let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
                        Select::Where(k.trim().to_string(), v.to_string())
                    }
                };
                (Some(select), &inner[end + 1..])
            }
            None => (None, after),
        };
        steps.push(Step { key, select });
        rest = match after.strip_prefix('.') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err(bad("a trailing dot")),
            None if after.is_empty() => after,
            None => return Err(bad("a step must end with . or [")),
        };
    }
    if steps.is_empty() {
        return Err(bad("no step"));
    }
    Ok(steps)
}

/// The mapping at `steps` under `root`; missing mappings are created when
/// `create` (for `set`), else an error.
fn navigate(root: &Mapping, steps: &[Step], path: &str, create: bool) -> Result<Mapping, String> {
    let mut current = root.clone();
    for step in steps {
        let node = match current.get(step.key.as_str()) {
            Some(node) => node,
            None if create && step.select.is_none() => {
                current.set(step.key.as_str(), YamlValue::Mapping(Default::default()));
                current
                    .get(step.key.as_str())
                    .ok_or_else(|| format!("{path}: cannot create {:?}", step.key))?
            }
            None => return Err(format!("no key {:?} on the way to {path}", step.key)),
        };
        let node = match &step.select {
            None => node,
            Some(select) => item(&node, select).ok_or_else(|| {
                format!(
                    "no item of {:?} matches {select:?} on the way to {path}",
                    step.key
                )
            })?,
        };
        current = node
            .as_mapping()
            .cloned()
            .ok_or_else(|| format!("{path}: {:?} is not a mapping", step.key))?;
    }
    Ok(current)
}

/// The item of a sequence node a selection picks.
fn item(node: &YamlNode, select: &Select) -> Option<YamlNode> {
    let sequence = node.as_sequence()?;
    match select {
        Select::Index(i) => sequence.get(*i),
        Select::Where(key, value) => sequence.values().find(|item| {
            item.as_mapping()
                .and_then(|m| m.get(key.as_str()))
                .and_then(|v| v.as_scalar().map(|s| s.as_string()))
                .is_some_and(|v| &v == value)
        }),
    }
}

/// Merges `table` into `mapping`: mappings key by key, everything else set.
fn merge(mapping: &Mapping, table: &toml::Table) {
    for (key, value) in table {
        match (value, mapping.get_mapping(key.as_str())) {
            (toml::Value::Table(inner), Some(existing)) => merge(&existing, inner),
            _ => mapping.set(key.as_str(), yaml_value(value)),
        }
    }
}

/// A TOML value as YAML (a new mapping's keys in TOML's order, sorted).
fn yaml_value(value: &toml::Value) -> YamlValue {
    match value {
        toml::Value::String(s) => YamlValue::scalar(s.as_str()),
        toml::Value::Integer(i) => YamlValue::scalar(*i),
        toml::Value::Float(f) => YamlValue::scalar(*f),
        toml::Value::Boolean(b) => YamlValue::scalar(*b),
        toml::Value::Datetime(d) => YamlValue::scalar(d.to_string()),
        toml::Value::Array(items) => YamlValue::Sequence(items.iter().map(yaml_value).collect()),
        toml::Value::Table(t) => {
            YamlValue::Mapping(t.iter().map(|(k, v)| (k.clone(), yaml_value(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_edits;
    use super::*;

    const WORKER: &str = "################################################\n# Carbon configuration\n################################################\nwso2.carbon:\n  # value to identify the server\n  id: wso2-is-analytics\n  type: wso2-is-analytics\n  ports:\n    # port offset\n    offset: 0\n\nwso2.datasources:\n  dataSources:\n    - name: WSO2_CLUSTER_DB\n      description: The datasource used by the cluster coordinator\n      definition:\n        type: RDBMS\n        configuration:\n          jdbcUrl: 'jdbc:h2:${sys:carbon.home}/wso2/worker/database/WSO2_CLUSTER_DB;DB_CLOSE_ON_EXIT=FALSE'\n          username: wso2carbon\n          password: wso2carbon\n    - name: PERSISTENCE_DB\n      definition:\n        type: RDBMS\n        configuration:\n          username: wso2carbon\n\ncluster.config:\n  enabled: false\n";

    fn edit(edits: &str) -> Result<serde_json::Value, EditError> {
        let out = apply(WORKER, &parse_edits(edits).unwrap())?;
        assert!(out.contains("# port offset"), "comments stay: {out}");
        assert!(out.contains("# Carbon configuration"), "{out}");
        Ok(serde_saphyr::from_str(&out).unwrap())
    }

    #[test]
    fn values_are_set_through_dotted_keys_and_sequence_items() {
        let doc = edit("[[edit]]\nset = '\"wso2.carbon\".id'\nvalue = \"is-analytics-1\"\n[[edit]]\nset = '\"wso2.datasources\".dataSources[name=\"WSO2_CLUSTER_DB\"].definition.configuration.jdbcUrl'\nvalue = \"jdbc:mysql://db:3306/CLUSTER?useSSL=true&x=1\"\n[[edit]]\nset = '\"cluster.config\".enabled'\nvalue = true\n").unwrap();
        assert_eq!(doc["wso2.carbon"]["id"], "is-analytics-1");
        assert_eq!(doc["wso2.carbon"]["type"], "wso2-is-analytics");
        assert_eq!(
            doc["wso2.datasources"]["dataSources"][0]["definition"]["configuration"]["jdbcUrl"],
            "jdbc:mysql://db:3306/CLUSTER?useSSL=true&x=1"
        );
        assert_eq!(doc["cluster.config"]["enabled"], true);
    }

    #[test]
    fn merge_keeps_what_it_does_not_name() {
        let doc = edit("[[edit]]\n[edit.merge.\"wso2.carbon\".ports]\noffset = 2\n[edit.merge.\"cluster.config\"]\ngroupId = \"g\"\n[edit.merge.\"cluster.config\".strategyConfig]\nheartbeatInterval = 1000\n").unwrap();
        assert_eq!(doc["wso2.carbon"]["ports"]["offset"], 2);
        assert_eq!(doc["wso2.carbon"]["id"], "wso2-is-analytics");
        assert_eq!(doc["cluster.config"]["enabled"], false);
        assert_eq!(doc["cluster.config"]["groupId"], "g");
        assert_eq!(
            doc["cluster.config"]["strategyConfig"]["heartbeatInterval"],
            1000
        );
    }

    #[test]
    fn items_are_appended_to_sequences() {
        let doc = edit("[[edit]]\nappend = '\"wso2.datasources\".dataSources'\n[edit.value]\nname = \"PERSISTENCE_DB2\"\n[edit.value.definition]\ntype = \"RDBMS\"\n").unwrap();
        let sources = doc["wso2.datasources"]["dataSources"].as_array().unwrap();
        assert_eq!(sources.len(), 3);
        assert_eq!(sources[2]["name"], "PERSISTENCE_DB2");
        assert_eq!(sources[2]["definition"]["type"], "RDBMS");
    }

    #[test]
    fn a_missing_item_or_key_is_an_error() {
        let err = edit("[[edit]]\nset = '\"wso2.datasources\".dataSources[name=\"NOPE\"].definition.type'\nvalue = \"x\"\n").unwrap_err();
        assert!(err.message.contains("no item of \"dataSources\""), "{err}");
        let err = edit("[[edit]]\nremove = '\"wso2.carbon\".nope'\n").unwrap_err();
        assert!(err.message.contains("no key"), "{err}");
        assert!(parse_path("a..b").is_err());
        assert_eq!(
            parse_path("\"a.b\".c[2].d").unwrap()[1],
            Step {
                key: "c".into(),
                select: Some(Select::Index(2))
            }
        );
    }
}
