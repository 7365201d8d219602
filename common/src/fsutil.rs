//! Crash-safe file system writes: every file Rigger writes goes through
//! [`write_atomic`], every link through [`replace_symlink`].
//!
//! Invariant: a crash at any point leaves either the old file or the new one,
//! never a truncated mix.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// Owner and group to give a written file, as numeric ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    /// User id, or `None` to keep the writer's.
    pub uid: Option<u32>,
    /// Group id, or `None` to keep the writer's.
    pub gid: Option<u32>,
}

/// A failed write, naming the path it was for.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct WriteError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl WriteError {
    /// A failure of `action` on `path`.
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

/// Wraps an I/O error as a [`WriteError`] of `action` on `path`.
pub(crate) fn ctx<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::new(action, path, source)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory gets the content, mode and owner, is fsynced and renamed over
/// `path`, then the directory is fsynced.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Ownership,
) -> Result<(), WriteError> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".rigger-tmp-")
        .tempfile_in(dir)
        .map_err(ctx("cannot create a temporary file beside", path))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(ctx("cannot set the mode of the new", path))?;
    if owner != Ownership::default() {
        std::os::unix::fs::fchown(tmp.as_file(), owner.uid, owner.gid)
            .map_err(ctx("cannot set the owner of the new", path))?;
    }
    tmp.write_all(bytes)
        .map_err(ctx("cannot write the new content of", path))?;
    tmp.as_file()
        .sync_all()
        .map_err(ctx("cannot fsync the new content of", path))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .map_err(ctx("cannot rename the new file over", path))?;
    sync_dir(dir).map_err(ctx("cannot fsync the directory of", path))
}

/// Points the symlink at `path` to `target` atomically (a new link under a
/// temporary name, renamed over the old one). A real directory at `path` is
/// an error, never replaced.
pub fn replace_symlink(path: &Path, target: &Path) -> Result<(), WriteError> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_dir() {
            return Err(WriteError {
                action: "refusing to replace a real directory with a symlink at",
                path: path.to_path_buf(),
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
    }
    let dir = parent_dir(path);
    let tmp = temp_sibling(path);
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).map_err(ctx("cannot create a temporary symlink beside", path))?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(ctx("cannot rename the new symlink over", path)(e));
    }
    sync_dir(dir).map_err(ctx("cannot fsync the directory of", path))
}

/// fsyncs a directory so that a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes the whole file system holding `path` (one `syncfs` instead of an
/// fsync per file, for bulk writes such as a release of 3000 files).
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    nix::unistd::syncfs(&dir).map_err(io::Error::from)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".rigger-tmp-{}-{name}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_atomic(&path, b"one", 0o600, Ownership::default()).unwrap();
        write_atomic(&path, b"two", 0o640, Ownership::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".rigger-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn write_atomic_names_the_path_on_error() {
        let err = write_atomic(
            Path::new("/nonexistent-dir-for-rigger/x"),
            b"x",
            0o644,
            Ownership::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir-for-rigger/x"),
            "{err}"
        );
    }

    #[test]
    fn replace_symlink_switches_target() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        replace_symlink(&link, Path::new("a")).unwrap();
        replace_symlink(&link, Path::new("b")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("b"));
    }

    #[test]
    fn replace_symlink_refuses_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        assert!(replace_symlink(&real, Path::new("x")).is_err());
        assert!(real.is_dir());
    }
}
