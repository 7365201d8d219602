//! The fidelity suite: each shipped profile compiled for a realistic site
//! and compared, key by key, with what WSO2's official Puppet module for
//! that product and version sets for the same inputs, and with what the
//! seed documents require. The expectations are data
//! (`tests/fidelity/<name>.toml`), each citing the official template file
//! and line or the seed document and line it comes from.
//!
//! Compiled for node `fidelity-1` (192.0.2.10) with the peers the
//! expectations list, any product level accepted and edits applied to the
//! modules' reference files, and
//! checked that nothing the product does not know is rendered: an XML
//! element whose path the product's own file lacks is a failure unless the
//! expectations list it as added (with its source), and so is a
//! `deployment.toml` table outside the expectations' known tables — WSO2
//! servers silently ignore both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rigger_common::catalog::{CatalogContent, ResourceSpec};
use rigger_master::compiler::{Compiler, NodeContext, Peer, Products, ReferenceFiles, edit};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One expectations file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectations {
    /// What is compared with what (`wso2/puppet-is branch 5.8.x`).
    compared_with: String,
    /// The site's role file (`roles/fidelity.toml`): the inputs.
    role_file: String,
    /// The role's secrets (`secrets/roles/fidelity.toml`).
    #[serde(default)]
    secrets_file: String,
    /// Other roles of the site (name → role file), for peers.
    #[serde(default)]
    other_roles: std::collections::BTreeMap<String, String>,
    /// Live nodes beside the compiled one (`fidelity-1` at 192.0.2.10).
    #[serde(default)]
    peer: Vec<PeerSpec>,
    /// The product and version whose reference files the output is
    /// compared with (`wso2is-5.8.0`).
    reference: String,
    #[serde(default)]
    expect: Vec<Expect>,
    /// Element paths (XML) the product's file lacks that the configuration
    /// adds on purpose, each with its source.
    #[serde(default)]
    added: Vec<Added>,
    /// The top-level and nested tables a `deployment.toml` may hold (the
    /// product's documented configuration catalogue).
    #[serde(default)]
    known_tables: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Product-relative path of the file.
    file: String,
    /// XML path (as edits write them), TOML dotted key, or properties key.
    at: String,
    /// The value (compared as text); several values for a path that
    /// selects several elements.
    value: toml::Value,
    /// `official: <template file>:<line>` or `seed: <document>:<line>`.
    source: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSpec {
    certname: String,
    role: String,
    ip: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Added {
    /// The element path (and everything under it).
    path: String,
    source: String,
}

/// The rendered files of a compiled catalog, by path.
fn files(content: &CatalogContent) -> Vec<(String, String)> {
    content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::File(f) if f.source.is_none() => {
                Some((f.path.clone(), f.content.clone()))
            }
            _ => None,
        })
        .collect()
}

fn text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The values at `at` in a rendered file, by the file's format.
fn values_at(file: &str, content: &str, at: &str) -> Result<Vec<String>, String> {
    if file.ends_with(".xml") {
        return edit::xml_values(content, at);
    }
    if file.ends_with(".toml") {
        let doc: toml::Table = content.parse().map_err(|e| format!("{e}"))?;
        let mut value = toml::Value::Table(doc);
        // Dotted keys; a number indexes an array of tables (`datasource.0.id`).
        for key in edit::dotted_keys(at)? {
            let key = key.as_str();
            value = match (value, key.parse::<usize>()) {
                (toml::Value::Table(mut t), _) => match t.remove(key) {
                    Some(v) => v,
                    None => return Ok(Vec::new()),
                },
                (toml::Value::Array(items), Ok(i)) if i < items.len() => items[i].clone(),
                _ => return Ok(Vec::new()),
            };
        }
        return Ok(match value {
            toml::Value::Array(items) => items.iter().map(text).collect(),
            other => vec![text(&other)],
        });
    }
    if file.ends_with(".yaml") || file.ends_with(".json") {
        let doc: serde_json::Value = if file.ends_with(".json") {
            serde_json::from_str(content).map_err(|e| format!("{e}"))?
        } else {
            serde_saphyr::from_str(content).map_err(|e| format!("{e}"))?
        };
        return Ok(yaml_at(&doc, at)
            .map(|v| match v {
                serde_json::Value::Array(items) => items.iter().map(json_text).collect(),
                other => vec![json_text(other)],
            })
            .unwrap_or_default());
    }
    if file.ends_with(".properties") {
        return Ok(content
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.trim() == at)
            .map(|(_, v)| v.trim().to_string())
            .collect());
    }
    Err(format!("{file}: no reader for this format"))
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A YAML path as edits write it: dotted keys (`"quoted.keys"` whole),
/// a sequence item by `[key='value']` or `[N]`.
fn yaml_at<'a>(doc: &'a serde_json::Value, at: &str) -> Option<&'a serde_json::Value> {
    let mut current = doc;
    for step in edit::dotted_keys(at).ok()? {
        let (key, select) = match step.split_once('[') {
            Some((k, rest)) => (k.to_string(), Some(rest.trim_end_matches(']').to_string())),
            None => (step, None),
        };
        current = current.get(key.as_str())?;
        if let Some(select) = select {
            let items = current.as_array()?;
            current = match select.parse::<usize>() {
                Ok(i) => items.get(i)?,
                Err(_) => {
                    let (k, v) = select.split_once('=')?;
                    let v = v.trim_matches(|c| c == '\'' || c == '"');
                    items
                        .iter()
                        .find(|item| item.get(k).and_then(|x| x.as_str()) == Some(v))?
                }
            };
        }
    }
    Some(current)
}

