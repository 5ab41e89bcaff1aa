//! The chart's PrometheusRule is generated from `deploy/alert-thresholds.yaml`:
//! it must not drift, every threshold must make sense, and every rule must fire
//! above its threshold and stay quiet at it (`promtool test rules`, Debian's
//! prometheus package, from the harness). That every metric a rule names is
//! really exported is checked against a running operator in `tests/operator.rs`.

mod support;

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
        "ops_pending_outbox_events",
        "ops_oldest_pending_outbox_age_seconds",
        "ops_failed_search_jobs",
        "ops_pending_search_jobs",
        "ops_incomplete_gc_runs",
        "ops_recent_policy_timeouts_24h",
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
        if let Some(critical) = a.critical {
            assert!(a.warning <= critical, "{}: warning {} above critical {critical}", a.alert, a.warning);
        }
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
        let expected: Vec<f64> = [Some(a.warning), a.critical].into_iter().flatten().collect();
        assert_eq!(values, expected, "{}", a.alert);
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

/// Upstream's thresholds, as its `phase6-alert-thresholds.yaml` and
/// `enterprise-ops-alert-thresholds.yaml` set them, are the ops alerts'.
#[test]
fn the_ops_alerts_carry_upstreams_thresholds() {
    let thresholds = alerts::parse(&read(THRESHOLDS_FILE)).unwrap();
    for (metric, warning, critical) in [
        ("artifortress_ops_pending_outbox_events", 50.0, Some(200.0)),
        ("artifortress_ops_oldest_pending_outbox_age_seconds", 300.0, Some(900.0)),
        ("artifortress_ops_failed_search_jobs", 5.0, Some(20.0)),
        ("artifortress_ops_pending_search_jobs", 100.0, None),
        ("artifortress_ops_incomplete_gc_runs", 0.0, None),
        ("artifortress_ops_recent_policy_timeouts_24h", 0.0, None),
    ] {
        let a = thresholds.alerts.iter().find(|a| a.expr == metric).unwrap_or_else(|| panic!("an alert on {metric}"));
        assert_eq!((a.warning, a.critical), (warning, critical), "{}", a.alert);
    }
}

/// Input series that make an alert's expression equal `value` from the start
/// of the test until `at` (seconds), and the labels the alert then carries.
/// (series, promtool values) pairs, and the labels the alert carries.
type Inputs = (Vec<(String, String)>, Vec<(&'static str, String)>);

fn series_at(expr: &str, value: f64, at: u64) -> Inputs {
    let constant = |v: f64| format!("{v}+0x{}", at / 60 + 5);
    let installation = ("installation", "prod".to_string());
    let tenant = ("tenant", "default".to_string());
    let m = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    match expr {
        e if e.starts_with("artifortress_ops_") => {
            (vec![(m(e, r#"installation="prod",tenant="default""#), constant(value))], vec![installation, tenant])
        }
        "1 - artifortress_dependency_up" => (
            vec![(
                m("artifortress_dependency_up", r#"installation="prod",dependency="postgresql""#),
                constant(1.0 - value),
            )],
            vec![installation, ("dependency", "postgresql".into())],
        ),
        e if e.starts_with("(time() - ") => {
            // (time() - ts) / unit: ts so that the expression is `value` at `at`.
            let metric = e.trim_start_matches("(time() - ").split(')').next().unwrap();
            let unit: f64 = e.rsplit('/').next().unwrap().trim().parse().unwrap();
            let ts = at as f64 - value * unit;
            (vec![(m(metric, r#"installation="prod""#), constant(ts))], vec![installation])
        }
        e if e.contains(" / ") => {
            let (a, b) = e.split_once(" / ").unwrap();
            (
                vec![
                    (m(a, r#"installation="prod""#), constant(value * 100.0)),
                    (m(b, r#"installation="prod""#), constant(100.0)),
                ],
                vec![installation],
            )
        }
        e if e.contains(" + ") => {
            let (a, b) = e.split_once(" + ").unwrap();
            (
                vec![
                    (m(a, r#"installation="prod""#), constant(value)),
                    (m(b, r#"installation="prod""#), constant(0.0)),
                ],
                vec![installation],
            )
        }
        e if e.starts_with("artifortress_") => {
            (vec![(m(e, r#"installation="prod""#), constant(value))], vec![installation])
        }
        other => panic!("no promtool case for the expression {other:?}: add one to series_at"),
    }
}

fn seconds(duration: &str) -> u64 {
    humantime::parse_duration(duration).map(|d| d.as_secs()).unwrap_or_else(|e| panic!("{duration}: {e}"))
}

/// Every rule of the PrometheusRule fires when its expression is above its
/// threshold for its `for`, and stays quiet when it is exactly at it.
#[test]
fn every_alert_fires_above_its_threshold_and_stays_quiet_at_it() {
    let thresholds = alerts::parse(&read(THRESHOLDS_FILE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), alerts::rule_file(&thresholds, "https://runbooks")).unwrap();
    let mut tests = String::from("rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n");
    let mut cases = 0;
    for rule in alerts::rules(&thresholds) {
        let a = rule.alert;
        // Evaluated one minute after `for` has passed; the series hold their value from 0.
        let at = seconds(rule.for_) + 120;
        let step = if rule.threshold.fract() != 0.0 || rule.threshold < 1.0 { 0.1 } else { 1.0 };
        for (value, fires) in [(rule.threshold, false), (rule.threshold + step, true)] {
            let (series, labels) = series_at(&a.expr, value, at);
            tests.push_str("  - interval: 1m\n    input_series:\n");
            for (name, values) in &series {
                tests.push_str(&format!("      - series: '{name}'\n        values: '{values}'\n"));
            }
            tests
                .push_str(&format!("    alert_rule_test:\n      - eval_time: {at}s\n        alertname: {}\n", a.alert));
            // Every rule of this alert whose threshold the value is above fires
            // (at critical, the warning rule too); at a rule's own threshold, it does not.
            let firing: Vec<_> = alerts::rules(&thresholds)
                .into_iter()
                .filter(|r| r.alert.alert == a.alert && value > r.threshold && seconds(r.for_) + 60 <= at)
                .collect();
            assert_eq!(firing.iter().any(|r| r.severity == rule.severity), fires, "{} {}", a.alert, rule.severity);
            tests.push_str(if firing.is_empty() { "        exp_alerts: []\n" } else { "        exp_alerts:\n" });
            for other in firing {
                tests.push_str(&format!("          - exp_labels:\n              severity: {}\n", other.severity));
                for (k, v) in &labels {
                    tests.push_str(&format!("              {k}: {v}\n"));
                }
                tests.push_str(&format!(
                    "            exp_annotations:\n              summary: {}\n              runbook_url: https://runbooks/{}\n",
                    serde_json::to_string(&a.summary).unwrap(),
                    a.runbook
                ));
            }
            cases += 1;
        }
    }
    std::fs::write(dir.path().join("tests.yaml"), &tests).unwrap();
    let promtool = support::env("AF_TEST_PROMTOOL");
    let check = std::process::Command::new(&promtool)
        .args(["check", "rules", "rules.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let out = std::process::Command::new(&promtool)
        .args(["test", "rules", "tests.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}\n--- tests.yaml\n{tests}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cases, 2 * alerts::rules(&thresholds).len(), "a case above and at every rule's threshold");
}
