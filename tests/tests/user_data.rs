//! `deploy/aws/user-data.sh`, run twice in a scratch root (a baked image's
//! agent, a real master, stand-ins for the AWS CLI and cfn-signal that
//! record their calls): the first boot writes one configuration, fetches the
//! token once and signals failure while no agent runs; once the agent has
//! enrolled from that configuration, the second boot signals success,
//! changes no file, appends nothing and does not enroll again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster, bin, repo_root, wait_for};

fn stub(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Boot {
    code: i32,
    stderr: String,
}

fn boot(root: &Path, stubs: &Path, env: &[(&str, String)]) -> Boot {
    let out = Command::new("bash")
        .arg(repo_root().join("deploy/aws/user-data.sh"))
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin:/usr/sbin:/sbin", stubs.display()),
        )
        .env("RIGGER_ROOT", root)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    Boot {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = rigger_tests::interrupt(&mut self.0);
    }
}

#[test]
fn user_data_twice_writes_one_configuration_enrolls_once_and_signals_the_result() {
    let master = TestMaster::start();
    let imds = FakeImds::start(Instance::at("i-0userdata", "127.0.0.111"));
    let node = TestAgent::new("ud-node");
    let root = node.root();
    // The image: the agent baked in, an fstab and hosts of its own.
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    for binary in ["rigger-agent", "agentctl"] {
        std::fs::copy(bin(binary), root.join("usr/bin").join(binary)).unwrap();
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let fstab = "UUID=0a1b / ext4 defaults 0 1\n";
    let hosts = "127.0.0.1 localhost\n";
    std::fs::write(root.join("etc/fstab"), fstab).unwrap();
    std::fs::write(root.join("etc/hosts"), hosts).unwrap();

    let token = master.token(&["--role", "is"]);
    let stubs = tempfile::tempdir().unwrap();
    let calls = stubs.path().join("calls");
    // `aws ssm get-parameter` answers with the token (SSM's stand-in).
    stub(
        stubs.path(),
        "aws",
        &format!(
            "echo \"aws $*\" >> {calls}\ncase \"$*\" in *'ssm get-parameter'*'--name /rigger/token'*) echo '{token}' ;; *) exit 254 ;; esac",
            calls = calls.display()
        ),
    );
    stub(
        stubs.path(),
        "cfn-signal",
        &format!("echo \"cfn-signal $*\" >> {}", calls.display()),
    );
    let env = [
        ("RIGGER_MASTER", master.url()),
        ("RIGGER_CA_FINGERPRINT", master.fingerprint()),
        ("RIGGER_ROLE", "is".to_string()),
        ("RIGGER_TOKEN_PARAMETER", "/rigger/token".to_string()),
        ("RIGGER_IMDS_ENDPOINT", imds.url()),
        ("RIGGER_WAIT_TIMEOUT", "1s".to_string()),
        ("CFN_STACK", "is-pattern-1".to_string()),
        ("CFN_RESOURCE", "NodeGroup".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];

    // First boot: no agent is running yet in a scratch root.
    let first = boot(root, stubs.path(), &env);
    assert_eq!(first.code, 1, "not ready: {}", first.stderr);
    assert!(first.stderr.contains("not ready"), "{}", first.stderr);
    let config_path = root.join("etc/rigger/agent.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains(&format!("master = \"{}\"", master.url())));
    assert!(config.contains("role = \"is\""));
    let env_file = root.join("etc/rigger/agent.env");
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().mode() & 0o777,
        0o600,
        "the token is for root's eyes only"
    );
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert!(
        recorded.contains(
            "cfn-signal --exit-code 1 --stack is-pattern-1 --resource NodeGroup --region us-east-1"
        ),
        "{recorded}"
    );

    // The agent, as systemd starts it: its configuration file and the
    // token from the environment file, nothing else.
    let token_line = std::fs::read_to_string(&env_file).unwrap();
    let daemon = Daemon(
        Command::new(root.join("usr/bin/rigger-agent"))
            .arg("--root")
            .arg(root)
            .args(["--splay", "0s"])
            .env_remove("RIGGER_AGENT_CONFIG")
            .env_remove("RIGGER_MASTER")
            .env(
                "RIGGER_TOKEN",
                token_line.trim().strip_prefix("RIGGER_TOKEN=").unwrap(),
            )
            .env("RIGGER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the node to enroll", Duration::from_secs(60), || {
        root.join("var/lib/rigger/agent/ssl/node.crt")
            .exists()
            .then_some(())
    });
    let config_mtime = std::fs::metadata(&config_path).unwrap().mtime_nsec();

    // Second boot: ready, signalled; nothing re-enrolled or appended.
    let env2: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = if *k == "RIGGER_WAIT_TIMEOUT" {
                "60s".to_string()
            } else {
                v.clone()
            };
            (*k, v)
        })
        .collect();
    let second = boot(root, stubs.path(), &env2);
    assert_eq!(second.code, 0, "ready: {}", second.stderr);
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        recorded.matches("ssm get-parameter").count(),
        1,
        "the token is fetched once: {recorded}"
    );
    assert!(
        recorded.contains(
            "cfn-signal --exit-code 0 --stack is-pattern-1 --resource NodeGroup --region us-east-1"
        ),
        "{recorded}"
    );
    assert!(!env_file.exists(), "an enrolled node keeps no token");
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), config);
    assert_eq!(
        std::fs::metadata(&config_path).unwrap().mtime_nsec(),
        config_mtime,
        "an unchanged configuration is not rewritten"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/fstab")).unwrap(),
        fstab
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hosts")).unwrap(),
        hosts
    );
    let configs: Vec<_> = std::fs::read_dir(root.join("etc/rigger"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        configs,
        ["agent.toml"],
        "one configuration file, no leftovers"
    );
    let nodes = master.nodes();
    assert_eq!(
        nodes.as_array().map(|n| n.len()),
        Some(1),
        "one node enrolled: {nodes}"
    );
    drop(daemon);
}

#[test]
fn user_data_without_the_master_or_with_a_hostile_value_stops_and_signals_failure() {
    let root = tempfile::tempdir().unwrap();
    let stubs = tempfile::tempdir().unwrap();
    let calls = stubs.path().join("calls");
    stub(
        stubs.path(),
        "cfn-signal",
        &format!("echo \"cfn-signal $*\" >> {}", calls.display()),
    );
    let signal = [
        ("CFN_STACK", "s".to_string()),
        ("CFN_RESOURCE", "r".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let missing = boot(root.path(), stubs.path(), &signal);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("RIGGER_MASTER is not set"),
        "{}",
        missing.stderr
    );
    let mut hostile = signal.to_vec();
    hostile.push((
        "RIGGER_MASTER",
        "10.0.0.1:8140\"\nrole = \"admin".to_string(),
    ));
    hostile.push(("RIGGER_CA_FINGERPRINT", "sha256:00".to_string()));
    let out = boot(root.path(), stubs.path(), &hostile);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("characters an address cannot"),
        "{}",
        out.stderr
    );
    assert!(!root.path().join("etc/rigger/agent.toml").exists());
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(recorded.matches("--exit-code 1").count(), 2, "{recorded}");
}
