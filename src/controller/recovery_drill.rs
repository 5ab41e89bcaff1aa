//! The `RecoveryDrill` controller: Pending → BackingUp (fresh drills) →
//! Restoring → Verifying → Succeeded/Failed, each step a Job running the engine.
//!
//! The steps hand over through the store: the restore step leaves a record next
//! to the backup, the verify step (or a failed restore) the verdict and report,
//! which this controller mirrors into status. What to do next is decided from
//! what exists — the drill's Backup and Jobs, whose names are deterministic —
//! so a restarted operator picks up where it stopped without a second Job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

mod admission;
mod outcome;

use super::conditions;
use super::jobs::{self, EngineJob};
use super::{Context, Error, StepFailure, job_result};
use crate::api::artifortress::Artifortress;
use crate::api::backup::{Backup, BackupPhase};
use crate::api::backup_schedule::BackupTemplate;
use crate::api::common::{BackupMethod, ConditionStatus};
use crate::api::recovery_drill::{
    DrillBackupInfo, DrillBackupMode, DrillPhase, DrillResult, RecoveryDrill, RecoveryDrillStatus,
};
use crate::engine::layout::result_key;
use crate::engine::manifest;
use crate::engine::physical::base;
use crate::engine::record::RestoreRecord;
use crate::engine::verdict::Verdict;
use crate::metrics::InstallationLabels;
use crate::store::BackupStore;

pub fn controller(ctx: Arc<Context>, namespace: Option<&str>) -> futures::stream::BoxStream<'static, ()> {
    let drills = super::scoped::<RecoveryDrill>(&ctx.client, namespace);
    Controller::new(drills, watcher::Config::default())
        .owns(super::scoped::<Job>(&ctx.client, namespace), super::managed_children())
        .owns(super::scoped::<Backup>(&ctx.client, namespace), super::managed_children())
        .run(
            |d, ctx| async move {
                super::measured("recoverydrill", d.as_ref(), &ctx, reconcile(d.clone(), ctx.clone())).await
            },
            |d, e, ctx| super::error_policy("recoverydrill", d.as_ref(), e, &ctx),
            ctx,
        )
        .map(drop)
        .boxed()
}

/// How far one step (the fresh backup, or a Job) has got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepState {
    Running,
    Succeeded,
    Failed(StepFailure),
}

/// What exists for a drill.
#[derive(Clone, Debug, Default)]
pub struct Steps {
    /// The drill takes its own backup.
    pub fresh: bool,
    /// A physical drill is one step: its restore Job verifies and stores the verdict.
    pub physical: bool,
    pub backup: Option<StepState>,
    pub restore: Option<StepState>,
    pub verify: Option<StepState>,
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    CreateBackup,
    CreateRestoreJob,
    CreateVerifyJob,
    /// A step is running; look again later.
    Wait,
    /// The drill is over: mirror the verdict stored by the last step; `failure`
    /// is the reason when a step failed (used when no verdict was stored).
    Conclude {
        failure: Option<StepFailure>,
    },
}

/// Phase and next action from the steps that exist.
pub fn decide(s: &Steps) -> (DrillPhase, Next) {
    match (&s.verify, &s.restore) {
        (Some(StepState::Running), _) => return (DrillPhase::Verifying, Next::Wait),
        (Some(StepState::Succeeded), _) => return (DrillPhase::Verifying, Next::Conclude { failure: None }),
        (Some(StepState::Failed(why)), _) => {
            return (DrillPhase::Verifying, Next::Conclude { failure: Some(why.in_step("verify")) });
        }
        (None, Some(StepState::Running)) => return (DrillPhase::Restoring, Next::Wait),
        (None, Some(StepState::Succeeded)) if s.physical => {
            return (DrillPhase::Verifying, Next::Conclude { failure: None });
        }
        (None, Some(StepState::Succeeded)) => return (DrillPhase::Verifying, Next::CreateVerifyJob),
        (None, Some(StepState::Failed(why))) => {
            return (DrillPhase::Restoring, Next::Conclude { failure: Some(why.in_step("restore")) });
        }
        (None, None) => {}
    }
    if !s.fresh {
        return (DrillPhase::Restoring, Next::CreateRestoreJob);
    }
    match &s.backup {
        None => (DrillPhase::BackingUp, Next::CreateBackup),
        Some(StepState::Running) => (DrillPhase::BackingUp, Next::Wait),
        Some(StepState::Succeeded) => (DrillPhase::Restoring, Next::CreateRestoreJob),
        Some(StepState::Failed(why)) => {
            (DrillPhase::BackingUp, Next::Conclude { failure: Some(why.in_step("backup")) })
        }
    }
}

