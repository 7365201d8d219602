//! Content: blobs stored once by sha256 (behind [`BlobStore`]), archives
//! read safely, products and their update levels imported as trees, and
//! which blobs a node may fetch.

pub mod access;
pub mod archive;
pub mod blobs;
pub mod encoded;
pub mod import;
pub mod pack;
pub mod pack_files;
pub mod wum;

pub use blobs::{BlobStore, LocalBlobStore};
