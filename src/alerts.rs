//! The chart's PrometheusRule, generated from `deploy/alert-thresholds.yaml` (the
//! one source of the SLO and DR thresholds); `make alerts` writes it and
//! `tests/alerts.rs` fails on drift or on a rule naming a metric the operator
//! does not export.

use serde::Deserialize;

/// Where the thresholds live and where the rule is written (relative to the repository).
pub const THRESHOLDS_FILE: &str = "deploy/alert-thresholds.yaml";
pub const RULE_TEMPLATE: &str = "charts/artifortress-operator/templates/prometheusrule.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub alerts: Vec<Alert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alert {
    pub alert: String,
    pub summary: String,
    /// PromQL; the alert fires when `expr > threshold` has held for `for`.
    pub expr: String,
    pub warning: f64,
    /// Absent: the alert has a warning level only (as several of upstream's).
    #[serde(default)]
    pub critical: Option<f64>,
    #[serde(rename = "for")]
    pub for_: String,
    /// `for` of the critical rule, when it differs.
    #[serde(default)]
    pub critical_for: Option<String>,
    /// File and section under `docs/runbooks/`.
    pub runbook: String,
}

pub fn parse(yaml: &str) -> Result<Thresholds, String> {
    serde_saphyr::from_str(yaml).map_err(|e| format!("{THRESHOLDS_FILE}: {e}"))
}

/// Every `artifortress_…` metric the rules use.
pub fn metric_names(t: &Thresholds) -> Vec<String> {
    let mut names: Vec<String> = t
        .alerts
        .iter()
        .flat_map(|a| {
            a.expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("artifortress_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One rule of the PrometheusRule: an alert at one severity.
pub struct Rule<'a> {
    pub alert: &'a Alert,
    pub severity: &'static str,
    pub threshold: f64,
    pub for_: &'a str,
}

impl Rule<'_> {
    /// The rule's PromQL: strictly above its threshold.
    pub fn expr(&self) -> String {
        format!("({}) > {}", self.alert.expr, self.threshold)
    }
}

/// Every rule: each alert at warning and, when it has one, at critical.
pub fn rules(t: &Thresholds) -> Vec<Rule<'_>> {
    let mut out = Vec::new();
    for a in &t.alerts {
        out.push(Rule { alert: a, severity: "warning", threshold: a.warning, for_: &a.for_ });
        if let Some(critical) = a.critical {
            let for_ = a.critical_for.as_deref().unwrap_or(&a.for_);
            out.push(Rule { alert: a, severity: "critical", threshold: critical, for_ });
        }
    }
    out
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The rules as a plain Prometheus rule file (what `promtool` reads), with the
/// runbook links relative to `runbook_base`.
pub fn rule_file(t: &Thresholds, runbook_base: &str) -> String {
    let mut out = String::from("groups:\n  - name: artifortress\n    rules:\n");
    for r in rules(t) {
        out.push_str(&rule_yaml(&r, "      ", &format!("{runbook_base}/{}", r.alert.runbook)));
    }
    out
}

fn rule_yaml(r: &Rule<'_>, indent: &str, runbook_url: &str) -> String {
    format!(
        "{indent}- alert: {}\n{indent}  expr: {}\n{indent}  for: {}\n{indent}  labels:\n{indent}    severity: {}\n{indent}  annotations:\n{indent}    summary: {}\n{indent}    runbook_url: {runbook_url}\n",
        r.alert.alert,
        quote(&r.expr()),
        r.for_,
        r.severity,
        quote(&r.alert.summary),
    )
}

/// The Helm template of the PrometheusRule (rendered when `prometheusRule.enabled`).
pub fn render(t: &Thresholds) -> String {
    let mut out = String::from(
        "# Generated from deploy/alert-thresholds.yaml by `make alerts`; do not edit.\n\
         {{- if .Values.prometheusRule.enabled }}\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  \
           name: {{ include \"artifortress-operator.fullname\" . }}\n  \
           namespace: {{ .Release.Namespace }}\n  \
           labels:\n    \
             {{- include \"artifortress-operator.labels\" . | nindent 4 }}\n    \
             {{- with .Values.prometheusRule.labels }}\n    \
             {{- toYaml . | nindent 4 }}\n    \
             {{- end }}\n\
         spec:\n  \
           groups:\n    \
             - name: artifortress\n      \
               rules:\n",
    );
    for r in rules(t) {
        let url = format!("{{{{ .Values.prometheusRule.runbookBaseUrl }}}}/{}", r.alert.runbook);
        out.push_str(&rule_yaml(&r, "        ", &url));
    }
    out.push_str("{{- end }}\n");
    out
}