/// The Backup a fresh drill takes.
pub fn fresh_backup_name(drill: &str) -> String {
    jobs::job_name("drill", drill)
}

/// Names the drill's record, verdict and report in the store; the uid keeps a
/// recreated drill of the same name from reading an older verdict.
pub fn drill_id(drill: &RecoveryDrill) -> String {
    let uid = drill.uid().unwrap_or_default();
    format!("{}-{}", drill.name_any(), &uid[..uid.len().min(8)])
}

async fn job_state(client: &kube::Client, job: Option<Job>) -> Option<StepState> {
    let job = job?;
    Some(match job_result(client, &job).await {
        None => StepState::Running,
        Some(Ok(())) => StepState::Succeeded,
        Some(Err(f)) => {
            StepState::Failed(StepFailure { message: format!("Job {} failed: {}", job.name_any(), f.message), ..f })
        }
    })
}

fn backup_state(backup: Option<&Backup>) -> Option<StepState> {
    backup.map(|b| {
        let status = b.status.clone().unwrap_or_default();
        match status.phase {
            Some(BackupPhase::Completed) => StepState::Succeeded,
            Some(BackupPhase::Failed) => StepState::Failed(StepFailure {
                reason: status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .map_or_else(|| "BackupFailed".to_string(), |c| c.reason.clone()),
                message: format!(
                    "Backup {} failed: {}",
                    b.name_any(),
                    status.message.unwrap_or_else(|| "no reason given".into())
                ),
            }),
            _ => StepState::Running,
        }
    })
}

