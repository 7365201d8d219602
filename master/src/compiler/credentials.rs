//! Credentials come from the site's `secrets/`, never silently from a
//! module's defaults: with the identity database's password missing from
//! `secrets/`, a node would otherwise run with `wso2carbon`. The password
//! of a database that is not embedded (its URL is not `jdbc:h2:`) must be
//! a secret wherever the node is; the admin password and every other
//! default credential the node's configuration uses (keystore passwords, …)
//! must be, unless the node's environment says `[environment] development
//! = true`.

use std::collections::BTreeMap;

use serde_json::Value;
use toml::Table;

/// A credential whose value comes from the module's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultCredential {
    /// Its dotted key (`databases.identity_db.password`).
    pub key: String,
    /// Why it must come from secrets even where the node does not use it.
    pub external_database: bool,
}

/// Whether a key names a credential: `password` or `…_password`.
fn is_credential(name: &str) -> bool {
    name == "password" || name.ends_with("_password")
}

/// Every credential in `data` that `secrets` does not set.
pub fn defaulted(data: &Table, secrets: &Table) -> Vec<DefaultCredential> {
    let mut found = Vec::new();
    walk("", data, Some(secrets), &mut found);
    found
}

fn walk(prefix: &str, data: &Table, secrets: Option<&Table>, found: &mut Vec<DefaultCredential>) {
    let external_database = data
        .get("url")
        .and_then(toml::Value::as_str)
        .is_some_and(|url| url.starts_with("jdbc:") && !url.starts_with("jdbc:h2:"));
    for (key, value) in data {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let secret = secrets.and_then(|s| s.get(key));
        match value {
            toml::Value::Table(inner) => {
                walk(&full, inner, secret.and_then(toml::Value::as_table), found)
            }
            toml::Value::String(_) if is_credential(key) && secret.is_none() => {
                found.push(DefaultCredential {
                    key: full,
                    external_database,
                });
            }
            _ => {}
        }
    }
}

/// A copy of the render context with each credential replaced by a marker
/// of its own, and the markers by credential key: a rendering under it
/// shows which credentials the node's configuration uses.
pub fn marked_context(
    context: &Value,
    credentials: &[DefaultCredential],
) -> (Value, BTreeMap<String, String>) {
    let mut marked = context.clone();
    let mut markers = BTreeMap::new();
    for (n, credential) in credentials.iter().enumerate() {
        let marker = format!("rigger-default-credential-{n}-marker");
        let pointer: String = credential
            .key
            .split('.')
            .map(|part| format!("/{}", part.replace('~', "~0").replace('/', "~1")))
            .collect();
        if let Some(target) = marked.pointer_mut(&pointer).filter(|t| t.is_string()) {
            *target = Value::String(marker.clone());
            markers.insert(marker, credential.key.clone());
        }
    }
    (marked, markers)
}

/// Whether a defaulted credential's use by the node's configuration can
/// change [`problems`]: an external database's password is a problem
/// whether used or not, and in development only the admin password is.
pub fn use_matters(credential: &DefaultCredential, development: bool) -> bool {
    !credential.external_database && (!development || credential.key == ADMIN_PASSWORD)
}

/// The admin password's key: a problem when used, even in development.
const ADMIN_PASSWORD: &str = "super_admin.password";

