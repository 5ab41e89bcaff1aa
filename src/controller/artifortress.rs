//! The `Artifortress` controller: every `probeInterval` it probes PostgreSQL and
//! object storage, reads the ops summary, evaluates the SLO thresholds, finds
//! the newest backup and drill, and brings back `Backup` objects for backups
//! that are in the bucket but not in the cluster (the catalog lives with the data).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, Observed};
use super::{Context, Error, jobs, recoverability};
use crate::api::artifortress::{
    Artifortress, ArtifortressStatus, DependencyState, DependencyStatus, ObjectRefWithTime, SchemaStatus, Severity,
};
use crate::api::backup::{Backup, BackupPhase};
use crate::api::backup_schedule::BackupTemplate;
use crate::api::common::ConditionStatus;
use crate::api::recovery_drill::{DrillResult, RecoveryDrill};
use crate::artifortress::ops::Probe;
use crate::artifortress::recoverability::{self as blob_recoverability, GcHistory, Retention};
use crate::artifortress::schema::SchemaReport;
use crate::db::DatabaseUrl;
use crate::engine::manifest::{self, Manifest};
use crate::metrics::InstallationLabels;
use crate::store::{BackupStore, Versioning};

/// Bound on each dependency probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Installations probed at once: many installations share the operator's two
/// cores and memory with the drills, so probes queue rather than all run together.
const CONCURRENT_PROBES: u16 = 4;

pub fn controller(ctx: Arc<Context>, namespace: Option<&str>) -> futures::stream::BoxStream<'static, ()> {
    let installations = super::scoped::<Artifortress>(&ctx.client, namespace);
    Controller::new(installations, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENT_PROBES))
        .run(
            |a, ctx| async move {
                super::measured("artifortress", a.as_ref(), &ctx, reconcile(a.clone(), ctx.clone())).await
            },
            |a, e, ctx| super::error_policy("artifortress", a.as_ref(), e, &ctx),
            ctx,
        )
        .map(drop)
        .boxed()
}

