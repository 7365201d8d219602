//! The packages: `scripts/package.sh` builds the .debs (from the binaries
//! `cargo test` built), their files work from the installed paths, and, as
//! root, `dpkg -i` installs them on this machine (the `rigger` user, the
//! conffiles, the units systemd-analyze verifies) and `dpkg --purge`
//! removes them again.

use std::path::Path;
use std::process::Command;

use rigger_tests::repo_root;
use rigger_tests::services::program_or_skip;

/// scripts/package.sh writes target/package: one test at a time.
static PACKAGING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?}: {}\n{text}", out.status);
    text
}

/// Whether the cargo subcommand `tool` is installed (`.ci/run` installs
/// cargo-deb and cargo-generate-rpm); `None` skips.
fn cargo_tool_or_skip(test: &str, tool: &str) -> Option<()> {
    let found = Command::new("cargo")
        .args([tool, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("RIGGER_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{test} needs cargo-{tool} (cargo install cargo-{tool}) and RIGGER_REQUIRE_SERVICES=1"
        );
        eprintln!("skipping {test}: needs cargo-{tool} (cargo install cargo-{tool})");
        return None;
    }
    Some(())
}

/// Builds the packages with `scripts/package.sh --profile dev --no-build
/// EXTRA` (the binaries `cargo test` built), holding the folder until the
/// guard is dropped.
fn build_packages(extra: &[&str]) -> std::sync::MutexGuard<'static, ()> {
    let one_at_a_time = PACKAGING.lock().unwrap_or_else(|e| e.into_inner());
    run(Command::new(repo_root().join("scripts/package.sh"))
        .args(["--profile", "dev", "--no-build"])
        .args(extra));
    one_at_a_time
}

/// The built package of `name` whose file name ends with `suffix`.
fn package(name: &str, separator: char, suffix: &str) -> std::path::PathBuf {
    let dir = repo_root().join("target/package");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            file.starts_with(&format!("{name}{separator}")) && file.ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no {name} {suffix} in {}", dir.display()))
}

fn deb(name: &str) -> std::path::PathBuf {
    package(name, '_', ".deb")
}

fn assert_gzipped_man_page(root: &Path, page: &str) {
    let path = root.join("usr/share/man/man8").join(format!("{page}.8.gz"));
    let text = run(Command::new("gzip").arg("-dc").arg(&path));
    assert!(
        text.contains(&format!(".TH {page} 8")),
        "{} is a section-8 man page",
        path.display()
    );
}

fn assert_completions(root: &Path, command: &str) {
    let bash = root
        .join("usr/share/bash-completion/completions")
        .join(command);
    let text = std::fs::read_to_string(&bash).unwrap();
    assert!(text.contains("complete -F"), "{} completes", bash.display());
    run(Command::new("bash").arg("-n").arg(&bash));
    assert!(
        root.join("usr/share/zsh/vendor-completions")
            .join(format!("_{command}"))
            .is_file()
    );
    assert!(
        root.join("usr/share/fish/vendor_completions.d")
            .join(format!("{command}.fish"))
            .is_file()
    );
}

