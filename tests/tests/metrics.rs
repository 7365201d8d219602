//! `/metrics` of the master and of the agent's daemon, scraped over HTTP
//! as Prometheus would: what they count follows what happened.

use std::time::Duration;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, http_get, wait_for};

/// The value of the sample named exactly `sample` (name and labels).
fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn master_and_agent_metrics_follow_what_happened() {
    let master_metrics = "127.0.0.95:9140";
    let agent_metrics = "127.0.0.96:9141";
    let master = TestMaster::start_with(&["--metrics-listen", master_metrics]);
    let imds = FakeImds::start(Instance::at("i-metrics", "127.0.0.96"));
    let mut node = TestAgent::new("metrics-1");
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    node.start_daemon(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--run-interval",
            "30m",
            "--metrics-listen",
            agent_metrics,
        ],
    );
    assert_eq!(node.ctl(&["run"]).code, 0);

    // The master: RPCs by method and code, compiles, the daemon's watch
    // stream, the node by its last run.
    let text = wait_for("the daemon's watch stream", Duration::from_secs(30), || {
        let text = http_get(master_metrics, "/metrics")?;
        (value(&text, "rigger_master_watch_streams") == Some(1.0)).then_some(text)
    });
    assert!(
        value(
            &text,
            "rigger_master_rpc_requests_total{method=\"GetCatalog\",code=\"Ok\"}"
        ) >= Some(2.0),
        "{text}"
    );
    assert!(
        value(&text, "rigger_master_compile_duration_seconds_count") >= Some(1.0),
        "{text}"
    );
    // The runs after the first asked with nothing changed: no compile.
    assert!(
        value(&text, "rigger_master_compiles_saved_total") >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "rigger_master_nodes{last_run=\"unchanged\",seen=\"live\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    // The agent: the run asked for by hand, and a drift repair.
    let text = http_get(agent_metrics, "/metrics").expect("the agent serves /metrics");
    assert_eq!(
        value(
            &text,
            "rigger_agent_runs_total{result=\"unchanged\",trigger=\"manual\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "rigger_agent_run_duration_seconds_count") >= Some(1.0),
        "{text}"
    );
    std::fs::write(
        node.path("/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh"),
        "JAVA_HOME=/tmp/elsewhere\n",
    )
    .unwrap();
    wait_for(
        "the drift repair to be counted",
        Duration::from_secs(30),
        || {
            let text = http_get(agent_metrics, "/metrics")?;
            (value(&text, "rigger_agent_drift_repairs_total") == Some(1.0)
                && value(
                    &text,
                    "rigger_agent_runs_total{result=\"changed\",trigger=\"drift\"}",
                ) == Some(1.0))
            .then_some(())
        },
    );
    assert_eq!(
        http_get(agent_metrics, "/").as_deref(),
        Some("only /metrics here\n")
    );
    node.stop_daemon();
}
