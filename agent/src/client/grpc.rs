//! [`MasterClient`] over gRPC (TLS 1.3, the node's client certificate), and
//! the enrollment calls made before the node has one. Generated types are
//! converted here and go no further.

use std::sync::Arc;
use std::time::Duration;

use rigger_common::digest::Digest;
use rigger_common::error_chain;
use rigger_common::grpc::{MasterAddress, MasterAddresses, tls_channel};
use rigger_common::proto;
use rigger_common::proto::catalog_service_client::CatalogServiceClient;
use rigger_common::proto::content_service_client::ContentServiceClient;
use rigger_common::proto::enrollment_service_client::EnrollmentServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::{
    BlobChunk, BlobStream, CatalogReply, CatalogRequest, Connector, Enrolled, LeaseReply,
    LeaseRequest, MasterClient, MasterError, RunReport,
};
use crate::identity::Identity;

/// A connection to the master.
#[derive(Debug, Clone)]
pub struct GrpcMaster {
    channel: Channel,
    /// How it connected: to ask, after a broken request, whether the
    /// master refused the certificate.
    master: MasterAddress,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl GrpcMaster {
    /// Connects to `master` with `config` (with or without a client certificate).
    pub async fn connect(
        master: &MasterAddress,
        config: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<Self, MasterError> {
        let config = Arc::new(config);
        let channel = tls_channel(master, config.clone(), timeout)
            .await
            .map_err(|e| MasterError::Connect {
                master: master.to_string(),
                message: error_chain(&e),
            })?;
        Ok(Self {
            channel,
            master: master.clone(),
            config,
            timeout,
        })
    }

    /// Connects to the first of `masters` that answers, trying them from
    /// the place `start` picks; a master that cannot be reached is passed
    /// over (logged), and when none can be, the error names each.
    pub async fn connect_any(
        masters: &MasterAddresses,
        start: usize,
        config: rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<Self, MasterError> {
        let mut failed: Vec<(String, String)> = Vec::new();
        for master in masters.from(start) {
            match Self::connect(master, config.clone(), timeout).await {
                Ok(client) => {
                    if !failed.is_empty() {
                        tracing::warn!(%master, passed_over = failed.len(), "a master cannot be reached: using another of the fleet");
                    }
                    return Ok(client);
                }
                Err(MasterError::Connect { master, message }) => failed.push((master, message)),
                Err(other) => return Err(other),
            }
        }
        Err(match <[_; 1]>::try_from(failed) {
            Ok([(master, message)]) => MasterError::Connect { master, message },
            Err(failed) => MasterError::Connect {
                master: masters.to_string(),
                message: failed
                    .iter()
                    .map(|(master, message)| format!("{master}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        })
    }

    /// A request broke the connection: when the master refused this
    /// node's certificate at the handshake, says so (a refusal, not an
    /// unreachable master), else keeps `error`.
    async fn diagnosed(&self, error: MasterError) -> MasterError {
        if !matches!(error, MasterError::Transport(_)) {
            return error;
        }
        match rigger_common::grpc::probe_client_certificate(
            &self.master,
            self.config.clone(),
            self.timeout,
        )
        .await
        {
            Err(alert) => refused_certificate(&alert).map_or(error, MasterError::Refused),
            Ok(()) => error,
        }
    }

    /// The master's CA certificate (PEM), asked without trusting it yet.
    pub async fn ca_certificate(&self) -> Result<String, MasterError> {
        let reply = EnrollmentServiceClient::new(self.channel.clone())
            .get_ca_certificate(proto::GetCaCertificateRequest {})
            .await
            .map_err(error_of)?;
        Ok(reply.into_inner().ca_cert_pem)
    }

    /// Exchanges a CSR and a proof (a bootstrap token, or the EC2
    /// instance's signed identity) for a certificate.
    pub async fn enroll(
        &self,
        csr_pem: String,
        proof: crate::identity::Proof,
    ) -> Result<Enrolled, MasterError> {
        let reply = EnrollmentServiceClient::new(self.channel.clone())
            .enroll(proto::EnrollRequest {
                csr_pem,
                token: proof.token,
                ec2_identity: proof.ec2_identity,
                role: proof.role,
            })
            .await
            .map_err(error_of)?
            .into_inner();
        Ok(enrolled_of(reply))
    }

    fn catalogs(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel.clone())
    }
}

fn enrolled_of(reply: proto::EnrollResponse) -> Enrolled {
    Enrolled {
        cert_pem: reply.cert_pem,
        ca_cert_pem: reply.ca_cert_pem,
        catalog_signing_key: reply.catalog_signing_key,
    }
}

/// Sorts a failed call: the connection broke, the master could not serve,
/// or it answered with a refusal.
fn error_of(status: tonic::Status) -> MasterError {
    if status.code() == tonic::Code::ResourceExhausted {
        // The master's hint, else a few seconds.
        let hint = status
            .metadata()
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(3_000);
        return MasterError::Busy {
            message: status.message().to_string(),
            retry_after: Duration::from_millis(hint),
        };
    }
    if std::error::Error::source(&status).is_some() {
        let chain = error_chain(&status);
        match refused_certificate(&chain) {
            Some(why) => MasterError::Refused(why),
            None => MasterError::Transport(chain),
        }
    } else if matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    ) {
        MasterError::Unavailable(status.message().to_string())
    } else {
        MasterError::Refused(status.message().to_string())
    }
}

/// What the master's TLS alert says of this node's certificate, when it
/// refused it at the handshake (TLS 1.3 clients learn of it only as an
/// alert on the first read, inside a transport error).
fn refused_certificate(chain: &str) -> Option<String> {
    let alert = chain
        .split("received fatal alert: ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()?;
    let why = match alert {
        "CertificateRevoked" => {
            "it was revoked (`masterctl cert list` on the master says when); enroll this node again"
        }
        "CertificateExpired" => "it has expired; enroll this node again",
        "UnknownCA" | "BadCertificate" | "DecryptError" => {
            "the master did not issue it (another master, or its CA changed); enroll this node again"
        }
        _ => return None,
    };
    Some(format!(
        "the master refused this node's certificate at the TLS handshake: {why}"
    ))
}

/// The longest a request waits in all for a busy master before it gives
/// up (a run then enforces its cached catalog).
const BUSY_WAIT: Duration = Duration::from_secs(60);

/// Makes `call`; while the master answers that it is busy, waits the time
/// it said (30 s at most each time, plus up to a quarter more, [`BUSY_WAIT`]
/// in all) and makes it again.
async fn when_busy_ask_again<T, F, Fut>(what: &str, mut call: F) -> Result<T, MasterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MasterError>>,
{
    let mut waited = Duration::ZERO;
    loop {
        match call().await {
            Err(MasterError::Busy {
                message,
                retry_after,
            }) if waited < BUSY_WAIT => {
                let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 1.0..1.25);
                let wait = retry_after
                    .min(Duration::from_secs(30))
                    .mul_f64(jitter)
                    .min(BUSY_WAIT - waited);
                tracing::warn!(
                    what,
                    wait_ms = wait.as_millis() as u64,
                    "{message}: asking again"
                );
                tokio::time::sleep(wait).await;
                waited += wait;
            }
            other => return other,
        }
    }
}

fn lease_request(request: LeaseRequest) -> proto::RestartLeaseRequest {
    proto::RestartLeaseRequest {
        service: request.service,
        ttl_secs: request.ttl_secs,
    }
}

fn lease_reply(reply: proto::RestartLeaseReply) -> LeaseReply {
    LeaseReply {
        granted: reply.granted,
        group: reply.group,
        max_down: reply.max_down,
        holders: reply.holders.into_iter().map(|h| h.certname).collect(),
        unavailable: reply.unavailable,
    }
}

fn chunk_of(chunk: proto::BlobChunk) -> Result<BlobChunk, MasterError> {
    let digest = Digest::parse(&chunk.digest)
        .map_err(|e| MasterError::Malformed(format!("blob chunk: {e}")))?;
    let gzip = match chunk.encoding.as_str() {
        "" => false,
        rigger_common::blob_encoding::GZIP => true,
        other => {
            return Err(MasterError::Malformed(format!(
                "blob {digest} comes in encoding {:?}, which this agent does not decode",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    Ok(BlobChunk {
        digest,
        offset: chunk.offset,
        data: chunk.data,
        last: chunk.last,
        gzip,
    })
}

#[tonic::async_trait]
impl MasterClient for GrpcMaster {
    async fn catalog(&self, request: CatalogRequest) -> Result<CatalogReply, MasterError> {
        let (applied_epoch, applied_version, applied_digest) = request.applied;
        let request = proto::GetCatalogRequest {
            facts_json: request.facts.to_string(),
            role: request.role.unwrap_or_default(),
            applied_epoch,
            applied_version,
            applied_digest,
        };
        let reply = when_busy_ask_again("catalog", || {
            let request = request.clone();
            async move { self.catalogs().get_catalog(request).await.map_err(error_of) }
        })
        .await;
        let mut reply = match reply {
            Ok(reply) => reply.into_inner(),
            Err(e) => return Err(self.diagnosed(e).await),
        };
        Ok(CatalogReply {
            held_back: rigger_common::text::printable(&reply.held_back)
                .chars()
                .take(2_000)
                .collect(),
            ca_bundle: std::mem::take(&mut reply.ca_bundle_pem),
            signed: reply.into(),
        })
    }

    async fn report(&self, report: RunReport) -> Result<(), MasterError> {
        let report: proto::Report = report.into();
        self.catalogs()
            .submit_report(report)
            .await
            .map_err(error_of)?;
        Ok(())
    }

    async fn fetch_blobs(&self, digests: Vec<Digest>) -> Result<BlobStream, MasterError> {
        let request = proto::FetchBlobsRequest {
            digests: digests.iter().map(ToString::to_string).collect(),
            accept_encodings: vec![rigger_common::blob_encoding::GZIP.to_string()],
        };
        let stream = when_busy_ask_again("blobs", || {
            let request = request.clone();
            async move {
                ContentServiceClient::new(self.channel.clone())
                    .fetch_blobs(request)
                    .await
                    .map_err(error_of)
            }
        })
        .await?
        .into_inner();
        Ok(Box::pin(
            stream.map(|item| item.map_err(error_of).and_then(chunk_of)),
        ))
    }

    async fn acquire_lease(&self, request: LeaseRequest) -> Result<LeaseReply, MasterError> {
        let reply = self
            .catalogs()
            .acquire_restart_lease(lease_request(request))
            .await
            .map_err(error_of)?;
        Ok(lease_reply(reply.into_inner()))
    }

    async fn release_lease(&self, request: LeaseRequest) -> Result<LeaseReply, MasterError> {
        let reply = self
            .catalogs()
            .release_restart_lease(lease_request(request))
            .await
            .map_err(error_of)?;
        Ok(lease_reply(reply.into_inner()))
    }

    async fn watch_catalog(&self) -> Result<super::NoticeStream, MasterError> {
        let stream = match self
            .catalogs()
            .watch_catalog(proto::WatchCatalogRequest {})
            .await
        {
            Ok(stream) => stream.into_inner(),
            Err(e) => return Err(self.diagnosed(error_of(e)).await),
        };
        Ok(Box::pin(
            stream.map(|item| item.map(|n| n.version).map_err(error_of)),
        ))
    }

    async fn renew(&self, csr_pem: String) -> Result<Enrolled, MasterError> {
        let reply = EnrollmentServiceClient::new(self.channel.clone())
            .renew(proto::RenewRequest { csr_pem })
            .await
            .map_err(error_of)?
            .into_inner();
        Ok(enrolled_of(reply))
    }

    async fn heartbeat(
        &self,
        services: Vec<rigger_common::report::ServiceHealth>,
    ) -> Result<(), MasterError> {
        self.catalogs()
            .heartbeat(proto::HeartbeatRequest {
                services: services.into_iter().map(Into::into).collect(),
            })
            .await
            .map_err(error_of)?;
        Ok(())
    }
}

/// Connects to the master (or the first of the fleet's masters that
/// answers) over mutually authenticated TLS.
#[derive(Debug, Clone)]
pub struct GrpcConnector {
    /// The masters.
    pub master: MasterAddresses,
    /// Connect and request timeout.
    pub timeout: Duration,
}

#[tonic::async_trait]
impl Connector for GrpcConnector {
    async fn connect(&self, identity: &Identity) -> Result<Arc<dyn MasterClient>, MasterError> {
        let config = rigger_common::tls::client_config(&identity.ca_pem, Some(&identity.client))
            .map_err(|e| MasterError::Connect {
                master: self.master.to_string(),
                message: error_chain(&e),
            })?;
        let start = node_place(&identity.certname, self.master.all().len());
        let master = GrpcMaster::connect_any(&self.master, start, config, self.timeout).await?;
        Ok(Arc::new(master))
    }
}

/// Where in a list of `n` masters a node starts: its own place (nodes
/// spread over the masters and each keeps to one while it answers).
pub fn node_place(certname: &str, n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    certname.hash(&mut hasher);
    (hasher.finish() % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_in_an_encoding_the_agent_does_not_decode_is_refused_by_name() {
        let digest = Digest::of(b"x").to_string();
        let chunk = |encoding: &str| proto::BlobChunk {
            digest: digest.clone(),
            offset: 0,
            data: vec![],
            last: true,
            encoding: encoding.into(),
        };
        assert!(chunk_of(chunk("gzip")).unwrap().gzip);
        assert!(!chunk_of(chunk("")).unwrap().gzip);
        let err = chunk_of(chunk("zstd\u{7}")).unwrap_err().to_string();
        assert!(
            err.contains(&digest) && err.contains("\"zstd\\u{7}\""),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_refused_at_the_handshake_is_told_apart_from_a_broken_link() {
        let revoked = "transport error: connection error: received fatal alert: CertificateRevoked";
        assert!(
            refused_certificate(revoked)
                .unwrap()
                .contains("it was revoked")
        );
        assert!(
            refused_certificate("received fatal alert: UnknownCA)")
                .unwrap()
                .contains("did not issue it")
        );
        assert_eq!(refused_certificate("connection reset by peer"), None);
        assert_eq!(
            refused_certificate("received fatal alert: HandshakeFailure"),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_master_is_asked_again_after_the_time_it_said() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let answer = when_busy_ask_again("catalog", || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 | 1 => Err(MasterError::Busy {
                    message: "the master is busy".into(),
                    retry_after: Duration::from_secs(2),
                }),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 7);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited <= Duration::from_secs(5),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_master_busy_for_longer_than_a_minute_is_given_up_on() {
        let started = tokio::time::Instant::now();
        let answer: Result<(), _> = when_busy_ask_again("blobs", || async {
            Err(MasterError::Busy {
                message: "the master is busy".into(),
                retry_after: Duration::from_secs(30),
            })
        })
        .await;
        assert!(matches!(answer, Err(MasterError::Busy { .. })));
        let waited = started.elapsed();
        assert!(
            waited >= BUSY_WAIT && waited < BUSY_WAIT + Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[test]
    fn resource_exhausted_carries_the_masters_hint() {
        let mut status = tonic::Status::resource_exhausted("the master is busy");
        status
            .metadata_mut()
            .insert("retry-after-ms", "1500".parse().unwrap());
        match error_of(status) {
            MasterError::Busy { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_millis(1500));
            }
            other => panic!("{other:?}"),
        }
    }
}
