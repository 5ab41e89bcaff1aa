//! The four controllers on the real API server, their Jobs run by the
//! job-runner helper against the real PostgreSQL servers and Garage.
//!
//! API-server level: no kubelet runs these Jobs (the job-runner stand-in does);
//! what their pods do on a real node is tests/node.rs.

mod support;

use std::time::Duration;

use artifortress_operator::api::artifortress::Artifortress;
use artifortress_operator::api::backup::{Backup, BackupPhase};
use artifortress_operator::api::backup_schedule::BackupSchedule;
use artifortress_operator::api::common::ConditionStatus;
use artifortress_operator::api::recovery_drill::{DrillPhase, DrillResult, RecoveryDrill};
use artifortress_operator::controller::backup::FROM_CATALOG;
use artifortress_operator::engine::manifest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;
use support::cluster::{Installation, ManualClock, event_matching, secret, wait_until};
use support::{TestDatabase, env};

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

fn finished_backup(b: &Backup) -> bool {
    matches!(b.status.as_ref().and_then(|s| s.phase), Some(BackupPhase::Completed | BackupPhase::Failed))
}

fn finished_drill(d: &RecoveryDrill) -> bool {
    matches!(d.status.as_ref().and_then(|s| s.phase), Some(DrillPhase::Succeeded | DrillPhase::Failed))
}

fn reason(conditions: &[artifortress_operator::api::common::Condition], type_: &str) -> String {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.reason.clone()).unwrap_or_default()
}

fn drill(name: &str, backup: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"artifortressRef": {"name": "production"}, "backup": backup,
                          "target": {"connectionSecretRef": {"name": "target", "key": "uri"}}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn a_backup_reaches_completed_with_the_manifest_in_status() {
    let i = Installation::start("ctlbk", None).await;
    let backups = i.api::<Backup>();

    // A Backup of an installation that does not exist waits with an actionable reason.
    i.create("Backup", json!({"metadata": {"name": "orphan"}, "spec": {"artifortressRef": {"name": "nope"}}})).await;
    let orphan =
        wait_until(&backups, "orphan", MINUTE, |b| b.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
            .await
            .status
            .unwrap();
    assert_eq!(orphan.phase, Some(BackupPhase::Pending));
    assert_eq!(reason(&orphan.conditions, "Ready"), "ArtifortressNotFound");
    assert!(orphan.conditions[0].message.contains("fix spec.artifortressRef"), "{:?}", orphan.conditions);

    i.create("Backup", json!({"metadata": {"name": "nightly-1"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    let status = wait_until(&backups, "nightly-1", 2 * MINUTE, finished_backup).await.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed), "{status:?}");

    // Status mirrors the stored manifest.
    let manifest = manifest::load(i.store().await.as_ref(), "nightly-1").await.unwrap();
    assert_eq!(status.sha256.as_deref(), Some(manifest.dump.sha256.as_str()));
    assert_eq!(status.size_bytes, Some(manifest.dump.size_bytes));
    let recorded: Vec<_> = manifest.tables.iter().map(|t| (t.table.clone(), t.rows, t.checksum.clone())).collect();
    let mirrored: Vec<_> = status.tables.iter().map(|t| (t.table.clone(), t.rows, t.checksum.clone())).collect();
    assert_eq!(mirrored, recorded);
    assert_eq!(status.snapshot_time, Some(manifest.snapshot_time));
    assert_eq!(status.location.as_deref(), Some(format!("s3://{}/prod/production/nightly-1/", i.bucket).as_str()));
    assert_eq!(status.job_name.as_deref(), Some("backup-nightly-1"));
    assert_eq!(reason(&status.conditions, "Ready"), "Completed");
    assert!(status.observed_generation.is_some());
    let outbox = manifest.tables.iter().find(|t| t.table == "public.outbox_events").unwrap();
    assert!(outbox.rows > 0);

    // A Job that exits non-zero fails the Backup with the Job's reason.
    secret(&i.client, &i.ns, "bad-db", json!({"uri": "postgres://nobody:wrong@127.0.0.1:1/none"})).await;
    i.create(
        "Artifortress",
        json!({"metadata": {"name": "broken"},
               "spec": {"database": {"connectionSecretRef": {"name": "bad-db", "key": "uri"}},
                        "objectStorage": support::cluster::storage(&i.bucket)}}),
    )
    .await;
    i.create("Backup", json!({"metadata": {"name": "doomed"}, "spec": {"artifortressRef": {"name": "broken"}}})).await;
    let status = wait_until(&backups, "doomed", MINUTE, finished_backup).await.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    let message = status.message.unwrap();
    assert!(message.contains("Job backup-doomed failed") && message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("wrong"), "no password in status: {message}");

    // Every transition is an Event on the object.
    let named = |e: &Event, name, reason| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.reason.as_deref() == Some(reason)
    };
    let events = event_matching(&i.api(), 10 * SECOND, |e| named(e, "doomed", "JobFailed")).await;
    let reasons: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("doomed"))
        .map(|e| (e.reason.clone().unwrap_or_default(), e.type_.clone().unwrap_or_default()))
        .collect();
    assert!(reasons.contains(&("Running".into(), "Normal".into())), "{reasons:?}");
    assert!(reasons.contains(&("JobFailed".into(), "Warning".into())), "{reasons:?}");
    // The step's figures are in its Completed Event, once.
    let completed: Vec<String> = events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("nightly-1"))
        .filter(|e| e.reason.as_deref() == Some("Completed"))
        .map(|e| e.note.clone().unwrap_or_default())
        .collect();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert!(completed[0].contains(" stored in ") && completed[0].contains("/s; archive"), "{completed:?}");

    // The installation reports its dependencies, SLO and newest backup.
    let af = wait_until(&i.api::<Artifortress>(), "production", MINUTE, |a| {
        a.status.as_ref().is_some_and(|s| s.last_backup.is_some() && s.slo.is_some())
    })
    .await
    .status
    .unwrap();
    assert_eq!(reason(&af.conditions, "Ready"), "DependenciesReady", "{:?}", af.conditions);
    assert_eq!(reason(&af.conditions, "DatabaseReady"), "Reachable");
    assert_eq!(reason(&af.conditions, "ObjectStorageReady"), "Reachable");
    assert_eq!(reason(&af.conditions, "PhysicalPathAvailable"), "ReplicationAllowed");
    assert!(!reason(&af.conditions, "SLOHealthy").is_empty());
    assert_eq!(af.last_backup.unwrap().name, "nightly-1");
    let broken = wait_until(&i.api::<Artifortress>(), "broken", MINUTE, |a| a.status.is_some()).await.status.unwrap();
    assert_eq!(reason(&broken.conditions, "DatabaseReady"), "Unreachable");
    assert_eq!(reason(&broken.conditions, "Ready"), "DependencyDown");
    let metrics = i.ctx.metrics.encode();
    for family in
        ["artifortress_backup_successes_total", "artifortress_backup_failures_total", "artifortress_reconciles_total"]
    {
        assert!(metrics.contains(family), "{family} in\n{metrics}");
    }
}

/// An installation configured the way the Kublai Helm chart ships it: the
/// release's Secret (an Npgsql connection string, the S3 keys) and ConfigMap
/// (endpoint, bucket, Lifecycle__*); the schema level and upstream's figures
/// reach status; a ConfigMap that is not there is named; no password anywhere.
#[tokio::test]
async fn an_installation_reads_the_kublai_releases_secret_and_config_map() {
    let i = Installation::start("ctlkublai", None).await;
    let u = url::Url::parse(i.db.url.expose()).unwrap();
    // The application's own role, as a managed PostgreSQL gives it: it reads
    // everything and may not stream WAL (no REPLICATION).
    let role = format!("kublai_app_{}", i.ns.replace('-', "_"));
    let password = format!("app-{}", std::process::id());
    let admin = i.db.pool().await;
    sqlx::query(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pg_read_all_data"))
        .execute(&admin)
        .await
        .unwrap();
    let npgsql = format!(
        "Host={};Port={};Username={role};Password='{password}';Database={};SSL Mode=Disable;Pooling=true",
        u.host_str().unwrap(),
        u.port().unwrap(),
        &u.path()[1..]
    );
    secret(
        &i.client,
        &i.ns,
        "kublai-secrets",
        json!({"ConnectionStrings__Postgres": npgsql, "ObjectStorage__AccessKey": env("AWS_ACCESS_KEY_ID"),
               "ObjectStorage__SecretKey": env("AWS_SECRET_ACCESS_KEY"), "Auth__BootstrapToken": "x"}),
    )
    .await;
    let config: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kublai-config"},
        "data": {"ObjectStorage__Endpoint": env("AF_TEST_S3_ENDPOINT"), "ObjectStorage__Bucket": i.bucket,
                 "Lifecycle__DefaultGcRetentionGraceHours": "24", "Lifecycle__DefaultTombstoneRetentionDays": "30"}
    }))
    .unwrap();
    i.api::<k8s_openapi::api::core::v1::ConfigMap>().create(&Default::default(), &config).await.unwrap();
    i.create(
        "Artifortress",
        json!({"metadata": {"name": "kublai"},
               "spec": {"kublai": {}, "backupStorage": support::cluster::backup_storage(&i.bucket), "probeInterval": "1h"}}),
    )
    .await;
    let af = wait_until(&i.api::<Artifortress>(), "kublai", MINUTE, |a| {
        a.status.as_ref().is_some_and(|s| s.schema.is_some() && s.slo.is_some())
    })
    .await
    .status
    .unwrap();
    assert_eq!(reason(&af.conditions, "Ready"), "DependenciesReady", "{:?}", af.conditions);
    assert_eq!(reason(&af.conditions, "SchemaSupported"), "Supported", "{:?}", af.conditions);
    let schema = af.schema.clone().unwrap();
    assert_eq!((schema.level.as_deref(), schema.versions), (Some("0015_worker_claim_path_indexes.sql"), 15));
    let slo = af.slo.clone().unwrap();
    let gc = slo.signals.iter().find(|s| s.signal == "incompleteGcRuns").unwrap();
    assert_eq!((gc.tenant.as_deref(), gc.value), (Some("default"), 1.0), "{slo:?}");
    let blobs = af.conditions.iter().find(|c| c.type_ == "BlobsRecoverable").unwrap();
    assert!(blobs.message.contains("Lifecycle__DefaultGcRetentionGraceHours=24 is only the default"), "{blobs:?}");
    let physical = af.conditions.iter().find(|c| c.type_ == "PhysicalPathAvailable").unwrap();
    assert_eq!(physical.reason, "ReplicationUnavailable", "{physical:?}");
    assert!(
        physical.message.contains(&format!("role {role} lacks the REPLICATION attribute"))
            && physical.message.ends_with("logical backups and drills go on"),
        "{physical:?}"
    );

    i.create(
        "Artifortress",
        json!({"metadata": {"name": "wrong-release"},
               "spec": {"kublai": {"configMapName": "kublai-prod-config"}, "probeInterval": "1h"}}),
    )
    .await;
    let wrong =
        wait_until(&i.api::<Artifortress>(), "wrong-release", MINUTE, |a| a.status.is_some()).await.status.unwrap();
    let ready = wrong.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(ready.message.contains("ConfigMap \"kublai-prod-config\""), "{ready:?}");
    let everything = format!(
        "{}{}",
        serde_json::to_string(&i.api::<Artifortress>().get("kublai").await.unwrap()).unwrap(),
        serde_json::to_string(&i.api::<Event>().list(&Default::default()).await.unwrap().items).unwrap()
    );
    assert!(!everything.contains(&password), "no password in status or Events");
}

