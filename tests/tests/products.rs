//! Product distributions end to end: a GA pack is installed as a release,
//! an update level fetches only the blobs it changed, a rollback switches
//! back without fetching anything, a crash while materialising never leaves
//! CARBON_HOME on an incomplete release, and modified release files are
//! repaired.

use std::path::PathBuf;

use rigger_common::blob_layout::BlobLayout;
use rigger_tests::pack::SamplePack;
use rigger_tests::{Output, TestAgent, TestMaster};

const LINK: &str = "/opt/wso2/wso2is-5.11.0";

fn fetched(out: &Output) -> (u64, u64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("fetched "))
        .unwrap_or_else(|| panic!("no fetch figures: {}", out.all()));
    let after = line.split("fetched ").nth(1).unwrap();
    let blobs: u64 = after.split(' ').next().unwrap().parse().unwrap();
    let bytes: u64 = after
        .split('(')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (blobs, bytes)
}

fn current_release(node: &TestAgent) -> PathBuf {
    node.link_target(LINK)
}

fn manifest_size(master: &TestMaster, level: u32) -> u64 {
    let out = master.ctl(&["product", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let tree = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["level"] == level)
        .unwrap()["tree"]
        .as_str()
        .unwrap()
        .to_string();
    let path = BlobLayout::new(master.data_dir().join("blobs"))
        .path_of(&rigger_common::digest::Digest::parse(&tree).unwrap());
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn ga_install_update_fetches_only_changed_blobs_and_rollback_fetches_nothing() {
    let master = TestMaster::start_empty();
    let ga = SamplePack::new(500, 4 << 20);
    let out = master.import_pack(&ga);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("wso2is 5.11.0 level 0: imported"),
        "{}",
        out.all()
    );
    let again = master.import_pack(&ga);
    assert_eq!(again.code, 0, "re-import must succeed: {}", again.all());
    assert!(again.stdout.contains("already imported"), "{}", again.all());

    // GA install.
    let node = TestAgent::new("prod-1");
    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    let ga_release = current_release(&node);
    assert!(
        ga_release.starts_with(node.path("/opt/wso2/releases")),
        "{}",
        ga_release.display()
    );
    for i in [0, 1, 2, 3, 499] {
        let path = node.path(LINK).join(SamplePack::file_path(i));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            ga.content(i),
            "{}",
            path.display()
        );
    }
    let script = node.path(LINK).join("bin/wso2server.sh");
    use std::os::unix::fs::PermissionsExt;
    // Shared with the cache: the pack's execute bits, no write bits.
    assert_eq!(
        std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o555
    );
    let rendered =
        std::fs::read_to_string(node.path(LINK).join("repository/conf/deployment.toml")).unwrap();
    // The pack's own file with the module's edits: its comments stay, the
    // site's values are set.
    assert!(
        rendered.contains("# Reference copy of the deployment.toml")
            && rendered.contains("hostname = \"is.demo.example.com\""),
        "the module edits the pack's file: {rendered}"
    );
    let logs = node.link_target(&format!("{LINK}/repository/logs"));
    assert_eq!(logs, node.path("/var/log/wso2/wso2is"));

    let converged = node.once(&master.url(), &[]);
    assert_eq!(converged.code, 0, "{}", converged.all());
    assert_eq!(fetched(&converged), (0, 0));

    // Level 1 changes 2% of the files: only those blobs (and the new
    // manifest) cross the wire.
    let update = ga.at_level(1, 20);
    let out = master.import_update(&update);
    assert_eq!(out.code, 0, "{}", out.all());
    // The update changes a file the module edits: the operator is told
    // that every edit still applies to the level's file.
    assert!(
        out.stdout.contains(
            "EDITED repository/conf/deployment.toml: the level changes it; every edit of module wso2is (templates/deployment.toml.edits.toml) still applies"
        ),
        "{}",
        out.all()
    );
    let changed: Vec<usize> = (0..ga.files).filter(|&i| update.changes(i)).collect();
    assert!((5..=15).contains(&changed.len()), "{}", changed.len());
    let changed_bytes: u64 = changed
        .iter()
        .map(|&i| update.content(i).len() as u64)
        .sum();
    // updates/config.json, the start script and the pack's deployment.toml change too.
    let extra = [
        "{\"update-level\": \"1\", \"channel\": \"full\"}\n".len(),
        update.start_script().len(),
        update.level_config().1.len(),
    ];
    let unencoded_bytes =
        changed_bytes + extra.iter().map(|n| *n as u64).sum::<u64>() + manifest_size(&master, 1);
    let upgrade = node.once(&master.url(), &[]);
    assert_eq!(upgrade.code, 2, "{}", upgrade.all());
    // The changed jars travel as they are; the manifest and the text files
    // gzip-encoded (smaller).
    let (blobs, bytes) = fetched(&upgrade);
    assert_eq!(blobs, changed.len() as u64 + 4, "{}", upgrade.all());
    assert!(
        changed_bytes < bytes && bytes < unencoded_bytes - manifest_size(&master, 1) / 2,
        "{bytes} bytes fetched: the changed jars are {changed_bytes}, everything unencoded {unencoded_bytes}: {}",
        upgrade.all()
    );
    let l1_release = current_release(&node);
    let rendered =
        std::fs::read_to_string(node.path(LINK).join("repository/conf/deployment.toml")).unwrap();
    assert!(
        rendered.contains("hsts_enabled = true") && rendered.contains("is.demo.example.com"),
        "the level's change with the edits on it: {rendered}"
    );
    assert_ne!(l1_release, ga_release);
    assert_eq!(
        std::fs::read(node.path(LINK).join(SamplePack::file_path(changed[0]))).unwrap(),
        update.content(changed[0])
    );
    assert!(ga_release.is_dir(), "the previous release is kept");
    let again = node.once(&master.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());

    // Roll back by pinning the role to level 0: a new catalog version that
    // points at the old tree; the kept release is switched to, nothing fetched.
    master.edit_site("roles/is.toml", |t| {
        t.replace("update_level = \"latest\"", "update_level = 0")
    });
    let rollback = node.once(&master.url(), &[]);
    assert_eq!(rollback.code, 2, "{}", rollback.all());
    assert_eq!(fetched(&rollback), (0, 0), "{}", rollback.all());
    assert!(rollback.stdout.contains("switch"), "{}", rollback.all());
    assert_eq!(current_release(&node), ga_release);
    assert_eq!(
        std::fs::read(node.path(LINK).join(SamplePack::file_path(changed[0]))).unwrap(),
        ga.content(changed[0])
    );
    assert_eq!(node.once(&master.url(), &[]).code, 0);
}

