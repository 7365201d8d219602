//! Clusters of `is` nodes on one machine for the rolling-restart and
//! rollout tests: each node on its own loopback address, every node
//! knowing the others, and helpers that change what their servers read.

use std::time::Duration;

use crate::imds::Instance;
use crate::{FakeImds, TestAgent, TestMaster, http_get};

/// Whether the stand-in server at `addr` serves its login page.
pub fn up(addr: &str) -> bool {
    http_get(addr, "/carbon/admin/login.jsp").as_deref() == Some("ok")
}

/// `N` `is` nodes of one cluster with their servers running, each knowing
/// the others; `extra_role_data` is appended to the role. A restarted node
/// counts as available again after it has been ready for a second (`[rollout]
/// settle`, added to the `[rollout]` table `extra_role_data` may have).
pub fn cluster<const N: usize>(
    master: &TestMaster,
    extra_role_data: &str,
    nodes: [(&str, &str); N],
) -> [(TestAgent, FakeImds); N] {
    let data = if extra_role_data.contains("[rollout]\n") {
        extra_role_data.replacen("[rollout]\n", "[rollout]\nsettle = \"1s\"\n", 1)
    } else {
        format!("{extra_role_data}\n[rollout]\nsettle = \"1s\"\n")
    };
    master.enable_service(&data);
    let nodes = nodes.map(|(name, ip)| {
        let node = TestAgent::new(name);
        let imds = FakeImds::start(Instance::at(&format!("i-{name}"), ip));
        let out = node.enroll_at(master, "is", &imds.url());
        assert_eq!(out.code, 2, "{}", out.all());
        (node, imds)
    });
    // The first ones learn of those enrolled after them: a peer-only
    // change, no restart.
    for (node, imds) in &nodes[..N.saturating_sub(1)] {
        let out = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
        assert!(out.code == 0 || out.code == 2, "{}", out.all());
    }
    // Every node has been ready for the settle time.
    std::thread::sleep(Duration::from_millis(1100));
    peers_recompiled(master, N);
    nodes
}

/// Waits until the master has recompiled its live nodes since the last of
/// `n` joined (it does so within a couple of seconds): a test's next change
/// is then not raced by that recompile, which could make another node than
/// the one the test runs first ask for the change first.
pub fn peers_recompiled(master: &TestMaster, n: usize) {
    let joined = format!(" now={n}");
    crate::wait_for(
        "the master to recompile the nodes' peers",
        Duration::from_secs(30),
        || {
            let log = master.log();
            let at = log
                .match_indices("recompiling their peers")
                .map(|(at, _)| at)
                .filter(|at| {
                    log[*at..]
                        .lines()
                        .next()
                        .is_some_and(|l| l.ends_with(&joined))
                })
                .last()?;
            log[at..].contains("live nodes recompiled").then_some(())
        },
    );
}

/// Makes a node's server take `ms` to start from its next start: the
/// stand-in reads `RIGGER_SAMPLE_STARTUP_MS`, which reaches it as an
/// operator's would, through `[service.environment]` of the node's data.
pub fn slow_start(master: &TestMaster, certname: &str, ms: u64) {
    master.write_site(
        &format!("nodes/{certname}.toml"),
        &format!("[service.environment]\nRIGGER_SAMPLE_STARTUP_MS = \"{ms}\"\n"),
    );
}

/// Sets the host name every node of the demo environment serves.
pub fn set_hostname(master: &TestMaster, name: &str) {
    master.edit_site("environments/demo.toml", |t| {
        let line = t
            .lines()
            .find(|l| l.starts_with("hostname = "))
            .unwrap()
            .to_string();
        t.replace(&line, &format!("hostname = \"{name}\""))
    });
}

/// The host name the server at `addr` serves (`None`: it does not answer).
pub fn hostname(addr: &str) -> Option<String> {
    http_get(addr, "/rigger/hostname")
}

/// Every restart lease was given back.
pub fn assert_no_leases(master: &TestMaster) {
    let leases = master.ctl(&["lease", "list"]);
    assert!(
        leases.stdout.contains("no node holds a restart lease"),
        "{}",
        leases.all()
    );
}

/// The `is` role's credentials that a development environment may take
/// from the module's defaults and any other must set in the site's secrets.
pub const PRODUCTION_SECRETS: &str = "\n[auth_framework]\napp_password = \"p1\"\n[bps_db]\npassword = \"p2\"\n[consent_db]\npassword = \"p3\"\n[internal_keystore]\nkey_password = \"p4\"\npassword = \"p5\"\n[keystore]\nkey_password = \"p6\"\npassword = \"p7\"\n[truststore]\npassword = \"p8\"\n";

/// Makes the demo environment production-like: not a development
/// environment (it runs the levels promoted to it), its credentials set.
pub fn not_development(master: &TestMaster) {
    master.edit_site("environments/demo.toml", |t| {
        t.replace("development = true", "development = false")
    });
    master.edit_site("secrets/roles/is.toml", |t| {
        format!("{t}{PRODUCTION_SECRETS}")
    });
}
