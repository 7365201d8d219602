//! The agent's one door to its master. [`MasterClient`] speaks in domain
//! types (signed catalogs, reports, blob chunks, restart leases); its gRPC
//! implementation ([`GrpcMaster`]) is the only agent module that names the
//! generated protobuf types, apart from the control socket's server.
//! [`Connector`] makes the connection for a run, so that the run and the
//! daemon can be driven by an in-memory master in tests.

mod grpc;

#[cfg(test)]
pub mod fake;

use std::pin::Pin;
use std::sync::Arc;

use rigger_common::digest::Digest;
use rigger_common::signing::SignedCatalog;
use tokio_stream::Stream;

pub use grpc::{GrpcConnector, GrpcMaster, node_place};
pub use rigger_common::report::{ReportedOutcome, RunReport, ServiceHealth};

use crate::identity::Identity;

/// What the agent asks its master for a catalog with.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRequest {
    /// System and EC2 facts (a JSON object).
    pub facts: serde_json::Value,
    /// The role the agent asks for (`--role`), if any.
    pub role: Option<String>,
    /// The catalog applied: (epoch, version, digest); version 0 when none.
    pub applied: (String, u64, String),
}

/// The master's answer to a catalog request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogReply {
    /// The catalog, as signed.
    pub signed: SignedCatalog,
    /// Why the master keeps the node on this version although the site
    /// holds a newer change for it (a rollout); "" when it does not.
    pub held_back: String,
    /// Every CA the master trusts now, PEM ("" from masters before CA
    /// rotation): the node trusts them too ([`crate::identity::adopt_ca_bundle`]).
    pub ca_bundle: String,
}

/// A restart lease asked for (or given back) for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The service resource's name in the node's catalog.
    pub service: String,
    /// How long the restart may take at most; the lease lapses after that.
    pub ttl_secs: u64,
}

/// The master's answer about a restart lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseReply {
    /// Whether the node holds the lease now.
    pub granted: bool,
    /// The group (cluster); "" when restarts are not coordinated.
    pub group: String,
    /// Nodes of the group that may restart at once.
    pub max_down: u32,
    /// Certnames of the current holders (when refused: whom the node waits for).
    pub holders: Vec<String>,
    /// Nodes of the group that do not count as ready, each with why (when
    /// refused by the budget: what the node waits for).
    pub unavailable: Vec<String>,
}

/// What enrollment returns: the node's certificate and what it must trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The node's certificate, PEM.
    pub cert_pem: String,
    /// The master's CA, PEM.
    pub ca_cert_pem: String,
    /// Raw 32-byte ed25519 public key that signs every catalog.
    pub catalog_signing_key: Vec<u8>,
}

/// A piece of a blob, in order: a blob's chunks follow each other from
/// offset 0 until `last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobChunk {
    /// The blob.
    pub digest: Digest,
    /// Offset of `data` within the blob.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// The blob's last chunk.
    pub last: bool,
    /// Whether the blob's bytes come gzip-encoded (`offset` then counts
    /// encoded bytes).
    pub gzip: bool,
}

/// The chunks of the blobs asked for, one blob after the other.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<BlobChunk, MasterError>> + Send>>;

/// The node's latest catalog version on the master, at once and then each
/// time it has a newer one (`u64::MAX`: some went by unseen).
pub type NoticeStream = Pin<Box<dyn Stream<Item = Result<u64, MasterError>> + Send>>;

/// A request to the master that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterError {
    /// No connection could be made.
    #[error("cannot connect to the master at {master}: {message}")]
    Connect {
        /// The master's address.
        master: String,
        /// Why.
        message: String,
    },
    /// The connection broke during the request (a TLS refusal looks like this).
    #[error(
        "the connection to the master failed during the request ({0}); if it persists, check the master's log: it refuses certificates it did not issue"
    )]
    Transport(String),
    /// The master answered that it cannot serve now (unavailable, timed out).
    #[error("{0}")]
    Unavailable(String),
    /// The master answered and refused (a compile error, a revoked certificate, …).
    #[error("{0}")]
    Refused(String),
    /// The master is overloaded and said when to ask again.
    #[error("{message}")]
    Busy {
        /// What it said.
        message: String,
        /// When to ask again.
        retry_after: std::time::Duration,
    },
    /// The master answered with something this agent cannot use.
    #[error("the master's answer is malformed: {0}")]
    Malformed(String),
}

impl MasterError {
    /// Whether the master itself answered (it refused, rather than being out of reach).
    pub fn master_answered(&self) -> bool {
        matches!(
            self,
            Self::Refused(_) | Self::Malformed(_) | Self::Busy { .. }
        )
    }
}

/// The node's requests to its master, in domain types.
#[tonic::async_trait]
pub trait MasterClient: Send + Sync + std::fmt::Debug {
    /// Compiles (or returns the current) signed catalog for this node.
    async fn catalog(&self, request: CatalogRequest) -> Result<CatalogReply, MasterError>;
    /// Records a run.
    async fn report(&self, report: RunReport) -> Result<(), MasterError>;
    /// Streams the blobs `digests` name.
    async fn fetch_blobs(&self, digests: Vec<Digest>) -> Result<BlobStream, MasterError>;
    /// Asks for the restart lease of the node's cluster.
    async fn acquire_lease(&self, request: LeaseRequest) -> Result<LeaseReply, MasterError>;
    /// Gives the node's restart lease back.
    async fn release_lease(&self, request: LeaseRequest) -> Result<LeaseReply, MasterError>;
    /// Says what the node's services are doing (keeps its leases alive).
    async fn heartbeat(&self, services: Vec<ServiceHealth>) -> Result<(), MasterError>;
    /// Push: streams the node's latest catalog version as it changes.
    async fn watch_catalog(&self) -> Result<NoticeStream, MasterError>;
    /// Has the master sign a new certificate for the CSR's new key.
    async fn renew(&self, csr_pem: String) -> Result<Enrolled, MasterError>;
}

/// Opens a connection to the master for a run, as the node's identity.
#[tonic::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// A client talking to the master with `identity`'s certificate.
    async fn connect(&self, identity: &Identity) -> Result<Arc<dyn MasterClient>, MasterError>;
}
