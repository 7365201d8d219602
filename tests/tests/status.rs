//! `agentctl status` reads the node itself: the agent's version and
//! uptime, the certificate's expiry, each product's release (and those kept
//! for a rollback), each service's process, the blob cache.

use std::time::Duration;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, wait_for};

#[test]
fn status_shows_what_is_on_the_node() {
    let master = TestMaster::start();
    master.enable_service("");
    let imds = FakeImds::start(Instance::at("i-status", "127.0.0.71"));
    let mut node = TestAgent::new("status-1");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    let before = rigger_common::time::now_ms();
    node.start_daemon(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--run-interval",
            "30m",
            "--splay",
            "0s",
        ],
    );
    let status = wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() >= Some(before) && s["running"] == false).then_some(s)
    });
    let now = rigger_common::time::now_ms();
    assert_eq!(
        status["agent_version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    let started = status["agent_started_at_ms"].as_i64().unwrap();
    assert!((before..=now).contains(&started), "{status}");
    let cert = status["cert_not_after_ms"].as_i64().unwrap();
    assert!(cert > now + 300 * 86_400_000, "{status}");
    let product = &status["products"][0];
    assert_eq!(
        (
            product["product"].as_str(),
            product["version"].as_str(),
            product["level"].as_u64()
        ),
        (Some("wso2is"), Some("5.11.0"), Some(0)),
        "{status}"
    );
    assert_eq!(product["current"], true, "{status}");
    assert!(
        product["release"]
            .as_str()
            .unwrap()
            .starts_with("wso2is-5.11.0-L0-"),
        "{status}"
    );
    let process = &status["processes"][0];
    assert_eq!(process["name"], "wso2is", "{status}");
    assert_eq!(
        process["pid"].as_i64().map(|p| p as i32),
        node.service_pid("wso2is"),
        "{status}"
    );
    let up_since = process["started_at_ms"].as_i64().unwrap();
    assert!(up_since > before - 120_000 && up_since <= now, "{status}");
    assert!(status["cache"]["files"].as_u64() > Some(0), "{status}");
    assert!(status["cache"]["bytes"].as_u64() > Some(0), "{status}");

    // A new level: the release before it is kept for a rollback.
    let update = rigger_tests::pack::SamplePack::new(40, 256 << 10).at_level(1, 50);
    assert_eq!(master.import_update(&update).code, 0);
    let status = wait_for("level 1 applied", Duration::from_secs(60), || {
        let s = node.status();
        (s["products"][0]["level"] == 1
            && s["products"][0]["current"] == true
            && s["running"] == false)
            .then_some(s)
    });
    let kept = status["products"][0]["kept"][0]
        .as_str()
        .unwrap_or_default();
    assert!(kept.starts_with("wso2is-5.11.0-L0-"), "{status}");
    let human = node.ctl(&["status"]);
    for line in [
        "agent:     ",
        "cert:      expires ",
        "product:   wso2is 5.11.0 level 1: release wso2is-5.11.0-L1-",
        "kept for a rollback: wso2is-5.11.0-L0-",
        "process:   wso2is pid ",
        "cache:     ",
    ] {
        assert!(
            human.stdout.contains(line),
            "{line:?} missing: {}",
            human.all()
        );
    }
    node.stop_daemon();
}
