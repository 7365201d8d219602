//! A node enrolls, converges, stays converged, and `--noop` shows (and
//! only shows) what a site change would do.

use rigger_tests::{TestAgent, TestMaster};

const ENV_FILE: &str = "/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh";
const DEPLOYMENT_TOML: &str = "/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml";

#[test]
fn enrolls_applies_and_the_second_run_changes_nothing() {
    let master = TestMaster::start();
    let node = TestAgent::new("is-node-1");

    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(
        first.code,
        2,
        "first run should change things: {}",
        first.all()
    );
    let toml = std::fs::read_to_string(node.path(DEPLOYMENT_TOML)).unwrap();
    assert!(
        toml.contains("jdbc:mysql://wso2-db.demo.internal:3306/WSO2IS_IDENTITY_DB"),
        "{toml}"
    );
    assert!(
        toml.contains("hostname = \"is.demo.example.com\""),
        "{toml}"
    );
    let parsed: toml::Table = toml
        .parse()
        .expect("rendered deployment.toml is valid TOML");
    assert_eq!(
        parsed["transport"]["https"]["properties"]["proxyPort"].as_integer(),
        Some(443)
    );
    let link = node.link_target("/opt/wso2/wso2is-5.11.0/repository/logs");
    assert_eq!(link, node.path("/var/log/wso2/wso2is"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(node.path(DEPLOYMENT_TOML))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    for key in ["node.key", "node.crt"] {
        let path = node.path(&format!("/var/lib/rigger/agent/ssl/{key}"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }

    let second = node.once(&master.url(), &[]);
    assert_eq!(
        second.code,
        0,
        "second run must change nothing: {}",
        second.all()
    );
    assert!(second.stdout.contains("0 changed"), "{}", second.all());

    let nodes = master.nodes();
    let me = &nodes.as_array().unwrap()[0];
    assert_eq!(me["certname"], "is-node-1");
    assert_eq!(me["role"], "is");
    assert_eq!(me["catalog_version"], 1);
    assert_eq!(me["last_run_status"], "unchanged");

    // Where a value comes from (Puppet's `lookup --explain`).
    let out = master.ctl(&["lookup", "is-node-1", "databases.identity_db.url"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].contains("jdbc:mysql://wso2-db.demo.internal:3306/WSO2IS_IDENTITY_DB"),
        "{}",
        out.all()
    );
    assert!(
        lines[1].contains("from") && lines[1].contains("site/roles/is.toml"),
        "{}",
        out.all()
    );
    assert!(
        lines[2].contains("modules/wso2is/data/defaults.toml") && lines[2].contains("jdbc:h2"),
        "{}",
        out.all()
    );
    let out = master.ctl(&["lookup", "is-node-1", "no.such.key"]);
    assert!(out.stdout.contains("is not set"), "{}", out.all());
    // A secret is shown by where it comes from, never by its value.
    for key in ["databases.identity_db.password", "databases.identity_db"] {
        let out = master.ctl(&["lookup", "is-node-1", key]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(
            !out.stdout.contains("change-me")
                && out.stdout.contains("<redacted>")
                && out.stdout.contains("secrets/roles/is.toml"),
            "{key}: {}",
            out.all()
        );
    }
    let table = master.ctl(&["lookup", "is-node-1", "databases.identity_db"]);
    assert!(
        table.stdout.contains("WSO2IS_IDENTITY_DB"),
        "{}",
        table.all()
    );
}

#[test]
fn noop_shows_the_diff_of_a_changed_value_and_writes_nothing() {
    let master = TestMaster::start();
    let node = TestAgent::new("is-node-2");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let before = std::fs::read_to_string(node.path(ENV_FILE)).unwrap();
    let stamp = node.path("/var/lib/wso2/wso2is/config.sha256");
    let stamp_before = std::fs::read_to_string(&stamp).unwrap();

    master.edit_site("roles/is.toml", |t| {
        t.replace("xmx = \"2048m\"", "xmx = \"4096m\"")
    });
    let noop = node.once(&master.url(), &["--noop"]);
    assert_eq!(
        noop.code,
        2,
        "noop with pending changes exits 2: {}",
        noop.all()
    );
    assert!(
        noop.stdout.contains("-JVM_MEM_OPTS=\"-Xms512m -Xmx2048m\""),
        "{}",
        noop.all()
    );
    assert!(
        noop.stdout.contains("+JVM_MEM_OPTS=\"-Xms512m -Xmx4096m\""),
        "{}",
        noop.all()
    );
    assert!(
        noop.stdout.contains("would refresh"),
        "the notified exec is shown: {}",
        noop.all()
    );
    assert_eq!(
        std::fs::read_to_string(node.path(ENV_FILE)).unwrap(),
        before,
        "noop wrote the file"
    );
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap(),
        stamp_before,
        "noop ran the exec"
    );

    let apply = node.once(&master.url(), &[]);
    assert_eq!(apply.code, 2, "{}", apply.all());
    assert!(
        std::fs::read_to_string(node.path(ENV_FILE))
            .unwrap()
            .contains("-Xmx4096m")
    );
    assert_ne!(
        std::fs::read_to_string(&stamp).unwrap(),
        stamp_before,
        "refresh-only exec did not run"
    );
    assert!(
        apply.stdout.contains("catalog version 2"),
        "{}",
        apply.all()
    );
    assert_eq!(node.once(&master.url(), &[]).code, 0);
    let diff = master.ctl(&["catalog", "diff", "is-node-2", "1", "2"]);
    assert_eq!(diff.code, 0, "{}", diff.all());
    assert!(
        diff.stdout.contains("~ changed file jvm_env"),
        "{}",
        diff.all()
    );
    assert!(
        diff.stdout.contains("+JVM_MEM_OPTS=\"-Xms512m -Xmx4096m\""),
        "{}",
        diff.all()
    );
    assert!(
        !diff.stdout.contains("deployment_toml"),
        "unchanged resources are not listed: {}",
        diff.all()
    );
}

/// A changed datasource URL in a file that holds passwords: the diff shows
/// the URL line, the passwords masked.
#[test]
fn a_secret_file_diff_shows_the_changed_lines_with_secret_values_masked() {
    let master = TestMaster::start();
    let node = TestAgent::new("is-node-4");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    master.edit_site("roles/is.toml", |t| {
        t.replace("WSO2IS_SHARED_DB", "WSO2_SHARED")
    });
    let noop = node.once(&master.url(), &["--noop"]);
    assert_eq!(noop.code, 2, "{}", noop.all());
    assert!(
        noop.stdout.contains(
            "-url = \"jdbc:mysql://wso2-db.demo.internal:3306/WSO2IS_SHARED_DB?useSSL=true\""
        ) && noop
            .stdout
            .contains("+url = \"jdbc:mysql://wso2-db.demo.internal:3306/WSO2_SHARED?useSSL=true\""),
        "{}",
        noop.all()
    );
    assert!(
        !noop.all().contains("change-me"),
        "secret leaked: {}",
        noop.all()
    );
    assert_eq!(node.once(&master.url(), &[]).code, 2);
    let diff = master.ctl(&["catalog", "diff", "is-node-4", "1", "2"]);
    assert!(
        diff.stdout
            .contains("+url = \"jdbc:mysql://wso2-db.demo.internal:3306/WSO2_SHARED?useSSL=true\"")
            && diff.stdout.contains("password = \"<redacted>\"")
            && !diff.stdout.contains("change-me"),
        "{}",
        diff.all()
    );
}

#[test]
fn a_secret_file_diff_is_redacted() {
    let master = TestMaster::start();
    let node = TestAgent::new("is-node-3");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    master.edit_site("secrets/roles/is.toml", |t| {
        t.replacen("password = \"change-me\"", "password = \"s3cret-new\"", 1)
    });
    let noop = node.once(&master.url(), &["--noop"]);
    assert_eq!(noop.code, 2, "{}", noop.all());
    assert!(noop.stdout.contains("<redacted>"), "{}", noop.all());
    assert!(
        !noop.all().contains("s3cret-new"),
        "secret leaked: {}",
        noop.all()
    );
    let shown = master.ctl(&["catalog", "show", "is-node-3", "--json"]);
    assert!(
        shown.stdout.contains("<redacted>")
            && !shown.stdout.contains("change-me")
            && !shown.stdout.contains("s3cret-new"),
        "{}",
        shown.all()
    );
    let diff = master.ctl(&["catalog", "diff", "is-node-3", "1", "2"]);
    assert_eq!(diff.code, 0, "{}", diff.all());
    assert!(diff.stdout.contains("catalog 1 → 2"), "{}", diff.all());
    assert!(
        !diff.stdout.contains("s3cret-new") && !diff.stdout.contains("change-me"),
        "{}",
        diff.all()
    );
}

#[test]
fn keystores_come_from_the_sites_secret_files() {
    let master = TestMaster::start();
    let files = master.site().join("secrets/files");
    std::fs::create_dir_all(&files).unwrap();
    let keystore: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(files.join("wso2carbon.jks"), &keystore).unwrap();
    std::fs::write(files.join("client-truststore.jks"), b"truststore bytes").unwrap();
    master.edit_site("roles/is.toml", |t| {
        format!("{t}\n[keystore]\nfrom_secrets = true\n\n[truststore]\nfrom_secrets = true\n")
    });
    let node = TestAgent::new("ks-1");
    let out = node.enroll(&master, &["--role", "is"]);
    assert_eq!(out.code, 2, "{}", out.all());
    let security = node.path("/opt/wso2/wso2is-5.11.0/repository/resources/security");
    assert_eq!(
        std::fs::read(security.join("wso2carbon.jks")).unwrap(),
        keystore
    );
    assert_eq!(
        std::fs::read(security.join("client-truststore.jks")).unwrap(),
        b"truststore bytes"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(security.join("wso2carbon.jks"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(node.once(&master.url(), &[]).code, 0);

    // A rotated keystore reaches the node on its next run.
    std::fs::write(files.join("wso2carbon.jks"), b"rotated").unwrap();
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(
        std::fs::read(security.join("wso2carbon.jks")).unwrap(),
        b"rotated"
    );
}
