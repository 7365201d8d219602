//! The master binaries' command-line contract: exit codes for usage and
//! configuration errors.

use std::process::Command;

fn master() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rigger-master"))
}

/// `masterctl module check --modules MODULES [--site SITE]`.
fn module_check(modules: &std::path::Path, site: Option<&std::path::Path>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_masterctl"));
    cmd.args(["module", "check", "--modules"]).arg(modules);
    if let Some(site) = site {
        cmd.arg("--site").arg(site);
    }
    cmd.output().unwrap()
}

#[test]
fn usage_errors_exit_64() {
    let out = master().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(env!("CARGO_BIN_EXE_masterctl"))
        .args(["token", "create", "--ttl", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn bad_configuration_exits_78_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = master()
        .args([
            "--site",
            "/nonexistent/site",
            "--modules",
            "/nonexistent/mods",
            "--listen",
            "bogus",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--check-config")
        .env_remove("RIGGER_MASTER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["/nonexistent/site", "/nonexistent/mods", "bogus"] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
}

#[test]
fn check_config_accepts_the_example_site() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = master()
        .arg("--site")
        .arg(root.join("examples/site"))
        .arg("--modules")
        .arg(root.join("modules"))
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn module_check_passes_the_shipped_modules_and_site() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = module_check(&root.join("modules"), Some(&root.join("examples/site")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok    wso2is/is") && stdout.contains("ok    role is"),
        "{stdout}"
    );
}

#[test]
fn module_check_reports_every_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("broken");
    std::fs::create_dir_all(module.join("templates")).unwrap();
    std::fs::write(
        module.join("module.toml"),
        r#"
[module]
name = "broken"

[profiles.p]
[[profiles.p.resources]]
id = "undefined_value"
kind = "file"
path = "/opt/a.conf"
template = "a.conf.j2"

[[profiles.p.resources]]
id = "bad_syntax"
kind = "file"
path = "/opt/{{ nope"
content = "x"

[[profiles.p.resources]]
id = "missing_template"
kind = "file"
path = "/opt/c.conf"
template = "c.conf.j2"
"#,
    )
    .unwrap();
    std::fs::write(
        module.join("templates/a.conf.j2"),
        "ok\nok\nvalue = {{ db.url }}\n",
    )
    .unwrap();
    let out = module_check(dir.path(), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("3 errors"), "{stderr}");
    assert!(
        stderr.contains("a.conf.j2: line 3") && stderr.contains("undefined"),
        "{stderr}"
    );
    assert!(stderr.contains("bad_syntax"), "{stderr}");
    assert!(stderr.contains("c.conf.j2"), "{stderr}");
}

#[test]
fn a_reader_that_goes_away_ends_masterctl_quietly() {
    let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/../modules");
    let mut child = Command::new(env!("CARGO_BIN_EXE_masterctl"))
        .args(["module", "check", "--modules", modules])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `masterctl … | head -0`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_typo_in_a_closed_set_names_the_file_the_resource_and_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("typo");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(
        module.join("module.toml"),
        r#"
[module]
name = "typo"

[profiles.p]
[[profiles.p.resources]]
id = "efs"
kind = "mount"
path = "/mnt/efs"
fstype = "nfs"
source = "fs-1:/"

[[profiles.p.resources]]
id = "server"
kind = "service"
name = "wso2is"
provider = "systemdd"
start = "bin/wso2server.sh"
working_dir = "/opt/wso2is"
log_file = "/var/log/wso2is.log"
"#,
    )
    .unwrap();
    let out = module_check(dir.path(), None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "module.toml: resource \"efs\": unknown variant `nfs`, expected one of `nfs4`",
        "module.toml: resource \"server\": unknown variant `systemdd`, expected one of `process`",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
}

/// Copies a directory tree (the example site, to change one file of it).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_shared_folder_that_climbs_out_of_the_share_fails_module_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    copy_tree(&root.join("examples/site"), &site);
    let mut common = std::fs::read_to_string(site.join("common.toml")).unwrap();
    common.push_str(
        "\n[shared_fs]\nenabled = true\nsource = \"fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/\"\n\n[shared_fs.dirs]\n\"repository/deployment\" = \"../../etc\"\n",
    );
    std::fs::write(site.join("common.toml"), common).unwrap();
    let out = module_check(&root.join("modules"), Some(&site));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("role is:")
            && stderr.contains("wso2is/module.toml")
            && stderr.contains(
                "resource \"shared_dirs\": dirs \"../../etc\" must be a relative path free of `..`"
            ),
        "{stderr}"
    );
}

/// The typo'd site: a misspelt table (the node would fall back to the
/// module's H2 database), a misspelt field and a string for a number.
#[test]
fn a_typo_in_site_data_fails_module_check_with_file_line_and_the_nearest_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    copy_tree(&root.join("examples/site"), &site);
    let role = std::fs::read_to_string(site.join("roles/is.toml")).unwrap();
    let role = role
        .replace("[databases.shared_db]", "[databses.shared_db]")
        .replace(
            "username = \"wso2is\"\ndriver",
            "usrname = \"wso2is\"\ndriver",
        );
    std::fs::write(site.join("roles/is.toml"), role).unwrap();
    std::fs::write(
        site.join("environments/demo.toml"),
        "[server]\nhostname = \"is.demo.example.com\"\nports_offset = \"1\"\n",
    )
    .unwrap();
    let out = module_check(&root.join("modules"), Some(&site));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let role_file = site.join("roles/is.toml").display().to_string();
    let env_file = site.join("environments/demo.toml").display().to_string();
    for expected in [
        format!("{role_file}:24: databses: unknown key (did you mean `databases`?)"),
        format!(
            "{role_file}:21: databases.identity_db.usrname: unknown key (did you mean `databases.identity_db.username`?)"
        ),
        format!("{env_file}:3: server.ports_offset: expected a whole number, found a string"),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nin:\n{stderr}");
    }
}

/// The missing secret: the identity database's password left out of
/// secrets/, then the same site as a production environment.
#[test]
fn credentials_from_module_defaults_fail_module_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    copy_tree(&root.join("examples/site"), &site);
    let secrets = site.join("secrets/roles/is.toml");
    let text = std::fs::read_to_string(&secrets).unwrap();
    std::fs::write(
        &secrets,
        text.replacen("[databases.identity_db]\npassword = \"change-me\"\n", "", 1),
    )
    .unwrap();
    let out = module_check(&root.join("modules"), Some(&site));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("databases.identity_db.password: the password of a database that is not embedded comes from the module's defaults; set it in the site's secrets/roles/is.toml (or another secrets/ file): [databases.identity_db] password = \"…\""),
        "{stderr}"
    );
    assert!(
        !stderr.contains("keystore.password"),
        "a development environment: {stderr}"
    );

    std::fs::write(&secrets, text).unwrap();
    let environment = site.join("environments/demo.toml");
    let demo = std::fs::read_to_string(&environment).unwrap();
    std::fs::write(
        &environment,
        demo.replace("development = true", "development = false"),
    )
    .unwrap();
    let out = module_check(&root.join("modules"), Some(&site));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "keystore.password",
        "keystore.key_password",
        "truststore.password",
    ] {
        assert!(
            stderr.contains(&format!("{key}: a credential (outside an environment with `[environment] development = true`)")),
            "{key}: {stderr}"
        );
    }
}

