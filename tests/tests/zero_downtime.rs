//! The headline test: two IS nodes on a shared "EFS" behind nginx serve a
//! steady load without one failed request while an update level is
//! promoted, a configuration change restarts every server, a broken change
//! fails on the canary and is rolled back, and a node is lost and replaced
//! by a new one. Every node runs the agent daemon, as in production; the
//! rollout moves on by itself.

use std::path::Path;
use std::time::{Duration, Instant};

use rigger_tests::cluster::{hostname, not_development, set_hostname, up};
use rigger_tests::imds::Instance;
use rigger_tests::load::Load;
use rigger_tests::nginx::Nginx;
use rigger_tests::services::{program_or_skip, root_or_skip};
use rigger_tests::{FakeImds, TestAgent, TestMaster};

const TEST: &str =
    "a_cluster_behind_nginx_fails_no_request_through_updates_changes_failures_and_node_loss";

/// Role data: the server on a bind-mounted share, taking 3 s to start;
/// rollouts canary first with a short bake; a restarted node counts as
/// available again 3 s after it is ready (longer than nginx leaves a server
/// alone after a refused connection, as `settle` must be longer than an
/// ALB's health check takes).
const ROLE: &str = "[shared_fs]\nenabled = true\ntype = \"bind\"\nsource = \"/srv/efs-export\"\nmount_point = \"/mnt/efs\"\n\
[service.environment]\nRIGGER_SAMPLE_STARTUP_MS = \"3000\"\n\
[rollout]\nenabled = true\ncanary = 1\nwaves = [\"100%\"]\nbake = \"2s\"\nsettle = \"3s\"\n";

/// The settle time: a phase ends once the cluster has settled.
const SETTLE: Duration = Duration::from_secs(3);

/// How long a phase may take before the test gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// A node: its agent daemon, its address and its fake IMDS (kept running).
struct Node {
    agent: TestAgent,
    _imds: FakeImds,
    ip: String,
}

impl Node {
    /// Enrolls a node at `ip` on the share (its first run installs and
    /// starts the server), then starts its daemon, running every 2 s.
    fn join(master: &TestMaster, name: &str, ip: &str, efs: &Path) -> Self {
        let mut agent = TestAgent::new(name);
        std::fs::create_dir_all(agent.path("/srv")).unwrap();
        std::os::unix::fs::symlink(efs, agent.path("/srv/efs-export")).unwrap();
        let imds = FakeImds::start(Instance::at(&format!("i-{name}"), ip));
        let first = agent.enroll_at(master, "is", &imds.url());
        assert_eq!(first.code, 2, "{}", first.all());
        agent.start_daemon(
            &master.url(),
            &[
                "--imds-endpoint",
                &imds.url(),
                "--run-interval",
                "2s",
                "--splay",
                "0s",
            ],
        );
        Self {
            agent,
            _imds: imds,
            ip: ip.to_string(),
        }
    }

    fn server(&self) -> String {
        format!("{}:9763", self.ip)
    }

    fn release(&self) -> String {
        self.agent
            .link_target("/opt/wso2/wso2is-5.11.0")
            .to_string_lossy()
            .into_owned()
    }

