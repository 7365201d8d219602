//! Talking to systemd when it runs a daemon (`Type=notify`): readiness,
//! stopping, the watchdog, and whether stderr is the journal. Every call
//! is a no-op outside systemd (no `NOTIFY_SOCKET`, no `WATCHDOG_USEC`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Tells systemd the daemon is ready (its listener or socket is up), with
/// a status line `systemctl status` shows.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// How often to ping systemd's watchdog: half its timeout, or `None`
/// when the unit sets no `WatchdogSec=` (or it is meant for another pid).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

/// Pings the watchdog.
pub fn watchdog_ping() {
    notify(&[NotifyState::Watchdog]);
}

/// Pings the watchdog from the runtime until `shutdown`: a wedged runtime
/// (every worker blocked) stops the pings and systemd restarts the daemon.
pub fn spawn_watchdog(shutdown: CancellationToken) {
    let Some(every) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => watchdog_ping(),
            }
        }
    });
}

/// Whether stderr is connected to the journal: systemd sets
/// `JOURNAL_STREAM=<device>:<inode>` of the stream it gave the daemon.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    journal_stream_matches(&stream.to_string_lossy(), stat.st_dev, stat.st_ino)
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_stream_must_name_stderrs_device_and_inode() {
        assert!(journal_stream_matches("8:1234", 8, 1234));
        assert!(!journal_stream_matches("8:1235", 8, 1234));
        assert!(!journal_stream_matches("9:1234", 8, 1234));
        assert!(!journal_stream_matches("garbage", 8, 1234));
        assert!(!journal_stream_matches("", 8, 1234));
    }
}