pub async fn reconcile(drill: Arc<RecoveryDrill>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut status = drill.status.clone().unwrap_or_default();
    if is_finished(&drill) {
        return Ok(Action::await_change());
    }
    let ns = drill.namespace().unwrap_or_default();
    let drills: Api<RecoveryDrill> = Api::namespaced(ctx.client.clone(), &ns);
    let installation = &drill.spec.artifortress_ref.name;
    let pending = RecoveryDrillStatus { phase: Some(DrillPhase::Pending), ..status.clone() };

    // Validate: problems a person must fix keep the drill Pending with a reason.
    let af = match super::installation(&ctx.client, &ns, installation).await? {
        Ok(af) => af,
        Err(why) => {
            write_status(&ctx, &drills, &drill, pending, why.reason, why.message).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    // Checked before the drill starts; once it runs, its Jobs hold what was checked.
    if matches!(status.phase, None | Some(DrillPhase::Pending))
        && let Some(action) = admission::admit(&ctx, &drills, &drill, &af, pending).await?
    {
        return Ok(action);
    }

    // Fetch: the backup to restore and the steps that exist.
    let store_url = jobs::backup_store_url(&af.spec, installation);
    let store = ctx.backup_store(&ns, &af.spec, &store_url).await?;
    let started_at = *status.started_at.get_or_insert_with(|| ctx.now());
    let backup = match choose_backup(&drill, &status, store.as_ref()).await? {
        Ok(backup) => backup,
        Err(message) => {
            let failure = StepFailure { reason: "NoBackup".into(), message };
            return conclude_failed(&ctx, &drills, &drill, status, failure).await;
        }
    };
    // The manifest version its Backup pinned, read back exactly (see `engine::pinned`).
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let pinned = backups.get_opt(&backup).await?.and_then(|b| b.status?.manifest_version_id);
    let run = DrillRun { ctx: &ctx, drills, drill: &drill, af: &af, store, store_url, backup, pinned, started_at };
    let steps = run.steps().await?;

    // Decide, then apply.
    let (phase, next) = decide(&steps);
    if next == Next::Wait {
        tracing::debug!(drill = %drill.name_any(), namespace = %ns, ?phase, "drill step running");
    } else {
        tracing::info!(drill = %drill.name_any(), namespace = %ns, ?phase, ?next, "drill step");
    }
    // Counted once: the first time the drill gets past validation.
    if matches!(status.phase, None | Some(DrillPhase::Pending)) {
        ctx.metrics.drill_attempts.get_or_create(&InstallationLabels { installation: installation.clone() }).inc();
    }
    status.phase = Some(phase);
    match next {
        Next::Wait => run.wait(status, phase).await,
        Next::CreateBackup => run.create_backup(status).await,
        Next::CreateRestoreJob => run.start_restore(status).await,
        Next::CreateVerifyJob => run.start_verify(status).await,
        Next::Conclude { failure } => run.conclude(status, failure).await,
    }
}

/// The backup a drill restores: its own fresh one, the named one, or the
/// newest complete one in the store (chosen once, then kept in status).
/// `Err` when there is none to restore.
async fn choose_backup(
    drill: &RecoveryDrill,
    status: &RecoveryDrillStatus,
    store: &dyn BackupStore,
) -> Result<Result<String, String>, Error> {
    Ok(Ok(match drill.spec.backup.mode {
        DrillBackupMode::Fresh => fresh_backup_name(&drill.name_any()),
        DrillBackupMode::Named => drill.spec.backup.name.clone().expect("validated"),
        DrillBackupMode::Latest => match &status.backup {
            Some(chosen) => chosen.name.clone(),
            None if drill.spec.template.method == BackupMethod::Physical => match base::latest(store).await {
                Ok(m) => m.backup_name,
                Err(e) => return Ok(Err(e.to_string())),
            },
            None => match manifest::list(store).await?.latest() {
                Some(m) => m.backup_name.clone(),
                None => {
                    let installation = &drill.spec.artifortress_ref.name;
                    return Ok(Err(format!("no complete backup of {installation} in {}; take one first", store.url())));
                }
            },
        },
    }))
}

/// One reconcile of a drill past validation: what it acts on.
struct DrillRun<'a> {
    ctx: &'a Context,
    drills: Api<RecoveryDrill>,
    drill: &'a RecoveryDrill,
    af: &'a Artifortress,
    store: Box<dyn BackupStore>,
    store_url: String,
    backup: String,
    /// The Backup status's `manifestVersionId`.
    pinned: Option<String>,
    started_at: DateTime<Utc>,
}

impl DrillRun<'_> {
    fn name(&self) -> String {
        self.drill.name_any()
    }

    fn fresh(&self) -> bool {
        self.drill.spec.backup.mode == DrillBackupMode::Fresh
    }

    fn physical(&self) -> bool {
        self.drill.spec.template.method == BackupMethod::Physical
    }

    fn job_name(&self, step: &str) -> String {
        jobs::job_name(step, &self.name())
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace())
    }

    fn namespace(&self) -> String {
        self.drill.namespace().unwrap_or_default()
    }

    async fn steps(&self) -> Result<Steps, Error> {
        let backups: Api<Backup> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        let jobs = self.jobs();
        Ok(Steps {
            fresh: self.fresh(),
            physical: self.physical(),
            backup: if self.fresh() { backup_state(backups.get_opt(&self.backup).await?.as_ref()) } else { None },
            restore: job_state(&self.ctx.client, jobs.get_opt(&self.job_name("restore")).await?).await,
            verify: job_state(&self.ctx.client, jobs.get_opt(&self.job_name("verify")).await?).await,
        })
    }

    /// The engine Job of a step: `drill-step restore|verify` of a logical
    /// drill, or the one `pitr` step of a physical drill. `staging_bytes`: what
    /// the step stages (the archive, or the base's tar).
    fn job(&self, step: &'static str, staging_bytes: Option<u64>) -> Job {
        let name = self.name();
        let ns = self.namespace();
        let template = &self.drill.spec.template;
        let mut secret_env = Vec::new();
        if let Some(target) = template.target.as_ref().filter(|_| !self.physical()) {
            secret_env.push(("TARGET_DATABASE_URL", target.connection_secret_ref.clone()));
        }
        secret_env.extend(jobs::s3_credentials(jobs::backup_storage(&self.af.spec)));
        if step == "restore" || self.physical() {
            secret_env.extend(jobs::key_env(&self.af.spec));
        }
        if step == "verify" || self.physical() {
            secret_env.extend(jobs::blob_credentials(self.af.spec.blobs()));
            // Read only: which missing blobs went since the restore point, what a restore takes back.
            secret_env.push(("LIVE_DATABASE_URL", self.af.spec.db().connection_secret_ref.clone()));
        }
        let blob_store_url = jobs::blob_store_url(&self.af.spec);
        let job_template = self.ctx.job_template(self.af, template.job_template.as_ref());
        let mut args = if self.physical() {
            jobs::pitr_args(&self.store_url, &self.backup, &drill_id(self.drill), template, &blob_store_url)
        } else {
            jobs::drill_step_args(jobs::DrillStepArgs {
                step,
                store_url: &self.store_url,
                backup: &self.backup,
                drill: &drill_id(self.drill),
                started_at: self.started_at,
                fresh: self.fresh(),
                template,
                blob_store_url: &blob_store_url,
                restore_jobs: jobs::restore_jobs(template.restore_jobs, &job_template),
            })
        };
        if let Some(version) = self.pinned.as_ref().filter(|_| step == "restore" || self.physical()) {
            args.extend(["--manifest-version".into(), version.clone()]);
        }
        jobs::engine_job(EngineJob {
            step,
            owner_name: &name,
            owner: self.drill.controller_owner_ref(&()).expect("a stored drill has a uid"),
            namespace: &ns,
            installation: &self.drill.spec.artifortress_ref.name,
            image: &self.ctx.image,
            args,
            secret_env,
            staging_bytes,
            template: &job_template,
        })
    }

    async fn write(&self, status: RecoveryDrillStatus, reason: &str, message: String) -> Result<Action, Error> {
        write_status(self.ctx, &self.drills, self.drill, status, reason, message).await?;
        Ok(Action::requeue(Duration::from_secs(30)))
    }

    async fn wait(&self, status: RecoveryDrillStatus, phase: DrillPhase) -> Result<Action, Error> {
        let (reason, message) = match phase {
            DrillPhase::BackingUp => ("BackingUp", format!("Backup {} is running", self.backup)),
            DrillPhase::Restoring => {
                ("Restoring", format!("Job {} is restoring {}", self.job_name("restore"), self.backup))
            }
            _ => ("Verifying", format!("Job {} is verifying the restored database", self.job_name("verify"))),
        };
        self.write(status, reason, message).await
    }

    async fn create_backup(&self, status: RecoveryDrillStatus) -> Result<Action, Error> {
        let installation = &self.drill.spec.artifortress_ref.name;
        let template = &self.drill.spec.template;
        let meta = super::child_meta(self.drill, &self.backup, installation, "drill");
        let backup = super::backup_resource::backup_resource(
            meta,
            installation,
            BackupTemplate {
                method: template.method,
                checkpoint: self.drill.spec.backup.checkpoint,
                verify: template.verify,
                tables: template.tables.clone(),
                job_template: template.job_template.clone(),
            },
        );
        let backups: Api<Backup> = Api::namespaced(self.ctx.client.clone(), &self.namespace());
        super::create_child(&backups, &backup).await?;
        self.write(status, "BackingUp", format!("Backup {} created for this drill", self.backup)).await
    }

    /// The backup the drill restores, as its status shows it.
    fn backup_info(&self, snapshot_time: DateTime<Utc>, completed_at: DateTime<Utc>) -> DrillBackupInfo {
        DrillBackupInfo {
            name: self.backup.clone(),
            location: super::backup_resource::backup_location(&self.store_url, &self.backup),
            snapshot_time,
            completed_at,
            fresh: self.fresh(),
        }
    }

    /// A physical drill's one Job: `pitr` of the base into a scratch instance.
    async fn start_physical(&self, mut status: RecoveryDrillStatus) -> Result<Action, Error> {
        let m = match base::load(self.store.as_ref(), &self.backup).await {
            Ok(m) => m,
            Err(e) => {
                let message = format!("backup {} cannot be restored physically: {e}", self.backup);
                let failure = StepFailure { reason: "BackupUnreadable".into(), message };
                return conclude_failed(self.ctx, &self.drills, self.drill, status, failure).await;
            }
        };
        status.backup = Some(self.backup_info(m.completed_at, m.completed_at));
        // The unpacked base; the WAL replayed into it is not known in advance
        // (the staging size's margin, or a jobTemplate.staging volume, covers it).
        if let Err(message) = super::create_job(&self.jobs(), &self.job("restore", Some(m.base.tar_bytes))).await? {
            return self.write(status, "InvalidJobTemplate", message).await;
        }
        let job = self.job_name("restore");
        status.job_name = Some(job.clone());
        let target = self.drill.spec.template.recovery_target.as_deref().unwrap_or("latest");
        let message =
            format!("Job {job} is restoring base {} and its WAL to {target} into a scratch instance", self.backup);
        self.write(status, "Restoring", message).await
    }

    async fn start_restore(&self, mut status: RecoveryDrillStatus) -> Result<Action, Error> {
        if self.physical() {
            return self.start_physical(status).await;
        }
        let manifest = match manifest::load(self.store.as_ref(), &self.backup).await {
            Ok(m) => m,
            Err(e) => {
                let message = format!("backup {} cannot be restored: {e}", self.backup);
                let failure = StepFailure { reason: "BackupUnreadable".into(), message };
                return conclude_failed(self.ctx, &self.drills, self.drill, status, failure).await;
            }
        };
        status.backup = Some(self.backup_info(manifest.snapshot_time, manifest.completed_at));
        if let Err(message) =
            super::create_job(&self.jobs(), &self.job("restore", Some(manifest.dump.archive_bytes))).await?
        {
            return self.write(status, "InvalidJobTemplate", message).await;
        }
        let job = self.job_name("restore");
        status.job_name = Some(job.clone());
        let size = crate::engine::progress::human_bytes(manifest.dump.size_bytes);
        self.write(status, "Restoring", format!("Job {job} is restoring {} ({size} stored)", self.backup)).await
    }

    async fn start_verify(&self, mut status: RecoveryDrillStatus) -> Result<Action, Error> {
        if let Err(message) = super::create_job(&self.jobs(), &self.job("verify", None)).await? {
            return self.write(status, "InvalidJobTemplate", message).await;
        }
        let job = self.job_name("verify");
        status.job_name = Some(job.clone());
        // The restore step's figures, once, in the Verifying Event.
        let key = crate::engine::layout::record_key(&self.backup, &drill_id(self.drill));
        let record = self.store.get_bytes(&key).await.ok().and_then(|b| RestoreRecord::parse(&b).ok());
        let took = |s: Option<f64>| s.map_or("?".to_string(), crate::engine::progress::human_duration);
        let figures = record.map_or_else(String::new, |r| {
            format!(" (downloaded in {}, restored in {})", took(r.download_seconds), took(r.restore_seconds))
        });
        self.write(status, "Verifying", format!("Job {job} is verifying the restored database{figures}")).await
    }

    /// Mirrors the verdict the last step stored; a step that failed without one
    /// fails the drill with the step's reason.
    async fn conclude(&self, status: RecoveryDrillStatus, failure: Option<StepFailure>) -> Result<Action, Error> {
        let stored = read_verdict(self.store.as_ref(), &self.backup, &drill_id(self.drill)).await;
        let (ctx, drills, drill) = (self.ctx, &self.drills, self.drill);
        match (stored, failure) {
            (Some(verdict), failure) => {
                let mut concluded = RecoveryDrillStatus {
                    conditions: status.conditions,
                    observed_generation: status.observed_generation,
                    job_name: status.job_name,
                    ..verdict
                };
                if let (Some(why), Some(DrillResult::Passed)) = (failure, concluded.result) {
                    concluded.failures.push(why.message);
                    concluded.reason = Some(why.reason);
                    concluded.result = Some(DrillResult::Failed);
                    concluded.phase = Some(DrillPhase::Failed);
                }
                conclude(ctx, drills, drill, concluded).await
            }
            (None, Some(why)) => conclude_failed(ctx, drills, drill, status, why).await,
            (None, None) => {
                let message =
                    format!("Job {} succeeded but stored no verdict next to {}", self.job_name("verify"), self.backup);
                conclude_failed(ctx, drills, drill, status, StepFailure { reason: "NoVerdict".into(), message }).await
            }
        }
    }
}

