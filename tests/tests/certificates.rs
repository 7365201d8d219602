//! The node certificate's life: revocation at the handshake (`masterctl
//! cert revoke` refuses it at the next TLS handshake, closes the node's
//! open connections at once, across a master restart) and renewal (the
//! agent renews at two thirds of the lifetime, with a new key, over the
//! authenticated channel; a node renews only its own, only when due, only
//! while not revoked).

use std::time::Duration;

use rigger_common::tls::ClientIdentity;
use rigger_tests::{TestAgent, TestMaster, wait_for};

const SSL: &str = "/var/lib/rigger/agent/ssl";

fn get_catalog(master_url: &str, ca_pem: &str, identity: &ClientIdentity) -> Result<(), String> {
    rigger_tests::node_client::get_catalog_blocking(master_url, ca_pem, Some(identity))
}

#[test]
fn a_revoked_certificate_is_refused_at_the_handshake_and_its_connections_end_at_once() {
    let mut master = TestMaster::start();
    let mut node = TestAgent::new("revoked-1");
    let other = TestAgent::new("revoked-2");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    assert_eq!(other.enroll(&master, &["--role", "is"]).code, 2);
    let identity = |agent: &TestAgent| ClientIdentity {
        cert_pem: std::fs::read_to_string(agent.path(&format!("{SSL}/node.crt"))).unwrap(),
        key_pem: std::fs::read_to_string(agent.path(&format!("{SSL}/node.key"))).unwrap(),
    };
    let ca_pem = std::fs::read_to_string(master.data_dir().join("ca.crt")).unwrap();
    get_catalog(&master.url(), &ca_pem, &identity(&node)).expect("not revoked yet");

    // The node's daemon holds its watch stream open.
    node.start_daemon(&master.url(), &["--run-interval", "30m", "--splay", "0s"]);
    wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() > Some(0) && s["running"] == false).then_some(())
    });
    // The watch stream is opened after the first run; give it a moment.
    std::thread::sleep(Duration::from_secs(1));

    let out = master.ctl(&["cert", "revoke", "revoked-1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("revoked 1 certificate(s) of revoked-1"),
        "{}",
        out.all()
    );
    let closed: u32 = out
        .stdout
        .split("; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        closed >= 1,
        "the daemon's connection was left open: {}",
        out.all()
    );

    // A new connection with its certificate fails the handshake itself,
    // not only at the RPC layer; the master's log names the reason.
    let err = get_catalog(&master.url(), &ca_pem, &identity(&node)).unwrap_err();
    assert!(err.contains("transport error"), "{err}");
    std::thread::sleep(Duration::from_secs(1));
    let log = master.log();
    assert!(log.contains("invalid peer certificate: Revoked"), "{log}");
    assert!(log.contains("TLS handshake refused"), "{log}");
    // Another node is not touched.
    get_catalog(&master.url(), &ca_pem, &identity(&other)).expect("the other node");

    // The daemon's next run is refused, and says so.
    let run = node.ctl(&["run"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.all().contains("revoked"), "{}", run.all());
    node.stop_daemon();

    // The list the verifier uses is on disk and names the serial.
    let certs: serde_json::Value =
        serde_json::from_str(&master.ctl(&["cert", "list", "--json"]).stdout).unwrap();
    let revoked = certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["certname"] == "revoked-1")
        .unwrap();
    assert_eq!(revoked["state"], "revoked", "{certs}");
    assert!(revoked["revoked_at_ms"].as_i64() > Some(0), "{certs}");
    let crl = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(master.data_dir().join("crl.pem"))
        .output();
    if let Ok(crl) = crl {
        let text = String::from_utf8_lossy(&crl.stdout).to_uppercase();
        let serial = revoked["serial"].as_str().unwrap().to_uppercase();
        assert!(text.contains(&serial), "{text}");
    }
    let human = master.ctl(&["cert", "list"]);
    assert!(human.stdout.contains("revoked 20"), "{}", human.all());
    assert!(human.stdout.contains("days left)"), "{}", human.all());

    // The master's status names the list in force and the CA's expiry.
    let shown = master.ctl(&["status"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    assert!(
        shown.stdout.contains("names 1 certificate(s)"),
        "{}",
        shown.all()
    );
    assert!(
        shown
            .stdout
            .contains("certs:     1 valid, 1 revoked, 0 expired"),
        "{}",
        shown.all()
    );
    assert!(
        !shown.stdout.contains("WARNING"),
        "a new CA lasts 10 years: {}",
        shown.all()
    );
    let json: serde_json::Value =
        serde_json::from_str(&master.ctl(&["status", "--json"]).stdout).unwrap();
    let ca_days =
        (json["ca"]["not_after_ms"].as_i64().unwrap() - rigger_common::time::now_ms()) / 86_400_000;
    assert!((3600..=3660).contains(&ca_days), "{json}");
    assert_eq!(json["ca"]["expires_soon"], false, "{json}");
    assert_eq!(json["revocation_list"]["revoked"], 1, "{json}");
    assert_eq!(json["cert_lifetime_secs"], 90 * 86_400, "{json}");

    // Asked again, or for a name never enrolled: a clear answer.
    let again = master.ctl(&["cert", "revoke", "revoked-1"]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("revoked already"), "{}", again.all());
    let unknown = master.ctl(&["cert", "revoke", "no-such-node"]);
    assert_ne!(unknown.code, 0);
    assert!(
        unknown
            .stderr
            .contains("no certificate was issued to \"no-such-node\""),
        "{}",
        unknown.all()
    );

    // A restarted master still refuses it at the handshake.
    master.stop();
    master.restart();
    let err = get_catalog(&master.url(), &ca_pem, &identity(&node)).unwrap_err();
    assert!(err.contains("transport error"), "{err}");
    get_catalog(&master.url(), &ca_pem, &identity(&other)).expect("the other node");
}

fn identity_of(agent: &TestAgent) -> ClientIdentity {
    ClientIdentity {
        cert_pem: std::fs::read_to_string(agent.path(&format!("{SSL}/node.crt"))).unwrap(),
        key_pem: std::fs::read_to_string(agent.path(&format!("{SSL}/node.key"))).unwrap(),
    }
}

fn serials_of(master: &TestMaster, certname: &str) -> Vec<(String, String)> {
    let certs: serde_json::Value =
        serde_json::from_str(&master.ctl(&["cert", "list", "--json"]).stdout).unwrap();
    certs
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["certname"] == certname)
        .map(|c| {
            (
                c["serial"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_node_renews_its_certificate_with_a_new_key_and_only_its_own_only_when_due() {
    let master = TestMaster::start_with(&["--cert-lifetime", "15s"]);
    let node = TestAgent::new("renew-1");
    let other = TestAgent::new("renew-2");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    assert_eq!(other.enroll(&master, &["--role", "is"]).code, 2);
    let first = identity_of(&node);
    let ca_pem = std::fs::read_to_string(master.data_dir().join("ca.crt")).unwrap();

    // Too early: the master refuses a renewal before half the life.
    let early =
        rigger_tests::node_client::renew_blocking(&master.url(), &ca_pem, &first, "renew-1");
    let early = early.unwrap_err();
    assert!(early.starts_with("FailedPrecondition"), "{early}");
    assert!(early.contains("renewal opens at"), "{early}");
    // Renewing as another node: refused, whenever.
    let foreign =
        rigger_tests::node_client::renew_blocking(&master.url(), &ca_pem, &first, "renew-2");
    let foreign = foreign.unwrap_err();
    assert!(foreign.starts_with("PermissionDenied"), "{foreign}");
    assert!(
        foreign.contains("may renew only its own certificate"),
        "{foreign}"
    );

    // A revoked node cannot renew: its certificate is refused at the
    // handshake.
    assert_eq!(master.ctl(&["cert", "revoke", "renew-2"]).code, 0);
    let refused = rigger_tests::node_client::renew_blocking(
        &master.url(),
        &ca_pem,
        &identity_of(&other),
        "renew-2",
    );
    assert!(refused.unwrap_err().contains("transport error"));
    assert_eq!(serials_of(&master, "renew-2").len(), 1);

    // Two thirds through (10 s of 15), the next run renews.
    std::thread::sleep(Duration::from_secs(10));
    let run = node.once(&master.url(), &[]);
    assert!(run.code == 0 || run.code == 2, "{}", run.all());
    assert!(
        master.log().contains("certificate renewed"),
        "{}",
        master.log()
    );
    let renewed = identity_of(&node);
    assert_ne!(renewed.cert_pem, first.cert_pem);
    assert_ne!(renewed.key_pem, first.key_pem, "a renewal makes a new key");
    assert!(!node.path(&format!("{SSL}/node.key.next")).exists());
    assert!(!node.path(&format!("{SSL}/node.crt.next")).exists());
    let serials = serials_of(&master, "renew-1");
    assert_eq!(serials.len(), 2, "{serials:?}");
    // The new certificate works; the node runs on with it.
    rigger_tests::node_client::get_catalog_blocking(&master.url(), &ca_pem, Some(&renewed))
        .expect("the renewed certificate");
    // (It may pick up renew-2 as a peer, enrolled after its first run.)
    let again = node.once(&master.url(), &[]);
    assert!(again.code == 0 || again.code == 2, "{}", again.all());
    assert!(
        !again.stderr.contains("certificate renewed"),
        "{}",
        again.all()
    );

    // Past the first certificate's end, the node works on with the new one.
    std::thread::sleep(Duration::from_secs(6));
    let later = node.once(&master.url(), &[]);
    assert_eq!(later.code, 0, "{}", later.all());
    let mut states: Vec<String> = serials_of(&master, "renew-1")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    states.sort();
    assert_eq!(states, ["expired", "valid"]);
    let err = rigger_tests::node_client::get_catalog_blocking(&master.url(), &ca_pem, Some(&first))
        .unwrap_err();
    assert!(
        err.contains("transport error"),
        "the expired certificate: {err}"
    );
}

#[test]
fn a_catalog_is_signed_again_before_it_expires_and_an_expired_cached_one_is_still_enforced() {
    let mut master = TestMaster::start_with(&["--catalog-ttl", "6s"]);
    let node = TestAgent::new("expiry-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let expiry = |master: &TestMaster| {
        let shown = master.ctl(&["catalog", "show", "expiry-1", "--json"]);
        let catalog: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
        (
            catalog["version"].as_u64().unwrap(),
            catalog["expires_at_ms"].as_i64().unwrap(),
            catalog["epoch"].as_str().unwrap().to_string(),
        )
    };
    let (version, first, epoch) = expiry(&master);
    assert_eq!(epoch.len(), 16, "the master's epoch");
    let now = rigger_common::time::now_ms();
    assert!(first > now && first <= now + 6_000, "{first} vs {now}");

    // Past half its validity, the next request gets the same version
    // signed again with a later expiry: nothing to apply.
    std::thread::sleep(Duration::from_millis(3_500));
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let (same, later, _) = expiry(&master);
    assert_eq!(same, version);
    assert!(later > first, "{later} vs {first}");

    // The master goes away for longer than that: the node still enforces
    // its cached catalog, and says it expired.
    master.stop();
    std::thread::sleep(Duration::from_millis(6_500));
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("the catalog has expired"),
        "{}",
        out.all()
    );
    master.restart();
}

/// Whether `openssl verify` says `ca_file` signed the certificate `cert`.
fn signed_by(ca_file: &std::path::Path, cert: &std::path::Path) -> bool {
    std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca_file)
        .arg(cert)
        .output()
        .expect("openssl runs")
        .status
        .success()
}

#[test]
fn a_ca_rotation_reaches_the_nodes_and_stops_nothing() {
    if rigger_tests::services::program_or_skip(
        "a_ca_rotation_reaches_the_nodes_and_stops_nothing",
        "openssl",
        "openssl",
    )
    .is_none()
    {
        return;
    }
    let mut master = TestMaster::start();
    let node = TestAgent::new("rotate-1");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let old_fingerprint = master.fingerprint();
    let old_ca = master.data_dir().join("ca.crt");
    let kept = tempfile::tempdir().unwrap();
    let old_ca_copy = kept.path().join("old-ca.crt");
    std::fs::copy(&old_ca, &old_ca_copy).unwrap();

    // Introduced: announced to the nodes, not signing yet.
    let out = master.ctl(&["ca", "rotate"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("is introduced"), "{}", out.all());
    let again = master.ctl(&["ca", "rotate"]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("introduced already"),
        "{}",
        again.all()
    );
    let status = master.ctl(&["status"]);
    assert!(status.stdout.contains("rotation:"), "{}", status.all());

    // The node's next run picks the new CA up.
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let trusted = std::fs::read_to_string(node.path(&format!("{SSL}/ca.crt"))).unwrap();
    assert_eq!(trusted.matches("BEGIN CERTIFICATE").count(), 2, "{trusted}");

    // Finished and restarted: the new CA signs (the server certificate
    // too); the node, whose certificate the old CA signed, works on.
    let out = master.ctl(&["ca", "rotate", "--finish"]);
    assert_eq!(out.code, 0, "{}", out.all());
    master.stop();
    master.restart();
    let new_fingerprint = master.fingerprint();
    assert_ne!(new_fingerprint, old_fingerprint);
    let out = node.once(&master.url(), &[]);
    assert_eq!(out.code, 0, "{}", out.all());

    // A node enrolled now gets a certificate from the new CA.
    let newer = TestAgent::new("rotate-2");
    assert_eq!(newer.enroll(&master, &["--role", "is"]).code, 2);
    let new_ca = master.data_dir().join("ca.crt");
    let newer_cert = newer.path(&format!("{SSL}/node.crt"));
    let older_cert = node.path(&format!("{SSL}/node.crt"));
    assert!(signed_by(&new_ca, &newer_cert));
    assert!(!signed_by(&new_ca, &older_cert));
    assert!(signed_by(&old_ca_copy, &older_cert));

    // Revocation covers what the old CA signed (its own list).
    assert_eq!(master.ctl(&["cert", "revoke", "rotate-1"]).code, 0);
    let ca_pem = std::fs::read_to_string(&new_ca).unwrap();
    let err = get_catalog(&master.url(), &ca_pem, &identity_of(&node)).unwrap_err();
    assert!(err.contains("transport error"), "{err}");
    get_catalog(&master.url(), &ca_pem, &identity_of(&newer)).expect("the new CA's node");
}
