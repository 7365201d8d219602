//! The run lock: one run (or supervision pass) changes the node at a time,
//! whether it is the daemon's or a `--once` run beside it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// How often a waiting run tries again.
const RETRY: Duration = Duration::from_millis(200);

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run held it for the whole wait.
    #[error("another run still holds {} after {}s", path.display(), waited.as_secs())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// How long this run waited.
        waited: Duration,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A held run lock; dropping it lets the next run in.
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
}

impl RunLock {
    /// The lock file in the agent's state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("run.lock")
    }

    /// Takes the lock if no one holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, LockError> {
        match Flock::lock(open(path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(Self { _lock: lock })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(LockError::Io {
                path: path.to_path_buf(),
                source: errno.into(),
            }),
        }
    }

    /// Takes the lock, waiting up to `wait` for the run that holds it.
    pub async fn acquire(path: &Path, wait: Duration) -> Result<Self, LockError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    waited: wait,
                });
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_and_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = RunLock::path_in(dir.path());
        let held = RunLock::try_acquire(&path).unwrap().expect("free lock");
        assert!(RunLock::try_acquire(&path).unwrap().is_none());
        let err = RunLock::acquire(&path, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        drop(held);
        RunLock::acquire(&path, Duration::from_millis(300))
            .await
            .expect("free again");
    }
}
