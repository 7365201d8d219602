//! Rollouts: a change that would give the nodes of a cluster a new
//! catalog (site data, a module, an update level; not a peer list) reaches
//! them in steps. The first node that asks for the change after it was made
//! records a rollout for its cluster; `canary` nodes are admitted first,
//! then each of `waves`, and a step starts only once every node admitted
//! before it applied the change and has stayed ready for `bake`. A node not
//! admitted keeps getting its current catalog. A node whose run fails with
//! the change halts the rollout and, with `auto_rollback`, gets its last
//! good content back as a new, higher version (see [`catalogs::roll_back`]).
//! A newer change supersedes the rollout: it starts again from the canary
//! and the nodes it rolled back follow the site again.
//!
//! Invariant: while a rollout is not running (paused, halted, aborted), no
//! node of its cluster that had the old content is given the new one.

use std::collections::{BTreeSet, HashSet};

use rigger_common::catalog::{CatalogContent, ResourceSpec, RolloutSpec};
use rigger_common::digest::Digest;
use rigger_common::time::now_ms;

use crate::catalogs;
use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::{CatalogRecord, ReportRecord, RolloutNode, RolloutRecord};

/// A rollout that admits nodes.
pub const RUNNING: &str = "running";
/// Stopped by an operator; `resume` goes on.
pub const PAUSED: &str = "paused";
/// Stopped by a node that failed.
pub const HALTED: &str = "halted";
/// Stopped by an operator, every admitted node rolled back.
pub const ABORTED: &str = "aborted";
/// Stopped, and the site has changed since (a fix, a revert).
pub const SUPERSEDED: &str = "superseded";

/// A node held back until the rollout admits it.
pub const WAITING: &str = "waiting";
/// A node given the change, not yet applied.
pub const ADMITTED: &str = "admitted";
/// A node that applied the change.
pub const APPLIED: &str = "applied";
/// A node whose run failed with the change.
pub const FAILED: &str = "failed";
/// A node given its last good content back.
pub const ROLLED_BACK: &str = "rolled back";

/// What [`catalogs::publish`] does with a node's new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Publish it (no rollout holds it back).
    Publish,
    /// Keep serving the node's current catalog.
    Hold,
}

/// The cluster and rollout settings of a catalog's coordinated service.
pub fn rollout_of(content: &CatalogContent) -> Option<(String, RolloutSpec)> {
    content.resources.iter().find_map(|r| match &r.spec {
        ResourceSpec::Service(s) => s
            .restart_lease
            .as_ref()
            .and_then(|l| Some((l.group.clone(), *l.rollout.clone()?))),
        _ => None,
    })
}

/// Whether `new` differs from `old` only in files whose restart key (their
/// rendering without peers) is the same: a peer-list change, never held back.
pub fn peer_only(old: &CatalogContent, new: &CatalogContent) -> bool {
    fn without_peers(content: &CatalogContent) -> Digest {
        let mut content = content.clone();
        for resource in &mut content.resources {
            if let ResourceSpec::File(file) = &mut resource.spec {
                if file.restart_key.is_some() {
                    file.content.clear();
                    file.source = None;
                    file.redacted_content = None;
                }
            }
        }
        content.digest()
    }
    without_peers(old) == without_peers(new)
}

