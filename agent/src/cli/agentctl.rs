//! `agentctl`'s command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Talk to the Rigger agent on this node.
#[derive(Parser, Debug)]
#[command(name = "agentctl", version)]
pub struct Cli {
    /// The agent's control socket (default: ROOT/run/rigger/agent.sock).
    #[arg(long, env = "RIGGER_AGENT_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// The agent's root prefix.
    #[arg(long, env = "RIGGER_ROOT", default_value = "/", global = true)]
    pub root: PathBuf,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `agentctl`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// What the agent did last and what it will do next.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Refresh until interrupted (Ctrl-C), every `--every`; with
        /// `--json`, one document per line per refresh.
        #[arg(long)]
        watch: bool,
        /// How often `--watch` refreshes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        every: std::time::Duration,
    },
    /// The facts the agent sends the master, gathered now.
    Facts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The daemon's last log lines; `--follow` prints each new one until
    /// interrupted (Ctrl-C).
    Logs {
        /// How many of the last lines.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
    },
    /// The catalog that runs (verified; secret content redacted).
    Catalog {
        /// Print the catalog JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the agent's own runs (scheduled, pushed) until `enable`; a run
    /// asked for by hand (`agentctl run`) still happens.
    Disable {
        /// Why (shown by `agentctl status`).
        #[arg(long)]
        reason: String,
    },
    /// Let the agent run on its own again.
    Enable,
    /// Run now and show each change as it happens.
    Run {
        /// Show what would change, change nothing.
        #[arg(long)]
        noop: bool,
    },
    /// Run now, re-hashing every release file and repairing any modified one.
    Verify,
    /// Wait until the agent runs, has applied its first catalog without
    /// failures and every service is ready (exit 0), or time out (exit 1):
    /// the replacement for user-data's sleep-and-poll before cfn-signal.
    WaitReady {
        /// Give up after this long.
        #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}
