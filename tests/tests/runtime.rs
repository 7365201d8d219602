//! The node runtime: the server runs under the agent's supervision, is
//! (re)started only when something it depends on changed, and is started
//! again when it died. The stand-in server (tests/src/bin) plays WSO2.

use std::time::Duration;

use rigger_tests::imds::Instance;
use rigger_tests::services::root_or_skip;
use rigger_tests::{FakeImds, TestAgent, TestMaster, wait_for};

use rigger_tests::http_get as get;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn the_server_starts_once_restarts_only_on_change_and_comes_back_when_it_dies() {
    let master = TestMaster::start();
    master.enable_service("");
    let imds = FakeImds::start(Instance::at("i-runtime", "127.0.0.6"));
    let node = TestAgent::new("rt-1");
    let token = master.token(&["--role", "is"]);
    let fp = master.fingerprint();
    let url = imds.url();
    let run = |extra: &[&str]| {
        let mut args = vec!["--imds-endpoint", url.as_str()];
        args.extend_from_slice(extra);
        node.once(&master.url(), &args)
    };

    let first = run(&["--token", &token, "--ca-fingerprint", &fp]);
    assert_eq!(first.code, 2, "{}", first.all());
    assert!(
        first.stdout.contains("start service wso2is"),
        "{}",
        first.all()
    );
    // The run waited for readiness: the server answers right away.
    assert_eq!(
        get("127.0.0.6:9763", "/rigger/hostname").as_deref(),
        Some("is.demo.example.com")
    );
    let pid = node.service_pid("wso2is").expect("pidfile");
    assert!(alive(pid));

    let second = run(&[]);
    assert_eq!(
        second.code,
        0,
        "a converged run touches nothing: {}",
        second.all()
    );
    assert_eq!(
        node.service_pid("wso2is"),
        Some(pid),
        "the server was restarted"
    );

    // Another node joins the cluster: this node's WKA member list changes,
    // the file is rewritten, but the running server is not restarted.
    let peer_imds = FakeImds::start(Instance::at("i-runtime-2", "127.0.0.11"));
    let peer = TestAgent::new("rt-2");
    let peer_token = master.token(&["--role", "is"]);
    let joined = peer.once(
        &master.url(),
        &[
            "--imds-endpoint",
            &peer_imds.url(),
            "--token",
            &peer_token,
            "--ca-fingerprint",
            &fp,
        ],
    );
    assert_eq!(joined.code, 2, "{}", joined.all());
    let after_join = run(&[]);
    assert_eq!(after_join.code, 2, "{}", after_join.all());
    assert!(
        after_join
            .stdout
            .contains("only peer lists changed: no server restart"),
        "{}",
        after_join.all()
    );
    assert!(
        !after_join.stdout.contains("server: refreshed"),
        "{}",
        after_join.all()
    );
    assert_eq!(
        node.service_pid("wso2is"),
        Some(pid),
        "a peer change restarted the server"
    );

    // One value changes: exactly one restart, and the new value is served.
    master.edit_site("environments/demo.toml", |t| {
        t.replace("is.demo.example.com", "login.example.com")
    });
    let change = run(&[]);
    assert_eq!(change.code, 2, "{}", change.all());
    assert_eq!(
        change.stdout.matches("refreshed").count(),
        2,
        "record_config and server: {}",
        change.all()
    );
    let restarted = node.service_pid("wso2is").unwrap();
    assert_ne!(restarted, pid);
    assert!(!alive(pid), "the old server still runs");
    assert_eq!(
        get("127.0.0.6:9763", "/rigger/hostname").as_deref(),
        Some("login.example.com")
    );
    assert_eq!(run(&[]).code, 0);
    assert_eq!(node.service_pid("wso2is"), Some(restarted));

    // The server dies: the next run starts it again and says so.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(restarted),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the server to die", Duration::from_secs(10), || {
        (!alive(restarted)).then_some(())
    });
    let revived = run(&[]);
    assert_eq!(revived.code, 2, "{}", revived.all());
    assert!(
        revived.stdout.contains("start service wso2is"),
        "{}",
        revived.all()
    );
    let again = node.service_pid("wso2is").unwrap();
    assert!(alive(again));
    assert_eq!(
        get("127.0.0.6:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
}

/// The home a node's server should get: the service user's (in the
/// node's own `etc/passwd`) as root, else the agent's own account's.
fn expected_home(node: &TestAgent) -> String {
    if !nix::unistd::geteuid().is_root() {
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap();
        return me.dir.display().to_string();
    }
    let passwd = std::fs::read_to_string(node.path("/etc/passwd")).unwrap();
    let home = passwd
        .lines()
        .find(|l| l.starts_with("wso2carbon:"))
        .and_then(|l| l.split(':').nth(5))
        .expect("wso2carbon in the node's passwd");
    node.path(home).display().to_string()
}

#[test]
fn jvm_settings_reach_the_server_through_the_one_environment_file() {
    let master = TestMaster::start();
    // A hostile option must reach the JVM as text, never run.
    master.enable_service("");
    master.edit_site("roles/is.toml", |t| {
        t.replace(
            "xmx = \"2048m\"",
            "xmx = \"2048m\"\nopts = \"-Dnote=\\\"$(touch pwned)\\\" `touch pwned`\"",
        )
    });
    let imds = FakeImds::start(Instance::at("i-jvm", "127.0.0.8"));
    let node = TestAgent::new("rt-jvm");
    let token = master.token(&["--role", "is"]);
    let fp = master.fingerprint();
    let first = node.once_with_env(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--token",
            &token,
            "--ca-fingerprint",
            &fp,
        ],
        &[("RIGGER_AGENT_ONLY", "must not leak")],
    );
    assert_eq!(first.code, 2, "{}", first.all());
    let environment = get("127.0.0.8:9763", "/rigger/environment").expect("the server answers");
    let lines: Vec<&str> = environment.lines().collect();
    for expected in [
        "JVM_MEM_OPTS=-Xms512m -Xmx2048m",
        "JAVA_OPTS=-Xms512m -Xmx2048m -Dnote=\"$(touch pwned)\" `touch pwned`",
        "JAVA_HOME=/opt/java",
        &format!("HOME={}", expected_home(&node)),
        &format!(
            "CARBON_HOME={}",
            node.path("/opt/wso2/wso2is-5.11.0").display()
        ),
    ] {
        assert!(lines.contains(&expected), "{expected:?} in:\n{environment}");
    }
    assert!(
        !environment.contains("RIGGER_AGENT_ONLY") && !environment.contains("RIGGER_LOG"),
        "the agent's own environment reached the server:\n{environment}"
    );
    let release = std::fs::canonicalize(node.path("/opt/wso2/wso2is-5.11.0")).unwrap();
    assert!(
        !release.join("pwned").exists() && !node.root().join("pwned").exists(),
        "an option ran as a command"
    );
    let env_file = std::fs::read_to_string(release.join("bin/rigger-env.sh")).unwrap();
    assert!(
        env_file.contains("JVM_MEM_OPTS=\"-Xms512m -Xmx2048m\""),
        "{env_file}"
    );

    // A new heap size restarts the server with it.
    let pid = node.service_pid("wso2is").unwrap();
    master.edit_site("roles/is.toml", |t| {
        t.replace("xmx = \"2048m\"", "xmx = \"3g\"")
    });
    let changed = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(changed.code, 2, "{}", changed.all());
    assert_ne!(
        node.service_pid("wso2is"),
        Some(pid),
        "the server was not restarted"
    );
    let environment = get("127.0.0.8:9763", "/rigger/environment").unwrap();
    assert!(
        environment
            .lines()
            .any(|l| l == "JVM_MEM_OPTS=-Xms512m -Xmx3g"),
        "{environment}"
    );
}