#[test]
fn the_packages_build_and_their_files_work_from_the_installed_paths() {
    let test = "the_packages_build_and_their_files_work_from_the_installed_paths";
    if cargo_tool_or_skip(test, "deb").is_none()
        || program_or_skip(test, "dpkg-deb", "dpkg").is_none()
    {
        return;
    }
    let _packages = build_packages(&["--deb-only"]);
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    for name in ["rigger-agent", "rigger-master"] {
        run(Command::new("dpkg-deb").arg("-x").arg(deb(name)).arg(&root));
    }
    for binary in ["rigger-master", "masterctl", "rigger-agent", "agentctl"] {
        let version = run(Command::new(root.join("usr/bin").join(binary)).arg("--version"));
        assert_eq!(
            version.trim(),
            format!("{binary} {}", env!("CARGO_PKG_VERSION")),
            "{binary} --version"
        );
        assert_gzipped_man_page(&root, binary);
        assert_completions(&root, binary);
    }
    assert_gzipped_man_page(&root, "masterctl-rollout-pause");

    // The packaged configuration, site and modules pass --check-config
    // (their absolute paths moved under the scratch root).
    let master_ok = run(Command::new(root.join("usr/bin/rigger-master"))
        .arg("--check-config")
        .arg("--config")
        .arg(root.join("etc/rigger/master.toml"))
        .arg("--data-dir")
        .arg(scratch.path().join("data"))
        .arg("--site")
        .arg(root.join("etc/rigger/site"))
        .arg("--modules")
        .arg(format!(
            "{},{}",
            root.join("etc/rigger/modules").display(),
            root.join("usr/share/rigger/modules").display()
        )));
    assert!(master_ok.contains("configuration ok"), "{master_ok}");
    let agent_ok = run(Command::new(root.join("usr/bin/rigger-agent"))
        .arg("--check-config")
        .arg("--root")
        .arg(scratch.path().join("node"))
        .arg("--config")
        .arg(root.join("usr/share/doc/rigger-agent/examples/agent.toml"))
        .args(["--master", "127.0.0.1:8140"])
        .env_remove("RIGGER_AGENT_CONFIG"));
    assert!(agent_ok.contains("configuration ok"), "{agent_ok}");
    // A typo in the packaged file's key is named, with exit 78 (the unit's
    // RestartPreventExitStatus).
    let typo = scratch.path().join("typo.toml");
    std::fs::write(&typo, "mastr = \"127.0.0.1:8140\"\n").unwrap();
    let out = Command::new(root.join("usr/bin/rigger-agent"))
        .arg("--check-config")
        .arg("--root")
        .arg(scratch.path().join("node"))
        .arg("--config")
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mastr"));

    if nix::unistd::geteuid().is_root() {
        install_on_this_machine();
    } else {
        assert!(
            std::env::var("RIGGER_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
            "dpkg -i needs root"
        );
        eprintln!("{test}: not installing with dpkg -i: needs root");
    }
}

/// `dpkg -i` on this machine, then `dpkg --purge`: what the maintainer
/// scripts do, and the units as installed.
fn install_on_this_machine() {
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg")
                .args(["--purge", "rigger-master", "rigger-agent"])
                .output();
        }
    }
    let _purge = Purge;
    run(Command::new("dpkg")
        .arg("-i")
        .arg(deb("rigger-master"))
        .arg(deb("rigger-agent")));
    let user = run(Command::new("getent").args(["passwd", "rigger"]));
    assert!(user.contains("nologin"), "a system user: {user}");
    use std::os::unix::fs::MetadataExt;
    let group = run(Command::new("getent").args(["group", "rigger"]));
    let gid: u32 = group.split(':').nth(2).unwrap().trim().parse().unwrap();
    let site = std::fs::metadata("/etc/rigger/site").unwrap();
    assert_eq!(site.gid(), gid, "the master reads its site");
    assert_eq!(
        site.mode() & 0o7,
        0,
        "the site (secrets) is not world-readable"
    );
    let conffiles =
        run(Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", "rigger-master"]));
    assert!(conffiles.contains("/etc/rigger/master.toml"), "{conffiles}");
    let version = run(Command::new("/usr/bin/masterctl").arg("--version"));
    assert!(version.starts_with("masterctl "));
    if let Some(analyze) = program_or_skip("install_on_this_machine", "systemd-analyze", "systemd")
    {
        let out = Command::new(analyze)
            .args(["verify", "--man=no"])
            .args([
                "/usr/lib/systemd/system/rigger-master.service",
                "/usr/lib/systemd/system/rigger-agent.service",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "the installed units: {stderr}"
        );
    }
    run(Command::new("dpkg").args(["--purge", "rigger-master", "rigger-agent"]));
    assert!(!Path::new("/usr/bin/rigger-master").exists());
    assert!(!Path::new("/etc/rigger/master.toml").exists(), "purged");
}

#[test]
fn the_rpms_hold_the_binaries_units_and_scriptlets() {
    let test = "the_rpms_hold_the_binaries_units_and_scriptlets";
    if cargo_tool_or_skip(test, "generate-rpm").is_none()
        || cargo_tool_or_skip(test, "deb").is_none()
    {
        return;
    }
    let Some(rpm) = program_or_skip(test, "rpm", "rpm") else {
        return;
    };
    let _packages = build_packages(&[]);
    let find = |name: &str| package(name, '-', ".rpm");
    for (name, files, scriptlet) in [
        (
            "rigger-master",
            &[
                "/usr/bin/rigger-master",
                "/usr/bin/masterctl",
                "/usr/lib/systemd/system/rigger-master.service",
                "/etc/rigger/master.toml",
                "/usr/share/rigger/modules/wso2is/module.toml",
                "/usr/share/man/man8/masterctl-db-init.8",
                "/usr/share/bash-completion/completions/masterctl",
            ][..],
            "useradd --system",
        ),
        (
            "rigger-agent",
            &[
                "/usr/bin/rigger-agent",
                "/usr/bin/agentctl",
                "/usr/lib/systemd/system/rigger-agent.service",
                "/usr/share/man/man8/agentctl-wait-ready.8",
                "/usr/share/zsh/site-functions/_agentctl",
            ][..],
            "systemctl try-restart rigger-agent.service",
        ),
    ] {
        let path = find(name);
        let listed = run(Command::new(&rpm).arg("-qlp").arg(&path));
        for file in files {
            assert!(
                listed.lines().any(|l| l == *file),
                "{name}.rpm lacks {file}:\n{listed}"
            );
        }
        let scripts = run(Command::new(&rpm).args(["-qp", "--scripts"]).arg(&path));
        assert!(
            scripts.contains(scriptlet),
            "{name}.rpm scriptlets: {scripts}"
        );
    }
    let config = run(Command::new(&rpm)
        .args(["-qp", "--configfiles"])
        .arg(find("rigger-master")));
    assert!(config.contains("/etc/rigger/master.toml"), "{config}");
}
