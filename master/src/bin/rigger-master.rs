//! `rigger-master`: the master daemon. Thin: parses flags, loads the
//! configuration and runs [`rigger_master::server::Master`]; SIGHUP reads
//! the configuration, site and modules again ([`rigger_master::reload`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rigger_common::exit;
use rigger_common::logging;
use rigger_common::service_manager;
use rigger_master::config::{DEFAULT_CONFIG_PATH, MasterConfig, MasterConfigFile};
use rigger_master::server::Master;
use tokio_util::sync::CancellationToken;

use rigger_master::cli::master::*;

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
        store: Some(rigger_master::store_config::StoreFile {
            kind: cli.store.clone(),
            url: cli.store_url.clone(),
            password_file: cli.store_password_file.clone(),
            pool_size: cli.store_pool_size,
        }),
        blobs: Some(rigger_master::store_config::BlobsFile {
            kind: cli.blobs.clone(),
            bucket: cli.blobs_bucket.clone(),
            prefix: cli.blobs_prefix.clone(),
            region: cli.blobs_region.clone(),
            endpoint: cli.blobs_endpoint.clone(),
        }),
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
    // Before the address is written: whoever reads it may send SIGHUP at
    // once, whose default action would stop the master.
    reload_on_hangup(cli, config.clone(), master.state().clone())?;
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
    service_manager::ready(&format!("listening on {local}"));
    service_manager::spawn_watchdog(shutdown.clone());
    let served = master.serve(listener, admin, shutdown).await;
    service_manager::stopping();
    served?;
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
