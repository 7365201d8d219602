//! A server keeps running when only its peer lists change: the files are
//! rewritten, the server is not restarted and keeps the members it read
//! when it started. This remembers that, per service, with the pid of the
//! server that missed the change, so that the screens can say so; a
//! server started since (another pid) has read the new lists.

use std::path::PathBuf;

use rigger_common::catalog::ServiceSpec;
use rigger_common::fsutil::Ownership;
use rigger_common::time::{format_ms, now_ms};
use serde::{Deserialize, Serialize};

use super::provider;
use crate::resources::{ApplyContext, ResourceError};

/// What the running server missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PeerChange {
    /// The server that kept running.
    pid: u32,
    /// When its peer lists first changed, Unix ms.
    at_ms: i64,
    /// The files rewritten with new peer lists.
    files: Vec<String>,
}

fn marker(spec: &ServiceSpec, ctx: &ApplyContext) -> PathBuf {
    ctx.paths
        .state_dir()
        .join("services")
        .join(format!("{}.peers-changed", spec.name))
}

fn read(spec: &ServiceSpec, ctx: &ApplyContext) -> Option<PeerChange> {
    serde_json::from_slice(&std::fs::read(marker(spec, ctx)).ok()?).ok()
}

/// Records that `file` was rewritten with new peer lists while the server
/// kept running (nothing when it does not run).
pub fn note(spec: &ServiceSpec, ctx: &ApplyContext, file: &str) -> Result<(), ResourceError> {
    let Some(pid) = provider(spec, ctx).running(spec, ctx) else {
        return Ok(());
    };
    let mut change = match read(spec, ctx) {
        Some(change) if change.pid == pid => change,
        _ => PeerChange {
            pid,
            at_ms: now_ms(),
            files: Vec::new(),
        },
    };
    if change.files.iter().any(|f| f == file) {
        return Ok(());
    }
    change.files.push(file.to_string());
    let path = marker(spec, ctx);
    let root = ctx.beneath()?;
    root.create_dir_all(path.parent().expect("marker has a parent"))?;
    let json = serde_json::to_vec(&change).expect("a peer change serializes");
    root.write_atomic(&path, &json, 0o644, Ownership::default())?;
    Ok(())
}

/// What the server running as `pid` missed, for the screens ("" when it
/// started after the last peer change).
pub fn describe(spec: &ServiceSpec, ctx: &ApplyContext, pid: Option<u32>) -> String {
    match (read(spec, ctx), pid) {
        (Some(change), Some(pid)) if change.pid == pid => format!(
            "started with an older peer list: {} rewritten {} without a restart (a restart applies it)",
            change.files.join(", "),
            format_ms(change.at_ms)
        ),
        _ => String::new(),
    }
}
