//! Helpers for Rigger's end-to-end tests: [`TestMaster`] and [`TestAgent`]
//! run the real binaries on loopback under temporary directories, and
//! [`FakeImds`] serves EC2 instance metadata (IMDSv2) on 127.0.0.1 so that
//! no test ever reaches 169.254.169.254.
//!
//! Every process a helper starts is stopped when the helper is dropped.

pub mod aws;
pub mod cluster;
pub mod databases;
pub mod fleet_load;
pub mod imds;
pub mod load;
pub mod nginx;
pub mod node_client;
pub mod pack;
pub mod process;
pub mod s3;
pub mod server_config;
pub mod services;
pub mod shared_stores;

pub use imds::FakeImds;
pub use process::{Output, TestAgent, TestMaster, bin, repo_root};

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` from `addr` (HTTP/1.0 on loopback): the body, or `None` if
/// nothing answers within a few seconds.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split("\r\n\r\n").nth(1).map(str::to_string)
}

/// Polls `check` every 50 ms until it returns `Some`, panicking with `what`
/// after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines a child writes to its piped stdout, as they come (a thread
/// reads them until the child closes it).
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Interrupts a child as Ctrl-C would (SIGINT) and waits (10 s at most)
/// for it to end.
pub fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    wait_for(
        "the interrupted command to end",
        Duration::from_secs(10),
        || child.try_wait().unwrap(),
    )
}
