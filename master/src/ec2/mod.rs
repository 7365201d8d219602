//! EC2 instance identity enrollment: a node proves which instance it is
//! with the document AWS signs for it (no secret in user-data), and the
//! site's policy (`enrollment.toml`) says whether it may enroll and with
//! which role. The checks, in order: the signature against the AWS
//! certificate of the document's region ([`signature`]), the signing time
//! (freshness), the account and region ([`policy`]), the launch time for
//! a first enrollment, and that no live certificate is held under the
//! instance's name already.

pub mod policy;
pub mod signature;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;

/// What an EC2 enrollment is checked against, from the master's
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Settings {
    /// A directory of AWS's public "RSA-2048" certificates, one file per
    /// region (`us-east-1.pem`); `None`: EC2 enrollment is off.
    pub aws_certificates: Option<PathBuf>,
    /// A first enrollment must come within this long of the instance's
    /// launch (its `pendingTime`).
    pub max_launch_age: Duration,
    /// A document signed longer ago than this is stale.
    pub max_document_age: Duration,
}

impl Default for Ec2Settings {
    fn default() -> Self {
        Self {
            aws_certificates: None,
            max_launch_age: Duration::from_secs(24 * 3600),
            max_document_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// The instance identity document's fields Rigger reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceIdentity {
    /// The AWS account.
    pub account_id: String,
    /// The region (`us-east-1`).
    pub region: String,
    /// The instance (`i-0abc…`): the node's certname.
    pub instance_id: String,
    /// The AMI it was launched from.
    #[serde(default)]
    pub image_id: String,
    /// Its type (`m5.xlarge`).
    #[serde(default)]
    pub instance_type: String,
    /// Its private IPv4 address.
    #[serde(default)]
    pub private_ip: Option<String>,
    /// When it was launched (RFC 3339).
    pub pending_time: String,
}

impl InstanceIdentity {
    /// Reads a signed document.
    pub fn parse(document: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(document).map_err(|e| format!("instance identity document: {e}"))
    }

    /// When the instance was launched, Unix ms.
    pub fn launched_at_ms(&self) -> Result<i64, String> {
        humantime::parse_rfc3339(&self.pending_time)
            .map_err(|e| format!("pendingTime {:?}: {e}", self.pending_time))
            .map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
            })
    }

    /// The certname an instance enrolls under: its instance id.
    pub fn certname(&self) -> String {
        self.instance_id.to_ascii_lowercase()
    }
}

/// Reads the AWS certificates in `dir`: `<region>.pem` files, each with
/// one or more PEM certificates.
pub fn aws_certificates(
    dir: &Path,
) -> Result<BTreeMap<String, Vec<CertificateDer<'static>>>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut by_region = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let (Some(region), Some("pem")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs = rigger_common::tls::certs_from_pem(&pem, &path.display().to_string())
            .map_err(|e| rigger_common::error_chain(&e))?;
        by_region.insert(region.to_string(), certs);
    }
    Ok(by_region)
}
