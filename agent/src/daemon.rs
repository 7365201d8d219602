//! The daemon's main loop. One task owns the agent's run state and loops
//! over a closed [`Event`] enum; the control socket, the timer and finished
//! runs only send events.
//!
//! Schedule: a run at start, then every `run_interval` (the first periodic
//! run offset by the node's persistent splay); after a run that could not
//! get any catalog, retries back off exponentially with jitter.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rigger_common::time::now_ms;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::run::Agent;
use crate::state::RunSummary;
use crate::status::{AgentStatus, RunEvent, RunEventSender};

/// First retry delay after a failed run; doubles up to the run interval.
const BACKOFF_START: Duration = Duration::from_secs(5);
/// How long shutdown waits for a run in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A request from `agentctl`, carrying its reply channel.
pub enum ControlRequest {
    /// Current status.
    Status(oneshot::Sender<AgentStatus>),
    /// The facts, gathered now.
    Facts(oneshot::Sender<serde_json::Value>),
    /// The verified catalog that runs, if any.
    Catalog(oneshot::Sender<Option<Arc<rigger_common::catalog::Catalog>>>),
    /// Run now, streaming outcomes.
    Run {
        /// Plan only.
        noop: bool,
        /// Re-hash every release file.
        verify: bool,
        /// Where the events go.
        events: RunEventSender,
    },
}

/// Everything the main loop reacts to.
pub enum Event {
    /// A request from the control socket.
    Control(ControlRequest),
    /// A run finished.
    RunFinished(RunSummary),
    /// SIGHUP: the configuration read again, or why it could not be.
    Reload(Result<Box<crate::config::AgentConfig>, String>),
    /// A supervision pass finished: what it did, or why a server stays down.
    Supervised(Result<Vec<String>, String>),
    /// The master has a catalog version newer than the one applied.
    Pushed(u64),
    /// The share was polled: what no longer agrees with the catalog.
    SharePolled(Vec<String>),
    /// A heartbeat went out (or why it did not), with the services it saw.
    Heartbeat(
        Vec<rigger_common::report::ServiceHealth>,
        Result<(), String>,
    ),
}