pub fn is_finished(drill: &RecoveryDrill) -> bool {
    drill.status.as_ref().is_some_and(|s| matches!(s.phase, Some(DrillPhase::Succeeded | DrillPhase::Failed)))
}

/// The backup a drill restores (or will): chosen, named, or its own fresh one;
/// None for a `Latest` drill that has not chosen yet.
pub fn backup_in_use(drill: &RecoveryDrill) -> Option<String> {
    let chosen = drill.status.as_ref().and_then(|s| s.backup.as_ref()).map(|b| b.name.clone());
    chosen.or_else(|| match drill.spec.backup.mode {
        DrillBackupMode::Fresh => Some(fresh_backup_name(&drill.name_any())),
        DrillBackupMode::Named => drill.spec.backup.name.clone(),
        DrillBackupMode::Latest => None,
    })
}

async fn read_verdict(store: &dyn BackupStore, backup: &str, drill: &str) -> Option<RecoveryDrillStatus> {
    let bytes = store.get_bytes(&result_key(backup, drill)).await.ok()?;
    match Verdict::parse(&bytes) {
        Ok(verdict) => Some(verdict.into()),
        Err(e) => {
            tracing::warn!(backup, drill, error = %e, "unreadable drill verdict");
            None
        }
    }
}

async fn conclude_failed(
    ctx: &Context,
    drills: &Api<RecoveryDrill>,
    drill: &RecoveryDrill,
    status: RecoveryDrillStatus,
    failure: StepFailure,
) -> Result<Action, Error> {
    let mut status = status;
    status.failures.push(failure.message);
    status.reason = Some(failure.reason);
    status.phase = Some(DrillPhase::Failed);
    status.result = Some(DrillResult::Failed);
    status.completed_at = Some(ctx.now());
    conclude(ctx, drills, drill, status).await
}