/// The problems: each credential that must come from secrets and does not,
/// with the file to add it to. `used` holds the keys the configuration uses.
pub fn problems(
    credentials: &[DefaultCredential],
    used: &[String],
    development: bool,
    role: &str,
) -> Vec<String> {
    let file = format!("secrets/roles/{role}.toml");
    credentials
        .iter()
        .filter_map(|c| {
            let is_used = used.contains(&c.key);
            let why = if c.external_database {
                "the password of a database that is not embedded"
            } else if !is_used {
                return None;
            } else if c.key == ADMIN_PASSWORD {
                "the admin password"
            } else if development {
                return None;
            } else {
                "a credential (outside an environment with `[environment] development = true`)"
            };
            let (table, field) = c.key.rsplit_once('.').unwrap_or(("", &c.key));
            let header = if table.is_empty() {
                String::new()
            } else {
                format!("[{table}] ")
            };
            Some(format!(
                "{}: {why} comes from the module's defaults; set it in the site's {file} (or another secrets/ file): {header}{field} = \"…\"",
                c.key
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = r#"
[super_admin]
username = "admin"
password = "admin"
[keystore]
password = "wso2carbon"
key_password = "wso2carbon"
[databases.identity_db]
url = "jdbc:mysql://db/IDENTITY"
password = "wso2carbon"
[databases.local_db]
url = "jdbc:h2:./repository/database/LOCAL"
password = "wso2carbon"
"#;

    fn defaults_with(secrets: &str) -> Vec<DefaultCredential> {
        defaulted(
            &toml::from_str(DATA).unwrap(),
            &toml::from_str(secrets).unwrap(),
        )
    }

    #[test]
    fn credentials_secrets_do_not_set_are_found() {
        let found = defaults_with("[databases.identity_db]\npassword = \"s3cret\"\n");
        let keys: Vec<&str> = found.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "databases.local_db.password",
                "keystore.key_password",
                "keystore.password",
                "super_admin.password"
            ]
        );
        assert!(found.iter().all(|c| !c.external_database));
        let external = defaults_with("");
        assert!(
            external
                .iter()
                .any(|c| c.key == "databases.identity_db.password" && c.external_database)
        );
    }

    #[test]
    fn an_external_database_password_is_needed_even_in_development() {
        let found = defaults_with("");
        let problems = problems(&found, &[], true, "is");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("databases.identity_db.password: the password of a database that is not embedded comes from the module's defaults; set it in the site's secrets/roles/is.toml"),
            "{}",
            problems[0]
        );
        assert!(problems[0].ends_with("[databases.identity_db] password = \"…\""));
    }

    #[test]
    fn used_default_credentials_are_refused_outside_development() {
        let found = defaults_with("[databases.identity_db]\npassword = \"s\"\n");
        let used = vec![
            "keystore.password".to_string(),
            "super_admin.password".to_string(),
        ];
        let in_development = problems(&found, &used, true, "is");
        assert_eq!(
            in_development.len(),
            1,
            "the admin password: {in_development:?}"
        );
        let in_production = problems(&found, &used, false, "is");
        assert_eq!(in_production.len(), 2, "{in_production:?}");
        assert!(in_production[0].starts_with("keystore.password: a credential"));
    }

    #[test]
    fn use_matters_only_where_it_changes_the_problems() {
        let found = defaults_with("");
        let mattering = |development| -> Vec<&str> {
            found
                .iter()
                .filter(|c| use_matters(c, development))
                .map(|c| c.key.as_str())
                .collect()
        };
        assert_eq!(mattering(true), ["super_admin.password"]);
        assert_eq!(
            mattering(false),
            [
                "databases.local_db.password",
                "keystore.key_password",
                "keystore.password",
                "super_admin.password"
            ]
        );
        // Whatever is used, the problems are those of a full check.
        for development in [true, false] {
            let used: Vec<String> = found.iter().map(|c| c.key.clone()).collect();
            let relevant: Vec<String> = used
                .iter()
                .filter(|k| {
                    found
                        .iter()
                        .any(|c| &c.key == *k && use_matters(c, development))
                })
                .cloned()
                .collect();
            assert_eq!(
                problems(&found, &used, development, "is"),
                problems(&found, &relevant, development, "is")
            );
        }
    }

    #[test]
    fn markers_stand_in_for_each_credential() {
        let context = serde_json::json!({"keystore": {"password": "wso2carbon"}});
        let found = vec![DefaultCredential {
            key: "keystore.password".into(),
            external_database: false,
        }];
        let (marked, markers) = marked_context(&context, &found);
        let marker = markers.keys().next().unwrap();
        assert_eq!(marked["keystore"]["password"], marker.as_str());
        assert_eq!(markers[marker], "keystore.password");
    }
}
