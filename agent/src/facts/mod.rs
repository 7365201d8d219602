//! Facts: what the agent tells the master about its node. System facts
//! always; EC2 instance metadata (IMDSv2) when configured or detected.

pub mod imds;
pub mod system;

use serde_json::{Map, Value};

/// Where EC2 metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImdsSetting {
    /// Ask the standard endpoint only where DMI says this is an EC2 instance.
    Auto,
    /// Never ask.
    Off,
    /// Ask this endpoint (tests run a fake one on loopback).
    Endpoint(String),
}

impl ImdsSetting {
    /// The endpoint to ask, if any.
    pub fn endpoint(&self) -> Option<String> {
        match self {
            Self::Off => None,
            Self::Endpoint(url) => Some(url.clone()),
            Self::Auto => system::is_ec2().then(|| imds::DEFAULT_ENDPOINT.to_string()),
        }
    }

    /// The instance's identity, when this is an EC2 instance whose
    /// metadata answers (a failure is logged and taken as none).
    pub async fn instance_identity(&self) -> Option<imds::InstanceIdentity> {
        let endpoint = self.endpoint()?;
        match imds::ImdsClient::new(&endpoint).identity().await {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(endpoint, error = %e, "cannot read the instance identity from EC2 instance metadata");
                None
            }
        }
    }

    /// Parses `auto`, `off` or an `http://` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            url if url.starts_with("http://") => {
                Ok(Self::Endpoint(url.trim_end_matches('/').to_string()))
            }
            other => Err(format!(
                "imds endpoint {other:?} must be auto, off or an http:// URL"
            )),
        }
    }
}

/// Gathers every fact. An IMDS failure is logged and leaves the `ec2`
/// facts out; it never fails the run.
pub async fn gather(imds: &ImdsSetting) -> Value {
    let mut facts = system::gather();
    if let Some(endpoint) = imds.endpoint() {
        match imds::ImdsClient::new(&endpoint).gather().await {
            Ok(ec2) => {
                if let Some(ip) = ec2.get("private_ip").cloned() {
                    facts.insert("ip".into(), ip);
                }
                facts.insert("ec2".into(), Value::Object(ec2));
            }
            Err(e) => {
                tracing::warn!(endpoint, error = %e, "EC2 instance metadata unavailable; continuing without ec2 facts")
            }
        }
    }
    Value::Object(facts)
}

/// The node's default certname: its EC2 instance id, else its host name.
pub fn default_certname(facts: &Value) -> String {
    facts
        .pointer("/ec2/instance_id")
        .or_else(|| facts.get("hostname"))
        .and_then(Value::as_str)
        .unwrap_or("localhost")
        .to_ascii_lowercase()
}

/// Helper for building fact maps.
pub(crate) fn insert(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_string(), value.into());
}
