//! EC2 instance metadata over IMDSv2 (session token, then GETs), each
//! request bounded by a 1 s timeout.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};

/// The real endpoint; only ever used on an instance DMI identifies as EC2.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Lifetime asked for the IMDSv2 session token.
const TOKEN_TTL_SECS: &str = "300";

/// An IMDS request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    /// No answer in time.
    #[error("{0} timed out after 1s")]
    Timeout(String),
    /// The request failed.
    #[error("{path}: {message}")]
    Request {
        /// The metadata path.
        path: String,
        /// Why.
        message: String,
    },
}

/// What IMDS says of the instance's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// `i-0abc…`.
    pub instance_id: String,
    /// Its signed identity document (`rsa2048`).
    pub rsa2048: String,
}

/// A client for one metadata endpoint.
#[derive(Clone)]
pub struct ImdsClient {
    endpoint: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl ImdsClient {
    /// A client for `endpoint` (`http://host[:port]`).
    pub fn new(endpoint: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        header: (&str, &str),
    ) -> Result<Option<String>, ImdsError> {
        let err = |message: String| ImdsError::Request {
            path: path.to_string(),
            message,
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint))
            .header(header.0, header.1)
            .body(Empty::new())
            .map_err(|e| err(e.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| err(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_bytes();
            match status {
                StatusCode::OK => Ok(Some(String::from_utf8_lossy(&body).into_owned())),
                StatusCode::NOT_FOUND => Ok(None),
                other => Err(err(format!("HTTP {other}"))),
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| ImdsError::Timeout(path.to_string()))?
    }

    async fn session_token(&self) -> Result<String, ImdsError> {
        let token = self
            .request(
                Method::PUT,
                "/latest/api/token",
                ("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECS),
            )
            .await?
            .ok_or_else(|| ImdsError::Request {
                path: "/latest/api/token".into(),
                message: "no session token".into(),
            })?;
        Ok(token.trim().to_string())
    }

    /// The instance's id and its identity document's signature in the
    /// form the master checks (`rsa2048`: base64 PKCS#7 carrying the
    /// document); `None` when IMDS serves no such thing.
    pub async fn identity(&self) -> Result<Option<InstanceIdentity>, ImdsError> {
        let token = self.session_token().await?;
        let auth = ("x-aws-ec2-metadata-token", token.as_str());
        let (id, signed) = tokio::try_join!(
            self.request(Method::GET, "/latest/meta-data/instance-id", auth),
            self.request(
                Method::GET,
                "/latest/dynamic/instance-identity/rsa2048",
                auth,
            )
        )?;
        Ok(id.zip(signed).map(|(id, rsa2048)| InstanceIdentity {
            instance_id: id.trim().to_string(),
            rsa2048: rsa2048.trim().to_string(),
        }))
    }

    /// Fetches the instance facts: id, type, AZ, region, private IP and tags.
    pub async fn gather(&self) -> Result<Map<String, Value>, ImdsError> {
        let token = self.session_token().await?;
        const FACTS: [(&str, &str); 6] = [
            ("instance_id", "instance-id"),
            ("instance_type", "instance-type"),
            ("availability_zone", "placement/availability-zone"),
            ("region", "placement/region"),
            ("private_ip", "local-ipv4"),
            ("local_hostname", "local-hostname"),
        ];
        let mut paths: Vec<String> = FACTS
            .iter()
            .map(|(_, path)| format!("/latest/meta-data/{path}"))
            .collect();
        paths.push("/latest/meta-data/tags/instance".into());
        let mut values = self.get_all(paths, &token).await?;
        let tag_keys = values.pop().flatten().unwrap_or_default();
        let mut facts = Map::new();
        for ((key, _), value) in FACTS.iter().zip(values) {
            if let Some(value) = value {
                facts.insert((*key).into(), Value::String(value.trim().to_string()));
            }
        }
        let keys: Vec<&str> = tag_keys
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        let tag_paths = keys
            .iter()
            .map(|key| format!("/latest/meta-data/tags/instance/{key}"))
            .collect();
        let mut tags = Map::new();
        for (key, value) in keys.iter().zip(self.get_all(tag_paths, &token).await?) {
            if let Some(value) = value {
                tags.insert((*key).to_string(), Value::String(value.trim().to_string()));
            }
        }
        facts.insert("tags".into(), Value::Object(tags));
        Ok(facts)
    }

    /// GETs every path at once (each on its own connection), in order;
    /// the first failure fails them all.
    async fn get_all(
        &self,
        paths: Vec<String>,
        token: &str,
    ) -> Result<Vec<Option<String>>, ImdsError> {
        let mut requests = tokio::task::JoinSet::new();
        let count = paths.len();
        for (i, path) in paths.into_iter().enumerate() {
            let (client, token) = (self.clone(), token.to_string());
            requests.spawn(async move {
                let auth = ("x-aws-ec2-metadata-token", token.as_str());
                (i, client.request(Method::GET, &path, auth).await)
            });
        }
        let mut values = vec![None; count];
        while let Some(done) = requests.join_next().await {
            let (i, value) = done.map_err(|e| ImdsError::Request {
                path: "an instance metadata request".into(),
                message: e.to_string(),
            })?;
            values[i] = value?;
        }
        Ok(values)
    }
}
