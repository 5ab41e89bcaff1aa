//! The generated CRDs on a real kube-apiserver: they apply, every example in
//! `deploy/examples/` is accepted and reads back into our types, the schema
//! rejects invalid values, and `kubectl get` shows the printer columns.

mod support;

use std::path::Path;
use std::process::Command;

use artifortress_operator::api::{Artifortress, Backup, BackupSchedule, RecoveryDrill};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{create_namespace, install_crds, kube_client, unique_name};

fn api_resource_for(kind: &str) -> ApiResource {
    match kind {
        "Artifortress" => ApiResource::erase::<Artifortress>(&()),
        "Backup" => ApiResource::erase::<Backup>(&()),
        "BackupSchedule" => ApiResource::erase::<BackupSchedule>(&()),
        "RecoveryDrill" => ApiResource::erase::<RecoveryDrill>(&()),
        other => panic!("unexpected kind {other} in deploy/examples"),
    }
}

fn kubectl(args: &[&str]) -> String {
    let out = Command::new("kubectl").args(args).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The column headers `kubectl get` prints, e.g. ["NAME", "PHASE", ...].
fn headers(table: &str) -> Vec<String> {
    let first = table.lines().next().unwrap_or_default();
    first.split("  ").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[tokio::test]
async fn examples_are_accepted_and_shown_with_printer_columns() {
    let client = kube_client().await;
    install_crds(&client).await;
    let ns = create_namespace(&client).await;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for obj in serde_saphyr::from_multiple::<DynamicObject>(&text).unwrap() {
            let kind = obj.types.as_ref().unwrap().kind.clone();
            let ar = api_resource_for(&kind);
            let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            objects.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["Artifortress", "Backup", "BackupSchedule", "RecoveryDrill"], "one example of each kind");

    // Read back through the typed API: the server kept every field our types know.
    let af = Api::<Artifortress>::namespaced(client.clone(), &ns).get("production").await.unwrap();
    assert_eq!(af.spec.backup_storage.as_ref().unwrap().bucket, "artifortress-backups");
    assert_eq!(af.spec.slo.pending_outbox_events.critical, Some(200));
    assert_eq!(af.spec.kublai.as_ref().unwrap().secret_name, "kublai-secrets");
    let bs = Api::<BackupSchedule>::namespaced(client.clone(), &ns).get("production-every-15m").await.unwrap();
    assert_eq!(bs.spec.schedule, "*/15 * * * *");
    assert_eq!(bs.spec.retention.keep_last, Some(96));
    assert_eq!(bs.spec.drill.as_ref().unwrap().template.rto.as_ref().unwrap().0, "30m");
    let drill = Api::<RecoveryDrill>::namespaced(client.clone(), &ns).get("production-drill-2026-11-27").await.unwrap();
    assert_eq!(drill.spec.template.target.as_ref().unwrap().database.as_deref(), Some("artifortress_drill"));

    // Status goes through the status subresource and shows in the printer columns.
    let drills: Api<RecoveryDrill> = Api::namespaced(client.clone(), &ns);
    let status = json!({
        "apiVersion": "artifortress.io/v1alpha1", "kind": "RecoveryDrill",
        "status": {
            "phase": "Succeeded", "result": "Passed",
            "rpo": {"measuredSeconds": 842.0, "objectiveSeconds": 900.0, "met": true, "summary": "14m2s / 15m"},
            "rto": {"measuredSeconds": 372.0, "objectiveSeconds": 1800.0, "met": true, "summary": "6m12s / 30m"}
        }
    });
    drills
        .patch_status(
            "production-drill-2026-11-27",
            &PatchParams::apply("artifortress-operator-tests"),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let status = json!({
        "apiVersion": "artifortress.io/v1alpha1", "kind": "Backup",
        "status": {"phase": "Completed", "size": "1.2 GiB", "startedAt": "2026-11-27T10:00:00Z", "duration": "6m12s"}
    });
    backups
        .patch_status(
            "production-pre-upgrade-2026-11-27",
            &PatchParams::apply("artifortress-operator-tests"),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();

    for (resource, expected) in [
        ("recoverydrills", vec!["NAME", "PHASE", "RESULT", "RPO", "RTO", "AGE"]),
        ("backups.artifortress.io", vec!["NAME", "PHASE", "METHOD", "SIZE", "STARTED", "DURATION", "AGE"]),
        ("backupschedules", vec!["NAME", "SCHEDULE", "SUSPEND", "LAST BACKUP", "NEXT", "AGE"]),
        ("artifortresses", vec!["NAME", "READY", "DATABASE", "STORAGE", "SLO", "AGE"]),
    ] {
        let table = kubectl(&["get", resource, "-n", &ns]);
        assert_eq!(headers(&table), expected, "kubectl get {resource}:\n{table}");
    }
    let table = kubectl(&["get", "drill", "-n", &ns]);
    let row = table.lines().nth(1).unwrap();
    for value in ["production-drill-2026-11-27", "Succeeded", "Passed", "14m2s / 15m", "6m12s / 30m"] {
        assert!(row.contains(value), "{value} in:\n{table}");
    }
    let table = kubectl(&["get", "afbk", "-n", &ns]);
    assert!(table.contains("Completed") && table.contains("1.2 GiB") && table.contains("6m12s"), "{table}");
    for short in ["af", "afbs"] {
        assert_eq!(kubectl(&["get", short, "-n", &ns]).lines().count(), 2, "short name {short}");
    }

    Api::<Namespace>::all(client.clone()).delete(&ns, &Default::default()).await.unwrap();
}

#[tokio::test]
async fn the_api_server_rejects_invalid_values() {
    let client = kube_client().await;
    install_crds(&client).await;
    let ns = create_namespace(&client).await;
    let drills: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<RecoveryDrill>(&()));
    let backups: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<Backup>(&()));
    let schedules: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<BackupSchedule>(&()));

    let drill = |spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "RecoveryDrill",
            "metadata": {"name": unique_name("bad")}, "spec": spec}))
        .unwrap()
    };
    let target = json!({"connectionSecretRef": {"name": "db", "key": "uri"}});
    for (spec, field) in [
        (json!({"artifortressRef": {"name": "p"}, "target": target, "rpo": "15 minutes"}), "spec.rpo"),
        (json!({"artifortressRef": {"name": "p"}, "target": target, "restoreJobs": 0}), "spec.restoreJobs"),
        (json!({"artifortressRef": {"name": "p"}, "target": target, "backup": {"mode": "Newest"}}), "spec.backup.mode"),
        (json!({"artifortressRef": {"name": "p"}, "method": "Snapshot"}), "spec.method"),
    ] {
        let err = drills
            .create(&PostParams::default(), &drill(spec.clone()))
            .await
            .expect_err(&format!("{spec} must be rejected"));
        assert!(err.to_string().contains(field), "{spec}: {err}");
    }

    let backup: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "b"}, "spec": {"artifortressRef": {"name": "p"}, "verify": "Sometimes"}}))
        .unwrap();
    let err = backups.create(&PostParams::default(), &backup).await.unwrap_err();
    assert!(err.to_string().contains("spec.verify"), "{err}");

    let schedule: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "BackupSchedule",
        "metadata": {"name": "s"}, "spec": {"artifortressRef": {"name": "p"}, "schedule": "every hour"}}))
        .unwrap();
    let err = schedules.create(&PostParams::default(), &schedule).await.unwrap_err();
    assert!(err.to_string().contains("spec.schedule"), "{err}");

    // Defaults come from the schema: an omitted field reads back with its default.
    let minimal: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "BackupSchedule",
        "metadata": {"name": "minimal"}, "spec": {"artifortressRef": {"name": "p"}, "schedule": "@hourly"}}))
        .unwrap();
    schedules.create(&PostParams::default(), &minimal).await.unwrap();
    let read = Api::<BackupSchedule>::namespaced(client.clone(), &ns).get("minimal").await.unwrap();
    assert_eq!(read.spec.time_zone, "UTC");
    assert!(!read.spec.suspend);

    Api::<Namespace>::all(client.clone()).delete(&ns, &Default::default()).await.unwrap();
}
