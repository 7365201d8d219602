//! A blob being written into the cache. It is an unnamed file
//! (`O_TMPFILE`) in its object's own folder, given its name (`linkat`)
//! only once it is whole and verified: fetch streams never share a
//! folder lock (a rename out of one temporary folder serialised them on
//! its lock), and a crash leaves nothing behind. Where the file system
//! has no unnamed files, it is a named temporary file in the cache's
//! temporary folder, renamed into place.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

/// A blob's file before it has its name in the cache.
#[derive(Debug)]
pub enum NewBlob {
    /// Unnamed, in the folder its object goes in.
    Unnamed(File),
    /// Named, in the cache's temporary folder.
    Named(tempfile::NamedTempFile),
}

impl NewBlob {
    /// A new, empty file for the object at `target`, whose folder it
    /// creates; `tmp_dir` is where a named one goes.
    pub fn create(target: &Path, tmp_dir: &Path) -> io::Result<Self> {
        let folder = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)?;
        if !proc_is_mounted() {
            return Self::named(tmp_dir);
        }
        match nix::fcntl::open(
            folder,
            OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => Ok(Self::Unnamed(File::from(fd))),
            // No unnamed files here (EOPNOTSUPP; EISDIR from kernels that
            // do not know the flag).
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => Self::named(tmp_dir),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    fn named(tmp_dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(tmp_dir)?;
        Ok(Self::Named(tempfile::NamedTempFile::new_in(tmp_dir)?))
    }

    /// The open file (read and write), to write to, check and seal.
    pub fn file(&self) -> &File {
        match self {
            Self::Unnamed(file) => file,
            Self::Named(named) => named.as_file(),
        }
    }

    /// Gives the file its name `target` (the object's path, in the folder
    /// it was created for), replacing what is there.
    pub fn persist(self, target: &Path) -> io::Result<()> {
        match self {
            Self::Named(named) => named.persist(target).map(drop).map_err(|e| e.error),
            Self::Unnamed(file) => match link_unnamed(&file, target) {
                Err(Errno::EEXIST) => {
                    // Already there (a repair renews an object): link a
                    // temporary name and rename it over, atomically.
                    let beside = beside(target);
                    link_unnamed(&file, &beside)?;
                    std::fs::rename(&beside, target).inspect_err(|_| {
                        let _ = std::fs::remove_file(&beside);
                    })
                }
                linked => linked.map_err(io::Error::from),
            },
        }
    }
}

/// Links an unnamed file at `target` through its `/proc/self/fd` name
/// (which needs no privilege, unlike `AT_EMPTY_PATH`).
fn link_unnamed(file: &File, target: &Path) -> Result<(), Errno> {
    let name = format!("/proc/self/fd/{}", file.as_raw_fd());
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        Path::new(&name),
        nix::fcntl::AT_FDCWD,
        target,
        AtFlags::AT_SYMLINK_FOLLOW,
    )
}

/// Whether `/proc/self/fd` is there to give an unnamed file its name
/// (a container may have no /proc).
fn proc_is_mounted() -> bool {
    static MOUNTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MOUNTED.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// A temporary name beside `target`.
fn beside(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.new-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_new_blob_has_no_name_until_it_is_persisted_then_replaces_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sha256/ab/cdef");
        let tmp = dir.path().join("tmp");
        let blob = NewBlob::create(&target, &tmp).unwrap();
        blob.file().write_all(b"first").unwrap();
        let names = |folder: &Path| std::fs::read_dir(folder).map_or(0, |d| d.count());
        assert!(!target.exists());
        assert_eq!(
            names(target.parent().unwrap()) + names(&tmp),
            usize::from(matches!(blob, NewBlob::Named(_))),
            "an unnamed blob is visible before it is whole"
        );
        blob.persist(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"first");

        let again = NewBlob::create(&target, &tmp).unwrap();
        again.file().write_all(b"second").unwrap();
        again.persist(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        assert_eq!(
            names(target.parent().unwrap()),
            1,
            "a temporary name stayed"
        );
    }

    #[test]
    fn a_blob_dropped_before_it_is_persisted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sha256/ab/cdef");
        let tmp = dir.path().join("tmp");
        let blob = NewBlob::create(&target, &tmp).unwrap();
        blob.file().write_all(b"cut").unwrap();
        drop(blob);
        assert_eq!(
            std::fs::read_dir(target.parent().unwrap()).unwrap().count(),
            0
        );
        assert!(std::fs::read_dir(&tmp).map_or(true, |mut d| d.next().is_none()));
    }
}
