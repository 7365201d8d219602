//! Backup and restore of a master's data directory, for disaster
//! recovery: the CA (and a rotation's next and previous CAs), the catalog
//! signing key, the restart-key HMAC key,
//! the epoch, a consistent snapshot of the database (`VACUUM INTO`, safe
//! while the master runs) and, unless left out, the content store.
//!
//! The backup is a tar archive encrypted with ChaCha20-Poly1305 in the
//! STREAM construction (64 KiB chunks, each authenticated, the last one
//! marked) under a 256-bit key kept in a file the operator stores
//! elsewhere (`masterctl backup key`): a stolen backup without the key
//! reveals nothing, and a changed, truncated or reordered one is refused.
//!
//! A restore goes into an empty data directory with the master stopped,
//! and starts a new epoch ([`crate::epoch`]): the restored master may hold
//! fewer catalog versions than its nodes have seen, and continues above
//! what each says it applied.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};
use rigger_common::fsutil::{Ownership, write_atomic};

/// The first bytes of a backup (also authenticated with every chunk).
const MAGIC: &[u8; 16] = b"RIGGER-BACKUP-1\n";
/// Plaintext bytes per chunk.
const CHUNK: usize = 64 << 10;
/// ChaCha20-Poly1305's tag.
const TAG: usize = 16;
/// The nonce prefix STREAM-BE32 leaves of a 96-bit nonce.
const NONCE_PREFIX: usize = 7;

/// The files of a data directory a backup must hold (besides
/// `master.db` and `blobs/`).
const FILES: &[&str] = &["ca.crt", "ca.key", "catalog-signing.key", "restart-key"];

/// Those it holds when they are there: the epoch (older data directories
/// have none) and the CAs of a rotation in progress.
const OPTIONAL_FILES: &[&str] = &[
    crate::epoch::FILE,
    "ca-next.crt",
    "ca-next.key",
    "ca-previous.crt",
    "ca-previous.key",
];

/// A backup or restore that failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not 64 hex digits.
    #[error("{}: not a backup key (64 hex digits, from `masterctl backup key`)", .0.display())]
    BadKey(PathBuf),
    /// The file is not a Rigger backup.
    #[error("{}: not a Rigger backup", .0.display())]
    NotABackup(PathBuf),
    /// Authentication failed: another key, or a changed or cut file.
    #[error("{}: the backup does not decrypt with this key (another key, or the file was changed or cut short)", .0.display())]
    Authentication(PathBuf),
    /// The target of a restore is not empty.
    #[error("{}: a restore goes into an empty data directory (stop the master; move the old directory aside)", .0.display())]
    NotEmpty(PathBuf),
    /// The database snapshot failed.
    #[error("cannot snapshot the database {}: {message}", path.display())]
    Snapshot {
        /// The database.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A file a backup must hold is missing from it or from the data
    /// directory.
    #[error("{0} is missing")]
    Missing(String),
    /// The data directory has keys but no SQLite database: its master
    /// keeps its metadata elsewhere.
    #[error(
        "{0} has no master.db: a master with [store] kind = \"postgres\" keeps its metadata in PostgreSQL, which the database's own backups (RDS snapshots, pg_dump) cover; this backup covers a SQLite master"
    )]
    MetadataElsewhere(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files in it.
    pub files: u64,
    /// Their bytes, before encryption.
    pub bytes: u64,
    /// Whether the content store (`blobs/`) is in it: asked for, and in
    /// the data directory (a master on S3 keeps its content there).
    pub blobs: bool,
}

/// Writes a new random key to `path` (0600); an existing file is kept.
pub fn generate_key(path: &Path) -> Result<(), BackupError> {
    if path.exists() {
        return Err(BackupError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a key is there already: a backup made with it would be lost with it",
            ),
        });
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    write_atomic(
        path,
        format!("{key}\n").as_bytes(),
        0o600,
        Ownership::default(),
    )
    .map_err(|e| BackupError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

fn read_key(path: &Path) -> Result<ChaCha20Poly1305, BackupError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bytes = hex::decode(text.trim()).map_err(|_| BackupError::BadKey(path.to_path_buf()))?;
    ChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| BackupError::BadKey(path.to_path_buf()))
}

