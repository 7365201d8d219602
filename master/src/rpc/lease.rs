//! Restart leases: before a node takes a running server down for a
//! restart it asks for its cluster's lease, and gives it back once the
//! server is ready again, so that a cluster never has more than
//! `max_down` nodes restarting at once. The group and the limit come from
//! the node's latest stored catalog, never from the request.

use rigger_common::catalog::{Catalog, ResourceSpec, RestartLeaseSpec};
use rigger_common::proto::{RestartLeaseHolder, RestartLeaseReply, RestartLeaseRequest};
use rigger_common::time::now_ms;
use tonic::Status;

use super::MasterState;
use crate::store::LeaseRecord;

/// Leases never last longer than this, whatever the agent asks.
const MAX_TTL_SECS: u64 = 4 * 3600;
/// Nor shorter.
const MIN_TTL_SECS: u64 = 30;

/// The lease settings of `service` in the node's latest catalog.
async fn lease_spec(
    state: &MasterState,
    certname: &str,
    service: &str,
) -> Result<Option<RestartLeaseSpec>, Status> {
    let record = state.store.catalog(certname, None).await?.ok_or_else(|| {
        Status::failed_precondition(format!("node {certname} has no catalog yet"))
    })?;
    let catalog: Catalog = serde_json::from_slice(&record.catalog_json)
        .map_err(|e| Status::internal(format!("stored catalog does not decode: {e}")))?;
    catalog
        .content
        .resources
        .iter()
        .find_map(|r| match &r.spec {
            ResourceSpec::Service(s) if s.name == service => Some(s.restart_lease.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            Status::not_found(format!(
                "the latest catalog of node {certname} has no service {service:?}"
            ))
        })
}

/// The answer for a service whose restarts are not coordinated.
fn uncoordinated() -> RestartLeaseReply {
    RestartLeaseReply {
        granted: true,
        ..Default::default()
    }
}

fn holders(records: &[LeaseRecord]) -> Vec<RestartLeaseHolder> {
    records
        .iter()
        .map(|l| RestartLeaseHolder {
            certname: l.certname.clone(),
            service: l.service.clone(),
            acquired_at_ms: l.acquired_at_ms,
            expires_at_ms: l.expires_at_ms,
        })
        .collect()
}

/// Grants (or renews) the node's lease when fewer than `max_down` other
/// nodes of its group hold one.
pub async fn acquire(
    state: &MasterState,
    certname: &str,
    request: &RestartLeaseRequest,
) -> Result<RestartLeaseReply, Status> {
    let Some(spec) = lease_spec(state, certname, &request.service).await? else {
        return Ok(uncoordinated());
    };
    let now = now_ms();
    let ttl = request.ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS);
    let lease = LeaseRecord {
        group: spec.group.clone(),
        certname: certname.to_string(),
        service: request.service.clone(),
        acquired_at_ms: now,
        expires_at_ms: now + (ttl * 1000) as i64,
    };
    let (granted, current) = state.store.acquire_lease(&lease, spec.max_down).await?;
    if granted {
        tracing::info!(node = %certname, group = %spec.group, service = %request.service, ttl, "restart lease granted");
    } else {
        tracing::info!(node = %certname, group = %spec.group, held_by = ?current.iter().map(|l| &l.certname).collect::<Vec<_>>(), "restart lease refused: the group's limit is reached");
    }
    Ok(RestartLeaseReply {
        granted,
        group: spec.group,
        max_down: spec.max_down,
        holders: holders(&current),
    })
}

/// Gives the node's lease back (a no-op when it holds none).
pub async fn release(
    state: &MasterState,
    certname: &str,
    request: &RestartLeaseRequest,
) -> Result<RestartLeaseReply, Status> {
    let Some(spec) = lease_spec(state, certname, &request.service).await? else {
        return Ok(uncoordinated());
    };
    if state.store.release_lease(&spec.group, certname).await? {
        tracing::info!(node = %certname, group = %spec.group, "restart lease given back");
    }
    Ok(RestartLeaseReply {
        granted: true,
        group: spec.group,
        max_down: spec.max_down,
        holders: Vec::new(),
    })
}
