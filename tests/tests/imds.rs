//! EC2 facts come from the instance metadata service (a fake on loopback
//! here): the node's private IP, its instance id as default certname and
//! its role from the `rigger:role` tag when the token bound none.

use std::collections::BTreeMap;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster};

#[test]
fn ec2_facts_name_the_node_give_its_ip_and_classify_it_by_tag() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance {
        instance_id: "i-0abc123def4567890".into(),
        private_ip: "127.0.0.2".into(),
        availability_zone: "us-east-1a".into(),
        tags: BTreeMap::from([("rigger:role".to_string(), "is".to_string())]),
        identity: None,
    });
    let node = TestAgent::new("");
    let token = master.token(&["--unbound"]);
    let out = std::process::Command::new(rigger_tests::process::bin("rigger-agent"))
        .arg("--root")
        .arg(node.root())
        .args([
            "--master",
            &master.url(),
            "--token",
            &token,
            "--ca-fingerprint",
            &master.fingerprint(),
        ])
        .args([
            "--imds-endpoint",
            &imds.url(),
            "--once",
            "--detailed-exitcodes",
        ])
        .env_remove("RIGGER_CERTNAME")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(imds.requests() > 3, "IMDS was not asked");

    let nodes = master.nodes();
    let me = &nodes.as_array().unwrap()[0];
    assert_eq!(me["certname"], "i-0abc123def4567890");
    assert_eq!(me["role"], "is", "role from the rigger:role tag");
    assert_eq!(me["ip"], "127.0.0.2");
    let toml = std::fs::read_to_string(
        node.path("/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml"),
    )
    .unwrap();
    assert!(toml.contains("node_ip = \"127.0.0.2\""), "{toml}");
}

#[test]
fn an_unreachable_imds_is_not_fatal() {
    let master = TestMaster::start();
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let node = TestAgent::new("no-imds");
    let token = master.token(&["--role", "is"]);
    let out = node.once(
        &master.url(),
        &[
            "--token",
            &token,
            "--ca-fingerprint",
            &master.fingerprint(),
            "--imds-endpoint",
            &format!("http://127.0.0.1:{port}"),
        ],
    );
    assert_eq!(out.code, 2, "{}", out.all());
}

#[test]
fn a_node_whose_facts_inject_text_gets_no_catalog() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance {
        instance_id: "i-0injected".into(),
        private_ip: "10.9.9.9:4000\"]\n\n[super_admin.injected]".into(),
        availability_zone: "us-east-1a".into(),
        tags: BTreeMap::new(),
        identity: None,
    });
    let node = TestAgent::new("injector");
    let out = node.enroll_at(&master, "is", &imds.url());
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("fact ip = ") && out.all().contains("is not an IP address"),
        "{}",
        out.all()
    );
    assert!(!node.path("/opt").exists(), "something was applied");
    let nodes = master.nodes();
    let me = &nodes.as_array().unwrap()[0];
    assert_eq!(me["ip"], "", "the injected address reached the inventory");
}
