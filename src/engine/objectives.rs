//! RPO and RTO: measured values against objectives.
//!
//! RPO is the age of the restore point: for an existing backup, drill start minus
//! snapshot time; for a fresh one, backup completion minus snapshot time. RTO is
//! restore start to a verified database (download + restore + parity).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::progress::human_duration;
use super::verdict::ObjectiveResult;

/// The RPO a drill measured.
pub fn measured_rpo(
    snapshot: DateTime<Utc>,
    backup_completed: DateTime<Utc>,
    drill_started: DateTime<Utc>,
    fresh: bool,
) -> f64 {
    let until = if fresh { backup_completed } else { drill_started };
    ((until - snapshot).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// Compares a measurement with its objective; the failure (when missed) names both.
pub fn evaluate(label: &str, measured_seconds: f64, objective: Option<Duration>) -> (ObjectiveResult, Option<String>) {
    let objective_seconds = objective.map(|d| d.as_secs_f64());
    let met = objective_seconds.map(|o| measured_seconds <= o);
    let summary = match objective_seconds {
        Some(o) => format!("{} / {}", human_duration(measured_seconds), human_duration(o)),
        None => human_duration(measured_seconds),
    };
    let failure = match (met, objective_seconds) {
        (Some(false), Some(o)) => Some(format!(
            "{label} objective missed: measured {} ({measured_seconds:.3} s) exceeds the objective {} ({o:.3} s)",
            human_duration(measured_seconds),
            human_duration(o)
        )),
        _ => None,
    };
    (ObjectiveResult { measured_seconds, objective_seconds, met, summary }, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn rpo_is_measured_from_the_snapshot() {
        let snap = at("2026-11-27T10:00:00Z");
        let done = at("2026-11-27T10:01:30Z");
        let drill = at("2026-11-27T10:14:00Z");
        assert_eq!(measured_rpo(snap, done, drill, true), 90.0);
        assert_eq!(measured_rpo(snap, done, drill, false), 840.0);
    }

    #[test]
    fn an_objective_is_met_at_or_below_it() {
        let (r, failure) = evaluate("RPO", 842.0, Some(Duration::from_secs(900)));
        assert_eq!((r.met, r.summary.as_str(), failure), (Some(true), "14m2s / 15m", None));
        let (r, _) = evaluate("RPO", 900.0, Some(Duration::from_secs(900)));
        assert_eq!(r.met, Some(true));
    }

    #[test]
    fn a_missed_objective_names_both_numbers() {
        let (r, failure) = evaluate("RTO", 0.25, Some(Duration::from_millis(1)));
        assert_eq!(r.met, Some(false));
        let failure = failure.unwrap();
        assert!(
            failure.contains("RTO objective missed") && failure.contains("250ms") && failure.contains("1ms"),
            "{failure}"
        );
    }

    #[test]
    fn without_an_objective_only_the_measurement_is_reported() {
        let (r, failure) = evaluate("RPO", 61.0, None);
        assert_eq!((r.met, r.objective_seconds, r.summary.as_str(), failure), (None, None, "1m1s", None));
    }
}
