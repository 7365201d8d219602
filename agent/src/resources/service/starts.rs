//! What started each server, for `agentctl status`: the catalog version it
//! was started with, when, why (a run, or the supervisor after it exited),
//! and how many times the supervisor had to start it again. Kept per
//! service in the agent's state directory, written at each start.

use std::path::PathBuf;

use rigger_common::catalog::ServiceSpec;
use rigger_common::fsutil::Ownership;
use rigger_common::time::now_ms;
use serde::{Deserialize, Serialize};

use crate::resources::ApplyContext;

/// The last start of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRecord {
    /// The process started (0: the manager did not say).
    pub pid: u32,
    /// The catalog version the server was started with (0: unknown).
    pub catalog_version: u64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// "run" or "supervisor" (it had exited).
    pub by: String,
    /// Times the supervisor started it again after it exited, since the
    /// agent first started it.
    pub restarts_after_exit: u64,
}

fn path(spec: &ServiceSpec, ctx: &ApplyContext) -> PathBuf {
    ctx.paths
        .state_dir()
        .join("services")
        .join(format!("{}.started", spec.name))
}

/// The server's last start, if the agent recorded one.
pub fn last(spec: &ServiceSpec, ctx: &ApplyContext) -> Option<StartRecord> {
    serde_json::from_slice(&std::fs::read(path(spec, ctx)).ok()?).ok()
}

/// Records a start now, with the context's catalog version; best effort
/// (a record that cannot be written only leaves the screen without it).
pub fn record(spec: &ServiceSpec, ctx: &ApplyContext, pid: u32) {
    let before = last(spec, ctx).unwrap_or_default();
    let supervisor = ctx.supervising;
    let record = StartRecord {
        pid,
        catalog_version: ctx.catalog_version,
        at_ms: now_ms(),
        by: if supervisor { "supervisor" } else { "run" }.to_string(),
        restarts_after_exit: before.restarts_after_exit + u64::from(supervisor),
    };
    let path = path(spec, ctx);
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            rigger_common::fsutil::write_atomic(
                &path,
                &serde_json::to_vec(&record).expect("a start record serializes"),
                0o644,
                Ownership::default(),
            )
            .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        tracing::debug!(service = %spec.name, error = %e, "cannot record the server's start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    fn spec() -> ServiceSpec {
        toml::from_str(
            r#"
            name = "wso2is"
            start = "bin/wso2server.sh"
            working_dir = "/opt/wso2/wso2is-5.11.0"
            log_file = "/var/log/wso2/wso2is/console.log"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_start_records_its_version_and_the_supervisor_counts_its_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ApplyContext::new(Paths::new(dir.path()));
        let spec = spec();
        assert_eq!(last(&spec, &ctx), None);
        ctx.catalog_version = 7;
        record(&spec, &ctx, 42);
        let first = last(&spec, &ctx).unwrap();
        assert_eq!(
            (
                first.catalog_version,
                first.by.as_str(),
                first.restarts_after_exit
            ),
            (7, "run", 0)
        );
        ctx.supervising = true;
        record(&spec, &ctx, 42);
        record(&spec, &ctx, 42);
        let again = last(&spec, &ctx).unwrap();
        assert_eq!(
            (again.by.as_str(), again.restarts_after_exit),
            ("supervisor", 2)
        );
        ctx.supervising = false;
        ctx.catalog_version = 8;
        record(&spec, &ctx, 42);
        let run = last(&spec, &ctx).unwrap();
        assert_eq!((run.catalog_version, run.restarts_after_exit), (8, 2));
    }
}
