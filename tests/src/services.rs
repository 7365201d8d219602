//! What a test needs from the machine: root, or a server program from
//! the package registries. Without it a test skips with a message, unless
//! CI asks for it (`RIGGER_REQUIRE_ROOT_TESTS=1`, `RIGGER_REQUIRE_SERVICES=1`),
//! where a missing one fails the test.

use std::path::PathBuf;

/// Whether `test` may run: it needs root.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("RIGGER_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
        "{test} needs root and RIGGER_REQUIRE_ROOT_TESTS=1"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// The path of `program` (searched in PATH and the sbin folders), or
/// `None` when `test` must skip for lack of it.
pub fn program_or_skip(test: &str, program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("RIGGER_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{test} needs {program} (Debian package {package}) and RIGGER_REQUIRE_SERVICES=1"
        );
        eprintln!("skipping {test}: needs {program} (Debian package {package})");
    }
    found
}
