//! Everything the master or the agent must refuse, each with a clear error
//! and nothing applied: bad tokens, missing or foreign certificates,
//! catalogs signed by another key, older catalog versions, a wrong CA
//! fingerprint and a role other than the token's.

use std::time::Duration;

use rigger_common::tls::ClientIdentity;
use rigger_tests::node_client::get_catalog;
use rigger_tests::{TestAgent, TestMaster};

const RELEASES: &str = "/opt/wso2/releases";
const DEPLOYMENT_TOML: &str = "/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml";

#[test]
fn a_used_up_or_unknown_token_is_refused_and_nothing_is_applied() {
    let master = TestMaster::start();
    let token = master.token(&["--role", "is", "--uses", "1"]);
    let fp = master.fingerprint();
    let first = TestAgent::new("node-a");
    assert_eq!(
        first
            .once(&master.url(), &["--token", &token, "--ca-fingerprint", &fp])
            .code,
        2
    );

    let second = TestAgent::new("node-b");
    let out = second.once(&master.url(), &["--token", &token, "--ca-fingerprint", &fp]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("used up"), "{}", out.all());
    assert!(!second.path("/opt").exists(), "something was applied");

    let out = second.once(&master.url(), &["--token", "0000", "--ca-fingerprint", &fp]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("bootstrap token is not valid"),
        "{}",
        out.all()
    );
    assert!(!second.path("/opt").exists());
}

#[test]
fn a_wrong_ca_fingerprint_is_refused_before_enrolling() {
    let master = TestMaster::start();
    let token = master.token(&["--role", "is"]);
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let node = TestAgent::new("node-fp");
    let out = node.once(
        &master.url(),
        &["--token", &token, "--ca-fingerprint", &wrong],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("refusing to trust it"), "{}", out.all());
    assert!(!node.path("/var/lib/rigger/agent/ssl/node.crt").exists());
    // The token was not spent: a correct fingerprint still enrolls.
    let out = node.once(
        &master.url(),
        &["--token", &token, "--ca-fingerprint", &master.fingerprint()],
    );
    assert_eq!(out.code, 2, "{}", out.all());
}

