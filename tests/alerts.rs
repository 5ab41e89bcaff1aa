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

#[test]
fn the_grafana_dashboard_is_generated_from_the_thresholds_and_well_formed() {
    use artifortress_operator::dashboard::{self, DASHBOARD_FILE};
    let thresholds = alerts::parse(&read(THRESHOLDS_FILE)).unwrap();
    assert_eq!(
        read(DASHBOARD_FILE),
        dashboard::render(&thresholds),
        "{DASHBOARD_FILE} is out of date: run `make alerts`"
    );

    let board: serde_json::Value = serde_json::from_str(&read(DASHBOARD_FILE)).unwrap();
    let variables = board["templating"]["list"].as_array().unwrap();
    let datasource = variables.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
    assert_eq!((datasource["type"].as_str(), datasource["query"].as_str()), (Some("datasource"), Some("prometheus")));
    assert!(variables.iter().any(|v| v["name"] == "installation"), "an installation variable");

    let panels = board["panels"].as_array().unwrap();
    let mut ids: Vec<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut cells = std::collections::HashSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title} uses the datasource variable");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has a query");
        for target in targets {
            assert!(target["expr"].as_str().is_some_and(|e| e.contains("artifortress_")), "{title}: {target}");
            assert_eq!(target["datasource"]["uid"], "${datasource}");
        }
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (
            grid["x"].as_i64().unwrap(),
            grid["y"].as_i64().unwrap(),
            grid["w"].as_i64().unwrap(),
            grid["h"].as_i64().unwrap(),
        );
        assert!(x + w <= 24, "{title} fits the 24-column grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel at {cx},{cy}");
            }
        }
    }
    // Every alert's thresholds are drawn on its panel.
    for a in &thresholds.alerts {
        let panel = panels.iter().find(|p| p["title"].as_str().unwrap().starts_with(&a.alert)).unwrap();
        let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array().unwrap();
        let values: Vec<f64> = steps.iter().filter_map(|s| s["value"].as_f64()).collect();
        assert_eq!(values, [a.warning, a.critical], "{}", a.alert);
    }
    // The panels the issue names are there.
    for title in [
        "Last successful backup age",
        "Backup size",
        "Backup duration",
        "Drill verdicts",
        "RTO against objective",
        "RPO against objective",
        "Blob check of the last drill",
        "Dependency probes",
        "Reconcile errors",
    ] {
        assert!(panels.iter().any(|p| p["title"] == title), "a panel {title:?}");
    }
}
