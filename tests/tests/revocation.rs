//! Revocation at the handshake: `masterctl cert revoke` refuses a node's
//! certificate at the next TLS handshake (the master's verifier checks its
//! revocation list), closes the node's open connections at once, and
//! stays in force across a master restart.

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