/// Decides whether the node gets its new content now. Called with the
/// catalog lock held, for a node that has a catalog and is not pinned.
pub async fn admission(
    state: &MasterState,
    certname: &str,
    latest: &CatalogRecord,
    new: &CatalogContent,
) -> Result<Admission> {
    let Some((cluster, spec)) = rollout_of(new) else {
        return Ok(Admission::Publish);
    };
    if peer_only(&latest.catalog()?.content, new) {
        return Ok(Admission::Publish);
    }
    let revision = crate::revision::current(state).await?.digest;
    let now = now_ms();
    let rollout = match state.store.rollout(&cluster).await? {
        Some(r) if r.revision == revision => r,
        old => start(state, &cluster, &revision, old, now).await?,
    };
    let nodes = state.store.rollout_nodes(&cluster).await?;
    let mut node = RolloutNode {
        cluster: cluster.clone(),
        certname: certname.to_string(),
        state: WAITING.to_string(),
        version: 0,
        previous_version: latest.version,
        since_ms: now,
        error: String::new(),
    };
    match nodes.iter().find(|n| n.certname == certname) {
        Some(n) if [ADMITTED, APPLIED].contains(&n.state.as_str()) => {
            node.state = ADMITTED.to_string();
            node.version = latest.version + 1;
            node.previous_version = n.previous_version;
            state.store.put_rollout_node(&node).await?;
            return Ok(Admission::Publish);
        }
        Some(n) if n.state != WAITING => return Ok(Admission::Hold),
        Some(n) => node.since_ms = n.since_ms,
        None => {}
    }
    let admit = rollout.state == RUNNING && {
        let members = members(state, &cluster, certname).await?;
        let admitted: Vec<&RolloutNode> = nodes.iter().filter(|n| n.state != WAITING).collect();
        // Within a step nodes are admitted as they ask; the next step
        // starts once every node admitted before it has baked.
        admitted.is_empty()
            || !step_targets(&spec, members.len()).contains(&admitted.len())
            || all_baked(state, &cluster, &admitted, spec.bake_secs, now)
                .await?
                .is_none()
    };
    if admit {
        node.state = ADMITTED.to_string();
        node.version = latest.version + 1;
        node.since_ms = now;
        tracing::info!(node = %certname, %cluster, "admitted by the rollout");
    } else {
        tracing::info!(node = %certname, %cluster, rollout = %rollout.state, "held back by the rollout: keeps catalog version {}", latest.version);
    }
    state.store.put_rollout_node(&node).await?;
    Ok(if admit {
        Admission::Publish
    } else {
        Admission::Hold
    })
}

/// Records a new rollout for the cluster; a rollout it supersedes lets
/// the nodes it rolled back follow the site again.
async fn start(
    state: &MasterState,
    cluster: &str,
    revision: &str,
    old: Option<RolloutRecord>,
    now: i64,
) -> Result<RolloutRecord> {
    if let Some(old) = &old {
        for node in state.store.rollout_nodes(cluster).await? {
            if node.state == ROLLED_BACK && state.store.pin(&node.certname).await?.is_some() {
                state.store.set_pin(&node.certname, None).await?;
            }
        }
        tracing::info!(%cluster, superseded = %old.state, "a newer change supersedes the cluster's rollout");
    }
    let record = RolloutRecord {
        cluster: cluster.to_string(),
        revision: revision.to_string(),
        state: RUNNING.to_string(),
        created_at_ms: now,
        updated_at_ms: now,
        reason: String::new(),
    };
    state.store.put_rollout(&record).await?;
    tracing::info!(%cluster, %revision, "rollout started");
    Ok(record)
}

/// Lets a node the rollout rolled back follow the site again once the
/// site has changed since the rollout's change (the operator fixed or
/// reverted it); the stopped rollout is then superseded. Returns whether
/// the node's pin was lifted.
pub async fn release_rolled_back(state: &MasterState, certname: &str) -> Result<bool> {
    let mut revision = None;
    for mut rollout in state.store.rollouts().await? {
        let rolled_back = state
            .store
            .rollout_nodes(&rollout.cluster)
            .await?
            .iter()
            .any(|n| n.certname == certname && n.state == ROLLED_BACK);
        if !rolled_back {
            continue;
        }
        let current = match &revision {
            Some(r) => r,
            None => revision.insert(crate::revision::current(state).await?.digest),
        };
        if *current == rollout.revision {
            return Ok(false);
        }
        state.store.set_pin(certname, None).await?;
        if rollout.state != SUPERSEDED {
            rollout.reason = format!(
                "the site changed (revision {current}) after: {}",
                rollout.reason
            );
            rollout.state = SUPERSEDED.to_string();
            rollout.updated_at_ms = now_ms();
            state.store.put_rollout(&rollout).await?;
        }
        tracing::info!(node = %certname, cluster = %rollout.cluster, "the site changed since the rollout rolled the node back: it follows the site again");
        return Ok(true);
    }
    Ok(false)
}

