//! Size-based rotation of a server's console log, copy-then-truncate: the
//! server outlives the agent and keeps its (append-mode) descriptor, so
//! the file is copied to `NAME.1` (older copies shift to `.2` … `.keep`)
//! and then truncated in place. Lines written between the copy and the
//! truncation are lost, as with logrotate's `copytruncate`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

fn numbered(log: &Path, n: u32) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Rotates `log` when it is larger than `max_bytes`, keeping `keep` old
/// copies. Returns whether it rotated.
pub fn rotate_if_larger(log: &Path, max_bytes: u64, keep: u32) -> io::Result<bool> {
    let size = match fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if max_bytes == 0 || size <= max_bytes {
        return Ok(false);
    }
    if keep == 0 {
        fs::OpenOptions::new().write(true).open(log)?.set_len(0)?;
        return Ok(true);
    }
    let _ = fs::remove_file(numbered(log, keep));
    for n in (1..keep).rev() {
        match fs::rename(numbered(log, n), numbered(log, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let first = numbered(log, 1);
    fs::copy(log, &first)?;
    // The copy keeps the log's owner, so the service user can read it.
    if let Ok(meta) = fs::metadata(log) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(&first, Some(meta.uid()), Some(meta.gid()));
    }
    fs::OpenOptions::new().write(true).open(log)?.set_len(0)?;
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
}
