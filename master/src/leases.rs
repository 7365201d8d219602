//! Restart leases: before a node takes a running server down for a
//! restart it asks for its cluster's lease, and gives it back once the
//! server is ready again, so that a cluster never has more than
//! `max_down` nodes restarting at once. The group and the limit come from
//! the node's latest stored catalog, never from the request.
//!
//! The restart budget (the PodDisruptionBudget rule) is counted from real
//! readiness: agents say what their services are doing with each report
//! and in a heartbeat every few seconds, and a lease is granted only while
//! at least `min_ready` other nodes of the group stay available — ready,
//! heard from within [`HEALTH_FRESH`], ready for the settle time, not
//! restarting. A node whose server failed to start blocks every other
//! restart of its cluster until it is ready again or removed, however long;
//! a dead node's lease lapses, but the dead node counts as down.
//!
//! Invariant: no more than `restart.max_down` nodes of a group hold an
//! unexpired lease, and none is granted below the group's budget.

use rigger_common::catalog::{ResourceSpec, RestartLeaseSpec};
use rigger_common::time::now_ms;

use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::{Budget, LeaseRecord, ServiceHealthRecord};

/// Health older than this is not believed: a node that stopped sending
/// heartbeats (every few seconds) counts as down after it.
pub const HEALTH_FRESH_MS: i64 = 90_000;

/// Leases never last longer than this, whatever the agent asks.
const MAX_TTL_SECS: u64 = 4 * 3600;
/// Nor shorter.
const MIN_TTL_SECS: u64 = 30;

/// The master's answer about a lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseAnswer {
    /// Whether the node holds the lease now (always true for a release).
    pub granted: bool,
    /// The group; "" when the service's restarts are not coordinated.
    pub group: String,
    /// Nodes of the group that may restart at once.
    pub max_down: u32,
    /// The group's holders (when refused: whom the node waits for).
    pub holders: Vec<LeaseRecord>,
    /// Nodes of the group that do not count as available, each with why.
    pub unavailable: Vec<String>,
    /// Nodes that must stay available while one is down.
    pub min_ready: u32,
}

pub use rigger_common::report::ServiceHealth as ServiceState;

/// The answer for a service whose restarts are not coordinated.
fn uncoordinated() -> LeaseAnswer {
    LeaseAnswer {
        granted: true,
        ..Default::default()
    }
}

/// The lease settings of `service` in the node's latest catalog.
async fn lease_spec(
    state: &MasterState,
    certname: &str,
    service: &str,
) -> Result<Option<RestartLeaseSpec>> {
    let record =
        state.store.catalog(certname, None).await?.ok_or_else(|| {
            Error::FailedPrecondition(format!("node {certname} has no catalog yet"))
        })?;
    record
        .catalog()?
        .content
        .resources
        .iter()
        .find_map(|r| match &r.spec {
            ResourceSpec::Service(s) if s.name == service => Some(s.restart_lease.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            Error::NotFound(format!(
                "the latest catalog of node {certname} has no service {service:?}"
            ))
        })
}

/// Grants (or renews) the node's lease for `service` when fewer than
/// `max_down` other nodes of its group hold one; the lease lapses after
/// `ttl_secs` (bounded) unless given back or renewed.
pub async fn acquire(
    state: &MasterState,
    certname: &str,
    service: &str,
    ttl_secs: u64,
) -> Result<LeaseAnswer> {
    let Some(spec) = lease_spec(state, certname, service).await? else {
        return Ok(uncoordinated());
    };
    let now = now_ms();
    let ttl = ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS);
    let lease = LeaseRecord {
        group: spec.group.clone(),
        certname: certname.to_string(),
        service: service.to_string(),
        acquired_at_ms: now,
        expires_at_ms: now + (ttl * 1000) as i64,
    };
    let budget = Budget {
        min_ready: spec.min_ready,
        fresh_since_ms: now - HEALTH_FRESH_MS,
        ready_before_ms: now - (spec.settle_secs * 1000) as i64,
    };
    let decision = state
        .store
        .acquire_lease(&lease, spec.max_down, Some(&budget))
        .await?;
    if decision.granted {
        tracing::info!(node = %certname, group = %spec.group, service, ttl, "restart lease granted");
    } else {
        tracing::info!(
            node = %certname,
            group = %spec.group,
            held_by = ?decision.holders.iter().map(|l| &l.certname).collect::<Vec<_>>(),
            unavailable = ?decision.unavailable,
            min_ready = decision.min_ready,
            "restart lease refused: the group's budget would be broken"
        );
    }
    Ok(LeaseAnswer {
        granted: decision.granted,
        group: spec.group,
        max_down: spec.max_down,
        holders: decision.holders,
        unavailable: decision.unavailable,
        min_ready: decision.min_ready,
    })
}

