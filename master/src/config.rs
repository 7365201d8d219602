//! The master's configuration: `/etc/rigger/master.toml`, every field also a
//! flag and a `RIGGER_…` variable (flag > env > file > default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the master looks for its configuration file by default.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rigger/master.toml";

/// The configuration file (and the overrides from flags), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterConfigFile {
    /// State: CA, keys, metadata database.
    pub data_dir: Option<PathBuf>,
    /// Address the node-facing gRPC server listens on.
    pub listen: Option<String>,
    /// Module paths, searched in order.
    pub modules: Option<Vec<PathBuf>>,
    /// Site data directory.
    pub site: Option<PathBuf>,
    /// The admin Unix socket `masterctl` talks to.
    pub admin_socket: Option<PathBuf>,
    /// Extra names (DNS or IP) for the server certificate.
    pub san: Option<Vec<String>>,
    /// Nodes not seen for this long leave their peers' lists (`90m`: three
    /// default agent run intervals).
    pub peer_timeout: Option<String>,
    /// Bytes an imported archive may expand to, in all (4 GiB).
    pub import_max_bytes: Option<u64>,
    /// How many times its compressed size an archive entry over 1 MiB may
    /// expand to (200).
    pub import_max_ratio: Option<u64>,
    /// Entries an imported archive may hold (200000).
    pub import_max_entries: Option<u64>,
    /// Node connections open at once (the open-file limit less 128).
    pub max_connections: Option<u64>,
    /// Node connections open at once from one address (no cap).
    pub max_connections_per_address: Option<u64>,
    /// Where `/metrics` is served (off when unset), e.g. `127.0.0.1:9140`.
    pub metrics_listen: Option<String>,
    /// Catalog requests compiled at once (twice the cores, at least 4).
    pub max_catalog_requests: Option<u64>,
    /// Blob streams served at once (64).
    pub max_blob_streams: Option<u64>,
    /// Reports kept per node (200).
    pub keep_reports: Option<u32>,
    /// Reports older than this are deleted (`30d`).
    pub report_max_age: Option<String>,
    /// Catalog versions kept per node (50).
    pub keep_catalogs: Option<u32>,
    /// Catalog versions older than this are deleted (`90d`).
    pub catalog_max_age: Option<String>,
    /// How long node certificates are valid (`90d`).
    pub cert_lifetime: Option<String>,
    /// A directory of AWS's RSA-2048 instance identity certificates, one
    /// `<region>.pem` each: EC2 identity enrollment is on when set.
    pub aws_certificates: Option<PathBuf>,
    /// A first EC2 enrollment must come within this long of the
    /// instance's launch (`24h`).
    pub ec2_max_launch_age: Option<String>,
    /// An identity document signed longer ago than this is stale (`24h`).
    pub ec2_max_document_age: Option<String>,
    /// How long a catalog is valid: a node whose master has not signed
    /// it again by then still enforces it and says it expired (`14d`).
    pub catalog_ttl: Option<String>,
    /// The metadata store (`[store]`): SQLite in the data directory unless
    /// it names PostgreSQL.
    pub store: Option<crate::store_config::StoreFile>,
    /// The content store (`[blobs]`): the data directory's `blobs/` unless
    /// it names an S3 bucket.
    pub blobs: Option<crate::store_config::BlobsFile>,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterConfig {
    /// State directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Module paths.
    pub modules: Vec<PathBuf>,
    /// Site directory.
    pub site: PathBuf,
    /// Admin socket.
    pub admin_socket: PathBuf,
    /// Extra certificate names.
    pub sans: Vec<String>,
    /// Peer list timeout.
    pub peer_timeout: std::time::Duration,
    /// What an imported archive may hold.
    pub import_limits: crate::content::archive::ArchiveLimits,
    /// Node connections open at once (`None`: from the open-file limit).
    pub max_connections: Option<usize>,
    /// Node connections open at once from one address (`None`: no cap).
    pub max_connections_per_address: Option<usize>,
    /// How much report and catalog history is kept.
    pub retention: crate::retention::Retention,
    /// Catalog requests compiled at once; more wait, then are told to
    /// come back.
    pub max_catalog_requests: usize,
    /// Blob streams served at once.
    pub max_blob_streams: usize,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How long node certificates are valid.
    pub cert_lifetime: std::time::Duration,
    /// EC2 identity enrollment.
    pub ec2: crate::ec2::Ec2Settings,
    /// How long a catalog is valid.
    pub catalog_ttl: std::time::Duration,
    /// The metadata store.
    pub store: crate::store_config::StoreSettings,
    /// The content store.
    pub blobs: crate::store_config::BlobsSettings,
}

