//! The agent daemon's `/metrics`: runs by result and trigger, their
//! duration, resources changed and failed, drift repairs.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rigger_common::metrics::{Labels, labels, seconds_histogram};

use crate::state::RunSummary;

/// Everything the agent counts.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    run_seconds: Histogram,
    changed: Counter,
    failed: Counter,
    /// Drift repairs started (a managed file changed outside the agent).
    pub drift_repairs: Counter,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rigger_agent");
        let runs = Family::<Labels, Counter>::default();
        registry.register(
            "runs",
            "Runs by result (unchanged, changed, failed, noop) and why they happened",
            runs.clone(),
        );
        let run_seconds = seconds_histogram();
        registry.register(
            "run_duration_seconds",
            "Time one run took",
            run_seconds.clone(),
        );
        let changed = Counter::default();
        registry.register(
            "resources_changed",
            "Resources a run changed (noop runs: none)",
            changed.clone(),
        );
        let failed = Counter::default();
        registry.register(
            "resources_failed",
            "Resources that failed in a run",
            failed.clone(),
        );
        let drift_repairs = Counter::default();
        registry.register(
            "drift_repairs",
            "Repair runs started because a managed file changed outside the agent",
            drift_repairs.clone(),
        );
        Self {
            registry,
            runs,
            run_seconds,
            changed,
            failed,
            drift_repairs,
        }
    }
}

impl AgentMetrics {
    /// Counts a finished run.
    pub fn run(&self, summary: &RunSummary) {
        self.runs
            .get_or_create(&labels(&[
                ("result", &summary.result),
                ("trigger", &summary.trigger),
            ]))
            .inc();
        self.run_seconds
            .observe(summary.duration_ms as f64 / 1000.0);
        if !summary.noop {
            self.changed.inc_by(u64::from(summary.changed));
        }
        self.failed.inc_by(u64::from(summary.failed));
    }

    /// The metrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_by_result_and_trigger() {
        let metrics = AgentMetrics::default();
        let run = |result: &str, changed, noop| RunSummary {
            result: result.into(),
            trigger: "pushed".into(),
            changed,
            noop,
            duration_ms: 120,
            ..Default::default()
        };
        metrics.run(&run("changed", 3, false));
        metrics.run(&run("noop", 5, true));
        metrics.drift_repairs.inc();
        let text = metrics.render();
        for line in [
            "rigger_agent_runs_total{result=\"changed\",trigger=\"pushed\"} 1",
            "rigger_agent_runs_total{result=\"noop\",trigger=\"pushed\"} 1",
            "rigger_agent_run_duration_seconds_count 2",
            "rigger_agent_resources_changed_total 3",
            "rigger_agent_drift_repairs_total 1",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
    }
}
