//! The chart's PrometheusRule is generated from `deploy/alert-thresholds.yaml`:
//! it must not drift, and every threshold must make sense. That every metric a
//! rule names is really exported is checked against a running operator in
//! `tests/operator.rs`.

use artifortress_operator::alerts::{self, RULE_TEMPLATE, THRESHOLDS_FILE};

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_prometheus_rule_is_generated_from_the_thresholds() {
    let thresholds = alerts::parse(&read(THRESHOLDS_FILE)).unwrap();
    assert_eq!(read(RULE_TEMPLATE), alerts::render(&thresholds), "{RULE_TEMPLATE} is out of date: run `make alerts`");
}

#[test]
fn thresholds_escalate_and_name_a_runbook() {
    let thresholds = alerts::parse(&read(THRESHOLDS_FILE)).unwrap();
    for signal in [
        "outbox",
        "search_jobs_failed",
        "gc_runs",
        "policy_timeouts",
        "backup_last_success",
        "drill_last_pass",
        "drill_rpo",
        "drill_rto",
        "drill_blobs_missing",
        "dependency_up",
    ] {
        assert!(thresholds.alerts.iter().any(|a| a.expr.contains(signal)), "an alert on {signal}");
    }
    for a in &thresholds.alerts {
        assert!(a.warning <= a.critical, "{}: warning {} above critical {}", a.alert, a.warning, a.critical);
        assert!(a.runbook.contains(".md#"), "{}: runbook names a file and a section", a.alert);
    }
}
