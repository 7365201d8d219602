//! The master's epoch: a random name for one lineage of catalog
//! versions, kept in the data directory (`epoch`). A new data directory
//! starts a new one, and so does a restore from a backup
//! ([`crate::backup`]): a restored master may hold fewer versions than
//! its nodes have seen, and (epoch, version) must name one content for
//! ever. Nodes say which (epoch, version, digest) they applied; a master
//! whose latest version for a node is not above it issues its next
//! version above it ([`crate::catalogs::publish`]).

use std::path::Path;

use rigger_common::fsutil::{Ownership, write_atomic};

/// The file in the data directory.
pub const FILE: &str = "epoch";

/// The epoch in `data_dir`, created on first start.
pub fn load_or_create(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => renew(data_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => renew(data_dir),
        Err(e) => Err(e),
    }
}

/// Starts a new epoch in `data_dir` and returns it.
pub fn renew(data_dir: &Path) -> std::io::Result<String> {
    let epoch = hex::encode(rand::random::<[u8; 8]>());
    write_atomic(
        &data_dir.join(FILE),
        epoch.as_bytes(),
        0o644,
        Ownership::default(),
    )
    .map_err(std::io::Error::other)?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_kept_until_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        let second = renew(dir.path()).unwrap();
        assert_ne!(second, first);
        assert_eq!(load_or_create(dir.path()).unwrap(), second);
    }
}