/// A probe's result: Up with its latency, or Down with what failed.
fn dependency(result: Result<(), String>, started: Instant, ctx: &Context) -> DependencyStatus {
    DependencyStatus {
        state: if result.is_ok() { DependencyState::Up } else { DependencyState::Down },
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        error: result.err(),
        checked_at: ctx.now(),
    }
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(PROBE_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {} s", PROBE_TIMEOUT.as_secs())))
}

/// Time left until the next probe is due: `None` when a probe is due now (never
/// probed, spec changed, or the interval has passed). Every probe writes status,
/// and that write triggers a reconcile too; this keeps it from probing again.
pub fn probe_due_in(
    status: &ArtifortressStatus,
    generation: Option<i64>,
    interval: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let last = status.database.as_ref()?.checked_at;
    if status.observed_generation != generation {
        return None;
    }
    let elapsed = (now - last).to_std().unwrap_or_default();
    interval.checked_sub(elapsed).filter(|left| !left.is_zero())
}

pub async fn reconcile(af: Arc<Artifortress>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = af.namespace().unwrap_or_default();
    let api: Api<Artifortress> = Api::namespaced(ctx.client.clone(), &ns);
    let mut conditions =
        Conditions { status: af.status.clone().unwrap_or_default(), generation: af.meta().generation, now: ctx.now() };
    let (af, lifecycle) = match super::resolve_installation(&ctx.client, &af).await? {
        Ok(resolved) => (Arc::new(resolved.artifortress), resolved.lifecycle),
        Err(problem) => {
            conditions.set("Ready", false, "InvalidSpec", problem);
            write_status(&ctx, &api, &af, conditions.status).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let interval = match af.spec.probe_interval.parse() {
        Ok(i) => i,
        Err(e) => {
            conditions.set("Ready", false, "InvalidSpec", format!("probeInterval: {e}"));
            write_status(&ctx, &api, &af, conditions.status).await?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    };
    if let Some(left) = probe_due_in(&conditions.status, conditions.generation, interval, conditions.now) {
        return Ok(Action::requeue(left));
    }

    // Probe both dependencies (the HTTP server answers for them: `registry`).
    let database = probe_database(&ctx, &af).await?;
    let db_ok = record_database(&ctx, &af, &mut conditions, &database);
    if let Some(unavailable) = &database.physical {
        record_physical_path(&mut conditions, unavailable.as_deref());
    }
    let storage = probe_object_storage(&ctx, &af).await;
    let storage_ok = record_object_storage(&ctx, &af, &mut conditions, &storage);
    let retention = bucket_retention(&storage, storage_ok).await;
    // The newest backup and drill; backups in the bucket but not in the cluster come back.
    let backups = Api::<Backup>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?.items;
    let drills = Api::<RecoveryDrill>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?.items;
    record_history(&ctx, &af, &mut conditions.status, &backups, &drills);
    let gc = database.outcome.as_ref().ok().and_then(|p| p.gc.clone());
    record_recoverability(&ctx, &af, &mut conditions, &retention, gc.as_ref(), &backups);
    if let Some(hours) = lifecycle.and_then(|l| l.gc_retention_grace_hours) {
        note_grace_setting(&mut conditions, hours);
    }
    resync_catalog(&ctx, &af, &mut conditions, &backups).await?;
    keys::record_keys(&ctx, &af, &mut conditions, &backups).await?;
    if storage_ok {
        immutable::record_immutability(&ctx, &af, &mut conditions, &backups).await?;
    }
    if let Err(problem) = super::wal_archiver::apply(&ctx, &af).await? {
        conditions.set("WalArchiving", false, "ArchiverNotDeployed", problem);
    }
    if let (Some(Some(why)), Some(_)) = (&database.physical, &af.spec.wal_archive) {
        let message = format!("the source cannot stream WAL: {why}");
        conditions.set("WalArchiving", false, "ReplicationUnavailable", message);
    }

    let (ready, reason, message) = readiness(db_ok, storage_ok);
    conditions.set("Ready", ready, reason, message);
    write_status(&ctx, &api, &af, conditions.status).await?;
    Ok(Action::requeue(interval))
}

/// The status being built, and what its conditions are stamped with.
struct Conditions {
    status: ArtifortressStatus,
    generation: Option<i64>,
    now: DateTime<Utc>,
}

impl Conditions {
    fn set(&mut self, type_: &str, ok: bool, reason: &str, message: String) {
        let status = if ok { ConditionStatus::True } else { ConditionStatus::False };
        let observed = Observed { type_, status, reason, message };
        conditions::set(&mut self.status.conditions, observed, self.generation, self.now);
    }

    fn set_observed(&mut self, type_: &str, status: ConditionStatus, reason: &str, message: String) {
        let observed = Observed { type_, status, reason, message };
        conditions::set(&mut self.status.conditions, observed, self.generation, self.now);
    }
}

/// What the database probe found: the schema, the ops figures and the GC
/// history, or why there are none.
struct DatabaseProbe {
    outcome: Result<Probe, (&'static str, String)>,
    /// Why the physical path is unavailable (`Some`), when it could be read.
    physical: Option<Option<String>>,
    started: Instant,
}

async fn probe_database(ctx: &Context, af: &Artifortress) -> Result<DatabaseProbe, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &af.namespace().unwrap_or_default());
    let started = Instant::now();
    let db_ref = &af.spec.db().connection_secret_ref;
    let url = super::secret_value(&secrets, db_ref).await?.map(|raw| DatabaseUrl::parse(&raw));
    let outcome = match &url {
        None => Err((
            "SecretNotFound",
            format!("Secret {:?} key {:?} not found; create it or fix spec.database", db_ref.name, db_ref.key),
        )),
        Some(Err(e)) => Err(("InvalidDatabaseUrl", format!("Secret {:?} key {:?}: {e}", db_ref.name, db_ref.key))),
        Some(Ok(url)) => bounded("postgresql", read_ops_summary(url)).await.map_err(|e| ("Unreachable", e)),
    };
    let physical = match (&url, &outcome) {
        (Some(Ok(url)), Ok(_)) => {
            let unavailable = crate::engine::physical::capability::physical_unavailable(url);
            bounded("postgresql", async { unavailable.await.map_err(|e| e.to_string()) }).await.ok()
        }
        _ => None,
    };
    Ok(DatabaseProbe { outcome, physical, started })
}

/// `DatabaseReady`, `SchemaSupported`, the SLO evaluation (`SLOHealthy`) and
/// their metrics; true when reachable.
fn record_database(ctx: &Context, af: &Artifortress, conditions: &mut Conditions, probe: &DatabaseProbe) -> bool {
    let name = af.name_any();
    let ok = probe.outcome.is_ok();
    let (reason, message) = match &probe.outcome {
        Ok(_) => ("Reachable", "the schema and the ops summary were read".to_string()),
        Err((reason, message)) => (*reason, message.clone()),
    };
    let result = probe.outcome.as_ref().map(drop).map_err(|(_, m)| m.clone());
    conditions.status.database = Some(dependency(result, probe.started, ctx));
    ctx.metrics.record_dependency(&name, "postgresql", ok, probe.started.elapsed().as_secs_f64());
    conditions.set("DatabaseReady", ok, reason, message);
    if let Ok(Probe { schema, summary, .. }) = &probe.outcome {
        record_schema(conditions, schema);
        ctx.metrics.record_ops(&name, summary);
        let evaluated = crate::artifortress::slo::evaluate(summary, &af.spec.slo);
        let slo = crate::artifortress::slo::status(&evaluated, summary.tenants.len(), conditions.now);
        let breached: Vec<String> = slo
            .signals
            .iter()
            .filter(|s| s.severity != Severity::Ok)
            .map(|s| {
                let others = s.tenants_breaching.unwrap_or(1).saturating_sub(1);
                format!(
                    "{} = {} for tenant {} ({:?}){}",
                    s.signal,
                    s.value,
                    s.tenant.as_deref().unwrap_or("?"),
                    s.severity,
                    if others > 0 { format!(" and {others} other tenant(s)") } else { String::new() }
                )
            })
            .collect();
        let (reason, message) = match slo.severity {
            Severity::Ok => ("WithinThresholds", "every tenant's figures are within their thresholds".to_string()),
            Severity::Warning => ("Warning", breached.join(", ")),
            Severity::Critical => ("Critical", breached.join(", ")),
        };
        conditions.set("SLOHealthy", slo.severity == Severity::Ok, reason, message);
        conditions.status.slo = Some(slo);
    }
    ok
}

/// `SchemaSupported` and `status.schema`: which level the database is at and,
/// when it lacks what a figure or the audit needs, what and since which level.
fn record_schema(conditions: &mut Conditions, schema: &SchemaReport) {
    let (ok, reason) = if schema.is_foreign() {
        (false, "NotArtifortress")
    } else if schema.is_supported() {
        (true, "Supported")
    } else {
        (false, "SchemaIncomplete")
    };
    conditions.set("SchemaSupported", ok, reason, schema.summary());
    conditions.status.schema = Some(SchemaStatus {
        level: schema.level.clone(),
        versions: u32::try_from(schema.versions).unwrap_or(u32::MAX),
        supported: ok,
        missing: schema.missing.clone(),
        unknown_versions: schema.unknown_versions.clone(),
    });
}

/// What the object-storage probe found: the store (when it could be opened)
/// and whether its bucket answered.
struct StorageProbe {
    store: Option<Box<dyn BackupStore>>,
    outcome: Result<(), String>,
    started: Instant,
}

async fn probe_object_storage(ctx: &Context, af: &Artifortress) -> StorageProbe {
    let started = Instant::now();
    let storage = af.spec.blobs();
    let url = jobs::store_url(storage, storage.prefix.as_deref().unwrap_or(""));
    match ctx.store(&af.namespace().unwrap_or_default(), storage, &url).await {
        Ok(store) => {
            let outcome = bounded("object storage", async { store.check().await.map_err(|e| e.to_string()) }).await;
            StorageProbe { store: Some(store), outcome, started }
        }
        Err(e) => StorageProbe { store: None, outcome: Err(e.to_string()), started },
    }
}

/// `ObjectStorageReady` and its metrics; true when the bucket answered.
fn record_object_storage(ctx: &Context, af: &Artifortress, conditions: &mut Conditions, probe: &StorageProbe) -> bool {
    let ok = probe.outcome.is_ok();
    ctx.metrics.record_dependency(&af.name_any(), "objectStorage", ok, probe.started.elapsed().as_secs_f64());
    let (reason, message) = match &probe.outcome {
        Ok(()) => ("Reachable", format!("bucket {} answered", af.spec.blobs().bucket)),
        Err(e) => ("Unreachable", e.clone()),
    };
    conditions.set("ObjectStorageReady", ok, reason, message);
    conditions.status.object_storage = Some(dependency(probe.outcome.clone(), probe.started, ctx));
    ok
}

/// The installation's newest completed backup and finished drill, in status
/// and in the last-success metrics (rebuilt from the objects after a restart).
fn record_history(
    ctx: &Context,
    af: &Artifortress,
    status: &mut ArtifortressStatus,
    backups: &[Backup],
    drills: &[RecoveryDrill],
) {
    let name = af.name_any();
    let labels = InstallationLabels { installation: name.clone() };
    ctx.metrics.count_from_zero(&labels);
    let newest = backups
        .iter()
        .filter(|b| b.spec.artifortress_ref.name == name)
        .filter_map(|b| Some((b, b.status.as_ref().filter(|s| s.phase == Some(BackupPhase::Completed))?)))
        .max_by_key(|(_, s)| s.completed_at);
    status.last_backup = newest.map(|(b, s)| ObjectRefWithTime {
        name: b.name_any(),
        completed_at: s.completed_at,
        result: Some("Completed".into()),
    });
    if let Some((_, s)) = newest
        && let Some(at) = s.completed_at
    {
        let m = &ctx.metrics;
        m.backup_last_success.get_or_create(&labels).set(at.timestamp_millis() as f64 / 1000.0);
        if let Some(bytes) = s.size_bytes {
            m.backup_last_size.get_or_create(&labels).set(bytes as i64);
        }
        if let Some(started) = s.started_at {
            m.backup_last_duration.get_or_create(&labels).set(super::backup::seconds_between(started, at));
        }
    }
    let finished: Vec<_> = drills
        .iter()
        .filter(|d| d.spec.artifortress_ref.name == name)
        .filter_map(|d| {
            let s = d.status.as_ref()?;
            Some((d.name_any(), s.completed_at?, s.result?))
        })
        .collect();
    status.last_drill = finished.iter().max_by_key(|(_, at, _)| *at).map(|(n, at, r)| ObjectRefWithTime {
        name: n.clone(),
        completed_at: Some(*at),
        result: Some(format!("{r:?}")),
    });
    let last_pass = finished.iter().filter(|(_, _, r)| *r == DrillResult::Passed).map(|(_, at, _)| *at).max();
    if let Some(at) = last_pass {
        ctx.metrics.drill_last_pass.get_or_create(&labels).set(at.timestamp_millis() as f64 / 1000.0);
    }
}

/// Annotation on an `Artifortress`: each new value makes the next resync also
/// recreate backups whose `Backup` a user deleted (their tombstones are
/// removed); the value acted on is kept in `status.forcedResync`, so the
/// operator never writes the user's object.
pub const FORCE_RESYNC: &str = "artifortress.io/force-resync";

/// Recreates `Backup` objects for the complete backups in the bucket that the
/// cluster does not know (a new cluster after a disaster sees its backups),
/// except those a user deleted (tombstoned) unless [`FORCE_RESYNC`] is set.
/// `CatalogReadable` names each backup whose manifest cannot be read. A store
/// that cannot be read is logged: it must not fail the probe.
async fn resync_catalog(
    ctx: &Context,
    af: &Artifortress,
    conditions: &mut Conditions,
    known: &[Backup],
) -> Result<(), Error> {
    let (name, ns) = (af.name_any(), af.namespace().unwrap_or_default());
    let store_url = jobs::backup_store_url(&af.spec, &name);
    let catalog = match ctx.backup_store(&ns, &af.spec, &store_url).await {
        Ok(store) => manifest::list(store.as_ref()).await.map(|c| (store, c)).map_err(Error::from),
        Err(e) => Err(e),
    };
    let (store, catalog) = match catalog {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(installation = %name, error = %e, "catalog resync: listing backups failed");
            return Ok(());
        }
    };
    match catalog.unreadable.as_slice() {
        [] => conditions.set("CatalogReadable", true, "AllManifestsRead", "every stored manifest is readable".into()),
        unreadable => {
            let each: Vec<String> = unreadable.iter().take(5).map(|(b, why)| format!("{b}: {why}")).collect();
            let message = format!(
                "{} stored backup(s) cannot be read and are left out (the others are listed): {}",
                unreadable.len(),
                each.join("; ")
            );
            conditions.set("CatalogReadable", false, "ManifestUnreadable", message);
        }
    }
    record_wal_archiver(ctx, af, conditions, store.as_ref()).await;
    let force = af.annotations().get(FORCE_RESYNC).filter(|v| conditions.status.forced_resync.as_ref() != Some(*v));
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    for m in catalog.manifests.iter().filter(|m| !known.iter().any(|b| b.name_any() == m.backup_name)) {
        if catalog.deleted.contains(&m.backup_name) {
            if force.is_none() {
                continue;
            }
            manifest::unmark_deleted(store.as_ref(), &m.backup_name).await?;
        }
        recreate_from_catalog(ctx, &backups, af, m).await?;
    }
    if let Some(value) = force {
        conditions.status.forced_resync = Some(value.clone());
        ctx.event(af, false, "CatalogResynced", "forced resync: deleted backups were recreated".into()).await;
    }
    Ok(())
}

/// What the blob bucket keeps of deleted objects: versioning, and with it the
/// noncurrent-version expiry of its lifecycle rules.
async fn bucket_retention(storage: &StorageProbe, reachable: bool) -> Retention {
    let unknown =
        |why: String| Retention { versioning: Versioning::Unknown(why.clone()), noncurrent_expiry_days: Err(why) };
    let Some(store) = storage.store.as_ref().filter(|_| reachable) else {
        return unknown("object storage is not reachable".into());
    };
    let silent = || format!("no answer within {} s", PROBE_TIMEOUT.as_secs());
    let versioning = match tokio::time::timeout(PROBE_TIMEOUT, store.versioning()).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => Versioning::Unknown(e.to_string()),
        Err(_) => Versioning::Unknown(silent()),
    };
    let noncurrent_expiry_days = match &versioning {
        Versioning::Enabled { .. } => {
            match tokio::time::timeout(PROBE_TIMEOUT, store.noncurrent_version_expiry()).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(silent()),
            }
        }
        _ => Ok(None),
    };
    Retention { versioning, noncurrent_expiry_days }
}

