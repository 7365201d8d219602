//! A run report: what an agent tells its master after a run and what the
//! master keeps. One type for both sides; the wire form converts in
//! `proto.rs`.

use serde::{Deserialize, Serialize};

/// One resource's outcome in a report (resources that stayed unchanged are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedOutcome {
    /// Resource id.
    pub id: String,
    /// "changed", "failed", "skipped" or "pending" (noop).
    pub status: String,
    /// What happened.
    pub message: String,
    /// The unified diff of a file's content (secrets masked), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
}

/// What a service is doing, as the node sees it (after a run, and in the
/// daemon's heartbeats): the readiness the cluster's restart budget counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    /// The service resource's name.
    pub name: String,
    /// Whether its process runs.
    pub running: bool,
    /// Whether it answers its readiness check.
    pub ready: bool,
    /// Why it is not ready (an error, the server's last output).
    pub detail: String,
    /// When the running server started before its peer lists changed
    /// (rewritten without a restart): what changed and when; "" otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peers_changed: String,
}

/// A run as the agent reports it and the master records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Catalog version applied (or planned).
    pub catalog_version: u64,
    /// Its digest, as the agent saw it.
    pub catalog_digest: String,
    /// Start, Unix ms.
    pub started_at_ms: i64,
    /// Duration.
    pub duration_ms: u64,
    /// Resources changed (pending, in noop).
    pub changed: u32,
    /// Resources failed.
    pub failed: u32,
    /// Resources skipped.
    pub skipped: u32,
    /// Whether the run only planned.
    pub noop: bool,
    /// The agent enforced its cached catalog.
    pub used_cached_catalog: bool,
    /// Every resource that did not stay unchanged.
    pub resources: Vec<ReportedOutcome>,
    /// The node's services after the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceHealth>,
    /// Why the run happened: "scheduled", "pushed", "drift", "manual" or
    /// "once" ("" from older agents).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trigger: String,
    /// Where the run's time went, phase by phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<PhaseTiming>,
}

/// One phase of a run and its duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// "start", "connect" (the facts and the master's connection),
    /// "catalog", "verify", "content", "plan", a resource kind ("tree",
    /// "file", …), "remember", "services" or "report".
    pub phase: String,
    /// Its duration in microseconds.
    pub micros: u64,
}

/// The timings as one line: `catalog 11.2 ms, tree 8.0 ms, …`.
pub fn timings_line(timings: &[PhaseTiming]) -> String {
    timings
        .iter()
        .map(|t| format!("{} {:.1} ms", t.phase, t.micros as f64 / 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

impl RunReport {
    /// Whether the run only confirms that the node stays as it was: it
    /// applied a fresh catalog and nothing changed, failed or was skipped.
    /// The master stores such a report as a refreshed write (the next
    /// run says the same again).
    pub fn only_confirms(&self) -> bool {
        self.status() == "unchanged" && self.skipped == 0 && !self.used_cached_catalog
    }

    /// The run's overall status: "failed", "noop" (it applied nothing),
    /// "changed" or "unchanged".
    pub fn status(&self) -> &'static str {
        if self.failed > 0 {
            "failed"
        } else if self.noop {
            "noop"
        } else if self.changed > 0 {
            "changed"
        } else {
            "unchanged"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_run_that_changed_nothing_only_confirms() {
        let converged = RunReport::default();
        assert!(converged.only_confirms());
        for other in [
            RunReport {
                changed: 1,
                ..Default::default()
            },
            RunReport {
                failed: 1,
                ..Default::default()
            },
            RunReport {
                skipped: 1,
                ..Default::default()
            },
            RunReport {
                noop: true,
                ..Default::default()
            },
            RunReport {
                used_cached_catalog: true,
                ..Default::default()
            },
        ] {
            assert!(!other.only_confirms(), "{other:?}");
        }
    }
}
