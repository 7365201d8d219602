//! An in-memory master for the run's and the daemon's unit tests: it signs
//! the catalog a test gives it, serves blobs from memory, grants leases and
//! keeps the reports it receives. It can be taken down or made to refuse.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use rigger_common::catalog::{self, Catalog, CatalogContent};
use rigger_common::digest::Digest;
use rigger_common::fsutil::{Ownership, write_atomic};
use rigger_common::signing::{SignedCatalog, sign_catalog};

use super::{
    BlobChunk, BlobStream, CatalogReply, CatalogRequest, Connector, LeaseReply, LeaseRequest,
    MasterClient, MasterError, RunReport,
};
use crate::identity::Identity;

/// What the fake master answers and what it was told.
#[derive(Debug, Default)]
struct Inner {
    catalog: Option<SignedCatalog>,
    refusal: Option<String>,
    down: bool,
    reports: Vec<RunReport>,
    requests: Vec<CatalogRequest>,
    blobs: HashMap<Digest, Vec<u8>>,
    /// Blobs whose bytes above are sent as gzip-encoded.
    gzipped: std::collections::HashSet<Digest>,
}

/// The in-memory master.
#[derive(Debug)]
pub struct FakeMaster {
    key: SigningKey,
    certname: String,
    inner: Mutex<Inner>,
}

impl FakeMaster {
    /// A master for node `certname`, signing with a fixed test key.
    pub fn new(certname: &str) -> Arc<Self> {
        Self::with_key(certname, 42)
    }