/// `BlobsRecoverable` (how far back restore points are complete: the GC runs
/// the installation recorded against what the bucket keeps, and which backups
/// that puts at risk) and `BackupStorageSeparate` (backups not inside the blob store).
fn record_recoverability(
    ctx: &Context,
    af: &Artifortress,
    conditions: &mut Conditions,
    retention: &Retention,
    gc: Option<&GcHistory>,
    backups: &[Backup],
) {
    let name = af.name_any();
    let restore_points: Vec<(String, DateTime<Utc>)> = backups
        .iter()
        .filter(|b| b.spec.artifortress_ref.name == name)
        .filter_map(|b| {
            let s = b.status.as_ref().filter(|s| s.phase == Some(BackupPhase::Completed))?;
            Some((b.name_any(), s.snapshot_time?))
        })
        .collect();
    let blobs = match gc {
        Some(gc) => blob_recoverability::blobs_recoverable(retention, gc, &restore_points, conditions.now),
        None => blob_recoverability::Finding {
            status: ConditionStatus::Unknown,
            reason: "GcHistoryUnknown",
            message: "the installation's GC runs could not be read (database down, or a schema before 0008): how far back restore points are complete is unknown".into(),
        },
    };
    let gauge = match blobs.status {
        ConditionStatus::True => 1,
        ConditionStatus::False => 0,
        ConditionStatus::Unknown => -1,
    };
    ctx.metrics.blobs_recoverable.get_or_create(&InstallationLabels { installation: name.clone() }).set(gauge);
    conditions.set_observed("BlobsRecoverable", blobs.status, blobs.reason, blobs.message);
    let backup_path = url::Url::parse(&jobs::backup_store_url(&af.spec, &name))
        .map(|u| u.path().trim_start_matches('/').to_string())
        .unwrap_or_default();
    let isolation = recoverability::backup_isolation(af.spec.blobs(), jobs::backup_storage(&af.spec), &backup_path);
    conditions.set_observed("BackupStorageSeparate", isolation.status, isolation.reason, isolation.message);
}

