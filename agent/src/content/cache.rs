//! Blobs on the node, by digest: `<state>/cache/sha256/ab/cdef…`, and
//! the read-only objects releases share by hard links.
//!
//! Every cached blob is an *object*: owned by the agent, mode 0444, its
//! modification time the Unix epoch. A write through any of its names
//! (a release's hard link included) moves the modification time, so a
//! changed object is seen by a `statx`, without hashing: the cache then
//! hashes it, and either makes a fresh object from verified bytes or drops
//! it to be fetched again. It never modifies an object in place (other
//! releases may share its inode). A file a release wants with execute bits
//! has its own object, `modes/0555/sha256/ab/cdef…`, made once from the blob.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rigger_common::blob_layout::BlobLayout;
use rigger_common::digest::Digest;
use rigger_common::manifest::Manifest;
use rigger_common::packed_manifest;

use super::new_blob::NewBlob;

/// The node's content cache.
#[derive(Debug, Clone)]
pub struct ContentCache {
    layout: BlobLayout,
    /// Manifests parsed so far, by digest (content-addressed: never stale).
    /// A run reads the same manifest for its content, its tree check, its
    /// shares and the cache's retention; parsing it was most of a
    /// converged run's time.
    manifests: Arc<Mutex<HashMap<Digest, Arc<Manifest>>>>,
}

/// The most manifests kept parsed; past it they are parsed again.
const MAX_PARSED_MANIFESTS: usize = 16;

