//! The inventory as operators see it: every node with its catalog version
//! and last run, and where a node's data value comes from (`lookup`).

use crate::error::{Error, Result};
use crate::state::MasterState;

/// One node, for `masterctl node list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSummary {
    /// Certname.
    pub certname: String,
    /// Role of its latest catalog (else the one its token bound).
    pub role: String,
    /// Private IP from its last facts.
    pub ip: String,
    /// Enrollment, Unix ms.
    pub enrolled_at_ms: i64,
    /// Last catalog request, Unix ms.
    pub last_seen_ms: i64,
    /// Its latest catalog version (0: none).
    pub catalog_version: u64,
    /// The version its last run that was not a noop applied (0: none).
    pub applied_version: u64,
    /// The site revision that version was compiled from, with the site's
    /// git commit ("" when unknown).
    pub site_revision: String,
    /// Why the master could not give it a catalog when it last asked.
    pub catalog_error: String,
    /// The last report's changes (pending, for a noop).
    pub last_run_changed: u32,
    /// The last report's failures.
    pub last_run_failed: u32,
    /// Its last report's status ("" before the first).
    pub last_run_status: String,
    /// When that report came, Unix ms.
    pub last_report_ms: i64,
    /// Its services as the restart budget counts them: `ready`, `not
    /// ready: why`, or `unreachable` (not heard from within the health
    /// window); "" when it has none.
    pub services: String,
}

/// Every node, by name.
pub async fn nodes(state: &MasterState) -> Result<Vec<NodeSummary>> {
    let store = &state.store;
    let mut nodes = Vec::new();
    let health = store.service_health().await?;
    let fresh_since = rigger_common::time::now_ms() - crate::leases::HEALTH_FRESH_MS;
    for n in store.nodes().await? {
        let latest = store.catalog(&n.certname, None).await?;
        let catalog_version = latest.as_ref().map_or(0, |c| c.version);
        let report = store.last_report(&n.certname).await?;
        let applied_version = report.as_ref().map_or(0, |r| r.applied_version);
        let applied = match latest {
            Some(c) if c.version == applied_version || applied_version == 0 => Some(c),
            _ => store.catalog(&n.certname, Some(applied_version)).await?,
        };
        let site_revision = applied.map_or_else(String::new, |c| {
            let (revision, commit) = c.site_revision();
            rigger_common::catalog::site_revision_text(&revision, commit.as_deref())
        });
        nodes.push(NodeSummary {
            role: n.role.or(n.bound_role).unwrap_or_default(),
            ip: n.ip.unwrap_or_default(),
            enrolled_at_ms: n.enrolled_at_ms,
            last_seen_ms: n.last_seen_ms,
            catalog_version,
            applied_version,
            site_revision,
            catalog_error: n.catalog_error.clone(),
            last_run_changed: report.as_ref().map_or(0, |r| r.changed),
            last_run_failed: report.as_ref().map_or(0, |r| r.failed),
            last_run_status: report
                .as_ref()
                .map(|r| r.status.clone())
                .unwrap_or_default(),
            last_report_ms: report.map_or(0, |r| r.received_at_ms),
            services: health
                .iter()
                .filter(|h| h.certname == n.certname)
                .map(|h| {
                    let state = if h.reported_at_ms < fresh_since {
                        "unreachable".to_string()
                    } else if h.ready {
                        "ready".to_string()
                    } else {
                        let why = h.detail.lines().next().unwrap_or("not ready");
                        format!("not ready: {why}")
                    };
                    if h.peers_changed.is_empty() {
                        format!("{} {state}", h.service)
                    } else {
                        format!("{} {state}, started with an older peer list", h.service)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            certname: n.certname,
        });
    }
    Ok(nodes)
}

/// One node as `masterctl node show` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDetail {
    /// Its line of `node list`.
    pub summary: NodeSummary,
    /// The facts of its last catalog request.
    pub facts: serde_json::Value,
    /// Its last reports, newest first, with when each came.
    pub reports: Vec<(i64, crate::store::ReportRecord)>,
}

/// One node, its facts and its last `reports` reports.
pub async fn node(state: &MasterState, certname: &str, reports: u32) -> Result<NodeDetail> {
    let summary = nodes(state)
        .await?
        .into_iter()
        .find(|n| n.certname == certname)
        .ok_or_else(|| Error::NotFound(format!("node {certname} is not in the inventory")))?;
    Ok(NodeDetail {
        summary,
        facts: state
            .store
            .node_facts(certname)
            .await?
            .unwrap_or(serde_json::Value::Null),
        reports: state.store.reports(certname, reports.clamp(1, 100)).await?,
    })
}

/// A data key explained for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The node's role.
    pub role: String,
    /// The merged value as TOML text (`None`: not set).
    pub value: Option<String>,
    /// The files that set it, most specific first, with their values.
    pub sources: Vec<(String, String)>,
}

/// Where `key`'s value for `certname` comes from.
pub async fn lookup(state: &MasterState, certname: &str, key: &str) -> Result<Lookup> {
    let node = state
        .store
        .node(certname)
        .await?
        .ok_or_else(|| Error::NotFound(format!("node {certname} is not in the inventory")))?;
    let role = node
        .role
        .or(node.bound_role)
        .ok_or_else(|| Error::FailedPrecondition(format!("node {certname} has no role yet")))?;
    let explained = state
        .compiler
        .explain(&role, certname, key)
        .map_err(|e| Error::FailedPrecondition(rigger_common::error_chain(&e)))?;
    Ok(Lookup {
        role,
        value: explained.value.as_ref().map(toml_text),
        sources: explained
            .sources
            .iter()
            .map(|(file, value)| (file.display().to_string(), toml_text(value)))
            .collect(),
    })
}

/// A TOML value as it would be written in a data file.
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => toml::to_string(t)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        other => other.to_string(),
    }
}
