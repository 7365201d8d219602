//! `rigger-agent`: the node daemon (or, with `--once`, a single run).
//! Thin: parses flags, loads the configuration and calls the library.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use rigger_agent::apply::{Outcome, Status};
use rigger_agent::config::{AgentConfig, AgentConfigFile};
use rigger_agent::paths::Paths;
use rigger_agent::run::{Agent, RunProgress, detailed_exit_code};
use rigger_common::exit;
use rigger_common::logging;
use rigger_common::service_manager;

use rigger_agent::cli::agent::*;

fn main() -> ExitCode {
    // Crash tests only: a build with the `failpoints` feature reads FAILPOINTS.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli: Cli = exit::parse_args();
    // The daemon keeps its last lines for `agentctl logs`.
    let ring = Arc::new(logging::LogRing::new(LOG_LINES));
    if cli.once {
        logging::init(cli.log_format, "warn");
    } else {
        logging::init_with_ring(cli.log_format, "info", ring.clone());
    }
    let config = match rigger_common::cli::checked_config(
        "rigger-agent",
        load_config(&cli),
        cli.check_config,
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let agent = Arc::new(Agent::new(config));
    let (once_mode, noop, verify, detailed) =
        (cli.once, cli.noop, cli.verify, cli.detailed_exitcodes);
    rigger_common::cli::run("rigger-agent", async move {
        if !once_mode {
            daemon(agent, ring, cli.clone()).await?;
            return Ok(exit::OK);
        }
        let code = once(agent, noop, verify).await;
        Ok(if detailed {
            code
        } else if code == exit::OK || code == exit::CHANGES {
            exit::OK
        } else {
            exit::FAILURE
        })
    })
}

fn load_config(cli: &Cli) -> anyhow::Result<AgentConfig> {
    let paths = Paths::new(&cli.root);
    let (path, required) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (paths.config_file(), false),
    };
    let file = AgentConfigFile::load(&path, required)?;
    let overrides = AgentConfigFile {
        master: cli.master.clone(),
        ca_cert: cli.ca_cert.clone(),
        ca_fingerprint: cli.ca_fingerprint.clone(),
        certname: cli.certname.clone(),
        role: cli.role.clone(),
        imds_endpoint: cli.imds_endpoint.clone(),
        run_interval: cli.run_interval.clone(),
        splay: cli.splay.clone(),
        timeout: None,
        metrics_listen: cli.metrics_listen.clone(),
    };
    Ok(AgentConfig::resolve(
        cli.root.clone(),
        file,
        overrides,
        cli.token.clone(),
    )?)
}

/// One run, printing each change (and its diff in noop) as it happens.
async fn once(agent: Arc<Agent>, noop: bool, verify: bool) -> u8 {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RunProgress>();
    let printer = tokio::spawn(async move {
        while let Some(progress) = rx.recv().await {
            if let RunProgress::Resource(o) = progress {
                print_outcome(&o);
            }
        }
    });
    let summary = agent.run_because("once", noop, verify, Some(tx)).await;
    let _ = printer.await;
    if !summary.error.is_empty() {
        eprintln!("rigger-agent: {}", summary.error);
    }
    if summary.used_cached_catalog {
        eprintln!(
            "rigger-agent: warning: enforced the cached catalog version {} ({})",
            summary.catalog_version, summary.master_error
        );
    }
    let verb = if noop { "would change" } else { "changed" };
    println!(
        "catalog version {}: {} {verb}, {} failed, {} skipped in {} ms; fetched {} blobs ({} bytes)",
        summary.catalog_version,
        summary.changed,
        summary.failed,
        summary.skipped,
        summary.duration_ms,
        summary.fetched_blobs,
        summary.fetched_bytes
    );
    if !summary.held_back.is_empty() {
        println!("a newer catalog is held back: {}", summary.held_back);
    }
    detailed_exit_code(&summary)
}

fn print_outcome(o: &Outcome) {
    match o.status {
        Status::Unchanged => {}
        Status::Pending | Status::Changed => {
            println!("{}: {}", o.id, o.message);
            if let Some(diff) = &o.diff {
                print!("{diff}");
            }
        }
        Status::Failed => eprintln!("{}: FAILED: {}", o.id, o.message),
        Status::Skipped => eprintln!("{}: {}", o.id, o.message),
    }
}

/// Log lines the daemon keeps for `agentctl logs`.
const LOG_LINES: usize = 2_000;

/// The daemon: the main loop plus the control socket, until SIGTERM/SIGINT;
/// SIGHUP reads the configuration again.
async fn daemon(agent: Arc<Agent>, logs: Arc<logging::LogRing>, cli: Cli) -> anyhow::Result<()> {
    let socket = agent.paths.socket();
    let listener = rigger_common::grpc::bind_private_socket(&socket)
        .with_context(|| format!("cannot bind control socket {}", socket.display()))?;
    // The agent's own token: a run in progress ends its long waits too.
    let shutdown = agent.stopping().clone();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let server = tokio::spawn(rigger_agent::control::serve(
        listener,
        tx.clone(),
        logs,
        shutdown.clone(),
    ));
    tokio::spawn(rigger_common::cli::cancel_on_signal(shutdown.clone()));
    // SIGHUP reads the configuration again (never ends the agent).
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    let reloads = tx.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let loaded = load_config(&cli)
                .map(Box::new)
                .map_err(|e| format!("{e:#}"));
            if reloads
                .send(rigger_agent::daemon::Event::Reload(loaded))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    if let Some(addr) = agent.config.metrics_listen {
        let listener = rigger_common::metrics::bind(addr).await?;
        let metered = agent.clone();
        let render: rigger_common::metrics::Render = Arc::new(move || {
            let agent = metered.clone();
            Box::pin(async move { agent.metrics.render() })
        });
        tracing::info!(%addr, "serving /metrics");
        tokio::spawn(rigger_common::metrics::serve(
            listener,
            render,
            shutdown.clone(),
        ));
    }
    tracing::info!(master = %agent.config.master, root = %agent.paths.root().display(), "agent started");
    // Ready once the control socket answers: `agentctl wait-ready` (not
    // systemd's start timeout) waits for the first run, however long a
    // cold install takes.
    service_manager::ready(&format!("control socket {}", socket.display()));
    rigger_agent::daemon::run(agent, tx, rx, shutdown.clone()).await;
    service_manager::stopping();
    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("agent stopped");
    Ok(())
}
