//! The agent's content-addressed cache and the fetching that fills it.
//!
//! Invariant: a blob is in the cache only after its sha256 was verified;
//! releases are copied from the cache, never hard-linked into it.

pub mod cache;
pub mod fetch;

pub use cache::ContentCache;
pub use fetch::{FetchProgress, FetchStats, fetch_blobs};