#[test]
fn a_crash_while_materialising_never_switches_to_an_incomplete_release() {
    let master = TestMaster::start_empty();
    let ga = SamplePack::new(300, 2 << 20);
    assert_eq!(master.import_pack(&ga).code, 0);
    let node = TestAgent::new("crash-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let ga_release = current_release(&node);

    assert_eq!(master.import_update(&ga.at_level(1, 50)).code, 0);
    let crashed = std::process::Command::new(rigger_tests::bin("rigger-agent"))
        .arg("--root")
        .arg(node.root())
        .args([
            "--master",
            &master.url(),
            "--imds-endpoint",
            "off",
            "--once",
        ])
        .env("FAILPOINTS", "materialize-file=100*off->return")
        .output()
        .unwrap();
    assert_ne!(crashed.status.code(), Some(0), "the failpoint did not fire");
    assert!(
        String::from_utf8_lossy(&crashed.stderr).contains("failpoint"),
        "{crashed:?}"
    );
    assert_eq!(
        current_release(&node),
        ga_release,
        "CARBON_HOME moved to an incomplete release"
    );
    let leftovers: Vec<_> = std::fs::read_dir(node.path("/opt/wso2/releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers.iter().any(|n| n.starts_with(".tmp-")),
        "{leftovers:?}"
    );

    let recovered = node.once(&master.url(), &[]);
    assert_eq!(recovered.code, 2, "{}", recovered.all());
    assert_eq!(
        fetched(&recovered),
        (0, 0),
        "blobs fetched before the crash are reused: {}",
        recovered.all()
    );
    assert_ne!(current_release(&node), ga_release);
    let names: Vec<_> = std::fs::read_dir(node.path("/opt/wso2/releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".tmp-")),
        "stale temporary release left: {names:?}"
    );
    assert_eq!(node.once(&master.url(), &[]).code, 0);
}

#[test]
fn modified_release_files_are_repaired_and_runtime_paths_left_alone() {
    let master = TestMaster::start_empty();
    let ga = SamplePack::new(50, 1 << 20);
    assert_eq!(master.import_pack(&ga).code, 0);
    let node = TestAgent::new("repair-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);

    // A plugin jar (files under repository/deployment are the server's own).
    let jar = node.path(LINK).join(SamplePack::file_path(4));
    std::fs::write(&jar, b"tampered").unwrap();
    std::fs::create_dir_all(node.path(LINK).join("tmp/work")).unwrap();
    std::fs::write(node.path(LINK).join("tmp/work/server-state"), b"runtime").unwrap();
    let noop = node.once(&master.url(), &["--noop"]);
    assert_eq!(noop.code, 2, "{}", noop.all());
    assert!(
        noop.stdout.contains("repair 1 modified file"),
        "{}",
        noop.all()
    );
    let run = node.once(&master.url(), &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(std::fs::read(&jar).unwrap(), ga.content(4));
    assert_eq!(
        std::fs::read(node.path(LINK).join("tmp/work/server-state")).unwrap(),
        b"runtime"
    );
    let verify = node.once(&master.url(), &["--verify"]);
    assert_eq!(
        verify.code,
        0,
        "a full re-hash finds nothing more: {}",
        verify.all()
    );
}

/// Changes a read-only release file in place (root can; a non-root test
/// run, which owns the shared inode, makes it writable first).
fn change_in_place(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn a_change_through_a_file_releases_share_is_repaired_in_every_release_and_never_served_again() {
    let master = TestMaster::start_empty();
    let ga = SamplePack::new(60, 1 << 20);
    assert_eq!(master.import_pack(&ga).code, 0);
    let node = TestAgent::new("share-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let ga_release = current_release(&node);
    let update = ga.at_level(1, 100);
    assert_eq!(master.import_update(&update).code, 0);
    assert_eq!(node.once(&master.url(), &[]).code, 2);
    let l1_release = current_release(&node);
    // A plugin jar level 1 did not change: both releases and the cache
    // share its bytes (one inode).
    let i = (0..ga.files)
        .find(|&i| i % 4 == 0 && !update.changes(i))
        .unwrap();
    let file = SamplePack::file_path(i);
    let object = BlobLayout::new(node.path("/var/lib/rigger/agent/cache"))
        .path_of(&rigger_common::digest::Digest::of(&ga.content(i)));
    assert_eq!(inode(&l1_release.join(&file)), inode(&object));
    assert_eq!(inode(&ga_release.join(&file)), inode(&object));

    // Root edits the running release's jar in place.
    change_in_place(&l1_release.join(&file), b"patched by hand");
    let run = node.once(&master.url(), &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stdout.contains("repair 1 modified file"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("fetching blobs again"), "{}", run.all());
    // The cache dropped the changed bytes and fetched the blob again; both
    // releases hold the verified object.
    assert_eq!(std::fs::read(&object).unwrap(), ga.content(i));
    for release in [&l1_release, &ga_release] {
        let path = release.join(&file);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            ga.content(i),
            "{}",
            path.display()
        );
        assert_eq!(inode(&path), inode(&object), "{}", path.display());
    }

    // A mode change: repaired with a fresh object, the changed inode left
    // alone (a name the test keeps for it still shows its mode).
    use std::os::unix::fs::PermissionsExt;
    let witness = node.root().join("witness");
    std::fs::hard_link(l1_release.join(&file), &witness).unwrap();
    std::fs::set_permissions(
        l1_release.join(&file),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let run = node.once(&master.url(), &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&witness), 0o666);
    for release in [&l1_release, &ga_release] {
        let path = release.join(&file);
        assert_eq!(mode(&path), 0o444, "{}", path.display());
        assert_ne!(inode(&path), inode(&witness), "{}", path.display());
    }

    // Runtime paths are the server's: copies, writable by it.
    let runtime = (0..ga.files).find(|&i| i % 4 == 3).unwrap();
    let runtime_file = l1_release.join(SamplePack::file_path(runtime));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&runtime_file).unwrap().nlink(), 1);

    // Rolling back finds the kept release intact.
    master.edit_site("roles/is.toml", |t| {
        t.replace("update_level = \"latest\"", "update_level = 0")
    });
    let rollback = node.once(&master.url(), &[]);
    assert_eq!(rollback.code, 2, "{}", rollback.all());
    assert!(!rollback.stdout.contains("repair"), "{}", rollback.all());
    let verify = node.once(&master.url(), &["--verify"]);
    assert_eq!(
        verify.code,
        0,
        "a full re-hash finds nothing: {}",
        verify.all()
    );
}

#[test]
fn a_bundle_update_and_a_tar_gz_pack_import() {
    let master = TestMaster::start_empty();
    let ga = SamplePack::new(20, 64 << 10);
    assert_eq!(master.import_pack(&ga).code, 0);

    // An update bundle: one changed file, one removed, a descriptor.
    let bundle = master.data_dir().join("../bundle.zip");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&bundle).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("rigger-update.toml", opts).unwrap();
        zip.write_all(
            format!("level = 4\nremoved = [\"{}\"]\n", SamplePack::file_path(1)).as_bytes(),
        )
        .unwrap();
        zip.start_file(SamplePack::file_path(0), opts).unwrap();
        zip.write_all(b"patched jar").unwrap();
        zip.finish().unwrap();
    }
    let out = master.ctl(&[
        "update",
        "import",
        "wso2is@5.11.0",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("level 4: imported"), "{}", out.all());
    assert!(
        out.stdout.contains("2 paths differ from level 0"),
        "{}",
        out.all()
    );

    let node = TestAgent::new("bundle-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    assert_eq!(
        std::fs::read(node.path(LINK).join(SamplePack::file_path(0))).unwrap(),
        b"patched jar"
    );
    assert!(!node.path(LINK).join(SamplePack::file_path(1)).exists());

    // A JDK-like tar.gz with a symlink; name and version from its top folder.
    let tgz = master.data_dir().join("../jdk.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        tar.append_data(&mut header, "jdk-17.0.6+10/bin/java", &b"java\n"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        tar.append_link(&mut link, "jdk-17.0.6+10/bin/javaw", "java")
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let out = master.ctl(&["product", "import", tgz.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("jdk 17.0.6 level 0: imported"),
        "{}",
        out.all()
    );
}

#[test]
fn catalog_rollback_pins_a_node_to_old_content_until_unpinned() {
    let master = TestMaster::start_empty();
    let ga = SamplePack::new(60, 512 << 10);
    assert_eq!(master.import_pack(&ga).code, 0);
    let node = TestAgent::new("pin-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let ga_release = current_release(&node);
    assert_eq!(master.import_update(&ga.at_level(2, 100)).code, 0);
    let up = node.once(&master.url(), &[]);
    assert!(up.stdout.contains("catalog version 2"), "{}", up.all());
    let l2_release = current_release(&node);

    let out = master.ctl(&["catalog", "rollback", "pin-1", "--to", "1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("new catalog version 3"),
        "{}",
        out.all()
    );
    let back = node.once(&master.url(), &[]);
    assert_eq!(back.code, 2, "{}", back.all());
    assert!(back.stdout.contains("catalog version 3"), "{}", back.all());
    assert_eq!(fetched(&back), (0, 0));
    assert_eq!(current_release(&node), ga_release);
    // Pinned: the site's latest level does not apply.
    assert_eq!(node.once(&master.url(), &[]).code, 0);

    let out = master.ctl(&["catalog", "unpin", "pin-1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let forward = node.once(&master.url(), &[]);
    assert_eq!(forward.code, 2, "{}", forward.all());
    assert!(
        forward.stdout.contains("catalog version 4"),
        "{}",
        forward.all()
    );
    assert_eq!(current_release(&node), l2_release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_may_fetch_only_blobs_its_catalog_references() {
    let (master, node) = tokio::task::spawn_blocking(|| {
        let master = TestMaster::start();
        let node = TestAgent::new("blob-1");
        assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
        (master, node)
    })
    .await
    .unwrap();
    let ssl = node.path("/var/lib/rigger/agent/ssl");
    let read = |f: &str| std::fs::read_to_string(ssl.join(f)).unwrap();
    let identity = rigger_common::tls::ClientIdentity {
        cert_pem: read("node.crt"),
        key_pem: read("node.key"),
    };
    let config = rigger_common::tls::client_config(&read("ca.crt"), Some(&identity)).unwrap();
    let address = rigger_common::grpc::MasterAddress::parse(&master.url()).unwrap();
    let channel = rigger_common::grpc::tls_channel(
        &address,
        std::sync::Arc::new(config),
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let mut client =
        rigger_common::proto::content_service_client::ContentServiceClient::new(channel);
    let foreign = rigger_common::digest::Digest::of(b"someone else's secret keystore");
    let err = client
        .fetch_blobs(rigger_common::proto::FetchBlobsRequest {
            digests: vec![foreign.to_string()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("not referenced by the catalog of node blob-1"),
        "{}",
        err.message()
    );
    tokio::task::spawn_blocking(move || drop((master, node)))
        .await
        .unwrap();
}

#[test]
fn an_artifact_is_fetched_into_every_release_and_follows_reimports() {
    let master = TestMaster::start();
    let jar = master.data_dir().join("../mysql-connector-j-8.0.33.jar");
    std::fs::write(&jar, b"PK driver v8.0.33").unwrap();
    let out = master.ctl(&[
        "artifact",
        "import",
        jar.to_str().unwrap(),
        "--name",
        "mysql-connector",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    master.edit_site("roles/is.toml", |t| {
        format!("{t}\n[jdbc_driver]\nartifact = \"mysql-connector\"\n")
    });

    let node = TestAgent::new("jdbc-1");
    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    let driver = node
        .path(LINK)
        .join("repository/components/lib/mysql-connector-j.jar");
    assert_eq!(std::fs::read(&driver).unwrap(), b"PK driver v8.0.33");
    assert_eq!(node.once(&master.url(), &[]).code, 0);

    std::fs::write(&jar, b"PK driver v8.4.0").unwrap();
    assert_eq!(
        master
            .ctl(&[
                "artifact",
                "import",
                jar.to_str().unwrap(),
                "--name",
                "mysql-connector"
            ])
            .code,
        0
    );
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(fetched(&out).0, 1, "{}", out.all());
    assert_eq!(std::fs::read(&driver).unwrap(), b"PK driver v8.4.0");
}

/// The secrets a production `is` role needs beyond the example's.
#[test]
fn an_update_level_reaches_production_only_when_promoted() {
    let master = TestMaster::start();
    // The role runs in production (not a development environment).
    master.edit_site("environments/production.toml", |_| {
        "[server]\nhostname = \"is.prod.example.com\"\n".into()
    });
    master.edit_site("roles/is.toml", |t| {
        t.replace("environment = \"demo\"", "environment = \"production\"")
    });
    master.edit_site("secrets/roles/is.toml", |t| {
        format!("{t}{}", rigger_tests::cluster::PRODUCTION_SECRETS)
    });
    let node = TestAgent::new("promo-1");
    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    let ga_release = current_release(&node);
    assert!(
        ga_release.to_string_lossy().contains("-L0-"),
        "{}",
        ga_release.display()
    );

    // A new level is imported: a development environment would take it;
    // production stays on GA until it is promoted.
    let update = SamplePack::new(40, 256 << 10).at_level(1, 50);
    let out = master.import_update(&update);
    assert_eq!(out.code, 0, "{}", out.all());
    let listed = master.ctl(&["product", "list"]);
    let line = |level: &str| {
        listed
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(level))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("0").contains("production"), "{}", listed.all());
    assert!(line("1").contains("demo"), "{}", listed.all());
    let again = node.once(&master.url(), &[]);
    assert_eq!(again.code, 0, "production stays on GA: {}", again.all());
    assert_eq!(current_release(&node), ga_release);

    // Promotion: a level that is not imported, or a development
    // environment, is refused with why.
    let refused = master.ctl(&[
        "update",
        "promote",
        "wso2is@5.11.0",
        "--level",
        "7",
        "--to",
        "production",
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .all()
            .contains("level 7 of wso2is 5.11.0 is not imported (imported: 0, 1)"),
        "{}",
        refused.all()
    );
    let refused = master.ctl(&[
        "update",
        "promote",
        "wso2is@5.11.0",
        "--level",
        "1",
        "--to",
        "demo",
    ]);
    assert!(
        refused.all().contains("development environment"),
        "{}",
        refused.all()
    );
    let refused = master.ctl(&[
        "update",
        "promote",
        "wso2is@5.11.0",
        "--level",
        "1",
        "--to",
        "prodution",
    ]);
    assert!(
        refused
            .all()
            .contains("environment \"prodution\" is not in the site"),
        "{}",
        refused.all()
    );
    let promoted = master.ctl(&[
        "update",
        "promote",
        "wso2is@5.11.0",
        "--level",
        "1",
        "--to",
        "production",
    ]);
    assert_eq!(promoted.code, 0, "{}", promoted.all());
    assert!(
        promoted
            .stdout
            .contains("environment production runs level 1 (was 0)"),
        "{}",
        promoted.all()
    );
    let upgraded = node.once(&master.url(), &[]);
    assert_eq!(upgraded.code, 2, "{}", upgraded.all());
    assert!(current_release(&node).to_string_lossy().contains("-L1-"));
    let listed = master.ctl(&["product", "list", "--json"]);
    let levels: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        levels[1]["environments"],
        serde_json::json!(["demo", "production"])
    );
}
