//! EC2 instance identity enrollment, end to end through the fake IMDS: an
//! instance enrolls with the document a test certificate (standing in for
//! AWS's RSA-2048 one) signed, without a token, and gets the role the
//! site's `enrollment.toml` gives it; each refusal (foreign account, wrong
//! region, a replayed, stale or tampered document, a signature by another
//! key, an instance already enrolled) is named; an enrollment no rule
//! accepts waits for `masterctl cert sign`; an identity baked into an
//! image is discarded.

use rigger_tests::aws::{Document, TestAws};
use rigger_tests::imds::Instance;
use rigger_tests::services::program_or_skip;
use rigger_tests::{FakeImds, TestAgent, TestMaster};

const POLICY: &str = r#"
[[ec2]]
account = "111111111111"
regions = ["us-east-1"]
subnets = ["127.0.0.0/25"]
role = "is"
"#;

/// A master that admits EC2 instances by `policy`, trusting `aws` as
/// us-east-1's certificate, with `extra` flags.
fn master_for(aws: &TestAws, policy: &str, extra: &[&str]) -> TestMaster {
    let dir = aws.certificates_dir(&["us-east-1"]);
    let mut args = vec!["--aws-certificates", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let master = TestMaster::start_with(&args);
    master.write_site("enrollment.toml", policy);
    master
}

/// A node for `document`'s instance, its IMDS serving `signed`.
fn instance(document: &Document, signed: (String, String)) -> (TestAgent, FakeImds) {
    let imds = FakeImds::start(
        Instance::at(&document.instance_id, &document.private_ip).with_identity(signed),
    );
    (TestAgent::new(&document.instance_id), imds)
}

/// The agent's first run: no token, trust by fingerprint.
fn first_run(
    master: &TestMaster,
    node: &TestAgent,
    imds: &FakeImds,
    extra: &[&str],
) -> rigger_tests::Output {
    let fp = master.fingerprint();
    let url = imds.url();
    let mut args = vec![
        "--imds-endpoint",
        url.as_str(),
        "--ca-fingerprint",
        fp.as_str(),
    ];
    args.extend_from_slice(extra);
    node.once(&master.url(), &args)
}

fn openssl_or_skip(test: &str) -> bool {
    program_or_skip(test, "openssl", "openssl").is_some()
}

#[test]
fn an_instance_enrolls_by_its_signed_identity_and_a_replay_is_refused() {
    if !openssl_or_skip("an_instance_enrolls_by_its_signed_identity_and_a_replay_is_refused") {
        return;
    }
    let aws = TestAws::new();
    let master = master_for(&aws, POLICY, &[]);
    let document = Document::new("i-0ec2000000000101", "127.0.0.101");
    let signed = aws.sign(&document);
    let (node, imds) = instance(&document, signed.clone());
    let out = first_run(&master, &node, &imds, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    let listed = master.nodes();
    assert_eq!(listed[0]["certname"], "i-0ec2000000000101", "{listed}");
    assert_eq!(listed[0]["role"], "is", "{listed}");
    assert!(
        node.path("/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml")
            .exists()
    );
    assert_eq!(
        std::fs::read_to_string(node.path("/var/lib/rigger/agent/ssl/instance-id")).unwrap(),
        "i-0ec2000000000101"
    );
    let log = master.log();
    assert!(log.contains("EC2 identity accepted"), "{log}");

    // The same document again, from another machine with its own key (a
    // copy taken from the instance): refused, the instance is enrolled.
    let (thief, thief_imds) = instance(&document, signed);
    let out = first_run(&master, &thief, &thief_imds, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("already holds a valid certificate for another key"),
        "{}",
        out.all()
    );
    // A token still works for a node that has one, and wins.
    let (other, other_imds) = instance(
        &Document::new("i-0ec2000000000102", "127.0.0.102"),
        (String::new(), String::new()),
    );
    let token = master.token(&["--role", "is"]);
    let out = first_run(&master, &other, &other_imds, &["--token", &token]);
    assert_eq!(out.code, 2, "{}", out.all());
}

#[test]
fn documents_the_policy_or_the_signature_refuses_are_named_and_nothing_is_applied() {
    if !openssl_or_skip(
        "documents_the_policy_or_the_signature_refuses_are_named_and_nothing_is_applied",
    ) {
        return;
    }
    let aws = TestAws::new();
    let master = master_for(&aws, POLICY, &["--ec2-max-document-age", "3s"]);
    let refused = |document: &Document, signed: (String, String), expect: &str| {
        let (node, imds) = instance(document, signed);
        let out = first_run(&master, &node, &imds, &[]);
        assert_eq!(out.code, 1, "{expect}: {}", out.all());
        assert!(out.stderr.contains(expect), "{expect}: {}", out.all());
        assert!(!node.path("/opt/wso2").exists(), "{expect}: applied");
        assert!(
            !node.path("/var/lib/rigger/agent/ssl/node.crt").exists(),
            "{expect}: enrolled"
        );
    };
    // Another account.
    let mut foreign = Document::new("i-0ec2000000000111", "127.0.0.103");
    foreign.account = "222222222222".into();
    refused(
        &foreign,
        aws.sign(&foreign),
        "account 222222222222 may not enroll",
    );
    // A region the policy excludes, and one the master holds no
    // certificate for.
    let mut west = Document::new("i-0ec2000000000112", "127.0.0.104");
    west.region = "us-west-2".into();
    refused(&west, aws.sign(&west), "no us-west-2.pem");
    // Launched two days ago: too late for a first enrollment.
    let mut old = Document::new("i-0ec2000000000113", "127.0.0.105");
    old.pending_time = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400),
    )
    .to_string();
    refused(&old, aws.sign(&old), "longer ago than ec2_max_launch_age");
    // Tampered: the document inside changed after signing (another
    // instance id in the signed bytes' place).
    let fine = Document::new("i-0ec2000000000114", "127.0.0.106");
    let (json, rsa2048) = aws.sign(&fine);
    let tampered = tamper(&rsa2048, "i-0ec2000000000114", "i-0ec2000000000115");
    let mut as_115 = fine.clone();
    as_115.instance_id = "i-0ec2000000000115".into();
    refused(&as_115, (json.clone(), tampered), "does not verify");
    // Signed by a key that is not AWS's.
    let impostor = TestAws::new();
    let other = Document::new("i-0ec2000000000116", "127.0.0.107");
    refused(
        &other,
        impostor.sign(&other),
        "signed by a certificate this master does not hold",
    );
    // Stale: signed longer ago than the master's 3 s window.
    let stale = Document::new("i-0ec2000000000117", "127.0.0.108");
    let signed = aws.sign(&stale);
    std::thread::sleep(std::time::Duration::from_secs(4));
    refused(&stale, signed, "longer ago than ec2_max_document_age");
    let log = master.log();
    assert!(log.contains("EC2 enrollment refused"), "{log}");
    assert!(master.nodes().as_array().unwrap().is_empty());
}

