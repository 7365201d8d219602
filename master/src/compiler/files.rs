//! The site's and modules' TOML files as compiles read them, kept parsed
//! while the file is unchanged on disk: every compile of every node reads
//! the same dozen files, and parsing them was a tenth of a compile.
//!
//! A file counts as unchanged while its stamp — device, inode, size,
//! modification and change times — is the same. An editor's save (a new
//! inode, or a new change time), a `git pull` or an `rsync` changes the
//! stamp; the stamp is taken before the file is read, so a change while it
//! is read is seen by the next compile. The kernel stamps times at its
//! clock tick (a few milliseconds), so a second write of the same size in
//! the same tick would keep the stamp: as git does with its index, a file
//! changed less than [`SETTLE`] before it was read is not trusted, and is
//! read again until it has settled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use toml::Table;

use super::CompileError;

/// The most files kept (node files are one per node); past it the cache
/// starts again.
const MAX_FILES: usize = 4096;

/// How long before a read a file must have last changed for its stamp to
/// be trusted (well above the kernel's timestamp tick).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// What tells a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// Whether the file last changed at least [`SETTLE`] before `now`.
    pub fn settled_at(&self, now: std::time::SystemTime) -> bool {
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                self.ctime.0.max(0) as u64,
                self.ctime.1.clamp(0, 999_999_999) as u32,
            );
        now.duration_since(changed).is_ok_and(|age| age >= SETTLE)
    }

    /// The stamp of the file at `path`; `None` when there is no file.
    pub fn of(path: &Path) -> Result<Option<Stamp>, CompileError> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(path) {
            Ok(meta) => Ok(Some(Stamp {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CompileError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// A file's text, with its stamp when the stamp may key a cache.
pub type StampedText = (Arc<str>, Option<Stamp>);

/// One file's text, and its table once parsed.
struct Kept {
    stamp: Stamp,
    /// Whether the file had settled when it was read (else not trusted).
    settled: bool,
    text: Arc<str>,
    table: Option<Arc<Table>>,
}

/// Files read by compiles, by path (shared by a compiler's clones).
#[derive(Default)]
pub struct SourceFiles {
    kept: Mutex<HashMap<PathBuf, Kept>>,
    /// Site files found clean against a schema: (file, its stamp, the
    /// schema's fingerprint).
    clean: Mutex<std::collections::HashSet<(PathBuf, Stamp, u64)>>,
}

impl std::fmt::Debug for SourceFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFiles").finish_non_exhaustive()
    }
}

impl SourceFiles {
    /// The file's text, with its stamp when the file had settled when it
    /// was read (a stamp that may key what is derived from the text);
    /// `None` for a missing file.
    pub fn text(&self, path: &Path) -> Result<Option<StampedText>, CompileError> {
        let now = std::time::SystemTime::now();
        let Some(stamp) = Stamp::of(path)? else {
            return Ok(None);
        };
        if let Some(kept) = self.kept.lock().expect("source files").get(path) {
            if kept.stamp == stamp && kept.settled {
                return Ok(Some((kept.text.clone(), Some(stamp))));
            }
        }
        let Some(text) = super::data::read_text(path)? else {
            return Ok(None);
        };
        let text: Arc<str> = text.into();
        let settled = stamp.settled_at(now);
        let mut kept = self.kept.lock().expect("source files");
        if kept.len() >= MAX_FILES {
            kept.clear();
        }
        kept.insert(
            path.to_path_buf(),
            Kept {
                stamp,
                settled,
                text: text.clone(),
                table: None,
            },
        );
        Ok(Some((text, settled.then_some(stamp))))
    }

    /// The file parsed as a TOML table; `None` for a missing file.
    pub fn table(&self, path: &Path) -> Result<Option<Arc<Table>>, CompileError> {
        let Some((text, stamp)) = self.text(path)? else {
            return Ok(None);
        };
        self.parsed(path, &text, stamp).map(Some)
    }

    /// `text`, as [`Self::text`] gave it for `path` with `stamp`, parsed
    /// as a TOML table (kept when the stamp may key it).
    pub fn parsed(
        &self,
        path: &Path,
        text: &str,
        stamp: Option<Stamp>,
    ) -> Result<Arc<Table>, CompileError> {
        let Some(stamp) = stamp else {
            return Ok(Arc::new(super::data::parse_table(path, text)?));
        };
        if let Some(kept) = self.kept.lock().expect("source files").get(path) {
            if kept.stamp == stamp {
                if let Some(table) = &kept.table {
                    return Ok(table.clone());
                }
            }
        }
        let table = Arc::new(super::data::parse_table(path, text)?);
        if let Some(kept) = self.kept.lock().expect("source files").get_mut(path) {
            if kept.stamp == stamp && kept.settled {
                kept.table = Some(table.clone());
            }
        }
        Ok(table)
    }
}

impl SourceFiles {
    /// Whether the file, with `stamp`, was found clean against the schema
    /// with `fingerprint` (see [`Self::found_clean`]).
    pub fn known_clean(&self, path: &Path, stamp: Stamp, fingerprint: u64) -> bool {
        self.clean
            .lock()
            .expect("clean files")
            .contains(&(path.to_path_buf(), stamp, fingerprint))
    }

    /// Records that the file, read with `stamp` (as [`Self::text`] gave
    /// it: settled), has no problem against the schema with `fingerprint`.
    pub fn found_clean(&self, path: &Path, stamp: Stamp, fingerprint: u64) {
        let mut clean = self.clean.lock().expect("clean files");
        if clean.len() >= MAX_FILES {
            clean.clear();
        }
        clean.insert((path.to_path_buf(), stamp, fingerprint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_and_a_removed_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("common.toml");
        let files = SourceFiles::default();
        assert!(files.table(&path).unwrap().is_none());
        std::fs::write(&path, "[a]\nb = 1\n").unwrap();
        assert_eq!(
            files.table(&path).unwrap().unwrap()["a"]["b"].as_integer(),
            Some(1)
        );
        // Same size, rewritten in place: the change time tells.
        std::fs::write(&path, "[a]\nb = 2\n").unwrap();
        assert_eq!(
            files.table(&path).unwrap().unwrap()["a"]["b"].as_integer(),
            Some(2)
        );
        // Replaced by rename (an editor's save): a new inode.
        let new = dir.path().join("new.toml");
        std::fs::write(&new, "[a]\nb = 3\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(
            files.table(&path).unwrap().unwrap()["a"]["b"].as_integer(),
            Some(3)
        );
        std::fs::write(&path, "[a\n").unwrap();
        assert!(matches!(files.table(&path), Err(CompileError::Toml { .. })));
        std::fs::remove_file(&path).unwrap();
        assert!(files.table(&path).unwrap().is_none());
    }

    #[test]
    fn a_settled_file_is_parsed_once_and_a_fresh_one_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("common.toml");
        let files = SourceFiles::default();
        std::fs::write(&path, "a = 1\n").unwrap();
        let fresh = files.table(&path).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&fresh, &files.table(&path).unwrap().unwrap()));
        std::thread::sleep(SETTLE * 2);
        let settled = files.table(&path).unwrap().unwrap();
        assert!(Arc::ptr_eq(&settled, &files.table(&path).unwrap().unwrap()));
    }
}
