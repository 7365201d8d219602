//! Writes the kernel keeps beneath a root directory, whatever links lie on
//! the way.
//!
//! A [`Beneath`] holds a descriptor of its root. Every path it is given is
//! resolved relative to that descriptor with `openat2(2)` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: the kernel treats the root as
//! `/` for the walk, so `..` stops there and an absolute link resolves
//! inside it, as under chroot. The last component is then created, renamed,
//! linked or removed relative to its parent's descriptor, never followed
//! (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`). A hostile link planted anywhere
//! below the root (by a pack, another node on a share, or someone on the
//! node) cannot send a write outside it.
//!
//! Paths are given as the caller knows them: absolute paths under the root
//! (`<root>/opt/wso2/…`) or paths relative to it. A path outside the root is
//! an error, never a write.
//!
//! Invariant: no operation here resolves a path from the process's working
//! directory or `/`; each starts at the root's descriptor.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, renameat};
use nix::sys::stat::{Mode, fchmod, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};

use crate::fsutil::{Ownership, WriteError, ctx as failed};

/// How every path is resolved: inside the root, no magic links (`/proc/…/fd`).
const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);
/// `openat2` answers EAGAIN when a rename elsewhere raced the walk: try again.
const RACE_RETRIES: usize = 32;
/// Names of temporary files and links, unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory whose descriptor every write resolves beneath.
#[derive(Debug)]
pub struct Beneath {
    root: PathBuf,
    dir: OwnedFd,
}

fn io(errno: Errno) -> io::Error {
    io::Error::from(errno)
}

