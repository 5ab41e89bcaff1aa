//! The chart's Grafana dashboard, generated like the PrometheusRule: the
//! disaster-recovery panels are fixed, and every alert of
//! `deploy/alert-thresholds.yaml` gets a panel of its expression with its
//! warning and critical thresholds drawn in, so the dashboard and the alerts
//! cannot disagree. `make alerts` writes it into the chart
//! (`charts/artifortress-operator/dashboards/`), tests/alerts.rs checks it.

use serde_json::{Value, json};

use crate::alerts::Thresholds;

pub const DASHBOARD_FILE: &str = "charts/artifortress-operator/dashboards/artifortress-operator.json";

/// The installation filter every query carries.
const SELECTOR: &str = "{installation=~\"$installation\"}";

struct Panel {
    title: String,
    description: String,
    unit: &'static str,
    /// (legend, PromQL with `SELECTOR` where `{}` is)
    queries: Vec<(&'static str, String)>,
}

fn with_selector(expr: &str) -> String {
    expr.replace("{}", SELECTOR)
}

fn panels() -> Vec<Panel> {
    let q = |legend: &'static str, expr: &str| (legend, with_selector(expr));
    vec![
        Panel {
            title: "Last successful backup age".into(),
            description: "Time since each installation's last completed backup.".into(),
            unit: "s",
            queries: vec![q("{{installation}}", "time() - artifortress_backup_last_success_timestamp_seconds{}")],
        },
        Panel {
            title: "Backup size".into(),
            description: "Stored size of the last completed backup.".into(),
            unit: "bytes",
            queries: vec![q("{{installation}}", "artifortress_backup_last_size_bytes{}")],
        },
        Panel {
            title: "Backup duration".into(),
            description: "Wall time of the last completed backup.".into(),
            unit: "s",
            queries: vec![q("{{installation}}", "artifortress_backup_last_duration_seconds{}")],
        },
        Panel {
            title: "Backups completed and failed".into(),
            description: "Backups finished per hour.".into(),
            unit: "short",
            queries: vec![
                q("completed {{installation}}", "increase(artifortress_backup_successes_total{}[1h])"),
                q("failed {{installation}}", "increase(artifortress_backup_failures_total{}[1h])"),
            ],
        },
        Panel {
            title: "Drill verdicts".into(),
            description: "Recovery drills passed and failed per hour; the last result (1 passed, 0 failed).".into(),
            unit: "short",
            queries: vec![
                q("passed {{installation}}", "increase(artifortress_drill_passes_total{}[1h])"),
                q("failed {{installation}}", "increase(artifortress_drill_failures_total{}[1h])"),
                q("last result {{installation}}", "artifortress_drill_last_result{}"),
            ],
        },
        Panel {
            title: "RTO against objective".into(),
            description: "Recovery time the last drill measured, and the objective it is judged against.".into(),
            unit: "s",
            queries: vec![
                q("measured {{installation}}", "artifortress_drill_rto_seconds{}"),
                q("objective {{installation}}", "artifortress_drill_rto_objective_seconds{}"),
            ],
        },
        Panel {
            title: "RPO against objective".into(),
            description: "Data the last drill's restore point lost, and the objective.".into(),
            unit: "s",
            queries: vec![
                q("measured {{installation}}", "artifortress_drill_rpo_seconds{}"),
                q("objective {{installation}}", "artifortress_drill_rpo_objective_seconds{}"),
            ],
        },
        Panel {
            title: "Blob check of the last drill".into(),
            description: "Blobs the restored database references, and how many were missing, corrupt or orphaned."
                .into(),
            unit: "short",
            queries: vec![
                q("referenced {{installation}}", "artifortress_drill_blobs_referenced{}"),
                q("missing {{installation}}", "artifortress_drill_blobs_missing{}"),
                q("corrupt {{installation}}", "artifortress_drill_blobs_corrupt{}"),
                q("orphans {{installation}}", "artifortress_drill_blobs_orphans{}"),
                q("tampered objects {{installation}}", "artifortress_drill_tampered_objects{}"),
                q("restore points recoverable {{installation}}", "artifortress_blobs_recoverable{}"),
            ],
        },
        Panel {
            title: "Dependency probes".into(),
            description: "1 when the last probe of the database and object storage succeeded; probe latency.".into(),
            unit: "short",
            queries: vec![
                q("{{dependency}} up {{installation}}", "artifortress_dependency_up{}"),
                q("{{dependency}} latency {{installation}}", "artifortress_dependency_probe_latency_seconds{}"),
            ],
        },
        Panel {
            title: "Reconcile errors".into(),
            description: "Reconciles that failed per controller (5-minute rate).".into(),
            unit: "short",
            queries: vec![(
                "{{controller}}",
                "sum by (controller) (rate(artifortress_reconcile_errors_total[5m]))".to_string(),
            )],
        },
    ]
}

fn panel_json(id: usize, panel: &Panel, thresholds: Option<(f64, Option<f64>)>, x: usize, y: usize) -> Value {
    let targets: Vec<Value> = panel
        .queries
        .iter()
        .enumerate()
        .map(|(i, (legend, expr))| {
            json!({"refId": char::from(b'A' + i as u8).to_string(), "expr": expr, "legendFormat": legend,
                   "datasource": {"type": "prometheus", "uid": "${datasource}"}})
        })
        .collect();
    let steps = match thresholds {
        Some((warning, Some(critical))) => json!([
            {"color": "green", "value": null}, {"color": "orange", "value": warning}, {"color": "red", "value": critical}
        ]),
        Some((warning, None)) => json!([{"color": "green", "value": null}, {"color": "orange", "value": warning}]),
        None => json!([{"color": "green", "value": null}]),
    };
    let mode = if thresholds.is_some() { "line" } else { "off" };
    json!({
        "id": id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps},
                         "custom": {"thresholdsStyle": {"mode": mode}}},
            "overrides": []
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": targets,
    })
}

