//! Where a run's time goes: each phase's duration, logged at debug level
//! as it ends and sent with the report (`masterctl node show` prints it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rigger_common::report::PhaseTiming;

use crate::apply::ApplyReport;

/// The phases of one run so far.
#[derive(Debug)]
pub struct Phases {
    since: Instant,
    timings: Vec<PhaseTiming>,
}

impl Phases {
    /// Starts timing the first phase now.
    pub fn start() -> Self {
        Self {
            since: Instant::now(),
            timings: Vec::new(),
        }
    }

    /// Ends the phase `name` now; the next one starts.
    pub fn end(&mut self, name: &str) {
        let took = self.since.elapsed();
        self.since = Instant::now();
        self.add(name, took);
    }

    /// Ends the apply phase: the plan, then each resource kind's time.
    pub fn end_apply(&mut self, report: &ApplyReport, kind_of: impl Fn(&str) -> &'static str) {
        self.since = Instant::now();
        self.add("plan", report.plan);
        let mut kinds: BTreeMap<&str, Duration> = BTreeMap::new();
        for o in &report.outcomes {
            *kinds.entry(kind_of(&o.id)).or_default() += o.elapsed;
        }
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
        for (kind, took) in kinds {
            self.add(kind, took);
        }
    }

    fn add(&mut self, name: &str, took: Duration) {
        self.timings.push(PhaseTiming {
            phase: name.to_string(),
            micros: log_phase(name, took),
        });
    }

    /// The phases timed so far.
    pub fn timings(&self) -> Vec<PhaseTiming> {
        self.timings.clone()
    }
}

/// Logs at debug level that phase `name` took `took` (for a phase that
/// ends after the report is sent); returns its microseconds.
pub fn log_phase(name: &str, took: Duration) -> u64 {
    let micros = took.as_micros() as u64;
    tracing::debug!(phase = name, micros, "run phase");
    micros
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Outcome, Status};

    fn outcome(id: &str, millis: u64) -> Outcome {
        Outcome {
            id: id.into(),
            status: Status::Unchanged,
            message: String::new(),
            diff: None,
            elapsed: Duration::from_millis(millis),
        }
    }

    #[test]
    fn kinds_are_summed_and_the_slowest_comes_first() {
        let mut phases = Phases::start();
        phases.end("connect");
        let report = ApplyReport {
            outcomes: vec![
                outcome("file:a", 2),
                outcome("tree:p", 5),
                outcome("file:b", 4),
            ],
            plan: Duration::from_millis(1),
        };
        phases.end_apply(&report, |id| {
            if id.starts_with("tree") {
                "tree"
            } else {
                "file"
            }
        });
        let names: Vec<(&str, u64)> = phases
            .timings
            .iter()
            .map(|t| (t.phase.as_str(), t.micros))
            .collect();
        assert_eq!(names[0].0, "connect");
        assert_eq!(
            &names[1..],
            [("plan", 1000), ("file", 6000), ("tree", 5000)]
        );
    }
}
