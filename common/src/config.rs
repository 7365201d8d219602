//! Configuration files: TOML, unknown fields refused, every problem
//! reported at once.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Configuration that cannot be used; lists every problem found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", problems.join("\n  "))]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl ConfigError {
    /// `value` when `problems` is empty, else an error listing them.
    pub fn check<T>(problems: Vec<String>, value: T) -> Result<T, Self> {
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(Self { problems })
        }
    }

    /// An error with one problem.
    pub fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

/// Reads a TOML configuration file. A missing file is the default value
/// unless `required` (the operator named it).
pub fn load_file<T: DeserializeOwned + Default>(
    path: &Path,
    required: bool,
) -> Result<T, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(T::default()),
        Err(e) => {
            return Err(ConfigError::one(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    toml::from_str(&text)
        .map_err(|e| ConfigError::one(format!("{}: {}", path.display(), e.to_string().trim_end())))
}

/// The names of the settings whose pair says they differ, in order: what
/// a reload reports as waiting for a restart.
pub fn differing(settings: &[(&'static str, bool)]) -> Vec<&'static str> {
    settings
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

/// An optional listen address setting: `None` when unset or empty; a
/// value that is not an address is a problem naming `key` (and `example`).
pub fn optional_address(
    key: &str,
    text: Option<String>,
    example: &str,
    problems: &mut Vec<String>,
) -> Option<std::net::SocketAddr> {
    let text = text.filter(|t| !t.is_empty())?;
    text.parse()
        .map_err(|_| {
            problems.push(format!(
                "{key}: {text:?} is not an address such as {example}"
            ))
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_address_is_unset_parsed_or_a_named_problem() {
        let mut problems = Vec::new();
        assert_eq!(optional_address("k", None, "x", &mut problems), None);
        assert_eq!(
            optional_address("k", Some(String::new()), "x", &mut problems),
            None
        );
        assert_eq!(
            optional_address("k", Some("127.0.0.1:9".into()), "x", &mut problems),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert!(problems.is_empty());
        assert_eq!(
            optional_address(
                "metrics_listen",
                Some("localhost".into()),
                "127.0.0.1:9140",
                &mut problems
            ),
            None
        );
        assert_eq!(
            problems,
            ["metrics_listen: \"localhost\" is not an address such as 127.0.0.1:9140"]
        );
    }
}
