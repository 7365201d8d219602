//! One PostgreSQL database and one S3 bucket started on loopback, and
//! the flags and variables that put masters on them: what the tests and
//! the benchmark of several masters share.

use crate::databases::{Database, PASSWORD, USER};
use crate::s3::{ACCESS_KEY, S3Server, SECRET_KEY};

/// One PostgreSQL database and one S3 bucket, and the flags and
/// variables that put a master on them.
pub struct SharedStores {
    /// The database server (the masters use its database `fleet`).
    pub db: Database,
    _s3: S3Server,
    _secrets: tempfile::TempDir,
    flags: Vec<String>,
}

impl SharedStores {
    /// Starts both for `test` (`None`, with a message, where the servers
    /// are not installed and the tests may skip them).
    pub fn start(test: &str) -> Option<Self> {
        let (db, s3) = (Database::postgres(test)?, S3Server::start(test)?);
        db.sql("postgres", "CREATE DATABASE fleet").unwrap();
        s3.bucket("fleet-content");
        let secrets = tempfile::tempdir().unwrap();
        let password_file = secrets.path().join("store-password");
        std::fs::write(&password_file, PASSWORD).unwrap();
        let flags = [
            "--store",
            "postgres",
            "--store-url",
            &format!("postgres://{USER}@{}/fleet", db.addr()),
            "--store-password-file",
            password_file.to_str().unwrap(),
            "--blobs",
            "s3",
            "--blobs-bucket",
            "fleet-content",
            "--blobs-endpoint",
            &s3.endpoint(),
        ]
        .map(str::to_string)
        .to_vec();
        Some(Self {
            db,
            _s3: s3,
            _secrets: secrets,
            flags,
        })
    }

    /// The masters' flags naming the stores.
    pub fn flags(&self) -> Vec<&str> {
        self.flags.iter().map(String::as_str).collect()
    }
}

/// The S3 credentials every master gets.
pub const ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
    ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
];