/// Backs up `data_dir` into `out` (written whole or not at all, 0600),
/// encrypted with the key in `key_file`; `with_blobs: false` leaves the
/// content store out (packs can be imported again).
pub async fn create(
    data_dir: &Path,
    out: &Path,
    key_file: &Path,
    with_blobs: bool,
) -> Result<Summary, BackupError> {
    let cipher = read_key(key_file)?;
    // Written beside its destination, renamed into place once whole.
    let beside = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = tempfile::tempdir_in(beside).map_err(io(out))?;
    let db = data_dir.join("master.db");
    if !db.exists() {
        return Err(if data_dir.join("ca.key").exists() {
            BackupError::MetadataElsewhere(data_dir.display().to_string())
        } else {
            BackupError::Missing(db.display().to_string())
        });
    }
    let snapshot = scratch.path().join("master.db");
    snapshot_database(&db, &snapshot).await?;
    let partial = scratch.path().join("backup.partial");
    let data_dir = data_dir.to_path_buf();
    let summary = tokio::task::spawn_blocking({
        let partial = partial.clone();
        move || write_archive(&data_dir, &snapshot, &partial, cipher, with_blobs)
    })
    .await
    .map_err(|e| BackupError::Io {
        path: partial.clone(),
        source: std::io::Error::other(e),
    })??;
    std::fs::rename(&partial, out).map_err(io(out))?;
    Ok(summary)
}

/// A consistent copy of the live database, taken by SQLite itself.
async fn snapshot_database(db: &Path, snapshot: &Path) -> Result<(), BackupError> {
    use sqlx::ConnectOptions;
    let fail = |e: sqlx::Error| BackupError::Snapshot {
        path: db.to_path_buf(),
        message: e.to_string(),
    };
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .map_err(fail)?;
    sqlx::query("VACUUM INTO ?")
        .bind(snapshot.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    Ok(())
}

fn write_archive(
    data_dir: &Path,
    snapshot: &Path,
    partial: &Path,
    cipher: ChaCha20Poly1305,
    with_blobs: bool,
) -> Result<Summary, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(io(partial))?;
    let mut sealed =
        SealingWriter::new(std::io::BufWriter::new(file), cipher).map_err(io(partial))?;
    let mut summary = Summary::default();
    {
        let mut tar = tar::Builder::new(&mut sealed);
        tar.follow_symlinks(false);
        let mut add = |path: &Path, name: &str, summary: &mut Summary| -> Result<(), BackupError> {
            tar.append_path_with_name(path, name).map_err(io(path))?;
            summary.files += 1;
            summary.bytes += std::fs::metadata(path).map_err(io(path))?.len();
            Ok(())
        };
        for name in FILES {
            let path = data_dir.join(name);
            if !path.exists() {
                return Err(BackupError::Missing(path.display().to_string()));
            }
            add(&path, name, &mut summary)?;
        }
        for name in OPTIONAL_FILES {
            let path = data_dir.join(name);
            if path.exists() {
                add(&path, name, &mut summary)?;
            }
        }
        add(snapshot, "master.db", &mut summary)?;
        let blobs = data_dir.join("blobs");
        if with_blobs && blobs.is_dir() {
            summary.blobs = true;
            for entry in walkdir::WalkDir::new(&blobs).sort_by_file_name() {
                let entry = entry.map_err(|e| BackupError::Io {
                    path: blobs.clone(),
                    source: std::io::Error::other(e),
                })?;
                let relative = entry.path().strip_prefix(data_dir).unwrap_or(entry.path());
                let name = relative.to_string_lossy().into_owned();
                // Half-written blobs are the store's own temporaries.
                if entry.file_type().is_file() && !name.contains("/tmp/") && !name.contains(".tmp")
                {
                    add(entry.path(), &name, &mut summary)?;
                }
            }
        }
        tar.finish().map_err(io(partial))?;
    }
    let mut inner = sealed.finish().map_err(io(partial))?;
    inner.flush().map_err(io(partial))?;
    inner.get_ref().sync_all().map_err(io(partial))?;
    Ok(summary)
}

