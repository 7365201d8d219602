//! Real database servers for the tests: MariaDB and PostgreSQL from
//! Debian's packages, initialised in a temporary directory, started on a
//! free loopback port and stopped when dropped. `mysqld`, `initdb` and
//! `postgres` refuse to run as root, so under root (as in CI) they run as
//! `nobody`, their directory handed to it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::services::program_or_skip;
use crate::wait_for;

/// The user every test database has, with all rights (and CREATEDB).
pub const USER: &str = "wso2";
/// Its password.
pub const PASSWORD: &str = "wso2-test-secret";

/// A running database server.
pub struct Database {
    dir: TempDir,
    child: Child,
    /// Its loopback port.
    pub port: u16,
    /// Its command-line client and the engine it speaks.
    client: (PathBuf, Engine),
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// MariaDB.
    MariaDb,
    /// PostgreSQL.
    Postgres,
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let stopped = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            self.child.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `nobody` when the tests run as root, else the current user.
fn unprivileged(command: &mut Command) -> &mut Command {
    if nix::unistd::geteuid().is_root() {
        command.uid(65534).gid(65534);
    }
    command
}

fn give_to_server(dir: &Path) {
    if nix::unistd::geteuid().is_root() {
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        let nogroup = Some(nix::unistd::Gid::from_raw(65534));
        for entry in walkdir::WalkDir::new(dir) {
            nix::unistd::chown(entry.unwrap().path(), nobody, nogroup).unwrap();
        }
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PostgreSQL's programs, which Debian keeps out of PATH.
fn postgres_program(test: &str, name: &str) -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|p| p.is_file())
        .or_else(|| program_or_skip(test, name, "postgresql"))
}

impl Database {
    /// A MariaDB server, or `None` when `test` must skip for lack of it.
    pub fn mariadb(test: &str) -> Option<Self> {
        let server = program_or_skip(test, "mariadbd", "mariadb-server")?;
        let install = program_or_skip(test, "mariadb-install-db", "mariadb-server")?;
        let client = program_or_skip(test, "mariadb", "mariadb-client")?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        give_to_server(dir.path());
        run(
            unprivileged(Command::new(install).args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]))
            .arg(format!("--datadir={}", data.display())),
            "mariadb-install-db",
        );
        let port = crate::free_port();
        let socket = dir.path().join("mysqld.sock");
        let child = unprivileged(Command::new(server).arg("--no-defaults"))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .args([
                &format!("--port={port}"),
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let db = Self {
            dir,
            child,
            port,
            client: (client.clone(), Engine::MariaDb),
        };
        let sql = format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'%';"
        );
        wait_for("MariaDB to answer", Duration::from_secs(60), || {
            Command::new(&client)
                .args(["--no-defaults", "-u", "root"])
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", "SELECT 1"])
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
        run(
            Command::new(&client)
                .args(["--no-defaults", "-u", "root"])
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", &sql]),
            "create the MariaDB user",
        );
        Some(db)
    }

    /// A PostgreSQL server, or `None` when `test` must skip for lack of it.
    pub fn postgres(test: &str) -> Option<Self> {
        let initdb = postgres_program(test, "initdb")?;
        let server = postgres_program(test, "postgres")?;
        let psql = program_or_skip(test, "psql", "postgresql-client")?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, "superuser-secret\n").unwrap();
        give_to_server(dir.path());
        run(
            unprivileged(&mut Command::new(initdb))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .arg(format!("--pwfile={}", password_file.display()))
                .env("LC_ALL", "C"),
            "initdb",
        );
        let port = crate::free_port();
        let child = unprivileged(&mut Command::new(server))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"])
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let db = Self {
            dir,
            child,
            port,
            client: (psql.clone(), Engine::Postgres),
        };
        let psql_as_postgres = |sql: &str| {
            let mut command = Command::new(&psql);
            command
                .arg("-h")
                .arg(db.dir.path())
                .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                .args(["-v", "ON_ERROR_STOP=1", "-c", sql]);
            unprivileged(&mut command);
            command
        };
        wait_for("PostgreSQL to answer", Duration::from_secs(60), || {
            psql_as_postgres("SELECT 1")
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
        run(
            &mut psql_as_postgres(&format!(
                "CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'"
            )),
            "create the PostgreSQL role",
        );
        Some(db)
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Which server this is.
    pub fn engine(&self) -> Engine {
        self.client.1
    }

    /// Runs `sql` in `database` as [`USER`] over TCP; its output, tab- or
    /// `|`-separated rows without headers, or `Err` with the client's error.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, String> {
        let (client, engine) = &self.client;
        let mut command = Command::new(client);
        match engine {
            Engine::MariaDb => command
                .args(["--no-defaults", "-h", "127.0.0.1", "-N", "-B"])
                .args(["-P", &self.port.to_string(), "-u", USER])
                .arg(format!("-p{PASSWORD}"))
                .args(["-D", database, "-e", sql]),
            Engine::Postgres => command
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .args(["-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .env("PGPASSWORD", PASSWORD),
        };
        let out = command.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}