#[test]
fn the_server_runs_as_the_service_user_created_in_the_nodes_root() {
    if !root_or_skip("the_server_runs_as_the_service_user_created_in_the_nodes_root") {
        return;
    }
    let master = TestMaster::start();
    master.edit_site("roles/is.toml", |t| {
        format!("{t}\n[service]\nenabled = true\nuser = \"wso2carbon\"\ngroup = \"wso2\"\n")
    });
    let imds = FakeImds::start(Instance::at("i-user", "127.0.0.7"));
    let node = TestAgent::new("rt-user");
    let out = node.enroll_at(&master, "is", &imds.url());
    let console =
        std::fs::read_to_string(node.path("/var/log/wso2/wso2is/console.log")).unwrap_or_default();
    assert_eq!(out.code, 2, "{}\nconsole.log:\n{console}", out.all());
    let passwd = std::fs::read_to_string(node.path("/etc/passwd")).unwrap();
    assert!(passwd.contains("wso2carbon:x:802:802:"), "{passwd}");
    assert!(
        std::fs::read_to_string(node.path("/etc/group"))
            .unwrap()
            .contains("wso2:x:802:")
    );
    let pid = node.service_pid("wso2is").expect("pidfile");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|id| id == "802"),
        "{uid_line}"
    );
    // The release's folders and runtime paths belong to the service user,
    // so the server could write its pid file into CARBON_HOME; the pack's
    // own files are the cache's read-only objects, which it can run but
    // not change; rendered secrets stay root's, read through the service
    // group.
    use std::os::unix::fs::MetadataExt;
    let home = node.path("/opt/wso2/wso2is-5.11.0");
    for relative in [".", "bin", "repository/logs", "wso2carbon.pid"] {
        let meta = std::fs::metadata(home.join(relative)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (802, 802), "{relative}");
    }
    let script = std::fs::metadata(home.join("bin/wso2server.sh")).unwrap();
    assert_eq!(
        (script.uid(), script.gid(), script.mode() & 0o777),
        (0, 0, 0o555)
    );
    let toml = std::fs::metadata(home.join("repository/conf/deployment.toml")).unwrap();
    assert_eq!(
        (toml.uid(), toml.gid(), toml.mode() & 0o777),
        (0, 802, 0o640)
    );
    assert_eq!(
        get("127.0.0.7:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
    let again = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(again.code, 0, "{}", again.all());

    // Someone gives the release to root: the next run gives it back.
    let release = std::fs::canonicalize(&home).unwrap();
    std::os::unix::fs::chown(&release, Some(0), Some(0)).unwrap();
    let fixed = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(fixed.code, 2, "{}", fixed.all());
    assert!(fixed.stdout.contains("give release"), "{}", fixed.all());
    let meta = std::fs::metadata(&release).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (802, 802));

    // A shared file given to the service user (who could then change it):
    // found by the converged run's stat pass and replaced by a fresh
    // object, root's again; the inode given away is no release's any more.
    let given = release.join("bin/wso2server.sh");
    let given_inode = std::fs::metadata(&given).unwrap().ino();
    std::os::unix::fs::lchown(&given, Some(802), Some(802)).unwrap();
    let repaired = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(repaired.code, 2, "{}", repaired.all());
    assert!(
        repaired.stdout.contains("repair 1 modified file(s)"),
        "{}",
        repaired.all()
    );
    let script = std::fs::metadata(&given).unwrap();
    assert_eq!(
        (script.uid(), script.gid(), script.mode() & 0o777),
        (0, 0, 0o555)
    );
    assert_ne!(script.ino(), given_inode);
}

