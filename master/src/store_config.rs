//! Which metadata store a master uses: `[store]` in `master.toml` (and
//! `--store…` flags, `RIGGER_STORE…` variables). SQLite in the data
//! directory is the default; PostgreSQL is what several masters share.

use std::path::PathBuf;

use serde::Deserialize;

/// `[store]` as written, every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// `sqlite` (default) or `postgres`.
    pub kind: Option<String>,
    /// For `postgres`: `postgres://USER@HOST:PORT/DATABASE`.
    pub url: Option<String>,
    /// For `postgres`: a file holding the password (kept out of the URL
    /// and of this file).
    pub password_file: Option<PathBuf>,
    /// For `postgres`: connections this master keeps (10).
    pub pool_size: Option<u32>,
}

impl StoreFile {
    /// Each field of `self`, else of `file`.
    pub fn over(self, file: Self) -> Self {
        Self {
            kind: self.kind.or(file.kind),
            url: self.url.or(file.url),
            password_file: self.password_file.or(file.password_file),
            pool_size: self.pool_size.or(file.pool_size),
        }
    }
}

/// The resolved store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreSettings {
    /// `master.db` in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL database.
    Postgres {
        /// Its URL.
        url: String,
        /// The file holding its password, if any.
        password_file: Option<PathBuf>,
        /// Connections kept.
        pool_size: u32,
    },
}

/// Connections a master keeps to PostgreSQL unless told otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 10;

impl StoreSettings {
    /// Checks `[store]`, adding what is wrong to `problems` (each naming
    /// the key); the default store stands in for a wrong one.
    pub fn resolve(file: StoreFile, problems: &mut Vec<String>) -> Self {
        let kind = file.kind.as_deref().unwrap_or("sqlite");
        match kind {
            "sqlite" => {
                for (key, set) in [
                    ("url", file.url.is_some()),
                    ("password_file", file.password_file.is_some()),
                    ("pool_size", file.pool_size.is_some()),
                ] {
                    if set {
                        problems.push(format!(
                            "store.{key}: only for kind = \"postgres\" (the store is SQLite in the data directory)"
                        ));
                    }
                }
                Self::Sqlite
            }
            "postgres" => {
                let url = file.url.unwrap_or_default();
                if url.is_empty() {
                    problems.push(
                        "store.url: kind = \"postgres\" needs the database's URL, e.g. postgres://rigger@db.internal:5432/rigger".into(),
                    );
                } else if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    problems.push(format!(
                        "store.url: {:?} is not a postgres:// URL",
                        shown_url(&url)
                    ));
                }
                let pool_size = file.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
                if pool_size == 0 {
                    problems.push("store.pool_size: must be at least 1".into());
                }
                Self::Postgres {
                    url,
                    password_file: file.password_file,
                    pool_size,
                }
            }
            other => {
                problems.push(format!(
                    "store.kind: {other:?} is not \"sqlite\" or \"postgres\""
                ));
                Self::Sqlite
            }
        }
    }

    /// What the logs and screens say about the store (never a password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite => "SQLite (master.db in the data directory)".into(),
            Self::Postgres { url, .. } => format!("PostgreSQL {}", shown_url(url)),
        }
    }
}

/// A URL with any password in it replaced by `***`.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "(a URL that does not parse)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(file: StoreFile) -> (StoreSettings, Vec<String>) {
        let mut problems = Vec::new();
        (StoreSettings::resolve(file, &mut problems), problems)
    }

    #[test]
    fn sqlite_is_the_default_and_takes_no_postgres_settings() {
        assert_eq!(
            resolved(StoreFile::default()),
            (StoreSettings::Sqlite, vec![])
        );
        let (_, problems) = resolved(StoreFile {
            url: Some("postgres://db/rigger".into()),
            ..Default::default()
        });
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("store.url: only for kind"),
            "{problems:?}"
        );
    }

    #[test]
    fn postgres_needs_its_url_and_a_typo_in_the_kind_is_named() {
        let (store, problems) = resolved(StoreFile {
            kind: Some("postgres".into()),
            url: Some("postgres://rigger@db:5432/rigger".into()),
            ..Default::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            store,
            StoreSettings::Postgres {
                url: "postgres://rigger@db:5432/rigger".into(),
                password_file: None,
                pool_size: DEFAULT_POOL_SIZE,
            }
        );
        let (_, problems) = resolved(StoreFile {
            kind: Some("postgres".into()),
            ..Default::default()
        });
        assert!(problems[0].starts_with("store.url: kind"), "{problems:?}");
        let (_, problems) = resolved(StoreFile {
            kind: Some("postgress".into()),
            ..Default::default()
        });
        assert_eq!(
            problems,
            ["store.kind: \"postgress\" is not \"sqlite\" or \"postgres\""]
        );
        let (_, problems) = resolved(StoreFile {
            kind: Some("postgres".into()),
            url: Some("mysql://root:hunter2@db/rigger".into()),
            pool_size: Some(0),
            ..Default::default()
        });
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            !problems[0].contains("hunter2"),
            "a password in an error: {problems:?}"
        );
    }

    #[test]
    fn a_password_never_shows() {
        assert_eq!(
            shown_url("postgres://rigger:s3cret@db:5432/rigger"),
            "postgres://rigger:***@db:5432/rigger"
        );
        assert_eq!(shown_url("postgres://db/rigger"), "postgres://db/rigger");
    }
}
