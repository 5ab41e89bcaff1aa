//! SLO evaluation as upstream defines it: each tenant's figures against the
//! installation's thresholds, a value strictly greater than a level reaching it
//! (upstream's `phase6-alert-thresholds.yaml` and `enterprise-ops-alert-thresholds.yaml`).

use chrono::{DateTime, Utc};

use super::ops::{Figures, OpsSummary};
use crate::api::artifortress::{Severity, SloSignal, SloStatus, SloThresholds, Threshold};

fn severity(value: i64, t: Threshold) -> Severity {
    if t.critical.is_some_and(|c| value > c) {
        Severity::Critical
    } else if t.warning.is_some_and(|w| value > w) {
        Severity::Warning
    } else {
        Severity::Ok
    }
}

fn value_of(figures: &Figures, signal: &str) -> Option<i64> {
    figures.named().into_iter().find(|(name, _)| *name == signal).and_then(|(_, v)| v)
}

/// Every tenant's every thresholded figure (a figure the schema lacks is left out).
pub fn evaluate(summary: &OpsSummary, thresholds: &SloThresholds) -> Vec<SloSignal> {
    let mut out = Vec::new();
    for tenant in &summary.tenants {
        for (signal, t) in thresholds.named() {
            let Some(value) = value_of(&tenant.figures, signal) else { continue };
            out.push(SloSignal {
                signal: signal.to_string(),
                tenant: Some(tenant.name().to_string()),
                value: value as f64,
                warning: t.warning,
                critical: t.critical,
                severity: severity(value, t),
                tenants_breaching: None,
            });
        }
    }
    out
}

/// The status form, bounded whatever the number of tenants: for each figure
/// the tenant with the worst severity (then the highest value), and how many
/// tenants breach it.
pub fn status(evaluated: &[SloSignal], tenants: usize, at: DateTime<Utc>) -> SloStatus {
    let mut signals: Vec<SloSignal> = Vec::new();
    for s in evaluated {
        match signals.iter_mut().find(|w| w.signal == s.signal) {
            Some(worst) => {
                if (s.severity, s.value) > (worst.severity, worst.value) {
                    let breaching = worst.tenants_breaching;
                    *worst = SloSignal { tenants_breaching: breaching, ..s.clone() };
                }
                if s.severity != Severity::Ok {
                    *worst.tenants_breaching.get_or_insert(0) += 1;
                }
            }
            None => {
                signals.push(SloSignal { tenants_breaching: Some(u32::from(s.severity != Severity::Ok)), ..s.clone() })
            }
        }
    }
    let severity = signals.iter().map(|s| s.severity).max().unwrap_or(Severity::Ok);
    SloStatus { severity, signals, tenants: u32::try_from(tenants).unwrap_or(u32::MAX), evaluated_at: at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifortress::ops::TenantFigures;

    fn tenant(slug: &str, figures: Figures) -> TenantFigures {
        TenantFigures { tenant_id: format!("id-{slug}"), slug: Some(slug.into()), figures }
    }

    fn quiet() -> Figures {
        Figures {
            pending_outbox_events: Some(0),
            available_outbox_events: Some(0),
            oldest_pending_outbox_age_seconds: Some(0),
            failed_search_jobs: Some(0),
            pending_search_jobs: Some(0),
            incomplete_gc_runs: Some(0),
            recent_policy_timeouts_24h: Some(0),
        }
    }

    #[test]
    fn a_level_is_reached_only_above_it_as_upstream_compares() {
        let t = SloThresholds::default();
        let at = |pending: i64, gc: i64| {
            let summary = OpsSummary {
                checked_at: Utc::now(),
                totals: Figures::default(),
                tenants: vec![tenant(
                    "default",
                    Figures { pending_outbox_events: Some(pending), incomplete_gc_runs: Some(gc), ..quiet() },
                )],
            };
            let all = evaluate(&summary, &t);
            let of = |name: &str| all.iter().find(|s| s.signal == name).unwrap().severity;
            (of("pendingOutboxEvents"), of("incompleteGcRuns"))
        };
        assert_eq!(at(50, 0), (Severity::Ok, Severity::Ok), "at the threshold: quiet");
        assert_eq!(at(51, 1), (Severity::Warning, Severity::Warning));
        assert_eq!(at(200, 5), (Severity::Warning, Severity::Warning), "no critical level for GC runs");
        assert_eq!(at(201, 0), (Severity::Critical, Severity::Ok));
    }

    #[test]
    fn one_tenants_backlog_is_named_in_the_bounded_status() {
        let summary = OpsSummary {
            checked_at: Utc::now(),
            totals: Figures::default(),
            tenants: vec![
                tenant("acme", quiet()),
                tenant("globex", Figures { failed_search_jobs: Some(30), ..quiet() }),
                tenant("initech", Figures { failed_search_jobs: Some(6), ..quiet() }),
            ],
        };
        let all = evaluate(&summary, &SloThresholds::default());
        assert_eq!(all.len(), 3 * 6);
        let status = status(&all, 3, Utc::now());
        assert_eq!(status.severity, Severity::Critical);
        assert_eq!(status.signals.len(), 6, "one entry per figure, whatever the tenants");
        let failed = status.signals.iter().find(|s| s.signal == "failedSearchJobs").unwrap();
        assert_eq!(failed.tenant.as_deref(), Some("globex"));
        assert_eq!((failed.value, failed.severity, failed.tenants_breaching), (30.0, Severity::Critical, Some(2)));
        let age = status.signals.iter().find(|s| s.signal == "oldestPendingOutboxAgeSeconds").unwrap();
        assert_eq!((age.severity, age.tenants_breaching), (Severity::Ok, Some(0)));
    }

    #[test]
    fn a_figure_the_schema_lacks_is_not_judged() {
        let summary = OpsSummary {
            checked_at: Utc::now(),
            totals: Figures::default(),
            tenants: vec![tenant("default", Figures { incomplete_gc_runs: None, ..quiet() })],
        };
        let all = evaluate(&summary, &SloThresholds::default());
        assert!(!all.iter().any(|s| s.signal == "incompleteGcRuns"));
        assert_eq!(all.len(), 5);
    }
}
