//! The master keeps the nodes' catalogs current without waiting for them
//! to ask. When the site or a module changes on disk (watched with notify,
//! debounced: a change is taken once its files have stopped changing) or a
//! level is promoted, it recompiles every live node; every few seconds it
//! asks again for the nodes a running rollout holds back, so that the next
//! step starts as soon as the one before has baked, and recompiles the live
//! nodes when one joined or left (their peer lists). A new version reaches
//! its node at once through `WatchCatalog` ([`crate::catalogs::watch`]).

use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use rigger_common::time::now_ms;

use crate::catalogs;
use crate::rollouts;
use crate::state::SharedState;

/// A change is taken once no file changed for this long (an editor's
/// save, a `git pull` or an `rsync` of the site is one revision).
const QUIET: Duration = Duration::from_millis(300);
/// How often nodes a running rollout holds back are asked for again.
const ROLLOUT_TICK: Duration = Duration::from_secs(2);

/// When the site or a module last changed on disk: a compile waits until
/// the files have stopped changing, so that it never reads a file an
/// editor or a `git pull` is half-way through writing (a half-written file
/// would fail the compile, or give one node content no revision names).
#[derive(Debug, Default)]
pub struct SiteQuiet {
    last_change_ms: std::sync::atomic::AtomicI64,
    changes: std::sync::atomic::AtomicU64,
    watching: std::sync::atomic::AtomicBool,
}

impl SiteQuiet {
    /// Records a change seen now.
    pub fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.last_change_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// How many changes were seen: what was read from the files while
    /// this stays the same is still what they hold.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the site watch runs (else no change is ever seen).
    pub fn watching(&self) -> bool {
        self.watching.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns once no change was seen for [`QUIET`], or after 20 × QUIET
    /// (a folder that never stops changing is compiled anyway).
    pub async fn settled(&self) {
        let quiet_ms = QUIET.as_millis() as i64;
        for _ in 0..20 {
            let since = now_ms()
                - self
                    .last_change_ms
                    .load(std::sync::atomic::Ordering::Relaxed);
            if since >= quiet_ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis((quiet_ms - since) as u64)).await;
        }
    }
}

/// Watches the site and module folders while it is kept.
pub struct SiteWatch {
    _watcher: RecommendedWatcher,
}

/// Starts watching the site and every module folder; a change (once quiet)
/// wakes [`spawn`]'s task through `site_changed`.
pub fn watch_site(state: SharedState) -> Result<SiteWatch, notify::Error> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = state.clone();
    let roots = crate::revision::roots(&state);
    let watched = roots.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reads (the compiler's own among them) are not changes.
            Ok(event) if rigger_common::fswatch::is_change(&event.kind) => {
                // A commit or a checkout changes `.git` (the revision's
                // commit) but is not site data: no recompile for it alone.
                seen.site_quiet.changed();
                if !event.paths.iter().all(|p| in_hidden(&watched, p)) {
                    let _ = tx.send(());
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "watching the site and modules"),
        }
    })?;
    for root in roots.iter().filter(|r| r.is_dir()) {
        watcher.watch(root, RecursiveMode::Recursive)?;
    }
    state
        .site_quiet
        .watching
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(roots = ?roots, "watching the site and modules for changes");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = state.stopping.cancelled() => return,
                event = rx.recv() => if event.is_none() { return },
            }
            // Until the files stop changing (bounded: a folder that never
            // stops changing is taken every few seconds anyway).
            for _ in 0..20 {
                match tokio::time::timeout(QUIET, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            tracing::info!("the site or a module changed: recompiling the live nodes");
            state.site_changed.notify_one();
        }
    });
    Ok(SiteWatch { _watcher: watcher })
}

/// Whether `path` is hidden below the watched root it is under (`.git`, an
/// editor's swap file): not site data.
fn in_hidden(roots: &[std::path::PathBuf], path: &std::path::Path) -> bool {
    roots
        .iter()
        .find(|r| path.starts_with(r))
        .is_some_and(|root| crate::revision::under_hidden(root, path))
}

