//! Benchmark: how fast a change reaches a node, with real master and agent
//! processes on loopback. Prints figures; asserts nothing about speed.
//!
//! - drift repair: an edit to a managed file on the node, to the file
//!   restored by the agent's daemon (median and p99 over 100 edits);
//! - push: a site edit on the master, to the new content on the node with
//!   a 30-minute run interval (median and p99 over 20 edits).
//!
//! Run with `cargo build --release --workspace --bins && cargo bench -p
//! rigger-tests --bench feedback`.

use std::time::{Duration, Instant};

use rigger_tests::{TestAgent, TestMaster, wait_for};

const ENV_FILE: &str = "/opt/wso2/wso2is-5.11.0/bin/rigger-env.sh";
const DRIFT_EDITS: usize = 100;
const PUSH_EDITS: usize = 20;

/// Polls `done` every millisecond (bounded) and returns how long it took.
fn time_until(started: Instant, mut done: impl FnMut() -> bool) -> Duration {
    let deadline = started + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "not done within 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed()
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: median {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} samples",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        samples.last().unwrap().as_secs_f64() * 1000.0,
        samples.len()
    );
}

fn main() {
    let master = TestMaster::start();
    let mut node = TestAgent::new("bench-feedback");
    assert_eq!(node.enroll(&master, &["--role", "is"]).code, 2);
    let started = rigger_common::time::now_ms();
    node.start_daemon(&master.url(), &["--run-interval", "30m", "--splay", "0s"]);
    wait_for("the daemon's first run", Duration::from_secs(60), || {
        let s = node.status();
        (s["last_run_at_ms"].as_i64() >= Some(started) && s["running"] == false).then_some(())
    });
    let env = || std::fs::read_to_string(node.path(ENV_FILE)).unwrap_or_default();

    // Drift: each edit after the previous repair run has ended.
    let good = env();
    let mut drift = Vec::new();
    for i in 0..DRIFT_EDITS {
        let t = Instant::now();
        std::fs::write(node.path(ENV_FILE), format!("edited {i}\n")).unwrap();
        drift.push(time_until(t, || env() == good));
        wait_for("the repair run to end", Duration::from_secs(30), || {
            (node.status()["running"] == false).then_some(())
        });
        // Repairs are limited to 5 in 10 s: the bench waits its turn.
        if (i + 1) % 5 == 0 && i + 1 < DRIFT_EDITS {
            std::thread::sleep(Duration::from_secs(10));
        }
    }
    report("drift repair (edit on the node to restored)", drift);

    // Push: a site value every node's env file reads.
    let mut push = Vec::new();
    for i in 0..PUSH_EDITS {
        let heap = format!("{}m", 600 + i);
        let t = Instant::now();
        master.edit_site("roles/is.toml", |text| {
            let line = text
                .lines()
                .find(|l| l.starts_with("xms = "))
                .unwrap()
                .to_string();
            text.replace(&line, &format!("xms = \"{heap}\""))
        });
        push.push(time_until(t, || env().contains(&format!("-Xms{heap}"))));
        wait_for("the pushed run to end", Duration::from_secs(30), || {
            (node.status()["running"] == false).then_some(())
        });
    }
    report(
        "push (site edit on the master to applied on the node)",
        push,
    );
    node.stop_daemon();
}
