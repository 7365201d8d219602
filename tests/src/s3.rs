//! An S3-compatible server for the tests: `s3s-fs` (from crates.io, the
//! `s3s` project's file-system backend) on a free loopback port, its
//! buckets folders of a temporary directory, stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::services::program_or_skip;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "rigger-test";
/// Its secret.
pub const SECRET_KEY: &str = "rigger-test-secret";

/// A running S3-compatible server.
pub struct S3Server {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl S3Server {
    /// A server, or `None` when `test` must skip for lack of `s3s-fs`.
    pub fn start(test: &str) -> Option<Self> {
        let program = program_or_skip(test, "s3s-fs", "s3s-fs from crates.io")?;
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let child = Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let server = Self { dir, child, port };
        crate::wait_for("s3s-fs to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(server)
    }

    /// Makes a bucket.
    pub fn bucket(&self, name: &str) {
        std::fs::create_dir(self.dir.path().join(name)).unwrap();
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file the server keeps an object in.
    pub fn object_path(&self, bucket: &str, key: &str) -> std::path::PathBuf {
        self.dir.path().join(bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
