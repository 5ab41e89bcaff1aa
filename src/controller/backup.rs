//! The `Backup` controller: one Job running `artifortress-operator backup`, and
//! the stored manifest mirrored into status once it completes.
//!
//! fetch → validate → decide → apply → status. Results travel from the Job to
//! the controller through the manifest in object storage, not through logs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::backup_resource::{backup_location, catalog_labels, is_finished, wal_archived};
use super::jobs::{self, EngineJob};
use super::{Context, Error, claims, job_result};
use crate::api::artifortress::Artifortress;
use crate::api::backup::{Backup, BackupPhase, BackupStatus, DeletionPolicy, SourceIdentity};
use crate::api::common::{BackupMethod, ConditionStatus, SecretKeyRef};
use crate::engine::catalog;
use crate::engine::manifest::{self, Manifest};
use crate::engine::physical::{base, retention};
use crate::engine::progress::{Progress, human_bytes, human_duration};
use crate::metrics::InstallationLabels;
use crate::store::BackupStore;
use artifortress_formats::physical::BaseManifest;

/// Set on `Backup`s recreated from the bucket: their status comes from the
/// stored manifest, never from a new Job.
pub const FROM_CATALOG: &str = "artifortress.io/from-catalog";

pub fn controller(ctx: Arc<Context>, namespace: Option<&str>) -> futures::stream::BoxStream<'static, ()> {
    let backups = super::scoped::<Backup>(&ctx.client, namespace);
    let jobs = super::scoped::<Job>(&ctx.client, namespace);
    Controller::new(backups, watcher::Config::default())
        .owns(jobs, super::managed_children())
        .run(
            |b, ctx| async move { super::measured("backup", b.as_ref(), &ctx, reconcile(b.clone(), ctx.clone())).await },
            |b, e, ctx| super::error_policy("backup", b.as_ref(), e, &ctx),
            ctx,
        )
        .map(drop)
        .boxed()
}

/// Held by `Backup`s with `deletionPolicy: Delete` until their objects in the
/// bucket are gone.
pub const DATA_FINALIZER: &str = "artifortress.io/delete-backup-data";

/// Removes a backup from its store; the manifest goes first, so a half-deleted
/// backup is never listed as complete.
pub async fn delete_backup_data(store: &dyn BackupStore, backup: &str) -> Result<(), Error> {
    store.delete(&manifest::key(backup)).await?;
    store.delete(&base::manifest_key(backup)).await?;
    for object in store.list(&format!("{backup}/")).await? {
        store.delete(&object.key).await?;
    }
    Ok(())
}

pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = backup.namespace().unwrap_or_default();
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    if backup.meta().deletion_timestamp.is_some() {
        return release_data(&ctx, &backups, &backup).await;
    }
    hold_data(&backups, &backup).await?;
    let status = backup.status.clone().unwrap_or_default();
    if matches!(status.phase, Some(BackupPhase::Completed | BackupPhase::Failed)) {
        return Ok(Action::await_change());
    }

    // Validate: a missing installation or Secret keeps the backup Pending.
    let installation = &backup.spec.artifortress_ref.name;
    let pending = BackupStatus { phase: Some(BackupPhase::Pending), ..status.clone() };
    let af = match super::installation(&ctx.client, &ns, installation).await? {
        Ok(af) => af,
        Err(why) => {
            write_status(&ctx, &backups, &backup, pending, why.reason, why.message).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let store_url = jobs::backup_store_url(&af.spec, installation);
    if backup.annotations().contains_key(FROM_CATALOG) {
        return mirror_catalog(&ctx, &backups, &backup, &af, &store_url).await;
    }
    if backup.spec.method == BackupMethod::Physical && !wal_archived(&af) {
        // A base backup restores only with the WAL written while it was taken.
        let message = format!(
            "a Physical backup needs the WAL archived, and no archiver streams for Artifortress {installation}: set its spec.walArchive (or run `artifortress-operator wal` into its backup store)"
        );
        write_status(&ctx, &backups, &backup, pending, "WalNotArchived", message).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let secrets: Vec<SecretKeyRef> = jobs::backup_secret_env(&af.spec).into_iter().map(|(_, key)| key).collect();
    if let Some(missing) = super::missing_secrets(&ctx.client, &ns, &secrets.iter().collect::<Vec<_>>()).await? {
        write_status(&ctx, &backups, &backup, pending, "SecretNotFound", missing).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }

    // The Job: start it, or read how it ended.
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    match jobs_api.get_opt(&jobs::job_name("backup", &backup.name_any())).await? {
        None => start_job(&ctx, &backups, &jobs_api, &backup, &af, status).await,
        Some(job) => match job_result(&ctx.client, &job).await {
            None => Ok(Action::requeue(Duration::from_secs(30))),
            Some(outcome) => finish(&ctx, &backups, &backup, &af, &store_url, status, outcome).await,
        },
    }
}

/// What a Backup's finalizer does when it is deleted: `Delete` removes its
/// objects, `Retain` keeps them and leaves a tombstone, so catalog resync does
/// not bring back what a user deleted.
fn finalizer_for(policy: DeletionPolicy) -> &'static str {
    match policy {
        DeletionPolicy::Delete => DATA_FINALIZER,
        DeletionPolicy::Retain => TOMBSTONE_FINALIZER,
    }
}

/// Held by `Backup`s with `deletionPolicy: Retain` until their tombstone is written.
pub const TOMBSTONE_FINALIZER: &str = "artifortress.io/record-deletion";

/// A deleted Backup holding one of our finalizers: the store first, then the finalizer.
async fn release_data(ctx: &Context, backups: &Api<Backup>, backup: &Backup) -> Result<Action, Error> {
    let finalizers = backup.finalizers();
    let ours = |f: &String| f == DATA_FINALIZER || f == TOMBSTONE_FINALIZER;
    let Some(finalizer) = finalizers.iter().find(|f| ours(f)) else { return Ok(Action::await_change()) };
    let (ns, name) = (backup.namespace().unwrap_or_default(), backup.name_any());
    let installation = &backup.spec.artifortress_ref.name;
    match super::installation(&ctx.client, &ns, installation).await? {
        Ok(af) => {
            let url = jobs::backup_store_url(&af.spec, installation);
            let store = ctx.backup_store(&ns, &af.spec, &url).await?;
            if finalizer == DATA_FINALIZER {
                // A locked backup is deleted when its lock expires, not before.
                if let Some(until) = catalog::locked_until(store.as_ref(), &name).await? {
                    let note = format!(
                        "{name} is locked (S3 Object Lock) until {}: its deletion waits until then",
                        until.to_rfc3339()
                    );
                    ctx.event(backup, false, "DeletionPlanned", note).await;
                    let wait = (until - ctx.now()).to_std().unwrap_or_default() + Duration::from_secs(1);
                    return Ok(Action::requeue(wait.min(Duration::from_secs(3600))));
                }
                delete_backup_data(store.as_ref(), &name).await?;
                if backup.spec.method == BackupMethod::Physical
                    && let Some(note) = prune_wal(backups, installation, store.as_ref()).await?
                {
                    ctx.event(backup, false, "WalPruned", note).await;
                }
            } else {
                manifest::mark_deleted(store.as_ref(), &name, ctx.now()).await?;
            }
        }
        // Nothing to reach the bucket with; blocking the deletion forever would not help.
        Err(why) => {
            let note = format!("{}; the stored backup {name} was left in place", why.message);
            ctx.event(backup, true, "DataNotDeleted", note).await;
        }
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| !ours(f)).collect();
    backups.patch(&name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": rest}}))).await?;
    Ok(Action::await_change())
}

/// After base backups' data is gone: deletes the WAL no remaining base needs,
/// unless a base backup of the installation is being taken (one that began
/// before the oldest stored base would still need older WAL; the next
/// deletion prunes then). Says what it deleted, if anything.
pub async fn prune_wal(
    backups: &Api<Backup>,
    installation: &str,
    store: &dyn BackupStore,
) -> Result<Option<String>, Error> {
    let running = backups.list(&Default::default()).await?.items.into_iter().any(|b| {
        b.spec.method == BackupMethod::Physical
            && b.spec.artifortress_ref.name == installation
            && !matches!(b.status.and_then(|s| s.phase), Some(BackupPhase::Completed | BackupPhase::Failed))
            && b.metadata.deletion_timestamp.is_none()
    });
    if running {
        return Ok(None);
    }
    let pruned = retention::prune(store, &Progress::quiet()).await?;
    let mut note = Vec::new();
    if pruned.segments > 0 {
        let (n, bytes) = (pruned.segments, human_bytes(pruned.bytes));
        note.push(format!("deleted {n} WAL segments ({bytes}) that no remaining base backup needs"));
    }
    if let Some(until) = pruned.locked_until {
        let (n, until) = (pruned.locked, until.to_rfc3339());
        note.push(format!("{n} more are locked (S3 Object Lock) until {until} and deleted by a pruning after then"));
    }
    Ok((!note.is_empty()).then(|| note.join("; ")))
}

/// Holds the finalizer of the Backup's deletion policy (and only that one: the
/// policy may have been changed).
async fn hold_data(backups: &Api<Backup>, backup: &Backup) -> Result<(), Error> {
    let wanted = finalizer_for(backup.spec.deletion_policy);
    let finalizers = backup.finalizers();
    let other = if wanted == DATA_FINALIZER { TOMBSTONE_FINALIZER } else { DATA_FINALIZER };
    if finalizers.iter().any(|f| f == wanted) && !finalizers.iter().any(|f| f == other) {
        return Ok(());
    }
    let mut all: Vec<String> = finalizers.iter().filter(|f| *f != other).cloned().collect();
    if !all.iter().any(|f| f == wanted) {
        all.push(wanted.to_string());
    }
    let patch = json!({"metadata": {"finalizers": all, "resourceVersion": backup.resource_version()}});
    backups.patch(&backup.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// A Backup recreated from the bucket: status from its manifest, never a Job.
async fn mirror_catalog(
    ctx: &Context,
    backups: &Api<Backup>,
    backup: &Backup,
    af: &Artifortress,
    store_url: &str,
) -> Result<Action, Error> {
    let name = backup.name_any();
    let store = ctx.backup_store(&backup.namespace().unwrap_or_default(), &af.spec, store_url).await?;
    let m = manifest::load(store.as_ref(), &name).await?;
    let status = completed_status(backup.status.clone().unwrap_or_default(), store_url, &m);
    let message = format!("recreated from the catalog in {}", backup_location(store_url, &name));
    write_status(ctx, backups, backup, status, "FromCatalog", message).await?;
    Ok(Action::await_change())
}

/// Creates the backup Job — unless another backup of the installation runs:
/// never two at once.
async fn start_job(
    ctx: &Context,
    backups: &Api<Backup>,
    jobs_api: &Api<Job>,
    backup: &Backup,
    af: &Artifortress,
    status: BackupStatus,
) -> Result<Action, Error> {
    let (ns, name) = (backup.namespace().unwrap_or_default(), backup.name_any());
    let installation = &backup.spec.artifortress_ref.name;
    let job_name = jobs::job_name("backup", &name);
    let leases = Api::namespaced(ctx.client.clone(), &ns);
    let claim = backup_claim(&leases, backup, af).acquire(backups, is_finished).await?;
    if let claims::Outcome::Busy { waiting_for } = claim {
        let message = format!("waiting for {waiting_for} (one backup of {installation} at a time)");
        let pending = BackupStatus { phase: Some(BackupPhase::Pending), ..status };
        write_status(ctx, backups, backup, pending, "Waiting", message).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    let template = ctx.job_template(af, backup.spec.job_template.as_ref());
    // Written with the Backup's own lock, if it has one.
    let store_url = &jobs::backup_job_store_url(&af.spec, installation, backup.spec.object_lock.as_ref());
    let job = jobs::engine_job(EngineJob {
        step: "backup",
        owner_name: &name,
        owner: backup.controller_owner_ref(&()).expect("a stored Backup has a uid"),
        namespace: &ns,
        installation,
        image: &ctx.image,
        args: [
            match backup.spec.method {
                BackupMethod::Logical => jobs::backup_args(
                    store_url,
                    &name,
                    backup.spec.verify,
                    &backup.spec.tables,
                    &catalog_labels(backup.labels()),
                ),
                BackupMethod::Physical => jobs::base_backup_args(store_url, &name, backup.spec.checkpoint),
            },
            jobs::encryption_args(&af.spec),
        ]
        .concat(),
        secret_env: jobs::backup_secret_env(&af.spec),
        staging_bytes: None,
        template: &template,
    });
    match super::create_job(jobs_api, &job).await? {
        Ok(true) => {
            ctx.metrics.backup_attempts.get_or_create(&InstallationLabels { installation: installation.clone() }).inc();
        }
        Ok(false) => {}
        Err(message) => {
            let pending = BackupStatus { phase: Some(BackupPhase::Pending), ..status };
            write_status(ctx, backups, backup, pending, "InvalidJobTemplate", message).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    }
    let running = BackupStatus {
        phase: Some(BackupPhase::Running),
        job_name: Some(job_name.clone()),
        started_at: Some(ctx.now()),
        location: Some(backup_location(store_url, &name)),
        ..status
    };
    write_status(ctx, backups, backup, running, "Running", format!("Job {job_name} is taking the backup")).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// The installation's backup claim, as `backup` would hold it.
fn backup_claim<'a>(leases: &'a Api<Lease>, backup: &Backup, af: &Artifortress) -> claims::Claim<'a> {
    claims::Claim {
        api: leases,
        lease: jobs::job_name("artifortress-backup", &af.name_any()),
        holder: claims::holder_of(backup),
        owner: af.controller_owner_ref(&()).expect("a stored Artifortress has a uid"),
    }
}

/// A finished Job: the stored manifest mirrored into status, or the Job's reason.
async fn finish(
    ctx: &Context,
    backups: &Api<Backup>,
    backup: &Backup,
    af: &Artifortress,
    store_url: &str,
    status: BackupStatus,
    outcome: Result<(), super::StepFailure>,
) -> Result<Action, Error> {
    let name = backup.name_any();
    let job_name = jobs::job_name("backup", &name);
    let labels = InstallationLabels { installation: backup.spec.artifortress_ref.name.clone() };
    let m = &ctx.metrics;
    match outcome {
        Err(failure) => {
            let message = format!("Job {job_name} failed: {}", failure.message);
            let failed = BackupStatus { phase: Some(BackupPhase::Failed), message: Some(message.clone()), ..status };
            write_status(ctx, backups, backup, failed, &failure.reason, message).await?;
            m.backup_failures.get_or_create(&labels).inc();
            m.backup_last_status.get_or_create(&labels).set(0);
        }
        Ok(()) => {
            let store = ctx.backup_store(&backup.namespace().unwrap_or_default(), &af.spec, store_url).await?;
            // The step's figures, once, in the Completed Event (`kubectl describe`).
            let (completed, message, size_bytes, seconds) = match backup.spec.method {
                BackupMethod::Physical => {
                    let base = base::load(store.as_ref(), &name).await?;
                    let seconds = seconds_between(base.started_at, base.completed_at);
                    let message = format!(
                        "physical base backup of PostgreSQL {} stored: {} (tar {}) in {}; restores need the WAL from {}",
                        base.source.server_version,
                        human_bytes(base.base.size_bytes),
                        human_bytes(base.base.tar_bytes),
                        human_duration(seconds),
                        base.start_lsn
                    );
                    (base_status(status, store_url, &base), message, base.base.size_bytes, seconds)
                }
                BackupMethod::Logical => {
                    let manifest = manifest::load(store.as_ref(), &name).await?;
                    let seconds = seconds_between(manifest.started_at, manifest.completed_at);
                    let message = format!(
                        "{} stored in {} ({}/s; archive {}), {} tables recorded",
                        human_bytes(manifest.dump.size_bytes),
                        human_duration(seconds),
                        human_bytes((manifest.dump.size_bytes as f64 / seconds.max(0.001)) as u64),
                        human_bytes(manifest.dump.archive_bytes),
                        manifest.tables.len()
                    );
                    (completed_status(status, store_url, &manifest), message, manifest.dump.size_bytes, seconds)
                }
            };
            // The manifest as it is now, right after its Job wrote it, is what
            // restores of this Backup read from now on.
            let key = match backup.spec.method {
                BackupMethod::Physical => base::manifest_key(&name),
                BackupMethod::Logical => manifest::key(&name),
            };
            let completed = BackupStatus { manifest_version_id: store.current_version(&key).await?, ..completed };
            write_status(ctx, backups, backup, completed, "Completed", message).await?;
            m.backup_successes.get_or_create(&labels).inc();
            m.backup_last_status.get_or_create(&labels).set(1);
            m.backup_last_size.get_or_create(&labels).set(size_bytes as i64);
            m.backup_last_duration.get_or_create(&labels).set(seconds);
        }
    }
    Ok(Action::await_change())
}

pub fn seconds_between(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// Status mirroring a stored manifest.
fn completed_status(status: BackupStatus, store_url: &str, m: &Manifest) -> BackupStatus {
    BackupStatus {
        phase: Some(BackupPhase::Completed),
        message: None,
        location: Some(backup_location(store_url, &m.backup_name)),
        started_at: Some(m.started_at),
        completed_at: Some(m.completed_at),
        duration: Some(human_duration(seconds_between(m.started_at, m.completed_at))),
        snapshot_time: Some(m.snapshot_time),
        size: Some(human_bytes(m.dump.size_bytes)),
        size_bytes: Some(m.dump.size_bytes),
        sha256: Some(m.dump.sha256.clone()),
        data_version_id: m.dump.version_id.clone(),
        source: Some(m.source.clone().into()),
        pg_dump_version: Some(m.pg_dump_version.clone()),
        tables: m.tables.iter().cloned().map(Into::into).collect(),
        encryption: m.encryption.clone().map(Into::into),
        ..status
    }
}

/// Status mirroring a stored base backup. Its restore point alone is its end;
/// with the archived WAL any later point.
fn base_status(status: BackupStatus, store_url: &str, m: &BaseManifest) -> BackupStatus {
    BackupStatus {
        phase: Some(BackupPhase::Completed),
        message: None,
        location: Some(backup_location(store_url, &m.backup_name)),
        started_at: Some(m.started_at),
        completed_at: Some(m.completed_at),
        duration: Some(human_duration(seconds_between(m.started_at, m.completed_at))),
        snapshot_time: Some(m.completed_at),
        size: Some(human_bytes(m.base.size_bytes)),
        size_bytes: Some(m.base.size_bytes),
        sha256: Some(m.base.sha256.clone()),
        data_version_id: m.base.version_id.clone(),
        source: Some(SourceIdentity {
            system_identifier: m.source.system_identifier.clone(),
            database: m.source.database.clone(),
            server_version: m.source.server_version.clone(),
        }),
        encryption: m.encryption.clone().map(Into::into),
        ..status
    }
}

/// Writes status; `Ready` follows the phase.
async fn write_status(
    ctx: &Context,
    api: &Api<Backup>,
    backup: &Backup,
    status: BackupStatus,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let ready = match status.phase {
        Some(BackupPhase::Completed) => ConditionStatus::True,
        Some(BackupPhase::Failed) => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    super::write_ready(ctx, api, backup, status, ready, reason, message).await
}
