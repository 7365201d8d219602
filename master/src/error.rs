//! What a domain operation of the master answers when it does not succeed:
//! a refusal of a kind the caller can act on, worded for the operator. The
//! rpc layer maps each kind to a gRPC status in one place.

use crate::content::blobs::BlobError;
use crate::store::StoreError;

/// A refused or failed operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller did not prove who it is (a bad token, no certificate).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (a revoked node, a role it was not given).
    #[error("{0}")]
    PermissionDenied(String),
    /// The request itself is wrong (malformed facts, a bad CSR, a bad name).
    #[error("{0}")]
    InvalidArgument(String),
    /// The system is not in a state that allows it (no role, a compile error).
    #[error("{0}")]
    FailedPrecondition(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller asked too often (an enrollment flood).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// Something that should not happen (a task panicked).
    #[error("{0}")]
    Internal(String),
}

/// Shorthand for results of domain operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A task that died.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}