#[test]
fn wait_ready_returns_once_the_first_catalog_is_applied_and_the_server_answers() {
    let master = TestMaster::start();
    master.enable_service("");
    let imds = FakeImds::start(Instance::at("i-ready", "127.0.0.8"));
    let mut node = TestAgent::new("rt-ready");
    let token = master.token(&["--role", "is"]);
    let fp = master.fingerprint();
    node.start_daemon(
        &master.url(),
        &[
            "--imds-endpoint",
            &imds.url(),
            "--token",
            &token,
            "--ca-fingerprint",
            &fp,
            "--splay",
            "0s",
        ],
    );
    let ready = node.ctl(&["wait-ready", "--timeout", "2m"]);
    assert_eq!(ready.code, 0, "{}\n{}", ready.all(), node.log());
    assert_eq!(
        get("127.0.0.8:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );

    // What started the server: a run, with the catalog that runs.
    let status = node.status();
    let process = &status["processes"][0];
    assert_eq!(
        process["started_with_version"], status["catalog_version"],
        "{status}"
    );
    assert_eq!(process["started_by"], "run", "{status}");
    assert_eq!(process["restarts_after_exit"], 0, "{status}");

    // The server dies between runs: the daemon's supervisor starts it again
    // without waiting for the next run, and says so.
    let pid = node.service_pid("wso2is").unwrap();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = wait_for(
        "the supervisor to start the server again",
        Duration::from_secs(60),
        || {
            let s = node.status();
            let restarted = node
                .service_pid("wso2is")
                .is_some_and(|p| p != pid && alive(p));
            (restarted
                && s["supervisor"]
                    .as_str()
                    .unwrap_or("")
                    .contains("had exited"))
            .then_some(s)
        },
    );
    assert!(
        status["supervisor"]
            .as_str()
            .unwrap()
            .contains("wso2is had exited; started again"),
        "{status}"
    );
    // Seen as it happened (the server's pidfd), not at a later pass.
    assert!(
        node.log().contains(&format!(
            "the server exited: the supervisor looks at once service=wso2is pid={pid}"
        )),
        "{}",
        node.log()
    );
    let process = &status["processes"][0];
    assert_eq!(process["started_by"], "supervisor", "{status}");
    assert_eq!(process["restarts_after_exit"], 1, "{status}");
    let shown = node.ctl(&["status"]);
    assert!(
        shown.stdout.contains(&format!(
            ", started again by the supervisor with catalog version {}; started again once after it exited",
            status["catalog_version"]
        )),
        "{}",
        shown.all()
    );
    assert_eq!(
        get("127.0.0.8:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
    node.stop_daemon();

    // A node that cannot enroll never becomes ready: wait-ready says why.
    let mut stuck = TestAgent::new("rt-stuck");
    stuck.start_daemon(
        &master.url(),
        &["--token", "not-a-token", "--ca-fingerprint", &fp],
    );
    let out = stuck.ctl(&["wait-ready", "--timeout", "3s"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not ready after 3s"), "{}", out.all());
    assert!(
        out.stderr.contains("bootstrap token is not valid"),
        "{}",
        out.all()
    );
}

/// A master whose `is` role runs the server with a bind-mounted "EFS" at
/// /mnt/efs (from each node's /srv/efs-export).
fn master_with_bind_share() -> TestMaster {
    let master = TestMaster::start();
    master.enable_service(
        "[shared_fs]\nenabled = true\ntype = \"bind\"\nsource = \"/srv/efs-export\"\nmount_point = \"/mnt/efs\"\n",
    );
    master
}

/// A node whose /srv/efs-export is the shared directory `efs`.
fn node_on_share(name: &str, efs: &std::path::Path) -> TestAgent {
    let node = TestAgent::new(name);
    std::fs::create_dir_all(node.path("/srv")).unwrap();
    std::os::unix::fs::symlink(efs, node.path("/srv/efs-export")).unwrap();
    node
}

#[test]
fn two_nodes_seed_one_share_once_and_an_unavailable_share_keeps_the_server_down() {
    if !root_or_skip("two_nodes_seed_one_share_once_and_an_unavailable_share_keeps_the_server_down")
    {
        return;
    }
    let master = master_with_bind_share();
    // The "EFS": one directory both nodes bind-mount (through a link in each root).
    let efs = tempfile::tempdir().unwrap();
    let nodes: Vec<(TestAgent, FakeImds)> = (9..=10)
        .map(|n| {
            let agent = node_on_share(&format!("share-{n}"), efs.path());
            let imds = FakeImds::start(Instance::at(
                &format!("i-share-{n}"),
                &format!("127.0.0.{n}"),
            ));
            (agent, imds)
        })
        .collect();
    let fp = master.fingerprint();
    let tokens: Vec<String> = nodes
        .iter()
        .map(|_| master.token(&["--role", "is"]))
        .collect();

    // Both nodes' first runs at the same time, in separate processes.
    let outputs: Vec<rigger_tests::Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .zip(&tokens)
            .map(|((agent, imds), token)| {
                let (url, fp, imds) = (master.url(), fp.clone(), imds.url());
                scope.spawn(move || {
                    agent.once(
                        &url,
                        &[
                            "--imds-endpoint",
                            &imds,
                            "--token",
                            token,
                            "--ca-fingerprint",
                            &fp,
                        ],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outputs {
        assert_eq!(out.code, 2, "{}", out.all());
    }
    let marker = std::fs::read_to_string(efs.path().join("Deployment/.rigger-seed.json")).unwrap();
    assert!(marker.contains("\"level\": 0"), "{marker}");
    assert!(efs.path().join("Tenants/.rigger-seed.json").exists());
    let leftovers: Vec<String> = std::fs::read_dir(efs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for (agent, _) in &nodes {
        let link = agent.link_target("/opt/wso2/wso2is-5.11.0/repository/deployment");
        assert_eq!(link, agent.path("/mnt/efs/Deployment"));
    }
    // The server (wso2carbon) deploys into the shared folders: they are its.
    use std::os::unix::fs::MetadataExt;
    for folder in ["Deployment", "Deployment/server", "Tenants"] {
        let meta = std::fs::metadata(efs.path().join(folder)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (802, 802), "{folder}");
    }
    // What one node deploys, the other sees.
    std::fs::write(
        nodes[0]
            .0
            .path("/opt/wso2/wso2is-5.11.0/repository/deployment/app.war"),
        "deployed",
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(
            nodes[1]
                .0
                .path("/opt/wso2/wso2is-5.11.0/repository/deployment/app.war")
        )
        .unwrap(),
        "deployed"
    );
    let (agent, imds) = &nodes[0];
    // The first of the two may have compiled before the other enrolled: it
    // picks up its new WKA peer now, then nothing changes any more.
    agent.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    let again = agent.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(again.code, 0, "{}", again.all());

    // The share goes away (its export is gone): the server is not started
    // on empty local folders, and the run says why.
    agent.kill_services();
    agent.unmount_all();
    std::fs::remove_file(agent.path("/srv/efs-export")).unwrap();
    let out = agent.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert!(out.code == 4 || out.code == 6, "{}", out.all());
    assert!(out.stderr.contains("shared_fs: FAILED"), "{}", out.all());
    assert!(out.stderr.contains("server: skipped"), "{}", out.all());
    let state = std::fs::read_to_string(agent.path("/var/lib/rigger/agent/state.json")).unwrap();
    assert!(
        state.contains("shared_fs: cannot bind"),
        "agentctl status shows the failing resource: {state}"
    );
    assert!(
        get("127.0.0.9:9763", "/carbon/admin/login.jsp").is_none(),
        "the server runs without its share"
    );

    // The share comes back: one run mounts it, looks at the shared folders
    // again and starts the server, with no failure on the way.
    std::os::unix::fs::symlink(efs.path(), agent.path("/srv/efs-export")).unwrap();
    let back = agent.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(back.code, 2, "{}", back.all());
    assert!(!back.all().contains("FAILED"), "{}", back.all());
    assert_eq!(
        get("127.0.0.9:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok"),
        "the server is back on its share"
    );
    let settled = agent.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(settled.code, 0, "{}", settled.all());
}

#[test]
fn a_higher_update_level_resyncs_the_share_and_keeps_what_operators_deployed() {
    if !root_or_skip("a_higher_update_level_resyncs_the_share_and_keeps_what_operators_deployed") {
        return;
    }
    let master = master_with_bind_share();
    let efs = tempfile::tempdir().unwrap();
    let node = node_on_share("resync-1", efs.path());
    let imds = FakeImds::start(Instance::at("i-resync", "127.0.0.25"));
    let url = imds.url();
    let first = node.enroll_at(&master, "is", &url);
    assert_eq!(first.code, 2, "{}", first.all());
    // One run from a fresh root: the service user, the pack, the "EFS"
    // mounted and seeded, both links, the server running as wso2carbon.
    assert!(
        std::fs::read_to_string(node.path("/etc/passwd"))
            .unwrap()
            .contains("wso2carbon:x:802:802:")
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount_point = node.path("/mnt/efs").display().to_string();
    assert!(
        mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mount_point.as_str())),
        "/mnt/efs is not mounted"
    );
    let marker =
        || std::fs::read_to_string(efs.path().join("Deployment/.rigger-seed.json")).unwrap();
    assert!(marker().contains("\"level\": 0"), "{}", marker());
    for (relative, share) in [("deployment", "Deployment"), ("tenants", "Tenants")] {
        assert_eq!(
            node.link_target(&format!("/opt/wso2/wso2is-5.11.0/repository/{relative}")),
            node.path(&format!("/mnt/efs/{share}"))
        );
    }
    let first_pid = node.service_pid("wso2is").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{first_pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t802\t")),
        "{status}"
    );
    // A second run changes nothing and keeps the same server.
    let second = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(node.service_pid("wso2is"), Some(first_pid));

    // A webapp of the pack (file 3 is under repository/deployment), and an
    // artifact an operator deployed onto the share.
    let ga = rigger_tests::pack::SamplePack::new(40, 256 << 10);
    let webapp = rigger_tests::pack::SamplePack::file_path(3);
    let on_share = efs
        .path()
        .join("Deployment")
        .join(webapp.strip_prefix("repository/deployment/").unwrap());
    assert_eq!(std::fs::read(&on_share).unwrap(), ga.content(3));
    let operators = efs.path().join("Deployment/server/carbonapps/orders.car");
    std::fs::create_dir_all(operators.parent().unwrap()).unwrap();
    std::fs::write(&operators, "deployed by an operator").unwrap();
    let pid = node.service_pid("wso2is").unwrap();

    // Update level 1 changes every file of the pack, that webapp included.
    let update = ga.at_level(1, 1000);
    assert!(update.changes(3));
    assert_eq!(master.import_update(&update).code, 0);
    let out = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stdout
            .contains("re-sync /mnt/efs/Deployment from level 0 to 1"),
        "{}",
        out.all()
    );
    assert!(marker().contains("\"level\": 1"), "{}", marker());
    assert_eq!(
        std::fs::read(&on_share).unwrap(),
        update.content(3),
        "the webapp was not re-synced"
    );
    // What the re-sync wrote is the server's; the rest keeps its owner
    // (the share is not walked again: it holds every tenant's files).
    use std::os::unix::fs::MetadataExt;
    let resynced = std::fs::metadata(&on_share).unwrap();
    assert_eq!((resynced.uid(), resynced.gid()), (802, 802));
    assert_eq!(
        std::fs::metadata(&operators).unwrap().uid(),
        0,
        "the operator's artifact was given away: {}",
        out.all()
    );
    assert_eq!(
        std::fs::read_to_string(&operators).unwrap(),
        "deployed by an operator",
        "the operator's artifact was lost"
    );
    // The server runs on the new release, through the link to the share.
    let new_pid = node.service_pid("wso2is").unwrap();
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    assert_eq!(
        node.link_target("/opt/wso2/wso2is-5.11.0/repository/deployment"),
        node.path("/mnt/efs/Deployment")
    );
    assert!(
        node.link_target("/opt/wso2/wso2is-5.11.0")
            .to_string_lossy()
            .contains("-L1-")
    );
    assert_eq!(
        get("127.0.0.25:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
    let again = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(again.code, 0, "{}", again.all());

    // Rolling the role back to level 0 takes the share back with it: the
    // webapp is level 0's again, the operator's artifact stays.
    master.edit_site("roles/is.toml", |t| {
        t.replace("update_level = \"latest\"", "update_level = 0")
    });
    let back = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(back.code, 2, "{}", back.all());
    assert!(
        back.stdout
            .contains("roll back /mnt/efs/Deployment from level 1 to 0"),
        "{}",
        back.all()
    );
    assert!(marker().contains("\"level\": 0"), "{}", marker());
    assert_eq!(
        std::fs::read(&on_share).unwrap(),
        ga.content(3),
        "the level-1 webapp stayed on the share"
    );
    assert_eq!(
        std::fs::read_to_string(&operators).unwrap(),
        "deployed by an operator",
        "the operator's artifact was lost"
    );
    assert!(
        node.link_target("/opt/wso2/wso2is-5.11.0")
            .to_string_lossy()
            .contains("-L0-")
    );
    let settled = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(settled.code, 0, "{}", settled.all());
}

#[test]
fn a_release_built_while_the_share_was_away_gets_its_folders_back_when_sharing_is_turned_off() {
    if !root_or_skip(
        "a_release_built_while_the_share_was_away_gets_its_folders_back_when_sharing_is_turned_off",
    ) {
        return;
    }
    let master = master_with_bind_share();
    // The "EFS" export never comes up on this node.
    let node = TestAgent::new("share-away");
    let imds = FakeImds::start(Instance::at("i-share-away", "127.0.0.26"));
    let url = imds.url();
    let first = node.enroll_at(&master, "is", &url);
    assert!(first.code == 4 || first.code == 6, "{}", first.all());
    assert!(first.stderr.contains("server: skipped"), "{}", first.all());
    // The release went in without the folders it keeps on the share: a
    // new release never copies them only to replace them with a link.
    let home = node.link_target("/opt/wso2/wso2is-5.11.0");
    assert!(home.join("bin").is_dir(), "{}", home.display());
    for folder in ["repository/deployment", "repository/tenants"] {
        assert!(
            std::fs::symlink_metadata(home.join(folder)).is_err(),
            "{folder} was copied into the release"
        );
    }

    // The operator turns the share off: the same release gets the pack's
    // folders back and the server starts on them.
    master.edit_site("roles/is.toml", |t| {
        t.replace(
            "[shared_fs]\nenabled = true",
            "[shared_fs]\nenabled = false",
        )
    });
    let out = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(!out.all().contains("FAILED"), "{}", out.all());
    assert!(
        out.stdout.contains("restore repository/deployment"),
        "{}",
        out.all()
    );
    assert_eq!(node.link_target("/opt/wso2/wso2is-5.11.0"), home);
    let webapp = rigger_tests::pack::SamplePack::file_path(3);
    assert_eq!(
        std::fs::read(home.join(&webapp)).unwrap(),
        rigger_tests::pack::SamplePack::new(40, 256 << 10).content(3),
        "{webapp} was not restored"
    );
    assert!(
        !std::fs::symlink_metadata(home.join("repository/deployment"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        get("127.0.0.26:9763", "/carbon/admin/login.jsp").as_deref(),
        Some("ok")
    );
    let settled = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(settled.code, 0, "{}", settled.all());
}

#[test]
fn an_api_manager_gateway_runs_through_the_same_node_runtime() {
    let master = TestMaster::start_empty();
    let mut pack = rigger_tests::pack::SamplePack::new(20, 64 << 10);
    pack.name = "wso2am".into();
    pack.version = "4.2.0".into();
    let out = master.import_pack(&pack);
    assert_eq!(out.code, 0, "{}", out.all());
    master.edit_site("roles/gw.toml", |_| {
        "[role]\nmodule = \"wso2am\"\nprofile = \"apim_gateway\"\nversion = \"4.2.0\"\nenvironment = \"demo\"\ncluster = \"apim-demo\"\n".into()
    });
    master.enable_service_of("gw", "");
    std::fs::write(
        master.site().join("secrets/roles/gw.toml"),
        "[super_admin]\npassword = \"gw-admin-secret\"\n",
    )
    .unwrap();
    let imds = FakeImds::start(Instance::at("i-gw", "127.0.0.28"));
    let node = TestAgent::new("gw-1");
    let url = imds.url();
    let first = node.enroll_at(&master, "gw", &url);
    assert_eq!(first.code, 2, "{}", first.all());
    assert!(
        first.stdout.contains("server: start service wso2am"),
        "{}",
        first.all()
    );
    // bin/api-manager.sh -Dprofile=gateway-worker started it, and the run
    // waited for https://127.0.0.28:9443/services/Version.
    let pid = node.service_pid("wso2am").expect("pidfile");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("rigger-sample-server"),
        "{cmdline:?}"
    );
    assert_eq!(
        get("127.0.0.28:9763", "/services/Version").as_deref(),
        Some("ok")
    );
    let log = std::fs::read_to_string(node.path("/var/log/wso2/wso2am/console.log")).unwrap();
    assert!(log.contains("listening on 127.0.0.28:9763"), "{log}");
    let again = node.once(&master.url(), &["--imds-endpoint", &url]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(node.service_pid("wso2am"), Some(pid));
}

/// Fixture `small-disk`: the node's whole root is a 90 MiB file system.
/// The GA release fits (8 MiB fetched, 8 MiB released, 64 MiB margin);
/// update level 1, which changes every file, does not fit beside it.
#[test]
fn a_disk_too_small_for_an_update_never_takes_the_server_down() {
    if !root_or_skip("a_disk_too_small_for_an_update_never_takes_the_server_down") {
        return;
    }
    let master = TestMaster::start_empty();
    let ga = rigger_tests::pack::SamplePack::new(40, 8 << 20);
    assert_eq!(master.import_pack(&ga).code, 0);
    master.enable_service("");
    let node = TestAgent::new("small-disk");
    nix::mount::mount(
        Some("tmpfs"),
        node.root(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=90m,mode=0755"),
    )
    .unwrap();
    let imds = FakeImds::start(Instance::at("i-small-disk", "127.0.0.41"));
    let url = imds.url();
    let first = node.enroll_at(&master, "is", &url);
    assert_eq!(first.code, 2, "{}", first.all());
    let pid = node.service_pid("wso2is").unwrap();
    let free = || {
        nix::sys::statvfs::statvfs(node.root())
            .unwrap()
            .blocks_available()
    };
    let free_before = free();

    assert_eq!(master.import_update(&ga.at_level(1, 1000)).code, 0);
    // Every run says why, fetches nothing and leaves the server alone.
    for _ in 0..2 {
        let out = node.once(&master.url(), &["--imds-endpoint", &url]);
        assert_eq!(out.code & 4, 4, "{}", out.all());
        assert!(
            out.all().contains("not enough free disk space")
                && out
                    .all()
                    .contains("nothing was fetched and the running release stays"),
            "{}",
            out.all()
        );
        assert!(
            out.all()
                .contains("not switched, the running release stays"),
            "{}",
            out.all()
        );
        assert_eq!(
            node.service_pid("wso2is"),
            Some(pid),
            "the server was restarted: {}",
            out.all()
        );
        assert_eq!(
            get("127.0.0.41:9763", "/carbon/admin/login.jsp").as_deref(),
            Some("ok")
        );
    }
    assert!(
        node.link_target("/opt/wso2/wso2is-5.11.0")
            .to_string_lossy()
            .contains("-L0-")
    );
    let releases: Vec<String> = std::fs::read_dir(node.path("/opt/wso2/releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-L1-"))
        .collect();
    assert!(releases.is_empty(), "{releases:?}");
    // Nothing of level 1 was written (a manifest and logs at most).
    let used = (free_before - free())
        * nix::sys::statvfs::statvfs(node.root())
            .unwrap()
            .fragment_size();
    assert!(used < 1 << 20, "the failed update used {used} bytes");
}

#[test]
fn the_share_is_shown_and_polled_an_unmount_or_a_lost_folder_is_repaired_without_a_run() {
    if !root_or_skip(
        "the_share_is_shown_and_polled_an_unmount_or_a_lost_folder_is_repaired_without_a_run",
    ) {
        return;
    }
    let master = master_with_bind_share();
    let efs = tempfile::tempdir().unwrap();
    let mut node = node_on_share("share-status", efs.path());
    let imds = FakeImds::start(Instance::at("i-share-status", "127.0.0.73"));
    assert_eq!(node.enroll_at(&master, "is", &imds.url()).code, 2);
    node.start_daemon(
        &master.url(),
        &["--imds-endpoint", &imds.url(), "--run-interval", "30m"],
    );
    assert_eq!(node.ctl(&["run"]).code, 0);
    let status = node.status();
    let mount = &status["mounts"][0];
    assert_eq!(mount["path"], "/mnt/efs", "{status}");
    assert_eq!(mount["matches"], true, "{status}");
    assert!(
        mount["mounted"].as_str().is_some_and(|m| !m.is_empty()),
        "{status}"
    );
    let links = status["links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "deployment and tenants: {status}");
    for link in links {
        assert_eq!(link["ok"], true, "{status}");
        assert!(
            link["expected"]
                .as_str()
                .unwrap()
                .starts_with(&node.path("/mnt/efs").display().to_string()),
            "{status}"
        );
    }
    let shown = node.ctl(&["status"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    assert!(
        shown.stdout.contains("mount:     /mnt/efs "),
        "{}",
        shown.all()
    );
    assert!(shown.stdout.contains("link:      "), "{}", shown.all());

    // The share goes away while the agent is disabled (which keeps it
    // from putting the share back): the screen says so.
    assert_eq!(
        node.ctl(&["disable", "--reason", "share maintenance"]).code,
        0
    );
    let umount = || {
        let out = std::process::Command::new("umount")
            .arg(node.path("/mnt/efs"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    umount();
    let status = node.status();
    assert_eq!(status["mounts"][0]["matches"], false, "{status}");
    assert!(status["mounts"][0]["mounted"].is_null(), "{status}");
    let shown = node.ctl(&["status"]);
    assert_eq!(shown.code, 3, "disabled: {}", shown.all());
    assert!(
        shown
            .stdout
            .contains("WARNING:   /mnt/efs is NOT MOUNTED (wants bind from /srv/efs-export)"),
        "{}",
        shown.all()
    );
    // Three share polls later, a disabled agent has still left it alone.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(node.status()["mounts"][0]["matches"], false);
    assert_eq!(node.status()["drift"]["repairs"], 0);

    // Enabled again, the share poll (NFS gives no events) sees the
    // unmount and a repair run mounts it within seconds, no run asked for.
    assert_eq!(node.ctl(&["enable"]).code, 0);
    let status = wait_for(
        "the share to be mounted again",
        Duration::from_secs(30),
        || {
            let s = node.status();
            (s["mounts"][0]["matches"] == true && s["running"] == false).then_some(s)
        },
    );
    assert_eq!(status["drift"]["repairs"], 1, "{status}");
    assert!(
        status["drift"]["last_paths"]
            .as_str()
            .unwrap()
            .contains("shared_fs"),
        "{status}"
    );
    assert_eq!(node.ctl(&["status"]).code, 0);

    // A shared folder removed from the share (by another node, say) is
    // seeded again from the release.
    std::fs::remove_dir_all(efs.path().join("Tenants")).unwrap();
    wait_for(
        "the shared folder to be seeded again",
        Duration::from_secs(30),
        || {
            efs.path()
                .join("Tenants/.rigger-seed.json")
                .exists()
                .then_some(())
        },
    );
    let shown = master.ctl(&["node", "show", "share-status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(json["reports"][0]["trigger"], "drift", "{json}");

    // A repair that cannot work (the export is gone) is tried once, not
    // at every poll: the scheduled runs retry with their backoff.
    wait_for("the repair run to end", Duration::from_secs(30), || {
        (node.status()["running"] == false).then_some(())
    });
    let repairs = node.status()["drift"]["repairs"].as_u64().unwrap();
    std::fs::remove_file(node.path("/srv/efs-export")).unwrap();
    umount();
    wait_for("a repair to be tried", Duration::from_secs(30), || {
        (node.status()["drift"]["repairs"].as_u64() == Some(repairs + 1)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(8));
    let status = node.status();
    assert_eq!(status["drift"]["repairs"], repairs + 1, "{status}");
    assert_eq!(status["mounts"][0]["matches"], false, "{status}");
    assert!(node.log().contains("cannot bind"), "{}", node.log());
    node.stop_daemon();
}