impl Beneath {
    /// Opens `root` (which must exist and be a directory) as the confinement root.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, WriteError> {
        let root = root.into();
        let dir = nix::fcntl::open(
            &root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)
        .map_err(failed("cannot open the confinement root", &root))?;
        Ok(Self { root, dir })
    }

    /// The root, as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` relative to the root; `path` is absolute under the root or
    /// already relative. Anything else (outside the root, or naming `..`)
    /// is refused before the kernel sees it.
    fn relative<'a>(&self, path: &'a Path) -> Result<&'a Path, WriteError> {
        let relative = if path.is_absolute() {
            path.strip_prefix(&self.root).map_err(|_| {
                WriteError::new(
                    "refusing to write outside the confinement root",
                    path,
                    io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("not beneath {}", self.root.display()),
                    ),
                )
            })?
        } else {
            path
        };
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(WriteError::new(
                "refusing a path that is not normal",
                path,
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        }
        Ok(relative)
    }

    /// Opens `relative` from the root, resolved inside it.
    fn open_relative(&self, relative: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let target: &Path = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(RESOLVE);
        for _ in 0..RACE_RETRIES {
            match openat2(&self.dir, target, how) {
                Err(Errno::EAGAIN) => continue,
                Err(Errno::ENOSYS) => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the kernel has no openat2 (Linux 5.6 or newer is needed)",
                    ));
                }
                other => return other.map_err(io),
            }
        }
        Err(io(Errno::EAGAIN))
    }

    /// Opens an existing directory under the root.
    fn open_dir(&self, relative: &Path) -> io::Result<OwnedFd> {
        self.open_relative(
            relative,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
    }

    /// The directory holding `path` (opened beneath the root) and the
    /// final component's name.
    fn parent_of<'a>(&self, path: &'a Path) -> Result<(OwnedFd, &'a OsStr), WriteError> {
        let relative = self.relative(path)?;
        let name = relative.file_name().ok_or_else(|| {
            WriteError::new(
                "refusing to write the confinement root itself at",
                path,
                io::Error::from(io::ErrorKind::InvalidInput),
            )
        })?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        let dir = self
            .open_dir(parent)
            .map_err(failed("cannot open the directory of", path))?;
        Ok((dir, name))
    }

    /// Creates `path` and its missing parents (mode 0755 less the umask),
    /// each created relative to its parent's descriptor.
    pub fn create_dir_all(&self, path: &Path) -> Result<(), WriteError> {
        let relative = self.relative(path)?;
        match self.open_dir(relative) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("cannot open directory", path)(e)),
        }
        let mut prefix = PathBuf::new();
        for component in relative.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            let parent = self
                .open_dir(&prefix)
                .map_err(failed("cannot open directory", &self.root.join(&prefix)))?;
            prefix.push(name);
            match mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(failed("cannot create directory", path)(io(e))),
            }
        }
        self.open_dir(relative)
            .map(drop)
            .map_err(failed("cannot open directory", path))
    }

    /// Writes `bytes` to `path` atomically: a new file beside it gets the
    /// content, mode and owner, is fsynced and renamed over `path`, then
    /// the directory is fsynced. The parent must exist.
    pub fn write_atomic(
        &self,
        path: &Path,
        bytes: &[u8],
        mode: u32,
        owner: Ownership,
    ) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        let (tmp, file) = create_temp(&dir, name, mode)
            .map_err(failed("cannot create a temporary file beside", path))?;
        let written = (|| -> io::Result<()> {
            let mut file = File::from(file);
            fchmod(&file, Mode::from_bits_truncate(mode)).map_err(io)?;
            if owner != Ownership::default() {
                fchown(
                    &file,
                    owner.uid.map(Uid::from_raw),
                    owner.gid.map(Gid::from_raw),
                )
                .map_err(io)?;
            }
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(failed("cannot write the new content of", path)(e));
        }
        rename_into_place(dir, &tmp, name, path, "cannot rename the new file over")
    }

    /// Creates the file `path` (nothing may be there) with `bytes` and
    /// `mode`. Not fsynced: for bulk writers that flush the file system
    /// once (a release being built, before it gets its name).
    pub fn write_new(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        let mut file = create_new(&dir, name, mode, path)?;
        fchmod(&file, Mode::from_bits_truncate(mode))
            .map_err(io)
            .and_then(|()| file.write_all(bytes))
            .map_err(failed("cannot write", path))
    }

    /// Copies the file at `source` (anywhere: it is only read) to `path`
    /// with `mode`, replacing a file or link there. Not fsynced: bulk
    /// writers flush the file system once.
    pub fn copy_file(&self, source: &Path, path: &Path, mode: u32) -> Result<(), WriteError> {
        let mut from = File::open(source).map_err(failed("cannot open", source))?;
        let (dir, name) = self.parent_of(path)?;
        match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(failed("cannot replace", path)(io(e))),
        }
        let mut to = create_new(&dir, name, mode, path)?;
        // io::copy between files uses copy_file_range (reflinks where the
        // file system can).
        io::copy(&mut from, &mut to).map_err(failed("cannot copy to", path))?;
        fchmod(&to, Mode::from_bits_truncate(mode))
            .map_err(io)
            .map_err(failed("cannot set the mode of", path))
    }

    /// Makes `path` another name of the file at `source` (a hard link;
    /// `source` is outside the root and never followed if it is a link),
    /// replacing a file or link there atomically. Not fsynced when nothing
    /// was there: bulk writers flush the file system once.
    pub fn link_file(&self, source: &Path, path: &Path) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        match linkat(AT_FDCWD, source, &dir, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => {
                let tmp = temp_name(name);
                linkat(AT_FDCWD, source, &dir, tmp.as_os_str(), AtFlags::empty())
                    .map_err(io)
                    .map_err(failed("cannot link a temporary name beside", path))?;
                rename_into_place(dir, &tmp, name, path, "cannot rename the new link over")
            }
            Err(e) => Err(failed("cannot link", path)(io(e))),
        }
    }

    /// A [`Linker`] of many files beneath the root.
    pub fn linker(&self) -> Linker<'_> {
        Linker {
            root: self,
            folder: None,
        }
    }

    /// Points the symlink at `path` to `target` atomically (a new link
    /// under a temporary name renamed over the old one; the directory is
    /// fsynced). A real directory at `path` is an error, never replaced.
    pub fn replace_symlink(&self, path: &Path, target: &Path) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        if fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_mode & libc_type_mask() == libc_dir())
        {
            return Err(WriteError::new(
                "refusing to replace a real directory with a symlink at",
                path,
                io::Error::from(io::ErrorKind::AlreadyExists),
            ));
        }
        let tmp = temp_name(name);
        symlinkat(target, &dir, tmp.as_os_str())
            .map_err(io)
            .map_err(failed("cannot create a temporary symlink beside", path))?;
        rename_into_place(dir, &tmp, name, path, "cannot rename the new symlink over")
    }

    /// Creates a new symlink at `path` (nothing may be there). Not
    /// fsynced: for bulk writers that flush the file system once.
    pub fn create_symlink(&self, path: &Path, target: &Path) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        symlinkat(target, &dir, name)
            .map_err(io)
            .map_err(failed("cannot create symlink", path))
    }

    /// Opens the file at `path` for writing (appending when `append`),
    /// creating it with `mode` when missing; a final symlink is an error,
    /// never followed.
    pub fn open_for_write(&self, path: &Path, mode: u32, append: bool) -> Result<File, WriteError> {
        let relative = self.relative(path)?;
        let mut flags = OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY;
        if append {
            flags |= OFlag::O_APPEND;
        }
        self.open_relative(relative, flags, Mode::from_bits_truncate(mode))
            .map(File::from)
            .map_err(failed("cannot open for writing", path))
    }

    /// Sets the permission bits of the file or directory at `path` (a
    /// final symlink is an error, never followed).
    pub fn set_mode(&self, path: &Path, mode: u32) -> Result<(), WriteError> {
        let relative = self.relative(path)?;
        let object = self
            .open_relative(
                relative,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
                Mode::empty(),
            )
            .map_err(failed("cannot open", path))?;
        fchmod(&object, Mode::from_bits_truncate(mode))
            .map_err(io)
            .map_err(failed("cannot set the mode of", path))
    }

    /// Sets owner and group of `path` (a final symlink itself, not what it
    /// points at).
    pub fn set_owner(&self, path: &Path, owner: Ownership) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        fchownat(
            &dir,
            name,
            owner.uid.map(Uid::from_raw),
            owner.gid.map(Gid::from_raw),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io)
        .map_err(failed("cannot change the owner of", path))
    }

    /// Removes the file or link at `path` (missing is fine).
    pub fn remove_file(&self, path: &Path) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(failed("cannot remove", path)(io(e))),
        }
    }

    /// Removes the directory at `path` and everything in it (missing is
    /// fine; a link there is removed, not followed).
    pub fn remove_dir_all(&self, path: &Path) -> Result<(), WriteError> {
        let (dir, name) = self.parent_of(path)?;
        match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(failed("cannot stat", path)(io(e))),
            Ok(st) if st.st_mode & libc_type_mask() != libc_dir() => {
                return self.remove_file(path);
            }
            Ok(_) => {}
        }
        // std's remove_dir_all walks with openat and O_NOFOLLOW from the
        // path it is given; the path names the parent by its descriptor,
        // so nothing above the final component is resolved again.
        std::fs::remove_dir_all(by_descriptor(&dir, name))
            .map_err(failed("cannot remove directory", path))
    }

    /// Renames `from` to `to`, both beneath the root (replacing a file, or
    /// an empty directory, at `to`), then fsyncs the directory of `to`.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), WriteError> {
        File::from(self.rename_at(from, to)?)
            .sync_all()
            .map_err(failed("cannot fsync the directory of", to))
    }

    /// Renames `from` to `to` as [`Beneath::rename`] does, without the
    /// fsync: for bulk writers that flush the file system once.
    pub fn rename_unflushed(&self, from: &Path, to: &Path) -> Result<(), WriteError> {
        self.rename_at(from, to).map(drop)
    }

    /// Renames `from` to `to`; returns the directory of `to`.
    fn rename_at(&self, from: &Path, to: &Path) -> Result<OwnedFd, WriteError> {
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        renameat(&from_dir, from_name, &to_dir, to_name)
            .map_err(io)
            .map_err(failed("cannot rename into", to))?;
        Ok(to_dir)
    }
}

