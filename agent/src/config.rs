//! The agent's configuration: `/etc/rigger/agent.toml` (under `--root`),
//! every field also a flag and a `RIGGER_…` variable (flag > env > file >
//! default).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rigger_common::digest::Digest;
use rigger_common::grpc::{MasterAddress, MasterAddresses};
use serde::Deserialize;

use crate::facts::ImdsSetting;

/// The configuration file (and the overrides from flags), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfigFile {
    /// The master, `https://host:port`.
    pub master: Option<String>,
    /// Trust the CA certificate in this file.
    pub ca_cert: Option<PathBuf>,
    /// Or trust the CA with this sha256 fingerprint.
    pub ca_fingerprint: Option<String>,
    /// This node's name (default: EC2 instance id, else host name).
    pub certname: Option<String>,
    /// Role to ask for when the enrollment token bound none.
    pub role: Option<String>,
    /// `auto`, `off` or an `http://` IMDS endpoint.
    pub imds_endpoint: Option<String>,
    /// Time between runs (`30m`).
    pub run_interval: Option<String>,
    /// Upper bound of the per-node splay (`5m`).
    pub splay: Option<String>,
    /// Timeout of each request to the master (`30s`).
    pub timeout: Option<String>,
    /// Where the daemon serves `/metrics` (off when unset).
    pub metrics_listen: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Root prefix for every managed path.
    pub root: PathBuf,
    /// The master.
    pub master: MasterAddresses,
    /// CA file to trust.
    pub ca_cert: Option<PathBuf>,
    /// CA fingerprint to trust.
    pub ca_fingerprint: Option<Digest>,
    /// Bootstrap token (flag or environment only).
    pub token: Option<String>,
    /// Certname override.
    pub certname: Option<String>,
    /// Role to ask for.
    pub role: Option<String>,
    /// IMDS setting.
    pub imds: ImdsSetting,
    /// Time between runs.
    pub run_interval: Duration,
    /// Splay bound.
    pub splay: Duration,
    /// Request timeout.
    pub timeout: Duration,
    /// Where the daemon serves `/metrics`, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

pub use rigger_common::config::ConfigError;

impl AgentConfigFile {
    /// Reads a configuration file; `required` makes a missing file an error.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        rigger_common::config::load_file(path, required)
    }
}

impl AgentConfig {
    /// Layers `overrides` over `file` over the defaults.
    pub fn resolve(
        root: PathBuf,
        file: AgentConfigFile,
        overrides: AgentConfigFile,
        token: Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let master_text = overrides
            .master
            .or(file.master)
            .unwrap_or_else(|| "https://rigger-master:8140".to_string());
        let master = MasterAddresses::parse(&master_text).unwrap_or_else(|e| {
            problems.push(format!("master: {e}"));
            MasterAddress {
                host: "invalid".into(),
                port: 0,
            }
            .into()
        });
        let ca_fingerprint = overrides
            .ca_fingerprint
            .or(file.ca_fingerprint)
            .and_then(|f| {
                Digest::parse(&f)
                    .map_err(|e| problems.push(format!("ca_fingerprint: {e}")))
                    .ok()
            });
        let ca_cert = overrides.ca_cert.or(file.ca_cert);
        if ca_cert.is_some() && ca_fingerprint.is_some() {
            problems.push("ca_cert and ca_fingerprint are alternatives: give one".into());
        }
        let imds_text = overrides
            .imds_endpoint
            .or(file.imds_endpoint)
            .unwrap_or_else(|| "auto".into());
        let imds = ImdsSetting::parse(&imds_text).unwrap_or_else(|e| {
            problems.push(format!("imds_endpoint: {e}"));
            ImdsSetting::Off
        });
        let mut duration = |name: &str, value: Option<String>, default: Duration| match value {
            None => default,
            Some(text) => humantime::parse_duration(&text).unwrap_or_else(|e| {
                problems.push(format!(
                    "{name}: {text:?} is not a duration such as 30m: {e}"
                ));
                default
            }),
        };
        let run_interval = duration(
            "run_interval",
            overrides.run_interval.or(file.run_interval),
            Duration::from_secs(30 * 60),
        );
        let splay = duration(
            "splay",
            overrides.splay.or(file.splay),
            Duration::from_secs(5 * 60),
        );
        let timeout = duration(
            "timeout",
            overrides.timeout.or(file.timeout),
            Duration::from_secs(30),
        );
        if run_interval.is_zero() {
            problems.push("run_interval must be longer than zero".into());
        }
        let metrics_listen = rigger_common::config::optional_address(
            "metrics_listen",
            overrides.metrics_listen.or(file.metrics_listen),
            "127.0.0.1:9141",
            &mut problems,
        );
        let certname = overrides
            .certname
            .or(file.certname)
            .map(|c| c.to_ascii_lowercase());
        let config = Self {
            root,
            master,
            ca_cert,
            ca_fingerprint,
            token: token.filter(|t| !t.trim().is_empty()),
            certname,
            role: overrides.role.or(file.role).filter(|r| !r.is_empty()),
            imds,
            run_interval,
            splay,
            timeout,
            metrics_listen,
        };
        ConfigError::check(problems, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_template_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.toml.example");
        let file = AgentConfigFile::load(&path, true).unwrap();
        let from_file = AgentConfig::resolve("/".into(), file, Default::default(), None).unwrap();
        let defaults =
            AgentConfig::resolve("/".into(), Default::default(), Default::default(), None).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = AgentConfigFile {
            master: Some("ftp://x".into()),
            ca_fingerprint: Some("md5:00".into()),
            imds_endpoint: Some("sometimes".into()),
            run_interval: Some("often".into()),
            ..Default::default()
        };
        let err = AgentConfig::resolve("/".into(), bad, Default::default(), None).unwrap_err();
        assert_eq!(err.problems.len(), 4, "{err}");
    }
}
