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
    /// PromQL; the alert fires when `expr >= threshold` has held for `for`.
    pub expr: String,
    pub warning: f64,
    pub critical: f64,
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

/// The Helm template of the PrometheusRule (rendered when `prometheusRule.enabled`).
pub fn render(t: &Thresholds) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialise");
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
    for a in &t.alerts {
        for (severity, threshold, for_) in
            [("warning", a.warning, &a.for_), ("critical", a.critical, a.critical_for.as_ref().unwrap_or(&a.for_))]
        {
            out.push_str(&format!(
                "        - alert: {}\n          expr: {}\n          for: {for_}\n          labels:\n            severity: {severity}\n          annotations:\n            summary: {}\n            runbook_url: {{{{ .Values.prometheusRule.runbookBaseUrl }}}}/{}\n",
                a.alert,
                quote(&format!("({}) >= {threshold}", a.expr)),
                quote(&a.summary),
                a.runbook
            ));
        }
    }
    out.push_str("{{- end }}\n");
    out
}