/// Restores `backup` (encrypted with the key in `key_file`) into
/// `data_dir`, which must be empty or absent; the restored master starts
/// a new epoch.
pub fn restore(backup: &Path, key_file: &Path, data_dir: &Path) -> Result<Summary, BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let cipher = read_key(key_file)?;
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir).map_err(io(data_dir))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
        }
    }
    let file = std::fs::File::open(backup).map_err(io(backup))?;
    let opened = OpeningReader::new(std::io::BufReader::new(file), cipher, backup)?;
    // Unpacked beside, moved in once whole: a failed restore leaves the
    // data directory empty.
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = tempfile::tempdir_in(parent).map_err(io(parent))?;
    let mut archive = tar::Archive::new(opened);
    let mut summary = Summary::default();
    let entries = archive.entries().map_err(|e| unsealing(e, backup))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| unsealing(e, backup))?;
        summary.files += 1;
        summary.bytes += entry.size();
        entry
            .unpack_in(staging.path())
            .map_err(|e| unsealing(e, backup))?;
    }
    // The whole stream must have been read and authenticated, the last
    // chunk included.
    let mut rest = Vec::new();
    archive
        .into_inner()
        .read_to_end(&mut rest)
        .map_err(|e| unsealing(e, backup))?;
    for name in ["ca.crt", "ca.key", "catalog-signing.key", "master.db"] {
        if !staging.path().join(name).exists() {
            return Err(BackupError::Missing(format!(
                "{name} in {}",
                backup.display()
            )));
        }
    }
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(io(staging.path()))?;
    if data_dir.exists() {
        std::fs::remove_dir(data_dir).map_err(io(data_dir))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, data_dir).map_err(io(data_dir))?;
    crate::epoch::renew(data_dir).map_err(io(data_dir))?;
    Ok(summary)
}

fn unsealing(e: std::io::Error, backup: &Path) -> BackupError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        BackupError::Authentication(backup.to_path_buf())
    } else {
        BackupError::Io {
            path: backup.to_path_buf(),
            source: e,
        }
    }
}

/// Encrypts what is written to it in authenticated chunks.
struct SealingWriter<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<ChaCha20Poly1305>>,
    buffer: Vec<u8>,
}

impl<W: Write> SealingWriter<W> {
    fn new(mut inner: W, cipher: ChaCha20Poly1305) -> std::io::Result<Self> {
        let prefix: [u8; NONCE_PREFIX] = rand::random();
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        Ok(Self {
            inner,
            encryptor: Some(EncryptorBE32::from_aead(cipher, (&prefix).into())),
            buffer: Vec::with_capacity(CHUNK),
        })
    }