/// Links many files beneath a root, folder after folder, keeping the last
/// folder open between them (a folder is opened beneath the root once,
/// not once per file). For a tree nobody else writes to while it is made
/// (a release being built), which its writer flushes once.
#[derive(Debug)]
pub struct Linker<'a> {
    root: &'a Beneath,
    /// The folder (relative to the root) the last file went in.
    folder: Option<(PathBuf, OwnedFd)>,
}

impl Linker<'_> {
    /// As [`Beneath::link_file`]; the folder of `path` must exist.
    pub fn link_file(&mut self, source: &Path, path: &Path) -> Result<(), WriteError> {
        let Some((dir, name)) = self.folder_of(path)? else {
            return self.root.link_file(source, path);
        };
        match linkat(AT_FDCWD, source, dir, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            // Something is there: replaced as `link_file` does.
            Err(Errno::EEXIST) => self.root.link_file(source, path),
            Err(e) => Err(failed("cannot link", path)(io(e))),
        }
    }

    /// Links `source`, named relative to the open folder `from`, at `path`
    /// (whose folder must exist). Nothing there is replaced: that is an
    /// error, as any other.
    pub fn link_file_at(
        &mut self,
        from: &impl AsFd,
        source: &str,
        path: &Path,
    ) -> Result<(), WriteError> {
        let Some((dir, name)) = self.folder_of(path)? else {
            return Err(failed("cannot link", path)(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        };
        linkat(from, source, dir, name, AtFlags::empty())
            .map_err(io)
            .map_err(failed("cannot link", path))
    }

    /// The open folder `path` goes in and its name there; `None` for the
    /// root itself.
    fn folder_of<'p>(
        &mut self,
        path: &'p Path,
    ) -> Result<Option<(&OwnedFd, &'p OsStr)>, WriteError> {
        let relative = self.root.relative(path)?;
        let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
            return Ok(None);
        };
        if self.folder.as_ref().is_none_or(|(open, _)| open != parent) {
            let dir = self
                .root
                .open_dir(parent)
                .map_err(failed("cannot open the directory of", path))?;
            self.folder = Some((parent.to_path_buf(), dir));
        }
        let (_, dir) = self.folder.as_ref().expect("opened above");
        Ok(Some((dir, name)))
    }
}

