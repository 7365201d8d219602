//! The run lock: one run (or supervision pass) changes the node at a time,
//! whether it is the daemon's or a `--once` run beside it.
//!
//! The lock is a `flock` on `run.lock`: the kernel lets it go when its
//! holder dies, so a killed run never blocks the next one. The holder
//! writes who it is into the file (pid, since when, what for) and empties
//! it when it lets go: a waiting run and `agentctl status` name the
//! holder, and an entry left in a free file tells of a run that was killed
//! before it finished.

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// How often a waiting run tries again.
const RETRY: Duration = Duration::from_millis(200);

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run held it for the whole wait.
    #[error("another run{} still holds {} after {}s", holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default(), path.display(), waited.as_secs())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// How long this run waited.
        waited: Duration,
        /// Who holds it, as it wrote itself in.
        holder: Option<Holder>,
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

/// Who holds (or last held) the lock, as the holder wrote itself in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holding process.
    pub pid: u32,
    /// Since when, Unix ms.
    pub since_ms: i64,
    /// What for ("run (pushed)", "supervision", …).
    pub what: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {}, {} since {}",
            self.pid,
            self.what,
            rigger_common::time::format_ms(self.since_ms)
        )
    }
}

/// The lock as `agentctl status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LockState {
    /// No one holds it.
    #[default]
    Free,
    /// No one holds it, but a run that held it was killed before it let go.
    FreeAfterKilled(Holder),
    /// A live process holds it.
    Held(Holder),
    /// It is held, but the process that took it is gone: a process it
    /// started keeps the lock open.
    HeldByLeftover(Option<Holder>),
}

/// A held run lock; dropping it lets the next run in.
#[derive(Debug)]
pub struct RunLock {
    lock: Flock<File>,
}

impl RunLock {
    /// The lock file in the agent's state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("run.lock")
    }

    /// Takes the lock if no one holds it, for `what`.
    pub fn try_acquire(path: &Path, what: &str) -> Result<Option<Self>, LockError> {
        match Flock::lock(open(path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut held = Self { lock };
                let killed = read_holder(path);
                if let Some(killed) = killed {
                    tracing::warn!(holder = %killed, "the run lock was left by a run killed before it finished: taken over");
                }
                held.write_holder(what);
                Ok(Some(held))
            }
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(LockError::Io {
                path: path.to_path_buf(),
                source: errno.into(),
            }),
        }
    }

    /// Takes the lock for `what`, waiting up to `wait` for the run that
    /// holds it.
    pub async fn acquire(path: &Path, wait: Duration, what: &str) -> Result<Self, LockError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(path, what)? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    waited: wait,
                    holder: read_holder(path),
                });
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Writes this process in as the holder (best effort: the lock holds
    /// whatever the file says).
    fn write_holder(&mut self, what: &str) {
        let holder = Holder {
            pid: std::process::id(),
            since_ms: rigger_common::time::now_ms(),
            what: what.to_string(),
        };
        let line = serde_json::to_string(&holder).expect("a holder serializes");
        let file: &mut File = &mut self.lock;
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::debug!(error = %e, "cannot write the run lock's holder");
        }
    }

    /// What the lock at `path` is doing now. Looks without taking it for
    /// more than an instant (a shared lock that no holder allows).
    pub fn inspect(path: &Path) -> LockState {
        let Ok(file) = std::fs::File::open(path) else {
            return LockState::Free;
        };
        let holder = read_holder(path);
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_free) => holder.map_or(LockState::Free, LockState::FreeAfterKilled),
            Err(_) => match holder {
                // A process that is gone (or a zombie) holds nothing itself.
                Some(h) if crate::resources::service::process::start_time(h.pid).is_some() => {
                    LockState::Held(h)
                }
                other => LockState::HeldByLeftover(other),
            },
        }
    }
}

impl Drop for RunLock {
    /// Empties the file before the lock goes: a free lock with a holder
    /// in it was not let go this way.
    fn drop(&mut self) {
        let _ = self.lock.set_len(0);
    }
}

/// The holder written in the lock file, if any.
fn read_holder(path: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.trim()).ok()
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
    async fn a_second_holder_waits_gives_up_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = RunLock::path_in(dir.path());
        assert_eq!(RunLock::inspect(&path), LockState::Free);
        let held = RunLock::try_acquire(&path, "run (pushed)")
            .unwrap()
            .expect("free lock");
        assert!(
            RunLock::try_acquire(&path, "supervision")
                .unwrap()
                .is_none()
        );
        let err = RunLock::acquire(&path, Duration::from_millis(300), "run (manual)")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "another run (pid {}, run (pushed) since ",
                std::process::id()
            )),
            "{text}"
        );
        match RunLock::inspect(&path) {
            LockState::Held(h) => {
                assert_eq!(
                    (h.pid, h.what.as_str()),
                    (std::process::id(), "run (pushed)")
                );
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        assert_eq!(RunLock::inspect(&path), LockState::Free);
        RunLock::acquire(&path, Duration::from_millis(300), "run (manual)")
            .await
            .expect("free again");
    }

    #[test]
    fn a_lock_left_by_a_killed_run_is_seen_and_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = RunLock::path_in(dir.path());
        // What a run killed with SIGKILL leaves: its entry, no lock.
        let killed = Holder {
            pid: 999_999_999,
            since_ms: 5,
            what: "run (once)".into(),
        };
        std::fs::write(&path, serde_json::to_string(&killed).unwrap()).unwrap();
        assert_eq!(RunLock::inspect(&path), LockState::FreeAfterKilled(killed));
        let taken = RunLock::try_acquire(&path, "run (manual)").unwrap();
        assert!(taken.is_some(), "a killed run's lock is taken over");
        drop(taken);
        assert_eq!(RunLock::inspect(&path), LockState::Free);
    }

    #[test]
    fn a_lock_kept_by_a_process_whose_holder_is_gone_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = RunLock::path_in(dir.path());
        let gone = Holder {
            pid: 999_999_999,
            since_ms: 5,
            what: "run (once)".into(),
        };
        std::fs::write(&path, serde_json::to_string(&gone).unwrap()).unwrap();
        // Kept open and locked by someone else than the pid written in.
        let _kept = Flock::lock(open(&path).unwrap(), FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(
            RunLock::inspect(&path),
            LockState::HeldByLeftover(Some(gone))
        );
    }
}
