//! A supervised server that dies is noticed at once, not at the
//! supervisor's next pass: the daemon holds a pidfd (Linux 5.3+) for each
//! running server of the applied catalog, which becomes readable when the
//! process exits, whoever started it (a run, the supervisor, a `--once`
//! run beside the daemon). The watch is armed again after every run and
//! supervision pass, with the pids then running.

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// The exits being watched; dropping it stops watching.
#[derive(Debug)]
pub struct ExitWatch {
    tasks: tokio::task::JoinSet<()>,
}

impl ExitWatch {
    /// How many processes are watched.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Watches each `(service, pid)`; the first exit of each is sent to
/// `exited`. A pid that cannot be watched (gone already, or a kernel
/// without pidfd) is left to the supervisor's passes, and logged.
pub fn watch(pids: Vec<(String, u32)>, exited: mpsc::Sender<(String, u32)>) -> ExitWatch {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, pid) in pids {
        let fd = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| std::io::Error::other("pid 0"))
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK)
                    .map_err(std::io::Error::from)
            })
            .and_then(|fd| {
                // SAFETY: the pidfd is an `OwnedFd`: it stays open, and is
                // not replaced, for as long as the `AsyncFd` owns it.
                unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                    .map_err(std::io::Error::from)
            });
        match fd {
            Ok(fd) => {
                let exited = exited.clone();
                tasks.spawn(async move {
                    // Readable once the process has exited.
                    if fd.readable().await.is_ok() {
                        let _ = exited.send((name, pid)).await;
                    }
                });
            }
            Err(e) => {
                tracing::debug!(service = %name, pid, error = %e, "cannot watch the server's exit: the supervisor's passes notice it");
            }
        }
    }
    ExitWatch { tasks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exit_is_sent_as_it_happens() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let watch = watch(vec![("wso2is".into(), child.id())], tx);
        assert_eq!(watch.len(), 1);
        assert!(rx.try_recv().is_err(), "still running");
        child.kill().unwrap();
        child.wait().unwrap();
        let exited = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("the exit is seen")
            .unwrap();
        assert_eq!(exited, ("wso2is".to_string(), child.id()));
    }

    #[tokio::test]
    async fn a_pid_that_is_gone_is_not_watched() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let (tx, _rx) = mpsc::channel(4);
        // Reaped: the pid names no process any more.
        assert!(watch(vec![("gone".into(), child.id())], tx).is_empty());
    }
}