/// Creates `name` in `dir` for writing, with `mode` (less the umask):
/// nothing may be there, and a link there is never followed. `path` names
/// it in errors.
fn create_new(dir: &OwnedFd, name: &OsStr, mode: u32, path: &Path) -> Result<File, WriteError> {
    openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map(File::from)
    .map_err(io)
    .map_err(failed("cannot create", path))
}

/// Renames `tmp` over `name` in `dir` (removing `tmp` when that fails),
/// then fsyncs `dir` so that the rename is durable.
fn rename_into_place(
    dir: OwnedFd,
    tmp: &OsStr,
    name: &OsStr,
    path: &Path,
    action: &'static str,
) -> Result<(), WriteError> {
    if let Err(e) = renameat(&dir, tmp, &dir, name) {
        let _ = unlinkat(&dir, tmp, UnlinkatFlags::NoRemoveDir);
        return Err(failed(action, path)(io(e)));
    }
    File::from(dir)
        .sync_all()
        .map_err(failed("cannot fsync the directory of", path))
}

/// `/proc/self/fd/N/name`: a path whose walk starts at an open descriptor.
fn by_descriptor(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).join(name)
}

fn libc_type_mask() -> u32 {
    nix::libc::S_IFMT
}

fn libc_dir() -> u32 {
    nix::libc::S_IFDIR
}

fn temp_name(name: &OsStr) -> std::ffi::OsString {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = std::ffi::OsString::from(format!(".rigger-tmp-{}-{n}-", std::process::id()));
    // Keep the whole name within NAME_MAX.
    let bytes = name.as_bytes();
    tmp.push(OsStr::from_bytes(&bytes[..bytes.len().min(200)]));
    tmp
}

