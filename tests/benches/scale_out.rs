//! Benchmark: a fleet of simulated agents (default 10,000) against one
//! master on SQLite and the local disk, then against two masters on one
//! PostgreSQL database and one S3 bucket. Prints, for each: enrollment
//! and connection time, catalog requests per second, catalog latency
//! p50/p99, and each master's RSS with every agent connected. Asserts
//! only that every run succeeded (a failed run is a defect, not a figure).
//!
//! The fleet is spread over 100 clusters (roles `is-c0` … `is-c99`,
//! copies of the example `is` role), 100 nodes each at 10,000 agents.
//! Every agent enrolls with its own key from its own 127.B.x.y address,
//! holds a `WatchCatalog` stream over its own TLS connection and makes
//! runs (catalog, its blobs on its first run, a report), `CONCURRENCY`
//! runs in flight at once (`rigger_tests::fleet_load`, also the
//! `rigger-load` tool). The masters, PostgreSQL, s3s-fs and the load all
//! share this machine's cores.
//!
//! Run with `cargo build --release --workspace --bins && cargo bench -p
//! rigger-tests --bench scale_out`; `RIGGER_BENCH_AGENTS` and
//! `RIGGER_BENCH_SECONDS` change the fleet and how long it runs (30 s).

use std::time::Duration;

use rigger_common::grpc::MasterAddress;
use rigger_tests::TestMaster;
use rigger_tests::fleet_load::{self, LoadFigures, LoadSettings};
use rigger_tests::shared_stores::{ENV, SharedStores};

/// Runs in flight at once.
const CONCURRENCY: usize = 64;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Clusters the fleet is spread over: a WSO2 cluster is a handful of
/// nodes, and each node's catalog lists its cluster's members.
const CLUSTERS: usize = 100;

/// Gives each master's site the roles `is-c0` … (copies of `is` in
/// clusters of their own), and waits until the first compiles them.
fn add_cluster_roles(masters: &[&TestMaster]) -> Vec<String> {
    let roles: Vec<String> = (0..CLUSTERS).map(|c| format!("is-c{c}")).collect();
    for master in masters {
        let site = master.site();
        let role = std::fs::read_to_string(site.join("roles/is.toml")).unwrap();
        let secrets = std::fs::read(site.join("secrets/roles/is.toml")).unwrap();
        for name in &roles {
            let own = role.replace("cluster = \"is-demo\"", &format!("cluster = \"{name}\""));
            assert_ne!(own, role, "the role names its cluster");
            std::fs::write(site.join(format!("roles/{name}.toml")), own).unwrap();
            let secret = site.join(format!("secrets/roles/{name}.toml"));
            std::fs::write(&secret, &secrets).unwrap();
            std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
    }
    roles
}

/// Loads `masters` (the first holds the token) with `agents` agents from
/// 127.`network`.x.y, spread over [`CLUSTERS`] clusters.
fn load(masters: &[&TestMaster], agents: usize, seconds: u64, network: u8) -> LoadFigures {
    let roles = add_cluster_roles(masters);
    let token = masters[0].token(&["--unbound", "--uses", &agents.to_string()]);
    let settings = LoadSettings {
        masters: masters
            .iter()
            .map(|m| MasterAddress::parse(&m.url()).unwrap())
            .collect(),
        ca_pem: std::fs::read_to_string(masters[0].data_dir().join("ca.crt")).unwrap(),
        token,
        roles,
        agents,
        network,
        prefix: format!("scale-{network}"),
        setup_concurrency: 64,
        concurrency: CONCURRENCY,
        duration: Duration::from_secs(seconds),
        timeout: Duration::from_secs(120),
        master_pids: masters.iter().map(|m| m.pid()).collect(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime
        .block_on(fleet_load::run(&settings))
        .unwrap_or_else(|e| panic!("the load did not start: {e}"));
    assert_eq!(figures.failed, 0, "failed runs:\n{}", figures.summary());
    figures
}

fn main() {
    let agents = setting("RIGGER_BENCH_AGENTS", 10_000) as usize;
    let seconds = setting("RIGGER_BENCH_SECONDS", 30);
    let limit =
        rigger_common::connections::raise_nofile_limit().expect("raise the open-file limit");
    assert!(
        limit > agents as u64 + 2_000,
        "the open-file limit ({limit}) is too low for {agents} agents"
    );
    println!(
        "{agents} simulated agents, {CONCURRENCY} runs in flight, {seconds} s of runs; one 2-core machine for everything"
    );

    let single = TestMaster::start_with_flags_and_open_file_limit(&[], limit);
    let figures = load(&[&single], agents, seconds, 11);
    println!(
        "\n== one master, SQLite and the local disk\n{}",
        figures.summary()
    );
    drop(single);

    let Some(stores) = SharedStores::start("scale_out_bench") else {
        println!("\n(no PostgreSQL or s3s-fs here: the two-master figures are skipped)");
        return;
    };
    let a = TestMaster::start_with_env(&stores.flags(), &ENV);
    let b = TestMaster::start_joining(&a, &stores.flags(), &ENV);
    let figures = load(&[&a, &b], agents, seconds, 12);
    println!(
        "\n== two masters, one PostgreSQL database and one S3 bucket\n{}",
        figures.summary()
    );
}