impl ContentCache {
    /// A cache rooted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            layout: BlobLayout::new(root),
            manifests: Default::default(),
        }
    }

    /// Where a blob lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.layout.path_of(digest)
    }

    /// The directory for partial downloads.
    pub fn tmp_dir(&self) -> PathBuf {
        self.layout.tmp_dir()
    }

    /// Removes partial downloads an interrupted fetch left (under the run
    /// lock, when no fetch is under way).
    pub fn remove_temporaries(&self) {
        match self.layout.remove_temporaries() {
            Ok(0) => {}
            Ok(files) => {
                tracing::info!(files, "removed partial downloads an interrupted fetch left")
            }
            Err(e) => tracing::warn!(error = %e, "cannot clean the cache's partial downloads"),
        }
    }

    /// Whether the blob is cached as an intact object (a changed one is
    /// verified and made fresh, or dropped).
    pub fn has(&self, digest: &Digest) -> bool {
        matches!(self.object(digest, BLOB_MODE, &HashSet::new()), Ok(Some(_)))
    }

    /// The cache opened to name its objects relative to it
    /// ([`ContentCache::intact_object_in`]).
    pub fn open_root(&self) -> io::Result<std::fs::File> {
        crate::file_meta::open_folder(self.root())
    }

    /// The object of `digest` with `mode` (write bits cleared), relative
    /// to the open cache `root`, and its metadata, when it is there and
    /// intact. `None` otherwise: [`ContentCache::object_and_metadata`]
    /// then makes it, renews it or says it is not cached.
    pub fn intact_object_in(
        &self,
        root: &std::fs::File,
        digest: &Digest,
        mode: u32,
    ) -> Option<(String, nix::sys::stat::FileStat)> {
        let mode = shared_mode(mode);
        let relative = relative_object_path(digest, mode);
        let stat = crate::file_meta::stat_in(root, &relative).ok()?;
        (is_intact(&stat, mode) && !is_torn(digest, &stat)).then_some((relative, stat))
    }

    /// Where the object of `digest` with `mode` (write bits cleared) lives.
    pub fn object_path(&self, digest: &Digest, mode: u32) -> PathBuf {
        self.root()
            .join(relative_object_path(digest, shared_mode(mode)))
    }

    /// The intact object of `digest` with `mode` (write bits cleared),
    /// made from the blob when missing; `None` when the blob is not cached
    /// or was found changed (then dropped: fetch it again). Objects whose
    /// inode is in `suspect` are verified by hashing even when their
    /// metadata looks intact (a release file with that inode failed its
    /// check).
    pub fn object(
        &self,
        digest: &Digest,
        mode: u32,
        suspect: &HashSet<u64>,
    ) -> io::Result<Option<PathBuf>> {
        Ok(self
            .object_and_metadata(digest, mode, suspect)?
            .map(|(object, _)| object))
    }

    /// [`ContentCache::object`] with the object's metadata: what a hard
    /// link to it shows (its stat key, without another `stat`).
    pub fn object_and_metadata(
        &self,
        digest: &Digest,
        mode: u32,
        suspect: &HashSet<u64>,
    ) -> io::Result<Option<(PathBuf, std::fs::Metadata)>> {
        let blob = self.path_of(digest);
        let mut meta = match std::fs::symlink_metadata(&blob) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !is_intact(&meta, BLOB_MODE) || is_torn(digest, &meta) || suspect.contains(&meta.ino()) {
            if !self.renew(digest, &blob, &blob, BLOB_MODE)? {
                tracing::warn!(blob = %digest, "a cached blob was changed on disk: dropped, it is fetched again");
                std::fs::remove_file(&blob)?;
                return Ok(None);
            }
            tracing::info!(blob = %digest, "a cached blob's metadata was changed: made a fresh copy of its verified bytes");
            meta = std::fs::symlink_metadata(&blob)?;
        }
        let mode = shared_mode(mode);
        if mode == BLOB_MODE {
            return Ok(Some((blob, meta)));
        }
        let object = self.object_path(digest, mode);
        let intact = std::fs::symlink_metadata(&object)
            .ok()
            .filter(|m| is_intact(m, mode) && !is_torn(digest, m) && !suspect.contains(&m.ino()));
        if let Some(meta) = intact {
            return Ok(Some((object, meta)));
        }
        if !self.renew(digest, &blob, &object, mode)? {
            // The blob changed between its check and the copy.
            std::fs::remove_file(&blob)?;
            return Ok(None);
        }
        let meta = std::fs::symlink_metadata(&object)?;
        Ok(Some((object, meta)))
    }

    /// [`ContentCache::object_and_metadata`] of a blob whose manifest
    /// gives it `size`: an object of another size (cut short by a crash
    /// before a fetch's flush) is hashed, and dropped when wrong.
    pub fn sized_object(
        &self,
        digest: &Digest,
        mode: u32,
        size: u64,
    ) -> io::Result<Option<(PathBuf, std::fs::Metadata)>> {
        match self.object_and_metadata(digest, mode, &HashSet::new())? {
            Some((_, meta)) if meta.len() != size => Ok(self
                .object_and_metadata(digest, mode, &HashSet::from([meta.ino()]))?
                .filter(|(_, meta)| meta.len() == size)),
            found => Ok(found),
        }
    }

    /// Writes a fresh object at `to` from `from`'s bytes when they hash to
    /// `digest` (false, and nothing written, when they do not).
    fn renew(&self, digest: &Digest, from: &Path, to: &Path, mode: u32) -> io::Result<bool> {
        use std::io::{Seek, SeekFrom};
        let fresh = NewBlob::create(to, &self.tmp_dir())?;
        let mut file = fresh.file();
        std::io::copy(&mut std::fs::File::open(from)?, &mut file)?;
        // What was written is what is checked.
        file.seek(SeekFrom::Start(0))?;
        if Digest::of_reader(file)? != *digest {
            return Ok(false);
        }
        seal(file, mode)?;
        fresh.persist(to)?;
        Ok(true)
    }

    /// A cached manifest, if present and valid: from its packed copy
    /// (`packed/sha256/ab/cdef…`, made the first time the JSON is read)
    /// when there is one, else from the JSON.
    pub fn manifest(&self, digest: &Digest) -> Result<Option<Arc<Manifest>>, String> {
        if let Some(parsed) = self.manifests.lock().expect("manifests").get(digest) {
            return Ok(Some(parsed.clone()));
        }
        let manifest = match self.packed_manifest(digest) {
            Some(manifest) => Arc::new(manifest),
            None => match std::fs::read(self.path_of(digest)) {
                Ok(bytes) if Digest::of(&bytes) != *digest => {
                    // Changed since its fetch verified it (a crash before
                    // the fetch's flush, or a hand on the node): the next
                    // fetch brings it again.
                    let _ = std::fs::remove_file(self.path_of(digest));
                    return Err(format!(
                        "cached manifest {digest} was damaged on disk (its bytes no longer hash to its name): dropped, the next run fetches it again"
                    ));
                }
                Ok(bytes) => {
                    let manifest = Manifest::from_json(&bytes)
                        .map_err(|e| format!("cached manifest {digest}: {e}"))?;
                    self.pack_manifest(digest, &manifest);
                    Arc::new(manifest)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("cannot read cached manifest {digest}: {e}")),
            },
        };
        let mut parsed = self.manifests.lock().expect("manifests");
        if parsed.len() >= MAX_PARSED_MANIFESTS {
            parsed.clear();
        }
        parsed.insert(*digest, manifest.clone());
        Ok(Some(manifest))
    }

    /// Where the packed copies of manifests live.
    fn packed(&self) -> BlobLayout {
        BlobLayout::new(self.root().join("packed"))
    }

    /// The packed copy of manifest `digest`, when there is one that is
    /// intact (an object of the agent's, never written since) and was
    /// made from that manifest while its JSON is still cached.
    fn packed_manifest(&self, digest: &Digest) -> Option<Manifest> {
        let path = self.packed().path_of(digest);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !is_intact(&meta, BLOB_MODE) || !self.path_of(digest).is_file() {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        match packed_manifest::unpack(&bytes, digest) {
            Ok(manifest) => Some(manifest),
            Err(e) => {
                tracing::warn!(manifest = %digest, error = %e, "a packed manifest copy is refused: reading the manifest itself");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps a packed copy of `manifest` (already validated) for the next
    /// runs; a failure only costs them the JSON.
    fn pack_manifest(&self, digest: &Digest, manifest: &Manifest) {
        let bytes = packed_manifest::pack(manifest, digest);
        let path = self.packed().path_of(digest);
        let written = (|| {
            let fresh = NewBlob::create(&path, &self.tmp_dir())?;
            std::io::Write::write_all(&mut fresh.file(), &bytes)?;
            seal(fresh.file(), BLOB_MODE)?;
            fresh.persist(&path)
        })();
        if let Err(e) = written {
            tracing::debug!(manifest = %digest, error = %e, "cannot keep a packed copy of the manifest");
        }
    }

    /// Digests among `wanted` that are not cached, in their order. A
    /// release's few thousand are looked at on two threads.
    pub fn missing(&self, wanted: &[Digest]) -> Vec<Digest> {
        self.missing_where(wanted, |d| (*d, None))
    }

    /// Digests among `wanted`, each with the size its manifest gives it,
    /// that are not cached whole, in their order. An object of another
    /// size (cut short by a crash before a fetch's flush) is hashed, and
    /// dropped when wrong: it counts as missing.
    pub fn missing_sized(&self, wanted: &[(Digest, u64)]) -> Vec<Digest> {
        self.missing_where(wanted, |&(d, size)| (d, Some(size)))
    }

    fn missing_where<T: Sync>(
        &self,
        wanted: &[T],
        blob: impl Fn(&T) -> (Digest, Option<u64>) + Sync,
    ) -> Vec<Digest> {
        // Each stated relative to the open cache: a path of three parts
        // instead of the cache's whole path, thousands of times. A blob
        // not found intact that way gets the full look of `has`.
        let root = self.open_root().ok();
        let whole = |digest: &Digest, size: Option<u64>| {
            use crate::file_meta::FileMeta;
            let intact = root
                .as_ref()
                .and_then(|root| self.intact_object_in(root, digest, BLOB_MODE))
                .is_some_and(|(_, stat)| size.is_none_or(|size| stat.byte_len() == size));
            intact
                || match size {
                    Some(size) => matches!(self.sized_object(digest, BLOB_MODE, size), Ok(Some(_))),
                    None => self.has(digest),
                }
        };
        let look = |part: &[T]| -> Vec<Digest> {
            part.iter()
                .map(&blob)
                .filter(|(digest, size)| !whole(digest, *size))
                .map(|(digest, _)| digest)
                .collect()
        };
        crate::halves::in_halves(wanted, 512, look, |mut missing, rest| {
            missing.extend(rest);
            missing
        })
    }

    /// Deletes every cached blob (and its objects) not in `keep`; returns
    /// (blobs, bytes) removed. Releases keep their own links to them.
    pub fn retain(&self, keep: &HashSet<Digest>) -> io::Result<(u64, u64)> {
        let mut removed = (0, 0);
        if let Ok(modes) = std::fs::read_dir(self.root().join("modes")) {
            for mode in modes.flatten() {
                for object in BlobLayout::new(mode.path()).files()? {
                    if !keep.contains(&object.digest) {
                        std::fs::remove_file(&object.path)?;
                    }
                }
            }
        }
        for copy in self.packed().files()? {
            if !keep.contains(&copy.digest) {
                std::fs::remove_file(&copy.path)?;
            }
        }
        for blob in self.layout.files()? {
            if !keep.contains(&blob.digest) {
                let size = std::fs::metadata(&blob.path).map_or(0, |m| m.len());
                std::fs::remove_file(&blob.path)?;
                removed.0 += 1;
                removed.1 += size;
            }
        }
        Ok(removed)
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }
}

/// The mode of a blob as cached (and of the release files that share it
/// unless they are executable).
pub const BLOB_MODE: u32 = 0o444;

/// Where the object of `digest` with `mode` (write bits cleared) lies in
/// the cache: the blob itself (`sha256/ab/cdef…`), or its copy with
/// another mode (`modes/0555/sha256/ab/cdef…`).
fn relative_object_path(digest: &Digest, mode: u32) -> String {
    match mode {
        BLOB_MODE => BlobLayout::relative_path_of(digest),
        _ => format!("modes/{mode:04o}/{}", BlobLayout::relative_path_of(digest)),
    }
}

/// The mode an object shared with a release has for a file the pack
/// gives `mode`: read and execute bits only.
pub fn shared_mode(mode: u32) -> u32 {
    mode & 0o555
}

/// Whether an object's metadata is what the cache made: a regular file
/// of the agent's, with `mode`, never written since (epoch mtime).
pub fn is_intact(meta: &impl crate::file_meta::FileMeta, mode: u32) -> bool {
    // Asked for every shared file of a release on each run: the agent's
    // ids once, not two system calls a file.
    static AGENT: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    let (uid, gid) = *AGENT.get_or_init(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    meta.is_regular()
        && meta.permission_bits() == mode
        && meta.mtime_parts() == (0, 0)
        && meta.owner_ids() == (uid, gid)
}

/// Whether an object is empty though its blob is not: what a power loss
/// between a fetch and its flush leaves (the name, mode and time were
/// journaled, the bytes never written). Such an object is hashed, found
/// wrong and dropped, and the blob fetched again.
pub fn is_torn(digest: &Digest, meta: &impl crate::file_meta::FileMeta) -> bool {
    meta.byte_len() == 0 && *digest != Digest::of(b"")
}

/// Gives a new object (not yet renamed into place) its mode and the
/// epoch as modification time.
pub fn seal(file: &std::fs::File, mode: u32) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.set_modified(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rigger_common::manifest::{Entry, EntryKind};

    /// A cache holding one manifest (as the fetch leaves it: an object).
    fn cache_with_manifest(dir: &Path) -> (ContentCache, Digest, Manifest) {
        let cache = ContentCache::new(dir.to_path_buf());
        let manifest = Manifest {
            entries: vec![Entry {
                path: "bin/wso2server.sh".into(),
                mode: 0o755,
                kind: EntryKind::File {
                    size: 3,
                    digest: Digest::of(b"sh\n"),
                },
            }],
        };
        let json = manifest.to_json();
        let digest = Digest::of(&json);
        let path = cache.path_of(&digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &json).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        seal(&file, BLOB_MODE).unwrap();
        (cache, digest, manifest)
    }

    #[test]
    fn a_manifest_read_once_is_read_from_its_packed_copy_after() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, digest, manifest) = cache_with_manifest(dir.path());
        assert_eq!(*cache.manifest(&digest).unwrap().unwrap(), manifest);
        let packed = cache.packed().path_of(&digest);
        assert!(is_intact(&std::fs::metadata(&packed).unwrap(), BLOB_MODE));
        // A new process (no parsed manifests): the JSON is not read.
        let again = ContentCache::new(dir.path().to_path_buf());
        assert_eq!(again.packed_manifest(&digest), Some(manifest.clone()));
        assert_eq!(*again.manifest(&digest).unwrap().unwrap(), manifest);
    }

    #[test]
    fn a_changed_or_misplaced_packed_copy_is_refused_for_the_json() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, digest, manifest) = cache_with_manifest(dir.path());
        cache.manifest(&digest).unwrap();
        let packed = cache.packed().path_of(&digest);
        // Written since it was made: its metadata shows it.
        std::fs::set_permissions(&packed, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&packed, b"not a manifest").unwrap();
        let fresh = ContentCache::new(dir.path().to_path_buf());
        assert_eq!(fresh.packed_manifest(&digest), None);
        assert_eq!(*fresh.manifest(&digest).unwrap().unwrap(), manifest);
        // Another manifest's copy under this name, sealed like an object.
        let other = Manifest::default();
        let bytes = packed_manifest::pack(&other, &other.digest());
        std::fs::remove_file(&packed).unwrap();
        std::fs::write(&packed, bytes).unwrap();
        seal(&std::fs::File::open(&packed).unwrap(), BLOB_MODE).unwrap();
        let fresh = ContentCache::new(dir.path().to_path_buf());
        assert_eq!(fresh.packed_manifest(&digest), None);
        assert!(!packed.exists(), "the refused copy is removed");
        assert_eq!(*fresh.manifest(&digest).unwrap().unwrap(), manifest);
    }

    #[test]
    fn a_packed_copy_goes_with_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, digest, _) = cache_with_manifest(dir.path());
        cache.manifest(&digest).unwrap();
        let packed = cache.packed().path_of(&digest);
        cache.retain(&HashSet::from([digest])).unwrap();
        assert!(packed.exists());
        cache.retain(&HashSet::new()).unwrap();
        assert!(!packed.exists() && !cache.path_of(&digest).exists());
        let fresh = ContentCache::new(dir.path().to_path_buf());
        assert_eq!(fresh.manifest(&digest).unwrap(), None);
    }

    #[test]
    fn an_empty_object_of_a_blob_that_is_not_is_dropped_and_a_damaged_manifest_too() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, manifest_digest, _) = cache_with_manifest(dir.path());
        // What a power loss before the fetch's flush leaves: the name and
        // the seal, no bytes.
        let sealed_empty = |digest: &Digest| {
            let path = cache.path_of(digest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
            seal(&std::fs::File::open(&path).unwrap(), BLOB_MODE).unwrap();
            path
        };
        let torn = Digest::of(b"a jar");
        let empty = Digest::of(b"");
        let torn_path = sealed_empty(&torn);
        sealed_empty(&empty);
        assert_eq!(cache.missing(&[torn, empty]), [torn]);
        assert!(!torn_path.exists(), "the empty object stayed");
        assert!(cache.has(&empty), "the empty blob is whole");

        // Cut short but not empty: only its size, which the manifest
        // gives, tells; hashed and dropped.
        let whole = Digest::of(b"a whole jar");
        let short = Digest::of(b"a longer jar");
        for (digest, bytes) in [(whole, &b"a whole jar"[..]), (short, &b"a longer"[..])] {
            let path = cache.path_of(&digest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            seal(&std::fs::File::open(&path).unwrap(), BLOB_MODE).unwrap();
        }
        assert_eq!(cache.missing(&[whole, short]), [] as [Digest; 0]);
        assert_eq!(cache.missing_sized(&[(whole, 11), (short, 12)]), [short]);
        assert!(
            !cache.path_of(&short).exists(),
            "the cut-short object stayed"
        );
        assert!(cache.has(&whole));

        // The manifest's bytes changed after its fetch: dropped, refetched.
        let path = cache.path_of(&manifest_digest);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&path, b"{\"entries\": [").unwrap();
        seal(&std::fs::File::open(&path).unwrap(), BLOB_MODE).unwrap();
        let e = cache.manifest(&manifest_digest).unwrap_err();
        assert!(
            e.contains("damaged") && e.contains("fetches it again"),
            "{e}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn missing_names_exactly_the_blobs_not_cached_in_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::new(dir.path().to_path_buf());
        let wanted: Vec<Digest> = (0..1500u32).map(|i| Digest::of(&i.to_be_bytes())).collect();
        // Every third one cached, as a fetch leaves it.
        for (i, digest) in wanted.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            let path = cache.path_of(digest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, (i as u32).to_be_bytes()).unwrap();
            seal(&std::fs::File::open(&path).unwrap(), BLOB_MODE).unwrap();
        }
        let expected: Vec<Digest> = wanted
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, d)| *d)
            .collect();
        assert_eq!(cache.missing(&wanted), expected);
        assert_eq!(cache.missing(&wanted[..9]), expected[..6]);
        // Not intact, so looked at in full: a blob whose mode was changed
        // is made fresh and is there; one whose bytes were changed too is
        // dropped and missing.
        use std::os::unix::fs::PermissionsExt;
        let mode_changed = cache.path_of(&wanted[0]);
        std::fs::set_permissions(&mode_changed, std::fs::Permissions::from_mode(0o644)).unwrap();
        let bytes_changed = cache.path_of(&wanted[3]);
        std::fs::set_permissions(&bytes_changed, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&bytes_changed, b"changed").unwrap();
        let mut expected = expected;
        expected.insert(2, wanted[3]);
        assert_eq!(cache.missing(&wanted), expected);
        assert!(is_intact(
            &std::fs::symlink_metadata(&mode_changed).unwrap(),
            BLOB_MODE
        ));
        assert!(!bytes_changed.exists());
    }
}