#[test]
fn a_missing_or_broken_site_is_not_ok() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = module_check(
        &root.join("modules"),
        Some(std::path::Path::new("/nonexistent/site")),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("site /nonexistent/site is not a directory")
    );

    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    copy_tree(&root.join("examples/site"), &site);
    let role = site.join("roles/is.toml");
    let mut text = std::fs::read_to_string(&role).unwrap();
    text.push_str("\n[broken\n");
    std::fs::write(&role, text).unwrap();
    let out = master()
        .arg("--site")
        .arg(&site)
        .arg("--modules")
        .arg(root.join("modules"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--check-config")
        .env_remove("RIGGER_MASTER_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("roles/is.toml: TOML parse error at line"),
        "{stderr}"
    );
    let out = module_check(&root.join("modules"), Some(&site));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("roles/is.toml: TOML parse error"));
}

#[test]
fn a_rendering_over_the_size_limit_fails_module_check() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("big");
    std::fs::create_dir_all(module.join("templates")).unwrap();
    std::fs::write(
        module.join("module.toml"),
        r#"
[module]
name = "big"

[profiles.p]
[[profiles.p.resources]]
id = "huge"
kind = "file"
path = "/opt/huge.xml"
template = "huge.xml.j2"
"#,
    )
    .unwrap();
    std::fs::write(
        module.join("templates/huge.xml.j2"),
        "<r>{% for i in range(1000) %}{% for j in range(300) %}<x/>{% endfor %}{% endfor %}</r>\n",
    )
    .unwrap();
    let out = module_check(dir.path(), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("resource \"huge\": renders 1200008 bytes, more than the 1048576"),
        "{stderr}"
    );
}