/// The release's default GC grace is a default for new runs, not what a run
/// used: said beside the window the recorded runs give.
fn note_grace_setting(conditions: &mut Conditions, hours: u32) {
    if let Some(c) = conditions.status.conditions.iter_mut().find(|c| c.type_ == "BlobsRecoverable") {
        c.message.push_str(&format!(
            " (the release's {}={hours} is only the default of new GC runs; each run records its own grace, and the admin CLI sends 0)",
            crate::artifortress::config::GC_RETENTION_GRACE_HOURS
        ));
    }
}

/// The `Ready` condition from the two dependencies.
fn readiness(db_ok: bool, storage_ok: bool) -> (bool, &'static str, String) {
    match (db_ok, storage_ok) {
        (true, true) => (true, "DependenciesReady", "PostgreSQL and object storage answer".to_string()),
        (false, true) => (false, "DependencyDown", "PostgreSQL is down.".to_string()),
        (true, false) => (false, "DependencyDown", "Object storage is down.".to_string()),
        (false, false) => (false, "DependencyDown", "PostgreSQL is down. Object storage is down.".to_string()),
    }
}

/// The schema, ops figures and GC history over a connection of its own, closed after (a probe, not a pool).
pub(super) async fn read_ops_summary(url: &DatabaseUrl) -> Result<Probe, String> {
    let url = url.resolve().await.map_err(|e| e.to_string())?;
    crate::artifortress::ops::probe(&url).await.map_err(|e| e.to_string())
}

