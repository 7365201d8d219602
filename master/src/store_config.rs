//! Which stores a master uses: `[store]` (metadata) and `[blobs]` (content)
//! in `master.toml`, and their `--store…`/`--blobs…` flags and
//! `RIGGER_STORE…`/`RIGGER_BLOBS…` variables. SQLite and `blobs/` in the
//! data directory are the default; PostgreSQL and S3 are what several
//! masters share.

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

/// `[blobs]` as written, every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobsFile {
    /// `local` (default) or `s3`.
    pub kind: Option<String>,
    /// For `s3`: the bucket.
    pub bucket: Option<String>,
    /// For `s3`: what keys start with (`""`).
    pub prefix: Option<String>,
    /// For `s3`: the bucket's region (`AWS_REGION`, else us-east-1).
    pub region: Option<String>,
    /// For `s3`: an S3-compatible endpoint instead of AWS's.
    pub endpoint: Option<String>,
}

impl BlobsFile {
    /// Each field of `self`, else of `file`.
    pub fn over(self, file: Self) -> Self {
        Self {
            kind: self.kind.or(file.kind),
            bucket: self.bucket.or(file.bucket),
            prefix: self.prefix.or(file.prefix),
            region: self.region.or(file.region),
            endpoint: self.endpoint.or(file.endpoint),
        }
    }
}

/// The resolved content store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobsSettings {
    /// `blobs/` in the data directory.
    #[default]
    Local,
    /// An S3 bucket; credentials come from AWS's chain (the `AWS_…`
    /// variables, then the instance's role), never from this file.
    S3(crate::content::blobs::S3Settings),
}

impl BlobsSettings {
    /// Checks `[blobs]`, adding what is wrong to `problems`.
    pub fn resolve(file: BlobsFile, problems: &mut Vec<String>) -> Self {
        match file.kind.as_deref().unwrap_or("local") {
            "local" => {
                for (key, set) in [
                    ("bucket", file.bucket.is_some()),
                    ("prefix", file.prefix.is_some()),
                    ("region", file.region.is_some()),
                    ("endpoint", file.endpoint.is_some()),
                ] {
                    if set {
                        problems.push(format!(
                            "blobs.{key}: only for kind = \"s3\" (the content is in the data directory's blobs/)"
                        ));
                    }
                }
                Self::Local
            }
            "s3" => {
                let bucket = file.bucket.unwrap_or_default();
                if bucket.is_empty() {
                    problems.push("blobs.bucket: kind = \"s3\" needs the bucket's name".into());
                } else if !valid_bucket(&bucket) {
                    problems.push(format!(
                        "blobs.bucket: {bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, dots and dashes)"
                    ));
                }
                if let Some(endpoint) = &file.endpoint {
                    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                        problems.push(format!(
                            "blobs.endpoint: {:?} is not an http:// or https:// URL",
                            shown_url(endpoint)
                        ));
                    }
                }
                let region = file
                    .region
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".into());
                Self::S3(crate::content::blobs::S3Settings {
                    bucket,
                    prefix: file.prefix.unwrap_or_default(),
                    region,
                    endpoint: file.endpoint,
                    credentials: None,
                })
            }
            other => {
                problems.push(format!("blobs.kind: {other:?} is not \"local\" or \"s3\""));
                Self::Local
            }
        }
    }

    /// What the logs say about the content store.
    pub fn describe(&self) -> String {
        match self {
            Self::Local => "the data directory's blobs/".into(),
            Self::S3(s3) => format!(
                "S3 bucket {} ({}{})",
                s3.bucket,
                s3.endpoint
                    .as_deref()
                    .map_or_else(|| s3.region.clone(), shown_url),
                if s3.prefix.is_empty() {
                    String::new()
                } else {
                    format!(", keys under {}", s3.prefix)
                }
            ),
        }
    }
}

/// An S3 bucket name as AWS allows it.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
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
    fn s3_needs_a_bucket_and_a_typo_is_named() {
        let mut problems = Vec::new();
        let blobs = BlobsSettings::resolve(
            BlobsFile {
                kind: Some("s3".into()),
                bucket: Some("rigger-content".into()),
                region: Some("eu-west-1".into()),
                ..Default::default()
            },
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            matches!(&blobs, BlobsSettings::S3(s) if s.bucket == "rigger-content" && s.credentials.is_none())
        );
        for (file, expected) in [
            (
                BlobsFile {
                    kind: Some("s3".into()),
                    ..Default::default()
                },
                "blobs.bucket: kind",
            ),
            (
                BlobsFile {
                    kind: Some("s3".into()),
                    bucket: Some("Rigger_Content".into()),
                    ..Default::default()
                },
                "blobs.bucket: \"Rigger_Content\" is not a bucket name",
            ),
            (
                BlobsFile {
                    kind: Some("S3".into()),
                    ..Default::default()
                },
                "blobs.kind: \"S3\" is not",
            ),
            (
                BlobsFile {
                    bucket: Some("rigger".into()),
                    ..Default::default()
                },
                "blobs.bucket: only for kind",
            ),
        ] {
            let mut problems = Vec::new();
            BlobsSettings::resolve(file, &mut problems);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with(expected), "{problems:?}");
        }
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
