//! `status` of a healthy, a degraded and a failing installation, as a terminal
//! and a pipe show it, against the texts kept in `tests/fixtures/plugin-status/`
//! (`AF_UPDATE_HELP=1 cargo test --bins plugin` writes them after a change
//! reads right).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};

use artifortress_operator::api::artifortress::Artifortress;
use artifortress_operator::api::backup::Backup;
use artifortress_operator::api::recovery_drill::RecoveryDrill;

use super::render::status_text;
use super::view::{Health, installation_view};

const NOW: &str = "2026-12-06T12:00:00Z";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "reason": reason, "message": message,
           "lastTransitionTime": "2026-12-06T11:00:00Z"})
}

fn installation(conditions: Vec<Value>, database_up: bool, slo: Value, wal: Value) -> Artifortress {
    let database = if database_up {
        json!({"state": "Up", "latencyMs": 3.2, "checkedAt": NOW})
    } else {
        json!({"state": "Down", "latencyMs": 5000.0, "error": "connection refused", "checkedAt": NOW})
    };
    serde_json::from_value(json!({
        "apiVersion": "artifortress.io/v1alpha1", "kind": "Artifortress",
        "metadata": {"name": "production", "namespace": "prod"},
        "spec": {},
        "status": {"conditions": conditions, "database": database,
                   "objectStorage": {"state": "Up", "latencyMs": 8.0, "checkedAt": NOW},
                   "schema": {"level": "0015_search_documents_generated.sql", "versions": 15, "supported": true},
                   "slo": slo, "wal": wal}
    }))
    .unwrap()
}

fn backup(name: &str, completed_at: &str) -> Backup {
    serde_json::from_value(json!({
        "apiVersion": "artifortress.io/v1alpha1", "kind": "Backup", "metadata": {"name": name, "namespace": "prod"},
        "spec": {"artifortressRef": {"name": "production"}},
        "status": {"phase": "Completed", "completedAt": completed_at, "size": "18.4 MiB",
                   "encryption": {"recipients": ["age1one", "age1two"]}}
    }))
    .unwrap()
}

fn drill(name: &str, passed: bool, completed_at: &str, rpo: (f64, f64), tampering: Vec<&str>) -> RecoveryDrill {
    let objective = |measured: f64, objective: f64, what: &str| {
        json!({"measuredSeconds": measured, "objectiveSeconds": objective, "met": measured <= objective,
               "summary": format!("{measured}s of {objective}s {what}")})
    };
    let mut status = json!({
        "phase": if passed { "Succeeded" } else { "Failed" }, "result": if passed { "Passed" } else { "Failed" },
        "completedAt": completed_at, "backup": {"name": "nightly-1", "location": "s3://b/nightly-1/",
        "snapshotTime": "2026-12-06T02:00:00Z", "completedAt": "2026-12-06T02:03:00Z", "fresh": false},
        "rpo": objective(rpo.0, rpo.1, "RPO"), "rto": objective(372.0, 1800.0, "RTO"),
        "timings": {"usableSeconds": 301.0}, "tampering": tampering});
    if !passed {
        status["reason"] = json!("ParityMismatch");
        status["failures"] = json!(["table public.packages: 120 rows restored, the manifest says 121"]);
    }
    serde_json::from_value(json!({
        "apiVersion": "artifortress.io/v1alpha1", "kind": "RecoveryDrill", "metadata": {"name": name, "namespace": "prod"},
        "spec": {"artifortressRef": {"name": "production"}}, "status": status
    }))
    .unwrap()
}

fn running_job() -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "backup-nightly-2", "namespace": "prod",
                     "labels": {"artifortress.io/installation": "production", "artifortress.io/step": "backup"}},
        "status": {"active": 1, "startTime": "2026-12-06T11:58:00Z"}
    }))
    .unwrap()
}

fn healthy_conditions() -> Vec<Value> {
    vec![
        condition("Ready", true, "Ready", "every dependency answers"),
        condition("BackupsImmutable", true, "Locked", "nightly-1 is locked until 2027-01-05T02:03:00Z"),
        condition("BlobsRecoverable", true, "Versioned", "deleted blobs are kept 30 days"),
    ]
}

fn no_slo_problem() -> Value {
    json!({"severity": "Ok", "signals": [], "tenants": 3, "evaluatedAt": NOW})
}

fn fresh_wal() -> Value {
    json!({"slot": "artifortress", "updatedAt": "2026-12-06T11:59:57Z", "retainedBytes": 12582912,
           "receivedLsn": "0/3000000", "serverLsn": "0/3000100"})
}