/// Recompiles the live nodes when `site_changed` is notified, and the
/// nodes running rollouts hold back every [`ROLLOUT_TICK`], until the
/// master stops.
pub fn spawn(state: SharedState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROLLOUT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut members = live_nodes(&state).await;
        loop {
            tokio::select! {
                _ = state.stopping.cancelled() => return,
                _ = state.site_changed.notified() => recompile_live(&state).await,
                _ = tick.tick() => {
                    // A node joined or left: the others' peer lists change.
                    let now = live_nodes(&state).await;
                    if now != members {
                        tracing::info!(before = members.len(), now = now.len(), "the live nodes changed: recompiling their peers");
                        members = now;
                        recompile_live(&state).await;
                    }
                    recompile_held(&state).await;
                }
            }
        }
    });
}

/// Passes the new catalog versions other masters on the store announce to
/// this master's watch streams, until the master stops (a store only one
/// master uses announces nothing).
pub async fn hear_other_masters(state: SharedState) -> Result<(), crate::store::StoreError> {
    use tokio_stream::StreamExt;
    let Some(mut announced) = state.store.catalog_announcements().await? else {
        return Ok(());
    };
    tokio::spawn(async move {
        loop {
            let (certname, version) = tokio::select! {
                _ = state.stopping.cancelled() => return,
                next = announced.next() => match next {
                    Some(announced) => announced,
                    None => return,
                },
            };
            tracing::debug!(node = %certname, version, "another master made a new catalog version");
            state.notices.publish(&certname, version);
        }
    });
    Ok(())
}

/// The nodes heard from within the peer timeout (an empty set when the
/// store cannot say).
async fn live_nodes(state: &SharedState) -> std::collections::BTreeSet<String> {
    let since = state.live_since_ms();
    state
        .store
        .nodes()
        .await
        .map(|nodes| {
            nodes
                .into_iter()
                .filter(|n| n.last_seen_ms >= since && n.role.is_some())
                .map(|n| n.certname)
                .collect()
        })
        .unwrap_or_default()
}

/// Every node heard from within the peer timeout gets its catalog
/// compiled again (a new version only where its content changed).
async fn recompile_live(state: &SharedState) {
    let live = live_nodes(state).await;
    let started = std::time::Instant::now();
    for certname in &live {
        recompile(state, certname).await;
    }
    tracing::info!(
        nodes = live.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "live nodes recompiled"
    );
}

/// Nodes that a running rollout holds back are asked for again: the one
/// whose turn has come is admitted (and pushed its new version).
async fn recompile_held(state: &SharedState) {
    let Ok(rollouts) = state.store.rollouts().await else {
        return;
    };
    // A node that stopped asking is not admitted in its absence.
    let live = live_nodes(state).await;
    for rollout in rollouts.iter().filter(|r| r.state == rollouts::RUNNING) {
        let Ok(nodes) = state.store.rollout_nodes(&rollout.cluster).await else {
            continue;
        };
        // One compile a tick while the step waits: the next node is
        // tried only once one was admitted.
        let waiting = nodes
            .iter()
            .filter(|n| n.state == rollouts::WAITING && live.contains(&n.certname));
        for node in waiting {
            recompile(state, &node.certname).await;
            let still_waiting = state
                .store
                .rollout_nodes(&rollout.cluster)
                .await
                .map(|now| {
                    now.iter()
                        .any(|n| n.certname == node.certname && n.state == rollouts::WAITING)
                })
                .unwrap_or(true);
            if still_waiting {
                break;
            }
        }
    }
}

/// Publishes the node's catalog from its stored role and facts; a failure
/// is recorded for the screens, as when the node asks.
async fn recompile(state: &SharedState, certname: &str) {
    if let Err(e) = recompiled(state, certname).await {
        tracing::warn!(node = %certname, error = %e, "recompiling failed");
    }
}

async fn recompiled(state: &SharedState, certname: &str) -> crate::error::Result<()> {
    let Some(node) = state.store.node(certname).await? else {
        return Ok(());
    };
    let (Some(role), Some(facts)) = (node.role, state.store.node_facts(certname).await?) else {
        return Ok(());
    };
    catalogs::publish_recorded(state, certname, &role, facts).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_compile_waits_until_the_site_has_stopped_changing() {
        let quiet = SiteQuiet::default();
        quiet.changed();
        let started = std::time::Instant::now();
        quiet.settled().await;
        assert!(started.elapsed() >= QUIET - Duration::from_millis(5));
    }
}
