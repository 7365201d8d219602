//! Logging set-up shared by the daemons: `RIGGER_LOG` sets the filter,
//! `--log-format text|json` the format. A daemon may also keep its last
//! lines in a [`LogRing`] (what `agentctl logs` prints and follows).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber writing to stderr; `default_filter`
/// applies when `RIGGER_LOG` is unset.
pub fn init(format: LogFormat, default_filter: &str) {
    init_with(format, default_filter, None);
}

/// [`init`], every line also kept in `ring`.
pub fn init_with_ring(format: LogFormat, default_filter: &str, ring: Arc<LogRing>) {
    init_with(format, default_filter, Some(ring));
}

fn init_with(format: LogFormat, default_filter: &str, ring: Option<Arc<LogRing>>) {
    let filter =
        EnvFilter::try_from_env("RIGGER_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    if crate::service_manager::stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(journal) => return init_journal(filter, journal, ring),
            Err(e) => eprintln!("cannot log to the journal's socket ({e}): logging to stderr"),
        }
    }
    // Colours only on a terminal, and never in the ring.
    let ansi = ring.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || TeeWriter {
            ring: ring.clone(),
            to_stderr: true,
            line: Vec::new(),
        });
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Under systemd with stderr on the journal: each event goes to the
/// journal with its fields as journal fields (`journalctl -o verbose`
/// shows `NODE=`, `VERSION=`, …), and as a text line to the ring.
fn init_journal(filter: EnvFilter, journal: tracing_journald::Layer, ring: Option<Arc<LogRing>>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let ring_lines = ring.map(|ring| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || TeeWriter {
                ring: Some(ring.clone()),
                to_stderr: false,
                line: Vec::new(),
            })
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(ring_lines)
        .try_init();
}

/// The last lines a daemon logged, and a feed of the new ones.
#[derive(Debug)]
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
    capacity: usize,
    feed: tokio::sync::broadcast::Sender<String>,
}

/// A line longer than this is cut (a log line with a whole file in it).
const MAX_LINE: usize = 8 * 1024;

impl LogRing {
    /// A ring keeping the last `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
            feed: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Keeps a line (and hands it to followers).
    pub fn push(&self, line: &str) {
        let mut line = line.trim_end().to_string();
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" …");
        }
        {
            let mut lines = self.lines.lock().expect("log ring");
            if lines.len() == self.capacity {
                lines.pop_front();
            }
            lines.push_back(line.clone());
        }
        let _ = self.feed.send(line);
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().expect("log ring");
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The lines logged from now on (a follower that falls behind misses
    /// some, and is told how many).
    pub fn follow(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.feed.subscribe()
    }
}

/// Writes one event to stderr (unless the journal has it) and, whole, to
/// the ring when it is dropped.
struct TeeWriter {
    ring: Option<Arc<LogRing>>,
    to_stderr: bool,
    line: Vec<u8>,
}

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.ring.is_some() {
            self.line.extend_from_slice(buf);
        }
        if !self.to_stderr {
            return Ok(buf.len());
        }
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        if let Some(ring) = &self.ring {
            for line in String::from_utf8_lossy(&self.line).lines() {
                ring.push(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_lines_and_feeds_followers() {
        let ring = LogRing::new(3);
        let mut follower = ring.follow();
        for n in 1..=5 {
            ring.push(&format!("line {n}\n"));
        }
        assert_eq!(ring.last(10), ["line 3", "line 4", "line 5"]);
        assert_eq!(ring.last(1), ["line 5"]);
        assert_eq!(follower.try_recv().unwrap(), "line 1");
        ring.push(&"x".repeat(MAX_LINE + 10));
        assert!(ring.last(1)[0].ends_with(" …"));
        assert!(ring.last(1)[0].len() < MAX_LINE + 10);
    }

    #[test]
    fn a_writer_puts_each_event_whole_in_the_ring() {
        let ring = Arc::new(LogRing::new(10));
        {
            let mut writer = TeeWriter {
                ring: Some(ring.clone()),
                to_stderr: true,
                line: Vec::new(),
            };
            writer.write_all(b"2026-12-06 INFO run ").unwrap();
            writer.write_all(b"started\n").unwrap();
            assert!(ring.last(1).is_empty(), "not before the event ends");
        }
        assert_eq!(ring.last(5), ["2026-12-06 INFO run started"]);
    }
}