    fn seal_full_chunks(&mut self) -> std::io::Result<()> {
        // A full chunk is sealed only once more follows: the last one is
        // sealed as last by `finish`.
        while self.buffer.len() > CHUNK {
            let rest = self.buffer.split_off(CHUNK);
            let chunk = std::mem::replace(&mut self.buffer, rest);
            let encryptor = self.encryptor.as_mut().expect("not finished");
            let sealed = encryptor
                .encrypt_next(Payload {
                    msg: &chunk,
                    aad: MAGIC,
                })
                .map_err(|_| std::io::Error::other("encryption failed"))?;
            self.inner.write_all(&sealed)?;
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<W> {
        let encryptor = self.encryptor.take().expect("finished once");
        let sealed = encryptor
            .encrypt_last(Payload {
                msg: &self.buffer,
                aad: MAGIC,
            })
            .map_err(|_| std::io::Error::other("encryption failed"))?;
        self.inner.write_all(&sealed)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        self.seal_full_chunks()?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decrypts and authenticates chunk by chunk; a chunk that does not
/// authenticate, or a stream cut before its last chunk, is an
/// `InvalidData` error.
struct OpeningReader<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<ChaCha20Poly1305>>,
    /// The next sealed chunk, read ahead to know whether it is the last.
    ahead: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
}

fn read_up_to<R: Read>(reader: &mut R, want: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    reader.take(want as u64).read_to_end(&mut out)?;
    Ok(out)
}

impl<R: Read> OpeningReader<R> {
    fn new(mut inner: R, cipher: ChaCha20Poly1305, path: &Path) -> Result<Self, BackupError> {
        let mut head = [0u8; 16 + NONCE_PREFIX];
        inner
            .read_exact(&mut head)
            .map_err(|_| BackupError::NotABackup(path.to_path_buf()))?;
        if &head[..16] != MAGIC {
            return Err(BackupError::NotABackup(path.to_path_buf()));
        }
        let prefix: [u8; NONCE_PREFIX] = head[16..].try_into().expect("7 bytes");
        let ahead = read_up_to(&mut inner, CHUNK + TAG).map_err(io(path))?;
        Ok(Self {
            inner,
            decryptor: Some(DecryptorBE32::from_aead(cipher, (&prefix).into())),
            ahead,
            plain: Vec::new(),
            at: 0,
        })
    }

    fn open_next(&mut self) -> std::io::Result<()> {
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "backup chunk does not authenticate",
            )
        };
        if self.decryptor.is_none() {
            self.plain.clear();
            self.at = 0;
            return Ok(());
        }
        let current = std::mem::take(&mut self.ahead);
        let next = read_up_to(&mut self.inner, CHUNK + TAG)?;
        let payload = Payload {
            msg: &current,
            aad: MAGIC,
        };
        self.plain = if next.is_empty() {
            let decryptor = self.decryptor.take().expect("checked");
            decryptor.decrypt_last(payload).map_err(|_| bad())?
        } else {
            let decryptor = self.decryptor.as_mut().expect("checked");
            decryptor.decrypt_next(payload).map_err(|_| bad())?
        };
        self.ahead = next;
        self.at = 0;
        Ok(())
    }
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.plain.len() {
            if self.decryptor.is_none() {
                return Ok(0);
            }
            self.open_next()?;
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(data: &[u8], key: &[u8; 32]) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new_from_slice(key).unwrap();
        let mut writer = SealingWriter::new(Vec::new(), cipher).unwrap();
        writer.write_all(data).unwrap();
        writer.finish().unwrap()
    }

    fn opened(bytes: &[u8], key: &[u8; 32]) -> std::io::Result<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new_from_slice(key).unwrap();
        let mut reader = OpeningReader::new(bytes, cipher, Path::new("b"))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn what_is_sealed_opens_with_the_key_only_and_whole_only() {
        let key = [7u8; 32];
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let bytes = sealed(&data, &key);
            assert_eq!(opened(&bytes, &key).unwrap(), data, "size {size}");
            assert!(
                opened(&bytes, &[8u8; 32]).is_err(),
                "another key, size {size}"
            );
            // Cut short by one whole chunk, or by a byte.
            if bytes.len() > MAGIC.len() + NONCE_PREFIX + CHUNK + TAG {
                let cut = &bytes[..MAGIC.len() + NONCE_PREFIX + CHUNK + TAG];
                assert!(opened(cut, &key).is_err(), "cut at a chunk, size {size}");
            }
            assert!(
                opened(&bytes[..bytes.len() - 1], &key).is_err(),
                "cut, size {size}"
            );
            // A flipped bit.
            let mut flipped = bytes.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(opened(&flipped, &key).is_err(), "flipped, size {size}");
        }
    }

    #[test]
    fn a_key_is_made_once_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("backup.key");
        generate_key(&key).unwrap();
        assert!(generate_key(&key).is_err(), "an existing key is kept");
        read_key(&key).unwrap();
        std::fs::write(&key, "not hex").unwrap();
        assert!(matches!(read_key(&key), Err(BackupError::BadKey(_))));
    }
}