/// The final status, Event and metrics of a drill.
async fn conclude(
    ctx: &Context,
    drills: &Api<RecoveryDrill>,
    drill: &RecoveryDrill,
    status: RecoveryDrillStatus,
) -> Result<Action, Error> {
    let passed = status.result == Some(DrillResult::Passed);
    outcome::record(ctx, drill, &status, passed).await;
    let (reason, message) = if passed {
        let summary = |o: &Option<crate::api::recovery_drill::ObjectiveResult>| {
            o.as_ref().map_or("n/a".to_string(), |o| o.summary.clone())
        };
        // A physical drill checks the whole instance (pg_verifybackup, WAL
        // checksums, amcheck), not table counts.
        let checked = match status.method {
            Some(BackupMethod::Physical) => "base and WAL verified, indexes checked".to_string(),
            _ => format!(
                "{} of {} tables match",
                status.parity.iter().filter(|p| p.matches).count(),
                status.parity.len()
            ),
        };
        ("DrillPassed".to_string(), format!("{checked}, RPO {}, RTO {}", summary(&status.rpo), summary(&status.rto)))
    } else {
        (status.reason.clone().unwrap_or_else(|| "DrillFailed".into()), status.failures.join("; "))
    };
    write_status(ctx, drills, drill, status, &reason, message).await?;
    Ok(Action::await_change())
}

/// Writes status; `Ready` follows the phase (False at once for a spec problem).
async fn write_status(
    ctx: &Context,
    api: &Api<RecoveryDrill>,
    drill: &RecoveryDrill,
    status: RecoveryDrillStatus,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let ready = match status.phase {
        Some(DrillPhase::Succeeded) => ConditionStatus::True,
        Some(DrillPhase::Failed) => ConditionStatus::False,
        _ if conditions::is_problem(reason) => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    super::write_ready(ctx, api, drill, status, ready, reason, message).await
}

#[cfg(test)]
mod tests;
