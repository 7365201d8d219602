//! `rigger-load`: simulated agents against one or more masters, printing
//! throughput, latency percentiles and (for masters on this machine) their
//! resident memory. Each agent enrolls with its own key from its own
//! 127.B.x.y address, holds a `WatchCatalog` stream over its own TLS
//! connection, and makes runs (catalog, its blobs once, a report); see
//! `rigger_tests::fleet_load`. Talks only to the masters it is given, as
//! IP addresses: it never resolves a name.
//!
//!   rigger-load --master https://127.0.0.1:8140[,https://127.0.0.2:8140] \
//!     --ca-cert ca.crt --token-file token --agents 1000 --duration 30s \
//!     [--master-pid PID]…

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rigger_common::grpc::MasterAddress;
use rigger_tests::fleet_load::{self, LoadSettings, rss_kib};

/// Simulated agents against Rigger masters.
#[derive(Debug, Parser)]
#[command(name = "rigger-load")]
struct Cli {
    /// The masters (https://IP:PORT), comma-separated; agent i uses the
    /// (i mod count)th.
    #[arg(long, value_delimiter = ',', required = true)]
    master: Vec<String>,
    /// The fleet CA's certificate (PEM).
    #[arg(long)]
    ca_cert: PathBuf,
    /// A file holding a bootstrap token with a use for every agent.
    #[arg(long)]
    token_file: PathBuf,
    /// The roles the agents ask for, comma-separated: agent i the
    /// (i mod count)th (several need a token made with `--unbound`).
    #[arg(long, value_delimiter = ',', default_value = "is")]
    role: Vec<String>,
    /// How many agents.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// The second octet of the agents' addresses: 127.N.x.y.
    #[arg(long, default_value_t = 1)]
    network: u8,
    /// Certnames are PREFIX-i.
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Enrollments and connections made at once.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Runs in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long the agents make runs (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Each network call's limit.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// A master's process id on this machine, for its memory (repeatable).
    #[arg(long)]
    master_pid: Vec<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rigger-load: {e}");
            ExitCode::from(64)
        }
    }
}

/// Whether every run succeeded.
fn run(cli: &Cli) -> Result<bool, String> {
    let masters = cli
        .master
        .iter()
        .map(|m| {
            let address = MasterAddress::parse(m).map_err(|e| format!("--master {m}: {e}"))?;
            if address.host.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "--master {m}: give the master as an IP address (the simulated agents bind loopback addresses and resolve no names)"
                ));
            }
            Ok(address)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let settings = LoadSettings {
        masters,
        ca_pem: read(&cli.ca_cert)?,
        token: read(&cli.token_file)?.trim().to_string(),
        roles: cli.role.clone(),
        agents: cli.agents,
        network: cli.network,
        prefix: cli.prefix.clone(),
        setup_concurrency: cli.setup_concurrency,
        concurrency: cli.concurrency,
        duration: cli.duration,
        timeout: cli.timeout,
        master_pids: cli.master_pid.clone(),
    };
    rigger_common::connections::raise_nofile_limit()
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    for pid in &cli.master_pid {
        if let Some(kib) = rss_kib(*pid) {
            println!("master {pid} RSS before: {:.1} MiB", kib as f64 / 1024.0);
        }
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let figures = runtime.block_on(fleet_load::run(&settings))?;
    println!("{}", figures.summary());
    Ok(figures.failed == 0)
}