async fn recreate_from_catalog(
    ctx: &Context,
    backups: &Api<Backup>,
    af: &Artifortress,
    m: &Manifest,
) -> Result<(), Error> {
    let meta = ObjectMeta {
        name: Some(m.backup_name.clone()),
        namespace: af.namespace(),
        labels: Some(
            [(jobs::LABEL_INSTALLATION.to_string(), jobs::label_value(&af.name_any()))]
                .into_iter()
                .chain(super::backup_resource::catalog_labels(&m.labels))
                .collect(),
        ),
        annotations: Some(BTreeMap::from([(super::backup::FROM_CATALOG.to_string(), "true".to_string())])),
        ..Default::default()
    };
    let template = BackupTemplate { verify: m.verify.into(), ..Default::default() };
    let backup = super::backup_resource::backup_resource(meta, &af.name_any(), template);
    if super::create_child(backups, &backup).await?.is_some() {
        let note = format!("Backup {} recreated from its manifest in the bucket", m.backup_name);
        ctx.event(af, false, "BackupRecovered", note).await;
    }
    Ok(())
}

/// Writes status and an Event for every condition whose reason changed.
async fn write_status(
    ctx: &Context,
    api: &Api<Artifortress>,
    af: &Artifortress,
    mut status: ArtifortressStatus,
) -> Result<(), Error> {
    let before = af.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    status.observed_generation = af.meta().generation;
    api.patch_status(&af.name_any(), &PatchParams::default(), &Patch::Merge(&json!({ "status": status }))).await?;
    for c in &status.conditions {
        if conditions::reason_of(&before, &c.type_) != Some(c.reason.as_str()) {
            let warning = c.status == ConditionStatus::False;
            ctx.event(af, warning, &c.reason, format!("{}: {}", c.type_, c.message)).await;
        }
    }
    Ok(())
}

mod immutable;
mod keys;
mod wal;
use wal::{record_physical_path, record_wal_archiver};

#[cfg(test)]
mod tests;