#[test]
fn a_node_may_not_ask_for_another_role_than_its_tokens() {
    let master = TestMaster::start();
    let token = master.token(&["--role", "is"]);
    let node = TestAgent::new("node-role");
    let fp = master.fingerprint();
    let out = node.once(
        &master.url(),
        &["--token", &token, "--ca-fingerprint", &fp, "--role", "apim"],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("may not ask for role \"apim\""),
        "{}",
        out.all()
    );
    assert!(!node.path("/opt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_or_with_a_foreign_one_are_refused() {
    let master = tokio::task::spawn_blocking(TestMaster::start)
        .await
        .unwrap();
    let ca_pem = std::fs::read_to_string(master.data_dir().join("ca.crt")).unwrap();

    let err = get_catalog(&master.url(), &ca_pem, None).await.unwrap_err();
    assert!(err.starts_with("Unauthenticated"), "{err}");
    assert!(err.contains("requires a client certificate"), "{err}");

    // A certificate for the same name from another CA fails the handshake.
    let other = tempfile::tempdir().unwrap();
    let other_ca = rigger_master::ca::CertificateAuthority::load_or_create(other.path()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "node-a");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let issued = other_ca.sign_node_csr(&csr, "node-a").unwrap();
    let foreign = ClientIdentity {
        cert_pem: issued.pem,
        key_pem: key.serialize_pem(),
    };
    let err = get_catalog(&master.url(), &ca_pem, Some(&foreign))
        .await
        .unwrap_err();
    // TLS 1.3 clients learn of the rejection only as a closed connection;
    // the master names the reason in its log.
    assert!(err.contains("transport error"), "{err}");
    let log = rigger_tests::wait_for(
        "the master to log the refusal",
        Duration::from_secs(10),
        || {
            let log = master.log();
            log.contains("TLS handshake refused").then_some(log)
        },
    );
    assert!(
        log.contains("UnknownIssuer")
            || log.contains("unknown issuer")
            || log.contains("BadSignature"),
        "{log}"
    );
    tokio::task::spawn_blocking(move || drop(master))
        .await
        .unwrap();
}

#[test]
fn a_catalog_signed_by_another_key_is_refused_and_nothing_is_applied() {
    let mut master = TestMaster::start();
    let node = TestAgent::new("node-key");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let before = std::fs::read_to_string(node.path(DEPLOYMENT_TOML)).unwrap();

    // The master comes back with a different signing key (stolen or
    // restored wrongly). The master itself refuses to start: its store
    // records the fleet's key.
    master.stop();
    std::fs::remove_file(master.data_dir().join("catalog-signing.key")).unwrap();
    let said =
        rigger_tests::process::master_refusing(&master.data_dir(), &master.site(), &[], &[]).stderr;
    assert!(said.contains("catalog-signing.key"), "{said}");
    // Whoever also rewrites the store's record gets a master that serves:
    // its catalogs must still not be applied.
    forget_fleet_keys(&master.data_dir().join("master.db"));
    master.edit_site("roles/is.toml", |t| {
        t.replace("xmx = \"2048m\"", "xmx = \"8g\"")
    });
    master.restart();
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("signature does not verify"),
        "{}",
        out.all()
    );
    assert_eq!(
        std::fs::read_to_string(node.path(DEPLOYMENT_TOML)).unwrap(),
        before
    );
    let env =
        std::fs::read_to_string(node.path("/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh")).unwrap();
    assert!(
        !env.contains("8g"),
        "change applied from a foreign-signed catalog"
    );
}

#[test]
fn a_master_that_lost_its_history_continues_above_the_version_the_node_applied() {
    let mut master = TestMaster::start();
    let node = TestAgent::new("node-old");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    master.edit_site("roles/is.toml", |t| {
        t.replace("xmx = \"2048m\"", "xmx = \"3g\"")
    });
    let out = node.once(&master.url(), &[]);
    assert!(out.stdout.contains("catalog version 2"), "{}", out.all());

    // The master loses its catalog history (a database from before
    // version 2): left alone it would issue version 1 again, with other
    // content. The node says what it applied, and the master goes above.
    master.stop();
    let db = master.data_dir().join("master.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("DELETE FROM catalogs")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE nodes SET applied_version = 0, applied_digest = '', applied_epoch = ''",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
    master.edit_site("roles/is.toml", |t| {
        t.replace("xmx = \"3g\"", "xmx = \"1g\"")
    });
    master.restart();
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stdout.contains("catalog version 3"), "{}", out.all());
    let env =
        std::fs::read_to_string(node.path("/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh")).unwrap();
    assert!(env.contains("-Xmx1g"), "{env}");
    assert!(
        master
            .log()
            .contains("the node applied a version this master does not hold"),
        "{}",
        master.log()
    );
}

/// The files enrollment writes once the master answered.
const ANSWERED: [&str; 3] = ["node.crt", "ca.crt", "catalog-signing.pub"];

#[test]
fn a_lost_enrollment_reply_never_locks_the_node_out() {
    let master = TestMaster::start();
    let token = master.token(&["--role", "is", "--uses", "1"]);
    let fp = master.fingerprint();
    let node = TestAgent::new("lost-reply");
    let args = ["--token", token.as_str(), "--ca-fingerprint", fp.as_str()];
    assert_eq!(node.once(&master.url(), &args).code, 2);
    let ssl = node.path("/var/lib/rigger/agent/ssl");
    let issued = std::fs::read_to_string(ssl.join("node.crt")).unwrap();

    // The reply is lost: only the key the agent made is on disk. Asking
    // again with that key needs no token (this one is used up) and gets
    // the same certificate.
    for retry in [&args[..], &["--ca-fingerprint", fp.as_str()][..]] {
        for file in ANSWERED {
            std::fs::remove_file(ssl.join(file)).unwrap();
        }
        let out = node.once(&master.url(), retry);
        assert_eq!(out.code, 0, "{}", out.all());
        assert_eq!(
            std::fs::read_to_string(ssl.join("node.crt")).unwrap(),
            issued
        );
    }
    let certs = master.ctl(&["cert", "list"]);
    assert_eq!(
        certs.stdout.matches("lost-reply").count(),
        1,
        "{}",
        certs.all()
    );

    // Another key under the same name is not that node.
    for file in ANSWERED.iter().chain(&["node.key"]) {
        std::fs::remove_file(ssl.join(file)).unwrap();
    }
    let out = node.once(&master.url(), &args);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("used up"), "{}", out.all());
    let fresh = master.token(&["--role", "is"]);
    let out = node.once(&master.url(), &["--token", &fresh, "--ca-fingerprint", &fp]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("already holds a valid certificate for another key"),
        "{}",
        out.all()
    );
}