    fn members(&self) -> Vec<String> {
        let path = self
            .agent
            .path("/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let parsed: toml::Table = text.parse().unwrap_or_default();
        parsed
            .get("clustering")
            .and_then(|c| c.get("members"))
            .and_then(toml::Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The cluster's rollout, as `masterctl rollout status --json` shows it
/// (`null` when it has none).
fn rollout(master: &TestMaster) -> serde_json::Value {
    let out = master.ctl(&["rollout", "status", "is-demo", "--json"]);
    serde_json::from_str(&out.stdout).unwrap_or_default()
}

/// Waits for `done`, showing the rollout and the nodes' logs if it never comes.
fn until(master: &TestMaster, nodes: &[&Node], what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PHASE_LIMIT;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| format!("--- {}:\n{}", n.ip, n.agent.log()))
                .collect();
            panic!(
                "timed out waiting for {what}\nrollout: {}\n{}",
                rollout(master),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The load balancer has seen every server that came back.
    std::thread::sleep(SETTLE);
}

#[test]
fn a_cluster_behind_nginx_fails_no_request_through_updates_changes_failures_and_node_loss() {
    if !root_or_skip(TEST) {
        return;
    }
    let Some(nginx) = program_or_skip(TEST, "nginx", "nginx") else {
        return;
    };
    let master = TestMaster::start_with(&["--peer-timeout", "8s"]);
    // Production-like: the environment runs the levels promoted to it.
    not_development(&master);
    master.enable_service(ROLE);
    let efs = tempfile::tempdir().unwrap();
    let a = Node::join(&master, "zd-a", "127.0.0.61", efs.path());
    let b = Node::join(&master, "zd-b", "127.0.0.62", efs.path());
    // The load balancer knows the address the replacement will have, as
    // an ALB target group learns it from the Auto Scaling group.
    let nginx = Nginx::start(
        &nginx,
        &["127.0.0.61:9763", "127.0.0.62:9763", "127.0.0.63:9763"],
    );
    until(&master, &[&a, &b], "both servers", || {
        up(&a.server()) && up(&b.server())
    });
    let load = Load::start(
        &nginx.addr,
        "/carbon/admin/login.jsp",
        "ok",
        2,
        Duration::from_millis(15),
    );
    std::thread::sleep(Duration::from_secs(2));

    // 1. An update level, imported and promoted to the environment.
    load.phase("update level promoted");
    let update = rigger_tests::pack::SamplePack::new(40, 256 << 10).at_level(1, 50);
    let out = master.import_update(&update);
    assert_eq!(out.code, 0, "{}", out.all());
    let out = master.ctl(&[
        "update",
        "promote",
        "wso2is@5.11.0",
        "--level",
        "1",
        "--to",
        "demo",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    until(&master, &[&a, &b], "level 1 on both nodes", || {
        a.release().contains("-L1-")
            && b.release().contains("-L1-")
            && rollout(&master)["state"] == "complete"
    });

    // 2. A configuration change that restarts every server.
    load.phase("configuration change");
    set_hostname(&master, "login.example.com");
    until(
        &master,
        &[&a, &b],
        "the new host name on both nodes",
        || {
            [&a, &b]
                .iter()
                .all(|n| hostname(&n.server()).as_deref() == Some("login.example.com"))
                && rollout(&master)["state"] == "complete"
        },
    );

    // 3. A change that fails at start: it halts on the canary, which gets
    // its last good content back; the other node never takes it. Then the
    // operator reverts it.
    load.phase("broken change rolled back");
    let pids = [a.agent.service_pid("wso2is"), b.agent.service_pid("wso2is")];
    set_hostname(&master, rigger_tests::server_config::FAILING_HOST);
    until(&master, &[&a, &b], "the canary to be rolled back", || {
        let status = rollout(&master);
        status["state"] == "halted"
            && status["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["state"] == "rolled back"))
    });
    let status = rollout(&master);
    let canary = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["state"] == "rolled back")
        .unwrap()["certname"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("refusing hostname fail.invalid"),
        "{status}"
    );
    let (canary_node, other, other_pid) = if canary == "zd-a" {
        (&a, &b, pids[1])
    } else {
        (&b, &a, pids[0])
    };
    until(&master, &[&a, &b], "the canary to serve again", || {
        hostname(&canary_node.server()).as_deref() == Some("login.example.com")
    });
    assert_eq!(
        other.agent.service_pid("wso2is"),
        other_pid,
        "the other node restarted"
    );
    set_hostname(&master, "login.example.com");
    until(
        &master,
        &[&a, &b],
        "the reverted rollout to be superseded",
        || rollout(&master)["state"] == "superseded",
    );

    // 4. A node is lost (agent and server killed) and replaced by a new
    // instance with a new name; the survivor's peer list follows without
    // a restart.
    load.phase("node lost and replaced");
    let mut lost = a;
    lost.agent.kill_daemon();
    lost.agent.kill_services();
    let survivor_pid = b.agent.service_pid("wso2is");
    let c = Node::join(&master, "zd-c", "127.0.0.63", efs.path());
    until(
        &master,
        &[&b, &c],
        "the replacement to serve and the lost node to leave the peers",
        || {
            up(&c.server())
                && b.members().len() == 2
                && b.members().iter().any(|m| m.starts_with("127.0.0.63"))
                && !b.members().iter().any(|m| m.starts_with("127.0.0.61"))
        },
    );
    assert_eq!(
        b.agent.service_pid("wso2is"),
        survivor_pid,
        "a peer change restarted the survivor"
    );
    drop(lost);

    std::thread::sleep(Duration::from_secs(1));
    let phases = load.stop();
    println!(
        "{:<28} {:>8} {:>8} {:>9}",
        "phase", "sent", "failed", "took"
    );
    for p in &phases {
        println!(
            "{:<28} {:>8} {:>8} {:>8.1}s",
            p.name,
            p.sent,
            p.failed,
            p.took.as_secs_f64()
        );
    }
    for p in &phases {
        assert_eq!(
            p.failed,
            0,
            "{}: {:?}\nnginx: {}",
            p.name,
            p.failures,
            nginx.error_log()
        );
        let rate = p.sent as f64 / p.took.as_secs_f64().max(0.001);
        assert!(rate >= 50.0, "{}: only {rate:.0} requests/s", p.name);
    }
}
