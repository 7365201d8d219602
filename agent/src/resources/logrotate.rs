//! Size-based rotation of a server's console log, copy-then-truncate: the
//! server outlives the agent and keeps its (append-mode) descriptor, so
//! the file is copied to `NAME.1` (older copies shift to `.2` … `.keep`)
//! and then truncated in place. Lines written between the copy and the
//! truncation are lost, as with logrotate's `copytruncate`.
//!
//! The log's folder belongs to the server's account, so everything here is
//! written beneath that folder and never through a final link: a link the
//! server planted as `NAME.1` is replaced, not followed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rigger_common::beneath::Beneath;
use rigger_common::fsutil::{Ownership, WriteError};

fn numbered(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotates `log` when it is larger than `max_bytes`, keeping `keep` old
/// copies. Returns whether it rotated.
pub fn rotate_if_larger(log: &Path, max_bytes: u64, keep: u32) -> Result<bool, WriteError> {
    let meta = match fs::symlink_metadata(log) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(WriteError::new("cannot stat", log, e)),
    };
    if max_bytes == 0 || meta.len() <= max_bytes || !meta.is_file() {
        return Ok(false);
    }
    let folder = Beneath::open(log.parent().unwrap_or(Path::new("/")))?;
    let truncate = || -> Result<(), WriteError> {
        folder
            .open_for_write(log, 0o644, false)?
            .set_len(0)
            .map_err(|e| WriteError::new("cannot truncate", log, e))
    };
    if keep == 0 {
        truncate()?;
        return Ok(true);
    }
    folder.remove_file(&numbered(log, keep))?;
    for n in (1..keep).rev() {
        let from = numbered(log, n);
        if fs::symlink_metadata(&from).is_ok() {
            folder.rename(&from, &numbered(log, n + 1))?;
        }
    }
    let first = numbered(log, 1);
    folder.copy_file(log, &first, meta.permissions().mode() & 0o7777)?;
    // The copy keeps the log's owner, so the service user can read it.
    use std::os::unix::fs::MetadataExt;
    let owner = Ownership {
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
    };
    let _ = folder.set_owner(&first, owner);
    truncate()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_large_log_is_copied_and_truncated_and_its_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        // The server's descriptor: append mode, kept across rotations.
        let mut writer = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        assert!(!rotate_if_larger(&log, 10, 2).unwrap(), "empty log rotated");
        for round in 1..=3 {
            writeln!(writer, "round {round}: more than ten bytes").unwrap();
            assert!(rotate_if_larger(&log, 10, 2).unwrap());
            assert_eq!(fs::metadata(&log).unwrap().len(), 0);
        }
        writeln!(writer, "after").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "after\n");
        assert_eq!(
            fs::read_to_string(numbered(&log, 1)).unwrap(),
            "round 3: more than ten bytes\n"
        );
        assert_eq!(
            fs::read_to_string(numbered(&log, 2)).unwrap(),
            "round 2: more than ten bytes\n"
        );
        assert!(!numbered(&log, 3).exists(), "more copies than kept");
        assert!(!rotate_if_larger(&log, 10, 2).unwrap(), "small log rotated");
    }

    #[test]
    fn a_link_planted_as_an_old_copy_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = tempfile::NamedTempFile::new().unwrap();
        fs::write(victim.path(), "precious").unwrap();
        let log = dir.path().join("console.log");
        fs::write(&log, "more than ten bytes of output\n").unwrap();
        std::os::unix::fs::symlink(victim.path(), numbered(&log, 1)).unwrap();
        assert!(rotate_if_larger(&log, 10, 2).unwrap());
        assert_eq!(fs::read_to_string(victim.path()).unwrap(), "precious");
        assert_eq!(
            fs::read_to_string(numbered(&log, 1)).unwrap(),
            "more than ten bytes of output\n"
        );
        // The planted link moved to .2 as it was; nothing followed it.
        assert!(
            fs::symlink_metadata(numbered(&log, 2))
                .unwrap()
                .is_symlink()
        );
    }
}
