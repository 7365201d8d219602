//! Reading product archives (zip, tar.gz) entry by entry, streaming file
//! content, so that a pack of hundreds of megabytes is never held in memory.
//! Paths are checked by the caller (`manifest::clean_path`); what an archive
//! may hold at all is bounded here ([`ArchiveLimits`]): entries, path and
//! name lengths, link targets, the bytes it expands to and how much one
//! entry may expand. Devices and fifos are refused, never dropped.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest path (and link target) an entry may have (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest name one path component may have (NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;
/// Entries smaller than this are never refused for their compression ratio.
const RATIO_FLOOR_BYTES: u64 = 1 << 20;

/// What one archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Bytes all its files expand to, in all (default 4 GiB).
    pub max_bytes: u64,
    /// How many times its compressed size an entry over 1 MiB may expand to
    /// (default 200); for a tar.gz, the whole stream.
    pub max_ratio: u64,
    /// Entries (default 200,000).
    pub max_entries: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 30,
            max_ratio: 200,
            max_entries: 200_000,
        }
    }
}

/// The running totals of one archive read, shared by the threads reading it.
#[derive(Debug, Default)]
pub struct Totals {
    bytes: AtomicU64,
    entries: AtomicU64,
}

/// A file entry's reader that counts what it expands to and stops at a limit.
struct Bounded<'a, R> {
    inner: R,
    totals: &'a Totals,
    limits: ArchiveLimits,
    /// The entry's compressed size, when the format says (zip).
    compressed: Option<u64>,
    read: u64,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let total = self.totals.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > self.limits.max_bytes {
            return Err(io::Error::other(format!(
                "the archive expands to more than {} bytes (the master's import_max_bytes)",
                self.limits.max_bytes
            )));
        }
        if let Some(compressed) = self.compressed {
            if self.read > RATIO_FLOOR_BYTES
                && self.read > compressed.max(1) * self.limits.max_ratio
            {
                return Err(io::Error::other(format!(
                    "the entry expands more than {}:1 ({compressed} compressed bytes; the master's import_max_ratio)",
                    self.limits.max_ratio
                )));
            }
        }
        Ok(n)
    }
}

/// Refuses a path or link target over the length limits.
fn check_lengths(name: &str, link: Option<&str>) -> Result<(), String> {
    if name.len() > MAX_PATH_BYTES {
        return Err(format!("its path is longer than {MAX_PATH_BYTES} bytes"));
    }
    if let Some(part) = name.split('/').find(|p| p.len() > MAX_NAME_BYTES) {
        let start: String = part.chars().take(32).collect();
        return Err(format!(
            "its name {start:?}… is longer than {MAX_NAME_BYTES} bytes"
        ));
    }
    if link.is_some_and(|l| l.len() > MAX_PATH_BYTES) {
        return Err(format!(
            "its link target is longer than {MAX_PATH_BYTES} bytes"
        ));
    }
    Ok(())
}

/// What an archive entry is.
pub enum RawKind<'a> {
    /// A regular file, streamed.
    File(&'a mut dyn Read),
    /// A directory.
    Dir,
    /// A symbolic link with this target.
    Symlink(String),
    /// A hard link to another entry of the archive.
    Hardlink(String),
}

/// An archive that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading failed.
    #[error("cannot read {}", path.display())]
    Io {
        /// The archive.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Not a zip or gzip-compressed tar.
    #[error("{} is neither a zip nor a tar.gz archive", .0.display())]
    UnknownFormat(std::path::PathBuf),
    /// The zip is damaged.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The archive.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The visitor refused an entry.
    #[error("{entry}: {message}")]
    Entry {
        /// The entry's path in the archive.
        entry: String,
        /// Why.
        message: String,
    },
}

/// The visitor's answer for an entry.
pub type VisitResult = Result<(), String>;

/// Calls `visit(path, mode, kind)` for every entry of the zip or tar.gz at
/// `path`, within the default limits.
pub fn for_each_entry(
    path: &Path,
    visit: impl FnMut(&str, u32, RawKind<'_>) -> VisitResult,
) -> Result<(), ArchiveError> {
    let totals = Totals::default();
    for_each_entry_part(path, 0, 1, ArchiveLimits::default(), &totals, visit)
}

/// How many parts [`for_each_entry_part`] can split this archive into: a
/// zip's entries can be read independently, a tar.gz only in sequence.
pub fn parallel_parts(path: &Path) -> usize {
    let mut magic = [0u8; 4];
    let is_zip = File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"PK\x03\x04");
    if is_zip {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
    } else {
        1
    }
}