/// Records what a node says about its services (with a report, or in a
/// heartbeat, which also keeps the leases it holds alive). The group comes
/// from the node's latest catalog: a report looks it up (the catalog may
/// have changed), a heartbeat updates the row the last report made and
/// reads no catalog. Services its catalog does not coordinate count in no
/// budget.
pub async fn record_health(
    state: &MasterState,
    certname: &str,
    services: &[ServiceState],
    heartbeat: bool,
) -> Result<()> {
    let now = now_ms();
    for service in services {
        let mut record = ServiceHealthRecord {
            certname: certname.to_string(),
            service: service.name.clone(),
            group: String::new(),
            running: service.running,
            ready: service.ready,
            ready_since_ms: None,
            reported_at_ms: now,
            detail: rigger_common::text::printable(&service.detail)
                .chars()
                .take(2_000)
                .collect(),
            peers_changed: rigger_common::text::printable(&service.peers_changed)
                .chars()
                .take(1_000)
                .collect(),
        };
        // A report says which group the service is in now; a heartbeat
        // keeps the one its last report said.
        if !heartbeat {
            let Some(group) = lease_group(state, certname, &service.name).await else {
                continue;
            };
            record.group = group;
        }
        // What the node said before, again: only its time is written, and
        // without waiting for the disk (every converged run says it).
        if state
            .store
            .refresh_service_health(&record, heartbeat)
            .await?
        {
            continue;
        }
        if heartbeat {
            if state.store.update_service_health(&record).await? {
                continue;
            }
            let Some(group) = lease_group(state, certname, &service.name).await else {
                continue;
            };
            record.group = group;
        }
        state.store.record_service_health(&record).await?;
    }
    state
        .store
        .renew_leases(certname, now + HEALTH_FRESH_MS)
        .await?;
    Ok(())
}

/// The restart-lease group of the node's service in its latest catalog
/// (`None`: no such service, or no catalog to tell).
async fn lease_group(state: &MasterState, certname: &str, service: &str) -> Option<String> {
    match lease_spec(state, certname, service).await {
        Ok(Some(spec)) => Some(spec.group),
        Ok(None) | Err(_) => None,
    }
}

/// Gives the node's lease back (a no-op when it holds none).
pub async fn release(state: &MasterState, certname: &str, service: &str) -> Result<LeaseAnswer> {
    let Some(spec) = lease_spec(state, certname, service).await? else {
        return Ok(uncoordinated());
    };
    if state.store.release_lease(&spec.group, certname).await? {
        tracing::info!(node = %certname, group = %spec.group, "restart lease given back");
    }
    Ok(LeaseAnswer {
        granted: true,
        group: spec.group,
        max_down: spec.max_down,
        ..LeaseAnswer::default()
    })
}

/// An operator frees a node's lease of a group (`masterctl lease free`).
pub async fn free(state: &MasterState, group: &str, certname: &str) -> Result<()> {
    if !state.store.release_lease(group, certname).await? {
        return Err(Error::NotFound(format!(
            "node {certname} holds no restart lease of cluster {group}"
        )));
    }
    tracing::warn!(node = %certname, %group, "restart lease freed by an operator");
    Ok(())
}