/// The longest wait before the catalog watch is tried again.
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A run waiting its turn: why (the report says), noop, verify, and where
/// its events go (a run asked for over the control socket).
type QueuedRun = (&'static str, bool, bool, Option<RunEventSender>);

/// How often exited servers are looked for between runs.
const SUPERVISE_EVERY: Duration = Duration::from_secs(3);

/// How often the master hears what the services are doing, also during a
/// run (a restart): its restart budget counts a node that stopped saying
/// so as down, and a lease lapses only when its holder goes quiet.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// Runs the daemon until `shutdown` is cancelled. `events_tx`/`events_rx`
/// is the loop's inbox; the control server holds a clone of the sender.
pub async fn run(
    agent: Arc<Agent>,
    events_tx: mpsc::Sender<Event>,
    mut events_rx: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let daemon_started_at_ms = now_ms();
    let loaded = agent.state.load().unwrap_or_default();
    let mut last = loaded.last_run;
    let mut last_noop = loaded.last_noop;
    let mut splay =
        Duration::from_millis(agent.state.splay_ms(agent.config.splay.as_millis() as u64));
    let mut interval = agent.config.run_interval;
    let mut next_run = Instant::now();
    let mut first_periodic = true;
    let mut failures: u32 = 0;
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    let mut waiting: VecDeque<QueuedRun> = VecDeque::new();
    let mut next_supervise = Instant::now() + SUPERVISE_EVERY;
    // A server's exit is seen at once (pidfd), armed after each run and
    // supervision pass with the pids then running.
    let (exits_tx, mut exits_rx) = mpsc::channel::<(String, u32)>(16);
    let mut _exit_watch = crate::exits::watch(agent.supervised_pids(), exits_tx.clone());
    let mut supervising = false;
    let mut supervise_failures: u32 = 0;
    let mut supervisor_note = String::new();
    // The first one at once: the screens show the services from the start.
    let mut next_heartbeat = Instant::now();
    let mut heartbeating = false;
    let mut services = (Vec::new(), 0);
    // A push came while the agent was disabled.
    let mut missed_push = false;
    // Drift: changes to managed files outside a run start a repair run.
    let (drift_tx, mut drift_rx) = mpsc::unbounded_channel();
    let mut drift_watch = crate::drift::DriftWatch::new(drift_tx)
        .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the managed files: drift is repaired by the scheduled runs only"))
        .ok();
    follow_drift(&agent, drift_watch.as_mut());
    let mut drift_limiter = crate::drift::RepairLimiter::default();
    let mut drift_seen: (u64, i64, String) = (0, 0, String::new());
    let mut drift_pending: std::collections::BTreeSet<std::path::PathBuf> = Default::default();
    // The share, polled: events do not cross NFS. What a repair run did
    // not put right is not repaired again by the poll (a dead NFS server
    // would start a run every poll): the scheduled runs retry with backoff.
    let mut next_share_poll = Instant::now() + crate::drift::SHARE_POLL_EVERY;
    let mut share_polling = false;
    let mut share_repair_tried: Vec<String> = Vec::new();

    tokio::spawn(watch_catalog(
        agent.clone(),
        events_tx.clone(),
        shutdown.clone(),
    ));
    // systemd's watchdog is pinged from this loop: a wedged loop (not a
    // long run, which is a task of its own) gets the agent restarted.
    let watchdog_every = rigger_common::service_manager::watchdog_interval();
    let mut next_watchdog = Instant::now();

    loop {
        let idle = running.is_none();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next_watchdog), if watchdog_every.is_some() => {
                rigger_common::service_manager::watchdog_ping();
                next_watchdog = Instant::now() + watchdog_every.unwrap_or_default();
            }
            _ = tokio::time::sleep_until(next_run), if idle && waiting.is_empty() => {
                if let Some(disabled) = agent.state.disabled() {
                    tracing::info!(by = %disabled.by, reason = %disabled.reason, "scheduled run skipped: the agent is disabled");
                    next_run = Instant::now() + interval;
                } else {
                    waiting.push_back(("scheduled", false, false, None));
                }
            }
            Some((service, pid)) = exits_rx.recv() => {
                tracing::info!(%service, pid, "the server exited: the supervisor looks at once");
                next_supervise = Instant::now();
            }
            _ = tokio::time::sleep_until(next_supervise), if idle && !supervising && waiting.is_empty() => {
                supervising = true;
                let (agent, inbox) = (agent.clone(), events_tx.clone());
                tokio::spawn(async move {
                    let _ = inbox.send(Event::Supervised(agent.supervise().await)).await;
                });
            }
            _ = tokio::time::sleep_until(next_heartbeat), if !heartbeating => {
                heartbeating = true;
                let (agent, inbox) = (agent.clone(), events_tx.clone());
                tokio::spawn(async move {
                    let (seen, sent) = agent.heartbeat().await;
                    let _ = inbox.send(Event::Heartbeat(seen, sent)).await;
                });
            }
            _ = tokio::time::sleep_until(next_share_poll), if idle && !share_polling && waiting.is_empty() => {
                next_share_poll = Instant::now() + crate::drift::SHARE_POLL_EVERY;
                if agent.state.disabled().is_none() {
                    if let Some(catalog) = agent.verified_cached_catalog() {
                        share_polling = true;
                        let (agent, inbox) = (agent.clone(), events_tx.clone());
                        tokio::task::spawn_blocking(move || {
                            let ctx = crate::resources::ApplyContext::new(agent.paths.clone());
                            let found = crate::drift::poll_share(&catalog, &ctx);
                            let _ = inbox.blocking_send(Event::SharePolled(found));
                        });
                    }
                }
            }
            Some(paths) = drift_rx.recv() => {
                // Seen during a run: looked at once it has ended.
                drift_pending.extend(paths);
                if running.is_none() {
                    check_drift(&agent, &mut drift_pending, &mut drift_limiter, &mut drift_seen, &mut waiting);
                }
            }
            Some(event) = events_rx.recv() => match event {
                Event::Pushed(version) => {
                    // One run, now or right after the one in progress.
                    if let Some(disabled) = agent.state.disabled() {
                        tracing::info!(version, by = %disabled.by, reason = %disabled.reason, "pushed run skipped: the agent is disabled");
                        missed_push = true;
                    } else if waiting.is_empty() {
                        tracing::debug!(version, "pushed: a run is queued");
                        waiting.push_back(("pushed", false, false, None));
                    }
                }
                Event::SharePolled(found) => {
                    share_polling = false;
                    next_share_poll = Instant::now() + crate::drift::SHARE_POLL_EVERY;
                    if found.is_empty() {
                        share_repair_tried.clear();
                    } else if running.is_some() || !waiting.is_empty() {
                        // A run has started since: it looks at them.
                    } else if found == share_repair_tried {
                        tracing::debug!(changes = %found.join("; "), "still differs on the share after a repair run; the scheduled runs retry");
                    } else {
                        queue_repair(&agent, found.join("; "), &mut drift_limiter, &mut drift_seen, &mut waiting);
                        share_repair_tried = found;
                    }
                }
                Event::Heartbeat(seen, outcome) => {
                    heartbeating = false;
                    services = (seen, now_ms());
                    if let Err(e) = outcome {
                        tracing::debug!(error = %e, "heartbeat not delivered");
                    }
                    next_heartbeat = Instant::now() + HEARTBEAT_EVERY;
                }
                Event::Control(ControlRequest::Status(reply)) => {
                    let mut status = status_of(&agent, last.as_ref(), running.is_some(), next_run);
                    status.last_noop = last_noop.clone();
                    status.agent_started_at_ms = daemon_started_at_ms;
                    (status.drift_repairs, status.drift_at_ms, status.drift_paths) = drift_seen.clone();
                    status.drift_watched = drift_watch.as_ref().map_or(0, |w| w.paths());
                    status.supervisor = supervisor_note.clone();
                    status.activity = agent.activity();
                    (status.services, status.services_at_ms) = services.clone();
                    let _ = reply.send(status);
                }
                Event::Control(ControlRequest::Facts(reply)) => {
                    // IMDS may be slow: the loop does not wait for it.
                    let agent = agent.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(crate::facts::gather(&agent.config.imds).await);
                    });
                }
                Event::Control(ControlRequest::Catalog(reply)) => {
                    let _ = reply.send(agent.verified_cached_catalog());
                }
                Event::Reload(Err(why)) => {
                    tracing::error!(error = %why, "SIGHUP: the configuration is not valid; the agent keeps the settings it runs with");
                }
                Event::Reload(Ok(config)) => {
                    for setting in restart_only_changes(&agent.config, &config) {
                        tracing::warn!(setting, "SIGHUP: this setting changed and takes effect at the next restart");
                    }
                    if config.run_interval != interval || config.splay != agent.config.splay {
                        interval = config.run_interval;
                        splay = Duration::from_millis(
                            agent.state.splay_ms(config.splay.as_millis() as u64),
                        );
                        // A shorter interval is kept from the next run on.
                        next_run = next_run.min(Instant::now() + interval);
                    }
                    tracing::info!(run_interval = ?interval, splay = ?splay, "SIGHUP: configuration read again");
                }
                Event::Supervised(outcome) => {
                    supervising = false;
                    _exit_watch = crate::exits::watch(agent.supervised_pids(), exits_tx.clone());
                    let delay = match outcome {
                        Ok(notes) => {
                            supervise_failures = 0;
                            if let Some(note) = notes.last() {
                                supervisor_note = note.clone();
                            }
                            SUPERVISE_EVERY
                        }
                        Err(e) => {
                            supervise_failures += 1;
                            supervisor_note = e;
                            backoff(supervise_failures, interval).max(SUPERVISE_EVERY)
                        }
                    };
                    next_supervise = Instant::now() + delay;
                    // Enabled again after a push it skipped: catch up now.
                    if missed_push && agent.state.disabled().is_none() {
                        missed_push = false;
                        if waiting.is_empty() {
                            tracing::info!("enabled again: running the catalog pushed while disabled");
                            waiting.push_back(("pushed", false, false, None));
                        }
                    }
                }
                Event::Control(ControlRequest::Run { noop, verify, events }) => {
                    waiting.push_back(("manual", noop, verify, Some(events)));
                }
                Event::RunFinished(summary) => {
                    running = None;
                    _exit_watch = crate::exits::watch(agent.supervised_pids(), exits_tx.clone());
                    if !summary.noop {
                        // The catalog (and the release) may have changed.
                        follow_drift(&agent, drift_watch.as_mut());
                    }
                    check_drift(&agent, &mut drift_pending, &mut drift_limiter, &mut drift_seen, &mut waiting);
                    // The master and the screens hear what the run left
                    // the services doing.
                    next_heartbeat = Instant::now();
                    if !summary.noop {
                        let delay = if summary.error.is_empty() {
                            failures = 0;
                            if std::mem::take(&mut first_periodic) { interval + splay } else { interval }
                        } else {
                            failures += 1;
                            backoff(failures, interval)
                        };
                        next_run = Instant::now() + delay;
                    }
                    if summary.noop {
                        last_noop = Some(summary);
                    } else {
                        last = Some(summary);
                    }
                }
            },
        }
        if running.is_none() {
            if let Some((trigger, noop, verify, events)) = waiting.pop_front() {
                running = Some(tokio::spawn(start_run(
                    agent.clone(),
                    trigger,
                    noop,
                    verify,
                    events,
                    events_tx.clone(),
                )));
            }
        }
    }
    if let Some(handle) = running {
        tracing::info!("waiting for the run in progress to finish");
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, handle).await;
    }
}

