//! The cluster's restart leases, asked of the master: a node
//! takes its group's lease before it takes a running server down and gives
//! it back once the server is ready, so that a cluster keeps serving
//! through every change (see `rpc/lease.rs` on the master).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rigger_common::catalog::ServiceSpec;

use crate::client::{LeaseRequest, MasterClient};
use crate::resources::{ResourceError, RestartLeases};

/// How often a waiting node asks again.
const POLL: Duration = Duration::from_secs(1);

/// What a run is waiting for, shared with `agentctl status`.
#[derive(Debug, Clone, Default)]
pub struct Activity(std::sync::Arc<Mutex<String>>);

impl Activity {
    /// The current text ("" when the run waits for nothing).
    pub fn get(&self) -> String {
        self.0.lock().expect("activity").clone()
    }

    fn set(&self, text: String) {
        *self.0.lock().expect("activity") = text;
    }
}

/// Restart leases from the master, for the blocking apply thread.
#[derive(Debug)]
pub struct MasterLeases {
    master: Arc<dyn MasterClient>,
    runtime: tokio::runtime::Handle,
    /// Services whose lease this run holds.
    held: Mutex<HashSet<String>>,
    activity: Activity,
    stopping: tokio_util::sync::CancellationToken,
}

impl MasterLeases {
    /// Leases from `master`, driven by `runtime` (the apply thread blocks on it).
    /// While it waits, `activity` says for whom; `stopping` ends the wait.
    pub fn new(
        master: Arc<dyn MasterClient>,
        runtime: tokio::runtime::Handle,
        activity: Activity,
        stopping: tokio_util::sync::CancellationToken,
    ) -> Self {
        Self {
            master,
            runtime,
            held: Mutex::new(HashSet::new()),
            activity,
            stopping,
        }
    }

    fn request(spec: &ServiceSpec) -> LeaseRequest {
        LeaseRequest {
            service: spec.name.clone(),
            // Long enough to stop, start and become ready, with a margin.
            ttl_secs: spec.stop_grace_secs + spec.ready_timeout_secs + 60,
        }
    }
}

impl RestartLeases for MasterLeases {
    fn acquire(&self, spec: &ServiceSpec) -> Result<Option<String>, ResourceError> {
        let result = self.wait_for_lease(spec);
        self.activity.set(String::new());
        result
    }

    fn release(&self, spec: &ServiceSpec) {
        if spec.restart_lease.is_none() {
            return;
        }
        // Also when this run did not take it: an earlier run whose server
        // did not come back kept it (the master ignores a lease not held).
        self.held.lock().expect("lease set").remove(&spec.name);
        if let Err(e) = self
            .runtime
            .block_on(self.master.release_lease(Self::request(spec)))
        {
            tracing::warn!(service = %spec.name, error = %e, "cannot give the restart lease back; it lapses on its own");
        }
    }
}

impl MasterLeases {
    fn wait_for_lease(&self, spec: &ServiceSpec) -> Result<Option<String>, ResourceError> {
        let Some(lease) = &spec.restart_lease else {
            return Ok(None);
        };
        if self.held.lock().expect("lease set").contains(&spec.name) {
            return Ok(None);
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(lease.wait_secs);
        // Every node waited for, and the holders last reported.
        let mut waited_for: Vec<String> = Vec::new();
        let mut last_holders: Vec<String> = Vec::new();
        loop {
            let reply = self
                .runtime
                .block_on(self.master.acquire_lease(Self::request(spec)))
                .map_err(|e| {
                    ResourceError::LeaseUnavailable(format!(
                        "cannot ask the master for the restart lease of cluster {}: {e}",
                        lease.group,
                    ))
                })?;
            if reply.granted {
                self.held
                    .lock()
                    .expect("lease set")
                    .insert(spec.name.clone());
                tracing::info!(service = %spec.name, group = %reply.group, "restart lease taken");
                return Ok((!waited_for.is_empty()).then(|| {
                    format!(
                        "waited {} s for the restart lease of cluster {} (for {})",
                        started.elapsed().as_secs(),
                        reply.group,
                        waited_for.join(", ")
                    )
                }));
            }
            // What the node waits for: the holders of the group's lease,
            // and the nodes that are not ready (the cluster's budget).
            let holders: Vec<String> = if reply.unavailable.is_empty() {
                reply
                    .holders
                    .iter()
                    .map(|h| format!("{h}: it is restarting (it holds the lease)"))
                    .collect()
            } else {
                reply.unavailable.clone()
            };
            if holders != last_holders {
                self.activity.set(format!(
                    "restarting {} waits for the restart lease of cluster {} (waiting for {}; {} node(s) at a time)",
                    spec.name,
                    reply.group,
                    holders.join("; "),
                    reply.max_down
                ));
                tracing::info!(
                    service = %spec.name,
                    group = %reply.group,
                    max_down = reply.max_down,
                    waiting_for = %holders.join("; "),
                    "waiting for the cluster's restart lease"
                );
                for holder in &holders {
                    let node = holder.split(':').next().unwrap_or(holder).to_string();
                    if !waited_for.contains(&node) {
                        waited_for.push(node);
                    }
                }
                last_holders = holders.clone();
            }
            if self.stopping.is_cancelled() {
                return Err(ResourceError::Stopping(
                    "the agent is stopping: the server keeps running and the restart stays pending"
                        .into(),
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ResourceError::LeaseUnavailable(format!(
                    "the restart lease of cluster {} was not granted for {} s (restart.wait_secs): waiting for {}",
                    reply.group,
                    lease.wait_secs,
                    holders.join("; ")
                )));
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }
}
