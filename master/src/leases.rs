//! Restart leases: before a node takes a running server down for a
//! restart it asks for its cluster's lease, and gives it back once the
//! server is ready again, so that a cluster never has more than
//! `max_down` nodes restarting at once. The group and the limit come from
//! the node's latest stored catalog, never from the request.
//!
//! Invariant: no more than `restart.max_down` nodes of a group hold an
//! unexpired lease.

use rigger_common::catalog::{ResourceSpec, RestartLeaseSpec};
use rigger_common::time::now_ms;

use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::LeaseRecord;

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
}

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
    let (granted, holders) = state.store.acquire_lease(&lease, spec.max_down).await?;
    if granted {
        tracing::info!(node = %certname, group = %spec.group, service, ttl, "restart lease granted");
    } else {
        tracing::info!(node = %certname, group = %spec.group, held_by = ?holders.iter().map(|l| &l.certname).collect::<Vec<_>>(), "restart lease refused: the group's limit is reached");
    }
    Ok(LeaseAnswer {
        granted,
        group: spec.group,
        max_down: spec.max_down,
        holders,
    })
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
        holders: Vec::new(),
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
