//! The supervisor between runs: servers of the last applied catalog that
//! the agent supervises itself (the `process` provider) and that exited are
//! started again, under the run lock so that a run is never raced.

use rigger_common::catalog::{Catalog, ResourceSpec, ServiceSpec};
use rigger_common::error_chain;
use rigger_common::report::ServiceHealth;
use rigger_common::time::{format_ms, now_ms};

use super::Agent;
use super::lock::RunLock;
use crate::resources::{ApplyContext, service};

impl Agent {
    /// Starts again every supervised server of the last applied catalog
    /// that has exited. Returns what it did; an error when a server would
    /// not come back.
    pub async fn supervise(&self) -> Result<Vec<String>, String> {
        let Some(catalog) = self.verified_cached_catalog() else {
            return Ok(vec![]);
        };
        let services = services(&catalog);
        if services.is_empty() {
            return Ok(vec![]);
        }
        // Never while a run holds the lock: the run decides then.
        let Ok(Some(_lock)) =
            RunLock::try_acquire(&RunLock::path_in(self.state.path()), "supervision")
        else {
            return Ok(vec![]);
        };
        let mut ctx = ApplyContext::new(self.paths.clone());
        ctx.catalog_version = catalog.version;
        ctx.supervising = true;
        tokio::task::spawn_blocking(move || restart_exited(services, &ctx))
            .await
            .map_err(|e| e.to_string())?
    }
}

impl Agent {
    /// What the services of the last applied catalog are doing now (a
    /// readiness probe each), for the heartbeat.
    pub async fn service_health(&self) -> Vec<ServiceHealth> {
        let Some(catalog) = self.verified_cached_catalog() else {
            return Vec::new();
        };
        let services = services(&catalog);
        let ctx = ApplyContext::new(self.paths.clone());
        tokio::task::spawn_blocking(move || {
            services
                .iter()
                .map(|spec| service::health(spec, &ctx, None))
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Tells the master what the services are doing (keeps the leases the
    /// node holds alive while it restarts); returns what it saw, and whether
    /// the master heard it. Nothing to say before the node has an identity
    /// and a catalog with services.
    pub async fn heartbeat(&self) -> (Vec<ServiceHealth>, Result<(), String>) {
        let services = self.service_health().await;
        let Some(identity) = self.loaded_identity() else {
            return (services, Ok(()));
        };
        if services.is_empty() {
            return (services, Ok(()));
        }
        let sent = match self.connector.connect(&identity).await {
            Ok(master) => master
                .heartbeat(services.clone())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        (services, sent)
    }
}

impl Agent {
    /// The running servers the supervisor keeps up, with their pids (for
    /// the daemon's exit watch).
    pub fn supervised_pids(&self) -> Vec<(String, u32)> {
        let Some(catalog) = self.verified_cached_catalog() else {
            return Vec::new();
        };
        let ctx = ApplyContext::new(self.paths.clone());
        services(&catalog)
            .into_iter()
            .filter(|s| service::supervised(s, &ctx))
            .filter_map(|s| Some((s.name.clone(), service::running_pid(&s, &ctx)?)))
            .collect()
    }
}

fn services(catalog: &Catalog) -> Vec<ServiceSpec> {
    catalog
        .content
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            ResourceSpec::Service(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn restart_exited(services: Vec<ServiceSpec>, ctx: &ApplyContext) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for spec in services {
        if !service::supervised(&spec, ctx) {
            continue;
        }
        service::rotate_log(&spec, ctx);
        if service::is_running(&spec, ctx).map_err(|e| error_chain(&e))? {
            continue;
        }
        service::apply(&spec, ctx).map_err(|e| {
            format!(
                "{} exited and did not come back: {}",
                spec.name,
                error_chain(&e)
            )
        })?;
        let note = format!(
            "{} had exited; started again at {}",
            spec.name,
            format_ms(now_ms())
        );
        tracing::warn!(service = %spec.name, "{note}");
        done.push(note);
    }
    Ok(done)
}
