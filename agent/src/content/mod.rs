//! The agent's content-addressed cache and the fetching that fills it.
//!
//! Invariant: a blob is in the cache only after its sha256 was verified;
//! a cached object is never modified in place (releases may share its
//! inode), and one whose metadata shows a write is verified before use.

pub mod cache;
pub mod fetch;
pub mod new_blob;

pub use cache::ContentCache;
pub use fetch::{FetchProgress, FetchStats, MasterRefetch, fetch_blobs};
