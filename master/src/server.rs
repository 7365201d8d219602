//! Wiring only: opens the state, issues the server certificate and serves
//! the node-facing services over TLS and the admin service on a Unix socket.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rigger_common::proto::admin_service_server::AdminServiceServer;
use rigger_common::proto::catalog_service_server::CatalogServiceServer;
use rigger_common::proto::content_service_server::ContentServiceServer;
use rigger_common::proto::enrollment_service_server::EnrollmentServiceServer;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Mutex;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use rigger_common::connections::{ConnectionLimits, ConnectionTable};

use crate::ca::{self, CaError, CertificateAuthority};
use crate::compiler::Compiler;
use crate::config::MasterConfig;
use crate::rpc::admin::Admin;
use crate::rpc::catalog::Catalogs;
use crate::rpc::content::Content;
use crate::rpc::enrollment::Enrollment;
use crate::rpc::{MasterState, SharedState};
use crate::store::{PostgresSettings, PostgresStore, SqliteStore, StoreError};
use crate::store_config::{BlobsSettings, StoreSettings};

/// The master failed to start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be prepared.
    #[error("cannot prepare data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA could not be loaded or used.
    #[error("certificate authority")]
    Ca(#[from] CaError),
    /// The catalog signing key could not be loaded.
    #[error("catalog signing key")]
    Key(#[from] rigger_common::signing::KeyError),
    /// The metadata store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured metadata store could not be opened.
    #[error("cannot open the metadata store, {store}")]
    StoreOpen {
        /// Which store (never its password).
        store: String,
        /// Why.
        #[source]
        source: Box<ServerError>,
    },
    /// The master's keys are not those of the fleet its store serves.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// The configured content store could not be opened.
    #[error("cannot open the content store, {blobs}")]
    BlobsOpen {
        /// Which store.
        blobs: String,
        /// Why.
        #[source]
        source: crate::content::blobs::BlobError,
    },
    /// The PostgreSQL store's password file could not be read.
    #[error("cannot read the store's password file {}", path.display())]
    StorePassword {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("TLS configuration")]
    Tls(#[from] rigger_common::tls::TlsError),
    /// A listener failed.
    #[error("listener")]
    Io(#[from] std::io::Error),
    /// A gRPC server failed.
    #[error("gRPC server")]
    Transport(#[from] tonic::transport::Error),
    /// The revocation list could not be issued: the master does not serve
    /// without it, or a revoked node could connect.
    #[error("revocation list")]
    Revocation(#[source] crate::error::Error),
}

/// Opens the configured metadata store (SQLite: `master.db` in `dir`).
async fn open_store(
    settings: &StoreSettings,
    dir: &std::path::Path,
) -> Result<Arc<dyn crate::store::MetaStore>, ServerError> {
    Ok(match settings {
        StoreSettings::Sqlite => Arc::new(SqliteStore::open(&dir.join("master.db")).await?),
        StoreSettings::Postgres {
            url,
            password_file,
            pool_size,
        } => {
            let settings = PostgresSettings::with_password_file(
                url.clone(),
                password_file.as_deref(),
                *pool_size,
            )
            .map_err(|source| ServerError::StorePassword {
                path: password_file.clone().unwrap_or_default(),
                source,
            })?;
            Arc::new(PostgresStore::open(&settings).await?)
        }
    })
}

/// Opens the configured content store (local: `blobs/` in `dir`; S3
/// spools through `dir/spool`).
fn open_blobs(
    settings: &BlobsSettings,
    dir: &std::path::Path,
) -> Result<Arc<dyn crate::content::blobs::BlobStore>, ServerError> {
    Ok(match settings {
        BlobsSettings::Local => {
            let path = dir.join("blobs");
            Arc::new(
                crate::content::LocalBlobStore::open(&path)
                    .map_err(|source| ServerError::DataDir { path, source })?,
            )
        }
        BlobsSettings::S3(s3) => Arc::new(
            crate::content::blobs::S3BlobStore::open(s3, &dir.join("spool")).map_err(|source| {
                ServerError::BlobsOpen {
                    blobs: settings.describe(),
                    source,
                }
            })?,
        ),
    })
}

/// A master ready to serve.
pub struct Master {
    state: SharedState,
    config: MasterConfig,
}

impl Master {
    /// Opens (creating on first start) the CA, the signing key and the store.
    pub async fn open(config: MasterConfig) -> Result<Self, ServerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| ServerError::DataDir {
                path: dir.clone(),
                source,
            })?;
        let mut ca = CertificateAuthority::load_or_create(dir)?;
        ca.set_node_lifetime(config.cert_lifetime);
        let signing_key =
            rigger_common::signing::load_or_create_key(&dir.join("catalog-signing.key"))?;
        let store =
            open_store(&config.store, dir)
                .await
                .map_err(|source| ServerError::StoreOpen {
                    store: config.store.describe(),
                    source: Box::new(source),
                })?;
        tracing::info!(store = %config.store.describe(), "metadata store open");
        let restart_key = crate::compiler::RestartKey::load_or_create(&dir.join("restart-key"))?;
        let epoch = crate::epoch::load_or_create(dir).map_err(|source| ServerError::DataDir {
            path: dir.join(crate::epoch::FILE),
            source,
        })?;
        let mine = crate::fleet::keys_of(&ca, &signing_key, &restart_key, &epoch)?;
        let shared = !matches!(config.store, StoreSettings::Sqlite);
        crate::fleet::join(store.as_ref(), &ca, &mine, shared, dir).await?;
        let compiler = Compiler::new(config.modules.clone(), config.site.clone())
            .with_restart_key(restart_key);
        let blobs = open_blobs(&config.blobs, dir)?;
        tracing::info!(blobs = %config.blobs.describe(), "content store open");
        let pack_files = crate::content::pack_files::ImportedPackFiles::new(
            crate::content::blobs::BlockingBlobs::new(
                blobs.clone(),
                tokio::runtime::Handle::current(),
            ),
        );
        let revocation =
            crate::revocation::Revocation::new(&ca.trusted_pem(), dir.join("crl.pem"))?;
        let state = Arc::new(MasterState {
            store,
            revocation,
            ca,
            started_at_ms: rigger_common::time::now_ms(),
            data_dir: dir.clone(),
            epoch,
            stores: (config.store.describe(), config.blobs.describe()),
            signing_key,
            compiler,
            catalog_lock: Mutex::new(()),
            blobs,
            pack_files,
            encoded_manifests: Default::default(),
            import_lock: Mutex::new(()),
            live: std::sync::RwLock::new(crate::state::LiveSettings::of(&config)),
            enroll_throttle: Default::default(),
            notices: Default::default(),
            stopping: CancellationToken::new(),
            site_changed: tokio::sync::Notify::new(),
            site_quiet: Default::default(),
            revision_cache: Default::default(),
            compile_memo: Default::default(),
            metrics: Default::default(),
            work: crate::overload::WorkLimits::new(
                config.max_catalog_requests,
                config.max_blob_streams,
            ),
        });
        Ok(Self { state, config })
    }

    /// The shared state (for tests and benchmarks).
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: UnixListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServerError> {
        let local = listener.local_addr()?;
        // Watch streams end when the master stops, so that it can drain.
        let stopping = self.state.stopping.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            stopping.cancel();
        });
        // Nodes hear of a change to the site, a module or a promotion at
        // once, and of a rollout's next step as soon as it may start.
        let _site_watch = crate::refresh::watch_site(self.state.clone())
            .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the site and modules: nodes see changes when they next ask"))
            .ok();
        crate::refresh::spawn(self.state.clone());
        crate::retention::spawn(self.state.clone());
        crate::refresh::hear_other_masters(self.state.clone()).await?;
        let names = certificate_names(local.ip(), &self.config.sans);
        let (server_cert, server_key) = self.state.ca.issue_server_cert(&names)?;
        let chain = format!("{}{}", server_cert.pem, self.state.ca.cert_pem());
        crate::revocation::publish(&self.state)
            .await
            .map_err(ServerError::Revocation)?;
        crate::revocation::spawn(
            self.state.clone(),
            !matches!(self.config.store, StoreSettings::Sqlite),
        );
        let tls = rigger_common::tls::server_config(
            &chain,
            &server_key,
            self.state.revocation.verifier(),
        )?;
        let limits = self.connection_limits();
        let table = ConnectionTable::new(limits);
        self.state.revocation.attach(table.clone());
        let incoming = rigger_common::grpc::tls_incoming(listener, Arc::new(tls), table);
        tracing::info!(addr = %local, names = ?names, max_connections = limits.max_connections, max_per_address = ?limits.max_per_address, "master listening");

        let node_server = Server::builder()
            // Watch streams of nodes that vanished are noticed and closed.
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
            .layer(tower::util::MapRequestLayer::new(
                rigger_common::grpc::record_rpc::<tonic::body::Body>,
            ))
            .layer(crate::metrics::RpcMetricsLayer(self.state.clone()))
            .add_service(EnrollmentServiceServer::new(Enrollment::new(
                self.state.clone(),
            )))
            .add_service(CatalogServiceServer::new(Catalogs::new(self.state.clone())))
            .add_service(ContentServiceServer::new(Content::new(self.state.clone())))
            // For holders of an admin certificate only (each call checks).
            .add_service(AdminServiceServer::new(Admin::new(self.state.clone())))
            .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        let admin_server = Server::builder()
            .add_service(AdminServiceServer::new(Admin::new(self.state.clone())))
            .serve_with_incoming_shutdown(
                UnixListenerStream::new(admin),
                shutdown.clone().cancelled_owned(),
            );
        let (a, b) = tokio::join!(node_server, admin_server);
        let _ = std::fs::remove_file(&self.config.admin_socket);
        a?;
        b?;
        tracing::info!("master stopped");
        Ok(())
    }
}

impl Master {
    /// The connection limits: the configured ones, else derived from the
    /// open-file limit, first raised to its hard limit.
    fn connection_limits(&self) -> ConnectionLimits {
        let nofile = match rigger_common::connections::raise_nofile_limit() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the open-file limit: assuming 1024");
                1024
            }
        };
        let mut limits = ConnectionLimits::for_descriptors(nofile);
        if let Some(max) = self.config.max_connections {
            limits.max_connections = max;
        }
        limits.max_per_address = self.config.max_connections_per_address;
        limits
    }
}

/// Names the server certificate covers: host name, localhost, loopback,
/// the listen address (when specific) and the configured extras.
pub fn certificate_names(listen_ip: IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        ca::hostname(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen_ip.is_unspecified() {
        names.push(listen_ip.to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}
