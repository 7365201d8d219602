//! Benchmark: the master's memory with thousands of agents holding
//! `WatchCatalog` streams, each over its own TLS connection, as real
//! agents do. Prints figures; asserts nothing about size.
//!
//! The agents are simulated in this process: 20 enrolled identities (the
//! master lets one address enroll 20 at once), each opening
//! `RIGGER_BENCH_STREAMS / 20` connections with one watch stream each.
//! The master is a real `rigger-master` process; its RSS is read from
//! `/proc/PID/status` idle and with every stream open (its own
//! `rigger_master_watch_streams` metric says when they are).
//!
//! Run with `cargo build --release --workspace --bins && cargo bench -p
//! rigger-tests --bench watch_streams` (default 5,000 streams).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rigger_agent::client::{Connector, GrpcConnector};
use rigger_agent::identity::{EnrollSettings, ensure};
use rigger_common::digest::Digest;
use rigger_common::grpc::MasterAddress;
use rigger_tests::{TestMaster, http_get, wait_for};

const IDENTITIES: usize = 20;
const METRICS: &str = "127.0.0.97:9140";

/// The master's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    rigger_tests::fleet_load::rss_kib(pid).expect("VmRSS")
}

fn open_streams() -> Option<u64> {
    let text = http_get(METRICS, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix("rigger_master_watch_streams "))
        .and_then(|v| v.trim().parse().ok())
}

fn main() {
    let streams: usize = std::env::var("RIGGER_BENCH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    rigger_common::connections::raise_nofile_limit().expect("raise the open-file limit");
    let master = TestMaster::start_with_flags_and_open_file_limit(
        &["--metrics-listen", METRICS],
        (streams as u64 + 1_000).max(4_096),
    );
    let token = master.token(&["--role", "is", "--uses", &IDENTITIES.to_string()]);
    let fingerprint = Digest::parse(master.fingerprint().trim()).unwrap();
    let address = MasterAddress::parse(&master.url()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..IDENTITIES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let identities = runtime.block_on(async {
        let mut identities = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let settings = EnrollSettings {
                master: address.clone().into(),
                certname: format!("bench-watch-{i}"),
                ca_cert: None,
                ca_fingerprint: Some(fingerprint),
                token: Some(token.clone()),
                ec2: None,
                role: None,
                timeout: Duration::from_secs(30),
            };
            identities.push(ensure(dir.path(), &settings).await.expect("enroll"));
        }
        identities
    });
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(master.pid());

    let started = Instant::now();
    let held = runtime.block_on(async {
        let connector = Arc::new(GrpcConnector {
            master: address.clone().into(),
            timeout: Duration::from_secs(60),
        });
        let identities = Arc::new(identities);
        let mut held = Vec::with_capacity(streams);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..streams {
            // A bounded number of handshakes at once.
            while tasks.len() >= 64 {
                held.push(tasks.join_next().await.unwrap().unwrap());
            }
            let (connector, identities) = (connector.clone(), identities.clone());
            tasks.spawn(async move {
                let client = connector
                    .connect(&identities[i % IDENTITIES])
                    .await
                    .expect("connect");
                let stream = client.watch_catalog().await.expect("watch");
                (client, stream)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            held.push(joined.unwrap());
        }
        held
    });
    let opened = started.elapsed();
    wait_for(
        "the master to count every stream",
        Duration::from_secs(120),
        || (open_streams() == Some(streams as u64)).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    let loaded = rss_kib(master.pid());
    println!(
        "master RSS: {:.1} MiB idle, {:.1} MiB with {streams} watch streams over {streams} TLS connections ({:.1} KiB each); opened in {:.1} s",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0,
        (loaded.saturating_sub(idle)) as f64 / streams as f64,
        opened.as_secs_f64()
    );
    drop(held);
    drop(runtime);
}