/// The live nodes of the cluster: those whose services count in its
/// budget, heard from within the peer timeout, and the node asking.
async fn members(state: &MasterState, cluster: &str, asking: &str) -> Result<BTreeSet<String>> {
    let since = state.live_since_ms();
    let enrolled = enrolled(state).await?;
    let mut members: BTreeSet<String> = state
        .store
        .service_health()
        .await?
        .into_iter()
        .filter(|h| h.group == cluster && h.reported_at_ms >= since)
        .map(|h| h.certname)
        .filter(|c| enrolled.contains(c))
        .collect();
    members.insert(asking.to_string());
    Ok(members)
}

/// The number of nodes admitted once each step is reached: `canary`, then
/// each wave, growing, ending with the whole cluster.
pub fn step_targets(spec: &RolloutSpec, members: usize) -> Vec<usize> {
    let resolve = |step: &str| -> usize {
        let wanted = match step.strip_suffix('%') {
            Some(p) => (p.parse::<usize>().unwrap_or(100) * members).div_ceil(100),
            None => step.parse::<usize>().unwrap_or(members),
        };
        wanted.clamp(1, members.max(1))
    };
    let mut targets: Vec<usize> = Vec::new();
    for step in std::iter::once(&spec.canary).chain(&spec.waves) {
        let target = resolve(step).max(targets.last().copied().unwrap_or(0));
        if targets.last() != Some(&target) {
            targets.push(target);
        }
    }
    if targets.last() != Some(&members) && members > 0 {
        targets.push(members);
    }
    targets
}