#[test]
fn two_first_runs_on_one_root_enroll_once() {
    let master = TestMaster::start();
    let token = master.token(&["--role", "is", "--uses", "2"]);
    let fp = master.fingerprint();
    let node = TestAgent::new("twice");
    let url = master.url();
    let outs: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| node.once(&url, &["--token", &token, "--ca-fingerprint", &fp])))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut codes: Vec<i32> = outs.iter().map(|o| o.code).collect();
    codes.sort();
    assert_eq!(codes, [0, 2], "{}\n{}", outs[0].all(), outs[1].all());
    let certs = master.ctl(&["cert", "list"]);
    assert_eq!(certs.stdout.matches("twice").count(), 1, "{}", certs.all());
}

#[test]
fn a_token_binds_a_role_unless_the_operator_says_unbound() {
    let master = TestMaster::start();
    let out = master.ctl(&["token", "create"]);
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(
        out.stderr.contains("--role") && out.stderr.contains("--unbound"),
        "{}",
        out.all()
    );
    let out = master.ctl(&["token", "create", "--role", "is", "--unbound"]);
    assert_eq!(out.code, 64, "{}", out.all());
    let out = master.ctl(&["token", "create", "--unbound"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout.trim().len(), 64, "{}", out.all());
}

/// Fixture `planted-links`: links put on the node by something other than
/// Rigger (an absolute one, and a `..` chain of links each "inside" alone)
/// where the agent is about to install. The kernel resolves every write
/// beneath `--root`: nothing reaches the directories they name outside it.
#[test]
fn links_planted_on_the_node_cannot_take_a_write_outside_the_root() {
    let master = TestMaster::start();
    let token = master.token(&["--role", "is", "--uses", "2"]);
    let fp = master.fingerprint();
    let outside = tempfile::tempdir().unwrap();
    let outside_dir = outside.path().to_str().unwrap().to_string();

    // The releases folder is an absolute link to a directory outside the root.
    let absolute = TestAgent::new("planted-abs");
    std::fs::create_dir_all(absolute.path("/opt/wso2")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, absolute.path(RELEASES)).unwrap();
    // It is a relative chain: releases -> ../../lib/e1/../../…/OUT with
    // lib/e1 -> .. (lib/e1 alone stays inside the root; the chain climbs out).
    let chain = TestAgent::new("planted-chain");
    std::fs::create_dir_all(chain.path("/lib")).unwrap();
    std::fs::create_dir_all(chain.path("/opt/wso2")).unwrap();
    std::os::unix::fs::symlink("..", chain.path("/lib/e1")).unwrap();
    let depth = chain.root().components().count() + 2;
    let climb = format!(
        "../../lib/e1/{}{}",
        "../".repeat(depth),
        outside_dir.trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&climb, chain.path(RELEASES)).unwrap();
    assert!(
        chain.path(RELEASES).canonicalize().unwrap() == outside.path().canonicalize().unwrap(),
        "the fixture's chain must name the outside directory when followed"
    );

    for node in [&absolute, &chain] {
        let out = node.once(&master.url(), &["--token", &token, "--ca-fingerprint", &fp]);
        assert_eq!(out.code & 4, 4, "the run must fail: {}", out.all());
        assert!(
            out.all().contains("cannot open"),
            "the error names what could not be opened: {}",
            out.all()
        );
        let written: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            written.is_empty(),
            "the agent wrote outside its root: {written:?}"
        );
    }
}

/// Deletes the fleet's recorded keys from a stopped master's database (as
/// an intruder with the database could).
fn forget_fleet_keys(db: &std::path::Path) {
    use sqlx::ConnectOptions;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .connect()
            .await
            .unwrap();
        sqlx::query("DELETE FROM fleet")
            .execute(&mut conn)
            .await
            .unwrap();
    });
}
