//! Helpers for Rigger's end-to-end tests: [`TestMaster`] and [`TestAgent`]
//! run the real binaries on loopback under temporary directories, and
//! [`FakeImds`] serves EC2 instance metadata (IMDSv2) on 127.0.0.1 so that
//! no test ever reaches 169.254.169.254.
//!
//! Every process a helper starts is stopped when the helper is dropped.

pub mod imds;
pub mod pack;
pub mod process;

pub use imds::FakeImds;
pub use process::{Output, TestAgent, TestMaster, bin, repo_root};

use std::time::{Duration, Instant};

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