/// Looks at the managed paths changed since: those the catalog no longer
/// agrees with are drift, repaired by a run queued now (unless the agent
/// is disabled, or repairs are coming too fast).
fn check_drift(
    agent: &Agent,
    pending: &mut std::collections::BTreeSet<std::path::PathBuf>,
    limiter: &mut crate::drift::RepairLimiter,
    seen: &mut (u64, i64, String),
    waiting: &mut VecDeque<QueuedRun>,
) {
    if pending.is_empty() {
        return;
    }
    let changed: Vec<std::path::PathBuf> = std::mem::take(pending).into_iter().collect();
    let Some(catalog) = agent.verified_cached_catalog() else {
        return;
    };
    let ctx = crate::resources::ApplyContext::new(agent.paths.clone());
    let drifted = crate::drift::drifted(&catalog, &ctx, &changed);
    if drifted.is_empty() {
        return;
    }
    let shown = drifted
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    queue_repair(agent, shown, limiter, seen, waiting);
}

/// Queues a repair run for drift `shown` (paths, or what the share poll
/// found), unless the agent is disabled or repairs are coming too fast.
fn queue_repair(
    agent: &Agent,
    shown: String,
    limiter: &mut crate::drift::RepairLimiter,
    seen: &mut (u64, i64, String),
    waiting: &mut VecDeque<QueuedRun>,
) {
    if let Some(disabled) = agent.state.disabled() {
        tracing::warn!(what = %shown, by = %disabled.by, "changed outside the agent; not repaired: the agent is disabled");
    } else if !limiter.allow() {
        tracing::warn!(what = %shown, "changed outside the agent again: more than 5 repairs in 10 s (another writer keeps changing it); the next scheduled run repairs it");
    } else {
        tracing::warn!(what = %shown, "changed outside the agent: repairing now");
        *seen = (seen.0 + 1, now_ms(), shown);
        agent.metrics.drift_repairs.inc();
        if waiting.is_empty() {
            waiting.push_back(("drift", false, false, None));
        }
    }
}

