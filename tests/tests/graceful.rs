//! Graceful stop: the stand-in WSO2 server, sent SIGTERM as the agent's
//! process provider stops it, finishes the requests in flight before it
//! exits (as WSO2 servers drain), so a restart under load fails none.

use std::process::{Command, Stdio};
use std::time::Duration;

use rigger_tests::{bin, http_get, wait_for};

#[test]
fn the_stand_in_finishes_requests_in_flight_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let conf = home.path().join("repository/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("deployment.toml"),
        "[server]\nhostname = \"graceful.example.com\"\nnode_ip = \"127.0.0.41\"\n",
    )
    .unwrap();
    let mut server = Command::new(bin("rigger-sample-server"))
        .arg(home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the stand-in");
    wait_for("the stand-in to listen", Duration::from_secs(10), || {
        http_get("127.0.0.41:9763", "/rigger/hostname")
    });
    let slow = std::thread::spawn(|| http_get("127.0.0.41:9763", "/rigger/slow?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        slow.join().unwrap().as_deref(),
        Some("ok"),
        "the request in flight was cut"
    );
    let status = wait_for("the stand-in to exit", Duration::from_secs(15), || {
        server.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    assert!(
        http_get("127.0.0.41:9763", "/rigger/hostname").is_none(),
        "still accepting after SIGTERM"
    );
}

#[test]
fn the_stand_in_refuses_the_failing_host_name() {
    let home = tempfile::tempdir().unwrap();
    let conf = home.path().join("repository/conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("deployment.toml"),
        "[server]\nhostname = \"fail.invalid\"\nnode_ip = \"127.0.0.42\"\n",
    )
    .unwrap();
    let out = Command::new(bin("rigger-sample-server"))
        .arg(home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing hostname fail.invalid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