    /// A master signing with the test key made from `seed`.
    pub fn with_key(certname: &str, seed: u8) -> Arc<Self> {
        Arc::new(Self {
            key: SigningKey::from_bytes(&[seed; 32]),
            certname: certname.to_string(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The public key agents must pin.
    pub fn signing_key(&self) -> Vec<u8> {
        self.key.verifying_key().to_bytes().to_vec()
    }

    /// Serves `content` as catalog version `version` from now on.
    pub fn publish(&self, version: u64, content: CatalogContent) {
        let catalog = Catalog {
            format: catalog::FORMAT,
            node: self.certname.clone(),
            version,
            digest: content.digest(),
            compiled_at_ms: 0,
            epoch: String::new(),
            expires_at_ms: 0,
            site_revision: format!("fake{version}"),
            site_commit: None,
            level_sources: Default::default(),
            content,
        };
        self.inner.lock().unwrap().catalog = Some(sign_catalog(&self.key, &catalog));
    }

    /// Refuses every catalog request with `message` (`None`: answers again).
    pub fn refuse(&self, message: Option<&str>) {
        self.inner.lock().unwrap().refusal = message.map(str::to_string);
    }

    /// Takes the master off the network (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// Adds a blob it can serve.
    pub fn add_blob(&self, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        self.inner
            .lock()
            .unwrap()
            .blobs
            .insert(digest, bytes.to_vec());
        digest
    }

    /// Serves `bytes` as the blob `digest` (a lying master, for tests).
    pub fn add_blob_as(&self, digest: Digest, bytes: &[u8]) {
        self.inner
            .lock()
            .unwrap()
            .blobs
            .insert(digest, bytes.to_vec());
    }

    /// Serves `encoded` as the gzip encoding of the blob `digest` (a
    /// bomb or a lie, for tests).
    pub fn add_gzipped_blob_as(&self, digest: Digest, encoded: &[u8]) {
        let mut inner = self.inner.lock().unwrap();
        inner.blobs.insert(digest, encoded.to_vec());
        inner.gzipped.insert(digest);
    }

    /// The reports received so far.
    pub fn reports(&self) -> Vec<RunReport> {
        self.inner.lock().unwrap().reports.clone()
    }

    /// The catalog requests received so far.
    pub fn requests(&self) -> Vec<CatalogRequest> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Writes an enrolled identity for this master's node into `ssl_dir`
    /// (a self-signed certificate standing in for the CA's).
    pub fn enroll_into(&self, ssl_dir: &Path) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.certname.as_str());
        let cert = params.self_signed(&key).unwrap();
        std::fs::create_dir_all(ssl_dir).unwrap();
        let own = Ownership::default();
        let write = |name: &str, bytes: &[u8]| {
            write_atomic(&ssl_dir.join(name), bytes, 0o600, own).unwrap();
        };
        write("node.key", key.serialize_pem().as_bytes());
        write("ca.crt", cert.pem().as_bytes());
        write(
            "catalog-signing.pub",
            hex::encode(self.signing_key()).as_bytes(),
        );
        write("node.crt", cert.pem().as_bytes());
    }

    fn reachable(&self) -> Result<(), MasterError> {
        if self.inner.lock().unwrap().down {
            return Err(MasterError::Unavailable("the fake master is down".into()));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl MasterClient for FakeMaster {
    async fn catalog(&self, request: CatalogRequest) -> Result<CatalogReply, MasterError> {
        self.reachable()?;
        let mut inner = self.inner.lock().unwrap();
        inner.requests.push(request);
        if let Some(message) = &inner.refusal {
            return Err(MasterError::Refused(message.clone()));
        }
        let signed = inner
            .catalog
            .clone()
            .ok_or_else(|| MasterError::Refused("no catalog published".into()))?;
        Ok(CatalogReply {
            signed,
            held_back: String::new(),
            ca_bundle: String::new(),
        })
    }

    async fn report(&self, report: RunReport) -> Result<(), MasterError> {
        self.reachable()?;
        self.inner.lock().unwrap().reports.push(report);
        Ok(())
    }

    async fn fetch_blobs(&self, digests: Vec<Digest>) -> Result<BlobStream, MasterError> {
        self.reachable()?;
        let inner = self.inner.lock().unwrap();
        let mut chunks = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for digest in digests {
            // As the real master: each blob once per request.
            if !seen.insert(digest) {
                return Err(MasterError::Refused(format!(
                    "a fetch asks for blob {digest} more than once"
                )));
            }
            let data = inner
                .blobs
                .get(&digest)
                .cloned()
                .ok_or_else(|| MasterError::Refused(format!("blob {digest} is not served")))?;
            chunks.push(Ok(BlobChunk {
                digest,
                offset: 0,
                data,
                last: true,
                gzip: inner.gzipped.contains(&digest),
            }));
        }
        Ok(Box::pin(tokio_stream::iter(chunks)))
    }

    async fn acquire_lease(&self, _request: LeaseRequest) -> Result<LeaseReply, MasterError> {
        self.reachable()?;
        Ok(LeaseReply {
            granted: true,
            max_down: 1,
            ..Default::default()
        })
    }

    async fn release_lease(&self, _request: LeaseRequest) -> Result<LeaseReply, MasterError> {
        self.reachable()?;
        Ok(LeaseReply {
            granted: true,
            ..Default::default()
        })
    }

    async fn heartbeat(
        &self,
        _services: Vec<rigger_common::report::ServiceHealth>,
    ) -> Result<(), MasterError> {
        self.reachable()
    }

    async fn watch_catalog(&self) -> Result<super::NoticeStream, MasterError> {
        self.reachable()?;
        // No pushes: runs happen on schedule or when asked.
        Ok(Box::pin(tokio_stream::pending()))
    }

    async fn renew(&self, _csr_pem: String) -> Result<super::Enrolled, MasterError> {
        self.reachable()?;
        Err(MasterError::Refused(
            "the fake master has no CA: certificates are not renewed".into(),
        ))
    }
}

/// Connects every run to one [`FakeMaster`] (or fails while it is down).
#[derive(Debug)]
pub struct FakeConnector(pub Arc<FakeMaster>);

#[tonic::async_trait]
impl Connector for FakeConnector {
    async fn connect(&self, _identity: &Identity) -> Result<Arc<dyn MasterClient>, MasterError> {
        if self.0.inner.lock().unwrap().down {
            return Err(MasterError::Connect {
                master: "fake".into(),
                message: "Connection refused".into(),
            });
        }
        Ok(self.0.clone())
    }
}
