//! `rigger-master`: the master daemon. Thin: parses flags, loads the
//! configuration and runs [`rigger_master::server::Master`]; SIGHUP reads
//! the configuration, site and modules again ([`rigger_master::reload`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rigger_common::exit;
use rigger_common::logging::{self, LogFormat};
use rigger_master::config::{DEFAULT_CONFIG_PATH, MasterConfig, MasterConfigFile};
use rigger_master::server::Master;
use tokio_util::sync::CancellationToken;

/// The Rigger master: CA, enrollment and catalog server for WSO2 nodes.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(long, env = "RIGGER_MASTER_CONFIG")]
    config: Option<PathBuf>,
    /// State directory (CA, keys, database).
    #[arg(long, env = "RIGGER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address for nodes.
    #[arg(long, env = "RIGGER_LISTEN")]
    listen: Option<String>,
    /// Module path (repeatable, searched in order).
    #[arg(long, env = "RIGGER_MODULES", value_delimiter = ',')]
    modules: Vec<PathBuf>,
    /// Site data directory.
    #[arg(long, env = "RIGGER_SITE")]
    site: Option<PathBuf>,
    /// Admin socket for masterctl.
    #[arg(long, env = "RIGGER_ADMIN_SOCKET")]
    admin_socket: Option<PathBuf>,
    /// Extra server certificate name, DNS name or IP (repeatable).
    #[arg(long, env = "RIGGER_SAN", value_delimiter = ',')]
    san: Vec<String>,
    /// Nodes not seen for this long leave their peers' lists (e.g. 90m).
    #[arg(long, env = "RIGGER_PEER_TIMEOUT")]
    peer_timeout: Option<String>,
    /// Bytes an imported archive may expand to, in all.
    #[arg(long, env = "RIGGER_IMPORT_MAX_BYTES")]
    import_max_bytes: Option<u64>,
    /// How far an archive entry over 1 MiB may expand (N:1).
    #[arg(long, env = "RIGGER_IMPORT_MAX_RATIO")]
    import_max_ratio: Option<u64>,
    /// Entries an imported archive may hold.
    #[arg(long, env = "RIGGER_IMPORT_MAX_ENTRIES")]
    import_max_entries: Option<u64>,
    /// Node connections open at once (default: the open-file limit less 128).
    #[arg(long, env = "RIGGER_MAX_CONNECTIONS")]
    max_connections: Option<u64>,
    /// Node connections open at once from one address (default: no cap).
    #[arg(long, env = "RIGGER_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<u64>,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (off by default).
    #[arg(long, env = "RIGGER_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Catalog requests compiled at once (default: twice the cores, at least 4).
    #[arg(long, env = "RIGGER_MAX_CATALOG_REQUESTS")]
    max_catalog_requests: Option<u64>,
    /// Blob streams served at once (default 64).
    #[arg(long, env = "RIGGER_MAX_BLOB_STREAMS")]
    max_blob_streams: Option<u64>,
    /// Reports kept per node (default 200).
    #[arg(long, env = "RIGGER_KEEP_REPORTS")]
    keep_reports: Option<u32>,
    /// Reports older than this are deleted (default 30d).
    #[arg(long, env = "RIGGER_REPORT_MAX_AGE")]
    report_max_age: Option<String>,
    /// Catalog versions kept per node (default 50).
    #[arg(long, env = "RIGGER_KEEP_CATALOGS")]
    keep_catalogs: Option<u32>,
    /// Catalog versions older than this are deleted (default 90d).
    #[arg(long, env = "RIGGER_CATALOG_MAX_AGE")]
    catalog_max_age: Option<String>,
    /// How long node certificates are valid (default 90d); nodes renew
    /// at two thirds of it.
    #[arg(long, env = "RIGGER_CERT_LIFETIME")]
    cert_lifetime: Option<String>,
    /// A directory of AWS's RSA-2048 instance identity certificates
    /// (`<region>.pem`): EC2 identity enrollment is on when set.
    #[arg(long, env = "RIGGER_AWS_CERTIFICATES")]
    aws_certificates: Option<std::path::PathBuf>,
    /// A first EC2 enrollment must come within this long of the launch (default 24h).
    #[arg(long, env = "RIGGER_EC2_MAX_LAUNCH_AGE")]
    ec2_max_launch_age: Option<String>,
    /// An identity document signed longer ago than this is stale (default 24h).
    #[arg(long, env = "RIGGER_EC2_MAX_DOCUMENT_AGE")]
    ec2_max_document_age: Option<String>,
    /// How long a catalog is valid without being signed again (default 14d).
    #[arg(long, env = "RIGGER_CATALOG_TTL")]
    catalog_ttl: Option<String>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "RIGGER_LOG_FORMAT")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli: Cli = exit::parse_args();
    logging::init(cli.log_format, "info");
    // `--check-config` also parses every file of the site.
    let loaded = load_config(&cli).and_then(|config| {
        if cli.check_config {
            let problems = rigger_master::compiler::SiteData::new(&config.site).file_problems();
            if !problems.is_empty() {
                anyhow::bail!(
                    "{} problem(s) in the site:\n{}",
                    problems.len(),
                    problems.join("\n")
                );
            }
        }
        Ok(config)
    });
    let config = match rigger_common::cli::checked_config("rigger-master", loaded, cli.check_config)
    {
        Ok(c) => c,
        Err(code) => return code,
    };
    rigger_common::cli::run("rigger-master", async move {
        run(cli, config).await?;
        Ok(exit::OK)
    })
}