/// Per-tenant figures are told apart by their tenant too.
fn legend(expr: &str) -> &'static str {
    if expr.contains("artifortress_ops_") { "{{installation}} {{tenant}}" } else { "{{installation}}" }
}

/// The dashboard JSON for Grafana (schema 39), pretty-printed with a final newline.
pub fn render(t: &Thresholds) -> String {
    let mut out: Vec<Value> = Vec::new();
    let mut place = 0;
    let mut next = |out: &mut Vec<Value>, panel: &Panel, thresholds| {
        let (x, y) = ((place % 2) * 12, (place / 2) * 8);
        out.push(panel_json(out.len() + 1, panel, thresholds, x, y));
        place += 1;
    };
    for panel in panels() {
        next(&mut out, &panel, None);
    }
    for a in &t.alerts {
        let panel = Panel {
            title: format!("{} (alert thresholds)", a.alert),
            description: a.summary.clone(),
            unit: "short",
            queries: vec![(legend(&a.expr), filtered(&a.expr))],
        };
        next(&mut out, &panel, Some((a.warning, a.critical)));
    }
    let dashboard = json!({
        "uid": "artifortress-operator",
        "title": "Artifortress disaster recovery",
        "description": "Backups, recovery drills (RTO/RPO against objectives), blob checks, ops-summary signals with their alert thresholds, dependency probes and reconcile errors. Generated from deploy/alert-thresholds.yaml by `make alerts`.",
        "tags": ["artifortress"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "installation", "label": "Installation", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(artifortress_dependency_up, installation)", "refId": "installations"},
             "definition": "label_values(artifortress_dependency_up, installation)",
             "includeAll": true, "multi": true, "allValue": ".*", "refresh": 2, "current": {}, "hide": 0}
        ]},
        "panels": out,
    });
    serde_json::to_string_pretty(&dashboard).expect("the dashboard serialises") + "\n"
}

/// An alert's expression with the installation filter on each of its metrics.
fn filtered(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find("artifortress_") {
        out.push_str(&rest[..at]);
        let name_len = rest[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len() - at);
        out.push_str(&rest[at..at + name_len]);
        rest = &rest[at + name_len..];
        if !rest.starts_with('{') {
            out.push_str(SELECTOR);
        }
    }
    out.push_str(rest);
    out
}

/// Every `artifortress_*` metric the dashboard queries (counters without `_total`).
pub fn metric_names(dashboard: &Value) -> Vec<String> {
    let mut names: Vec<String> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .flat_map(|t| {
            let expr = t["expr"].as_str().unwrap_or_default().to_string();
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("artifortress_"))
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_of_an_alert_expression_is_filtered_by_installation() {
        assert_eq!(
            filtered("(time() - artifortress_backup_last_success_timestamp_seconds) / 3600"),
            "(time() - artifortress_backup_last_success_timestamp_seconds{installation=~\"$installation\"}) / 3600"
        );
        assert_eq!(filtered("artifortress_x{a=\"b\"}"), "artifortress_x{a=\"b\"}", "an existing selector is kept");
    }
}
