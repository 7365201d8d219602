//! Reading product archives (zip, tar.gz) entry by entry, streaming file
//! content, so that a pack of hundreds of megabytes is never held in memory.
//! Paths are checked by the caller (`manifest::clean_path`).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

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

/// Calls `visit(path, mode, kind)` for every entry of the zip or tar.gz at `path`.
pub fn for_each_entry(
    path: &Path,
    visit: impl FnMut(&str, u32, RawKind<'_>) -> VisitResult,
) -> Result<(), ArchiveError> {
    for_each_entry_part(path, 0, 1, visit)
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
    if n >= 4 && magic == *b"PK\x03\x04" {
        let corrupt = |e: zip::result::ZipError| ArchiveError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(corrupt)?;
        for i in (part..zip.len()).step_by(parts.max(1)) {
            let mut entry = zip.by_index(i).map_err(corrupt)?;
            let name = entry.name().to_string();
            let mode = entry
                .unix_mode()
                .unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 })
                & 0o7777;
            let result = if entry.is_dir() {
                visit(&name, mode, RawKind::Dir)
            } else if entry.is_symlink() {
                let mut target = String::new();
                entry.read_to_string(&mut target).map_err(io_err)?;
                visit(&name, mode, RawKind::Symlink(target))
            } else {
                visit(&name, mode, RawKind::File(&mut entry))
            };
            result.map_err(|m| entry_err(&name, m))?;
        }
        return Ok(());
    }
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        if part > 0 {
            return Ok(());
        }
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        for entry in tar.entries().map_err(io_err)? {
            let mut entry = entry.map_err(io_err)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
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
                visit(&name, mode, RawKind::Symlink(target))
            } else if kind.is_hard_link() {
                let target = link();
                visit(&name, mode, RawKind::Hardlink(target))
            } else if kind.is_file() {
                visit(&name, mode, RawKind::File(&mut entry))
            } else {
                // pax headers, fifos, devices: nothing a product needs.
                Ok(())
            };
            result.map_err(|m| entry_err(&name, m))?;
        }
        return Ok(());
    }
    Err(ArchiveError::UnknownFormat(path.to_path_buf()))
}
