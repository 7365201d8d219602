//! Remote administration: `masterctl admin issue` (on the master's socket)
//! gives an administrator a certificate with which `masterctl --master`
//! works over the node listener; every admin request is logged with who
//! made it; a node's certificate cannot administer, an admin certificate
//! is no node's, only the socket issues admin certificates, and a revoked
//! one is refused at the handshake.

use rigger_common::tls::ClientIdentity;
use rigger_tests::{Output, TestAgent, TestMaster};

fn remote(master: &TestMaster, cert: &str, key: &str, ca: &str, args: &[&str]) -> Output {
    Output::of(
        std::process::Command::new(rigger_tests::process::bin("masterctl"))
            .args([
                "--socket",
                "/nonexistent/admin.sock",
                "--master",
                &master.url(),
            ])
            .args(["--cert", cert, "--key", key, "--ca", ca])
            .args(args)
            .output()
            .expect("run masterctl"),
    )
}

#[test]
fn an_admin_certificate_administers_remotely_and_nothing_else_does() {
    let master = TestMaster::start();
    let node = TestAgent::new("admin-node-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = master.ctl(&[
        "admin",
        "issue",
        "alice",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let (cert, key, ca) = (path("alice.crt"), path("alice.key"), path("ca.crt"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Remotely, without the socket.
    let listed = remote(&master, &cert, &key, &ca, &["node", "list", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.all());
    assert!(listed.stdout.contains("admin-node-1"), "{}", listed.all());
    let log = master.log();
    assert!(log.contains("admin request"), "{log}");
    assert!(log.contains("admin alice"), "{log}");

    // Only the socket issues admin certificates.
    let out = remote(
        &master,
        &cert,
        &key,
        &ca,
        &[
            "admin",
            "issue",
            "mallory",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(!dir.path().join("mallory.crt").exists());

    // A node's certificate does not administer.
    let ssl = node.path("/var/lib/rigger/agent/ssl");
    let node_file = |f: &str| ssl.join(f).to_str().unwrap().to_string();
    let out = remote(
        &master,
        &node_file("node.crt"),
        &node_file("node.key"),
        &ca,
        &["node", "list"],
    );
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("admin-node-1 is a node"),
        "{}",
        out.all()
    );

    // An admin certificate is no node's.
    let identity = ClientIdentity {
        cert_pem: std::fs::read_to_string(&cert).unwrap(),
        key_pem: std::fs::read_to_string(&key).unwrap(),
    };
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let err =
        rigger_tests::node_client::get_catalog_blocking(&master.url(), &ca_pem, Some(&identity))
            .unwrap_err();
    assert!(err.starts_with("PermissionDenied"), "{err}");
    assert!(err.contains("is an admin certificate"), "{err}");

    // Listed with the certificates, and revoked like them.
    let certs = master.ctl(&["cert", "list"]);
    assert!(certs.stdout.contains("admin/alice"), "{}", certs.all());
    assert_eq!(master.ctl(&["cert", "revoke", "admin/alice"]).code, 0);
    let out = remote(&master, &cert, &key, &ca, &["node", "list"]);
    assert_ne!(out.code, 0, "{}", out.all());
}