/// `None` when every admitted node still enrolled applied the change and
/// has been ready (every service, freshly heard) for `bake_secs` since;
/// else what it waits for.
async fn all_baked(
    state: &MasterState,
    cluster: &str,
    admitted: &[&RolloutNode],
    bake_secs: u64,
    now: i64,
) -> Result<Option<String>> {
    let health = state.store.service_health().await?;
    let fresh_since = now - crate::leases::HEALTH_FRESH_MS;
    let baked_before = now - (bake_secs * 1000) as i64;
    // A node an operator removed (a dead instance) is not waited for.
    let enrolled = enrolled(state).await?;
    for node in admitted.iter().filter(|n| enrolled.contains(&n.certname)) {
        if node.state != APPLIED {
            return Ok(Some(format!(
                "{} to apply the change ({})",
                node.certname, node.state
            )));
        }
        let services: Vec<_> = health
            .iter()
            .filter(|h| h.certname == node.certname && h.group == cluster)
            .collect();
        if services.is_empty() {
            return Ok(Some(format!("{} to report its services", node.certname)));
        }
        for h in services {
            // Ready with the change: since it applied it, at the earliest.
            let ready_since = h
                .ready_since_ms
                .filter(|_| h.ready && h.reported_at_ms >= fresh_since)
                .map(|since| since.max(node.since_ms));
            match ready_since {
                None => {
                    return Ok(Some(format!(
                        "{} to be ready ({})",
                        node.certname, h.service
                    )));
                }
                Some(since) if since > baked_before => {
                    return Ok(Some(format!(
                        "{} to stay ready for {bake_secs}s (ready {}s)",
                        node.certname,
                        (now - since) / 1000
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(None)
}

/// The node's entry in a rollout that still watches it (admitted or
/// applied), with the rollout.
async fn watched(
    state: &MasterState,
    certname: &str,
) -> Result<Option<(RolloutRecord, RolloutNode)>> {
    for rollout in state.store.rollouts().await? {
        let node = state
            .store
            .rollout_nodes(&rollout.cluster)
            .await?
            .into_iter()
            .find(|n| n.certname == certname && [ADMITTED, APPLIED].contains(&n.state.as_str()));
        if let Some(node) = node {
            return Ok(Some((rollout, node)));
        }
    }
    Ok(None)
}

/// Follows a node's report: an applied change counts toward the next
/// step; a failed run halts the rollout and, with `auto_rollback`, gives the
/// node its last good content back.
pub async fn on_report(state: &MasterState, certname: &str, report: &ReportRecord) -> Result<()> {
    if report.noop {
        return Ok(());
    }
    let Some((rollout, mut node)) = watched(state, certname).await? else {
        return Ok(());
    };
    if report.catalog_version < node.version {
        return Ok(());
    }
    if report.failed == 0 {
        if node.state == ADMITTED {
            node.state = APPLIED.to_string();
            node.since_ms = now_ms();
            state.store.put_rollout_node(&node).await?;
        }
        return Ok(());
    }
    let why = format!("failed with catalog version {}", report.catalog_version);
    halt(state, rollout, node, &why, failure_text(report)).await
}

/// Follows what a node says of its services (a heartbeat, or a report's
/// services after the run): a node that applied the change and stops
/// being ready while it bakes (a server that crashes with the new
/// configuration) halts the rollout as a failed run does.
pub async fn on_health(
    state: &MasterState,
    certname: &str,
    services: &[rigger_common::report::ServiceHealth],
) -> Result<()> {
    let Some(down) = services.iter().find(|s| !s.ready) else {
        return Ok(());
    };
    let Some((rollout, node)) = watched(state, certname).await? else {
        return Ok(());
    };
    if node.state != APPLIED {
        return Ok(());
    }
    let bake_ms = catalogs::stored(state, certname, Some(node.version))
        .await
        .ok()
        .and_then(|c| rollout_of(&c.content))
        .map_or(0, |(_, spec)| spec.bake_secs as i64 * 1000);
    if now_ms() - node.since_ms > bake_ms {
        return Ok(());
    }
    let why = format!(
        "stopped being ready with catalog version {} while it baked",
        node.version
    );
    let error = format!("{}: {}", down.name, down.detail);
    halt(
        state,
        rollout,
        node,
        &why,
        rigger_common::text::printable(&error)
            .chars()
            .take(4000)
            .collect(),
    )
    .await
}

/// Halts the rollout for the node's failure and, with `auto_rollback`,
/// gives the node its last good content back.
async fn halt(
    state: &MasterState,
    mut rollout: RolloutRecord,
    mut node: RolloutNode,
    why: &str,
    error: String,
) -> Result<()> {
    let now = now_ms();
    // The rollout first: should recording the node fail, the rollout is
    // halted all the same and the node, still applied, halts it again on
    // its next heartbeat.
    rollout.state = HALTED.to_string();
    rollout.updated_at_ms = now;
    rollout.reason = format!("{} {why}: {error}", node.certname);
    state.store.put_rollout(&rollout).await?;
    node.error = error;
    node.state = FAILED.to_string();
    node.since_ms = now;
    state.store.put_rollout_node(&node).await?;
    tracing::error!(node = %node.certname, cluster = %rollout.cluster, error = %node.error, "rollout halted: a node {why}");
    let auto_rollback = catalogs::stored(state, &node.certname, Some(node.version))
        .await
        .ok()
        .and_then(|c| rollout_of(&c.content))
        .is_some_and(|(_, spec)| spec.auto_rollback);
    if auto_rollback {
        roll_back(state, &mut node).await?;
    }
    Ok(())
}

/// What a failed run says: each failed resource and its error (the
/// server's last output among them), bounded.
fn failure_text(report: &ReportRecord) -> String {
    let text = report
        .resources
        .iter()
        .filter(|r| r.status == "failed")
        .map(|r| format!("{}: {}", r.id, r.message))
        .collect::<Vec<_>>()
        .join("\n");
    let text = if text.is_empty() {
        format!("{} resources failed", report.failed)
    } else {
        text
    };
    rigger_common::text::printable(&text)
        .chars()
        .take(4000)
        .collect()
}

/// Gives a node its content from before the change, as a new version.
async fn roll_back(state: &MasterState, node: &mut RolloutNode) -> Result<()> {
    if node.previous_version == 0 || node.version == 0 {
        return Ok(());
    }
    let catalog = catalogs::roll_back(state, &node.certname, node.previous_version).await?;
    tracing::warn!(node = %node.certname, cluster = %node.cluster, from = node.version, to = node.previous_version, version = catalog.version, "rolled back by the rollout");
    node.state = ROLLED_BACK.to_string();
    node.since_ms = now_ms();
    state.store.put_rollout_node(node).await?;
    Ok(())
}

/// What an operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Admit no further node.
    Pause,
    /// Go on; after a halt, try the failed nodes again.
    Resume,
    /// Roll every admitted node back and admit no further node.
    Abort,
}

/// Pauses, resumes or aborts the cluster's rollout; returns it after.
pub async fn control(state: &MasterState, cluster: &str, what: Control) -> Result<RolloutRecord> {
    let mut rollout = state
        .store
        .rollout(cluster)
        .await?
        .ok_or_else(|| Error::NotFound(format!("cluster {cluster} has no rollout")))?;
    let refuse = |how: &str| {
        Err(Error::FailedPrecondition(format!(
            "the rollout of cluster {cluster} is {}: it cannot be {how}",
            rollout.state
        )))
    };
    match what {
        Control::Pause if rollout.state != RUNNING => return refuse("paused"),
        Control::Resume if ![PAUSED, HALTED].contains(&rollout.state.as_str()) => {
            return refuse("resumed");
        }
        Control::Abort if rollout.state == ABORTED => return refuse("aborted"),
        Control::Pause => rollout.state = PAUSED.to_string(),
        Control::Resume => {
            for mut node in state.store.rollout_nodes(cluster).await? {
                match node.state.as_str() {
                    FAILED => node.state = ADMITTED.to_string(),
                    ROLLED_BACK => {
                        state.store.set_pin(&node.certname, None).await?;
                        node.state = WAITING.to_string();
                        node.version = 0;
                    }
                    _ => continue,
                }
                node.error.clear();
                node.since_ms = now_ms();
                state.store.put_rollout_node(&node).await?;
            }
            rollout.state = RUNNING.to_string();
            rollout.reason.clear();
        }
        Control::Abort => {
            for mut node in state.store.rollout_nodes(cluster).await? {
                if [ADMITTED, APPLIED, FAILED].contains(&node.state.as_str()) {
                    roll_back(state, &mut node).await?;
                }
            }
            rollout.state = ABORTED.to_string();
        }
    }
    rollout.updated_at_ms = now_ms();
    state.store.put_rollout(&rollout).await?;
    tracing::warn!(%cluster, state = %rollout.state, "rollout {what:?} by an operator");
    Ok(rollout)
}

/// A rollout as the screens show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutView {
    /// The record.
    pub rollout: RolloutRecord,
    /// `running`, `paused`, `halted`, `aborted` or `complete` (running,
    /// every node that asked has the change and has baked).
    pub phase: String,
    /// Its nodes.
    pub nodes: Vec<RolloutNode>,
    /// Nodes of the cluster now.
    pub members: usize,
    /// Admitted nodes at each step.
    pub steps: Vec<usize>,
    /// What the next step waits for ("" when nothing).
    pub waiting_for: String,
}

/// The cluster's rollout (or every rollout) with its nodes and progress.
pub async fn views(state: &MasterState, cluster: Option<&str>) -> Result<Vec<RolloutView>> {
    let mut views = Vec::new();
    for rollout in state.store.rollouts().await? {
        if cluster.is_some_and(|c| c != rollout.cluster) {
            continue;
        }
        let nodes = state.store.rollout_nodes(&rollout.cluster).await?;
        let spec = spec_of(state, &nodes).await;
        let first = nodes
            .first()
            .map(|n| n.certname.clone())
            .unwrap_or_default();
        let members = members(state, &rollout.cluster, &first).await?.len();
        let waiting_for = waiting_for(state, &rollout.cluster, &nodes, spec.clone())
            .await?
            .unwrap_or_default();
        let holding = nodes.iter().any(|n| n.state == WAITING);
        let phase = if rollout.state == RUNNING && waiting_for.is_empty() && !holding {
            "complete".to_string()
        } else {
            rollout.state.clone()
        };
        views.push(RolloutView {
            steps: spec.map(|s| step_targets(&s, members)).unwrap_or_default(),
            rollout,
            phase,
            nodes,
            members,
            waiting_for,
        });
    }
    if let (Some(cluster), true) = (cluster, views.is_empty()) {
        return Err(Error::NotFound(format!("cluster {cluster} has no rollout")));
    }
    Ok(views)
}

/// Why the node is kept on its current version, for its own screens: it
/// waits for its turn in its cluster's rollout, or the rollout rolled it
/// back; "" when no rollout holds it.
pub async fn held_note(state: &MasterState, certname: &str) -> Result<String> {
    for rollout in state.store.rollouts().await? {
        let nodes = state.store.rollout_nodes(&rollout.cluster).await?;
        let Some(node) = nodes.iter().find(|n| n.certname == certname) else {
            continue;
        };
        let cluster = &rollout.cluster;
        let reason = rollout.reason.lines().next().unwrap_or_default();
        return Ok(match (node.state.as_str(), rollout.state.as_str()) {
            (WAITING, RUNNING) => {
                match waiting_for(state, cluster, &nodes, spec_of(state, &nodes).await).await? {
                    Some(what) => format!("cluster {cluster}'s rollout is waiting for {what}"),
                    None => format!("cluster {cluster}'s rollout admits it at its next step"),
                }
            }
            (WAITING, stopped) => format!("cluster {cluster}'s rollout is {stopped}: {reason}"),
            (ROLLED_BACK, _) => format!(
                "cluster {cluster}'s rollout gave it its last good content back ({reason}); it follows the site again once the site changes"
            ),
            _ => String::new(),
        });
    }
    Ok(String::new())
}

/// What the rollout's next step waits for (`None`: nothing, every node
/// admitted so far has baked).
async fn waiting_for(
    state: &MasterState,
    cluster: &str,
    nodes: &[RolloutNode],
    spec: Option<RolloutSpec>,
) -> Result<Option<String>> {
    let admitted: Vec<&RolloutNode> = nodes.iter().filter(|n| n.state != WAITING).collect();
    let bake = spec.map_or(0, |s| s.bake_secs);
    all_baked(state, cluster, &admitted, bake, now_ms()).await
}

/// The certnames of the enrolled nodes.
async fn enrolled(state: &MasterState) -> Result<HashSet<String>> {
    Ok(state
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| n.certname)
        .collect())
}

/// The rollout settings the change carries (from an admitted node's catalog).
async fn spec_of(state: &MasterState, nodes: &[RolloutNode]) -> Option<RolloutSpec> {
    for node in nodes.iter().filter(|n| n.version > 0) {
        if let Ok(catalog) = catalogs::stored(state, &node.certname, Some(node.version)).await {
            if let Some((_, spec)) = rollout_of(&catalog.content) {
                return Some(spec);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(canary: &str, waves: &[&str]) -> RolloutSpec {
        RolloutSpec {
            canary: canary.into(),
            waves: waves.iter().map(|w| w.to_string()).collect(),
            bake_secs: 60,
            auto_rollback: true,
        }
    }

    fn with_file(content: &str, restart_key: Option<&str>) -> CatalogContent {
        use rigger_common::catalog::{FileSpec, Resource};
        CatalogContent {
            role: "is".into(),
            profile: "wso2is/is".into(),
            resources: vec![Resource {
                id: "file:deployment_toml".into(),
                requires: vec![],
                notifies: vec![],
                spec: ResourceSpec::File(FileSpec {
                    path: "/opt/deployment.toml".into(),
                    content: content.into(),
                    source: None,
                    mode: None,
                    owner: None,
                    group: None,
                    secret: false,
                    restart_key: restart_key.map(|k| Digest::of(k.as_bytes())),
                    redacted_content: None,
                }),
            }],
        }
    }

    #[test]
    fn only_a_file_with_the_same_restart_key_is_a_peer_change() {
        let old = with_file("members = [a]", Some("k1"));
        assert!(peer_only(&old, &with_file("members = [a, b]", Some("k1"))));
        assert!(!peer_only(&old, &with_file("members = [a, b]", Some("k2"))));
        // A file the module marks as restarting on peer changes has no key.
        let marked = with_file("members = [a]", None);
        assert!(!peer_only(&marked, &with_file("members = [a, b]", None)));
        assert!(peer_only(&marked, &marked.clone()));
    }

    #[test]
    fn steps_grow_to_the_whole_cluster() {
        assert_eq!(step_targets(&spec("1", &["50%", "100%"]), 4), [1, 2, 4]);
        assert_eq!(step_targets(&spec("1", &["50%", "100%"]), 2), [1, 2]);
        assert_eq!(step_targets(&spec("1", &["50%", "100%"]), 1), [1]);
        assert_eq!(step_targets(&spec("10%", &["30%"]), 10), [1, 3, 10]);
        // A wave smaller than the canary does not shrink the step.
        assert_eq!(step_targets(&spec("3", &["10%"]), 10), [3, 10]);
        assert_eq!(step_targets(&spec("5", &[]), 3), [3]);
    }
}
