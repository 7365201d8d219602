//! Content: blobs stored once by sha256, archives read safely, products and
//! their update levels imported as trees.

pub mod archive;
pub mod blobs;
pub mod import;

pub use blobs::{BlobStore, LocalBlobStore};