/// Every mapping key path of a YAML document (sequence items collapse into
/// their sequence: `"wso2.datasources".dataSources.name`).
fn key_paths(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let key = if key.contains('.') {
                    format!("\"{key}\"")
                } else {
                    key.clone()
                };
                let path = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                key_paths(&path, inner, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(prefix, item, out);
            }
        }
        _ => {}
    }
}

/// Every table path of a TOML document (`server`, `database.identity_db`).
fn table_paths(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => {
                out.insert(path.clone());
                table_paths(&path, inner, out);
            }
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                out.insert(path.clone());
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        table_paths(&path, inner, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Compiles the expectations' role and checks it; prints the figures.
fn check(name: &str) {
    let path = repo()
        .join("master/tests/fidelity")
        .join(format!("{name}.toml"));
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expectations: Expectations =
        toml::from_str(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("roles")).unwrap();
    std::fs::create_dir_all(site.path().join("secrets/roles")).unwrap();
    std::fs::write(site.path().join("common.toml"), "").unwrap();
    std::fs::write(
        site.path().join("roles/fidelity.toml"),
        &expectations.role_file,
    )
    .unwrap();
    std::fs::write(
        site.path().join("secrets/roles/fidelity.toml"),
        &expectations.secrets_file,
    )
    .unwrap();
    for (role, file) in &expectations.other_roles {
        std::fs::write(site.path().join(format!("roles/{role}.toml")), file).unwrap();
    }
    let compiler = Compiler::new(vec![repo().join("modules")], site.path().to_path_buf());
    let mut inventory = vec![Peer {
        certname: "fidelity-1".into(),
        role: "fidelity".into(),
        ip: "192.0.2.10".into(),
    }];
    inventory.extend(expectations.peer.iter().map(|p| Peer {
        certname: p.certname.clone(),
        role: p.role.clone(),
        ip: p.ip.clone(),
    }));
    let node = NodeContext {
        certname: "fidelity-1".into(),
        role: "fidelity".into(),
        facts: serde_json::json!({"hostname": "fidelity-1", "ip": "192.0.2.10"}),
        inventory,
    };
    // Edited files start from the modules' reference files (no pack here).
    let products =
        Products::permissive().with_pack_files(std::sync::Arc::new(ReferenceFiles::new(vec![
            repo().join("modules"),
        ])));
    let content = compiler.compile(&node, &products).unwrap_or_else(|e| {
        panic!(
            "{name}: the role does not compile: {}",
            rigger_common::error_chain(&e)
        )
    });
    let rendered = files(&content);
    let find = |file: &str| {
        rendered
            .iter()
            .find(|(p, _)| p.ends_with(&format!("/{file}")))
            .map(|(_, c)| c.as_str())
    };
    let mut failures = Vec::new();
    for added in &expectations.added {
        if !added.source.starts_with("official:") && !added.source.starts_with("seed:") {
            failures.push(format!(
                "added {}: source {:?} must start with official: or seed:",
                added.path, added.source
            ));
        }
    }
    let (mut official, mut seeds) = (0, 0);
    for expect in &expectations.expect {
        match expect.source.split_once(':').map(|(k, _)| k) {
            Some("official") => official += 1,
            Some("seed") => seeds += 1,
            _ => failures.push(format!(
                "{} {}: source {:?} must start with official: or seed:",
                expect.file, expect.at, expect.source
            )),
        }
        let Some(content) = find(&expect.file) else {
            failures.push(format!(
                "{}: not rendered (expected {} = {}, {})",
                expect.file, expect.at, expect.value, expect.source
            ));
            continue;
        };
        let wanted: Vec<String> = match &expect.value {
            toml::Value::Array(items) => items.iter().map(text).collect(),
            other => vec![text(other)],
        };
        match values_at(&expect.file, content, &expect.at) {
            Ok(found) if found == wanted => {}
            Ok(found) => failures.push(format!(
                "{} {}: {found:?}, expected {wanted:?} ({})",
                expect.file, expect.at, expect.source
            )),
            Err(e) => failures.push(format!("{} {}: {e}", expect.file, expect.at)),
        }
    }
    // Nothing the product does not know.
    let reference_root = repo().join("modules");
    let mut checked_files = 0;
    for (path, content) in &rendered {
        let Some(relative) = reference_relative(&reference_root, &expectations.reference, path)
        else {
            continue;
        };
        checked_files += 1;
        let shipped = std::fs::read_to_string(&relative).unwrap();
        if path.ends_with(".xml") {
            let known = edit::xml_element_paths(&shipped).unwrap();
            for element in edit::xml_element_paths(content).unwrap().difference(&known) {
                if !expectations
                    .added
                    .iter()
                    .any(|a| element == &a.path || element.starts_with(&format!("{}/", a.path)))
                {
                    failures.push(format!(
                        "{path}: {element} is not an element of the product's file"
                    ));
                }
            }
        }
        if path.ends_with(".yaml") {
            let shipped: serde_json::Value = serde_saphyr::from_str(&shipped).unwrap();
            let rendered: serde_json::Value = serde_saphyr::from_str(content).unwrap();
            let (mut known, mut found) = (BTreeSet::new(), BTreeSet::new());
            key_paths("", &shipped, &mut known);
            key_paths("", &rendered, &mut found);
            for key in found.difference(&known) {
                let added = expectations
                    .added
                    .iter()
                    .any(|a| key == &a.path || key.starts_with(&format!("{}.", a.path)));
                if !added {
                    failures.push(format!("{path}: {key} is not a key of the product's file"));
                }
            }
        }
        if path.ends_with("deployment.toml") {
            let doc: toml::Table = content.parse().unwrap();
            let mut tables = BTreeSet::new();
            table_paths("", &doc, &mut tables);
            for table in tables {
                let known = expectations.known_tables.iter().any(|k| {
                    k == &table
                        || k.strip_suffix(".*")
                            .is_some_and(|p| table.starts_with(&format!("{p}.")))
                });
                if !known {
                    failures.push(format!(
                        "{path}: [{table}] is not a table the product knows"
                    ));
                }
            }
        }
    }
    println!(
        "fidelity {name} ({}): {} expectations, {official} from the official module, {seeds} from the seeds; {checked_files} files checked for unknown content",
        expectations.compared_with,
        expectations.expect.len()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} problem(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The reference file of `reference` (`wso2is-5.8.0`) for a rendered
/// absolute path, if the modules have one.
fn reference_relative(modules: &Path, reference: &str, rendered: &str) -> Option<PathBuf> {
    let marker = format!("/{}/", reference);
    let (_, relative) = rendered.split_once(&marker)?;
    std::fs::read_dir(modules)
        .ok()?
        .flatten()
        .map(|m| m.path().join("reference").join(reference).join(relative))
        .find(|p| p.is_file())
}

#[test]
fn is_5_8() {
    check("is-5.8");
}

#[test]
fn is_5_11() {
    check("is-5.11");
}

#[test]
fn apim_4_2_all_in_one() {
    check("apim-4.2-all-in-one");
}

#[test]
fn apim_4_2_control_plane() {
    check("apim-4.2-control-plane");
}

#[test]
fn apim_4_2_gateway() {
    check("apim-4.2-gateway");
}

#[test]
fn apim_4_2_traffic_manager() {
    check("apim-4.2-traffic-manager");
}

#[test]
fn mi_4_2_integrator() {
    check("mi-4.2-integrator");
}

#[test]
fn mi_4_2_dashboard() {
    check("mi-4.2-dashboard");
}

#[test]
fn is_analytics_5_8_worker() {
    check("is-analytics-5.8-worker");
}

#[test]
fn is_analytics_5_8_dashboard() {
    check("is-analytics-5.8-dashboard");
}

#[test]
fn ei_analytics_6_6_worker() {
    check("ei-analytics-6.6-worker");
}

#[test]
fn ei_analytics_6_6_dashboard() {
    check("ei-analytics-6.6-dashboard");
}

#[test]
fn apim_analytics_3_2_worker() {
    check("apim-analytics-3.2-worker");
}

#[test]
fn apim_analytics_3_2_dashboard() {
    check("apim-analytics-3.2-dashboard");
}

#[test]
fn ei_6_6() {
    check("ei-6.6");
}
