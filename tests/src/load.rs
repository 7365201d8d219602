//! A steady load on a server: threads that each send one `GET` at a time,
//! on a new connection, a few ms apart, and count by phase the requests
//! sent and those that failed (no answer, another status than 200, another
//! body than expected).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One phase's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseFigures {
    /// The phase.
    pub name: String,
    /// Requests sent.
    pub sent: u64,
    /// Requests that failed.
    pub failed: u64,
    /// How long the phase took.
    pub took: Duration,
    /// The first few failures, for the assertion message.
    pub failures: Vec<String>,
}

struct Shared {
    stop: AtomicBool,
    phase: AtomicUsize,
    phases: Mutex<Vec<(PhaseFigures, Instant)>>,
}

/// A running load.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// No load runs longer than this, whatever the test does.
const MAX_RUNTIME: Duration = Duration::from_secs(900);

impl Load {
    /// Starts `threads` clients asking `addr` for `path`, each pausing
    /// `pause` between requests, expecting a 200 with body `expect`.
    pub fn start(addr: &str, path: &str, expect: &str, threads: usize, pause: Duration) -> Self {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            phase: AtomicUsize::new(0),
            phases: Mutex::new(vec![(
                PhaseFigures {
                    name: "start".into(),
                    ..Default::default()
                },
                Instant::now(),
            )]),
        });
        let threads = (0..threads)
            .map(|_| {
                let (shared, addr, path, expect) = (
                    shared.clone(),
                    addr.to_string(),
                    path.to_string(),
                    expect.to_string(),
                );
                std::thread::spawn(move || {
                    let started = Instant::now();
                    while !shared.stop.load(Ordering::SeqCst) && started.elapsed() < MAX_RUNTIME {
                        let result = request(&addr, &path, &expect);
                        let phase = shared.phase.load(Ordering::SeqCst);
                        let mut phases = shared.phases.lock().unwrap();
                        let figures = &mut phases[phase].0;
                        figures.sent += 1;
                        if let Err(e) = result {
                            figures.failed += 1;
                            if figures.failures.len() < 5 {
                                figures.failures.push(e);
                            }
                        }
                        drop(phases);
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Self { shared, threads }
    }

    /// Ends the current phase and starts `name`.
    pub fn phase(&self, name: &str) {
        let mut phases = self.shared.phases.lock().unwrap();
        let now = Instant::now();
        if let Some((figures, started)) = phases.last_mut() {
            figures.took = now - *started;
        }
        phases.push((
            PhaseFigures {
                name: name.into(),
                ..Default::default()
            },
            now,
        ));
        self.shared.phase.store(phases.len() - 1, Ordering::SeqCst);
    }

    /// Stops the clients; every phase's figures.
    pub fn stop(mut self) -> Vec<PhaseFigures> {
        self.phase("end");
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        let mut phases = self.shared.phases.lock().unwrap();
        phases.pop();
        phases.iter().map(|(f, _)| f.clone()).collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// One `GET` on a new connection: `Err` says what went wrong.
fn request(addr: &str, path: &str, expect: &str) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        Duration::from_secs(2),
    )
    .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let status = response.lines().next().unwrap_or_default();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    if !status.contains(" 200 ") || body != expect {
        return Err(format!(
            "{status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}