/// Replaces `from` with `to` (same length) inside the signed bytes.
fn tamper(rsa2048: &str, from: &str, to: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let compact: String = rsa2048.split_whitespace().collect();
    let mut der = engine.decode(compact).unwrap();
    let at = der
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("the document inside");
    der[at..at + to.len()].copy_from_slice(to.as_bytes());
    engine.encode(der)
}

#[test]
fn an_instance_no_rule_matches_waits_for_an_operator_and_a_baked_identity_is_discarded() {
    if !openssl_or_skip(
        "an_instance_no_rule_matches_waits_for_an_operator_and_a_baked_identity_is_discarded",
    ) {
        return;
    }
    let aws = TestAws::new();
    let master = master_for(&aws, POLICY, &[]);
    // Outside the policy's subnet: its account may enroll, no rule
    // matches, so it waits.
    let document = Document::new("i-0ec2000000000121", "127.0.0.201");
    let (node, imds) = instance(&document, aws.sign(&document));
    let out = first_run(&master, &node, &imds, &["--role", "is"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("waits for an operator"),
        "{}",
        out.all()
    );
    let pending = master.ctl(&["cert", "pending"]);
    assert!(
        pending.stdout.contains("i-0ec2000000000121"),
        "{}",
        pending.all()
    );
    assert!(pending.stdout.contains("127.0.0.201"), "{}", pending.all());
    assert!(pending.stdout.contains("111111111111"), "{}", pending.all());
    let signed = master.ctl(&["cert", "sign", "i-0ec2000000000121"]);
    assert_eq!(signed.code, 0, "{}", signed.all());
    assert!(signed.stdout.contains("with role is"), "{}", signed.all());
    assert!(master.ctl(&["cert", "pending"]).stdout.lines().count() <= 2);
    // It asks again (with the key it kept) and gets its certificate.
    let out = first_run(&master, &node, &imds, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(master.nodes()[0]["role"], "is");

    // Its root, identity included, is copied into an image another
    // instance starts from: that instance does not use the baked
    // identity; it enrolls as itself.
    let baked = Document::new("i-0ec2000000000122", "127.0.0.109");
    let (copy, copy_imds) = instance(&baked, aws.sign(&baked));
    std::fs::create_dir_all(copy.path("/var/lib/rigger/agent")).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(node.path("/var/lib/rigger/agent/ssl"))
        .arg(copy.path("/var/lib/rigger/agent/ssl"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = first_run(&master, &copy, &copy_imds, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("belongs to instance i-0ec2000000000121"),
        "{}",
        out.all()
    );
    let names: Vec<String> = master
        .nodes()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["certname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["i-0ec2000000000121", "i-0ec2000000000122"]);
}
