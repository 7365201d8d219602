//! The real `rigger-master` and `rigger-agent` binaries, run as child
//! processes on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::pack::SamplePack;
use crate::wait_for;

/// The repository root (for `modules/` and `examples/site/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A workspace binary. `cargo test --workspace` builds them beside the test
/// executables (the master and agent packages have integration tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace --bins`) first",
        path.display()
    );
    path
}

/// A finished command.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// What a finished process printed and how it ended.
    pub fn of(out: std::process::Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Stdout and stderr together, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Stops a child: SIGTERM, then SIGKILL if it has not exited in 10 s.
pub(crate) fn stop_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..200 {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running master in its own temporary directory, with its own copy of
/// the example site (so tests can edit site data).
pub struct TestMaster {
    dir: TempDir,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// Variables the master runs with (e.g. AWS credentials for S3).
    env: Vec<(String, String)>,
    open_file_limit: Option<u64>,
    /// The module path (the repository's `modules/` unless a test sets another).
    modules: PathBuf,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
}

/// `masterctl ARGS` run on the master's host without talking to a master
/// (`backup`, `store migrate`).
pub fn masterctl_offline(args: &[&str]) -> Output {
    Output::of(
        Command::new(bin("masterctl"))
            .args(args)
            .output()
            .expect("run masterctl"),
    )
}

/// `rigger-master` on `data_dir` with `site`, the repository's modules and
/// `extra_args`, where it is expected to refuse to start: what it said.
pub fn master_refusing(
    data_dir: &Path,
    site: &Path,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let out = Command::new(bin("rigger-master"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--admin-socket"])
        .arg(data_dir.join("refused.sock"))
        .arg("--site")
        .arg(site)
        .arg("--modules")
        .arg(repo_root().join("modules"))
        .args(extra_args)
        .env_remove("RIGGER_MASTER_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run rigger-master");
    assert!(
        !out.status.success(),
        "rigger-master started: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Output::of(out)
}

/// The files every master of one fleet holds alike.
pub const FLEET_FILES: [&str; 5] = [
    "ca.crt",
    "ca.key",
    "catalog-signing.key",
    "restart-key",
    "epoch",
];

impl TestMaster {
    /// Starts a master on 127.0.0.1 with a copy of `examples/site` and a
    /// small sample wso2is 5.11.0 pack imported (GA).
    pub fn start() -> Self {
        Self::start_empty().with_sample_pack()
    }

    fn with_sample_pack(self) -> Self {
        let out = self.import_pack(&SamplePack::new(40, 256 << 10));
        assert_eq!(
            out.code,
            0,
            "importing the sample pack failed: {}",
            out.all()
        );
        self
    }

    /// Runs the `is` role's server as a service (then `extra` role data).
    /// As root, as the module's service user (wso2carbon); otherwise as
    /// the agent's own user, which is all a non-root agent can do.
    pub fn enable_service(&self, extra: &str) {
        self.enable_service_of("is", extra);
    }

    /// [`TestMaster::enable_service`] for another role.
    pub fn enable_service_of(&self, role: &str, extra: &str) {
        let user = if nix::unistd::geteuid().is_root() {
            ""
        } else {
            "user = \"\"\ngroup = \"\"\n"
        };
        self.edit_site(&format!("roles/{role}.toml"), |t| {
            format!("{t}\n[service]\nenabled = true\n{user}\n{extra}")
        });
    }

    /// Writes `pack` as a zip into this master's directory and returns its path.
    pub fn write_pack(&self, pack: &SamplePack) -> PathBuf {
        let dir = self.dir.path().join("packs");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{}-{}-L{}-{}.zip",
            pack.name, pack.version, pack.level, pack.files
        ));
        pack.write_zip(&path).unwrap();
        path
    }

    /// `masterctl product import` of `pack`.
    pub fn import_pack(&self, pack: &SamplePack) -> Output {
        let path = self.write_pack(pack);
        self.ctl(&["product", "import", path.to_str().unwrap()])
    }

    /// `masterctl update import wso2is@VERSION` of `pack` (a full updated pack).
    pub fn import_update(&self, pack: &SamplePack) -> Output {
        let path = self.write_pack(pack);
        let product = format!("{}@{}", pack.name, pack.version);
        self.ctl(&["update", "import", &product, path.to_str().unwrap()])
    }

    /// [`TestMaster::start`] for a master whose soft and hard open-file
    /// limits are both `limit`.
    pub fn start_with_open_file_limit(limit: u64) -> Self {
        Self::start_with_flags_and_open_file_limit(&[], limit)
    }

    /// [`TestMaster::start_with_open_file_limit`] with extra flags.
    pub fn start_with_flags_and_open_file_limit(extra_args: &[&str], limit: u64) -> Self {
        let master = Self::launched(extra_args, Some(limit));
        let out = master.import_pack(&SamplePack::new(40, 256 << 10));
        assert_eq!(
            out.code,
            0,
            "importing the sample pack failed: {}",
            out.all()
        );
        master
    }

    /// The master's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the master runs").id()
    }

    /// Starts a master with nothing imported.
    pub fn start_empty() -> Self {
        Self::start_empty_with(&[])
    }

    /// [`TestMaster::start`] with extra `rigger-master` flags.
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::launched(extra_args, None).with_sample_pack()
    }

    /// Starts a master with nothing imported and extra `rigger-master` flags.
    pub fn start_empty_with(extra_args: &[&str]) -> Self {
        Self::launched(extra_args, None)
    }

    /// Another master of `fleet`'s fleet (its flags and `env` name the
    /// same shared stores): the fleet's key files are copied into its data
    /// directory first, as an operator provisions one; nothing is imported
    /// (the stores hold the packs).
    pub fn start_joining(fleet: &TestMaster, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut master = Self::unlaunched(extra_args, None, env);
        std::fs::create_dir_all(master.data_dir()).unwrap();
        for file in FLEET_FILES {
            std::fs::copy(fleet.data_dir().join(file), master.data_dir().join(file))
                .unwrap_or_else(|e| panic!("copy {file}: {e}"));
        }
        master.launch();
        master
    }

    /// [`TestMaster::start_with`], the master also given `env`.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut master = Self::unlaunched(extra_args, None, env);
        master.launch();
        master.with_sample_pack()
    }

    fn launched(extra_args: &[&str], open_file_limit: Option<u64>) -> Self {
        let mut master = Self::unlaunched(extra_args, open_file_limit, &[]);
        master.launch();
        master
    }

    fn unlaunched(extra_args: &[&str], open_file_limit: Option<u64>, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_root().join("examples/site"), &dir.path().join("site"));
        Self {
            dir,
            child: None,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            open_file_limit,
            modules: repo_root().join("modules"),
            addr: String::new(),
        }
    }

    /// The master's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The master's site directory (a copy tests may edit).
    pub fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// The admin socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("master.sock")
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn launch(&mut self) {
        let addr_file = self.data_dir().join("listen.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("master.log"))
            .unwrap();
        let mut command = Command::new(bin("rigger-master"));
        if let Some(limit) = self.open_file_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches no memory
            // of the parent.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        limit,
                        limit,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }
        let child = command
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.extra_args)
            .arg("--site")
            .arg(self.site())
            .arg("--modules")
            .arg(&self.modules)
            .arg("--admin-socket")
            .arg(self.socket())
            .env_remove("RIGGER_MASTER_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rigger-master");
        self.child = Some(child);
        self.addr = wait_for("the master to listen", Duration::from_secs(30), || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("rigger-master exited with {status}:\n{}", self.log());
            }
            std::fs::read_to_string(&addr_file)
                .ok()
                .map(|s| s.trim().to_string())
        });
    }

    /// The master's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("master.log")).unwrap_or_default()
    }

    /// Stops the master (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }

    /// Kills the master at once (SIGKILL), as a lost instance stops.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts it again on a new port, keeping its data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Restarts it with `extra_args` instead of the flags it had.
    pub fn restart_with_flags(&mut self, extra_args: &[&str]) {
        self.stop();
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        self.launch();
    }

    /// Restarts it with `modules` as its module path (a test's own copy).
    pub fn restart_with_modules(&mut self, modules: &Path) {
        self.modules = modules.to_path_buf();
        self.restart();
    }

    /// Runs `masterctl` against this master.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let out = Command::new(bin("masterctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run masterctl");
        Output::of(out)
    }

    /// Creates a token with `masterctl token create ARGS` and returns it.
    pub fn token(&self, args: &[&str]) -> String {
        let mut full = vec!["token", "create"];
        full.extend_from_slice(args);
        let out = self.ctl(&full);
        assert_eq!(out.code, 0, "token create failed: {}", out.all());
        out.stdout.trim().to_string()
    }

    /// The CA fingerprint `masterctl ca show` prints.
    pub fn fingerprint(&self) -> String {
        let out = self.ctl(&["ca", "show"]);
        assert_eq!(out.code, 0, "{}", out.all());
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("fingerprint: "))
            .expect("fingerprint line")
            .to_string()
    }

    /// `masterctl node list --json`.
    pub fn nodes(&self) -> serde_json::Value {
        let out = self.ctl(&["node", "list", "--json"]);
        assert_eq!(out.code, 0, "{}", out.all());
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Rewrites a site file with `edit` applied to its text.
    pub fn edit_site(&self, file: &str, edit: impl FnOnce(String) -> String) {
        let path = self.site().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        self.write_site(file, &edit(text));
    }

    /// Writes a site file as a careful operator's tool does: whole, in one
    /// rename (the master never reads it half-written).
    pub fn write_site(&self, file: &str, text: &str) {
        let path = self.site().join(file);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let temporary = path.with_file_name(format!(".{name}.writing"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    }
}

impl Drop for TestMaster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node: an agent root under a temporary directory.
pub struct TestAgent {
    dir: TempDir,
    /// The node's certname.
    pub certname: String,
    daemon: Option<Child>,
}

impl TestAgent {
    /// A fresh node named `certname`. Its root is world-searchable, so that
    /// the service user (802) reaches its release, as on a real node.
    pub fn new(certname: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            dir,
            certname: certname.to_string(),
            daemon: None,
        }
    }

    /// The agent's `--root`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path of the node, resolved under the root.
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root().join(absolute.trim_start_matches('/'))
    }

    /// Where the node's link at `absolute` points, as an absolute path
    /// (the agent writes its links relative under a test root).
    pub fn link_target(&self, absolute: &str) -> PathBuf {
        rigger_agent::paths::Paths::new(self.root())
            .read_link(&self.path(absolute))
            .unwrap_or_else(|| panic!("{absolute} is not a link on {}", self.certname))
    }

    fn command(&self, master: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("rigger-agent"));
        cmd.arg("--root")
            .arg(self.root())
            .args(["--master", master, "--certname", &self.certname])
            .args(args)
            .env_remove("RIGGER_AGENT_CONFIG")
            .env_remove("RIGGER_TOKEN")
            .env("RIGGER_LOG", "warn");
        if !args.contains(&"--imds-endpoint") {
            cmd.args(["--imds-endpoint", "off"]);
        }
        cmd
    }

    /// `rigger-agent --once --detailed-exitcodes ARGS` against `master_url`.
    pub fn once(&self, master_url: &str, args: &[&str]) -> Output {
        let out = self
            .command(master_url, args)
            .args(["--once", "--detailed-exitcodes"])
            .output()
            .expect("run rigger-agent");
        Output::of(out)
    }

    /// Starts a `--once` run and returns at once (the caller waits for it
    /// or kills it).
    pub fn spawn_once(&self, master_url: &str, args: &[&str]) -> std::process::Child {
        self.command(master_url, args)
            .arg("--once")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rigger-agent --once")
    }

    /// Like [`TestAgent::once`], with extra environment for the agent (the
    /// servers it starts never see it).
    pub fn once_with_env(&self, master_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self
            .command(master_url, args)
            .args(["--once", "--detailed-exitcodes"])
            .envs(env.iter().copied())
            .output()
            .expect("run rigger-agent");
        Output::of(out)
    }

    /// Enrolls with a fresh token (trusting the CA by fingerprint) and applies.
    pub fn enroll(&self, master: &TestMaster, token_args: &[&str]) -> Output {
        let token = master.token(token_args);
        let fp = master.fingerprint();
        self.once(&master.url(), &["--token", &token, "--ca-fingerprint", &fp])
    }

    /// Enrolls with a fresh token for `role`, its EC2 metadata from `imds`
    /// (its private IP), and applies.
    pub fn enroll_at(&self, master: &TestMaster, role: &str, imds: &str) -> Output {
        let token = master.token(&["--role", role]);
        let fp = master.fingerprint();
        self.once(
            &master.url(),
            &[
                "--imds-endpoint",
                imds,
                "--token",
                &token,
                "--ca-fingerprint",
                &fp,
            ],
        )
    }

    /// Starts the agent daemon and waits for its control socket.
    pub fn start_daemon(&mut self, master_url: &str, args: &[&str]) {
        let log = std::fs::File::create(self.root().join("agent.log")).unwrap();
        let child = self
            .command(master_url, args)
            .env("RIGGER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rigger-agent");
        self.daemon = Some(child);
        let socket = self.path("/run/rigger/agent.sock");
        wait_for(
            "the agent's control socket",
            Duration::from_secs(30),
            || {
                if let Some(status) = self
                    .daemon
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    panic!("rigger-agent exited with {status}:\n{}", self.log());
                }
                std::os::unix::net::UnixStream::connect(&socket).ok()
            },
        );
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("agent.log")).unwrap_or_default()
    }

    /// The daemon's process id.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("the daemon runs").id()
    }

    /// Kills the daemon at once (SIGKILL: an instance that died), leaving
    /// its servers alone.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon.
    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            stop_child(&mut child);
        }
    }

    /// Runs `agentctl --root ROOT ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let out = Command::new(bin("agentctl"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .expect("run agentctl");
        Output::of(out)
    }

    /// `agentctl status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ctl(&["status", "--json"]);
        // 0 healthy, 1 degraded or failed, 3 disabled: the JSON says which.
        assert!([0, 1, 3].contains(&out.code), "{}", out.all());
        serde_json::from_str(&out.stdout).unwrap()
    }
}

impl TestAgent {
    /// The pid of a service the agent started (from its pidfile).
    pub fn service_pid(&self, name: &str) -> Option<i32> {
        let path = self.path(&format!("/var/lib/rigger/agent/services/{name}.pid"));
        std::fs::read_to_string(path)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Kills every service the agent started (their whole process groups).
    pub fn kill_services(&self) {
        let dir = self.path("/var/lib/rigger/agent/services");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            // Only the process the pidfile names (a reused pid may belong
            // to another test's server).
            let pidfile = rigger_agent::resources::service::pidfile_process(&entry.path());
            if let Some((pid, true)) = pidfile {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl TestAgent {
    /// Detaches every mount under the node's root (deepest first).
    pub fn unmount_all(&self) {
        let root = self.root().to_path_buf();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in points {
            let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop_daemon();
        self.kill_services();
        self.unmount_all();
    }
}