pub use rigger_common::config::ConfigError;

impl MasterConfigFile {
    /// Reads a configuration file. `required` makes a missing file an error.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        rigger_common::config::load_file(path, required)
    }
}

impl MasterConfig {
    /// Catalog requests compiled at once when the configuration does not
    /// say: twice this machine's cores, at least 4.
    pub fn default_max_catalog_requests() -> usize {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        (2 * cores).max(4)
    }

    /// Layers `overrides` (flags and environment) over `file` over the defaults.
    pub fn resolve(
        file: MasterConfigFile,
        overrides: MasterConfigFile,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| format!("0.0.0.0:{}", rigger_common::DEFAULT_MASTER_PORT));
        let listen = listen_text.parse().unwrap_or_else(|_| {
            problems.push(format!(
                "listen: {listen_text:?} is not an address such as 0.0.0.0:8140"
            ));
            SocketAddr::from(([0, 0, 0, 0], rigger_common::DEFAULT_MASTER_PORT))
        });
        let timeout_text = overrides
            .peer_timeout
            .or(file.peer_timeout)
            .unwrap_or_else(|| "90m".into());
        let peer_timeout = humantime::parse_duration(&timeout_text).unwrap_or_else(|e| {
            problems.push(format!(
                "peer_timeout: {timeout_text:?} is not a duration such as 90m: {e}"
            ));
            std::time::Duration::from_secs(90 * 60)
        });
        let defaults = crate::content::archive::ArchiveLimits::default();
        let import_limits = crate::content::archive::ArchiveLimits {
            max_bytes: overrides
                .import_max_bytes
                .or(file.import_max_bytes)
                .unwrap_or(defaults.max_bytes),
            max_ratio: overrides
                .import_max_ratio
                .or(file.import_max_ratio)
                .unwrap_or(defaults.max_ratio),
            max_entries: overrides
                .import_max_entries
                .or(file.import_max_entries)
                .unwrap_or(defaults.max_entries),
        };
        let max_connections = overrides.max_connections.or(file.max_connections);
        let max_connections_per_address = overrides
            .max_connections_per_address
            .or(file.max_connections_per_address);
        for (key, value) in [
            ("import_max_bytes", import_limits.max_bytes),
            ("import_max_ratio", import_limits.max_ratio),
            ("import_max_entries", import_limits.max_entries),
            ("max_connections", max_connections.unwrap_or(1)),
            (
                "max_connections_per_address",
                max_connections_per_address.unwrap_or(1),
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        let defaults = crate::retention::Retention::default();
        let mut age = |key: &str, text: Option<String>, default: std::time::Duration| {
            let Some(text) = text else { return default };
            humantime::parse_duration(&text).unwrap_or_else(|e| {
                problems.push(format!(
                    "{key}: {text:?} is not a duration such as 30d: {e}"
                ));
                default
            })
        };
        let retention = crate::retention::Retention {
            keep_reports: overrides
                .keep_reports
                .or(file.keep_reports)
                .unwrap_or(defaults.keep_reports),
            report_max_age: age(
                "report_max_age",
                overrides.report_max_age.or(file.report_max_age),
                defaults.report_max_age,
            ),
            keep_catalogs: overrides
                .keep_catalogs
                .or(file.keep_catalogs)
                .unwrap_or(defaults.keep_catalogs),
            catalog_max_age: age(
                "catalog_max_age",
                overrides.catalog_max_age.or(file.catalog_max_age),
                defaults.catalog_max_age,
            ),
        };
        let cert_lifetime = age(
            "cert_lifetime",
            overrides.cert_lifetime.or(file.cert_lifetime),
            crate::ca::DEFAULT_NODE_CERT_LIFETIME,
        );
        let catalog_ttl = age(
            "catalog_ttl",
            overrides.catalog_ttl.or(file.catalog_ttl),
            std::time::Duration::from_secs(14 * 86_400),
        );
        let ec2_defaults = crate::ec2::Ec2Settings::default();
        let ec2 = crate::ec2::Ec2Settings {
            aws_certificates: overrides.aws_certificates.or(file.aws_certificates),
            max_launch_age: age(
                "ec2_max_launch_age",
                overrides.ec2_max_launch_age.or(file.ec2_max_launch_age),
                ec2_defaults.max_launch_age,
            ),
            max_document_age: age(
                "ec2_max_document_age",
                overrides.ec2_max_document_age.or(file.ec2_max_document_age),
                ec2_defaults.max_document_age,
            ),
        };
        if cert_lifetime < std::time::Duration::from_secs(10) {
            problems.push(format!(
                "cert_lifetime: {} is too short (at least 10s; 90d by default)",
                humantime::format_duration(cert_lifetime)
            ));
        }
        if let Some(dir) = &ec2.aws_certificates {
            match crate::ec2::aws_certificates(dir) {
                Ok(certs) if certs.is_empty() => problems.push(format!(
                    "aws_certificates: {} holds no <region>.pem file",
                    dir.display()
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("aws_certificates: {e}")),
            }
        }
        let metrics_listen = rigger_common::config::optional_address(
            "metrics_listen",
            overrides.metrics_listen.or(file.metrics_listen),
            "127.0.0.1:9140",
            &mut problems,
        );
        let max_catalog_requests = overrides
            .max_catalog_requests
            .or(file.max_catalog_requests)
            .map_or_else(Self::default_max_catalog_requests, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        let max_blob_streams = overrides
            .max_blob_streams
            .or(file.max_blob_streams)
            .map_or(64, |n| usize::try_from(n).unwrap_or(usize::MAX));
        for (key, value) in [
            ("max_catalog_requests", max_catalog_requests),
            ("max_blob_streams", max_blob_streams),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        for (key, value) in [
            ("keep_reports", retention.keep_reports),
            ("keep_catalogs", retention.keep_catalogs),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        let as_count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if catalog_ttl < std::time::Duration::from_secs(2) {
            problems.push(format!(
                "catalog_ttl: {} is too short (at least 2s; 14d by default)",
                humantime::format_duration(catalog_ttl)
            ));
        }
        let store = crate::store_config::StoreSettings::resolve(
            overrides
                .store
                .unwrap_or_default()
                .over(file.store.unwrap_or_default()),
            &mut problems,
        );
        let blobs = crate::store_config::BlobsSettings::resolve(
            overrides
                .blobs
                .unwrap_or_default()
                .over(file.blobs.unwrap_or_default()),
            &mut problems,
        );
        let config = Self {
            blobs,
            store,
            catalog_ttl,
            ec2,
            cert_lifetime,
            retention,
            max_catalog_requests,
            max_blob_streams,
            metrics_listen,
            peer_timeout,
            import_limits,
            max_connections: max_connections.map(as_count),
            max_connections_per_address: max_connections_per_address.map(as_count),
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("/var/lib/rigger/master")),
            listen,
            modules: overrides
                .modules
                .filter(|m| !m.is_empty())
                .or(file.modules)
                .unwrap_or_else(|| {
                    // The site's own modules, then the ones the package ships.
                    vec![
                        PathBuf::from("/etc/rigger/modules"),
                        PathBuf::from("/usr/share/rigger/modules"),
                    ]
                }),
            site: overrides
                .site
                .or(file.site)
                .unwrap_or_else(|| PathBuf::from("/etc/rigger/site")),
            admin_socket: overrides
                .admin_socket
                .or(file.admin_socket)
                .unwrap_or_else(|| PathBuf::from("/run/rigger/master.sock")),
            sans: overrides
                .san
                .filter(|s| !s.is_empty())
                .or(file.san)
                .unwrap_or_default(),
        };
        for dir in &config.modules {
            if !dir.is_dir() {
                problems.push(format!("modules: {} is not a directory", dir.display()));
            }
        }
        if !config.site.is_dir() {
            problems.push(format!(
                "site: {} is not a directory",
                config.site.display()
            ));
        }
        ConfigError::check(problems, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_template_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("master.toml.example");
        let file = MasterConfigFile::load(&path, true).unwrap();
        let expected = MasterConfigFile {
            data_dir: Some("/var/lib/rigger/master".into()),
            listen: Some("0.0.0.0:8140".into()),
            modules: Some(vec![
                "/etc/rigger/modules".into(),
                "/usr/share/rigger/modules".into(),
            ]),
            site: Some("/etc/rigger/site".into()),
            admin_socket: Some("/run/rigger/master.sock".into()),
            san: Some(vec![]),
            peer_timeout: Some("90m".into()),
            import_max_bytes: Some(4 << 30),
            import_max_ratio: Some(200),
            import_max_entries: Some(200_000),
            max_connections: None,
            max_connections_per_address: None,
            metrics_listen: None,
            max_catalog_requests: None,
            max_blob_streams: Some(64),
            keep_reports: Some(200),
            report_max_age: Some("30d".into()),
            keep_catalogs: Some(50),
            catalog_max_age: Some("90d".into()),
            cert_lifetime: Some("90d".into()),
            aws_certificates: None,
            ec2_max_launch_age: Some("24h".into()),
            ec2_max_document_age: Some("24h".into()),
            catalog_ttl: Some("14d".into()),
            store: Some(crate::store_config::StoreFile {
                kind: Some("sqlite".into()),
                ..Default::default()
            }),
            blobs: Some(crate::store_config::BlobsFile {
                kind: Some("local".into()),
                ..Default::default()
            }),
        };
        assert_eq!(file, expected);
        let retention = crate::retention::Retention::default();
        assert_eq!(
            (retention.keep_reports, retention.report_max_age),
            (200, std::time::Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            (retention.keep_catalogs, retention.catalog_max_age),
            (50, std::time::Duration::from_secs(90 * 86_400))
        );
        let limits = crate::content::archive::ArchiveLimits::default();
        assert_eq!(
            (limits.max_bytes, limits.max_ratio, limits.max_entries),
            (4 << 30, 200, 200_000)
        );
    }

    #[test]
    fn flags_win_over_file_and_all_problems_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = MasterConfigFile {
            listen: Some("127.0.0.1:1".into()),
            site: Some(dir.path().into()),
            modules: Some(vec![dir.path().into()]),
            ..Default::default()
        };
        let flags = MasterConfigFile {
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let config = MasterConfig::resolve(file, flags).unwrap();
        assert_eq!(config.listen.port(), 2);

        let bad = MasterConfigFile {
            listen: Some("nonsense".into()),
            site: Some("/nonexistent/site".into()),
            modules: Some(vec!["/nonexistent/modules".into()]),
            ..Default::default()
        };
        let err = MasterConfig::resolve(bad, MasterConfigFile::default()).unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");

        // A typo'd limit (0 would refuse every pack) is a problem, named.
        let zero = MasterConfigFile {
            site: Some(dir.path().into()),
            modules: Some(vec![dir.path().into()]),
            import_max_entries: Some(0),
            ..Default::default()
        };
        let err = MasterConfig::resolve(zero, MasterConfigFile::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("import_max_entries: must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn typos_in_the_operations_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = MasterConfigFile {
            site: Some(dir.path().into()),
            modules: Some(vec![dir.path().into()]),
            metrics_listen: Some("localhost:9140".into()),
            max_blob_streams: Some(0),
            keep_reports: Some(0),
            report_max_age: Some("30 dayz".into()),
            ..Default::default()
        };
        let err = MasterConfig::resolve(bad, MasterConfigFile::default())
            .unwrap_err()
            .to_string();
        for problem in [
            "metrics_listen: \"localhost:9140\" is not an address such as 127.0.0.1:9140",
            "max_blob_streams: must be at least 1",
            "keep_reports: must be at least 1",
            "report_max_age: \"30 dayz\" is not a duration such as 30d",
        ] {
            assert!(err.contains(problem), "{problem:?} missing: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = MasterConfigFile::load(&path, true).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