/// A new file beside `name` in `dir`, never following a link.
fn create_temp(
    dir: &OwnedFd,
    name: &OsStr,
    mode: u32,
) -> io::Result<(std::ffi::OsString, OwnedFd)> {
    for _ in 0..RACE_RETRIES {
        let tmp = temp_name(name);
        match openat(
            dir,
            tmp.as_os_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode & 0o700),
        ) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(io(e)),
        }
    }
    Err(io(Errno::EEXIST))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A root with a hostile link farm: an absolute link out, a `..` chain
    /// (each link "inside" alone) and a link to the root's parent.
    fn hostile_root() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
        let outside = tempfile::tempdir().unwrap();
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("root");
        fs::create_dir_all(root.join("lib")).unwrap();
        symlink(outside.path(), root.join("abs")).unwrap();
        symlink("..", root.join("lib/e1")).unwrap();
        symlink("lib/e1/lib/e1/lib/e1/../../..", root.join("chain")).unwrap();
        // Where the absolute link lands when the root is `/`.
        fs::create_dir_all(root.join(outside.path().strip_prefix("/").unwrap())).unwrap();
        symlink("../..", root.join("up")).unwrap();
        (outside, top, root)
    }

    #[test]
    fn a_linker_links_from_an_open_folder_beneath_the_root_and_replaces_nothing() {
        let (outside, _top, root) = hostile_root();
        let objects = tempfile::tempdir().unwrap();
        fs::create_dir_all(objects.path().join("ab")).unwrap();
        fs::write(objects.path().join("ab/cd"), b"object").unwrap();
        let from = File::open(objects.path()).unwrap();
        let beneath = Beneath::open(&root).unwrap();
        let mut linker = beneath.linker();
        linker
            .link_file_at(&from, "ab/cd", &root.join("lib/a.jar"))
            .unwrap();
        assert_eq!(fs::read(root.join("lib/a.jar")).unwrap(), b"object");
        // Something there stays; a link on the way resolves inside the root.
        fs::write(root.join("lib/b.jar"), b"mine").unwrap();
        assert!(
            linker
                .link_file_at(&from, "ab/cd", &root.join("lib/b.jar"))
                .is_err()
        );
        assert_eq!(fs::read(root.join("lib/b.jar")).unwrap(), b"mine");
        linker
            .link_file_at(&from, "ab/cd", &root.join("abs/x.jar"))
            .unwrap();
        assert!(!outside.path().join("x.jar").exists());
        let inside = root.join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read(inside.join("x.jar")).unwrap(), b"object");
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_through_hostile_links_stay_beneath_the_root() {
        let (outside, top, root) = hostile_root();
        let b = Beneath::open(&root).unwrap();
        let own = Ownership::default();
        fs::write(top.path().join("source"), "x").unwrap();
        for via in ["abs", "chain", "up"] {
            let dir = root.join(via).join("planted");
            b.create_dir_all(&dir).unwrap();
            b.write_atomic(&dir.join("f"), b"x", 0o644, own).unwrap();
            b.replace_symlink(&dir.join("l"), Path::new("/etc"))
                .unwrap();
            b.copy_file(&top.path().join("source"), &dir.join("c"), 0o600)
                .unwrap_or_else(|e| panic!("{via}: {e}"));
        }
        assert!(
            entries(outside.path()).is_empty(),
            "{:?}",
            entries(outside.path())
        );
        assert_eq!(entries(top.path()), ["root", "source"]);
        // The absolute link resolved as if the root were `/`.
        let inside = root.join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read(inside.join("planted/f")).unwrap(), b"x");
        assert_eq!(fs::read(root.join("planted/c")).unwrap(), b"x");
    }

    #[test]
    fn a_linker_links_folder_after_folder_beneath_the_root() {
        let (outside, top, root) = hostile_root();
        let b = Beneath::open(&root).unwrap();
        let source = top.path().join("source");
        fs::write(&source, "object").unwrap();
        fs::write(top.path().join("other"), "other").unwrap();
        fs::write(root.join("lib/b.jar"), "old").unwrap();
        let mut linker = b.linker();
        for path in [
            "top.txt",
            "lib/a.jar",
            "lib/b.jar",
            "top2.txt",
            "abs/planted",
        ] {
            linker.link_file(&source, &root.join(path)).unwrap();
        }
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        for path in ["top.txt", "lib/a.jar", "lib/b.jar", "top2.txt"] {
            assert_eq!(ino(&root.join(path)), ino(&source), "{path}");
        }
        // The absolute link resolved as if the root were `/`.
        assert!(entries(outside.path()).is_empty());
        assert!(
            fs::metadata(
                root.join(outside.path().strip_prefix("/").unwrap())
                    .join("planted")
            )
            .is_ok()
        );
        let e = linker
            .link_file(&source, &root.join("missing/x"))
            .unwrap_err();
        assert_eq!(e.io_error().kind(), io::ErrorKind::NotFound);
        assert!(linker.link_file(&source, &top.path().join("out")).is_err());
        assert!(linker.link_file(&source, &root.join("lib/../x")).is_err());
        assert_eq!(entries(top.path()), ["other", "root", "source"]);
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let (_outside, top, root) = hostile_root();
        let b = Beneath::open(&root).unwrap();
        let err = b
            .write_atomic(&top.path().join("f"), b"x", 0o644, Ownership::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("outside the confinement root"),
            "{err}"
        );
        let err = b
            .write_atomic(Path::new("lib/../../f"), b"x", 0o644, Ownership::default())
            .unwrap_err();
        assert!(err.to_string().contains("not normal"), "{err}");
        assert_eq!(entries(top.path()), ["root"]);
    }

    #[test]
    fn final_links_are_replaced_or_refused_never_followed() {
        let (outside, _top, root) = hostile_root();
        let b = Beneath::open(&root).unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        symlink(&victim, root.join("link")).unwrap();
        assert!(b.set_mode(&root.join("link"), 0o777).is_err());
        b.set_owner(&root.join("link"), Ownership::default())
            .unwrap();
        b.write_atomic(&root.join("link"), b"new", 0o600, Ownership::default())
            .unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(fs::read(root.join("link")).unwrap(), b"new");
        // remove_dir_all of a link to a folder removes the link only.
        symlink(outside.path(), root.join("dirlink")).unwrap();
        b.remove_dir_all(&root.join("dirlink")).unwrap();
        assert!(victim.exists());
        assert!(fs::symlink_metadata(root.join("dirlink")).is_err());
    }

    #[test]
    fn write_atomic_replaces_content_and_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let b = Beneath::open(dir.path()).unwrap();
        let path = dir.path().join("f.txt");
        b.write_atomic(&path, b"one", 0o600, Ownership::default())
            .unwrap();
        b.write_atomic(&path, b"two", 0o640, Ownership::default())
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(entries(dir.path()), ["f.txt"]);
        b.set_mode(&path, 0o604).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o604
        );
    }

    #[test]
    fn directories_are_created_removed_and_renamed_beneath() {
        let dir = tempfile::tempdir().unwrap();
        let b = Beneath::open(dir.path()).unwrap();
        b.create_dir_all(Path::new("a/b/c")).unwrap();
        b.write_atomic(Path::new("a/b/c/f"), b"x", 0o644, Ownership::default())
            .unwrap();
        b.rename(Path::new("a/b"), Path::new("a/moved")).unwrap();
        assert!(dir.path().join("a/moved/c/f").is_file());
        b.remove_dir_all(&dir.path().join("a")).unwrap();
        b.remove_dir_all(&dir.path().join("a")).unwrap();
        assert!(entries(dir.path()).is_empty());
        let err = b.replace_symlink(dir.path(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("root itself"), "{err}");
    }
}