#[tokio::test]
async fn a_fresh_drill_succeeds_with_parity_and_objectives_in_status() {
    let i = Installation::start("ctldr", None).await;
    i.create("RecoveryDrill", drill("proof", json!({"mode": "Fresh"}), json!({"rpo": "15m", "rto": "30m"}))).await;
    let drills = i.api::<RecoveryDrill>();
    let status = wait_until(&drills, "proof", 3 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{:?}", status.failures);
    assert_eq!(status.phase, Some(DrillPhase::Succeeded));
    let backup = status.backup.as_ref().unwrap();
    assert!(backup.fresh);
    let manifest = manifest::load(i.store().await.as_ref(), &backup.name).await.unwrap();
    assert_eq!(status.parity.len(), manifest.tables.len());
    for (p, t) in status.parity.iter().zip(&manifest.tables) {
        assert_eq!(
            (p.table.as_str(), p.expected, p.restored, p.matches),
            (t.table.as_str(), t.rows, Some(t.rows), true)
        );
    }
    let (rpo, rto) = (status.rpo.as_ref().unwrap(), status.rto.as_ref().unwrap());
    assert_eq!((rpo.objective_seconds, rpo.met), (Some(900.0), Some(true)));
    assert_eq!((rto.objective_seconds, rto.met), (Some(1800.0), Some(true)));
    assert!(status.report.as_deref().unwrap().ends_with(".md"), "{:?}", status.report);
    let timings = status.timings.as_ref().unwrap();
    let engine: f64 =
        [timings.backup_seconds, timings.download_seconds, timings.restore_seconds, timings.parity_seconds]
            .iter()
            .map(|t| t.unwrap())
            .sum();
    eprintln!(
        "drill total {:.2} s, engine {engine:.2} s, control overhead {:.2} s",
        timings.total_seconds.unwrap(),
        timings.total_seconds.unwrap() - engine
    );

    // Each step was one Job, and the scratch database was dropped.
    let jobs = i.api::<Job>().list(&ListParams::default()).await.unwrap();
    let mut names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
    names.sort();
    assert_eq!(names, ["backup-drill-proof", "restore-proof", "verify-proof"]);
    // Step boundaries carry the step's figures in their Events, once each.
    let events = i.api::<Event>().list(&ListParams::default()).await.unwrap();
    let said = |reason: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("proof"))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.note.clone().unwrap_or_default())
            .collect()
    };
    let (restoring, verifying) = (said("Restoring"), said("Verifying"));
    assert!(restoring.len() == 1 && restoring[0].contains(" stored)"), "{restoring:?}");
    assert!(verifying.len() == 1 && verifying[0].contains("downloaded in ") && verifying[0].contains("restored in "));

    // kubectl shows phase, result, RPO and RTO.
    let out = std::process::Command::new("kubectl")
        .args(["get", "recoverydrills", "-n", &i.ns])
        .env("KUBECONFIG", env("KUBECONFIG"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "RESULT", "RPO", "RTO", "AGE"], "{table}");
    let row = table.lines().nth(1).unwrap();
    assert!(row.contains("Succeeded") && row.contains("Passed") && row.contains(&rpo.summary), "{table}");

    // The installation points at its last drill.
    let af = wait_until(&i.api::<Artifortress>(), "production", MINUTE, |a| {
        a.status.as_ref().is_some_and(|s| s.last_drill.is_some())
    })
    .await;
    assert_eq!(af.status.unwrap().last_drill.unwrap().result.as_deref(), Some("Passed"));
}