/// Points the drift watch at the managed paths of the applied catalog.
fn follow_drift(agent: &Agent, watch: Option<&mut crate::drift::DriftWatch>) {
    let (Some(watch), Some(catalog)) = (watch, agent.verified_cached_catalog()) else {
        return;
    };
    if let Err(e) = watch.follow(crate::drift::managed_paths(&catalog, &agent.paths)) {
        tracing::warn!(error = %e, "cannot watch the managed files: drift is repaired by the scheduled runs only");
    }
}

/// Holds the node's `WatchCatalog` stream while the daemon runs, turning
/// each newer version into a run. After the stream ends (the master
/// stopped) or fails, it reconnects after a random 1–10 s, then backs off
/// up to a minute, so that a fleet does not reconnect in the same second.
async fn watch_catalog(agent: Arc<Agent>, inbox: mpsc::Sender<Event>, shutdown: CancellationToken) {
    let (newer, mut versions) = mpsc::channel(4);
    let forward = {
        let inbox = inbox.clone();
        tokio::spawn(async move {
            while let Some(version) = versions.recv().await {
                if inbox.send(Event::Pushed(version)).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut failures: u32 = 0;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => break,
            outcome = agent.watch_catalog(&newer) => outcome,
        };
        let delay = match outcome {
            Ok(_) => {
                failures = 0;
                Duration::from_millis(1_000 + rand::random::<u64>() % 9_000)
            }
            // The first run enrolls: look again soon.
            Err(crate::run::WatchError::NotEnrolled) => Duration::from_secs(1),
            Err(e) => {
                failures += 1;
                tracing::debug!(error = %e, failures, "catalog watch not held");
                backoff(failures, WATCH_BACKOFF_MAX)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    forward.abort();
}

async fn start_run(
    agent: Arc<Agent>,
    trigger: &'static str,
    noop: bool,
    verify: bool,
    events: Option<RunEventSender>,
    inbox: mpsc::Sender<Event>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let forward = events
        .clone()
        .map(|sink| tokio::spawn(forward_outcomes(rx, sink)));
    let summary = agent.run_because(trigger, noop, verify, Some(tx)).await;
    if let Some(forward) = forward {
        let _ = forward.await;
    }
    if let Some(sink) = events {
        let _ = sink.send(RunEvent::Summary(summary.clone())).await;
    }
    let _ = inbox.send(Event::RunFinished(summary)).await;
}

/// Forwards a run's outcomes and fetch progress to the requester as they
/// happen.
async fn forward_outcomes(
    mut outcomes: mpsc::UnboundedReceiver<crate::run::RunProgress>,
    sink: RunEventSender,
) {
    while let Some(progress) = outcomes.recv().await {
        let event = match progress {
            crate::run::RunProgress::Resource(outcome) => RunEvent::Resource(outcome),
            crate::run::RunProgress::Fetched { done, total } => RunEvent::Fetched { done, total },
        };
        if sink.send(event).await.is_err() {
            return;
        }
    }
}

/// The settings that differ and only a restart of the agent applies (the
/// run interval and the splay apply at once).
fn restart_only_changes(
    running: &crate::config::AgentConfig,
    now: &crate::config::AgentConfig,
) -> Vec<&'static str> {
    rigger_common::config::differing(&[
        ("master", running.master != now.master),
        ("ca_cert", running.ca_cert != now.ca_cert),
        (
            "ca_fingerprint",
            running.ca_fingerprint != now.ca_fingerprint,
        ),
        ("certname", running.certname != now.certname),
        ("role", running.role != now.role),
        ("imds_endpoint", running.imds != now.imds),
        ("timeout", running.timeout != now.timeout),
        (
            "metrics_listen",
            running.metrics_listen != now.metrics_listen,
        ),
    ])
}

/// Exponential backoff with jitter (50–100 % of the step), capped at the interval.
fn backoff(failures: u32, interval: Duration) -> Duration {
    let step =
        BACKOFF_START.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)));
    let capped = step.min(interval);
    let jitter = 0.5 + rand::random::<f64>() / 2.0;
    capped.mul_f64(jitter)
}

fn status_of(
    agent: &Agent,
    last: Option<&RunSummary>,
    running: bool,
    next_run: Instant,
) -> AgentStatus {
    let until_next = next_run.saturating_duration_since(Instant::now());
    let applied = agent.state.load().unwrap_or_default();
    let catalog = agent.verified_cached_catalog();
    AgentStatus {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        inspection: crate::inspect::inspect(&agent.paths, catalog.as_deref()),
        catalog_expires_at_ms: catalog.as_ref().map_or(0, |c| c.expires_at_ms),
        applied_epoch: applied.applied_epoch,
        disabled: agent.state.disabled(),
        applied_version: applied.applied_version,
        applied_digest: applied.applied_digest,
        applied_at_ms: applied.applied_at_ms,
        run_lock: crate::run::lock::RunLock::inspect(&crate::run::lock::RunLock::path_in(
            agent.state.path(),
        )),
        applied_site_revision: applied.applied_site_revision,
        applied_site_commit: applied.applied_site_commit,
        certname: agent.certname().unwrap_or_default(),
        master: agent.config.master.to_string(),
        running,
        next_run_at_ms: now_ms() + until_next.as_millis() as i64,
        last_run: last.cloned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::{FakeConnector, FakeMaster};

    #[tokio::test]
    async fn the_loop_runs_at_start_and_answers_status_and_run_requests() {
        let root = tempfile::tempdir().unwrap();
        let master = FakeMaster::new("node1");
        master.publish(
            2,
            rigger_common::catalog::CatalogContent {
                role: "is".into(),
                profile: "test/test".into(),
                resources: vec![],
            },
        );
        let config = crate::config::AgentConfig::resolve(
            root.path().to_path_buf(),
            Default::default(),
            crate::config::AgentConfigFile {
                master: Some("https://127.0.0.1:9".into()),
                imds_endpoint: Some("off".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let agent = Arc::new(Agent::with_connector(
            config,
            Arc::new(FakeConnector(master.clone())),
        ));
        master.enroll_into(&agent.paths.ssl_dir());
        let (tx, rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let daemon = tokio::spawn(run(agent, tx.clone(), rx, shutdown.clone()));

        let (events, mut received) = mpsc::channel(8);
        tx.send(Event::Control(ControlRequest::Run {
            noop: true,
            verify: false,
            events,
        }))
        .await
        .unwrap();
        let mut summary = None;
        while let Some(event) = received.recv().await {
            if let RunEvent::Summary(s) = event {
                summary = Some(s);
            }
        }
        let summary = summary.expect("a summary ends the run");
        assert_eq!((summary.catalog_version, summary.noop), (2, true));

        let (reply, status) = oneshot::channel();
        tx.send(Event::Control(ControlRequest::Status(reply)))
            .await
            .unwrap();
        let status = status.await.unwrap();
        assert_eq!(status.certname, "node1");
        // The noop run is shown as one; it is never the run that applied.
        assert_eq!(
            status.last_noop.map(|r| (r.catalog_version, r.result)),
            Some((2, "noop".to_string()))
        );
        assert!(status.last_run.is_none_or(|r| !r.noop));
        assert!(
            master.reports().iter().any(|r| r.noop),
            "the requested run was reported"
        );
        shutdown.cancel();
        daemon.await.unwrap();
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let interval = Duration::from_secs(60);
        for failures in 1..10 {
            let d = backoff(failures, interval);
            let step = BACKOFF_START * 2u32.pow(failures - 1);
            assert!(d <= step.min(interval), "{failures}: {d:?}");
            assert!(d >= step.min(interval) / 2, "{failures}: {d:?}");
        }
    }
}
