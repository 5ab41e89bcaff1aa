//! SLO evaluation: ops-summary signals against an installation's thresholds.

use chrono::{DateTime, Utc};

use crate::api::artifortress::{Severity, SloSignal, SloStatus, SloThresholds, Threshold};
use crate::db::ops_summary::OpsSignals;

fn severity(value: f64, t: Threshold) -> Severity {
    if value >= t.critical as f64 {
        Severity::Critical
    } else if value >= t.warning as f64 {
        Severity::Warning
    } else {
        Severity::Ok
    }
}

/// Every signal with its value, thresholds and severity; the worst one is the
/// installation's. No pending outbox event means an age of 0.
pub fn evaluate(signals: &OpsSignals, thresholds: &SloThresholds, at: DateTime<Utc>) -> SloStatus {
    let values = [
        (
            "outboxOldestPendingAgeSeconds",
            signals.outbox_oldest_pending_age_seconds.unwrap_or(0.0),
            thresholds.outbox_oldest_pending_age_seconds,
        ),
        ("outboxPending", signals.outbox_pending as f64, thresholds.outbox_pending),
        ("searchJobsFailed", signals.search_jobs_failed as f64, thresholds.search_jobs_failed),
        ("incompleteGcRuns", signals.incomplete_gc_runs as f64, thresholds.incomplete_gc_runs),
        ("policyTimeouts24h", signals.policy_timeouts_24h as f64, thresholds.policy_timeouts_24h),
    ];
    let signals: Vec<SloSignal> = values
        .into_iter()
        .map(|(name, value, t)| SloSignal {
            signal: name.to_string(),
            value,
            warning: t.warning,
            critical: t.critical,
            severity: severity(value, t),
        })
        .collect();
    let worst = signals.iter().map(|s| s.severity).max().unwrap_or(Severity::Ok);
    SloStatus { severity: worst, signals, evaluated_at: at }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals() -> OpsSignals {
        OpsSignals {
            outbox_pending: 0,
            outbox_available: 0,
            outbox_oldest_pending_age_seconds: None,
            search_jobs_failed: 0,
            search_jobs_pending: 0,
            incomplete_gc_runs: 0,
            policy_timeouts_24h: 0,
            generated_at: Utc::now(),
        }
    }

    #[test]
    fn levels_are_reached_at_the_threshold() {
        let t = SloThresholds::default();
        let mut s = signals();
        assert_eq!(evaluate(&s, &t, Utc::now()).severity, Severity::Ok);
        s.incomplete_gc_runs = 1; // warning at 1
        assert_eq!(evaluate(&s, &t, Utc::now()).severity, Severity::Warning);
        s.outbox_oldest_pending_age_seconds = Some(900.0); // critical at 900
        let status = evaluate(&s, &t, Utc::now());
        assert_eq!(status.severity, Severity::Critical);
        let age = status.signals.iter().find(|x| x.signal == "outboxOldestPendingAgeSeconds").unwrap();
        assert_eq!((age.value, age.warning, age.critical, age.severity), (900.0, 300, 900, Severity::Critical));
        assert_eq!(status.signals.len(), 5);
    }
}