/// (name, text with colors, text without)
fn cases() -> Vec<(&'static str, Health, String, String)> {
    let healthy = (
        installation(healthy_conditions(), true, no_slo_problem(), fresh_wal()),
        vec![backup("nightly-1", "2026-12-06T11:50:00Z")],
        vec![drill("drill-1", true, "2026-12-06T11:55:00Z", (14.0, 900.0), vec![])],
        vec![running_job()],
    );
    let warning = json!({"signal": "pendingOutboxEvents", "tenant": "acme", "value": 75.0, "warning": 50,
                         "critical": 200, "severity": "Warning"});
    let stalled = json!({"slot": "artifortress", "updatedAt": "2026-12-06T11:00:00Z", "retainedBytes": 1073741824,
                         "stalled": "the receiver keeps exiting: FATAL: password authentication failed"});
    let degraded = (
        installation(
            healthy_conditions(),
            true,
            json!({"severity": "Warning", "signals": [warning], "tenants": 3, "evaluatedAt": NOW}),
            stalled,
        ),
        vec![backup("nightly-1", "2026-12-06T02:03:00Z")],
        vec![drill("drill-1", true, "2026-12-06T03:00:00Z", (14.0, 900.0), vec!["tampering: dump overwritten"])],
        vec![],
    );
    let failing = (
        installation(
            vec![condition("Ready", false, "DatabaseUnreachable", "connection refused")],
            false,
            no_slo_problem(),
            json!(null),
        ),
        vec![backup("nightly-1", "2026-12-04T02:03:00Z")],
        vec![drill("drill-2", false, "2026-12-06T03:00:00Z", (14.0, 900.0), vec![])],
        vec![],
    );
    [("healthy", healthy), ("degraded", degraded), ("failing", failing)]
        .into_iter()
        .map(|(name, (i, b, d, j))| {
            let view = installation_view(&i, &b, &d, &j, now());
            let health = view.health;
            let views = [view];
            (name, health, status_text(&views, true), status_text(&views, false))
        })
        .collect()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugin-status")
}

#[test]
fn status_reads_as_reviewed_on_a_terminal_and_in_a_pipe() {
    let update = std::env::var_os("AF_UPDATE_HELP").is_some();
    for (name, health, color, plain) in cases() {
        let expected_health = match name {
            "healthy" => Health::Healthy,
            "degraded" => Health::Degraded,
            _ => Health::Failing,
        };
        assert_eq!(health, expected_health, "{name}:\n{plain}");
        assert!(color.contains("\x1b["), "{name}: a terminal gets colors");
        assert!(!plain.contains('\x1b'), "{name}: a pipe gets none");
        for (file, text) in [(format!("{name}.txt"), &plain), (format!("{name}.ansi.txt"), &color)] {
            let path = fixtures().join(&file);
            if update {
                std::fs::create_dir_all(fixtures()).unwrap();
                std::fs::write(&path, text).unwrap();
            }
            let kept = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(text, &kept, "{file} differs (AF_UPDATE_HELP=1 to accept):\n{text}");
        }
    }
}

#[test]
fn each_state_names_its_problems() {
    let plains: Vec<String> = cases().into_iter().map(|(_, _, _, plain)| plain).collect();
    assert!(plains[0].contains("HEALTHY") && !plains[0].contains(" ! "), "{}", plains[0]);
    let degraded = &plains[1];
    for expected in ["over the RPO objective", "pendingOutboxEvents", "password authentication failed", "tampered"] {
        assert!(degraded.contains(expected), "{expected} in:\n{degraded}");
    }
    let failing = &plains[2];
    for expected in ["database down: connection refused", "last drill drill-2 failed (ParityMismatch)"] {
        assert!(failing.contains(expected), "{expected} in:\n{failing}");
    }
}

#[test]
fn refusals_say_what_to_do() {
    let api = |code: u16, message: &str| {
        let status: kube::core::Status =
            serde_json::from_value(json!({"code": code, "message": message, "reason": "x"})).unwrap();
        kube::Error::Api(Box::new(status))
    };
    let said = |e| super::access::refusal("prod", e, "create", "backups").message;
    let denied = said(api(403, "backups.artifortress.io is forbidden: User \"alice\" cannot create resource"));
    assert!(
        denied.starts_with("RBAC: you may not create backups in namespace prod") && denied.contains("-editor"),
        "{denied}"
    );
    let missing = said(api(404, "the server could not find the requested resource"));
    assert!(missing.contains("is the Artifortress operator installed?"), "{missing}");
    assert!(said(api(401, "Unauthorized")).contains("log in again"));
}
