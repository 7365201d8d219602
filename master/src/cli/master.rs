//! `rigger-master`'s command line.

use std::path::PathBuf;

use clap::Parser;
use rigger_common::logging::LogFormat;

/// The Rigger master: CA, enrollment and catalog server for WSO2 nodes.
#[derive(Parser, Debug, Clone)]
#[command(name = "rigger-master", version)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, env = "RIGGER_MASTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory (CA, keys, database).
    #[arg(long, env = "RIGGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address for nodes.
    #[arg(long, env = "RIGGER_LISTEN")]
    pub listen: Option<String>,
    /// Module path (repeatable, searched in order).
    #[arg(long, env = "RIGGER_MODULES", value_delimiter = ',')]
    pub modules: Vec<PathBuf>,
    /// Site data directory.
    #[arg(long, env = "RIGGER_SITE")]
    pub site: Option<PathBuf>,
    /// Admin socket for masterctl.
    #[arg(long, env = "RIGGER_ADMIN_SOCKET")]
    pub admin_socket: Option<PathBuf>,
    /// Extra server certificate name, DNS name or IP (repeatable).
    #[arg(long, env = "RIGGER_SAN", value_delimiter = ',')]
    pub san: Vec<String>,
    /// Nodes not seen for this long leave their peers' lists (e.g. 90m).
    #[arg(long, env = "RIGGER_PEER_TIMEOUT")]
    pub peer_timeout: Option<String>,
    /// Bytes an imported archive may expand to, in all.
    #[arg(long, env = "RIGGER_IMPORT_MAX_BYTES")]
    pub import_max_bytes: Option<u64>,
    /// How far an archive entry over 1 MiB may expand (N:1).
    #[arg(long, env = "RIGGER_IMPORT_MAX_RATIO")]
    pub import_max_ratio: Option<u64>,
    /// Entries an imported archive may hold.
    #[arg(long, env = "RIGGER_IMPORT_MAX_ENTRIES")]
    pub import_max_entries: Option<u64>,
    /// Node connections open at once (default: the open-file limit less 128).
    #[arg(long, env = "RIGGER_MAX_CONNECTIONS")]
    pub max_connections: Option<u64>,
    /// Node connections open at once from one address (default: no cap).
    #[arg(long, env = "RIGGER_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<u64>,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (off by default).
    #[arg(long, env = "RIGGER_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Catalog requests compiled at once (default: twice the cores, at least 4).
    #[arg(long, env = "RIGGER_MAX_CATALOG_REQUESTS")]
    pub max_catalog_requests: Option<u64>,
    /// Blob streams served at once (default 64).
    #[arg(long, env = "RIGGER_MAX_BLOB_STREAMS")]
    pub max_blob_streams: Option<u64>,
    /// Reports kept per node (default 200).
    #[arg(long, env = "RIGGER_KEEP_REPORTS")]
    pub keep_reports: Option<u32>,
    /// Reports older than this are deleted (default 30d).
    #[arg(long, env = "RIGGER_REPORT_MAX_AGE")]
    pub report_max_age: Option<String>,
    /// Catalog versions kept per node (default 50).
    #[arg(long, env = "RIGGER_KEEP_CATALOGS")]
    pub keep_catalogs: Option<u32>,
    /// Catalog versions older than this are deleted (default 90d).
    #[arg(long, env = "RIGGER_CATALOG_MAX_AGE")]
    pub catalog_max_age: Option<String>,
    /// How long node certificates are valid (default 90d); nodes renew
    /// at two thirds of it.
    #[arg(long, env = "RIGGER_CERT_LIFETIME")]
    pub cert_lifetime: Option<String>,
    /// A directory of AWS's RSA-2048 instance identity certificates
    /// (`<region>.pem`): EC2 identity enrollment is on when set.
    #[arg(long, env = "RIGGER_AWS_CERTIFICATES")]
    pub aws_certificates: Option<std::path::PathBuf>,
    /// A first EC2 enrollment must come within this long of the launch (default 24h).
    #[arg(long, env = "RIGGER_EC2_MAX_LAUNCH_AGE")]
    pub ec2_max_launch_age: Option<String>,
    /// An identity document signed longer ago than this is stale (default 24h).
    #[arg(long, env = "RIGGER_EC2_MAX_DOCUMENT_AGE")]
    pub ec2_max_document_age: Option<String>,
    /// How long a catalog is valid without being signed again (default 14d).
    #[arg(long, env = "RIGGER_CATALOG_TTL")]
    pub catalog_ttl: Option<String>,
    /// The metadata store: sqlite (default, in the data directory) or
    /// postgres (several masters on one database).
    #[arg(long, env = "RIGGER_STORE")]
    pub store: Option<String>,
    /// The PostgreSQL store's URL (postgres://USER@HOST:PORT/DATABASE).
    #[arg(long, env = "RIGGER_STORE_URL")]
    pub store_url: Option<String>,
    /// A file holding the PostgreSQL store's password.
    #[arg(long, env = "RIGGER_STORE_PASSWORD_FILE")]
    pub store_password_file: Option<PathBuf>,
    /// Connections kept to the PostgreSQL store (default 10).
    #[arg(long, env = "RIGGER_STORE_POOL_SIZE")]
    pub store_pool_size: Option<u32>,
    /// The content store: local (default, the data directory's blobs/) or
    /// s3 (several masters on one bucket).
    #[arg(long, env = "RIGGER_BLOBS")]
    pub blobs: Option<String>,
    /// The S3 content store's bucket.
    #[arg(long, env = "RIGGER_BLOBS_BUCKET")]
    pub blobs_bucket: Option<String>,
    /// What the S3 content store's keys start with.
    #[arg(long, env = "RIGGER_BLOBS_PREFIX")]
    pub blobs_prefix: Option<String>,
    /// The S3 bucket's region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "RIGGER_BLOBS_REGION")]
    pub blobs_region: Option<String>,
    /// An S3-compatible endpoint instead of AWS's.
    #[arg(long, env = "RIGGER_BLOBS_ENDPOINT")]
    pub blobs_endpoint: Option<String>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "RIGGER_LOG_FORMAT")]
    pub log_format: LogFormat,
}
