//! A supervised server that dies is noticed at once, not at the
//! supervisor's next pass: the daemon holds a pidfd (Linux 5.3+) for each
//! running server of the applied catalog, which becomes readable when the
//! process exits, whoever started it (a run, the supervisor, a `--once`
//! run beside the daemon). The watch is armed again after every run and
//! supervision pass, with the pids then running. A stop waits on the same
//! kind of descriptor (`ExitHandle`), so it returns as the server exits
//! rather than at its next poll.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

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
        let fd = pidfd(pid, rustix::process::PidfdFlags::NONBLOCK).and_then(|fd| {
            // SAFETY: the pidfd is an `OwnedFd`: it stays open, and is
            // not replaced, for as long as the `AsyncFd` owns it.
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)
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

/// A pidfd on process `pid` (Linux 5.3+): readable once it has exited.
fn pidfd(pid: u32, flags: rustix::process::PidfdFlags) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::other(format!("{pid} is not a process id")))?;
    Ok(rustix::process::pidfd_open(pid, flags)?)
}

/// One process's exit, waited for synchronously (a service stop).
#[derive(Debug)]
pub struct ExitHandle(OwnedFd);

impl ExitHandle {
    /// Watches process `pid`. A pid can be reused before this opens it:
    /// the caller checks afterwards that `pid` still names the process it
    /// means (its start time), and then the handle is on that process.
    pub fn open(pid: u32) -> io::Result<Self> {
        pidfd(pid, rustix::process::PidfdFlags::empty()).map(Self)
    }

    /// Waits until the process has exited (a zombie counts) or `timeout`
    /// has passed; returns whether it exited.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        // Past what the clock holds: a year is as good as forever here.
        let timeout = timeout.min(Duration::from_secs(365 * 86_400));
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let left = rustix::event::Timespec::try_from(left).map_err(io::Error::other)?;
            let mut fds = [rustix::event::PollFd::new(
                &self.0,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&left)) {
                Ok(ready) => return Ok(ready > 0),
                // A signal interrupted the wait: wait for the rest.
                Err(rustix::io::Errno::INTR) if Instant::now() < deadline => continue,
                Err(rustix::io::Errno::INTR) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }
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

    #[test]
    fn a_stop_wait_returns_at_the_exit_not_at_the_timeout() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let exit = ExitHandle::open(child.id()).unwrap();
        assert!(
            !exit.wait(Duration::from_millis(20)).unwrap(),
            "still running"
        );
        child.kill().unwrap();
        // Not yet reaped: a zombie has exited (at the timeout it says false).
        // A timeout past what the clock holds (a grace typed with too many
        // digits) is waited on, not a panic.
        assert!(exit.wait(Duration::MAX).unwrap());
        child.wait().unwrap();
    }
}
