//! Reports and catalog history do not grow without end: every hour (and a
//! minute after start) the master deletes each node's reports beyond its
//! newest `keep_reports` or older than `report_max_age`, and its catalog
//! versions beyond its newest `keep_catalogs` or older than
//! `catalog_max_age`.
//!
//! Invariant: what a screen or a rollback reads is never pruned — a node's
//! latest catalog, the version it applied, the version it is pinned to,
//! the versions a rollout may give it back, its newest report and its
//! newest report that was not a noop.

use std::collections::HashMap;
use std::time::Duration;

use rigger_common::time::now_ms;

use crate::state::SharedState;
use crate::store::{MetaStore, StoreError};

/// How much history the master keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Reports kept per node (newest first).
    pub keep_reports: u32,
    /// Reports older than this go.
    pub report_max_age: Duration,
    /// Catalog versions kept per node (newest first).
    pub keep_catalogs: u32,
    /// Catalog versions older than this go.
    pub catalog_max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_reports: 200,
            report_max_age: Duration::from_secs(30 * 86_400),
            keep_catalogs: 50,
            catalog_max_age: Duration::from_secs(90 * 86_400),
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Reports deleted.
    pub reports: u64,
    /// Catalog versions deleted.
    pub catalogs: u64,
}

/// One pass over every node, as of `now_ms`.
pub async fn prune(
    store: &dyn MetaStore,
    retention: &Retention,
    now_ms: i64,
) -> Result<Pruned, StoreError> {
    let cut = |age: Duration| now_ms.saturating_sub(age.as_millis() as i64);
    let reports = store
        .prune_reports(retention.keep_reports, cut(retention.report_max_age))
        .await?;
    // The versions a rollout may give each node back, or is giving it.
    let mut in_rollouts: HashMap<String, Vec<u64>> = HashMap::new();
    for rollout in store.rollouts().await? {
        for node in store.rollout_nodes(&rollout.cluster).await? {
            in_rollouts
                .entry(node.certname)
                .or_default()
                .extend([node.previous_version, node.version]);
        }
    }
    let mut catalogs = 0;
    for node in store.nodes().await? {
        let mut protect = in_rollouts.remove(&node.certname).unwrap_or_default();
        if let Some(report) = store.last_report(&node.certname).await? {
            protect.push(report.applied_version);
        }
        protect.extend(store.pin(&node.certname).await?);
        protect.retain(|v| *v > 0);
        catalogs += store
            .prune_catalogs(
                &node.certname,
                retention.keep_catalogs.max(1),
                cut(retention.catalog_max_age),
                &protect,
            )
            .await?;
    }
    Ok(Pruned { reports, catalogs })
}

/// Prunes a minute after start, then every hour, with the settings of the
/// moment, until the master stops.
pub fn spawn(state: SharedState) {
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = state.stopping.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = Duration::from_secs(3600);
            let retention = state.settings().retention;
            match prune(state.store.as_ref(), &retention, now_ms()).await {
                Ok(p) if p == Pruned::default() => {}
                Ok(p) => tracing::info!(
                    reports = p.reports,
                    catalogs = p.catalogs,
                    "old reports and catalog versions pruned"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "pruning old reports and catalog versions failed")
                }
            }
        }
    });
}