#[tokio::test]
async fn drills_that_miss_their_rto_or_whose_job_fails_end_failed_with_the_reason() {
    let i = Installation::start("ctlfl", None).await;
    i.create("Backup", json!({"metadata": {"name": "base"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&i.api::<Backup>(), "base", 2 * MINUTE, finished_backup).await;

    let drills = i.api::<RecoveryDrill>();
    i.create("RecoveryDrill", drill("too-slow", json!({"mode": "Named", "name": "base"}), json!({"rto": "1ms"}))).await;
    let status = wait_until(&drills, "too-slow", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed));
    assert!(status.failures.iter().any(|f| f.contains("RTO objective missed")), "{:?}", status.failures);
    assert!(status.parity.iter().all(|p| p.matches) && !status.parity.is_empty(), "parity still reported");
    assert_eq!(status.rto.as_ref().unwrap().met, Some(false));
    assert_eq!(status.reason.as_deref(), Some("RTOMissed"));
    assert_eq!(reason(&status.conditions, "Ready"), "RTOMissed");

    // The restore Job exits non-zero: its reason ends the drill.
    secret(&i.client, &i.ns, "dead-target", json!({"uri": "postgres://postgres:secret@127.0.0.1:1/scratch"})).await;
    let dead = json!({"mode": "Latest"});
    let mut body = drill("unreachable", dead, json!({}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("dead-target");
    i.create("RecoveryDrill", body).await;
    let status = wait_until(&drills, "unreachable", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed));
    let failures = status.failures.join("\n");
    assert!(failures.contains("restore:") && failures.contains("127.0.0.1:1"), "{failures}");
    assert!(!failures.contains("secret@"), "no password: {failures}");
    assert_eq!(reason(&status.conditions, "Ready"), "RestoreFailed");
}

#[tokio::test]
async fn a_schedule_on_an_injected_clock_backs_up_prunes_and_drills() {
    // Far ahead of the API server's clock, so the schedule's creation is in its past.
    let clock = ManualClock::at("2030-01-01T00:59:00Z");
    let i = Installation::start("ctlsc", Some(clock.clone())).await;
    i.create(
        "BackupSchedule",
        json!({"metadata": {"name": "hourly"},
               "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 * * * *", "timeZone": "UTC",
                        "startingDeadlineSeconds": 300, "retention": {"keepLast": 2},
                        "historyLimits": {"succeededDrills": 1, "failedDrills": 1, "failedBackups": 1},
                        "drill": {"minInterval": "0s",
                                  "template": {"target": {"connectionSecretRef": {"name": "target", "key": "uri"}},
                                               "rto": "30m"}}}}),
    )
    .await;
    let schedules = i.api::<BackupSchedule>();
    let backups = i.api::<Backup>();
    let drills = i.api::<RecoveryDrill>();
    // 00:00 was missed by 59 minutes (> startingDeadlineSeconds): skipped, next run 01:00.
    let s =
        wait_until(&schedules, "hourly", MINUTE, |s| s.status.as_ref().is_some_and(|s| s.next_schedule_time.is_some()))
            .await
            .status
            .unwrap();
    assert_eq!(s.next_schedule_time.unwrap().to_rfc3339(), "2030-01-01T01:00:00+00:00");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(backups.list(&ListParams::default()).await.unwrap().items.is_empty(), "nothing before 01:00");

    for (hour, now) in [(1, "2030-01-01T01:00:10Z"), (2, "2030-01-01T02:00:05Z"), (3, "2030-01-01T03:00:20Z")] {
        clock.set(now);
        let name = format!("hourly-203001010{hour}00");
        let b = wait_until(&backups, &name, 2 * MINUTE, finished_backup).await;
        assert_eq!(b.status.unwrap().phase, Some(BackupPhase::Completed));
        let d = wait_until(&drills, &format!("{name}-drill"), 3 * MINUTE, finished_drill).await;
        assert_eq!(d.status.unwrap().result, Some(DrillResult::Passed));
    }
    // Retention keeps the newest two, objects and resources together.
    let pruned = |names: Vec<String>| names == ["hourly-203001010200", "hourly-203001010300"];
    let poll = async {
        loop {
            let mut names: Vec<String> =
                backups.list(&ListParams::default()).await.unwrap().iter().map(|b| b.name_any()).collect();
            names.sort();
            if pruned(names) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::time::timeout(MINUTE, poll).await.expect("the oldest backup is pruned");
    let stored: Vec<String> =
        manifest::list(i.store().await.as_ref()).await.unwrap().manifests.into_iter().map(|m| m.backup_name).collect();
    assert_eq!(stored, ["hourly-203001010200", "hourly-203001010300"]);
    assert!(
        i.store().await.list("hourly-203001010100/").await.unwrap().is_empty(),
        "no object of the pruned backup left"
    );
    // History: one succeeded drill kept.
    let poll = async {
        loop {
            let names: Vec<String> =
                drills.list(&ListParams::default()).await.unwrap().iter().map(|d| d.name_any()).collect();
            if names == ["hourly-203001010300-drill"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::time::timeout(MINUTE, poll).await.expect("drill history is limited to one");
    let s = schedules.get("hourly").await.unwrap().status.unwrap();
    assert_eq!(s.last_schedule_time.unwrap().to_rfc3339(), "2030-01-01T03:00:00+00:00");
    assert_eq!(s.next_schedule_time.unwrap().to_rfc3339(), "2030-01-01T04:00:00+00:00");
    assert_eq!(s.last_successful_backup.unwrap().name, "hourly-203001010300");
}

/// Unfinished backup Jobs in the namespace right now.
async fn running_backup_jobs(i: &Installation) -> Vec<String> {
    let jobs = i.api::<Job>().list(&ListParams::default().labels("artifortress.io/step=backup")).await.unwrap();
    let done = |j: &Job| j.status.as_ref().is_some_and(|s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0) > 0);
    jobs.items.iter().filter(|j| !done(j)).map(|j| j.name_any()).collect()
}

#[tokio::test]
async fn backups_created_at_once_run_one_at_a_time_and_long_names_get_jobs() {
    let i = Installation::start("ctlone", None).await;
    let backups = i.api::<Backup>();
    let long = format!("weekly-{}", "x".repeat(193));
    assert_eq!(long.len(), 200);
    let (a, b) = tokio::join!(
        i.create("Backup", json!({"metadata": {"name": "first"}, "spec": {"artifortressRef": {"name": "production"}}})),
        i.create("Backup", json!({"metadata": {"name": long}, "spec": {"artifortressRef": {"name": "production"}}})),
    );
    let _ = (a, b);
    let (mut most, mut waited) = (0, false);
    let started = std::time::Instant::now();
    loop {
        most = most.max(running_backup_jobs(&i).await.len());
        let both: Vec<Backup> = backups.list(&ListParams::default()).await.unwrap().items;
        waited |= both.iter().any(|b| b.status.as_ref().is_some_and(|s| reason(&s.conditions, "Ready") == "Waiting"));
        if both.len() == 2 && both.iter().all(finished_backup) {
            break;
        }
        assert!(started.elapsed() < 3 * MINUTE, "both backups finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(most, 1, "never two backup Jobs of one installation at once");
    assert!(waited, "one of them waited for the other");
    for name in ["first", long.as_str()] {
        let status = backups.get(name).await.unwrap().status.unwrap();
        assert_eq!(status.phase, Some(BackupPhase::Completed), "{name}: {status:?}");
    }
    // The long name's Job and labels fit Kubernetes' 63 characters.
    let job = &i.api::<Job>().list(&ListParams::default()).await.unwrap().items;
    let long_job = job.iter().find(|j| j.name_any().starts_with("backup-weekly-")).expect("a Job for the long name");
    assert!(long_job.name_any().len() <= 63);
    assert!(long_job.labels().values().all(|v| v.len() <= 63), "{:?}", long_job.labels());
}

#[tokio::test]
async fn resync_keeps_what_users_deleted_deleted_and_a_new_cluster_sees_every_readable_backup() {
    let i = Installation::start("ctlct", None).await;
    let backups = i.api::<Backup>();
    let new = |name: &str, labels: serde_json::Value| json!({"metadata": {"name": name, "labels": labels}, "spec": {"artifortressRef": {"name": "production"}}});
    i.create("Backup", new("keeper", json!({}))).await;
    wait_until(&backups, "keeper", 2 * MINUTE, finished_backup).await;
    for name in ["nightly-1", "nightly-2"] {
        i.create("Backup", new(name, json!({"artifortress.io/schedule": "nightly"}))).await;
        wait_until(&backups, name, 2 * MINUTE, finished_backup).await;
    }
    let store = i.store().await;
    assert_eq!(
        manifest::load(store.as_ref(), "nightly-2").await.unwrap().labels["artifortress.io/schedule"],
        "nightly"
    );

    // deletionPolicy Retain: the data stays, the Backup stays deleted.
    let keeper = backups.get("keeper").await.unwrap();
    assert_eq!(keeper.finalizers(), [artifortress_operator::controller::backup::TOMBSTONE_FINALIZER]);
    backups.delete("keeper", &DeleteParams::default()).await.unwrap();
    let gone = async {
        while backups.get_opt("keeper").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(MINUTE, gone).await.expect("the Backup is deleted once its tombstone is written");
    tokio::time::sleep(Duration::from_secs(5)).await; // two resync rounds (probeInterval 2s)
    assert!(backups.get_opt("keeper").await.unwrap().is_none(), "a deleted Backup is not resurrected");
    assert!(manifest::load(store.as_ref(), "keeper").await.is_ok(), "its data is retained");

    // A manifest nobody can read sits next to the good ones.
    store.put_bytes("broken/manifest.json", b"{not json".to_vec()).await.unwrap();

    // A new cluster (another namespace, same bucket) after a disaster.
    let ns2 = support::create_namespace(&i.client).await;
    support::create_installation_secrets(&i.client, &ns2, i.db.url.expose()).await;
    let target = support::with_database(&env("AF_TEST_PG_TARGET_URL"), &format!("scratch2_{}", i.db.name));
    secret(&i.client, &ns2, "target", json!({"uri": target})).await;
    let af = i.api::<Artifortress>().get("production").await.unwrap();
    let spec = serde_json::to_value(&af.spec).unwrap();
    support::cluster::create(
        &i.client,
        &ns2,
        "Artifortress",
        json!({"metadata": {"name": "production"}, "spec": spec}),
    )
    .await;
    let controllers = {
        let ctx = i.ctx.clone();
        let ns2 = ns2.clone();
        tokio::spawn(
            async move { artifortress_operator::controller::run_all(ctx, Some(ns2), std::future::pending()).await },
        )
    };
    let _runner = support::job_runner::JobRunner::start(i.client.clone(), &ns2);
    let backups2: kube::Api<Backup> = kube::Api::namespaced(i.client.clone(), &ns2);
    let back = wait_until(&backups2, "nightly-2", MINUTE, finished_backup).await;
    assert_eq!(back.annotations().get(FROM_CATALOG).map(String::as_str), Some("true"));
    assert_eq!(back.labels().get("artifortress.io/schedule").map(String::as_str), Some("nightly"));
    wait_until(&backups2, "nightly-1", MINUTE, finished_backup).await;
    let af2s: kube::Api<Artifortress> = kube::Api::namespaced(i.client.clone(), &ns2);
    let af2 = wait_until(&af2s, "production", MINUTE, |a| {
        a.status.as_ref().is_some_and(|s| reason(&s.conditions, "CatalogReadable") == "ManifestUnreadable")
    })
    .await;
    let readable = af2.status.unwrap().conditions.into_iter().find(|c| c.type_ == "CatalogReadable").unwrap();
    assert!(readable.message.contains("broken:"), "{}", readable.message);
    assert!(backups2.get_opt("keeper").await.unwrap().is_none(), "tombstoned backups are not recreated");

    // A Latest drill works beside the unreadable manifest and picks the newest good backup.
    let drills2: kube::Api<RecoveryDrill> = kube::Api::namespaced(i.client.clone(), &ns2);
    support::cluster::create(&i.client, &ns2, "RecoveryDrill", drill("latest", json!({"mode": "Latest"}), json!({})))
        .await;
    let status = wait_until(&drills2, "latest", 3 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{:?}", status.failures);
    assert_eq!(status.backup.unwrap().name, "nightly-2");

    // The recreated scheduled backups are pruned by their schedule's retention.
    support::cluster::create(
        &i.client,
        &ns2,
        "BackupSchedule",
        json!({"metadata": {"name": "nightly"},
               "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 0 1 1 *", "retention": {"keepLast": 1}}}),
    )
    .await;
    let pruned = async {
        while backups2.get_opt("nightly-1").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(MINUTE, pruned).await.expect("retention prunes the older recreated backup");
    assert!(backups2.get_opt("nightly-2").await.unwrap().is_some(), "the newest success is kept");

    // A forced resync brings back what was deleted, once.
    let patch = json!({"metadata": {"annotations": {artifortress_operator::controller::artifortress::FORCE_RESYNC: "2026-12-02"}}});
    af2s.patch("production", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    wait_until(&backups2, "keeper", MINUTE, finished_backup).await;
    let tombstones = store.list("keeper/").await.unwrap();
    assert!(tombstones.iter().all(|o| !o.key.ends_with("deleted.json")), "the tombstone is removed: {tombstones:?}");
    controllers.abort();
}

#[tokio::test]
async fn two_drills_on_one_scratch_database_take_turns() {
    let i = Installation::start("ctltwo", None).await;
    let backups = i.api::<Backup>();
    i.create("Backup", json!({"metadata": {"name": "base"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&backups, "base", 2 * MINUTE, finished_backup).await;
    let named = json!({"mode": "Named", "name": "base"});
    let (a, b) = tokio::join!(
        i.create("RecoveryDrill", drill("one", named.clone(), json!({}))),
        i.create("RecoveryDrill", drill("two", named.clone(), json!({}))),
    );
    let _ = (a, b);
    let drills = i.api::<RecoveryDrill>();
    let (mut overlap, mut waited) = (false, String::new());
    let started = std::time::Instant::now();
    loop {
        let all = drills.list(&ListParams::default()).await.unwrap().items;
        let restoring = all
            .iter()
            .filter(|d| {
                matches!(d.status.as_ref().and_then(|s| s.phase), Some(DrillPhase::Restoring | DrillPhase::Verifying))
            })
            .count();
        overlap |= restoring > 1;
        if let Some(d) =
            all.iter().find(|d| d.status.as_ref().is_some_and(|s| reason(&s.conditions, "Ready") == "TargetBusy"))
        {
            waited = d.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap().message.clone();
        }
        if all.len() == 2 && all.iter().all(finished_drill) {
            break;
        }
        assert!(started.elapsed() < 4 * MINUTE, "both drills finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!overlap, "never two drills restoring into one database");
    assert!(waited.contains("waiting for RecoveryDrill"), "one waited, saying for whom: {waited:?}");
    for name in ["one", "two"] {
        let status = drills.get(name).await.unwrap().status.unwrap();
        assert_eq!(status.result, Some(DrillResult::Passed), "{name}: {:?}", status.failures);
    }
}

#[tokio::test]
async fn bad_specs_get_a_condition_a_person_can_act_on() {
    let i = Installation::start("ctlbad", None).await;
    let drills = i.api::<RecoveryDrill>();
    let with_condition = |d: &RecoveryDrill| d.status.as_ref().is_some_and(|s| !s.conditions.is_empty());

    let mut body = drill("no-secret", json!({"mode": "Fresh"}), json!({}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("missing");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "no-secret", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "SecretNotFound");
    assert!(s.conditions[0].message.contains("Secret \"missing\" does not exist"), "{:?}", s.conditions);
    assert_eq!(s.phase, Some(DrillPhase::Pending));

    let mut body = drill("no-key", json!({"mode": "Fresh"}), json!({}));
    body["spec"]["target"]["connectionSecretRef"]["key"] = json!("url");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "no-key", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "SecretNotFound");
    assert!(s.conditions[0].message.contains("Secret \"target\" has no key \"url\""), "{:?}", s.conditions);

    let mut body = drill("over-source", json!({"mode": "Fresh"}), json!({}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("db");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "over-source", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "TargetIsSource", "{:?}", s.conditions);

    // The API server accepts a drill without a target (a Physical one needs
    // none); the operator says what a Logical one lacks, and what is wrong
    // with a Physical one's recovery target.
    let mut body = drill("no-target", json!({"mode": "Fresh"}), json!({}));
    body["spec"].as_object_mut().unwrap().remove("target");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "no-target", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "InvalidSpec");
    assert!(s.conditions[0].message.contains("spec.target is missing"), "{:?}", s.conditions);
    let mut body = drill("physical-target", json!({"mode": "Fresh"}), json!({"method": "Physical"}));
    body["spec"]["recoveryTarget"] = json!("yesterday");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "physical-target", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "InvalidSpec");
    assert!(s.conditions[0].message.contains("spec.target is for Logical drills"), "{:?}", s.conditions);
    let mut body = drill("bad-recovery-target", json!({"mode": "Fresh"}), json!({"method": "Physical"}));
    body["spec"].as_object_mut().unwrap().remove("target");
    body["spec"]["recoveryTarget"] = json!("yesterday");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "bad-recovery-target", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "InvalidSpec");
    assert!(s.conditions[0].message.contains("spec.recoveryTarget"), "{:?}", s.conditions);
    let mut body = drill("unarchived", json!({"mode": "Fresh"}), json!({"method": "Physical"}));
    body["spec"].as_object_mut().unwrap().remove("target");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "unarchived", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "WalNotArchived", "{:?}", s.conditions);
    assert!(s.conditions[0].message.contains("spec.walArchive"), "{:?}", s.conditions);
    let backup = json!({"metadata": {"name": "unarchived-base"},
                        "spec": {"artifortressRef": {"name": "production"}, "method": "Physical"}});
    i.create("Backup", backup).await;
    let b = wait_until(&i.api::<Backup>(), "unarchived-base", MINUTE, |b| b.status.is_some()).await;
    let s = b.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "WalNotArchived", "{:?}", s.conditions);
    assert!(i.api::<Job>().get_opt("backup-unarchived-base").await.unwrap().is_none(), "no base backup of the source");

    let mut body = drill("unknown", json!({"mode": "Fresh"}), json!({}));
    body["spec"]["artifortressRef"]["name"] = json!("staging");
    i.create("RecoveryDrill", body).await;
    let s = wait_until(&drills, "unknown", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "ArtifortressNotFound");

    i.create(
        "BackupSchedule",
        json!({"metadata": {"name": "martian"},
               "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 3 * * *", "timeZone": "Mars/Olympus_Mons"}}),
    )
    .await;
    let s = wait_until(&i.api::<BackupSchedule>(), "martian", MINUTE, |s| s.status.is_some()).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "InvalidSpec");
    assert!(s.conditions[0].message.contains("Mars/Olympus_Mons"), "{:?}", s.conditions);
    // Five fields pass the API server's pattern; minute 61 does not pass the operator.
    i.create(
        "BackupSchedule",
        json!({"metadata": {"name": "minute-61"},
               "spec": {"artifortressRef": {"name": "production"}, "schedule": "61 * * * *"}}),
    )
    .await;
    let s = wait_until(&i.api::<BackupSchedule>(), "minute-61", MINUTE, |s| s.status.is_some()).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "InvalidSpec");
    assert!(s.conditions[0].message.contains("61 * * * *"), "{:?}", s.conditions);

    i.create(
        "Artifortress",
        json!({"metadata": {"name": "secretless"},
               "spec": {"database": {"connectionSecretRef": {"name": "nowhere", "key": "uri"}},
                        "objectStorage": support::cluster::storage(&i.bucket)}}),
    )
    .await;
    let s = wait_until(&i.api::<Artifortress>(), "secretless", MINUTE, |a| a.status.is_some()).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "DatabaseReady"), "SecretNotFound");

    // Warning Events name the problem; nothing loops hot on a bad spec.
    let reconciles = |controller: &str| {
        let text = i.ctx.metrics.encode();
        let prefix = format!("artifortress_reconciles_total{{controller=\"{controller}\"}}");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = [reconciles("recoverydrill"), reconciles("artifortress")];
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = [reconciles("recoverydrill"), reconciles("artifortress")];
    assert!(after[0] - before[0] <= 3.0, "bad specs are not retried in a loop: {before:?} -> {after:?}");
    // Two installations probed every 2 s (probeInterval; each probe also sees its own
    // status write once), not again after every status write.
    assert!(after[1] - before[1] <= 16.0, "installations are probed on their interval: {before:?} -> {after:?}");
    let events = event_matching(&i.api(), 10 * SECOND, |e| e.reason.as_deref() == Some("TargetIsSource")).await;
    let warning =
        events.iter().find(|e| e.reason.as_deref() == Some("TargetIsSource")).expect("an Event for the bad target");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn drills_never_restore_over_a_database_the_operator_did_not_create_or_an_installation() {
    let i = Installation::start("ctlns", None).await;
    i.create("Backup", json!({"metadata": {"name": "base"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&i.api::<Backup>(), "base", 2 * MINUTE, finished_backup).await;
    let drills = i.api::<RecoveryDrill>();

    // Another application's database on the target server, with its rows.
    let foreign = TestDatabase::create("AF_TEST_PG_TARGET_URL", "appdb").await;
    let pool = foreign.pool().await;
    sqlx::raw_sql("CREATE TABLE customers AS SELECT g AS id FROM generate_series(1, 1000) g")
        .execute(&pool)
        .await
        .unwrap();
    secret(&i.client, &i.ns, "foreign-target", json!({"uri": foreign.url.expose()})).await;
    let mut body = drill("into-foreign", json!({"mode": "Named", "name": "base"}), json!({}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("foreign-target");
    i.create("RecoveryDrill", body).await;
    let status = wait_until(&drills, "into-foreign", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed));
    assert_eq!(status.reason.as_deref(), Some("TargetNotScratch"), "{:?}", status.failures);
    assert_eq!(reason(&status.conditions, "Ready"), "TargetNotScratch");
    assert!(status.failures.join(" ").contains("was not created by artifortress-operator"), "{:?}", status.failures);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1000, "the database is intact");

    // Another installation's database is refused by the controller itself.
    let other = TestDatabase::create("AF_TEST_PG_TARGET_URL", "otherprod").await;
    secret(&i.client, &i.ns, "other-db", json!({"uri": other.url.expose()})).await;
    i.create(
        "Artifortress",
        json!({"metadata": {"name": "other"},
               "spec": {"database": {"connectionSecretRef": {"name": "other-db", "key": "uri"}},
                        "objectStorage": support::cluster::storage(&i.bucket), "probeInterval": "1h"}}),
    )
    .await;
    let mut body = drill("into-other", json!({"mode": "Named", "name": "base"}), json!({}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("other-db");
    i.create("RecoveryDrill", body).await;
    let with_condition = |d: &RecoveryDrill| d.status.as_ref().is_some_and(|s| !s.conditions.is_empty());
    let s = wait_until(&drills, "into-other", MINUTE, with_condition).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "Ready"), "TargetIsInstallation", "{:?}", s.conditions);
    assert!(s.conditions[0].message.contains("installation"), "{:?}", s.conditions);
    assert_eq!(s.phase, Some(DrillPhase::Pending));
}

#[tokio::test]
async fn drills_into_a_newer_major_are_upgrade_rehearsals_and_into_an_older_one_are_refused() {
    let i = Installation::start("ctlmj", None).await;
    let drills = i.api::<RecoveryDrill>();
    let scratch_on = |major: u32| {
        support::with_database(
            &env(&format!("AF_TEST_PG{major}_URL")),
            &support::unique_name("scratch").replace('-', "_"),
        )
    };

    // The installation (PostgreSQL 15) drilled into an 18 server.
    secret(&i.client, &i.ns, "pg18-target", json!({"uri": scratch_on(18)})).await;
    let mut body = drill("rehearsal", json!({"mode": "Fresh"}), json!({}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("pg18-target");
    i.create("RecoveryDrill", body).await;
    let status = wait_until(&drills, "rehearsal", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{:?}", status.failures);
    assert_eq!((status.source_major, status.target_major), (Some(15), Some(18)));
    assert_eq!(status.upgrade_rehearsal.as_deref(), Some("15 → 18"));

    // An installation on PostgreSQL 18 drilled into a 15 server: a downgrade, refused.
    let pg18 = support::with_database(&env("AF_TEST_PG18_URL"), &support::unique_name("prod18").replace('-', "_"));
    let admin = sqlx::PgPool::connect(&env("AF_TEST_PG18_URL")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{}\"", pg18.rsplit('/').next().unwrap())).execute(&admin).await.unwrap();
    let out =
        std::process::Command::new(support::operator_bin()).args(["migrate", "--database", &pg18]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    secret(&i.client, &i.ns, "pg18-db", json!({"uri": pg18})).await;
    i.create(
        "Artifortress",
        json!({"metadata": {"name": "newer"},
               "spec": {"database": {"connectionSecretRef": {"name": "pg18-db", "key": "uri"}},
                        "objectStorage": support::cluster::storage(&i.bucket), "probeInterval": "1h"}}),
    )
    .await;
    let target = scratch_on(15);
    secret(&i.client, &i.ns, "pg15-target", json!({"uri": &target})).await;
    let mut body = drill("downgrade", json!({"mode": "Fresh"}), json!({}));
    body["spec"]["artifortressRef"]["name"] = json!("newer");
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("pg15-target");
    i.create("RecoveryDrill", body).await;
    let status = wait_until(&drills, "downgrade", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed));
    assert_eq!(status.reason.as_deref(), Some("UnsupportedVersions"), "{:?}", status.failures);
    assert_eq!(reason(&status.conditions, "Ready"), "UnsupportedVersions");
    assert!(status.failures.join(" ").contains("downgrade"), "{:?}", status.failures);
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(target.rsplit('/').next().unwrap())
        .fetch_one(&sqlx::PgPool::connect(&env("AF_TEST_PG15_URL")).await.unwrap())
        .await
        .unwrap();
    assert!(!exists, "the target database was not created");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", pg18.rsplit('/').next().unwrap()))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn installations_say_whether_blobs_are_recoverable_and_drills_check_the_blobs() {
    let i = Installation::start("ctlbl", None).await;
    let has = |type_: &'static str| {
        move |a: &Artifortress| a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == type_))
    };
    let s = wait_until(&i.api::<Artifortress>(), "production", MINUTE, has("BlobsRecoverable")).await.status.unwrap();
    let blobs = s.conditions.iter().find(|c| c.type_ == "BlobsRecoverable").unwrap();
    // Garage 2.5 has no bucket versioning (it reports it as never enabled and
    // does not implement PutBucketVersioning): the window comes from the GC
    // runs the seed recorded (the newest deleting one hours ago), older than
    // every backup (none yet).
    assert_eq!((blobs.status, blobs.reason.as_str()), (ConditionStatus::True, "CompleteSinceLastGc"), "{blobs:?}");
    assert!(blobs.message.contains("versioning is off") && blobs.message.contains("complete back to"), "{blobs:?}");
    assert!(blobs.message.contains("tombstoned version(s) whose retention has passed"), "{blobs:?}");
    assert_eq!(reason(&s.conditions, "BackupStorageSeparate"), "BackupsSeparate");

    // Backups written inside the blob store are a warning condition.
    i.create(
        "Artifortress",
        json!({"metadata": {"name": "shared"},
               "spec": {"database": {"connectionSecretRef": {"name": "db", "key": "uri"}},
                        "objectStorage": support::cluster::storage(&i.bucket), "probeInterval": "1h"}}),
    )
    .await;
    let s = wait_until(&i.api::<Artifortress>(), "shared", MINUTE, has("BackupStorageSeparate")).await.status.unwrap();
    assert_eq!(reason(&s.conditions, "BackupStorageSeparate"), "SharesBlobStorage", "{:?}", s.conditions);

    // A drill after one referenced blob was deleted from the bucket.
    i.create("Backup", json!({"metadata": {"name": "base"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&i.api::<Backup>(), "base", 2 * MINUTE, finished_backup).await;
    let drills = i.api::<RecoveryDrill>();
    i.create("RecoveryDrill", drill("all-there", json!({"mode": "Named", "name": "base"}), json!({}))).await;
    let status = wait_until(&drills, "all-there", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{:?}", status.failures);
    let checked = status.blobs.unwrap();
    assert_eq!((checked.referenced, checked.present, checked.missing), (2560, 2560, 0));

    let key: String = sqlx::query_scalar(
        "SELECT storage_key FROM blobs b WHERE EXISTS (SELECT 1 FROM artifact_entries e WHERE e.blob_digest = b.digest)
         ORDER BY storage_key LIMIT 1",
    )
    .fetch_one(&i.db.pool().await)
    .await
    .unwrap();
    let s3 = support::s3_client().await;
    s3.delete_object().bucket(&i.bucket).key(format!("blobs/{key}")).send().await.unwrap();
    i.create("RecoveryDrill", drill("one-gone", json!({"mode": "Named", "name": "base"}), json!({}))).await;
    let status = wait_until(&drills, "one-gone", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed));
    assert_eq!(status.reason.as_deref(), Some("BlobsMissing"), "{:?}", status.failures);
    assert_eq!(reason(&status.conditions, "Ready"), "BlobsMissing");
    let checked = status.blobs.unwrap();
    assert_eq!((checked.missing, checked.missing_keys.clone()), (1, vec![key.clone()]));
    assert!(status.failures.join(" ").contains(&key), "{:?}", status.failures);
}

#[tokio::test]
async fn retention_keeps_a_backup_an_unfinished_drill_restores() {
    let clock = ManualClock::at(&chrono::Utc::now().to_rfc3339());
    let i = Installation::start("ctlhold", Some(clock)).await;
    let backups = i.api::<Backup>();
    for name in ["old", "new"] {
        i.create(
            "Backup",
            json!({"metadata": {"name": name, "labels": {"artifortress.io/schedule": "nightly"}},
                   "spec": {"artifortressRef": {"name": "production"}}}),
        )
        .await;
        wait_until(&backups, name, 2 * MINUTE, finished_backup).await;
    }
    // A drill of "old" that cannot start yet (its target Secret is missing): unfinished.
    let mut waiting = drill("restores-old", json!({"mode": "Named", "name": "old"}), json!({}));
    waiting["spec"]["target"]["connectionSecretRef"]["name"] = json!("not-yet");
    i.create("RecoveryDrill", waiting).await;
    i.create(
        "BackupSchedule",
        json!({"metadata": {"name": "nightly"},
               "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 0 1 1 *", "suspend": true,
                        "retention": {"keepLast": 1}}}),
    )
    .await;
    let schedules = i.api::<BackupSchedule>();
    wait_until(&schedules, "nightly", MINUTE, |s| s.status.is_some()).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // several schedule reconciles (max requeue 1 s)
    assert!(backups.get_opt("old").await.unwrap().is_some(), "a backup a drill will restore is not pruned");
    i.api::<RecoveryDrill>().delete("restores-old", &DeleteParams::default()).await.unwrap();
    let pruned = async {
        while backups.get_opt("old").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(MINUTE, pruned).await.expect("pruned once no drill needs it");
    assert!(backups.get_opt("new").await.unwrap().is_some());
}

#[tokio::test]
async fn a_lease_the_operator_did_not_create_is_never_taken_over() {
    use k8s_openapi::api::coordination::v1::Lease;
    let i = Installation::start("ctlforeign", None).await;
    let foreign: Lease = serde_json::from_value(json!({
        "metadata": {"name": "artifortress-backup-production"},
        "spec": {"holderIdentity": "someone-else"}
    }))
    .unwrap();
    i.api::<Lease>().create(&Default::default(), &foreign).await.unwrap();
    i.create("Backup", json!({"metadata": {"name": "blocked"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    let backups = i.api::<Backup>();
    let status = wait_until(&backups, "blocked", MINUTE, |b| {
        b.status.as_ref().is_some_and(|s| reason(&s.conditions, "Ready") == "Waiting")
    })
    .await
    .status
    .unwrap();
    let message = &status.conditions.iter().find(|c| c.type_ == "Ready").unwrap().message;
    assert!(message.contains("did not create and will not change"), "{message}");
    let lease = i.api::<Lease>().get("artifortress-backup-production").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("someone-else"), "the Lease is untouched");
    assert!(i.api::<Job>().list(&ListParams::default()).await.unwrap().items.is_empty(), "no backup Job");
}

#[tokio::test]
async fn job_templates_shape_the_jobs_level_by_level_and_a_job_past_its_deadline_fails_the_drill() {
    let i = Installation::start("ctljt", None).await;
    let jobs = i.api::<Job>();
    let pod = |job: &Job| job.spec.clone().unwrap().template;
    // Installation-wide defaults…
    let patch = json!({"spec": {"jobTemplate": {
        "resources": {"requests": {"cpu": 2, "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}],
        "podLabels": {"team": "storage"},
        "staging": {"volume": "Ephemeral", "storageClassName": "fast"},
    }}});
    i.api::<Artifortress>()
        .patch("production", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    // …and a Backup's own settings over them.
    i.create(
        "Backup",
        json!({"metadata": {"name": "base"}, "spec": {"artifortressRef": {"name": "production"},
               "jobTemplate": {"priorityClassName": "batch-low", "imagePullSecrets": [{"name": "registry"}],
                               "podAnnotations": {"example.com/why": "nightly"}}}}),
    )
    .await;
    let status = wait_until(&i.api::<Backup>(), "base", 2 * MINUTE, finished_backup).await.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed), "{status:?}");
    let backup_pod = pod(&jobs.get("backup-base").await.unwrap());
    let (meta, spec) = (backup_pod.metadata.unwrap(), backup_pod.spec.unwrap());
    assert_eq!(spec.node_selector.unwrap()["disk"], "ssd", "from the installation");
    assert_eq!(spec.priority_class_name.as_deref(), Some("batch-low"), "from the Backup");
    assert_eq!(spec.image_pull_secrets.unwrap()[0].name, "registry");
    assert_eq!(meta.labels.unwrap()["team"], "storage");
    assert_eq!(meta.annotations.unwrap()["example.com/why"], "nightly");
    let backup_job = jobs.get("backup-base").await.unwrap();
    assert_eq!(backup_job.spec.unwrap().active_deadline_seconds, Some(6 * 3600), "the generous default");

    // A drill's override; pg_restore -j follows the CPUs requested, and the
    // staging claim is sized from the backup's archive.
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}});
    let body = drill(
        "shaped",
        json!({"mode": "Named", "name": "base"}),
        json!({"jobTemplate": {"nodeSelector": {"zone": "b"}, "affinity": affinity}}),
    );
    i.create("RecoveryDrill", body).await;
    let status = wait_until(&i.api::<RecoveryDrill>(), "shaped", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{status:?}");
    let restore = pod(&jobs.get("restore-shaped").await.unwrap()).spec.unwrap();
    assert_eq!(restore.node_selector.unwrap(), [("zone".to_string(), "b".to_string())].into(), "replaced whole");
    assert!(restore.affinity.unwrap().node_affinity.is_some());
    assert_eq!(restore.tolerations.unwrap()[0].value.as_deref(), Some("backup"), "kept from the installation");
    let container = &restore.containers[0];
    let args = container.args.clone().unwrap().join(" ");
    assert!(args.contains("--jobs 2"), "{args}");
    assert_eq!(container.resources.clone().unwrap().limits.unwrap()["memory"].0, "1Gi");
    let archive = manifest::load(i.store().await.as_ref(), "base").await.unwrap().dump.archive_bytes;
    let claim = restore.volumes.unwrap()[0].ephemeral.clone().expect("an ephemeral staging volume");
    let claim = claim.volume_claim_template.unwrap().spec;
    assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
    let requested = claim.resources.unwrap().requests.unwrap()["storage"].0.parse::<u64>().unwrap();
    assert_eq!(requested, archive + archive / 5 + (1 << 30));

    // A template the API server rejects: the Backup waits, saying what to fix.
    i.create(
        "Backup",
        json!({"metadata": {"name": "bad-template"}, "spec": {"artifortressRef": {"name": "production"},
               "jobTemplate": {"tolerations": [{"key": "x", "operator": "Sometimes"}]}}}),
    )
    .await;
    let bad = wait_until(&i.api::<Backup>(), "bad-template", MINUTE, |b| {
        b.status.as_ref().is_some_and(|s| reason(&s.conditions, "Ready") == "InvalidJobTemplate")
    })
    .await
    .status
    .unwrap();
    let message = &bad.conditions.iter().find(|c| c.type_ == "Ready").unwrap().message;
    assert!(message.contains("tolerations") && message.contains("fix the jobTemplate"), "{message}");
    assert_eq!(bad.phase, Some(BackupPhase::Pending));
    i.api::<Backup>().delete("bad-template", &DeleteParams::default()).await.unwrap();

    // A restore that never finishes (its target accepts connections and never
    // answers) is stopped at the drill's deadline: the drill fails with
    // DeadlineExceeded, not a generic Job failure.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    secret(&i.client, &i.ns, "hung", json!({"uri": format!("postgres://postgres:pw@127.0.0.1:{port}/scratch")})).await;
    let mut body =
        drill("hung", json!({"mode": "Named", "name": "base"}), json!({"jobTemplate": {"activeDeadlineSeconds": 3}}));
    body["spec"]["target"]["connectionSecretRef"]["name"] = json!("hung");
    i.create("RecoveryDrill", body).await;
    let status = wait_until(&i.api::<RecoveryDrill>(), "hung", 2 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed));
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"), "{:?}", status.failures);
    assert_eq!(reason(&status.conditions, "Ready"), "DeadlineExceeded");
    let failures = status.failures.join("\n");
    assert!(failures.contains("restore: Job restore-hung failed: ran longer than its deadline (3"), "{failures}");
    let hung = |e: &Event| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hung")
            && e.reason.as_deref() == Some("DeadlineExceeded")
    };
    let events = event_matching(&i.api(), 10 * SECOND, hung).await;
    assert!(events.iter().any(hung), "an Event says why");
}

/// A unique index that holds in the source and breaks on restore: its
/// "immutable" key function reads a database setting the scratch database
/// does not have, so both accounts get the same key there.
const BREAKS_ON_RESTORE: &str = "
CREATE FUNCTION public.email_key(e text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN current_setting('app.full_keys', true) = 'on' THEN e ELSE left(e, 5) END $$;
CREATE TABLE public.accounts (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO public.accounts VALUES (1, 'alice.secret@example.com'), (2, 'alice.other@example.com');
CREATE UNIQUE INDEX accounts_email_key ON public.accounts (public.email_key(email));
";

#[tokio::test]
async fn a_restore_that_fails_on_a_unique_key_names_the_constraint_and_only_the_job_log_has_the_row() {
    let i = Installation::start("ctluq", None).await;
    let pool = i.db.pool().await;
    sqlx::query(&format!("ALTER DATABASE \"{}\" SET app.full_keys = 'on'", i.db.name)).execute(&pool).await.unwrap();
    pool.close().await;
    // A new session reads the setting the index needs.
    let pool = i.db.pool().await;
    sqlx::raw_sql(BREAKS_ON_RESTORE).execute(&pool).await.unwrap();
    pool.close().await;

    i.create("RecoveryDrill", drill("dup", json!({"mode": "Fresh"}), json!({}))).await;
    let status = wait_until(&i.api::<RecoveryDrill>(), "dup", 3 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Failed), "{status:?}");
    assert_eq!(status.reason.as_deref(), Some("RestoreFailed"), "{:?}", status.failures);
    assert_eq!(reason(&status.conditions, "Ready"), "RestoreFailed");
    let failures = status.failures.join("\n");
    assert!(failures.contains("accounts_email_key") && failures.contains("public.accounts"), "{failures}");

    let failed = |e: &Event| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("dup")
            && e.reason.as_deref() == Some("RestoreFailed")
    };
    let events = event_matching(&i.api(), 10 * SECOND, failed).await;
    let event = events.iter().find(|e| failed(e)).expect("an Event for the failed restore");
    let said = event.note.clone().unwrap_or_default();
    assert!(said.contains("accounts_email_key"), "the Event names the constraint: {said}");
    let drill = serde_json::to_string(&i.api::<RecoveryDrill>().get("dup").await.unwrap()).unwrap();
    for text in [&drill, &said] {
        assert!(!text.contains("alice"), "no row value in status or Events:\n{text}");
    }
    // The stored report the drill links to carries no row value either.
    let store = i.store().await;
    let stored: Vec<_> = store.list("").await.unwrap().into_iter().filter(|o| o.key.contains("/drills/")).collect();
    assert!(!stored.is_empty(), "the drill stored its verdict and report");
    for object in stored {
        let body = String::from_utf8_lossy(&store.get_bytes(&object.key).await.unwrap()).into_owned();
        assert!(!body.contains("alice"), "no row value in {}:\n{body}", object.key);
    }

    // The restore Job's log (its pod's stderr) keeps the whole error.
    let log = i.runner.log("restore-dup");
    assert!(log.contains("is duplicated") && log.contains("alice"), "{log}");
}

/// The WAL archiver's Deployment follows `spec.walArchive`; a Deployment of
/// its name that the operator did not create is refused and left as it was.
#[tokio::test]
async fn the_wal_archiver_deployment_follows_the_spec_and_a_foreign_one_is_left_alone() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    let i = Installation::start("ctlwal", None).await;
    let deployments = i.api::<Deployment>();
    let theirs: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "wal-production", "labels": {"app": "theirs"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "theirs"}},
                 "template": {"metadata": {"labels": {"app": "theirs"}},
                              "spec": {"containers": [{"name": "c", "image": "theirs:1"}]}}}}))
    .unwrap();
    deployments.create(&Default::default(), &theirs).await.unwrap();
    let installations = i.api::<Artifortress>();
    let wal = |af: &Artifortress| {
        let conditions = af.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        conditions.into_iter().find(|c| c.type_ == "WalArchiving").map(|c| (c.reason, c.message))
    };
    let archive = Patch::Merge(json!({"spec": {"walArchive": {"heartbeat": "2s"}}}));
    installations.patch("production", &PatchParams::default(), &archive).await.unwrap();
    let af = wait_until(&installations, "production", MINUTE, |af| {
        wal(af).is_some_and(|(reason, _)| reason == "ArchiverNotDeployed")
    })
    .await;
    assert!(wal(&af).unwrap().1.contains("is left alone"), "{:?}", wal(&af));
    let image = |d: &Deployment| d.spec.template.spec.as_ref().unwrap().containers[0].image.clone();
    assert_eq!(image(&deployments.get("wal-production").await.unwrap()).as_deref(), Some("theirs:1"));

    // Theirs gone, the operator's own: `wal` with the slot and heartbeat, owned
    // by the installation; until its pod writes a status, NoStatusYet.
    deployments.delete("wal-production", &Default::default()).await.unwrap();
    wait_until(&installations, "production", MINUTE, |af| wal(af).is_some_and(|(reason, _)| reason == "NoStatusYet"))
        .await;
    let ours = wait_until(&deployments, "wal-production", MINUTE, |d| !d.owner_references().is_empty()).await;
    assert_eq!(ours.owner_references()[0].kind, "Artifortress");
    let args = ours.spec.template.spec.as_ref().unwrap().containers[0].args.clone().unwrap().join(" ");
    assert!(
        args.starts_with("wal --store ")
            && args.contains("--slot artifortress_production ")
            && args.contains("--heartbeat 2s"),
        "{args}"
    );

    let stop = Patch::Merge(json!({"spec": {"walArchive": null}}));
    installations.patch("production", &PatchParams::default(), &stop).await.unwrap();
    let gone = async {
        while deployments.get_opt("wal-production").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::time::timeout(MINUTE, gone).await.expect("the archiver's Deployment is deleted without walArchive");
}

/// An identity file and its recipient, made by the reference `age-keygen`.
fn age_keypair(dir: &std::path::Path, name: &str) -> (String, String) {
    let file = dir.join(name);
    let made = std::process::Command::new("age-keygen").arg("-o").arg(&file).output().expect("age-keygen (apt: age)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let public = std::process::Command::new("age-keygen").arg("-y").arg(&file).output().unwrap();
    (std::fs::read_to_string(&file).unwrap(), String::from_utf8(public.stdout).unwrap().trim().to_string())
}

#[tokio::test]
async fn an_installation_warns_when_no_identity_it_can_reach_opens_its_newest_backup() {
    let i = Installation::start("ctlkey", None).await;
    let keys = tempfile::tempdir().unwrap();
    let (_, recipient) = age_keypair(keys.path(), "lost.txt");
    let (other, other_recipient) = age_keypair(keys.path(), "other.txt");
    // Backups go to a recipient whose identity was lost; the Secret holds another.
    secret(&i.client, &i.ns, "age-identities", json!({"keys.txt": other})).await;
    let encryption = json!({"spec": {"encryption": {"recipients": [recipient],
        "identitiesSecretRef": {"name": "age-identities", "key": "keys.txt"}}}});
    let installations = i.api::<Artifortress>();
    installations
        .patch("production", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&encryption))
        .await
        .unwrap();
    i.create("Backup", json!({"metadata": {"name": "sealed"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    let backup = wait_until(&i.api::<Backup>(), "sealed", 2 * MINUTE, finished_backup).await;
    let status = backup.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed), "{:?}", status.message);
    assert_eq!(status.encryption.unwrap().recipients, vec![recipient.clone()]);

    let condition = |a: &Artifortress, wanted: &str| {
        a.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "BackupsDecryptable" && c.reason == wanted))
    };
    let af = wait_until(&installations, "production", MINUTE, |a| condition(a, "KeyUnavailable")).await;
    let c = af.status.unwrap().conditions.into_iter().find(|c| c.type_ == "BackupsDecryptable").unwrap();
    assert_eq!(c.status, ConditionStatus::False);
    assert!(c.message.contains(&recipient) && c.message.contains(&other_recipient), "{}", c.message);
    assert!(!c.message.contains("AGE-SECRET-KEY"), "{}", c.message);

    // The lost identity found again and added: the newest backup opens.
    let (found, found_recipient) = age_keypair(keys.path(), "found.txt");
    let encryption = json!({"spec": {"encryption": {"recipients": [found_recipient]}}});
    installations
        .patch("production", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&encryption))
        .await
        .unwrap();
    i.create("Backup", json!({"metadata": {"name": "sealed-2"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&i.api::<Backup>(), "sealed-2", 2 * MINUTE, finished_backup).await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = i.api();
    let both = json!({"stringData": {"keys.txt": format!("{other}{found}")}});
    secrets.patch("age-identities", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&both)).await.unwrap();
    wait_until(&installations, "production", MINUTE, |a| condition(a, "KeyAvailable")).await;
}

#[tokio::test]
async fn an_installation_says_whether_its_newest_backup_is_locked_against_deletion() {
    let i = Installation::start("ctlimm", None).await;
    let installations = i.api::<Artifortress>();
    let reason_of = |a: &Artifortress| {
        let conditions = a.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        conditions.iter().find(|c| c.type_ == "BackupsImmutable").map(|c| (c.reason.clone(), c.message.clone()))
    };
    // On Garage (no Object Lock): said plainly.
    let af = wait_until(&installations, "production", MINUTE, |a| reason_of(a).is_some()).await;
    assert_eq!(reason_of(&af).unwrap().0, "NotLocked");

    // Backups into a Ceph bucket created with Object Lock, written locked.
    let object_lock = json!({"mode": "Compliance", "retain": "1d"});
    let (rgw, bucket) = backups_on_rgw(&i, "ctlimm", Some(object_lock)).await;
    let spec = json!({"artifortressRef": {"name": "production"}, "deletionPolicy": "Delete"});
    i.create("Backup", json!({"metadata": {"name": "locked"}, "spec": spec})).await;
    let backup = wait_until(&i.api::<Backup>(), "locked", 2 * MINUTE, finished_backup).await;
    let status = backup.status.unwrap();
    assert_eq!(status.phase, Some(BackupPhase::Completed));
    // The versions restores of it read: the manifest's and the dump's it pins.
    let versions = rgw.list_object_versions().bucket(&bucket).send().await.unwrap();
    let version_of = |suffix: &str| {
        let v = versions.versions().iter().find(|v| v.key().is_some_and(|k| k.ends_with(suffix)));
        v.and_then(|v| v.version_id()).map(str::to_string)
    };
    assert_eq!(status.manifest_version_id, version_of("locked/manifest.json"));
    assert_eq!(status.data_version_id, version_of("locked/dump"));
    assert!(status.manifest_version_id.is_some() && status.data_version_id.is_some());
    let af = wait_until(&installations, "production", MINUTE, |a| reason_of(a).is_some_and(|r| r.0 == "Locked")).await;
    let (_, message) = reason_of(&af).unwrap();
    assert!(message.contains("locked until") && message.contains("locked"), "{message}");

    // Someone with write access puts a newer version over the dump: a drill
    // of the Backup restores the pinned one and tells the cluster.
    let dump = versions.versions().iter().filter_map(|v| v.key()).find(|k| k.ends_with("locked/dump")).unwrap();
    let forged = aws_sdk_s3::primitives::ByteStream::from_static(b"forged");
    rgw.put_object().bucket(&bucket).key(dump).body(forged).send().await.unwrap();
    i.create("RecoveryDrill", drill("check", json!({"mode": "Named", "name": "locked"}), json!({}))).await;
    let drilled = wait_until(&i.api::<RecoveryDrill>(), "check", 3 * MINUTE, finished_drill).await.status.unwrap();
    assert_eq!(drilled.result, Some(DrillResult::Passed), "{:?}", drilled.failures);
    assert!(drilled.tampering.len() == 1 && drilled.tampering[0].contains("overwritten"), "{:?}", drilled.tampering);
    let tampered = |e: &Event| e.reason.as_deref() == Some("TamperingDetected");
    let events = event_matching(&i.api::<Event>(), MINUTE, tampered).await;
    let note = events.iter().find(|e| tampered(e)).and_then(|e| e.note.clone()).unwrap_or_default();
    assert!(note.contains("1 object(s) of backup locked") && note.contains("overwritten"), "{note}");

    // The Backup deleted: its data stays until the lock expires, and the deletion waits.
    i.api::<Backup>().delete("locked", &DeleteParams::default()).await.unwrap();
    let events = event_matching(&i.api::<Event>(), MINUTE, |e| e.reason.as_deref() == Some("DeletionPlanned")).await;
    let planned =
        events.iter().find(|e| e.reason.as_deref() == Some("DeletionPlanned")).expect("a DeletionPlanned Event");
    assert!(planned.note.as_deref().unwrap_or_default().contains("waits until then"), "{planned:?}");
    let kept = rgw.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(kept.contents().iter().any(|o| o.key().is_some_and(|k| k.ends_with("locked/manifest.json"))));
}

/// A new Ceph bucket created with Object Lock as the installation's backup
/// storage (its keys in Secret `rgw`), with `objectLock` if given.
async fn backups_on_rgw(
    i: &Installation,
    prefix: &str,
    object_lock: Option<serde_json::Value>,
) -> (aws_sdk_s3::Client, String) {
    let rgw = support::rgw_client().await;
    let bucket = support::unique_name(prefix);
    rgw.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(true).send().await.unwrap();
    secret(
        &i.client,
        &i.ns,
        "rgw",
        json!({"AWS_ACCESS_KEY_ID": env("AF_TEST_RGW_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY": env("AF_TEST_RGW_SECRET_ACCESS_KEY")}),
    )
    .await;
    let mut storage = json!({"bucket": bucket, "endpoint": env("AF_TEST_RGW_ENDPOINT"), "forcePathStyle": true,
        "credentialsSecretRef": {"name": "rgw"}});
    if let Some(lock) = object_lock {
        storage["objectLock"] = lock;
    }
    let patch = kube::api::Patch::Merge(json!({"spec": {"backupStorage": storage}}));
    i.api::<Artifortress>().patch("production", &kube::api::PatchParams::default(), &patch).await.unwrap();
    (rgw, bucket)
}

/// A schedule whose retention locks: each Backup it creates is written
/// locked for `maxAge`, and retention, letting one go while it is locked,
/// plans its deletion instead of hiding it behind delete markers, then
/// deletes it once the lock has ended.
#[tokio::test]
async fn a_locking_retention_deletes_a_backup_only_once_its_lock_has_ended() {
    let clock = ManualClock::at("2030-01-01T00:59:00Z");
    let i = Installation::start("ctlsl", Some(clock.clone())).await;
    // Stored under the installation's prefix `prod`.
    let (rgw, bucket) = backups_on_rgw(&i, "ctlsl", None).await;
    i.create(
        "BackupSchedule",
        json!({"metadata": {"name": "hourly"},
               "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 * * * *", "timeZone": "UTC",
                        "retention": {"keepLast": 1, "maxAge": "25s", "lockMode": "Governance"}}}),
    )
    .await;
    let backups = i.api::<Backup>();
    for now in ["2030-01-01T01:00:10Z", "2030-01-01T02:00:05Z"] {
        clock.set(now);
        let hour = &now[11..13];
        let b = wait_until(&backups, &format!("hourly-20300101{hour}00"), 2 * MINUTE, finished_backup).await;
        assert_eq!(b.status.unwrap().phase, Some(BackupPhase::Completed));
        let lock = b.spec.object_lock.expect("the schedule locks its backups");
        assert_eq!((format!("{:?}", lock.mode), lock.retain.0), ("Governance".to_string(), "25s".to_string()));
    }
    let first = "hourly-203001010100";
    let listed =
        rgw.list_objects_v2().bucket(&bucket).prefix(format!("prod/production/{first}/")).send().await.unwrap();
    let key = listed.contents().iter().find_map(|o| o.key()).expect("the first backup's objects").to_string();
    let retention = rgw.get_object_retention().bucket(&bucket).key(&key).send().await.unwrap();
    assert_eq!(retention.retention().and_then(|r| r.mode()).map(|m| m.as_str()), Some("GOVERNANCE"), "{key}");

    // Retention keeps one: the first is let go, but it is locked.
    let events = event_matching(&i.api::<Event>(), MINUTE, |e| e.reason.as_deref() == Some("DeletionPlanned")).await;
    let planned = events.iter().find(|e| e.reason.as_deref() == Some("DeletionPlanned")).unwrap();
    assert!(planned.note.as_deref().unwrap_or_default().contains(first), "{planned:?}");
    assert!(backups.get_opt(first).await.unwrap().is_some(), "kept while locked");
    let listed =
        rgw.list_objects_v2().bucket(&bucket).prefix(format!("prod/production/{first}/")).send().await.unwrap();
    assert!(!listed.contents().is_empty(), "its objects are current, not hidden behind delete markers");

    // Once the lock ends, retention takes it: resource and objects.
    let gone = async {
        while backups.get_opt(first).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(MINUTE, gone).await.expect("deleted after its lock ended");
    let listed =
        rgw.list_objects_v2().bucket(&bucket).prefix(format!("prod/production/{first}/")).send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    assert!(backups.get_opt("hourly-203001010200").await.unwrap().is_some());
}