/// Like [`for_each_entry`], for the entries of part `part` of `parts` (a
/// zip's entries with index ≡ part mod parts; all of a tar.gz in part 0),
/// so that several threads can inflate and hash one archive.
pub fn for_each_entry_part(
    path: &Path,
    part: usize,
    parts: usize,
    limits: ArchiveLimits,
    totals: &Totals,
    mut visit: impl FnMut(&str, u32, RawKind<'_>) -> VisitResult,
) -> Result<(), ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    let entry_err = |entry: &str, message: String| ArchiveError::Entry {
        entry: entry.to_string(),
        message,
    };
    let count = |name: &str| -> Result<(), ArchiveError> {
        if totals.entries.fetch_add(1, Ordering::Relaxed) >= limits.max_entries {
            return Err(entry_err(
                name,
                format!(
                    "the archive has more than {} entries (the master's import_max_entries)",
                    limits.max_entries
                ),
            ));
        }
        Ok(())
    };

    if n >= 4 && magic == *b"PK\x03\x04" {
        let corrupt = |e: zip::result::ZipError| ArchiveError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(corrupt)?;
        for i in (part..zip.len()).step_by(parts.max(1)) {
            let mut entry = zip.by_index(i).map_err(corrupt)?;
            let name = entry.name().to_string();
            count(&name)?;
            check_lengths(&name, None).map_err(|m| entry_err(&name, m))?;
            let mode = entry
                .unix_mode()
                .unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 })
                & 0o7777;
            let file_type = mode_type(entry.unix_mode());
            let result = if entry.is_dir() {
                visit(&name, mode, RawKind::Dir)
            } else if entry.is_symlink() {
                // Read at most one byte more than a target may have.
                let mut target = Vec::new();
                (&mut entry)
                    .take(MAX_PATH_BYTES as u64 + 1)
                    .read_to_end(&mut target)
                    .map_err(io_err)?;
                let target = String::from_utf8_lossy(&target).into_owned();
                check_lengths(&name, Some(&target))
                    .and_then(|()| visit(&name, mode, RawKind::Symlink(target)))
            } else if file_type.is_some_and(|t| t != S_IFREG) {
                Err("it is a device, fifo or socket: a product pack holds files, folders and links only".into())
            } else {
                let compressed = entry.compressed_size();
                let mut reader = Bounded {
                    inner: &mut entry,
                    totals,
                    limits,
                    compressed: Some(compressed),
                    read: 0,
                };
                visit(&name, mode, RawKind::File(&mut reader))
            };
            result.map_err(|m| entry_err(&name, m))?;
        }
        return Ok(());
    }
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        if part > 0 {
            return Ok(());
        }
        let compressed = file.metadata().map_err(io_err)?.len();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        for entry in tar.entries().map_err(io_err)? {
            let mut entry = entry.map_err(io_err)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
            ) {
                continue;
            }
            count(&name)?;
            check_lengths(&name, None).map_err(|m| entry_err(&name, m))?;
            // Some tools leave the mode of links empty.
            let default_mode = if kind.is_symlink() { 0o777 } else { 0o644 };
            let mode = entry.header().mode().unwrap_or(default_mode) & 0o7777;
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let result = if kind.is_dir() {
                visit(&name, mode, RawKind::Dir)
            } else if kind.is_symlink() {
                let target = link();
                check_lengths(&name, Some(&target))
                    .and_then(|()| visit(&name, mode, RawKind::Symlink(target)))
            } else if kind.is_hard_link() {
                let target = link();
                check_lengths(&name, Some(&target))
                    .and_then(|()| visit(&name, mode, RawKind::Hardlink(target)))
            } else if kind.is_file() {
                let mut reader = Bounded {
                    inner: &mut entry,
                    totals,
                    limits,
                    compressed: None,
                    read: 0,
                };
                visit(&name, mode, RawKind::File(&mut reader))
            } else {
                Err(format!(
                    "it is a {kind:?} entry: a product pack holds files, folders and links only"
                ))
            };
            result.map_err(|m| entry_err(&name, m))?;
            let expanded = totals.bytes.load(Ordering::Relaxed);
            if expanded > RATIO_FLOOR_BYTES && expanded > compressed.max(1) * limits.max_ratio {
                return Err(entry_err(
                    &name,
                    format!(
                        "the archive expands more than {}:1 ({compressed} compressed bytes; the master's import_max_ratio)",
                        limits.max_ratio
                    ),
                ));
            }
        }
        return Ok(());
    }
    Err(ArchiveError::UnknownFormat(path.to_path_buf()))
}

/// The regular-file type bits of a Unix mode.
const S_IFREG: u32 = 0o100000;

/// The file type bits of a zip entry's Unix mode, when it has them.
fn mode_type(mode: Option<u32>) -> Option<u32> {
    mode.map(|m| m & 0o170000).filter(|t| *t != 0)
}