fn load_config(cli: &Cli) -> anyhow::Result<MasterConfig> {
    let (path, required) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let file = MasterConfigFile::load(&path, required)?;
    let overrides = MasterConfigFile {
        data_dir: cli.data_dir.clone(),
        listen: cli.listen.clone(),
        modules: Some(cli.modules.clone()),
        site: cli.site.clone(),
        admin_socket: cli.admin_socket.clone(),
        san: Some(cli.san.clone()),
        peer_timeout: cli.peer_timeout.clone(),
        import_max_bytes: cli.import_max_bytes,
        import_max_ratio: cli.import_max_ratio,
        import_max_entries: cli.import_max_entries,
        max_connections: cli.max_connections,
        max_connections_per_address: cli.max_connections_per_address,
        metrics_listen: cli.metrics_listen.clone(),
        max_catalog_requests: cli.max_catalog_requests,
        max_blob_streams: cli.max_blob_streams,
        keep_reports: cli.keep_reports,
        report_max_age: cli.report_max_age.clone(),
        keep_catalogs: cli.keep_catalogs,
        catalog_max_age: cli.catalog_max_age.clone(),
        cert_lifetime: cli.cert_lifetime.clone(),
        aws_certificates: cli.aws_certificates.clone(),
        ec2_max_launch_age: cli.ec2_max_launch_age.clone(),
        ec2_max_document_age: cli.ec2_max_document_age.clone(),
        catalog_ttl: cli.catalog_ttl.clone(),
    };
    Ok(MasterConfig::resolve(file, overrides)?)
}

async fn run(cli: Cli, config: MasterConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin = rigger_common::grpc::bind_private_socket(&config.admin_socket)
        .with_context(|| format!("cannot bind admin socket {}", config.admin_socket.display()))?;
    let addr_file = config.data_dir.join("listen.addr");
    let master = Master::open(config.clone()).await?;
    let local = listener.local_addr()?;
    rigger_common::fsutil::write_atomic(
        &addr_file,
        format!("{local}\n").as_bytes(),
        0o644,
        Default::default(),
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(rigger_common::cli::cancel_on_signal(shutdown.clone()));
    if let Some(addr) = config.metrics_listen {
        let listener = rigger_common::metrics::bind(addr).await?;
        let state = master.state().clone();
        let render: rigger_common::metrics::Render = std::sync::Arc::new(move || {
            let state = state.clone();
            Box::pin(async move { rigger_master::metrics::render(&state).await })
        });
        tracing::info!(%addr, "serving /metrics");
        tokio::spawn(rigger_common::metrics::serve(
            listener,
            render,
            shutdown.clone(),
        ));
    }
    reload_on_hangup(cli, config, master.state().clone())?;
    master.serve(listener, admin, shutdown).await?;
    Ok(())
}

/// On each SIGHUP, the configuration (flags, environment and file, as at
/// start), the site and the modules are read again.
fn reload_on_hangup(
    cli: Cli,
    started: MasterConfig,
    state: rigger_master::state::SharedState,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let loaded = load_config(&cli);
            rigger_master::reload::reload(&state, &started, loaded);
        }
    });
    Ok(())
}
