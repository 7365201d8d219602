//! `rigger-agent`'s command line.

use std::path::PathBuf;

use clap::Parser;
use rigger_common::logging::LogFormat;

/// The Rigger agent: converges this node to the catalog its master compiles for it.
#[derive(Parser, Debug, Clone)]
#[command(name = "rigger-agent", version)]
pub struct Cli {
    /// Configuration file (default: ROOT/etc/rigger/agent.toml).
    #[arg(long, env = "RIGGER_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Resolve every managed path, the state and the socket under DIR.
    #[arg(long, env = "RIGGER_ROOT", default_value = "/")]
    pub root: PathBuf,
    /// The master, https://HOST[:PORT]; several masters of one fleet
    /// separated by commas (each node keeps to one, and fails over).
    #[arg(long, env = "RIGGER_MASTER")]
    pub master: Option<String>,
    /// Trust the master's CA in this file.
    #[arg(long, env = "RIGGER_CA_CERT", conflicts_with = "ca_fingerprint")]
    pub ca_cert: Option<PathBuf>,
    /// Trust the master's CA with this fingerprint (sha256:HEX).
    #[arg(long, env = "RIGGER_CA_FINGERPRINT")]
    pub ca_fingerprint: Option<String>,
    /// Bootstrap token for the first enrollment.
    #[arg(long, env = "RIGGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// This node's name.
    #[arg(long, env = "RIGGER_CERTNAME")]
    pub certname: Option<String>,
    /// Role to ask for when the token bound none.
    #[arg(long, env = "RIGGER_ROLE")]
    pub role: Option<String>,
    /// EC2 metadata: auto, off or an http:// URL.
    #[arg(long, env = "RIGGER_IMDS_ENDPOINT")]
    pub imds_endpoint: Option<String>,
    /// Time between runs (e.g. 30m).
    #[arg(long, env = "RIGGER_RUN_INTERVAL")]
    pub run_interval: Option<String>,
    /// Upper bound of the per-node splay (e.g. 5m).
    #[arg(long, env = "RIGGER_SPLAY")]
    pub splay: Option<String>,
    /// The daemon serves Prometheus metrics at http://ADDRESS/metrics.
    #[arg(long, env = "RIGGER_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Run once and exit.
    #[arg(long)]
    pub once: bool,
    /// Show what would change, change nothing.
    #[arg(long)]
    pub noop: bool,
    /// Re-hash every release file instead of trusting the index, repairing what differs.
    #[arg(long)]
    pub verify: bool,
    /// With --once: exit 0 no changes, 2 changes, 4 failures, 6 both.
    #[arg(long)]
    pub detailed_exitcodes: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "RIGGER_LOG_FORMAT")]
    pub log_format: LogFormat,
}
