//! What a release check compares of a file (type, mode, owner, size,
//! modification time, inode), from `std::fs::Metadata` or from an
//! `fstatat` made relative to the release's open folder: a converged run
//! stats thousands of files, and walking each one's full path from `/`
//! was half of that work.

use std::os::unix::fs::MetadataExt;

/// A file's metadata as the release checks read it.
pub trait FileMeta {
    /// A regular file (not following a link).
    fn is_regular(&self) -> bool;
    /// Permission bits, with setuid, setgid and sticky (`& 0o7777`).
    fn permission_bits(&self) -> u32;
    /// Owner and group ids.
    fn owner_ids(&self) -> (u32, u32);
    /// Size in bytes.
    fn byte_len(&self) -> u64;
    /// Modification time: seconds and nanoseconds.
    fn mtime_parts(&self) -> (i64, i64);
    /// Inode number.
    fn inode(&self) -> u64;
}

impl FileMeta for std::fs::Metadata {
    fn is_regular(&self) -> bool {
        self.is_file()
    }
    fn permission_bits(&self) -> u32 {
        self.mode() & 0o7777
    }
    fn owner_ids(&self) -> (u32, u32) {
        (self.uid(), self.gid())
    }
    fn byte_len(&self) -> u64 {
        self.len()
    }
    fn mtime_parts(&self) -> (i64, i64) {
        (self.mtime(), self.mtime_nsec())
    }
    fn inode(&self) -> u64 {
        self.ino()
    }
}

impl FileMeta for nix::sys::stat::FileStat {
    fn is_regular(&self) -> bool {
        self.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG
    }
    fn permission_bits(&self) -> u32 {
        self.st_mode & 0o7777
    }
    fn owner_ids(&self) -> (u32, u32) {
        (self.st_uid, self.st_gid)
    }
    fn byte_len(&self) -> u64 {
        self.st_size as u64
    }
    fn mtime_parts(&self) -> (i64, i64) {
        (self.st_mtime, self.st_mtime_nsec)
    }
    fn inode(&self) -> u64 {
        self.st_ino
    }
}

/// The folder at `path`, opened only to name it (`O_PATH`): stating files
/// in it needs the search permission a stat by full path needs, not the
/// permission to read the folder.
pub fn open_folder(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
        .open(path)
}

/// `path`'s metadata (not following a final link), stated relative to the
/// open folder `dir` ([`open_folder`]).
pub fn stat_in(
    dir: &std::fs::File,
    path: &str,
) -> Result<nix::sys::stat::FileStat, nix::errno::Errno> {
    nix::sys::stat::fstatat(dir, path, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Whether `path` in the open folder `dir` is a folder (following links,
/// as `Path::is_dir` does).
pub fn is_folder_in(dir: &std::fs::File, path: &str) -> bool {
    nix::sys::stat::fstatat(dir, path, nix::fcntl::AtFlags::empty())
        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR)
}

/// The target of the link `path` in the open folder `dir`.
pub fn link_in(dir: &std::fs::File, path: &str) -> Option<std::path::PathBuf> {
    nix::fcntl::readlinkat(dir, path).ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_stat_in_a_folder_reads_as_the_files_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        let file = dir.path().join("lib/a.jar");
        std::fs::write(&file, b"jar a").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4640)).unwrap();
        std::os::unix::fs::symlink("a.jar", dir.path().join("lib/link")).unwrap();
        let opened = open_folder(dir.path()).unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let stat = stat_in(&opened, "lib/a.jar").unwrap();
        assert!(stat.is_regular() && meta.is_regular());
        assert_eq!(stat.permission_bits(), 0o4640);
        assert_eq!(
            (stat.permission_bits(), stat.owner_ids(), stat.byte_len()),
            (meta.permission_bits(), meta.owner_ids(), meta.byte_len())
        );
        assert_eq!(
            (stat.mtime_parts(), stat.inode()),
            (meta.mtime_parts(), meta.inode())
        );
        // A link is not followed; a missing file is an error.
        assert!(!stat_in(&opened, "lib/link").unwrap().is_regular());
        assert!(stat_in(&opened, "lib/b.jar").is_err());
        assert!(open_folder(&file).is_err(), "a file is not a folder");
        assert!(is_folder_in(&opened, "lib") && !is_folder_in(&opened, "lib/a.jar"));
        assert_eq!(link_in(&opened, "lib/link"), Some("a.jar".into()));
        assert_eq!(link_in(&opened, "lib/a.jar"), None);
    }

    #[test]
    fn a_folder_it_may_search_but_not_read_is_stated_in() {
        if !crate::resources::file::tests_support::root_or_skip("file_meta folder permission") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("release");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("a.jar"), b"jar a").unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // On a thread of its own, with the file system ids of nobody (the
        // thread alone: setfsuid is per thread, and drops root's file
        // capabilities): it may search the folder but not read it.
        let (read, stated) = std::thread::spawn(move || {
            nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
            let read = std::fs::read_dir(&folder).is_ok();
            let stated = open_folder(&folder)
                .is_ok_and(|f| stat_in(&f, "a.jar").is_ok_and(|s| s.byte_len() == 5));
            nix::unistd::setfsuid(nix::unistd::Uid::from_raw(0));
            (read, stated)
        })
        .join()
        .unwrap();
        assert!(!read, "the folder was readable: the test proves nothing");
        assert!(stated);
    }
}
