//! The `Backup` controller: one Job running `artifortress-operator backup`, and
//! the stored manifest mirrored into status once it completes.
//!
//! fetch → validate → decide → apply → status. Results travel from the Job to
//! the controller through the manifest in object storage, not through logs.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, Observed};
use super::jobs::{self, EngineJob, LABEL_INSTALLATION, LABEL_STEP};
use crate::api::artifortress::{Artifortress, ArtifortressSpec};
use crate::api::backup::{Backup, BackupPhase, BackupStatus};
use crate::api::common::ConditionStatus;
use crate::engine::manifest::Manifest;
use crate::engine::progress::{human_bytes, human_duration};
use crate::store::{BackupStore, S3Store, StaticCredentials};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
}

pub struct Context {
    pub client: kube::Client,
    /// Image of the engine Jobs (the operator's own).
    pub image: String,
}

/// Runs the controller until the stream ends, over one namespace or all.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let (backups, jobs): (Api<Backup>, Api<Job>) = match namespace {
        Some(ns) => (Api::namespaced(ctx.client.clone(), ns), Api::namespaced(ctx.client.clone(), ns)),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    Controller::new(backups, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels("app.kubernetes.io/managed-by=artifortress-operator"))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_backup: Arc<Backup>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "backup reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

/// Whether a Job has finished, and how.
fn job_outcome(job: &Job) -> Option<Result<(), String>> {
    let status = job.status.as_ref()?;
    if status.succeeded.unwrap_or(0) > 0 {
        return Some(Ok(()));
    }
    if status.failed.unwrap_or(0) > 0 {
        let reason = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed")
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| "the backup Job failed".into());
        return Some(Err(reason));
    }
    None
}

pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = backup.namespace().unwrap_or_default();
    let name = backup.name_any();
    let status = backup.status.clone().unwrap_or_default();
    if matches!(status.phase, Some(BackupPhase::Completed | BackupPhase::Failed)) {
        return Ok(Action::await_change());
    }
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let installation = &backup.spec.artifortress_ref.name;
    let Some(af) = Api::<Artifortress>::namespaced(ctx.client.clone(), &ns).get_opt(installation).await? else {
        let message =
            format!("Artifortress {installation:?} not found in namespace {ns}; create it or fix spec.artifortressRef");
        write_status(
            &backups,
            &backup,
            BackupStatus { phase: Some(BackupPhase::Pending), ..status },
            "ArtifortressNotFound",
            message,
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    let store_url = jobs::backup_store_url(&af.spec, installation);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job_name = jobs::job_name("backup", &name);

    let Some(job) = jobs_api.get_opt(&job_name).await? else {
        // Never two backups of one installation at once.
        let running = jobs_api
            .list(&ListParams::default().labels(&format!("{LABEL_INSTALLATION}={installation},{LABEL_STEP}=backup")))
            .await?
            .into_iter()
            .find(|j| job_outcome(j).is_none() && j.name_any() != job_name);
        if let Some(other) = running {
            let message = format!("waiting for {} (one backup of {installation} at a time)", other.name_any());
            write_status(
                &backups,
                &backup,
                BackupStatus { phase: Some(BackupPhase::Pending), ..status },
                "Waiting",
                message,
            )
            .await?;
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
        let owner = backup.controller_owner_ref(&()).expect("a stored Backup has a uid");
        let job = jobs::engine_job(EngineJob {
            step: "backup",
            owner_name: &name,
            owner,
            namespace: &ns,
            installation,
            image: &ctx.image,
            args: jobs::backup_args(&store_url, &name, backup.spec.verify, &backup.spec.tables),
            secret_env: jobs::backup_secret_env(&af.spec),
            staging_bytes: None,
        });
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {} // created by an earlier attempt
            Err(e) => return Err(e.into()),
        }
        let running = BackupStatus {
            phase: Some(BackupPhase::Running),
            job_name: Some(job_name.clone()),
            started_at: Some(Utc::now()),
            location: Some(backup_location(&store_url, &name)),
            ..status
        };
        write_status(&backups, &backup, running, "Running", format!("Job {job_name} is taking the backup")).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };

    match job_outcome(&job) {
        None => Ok(Action::requeue(Duration::from_secs(30))),
        Some(Err(reason)) => {
            let message = format!("Job {job_name} failed: {reason}");
            write_status(
                &backups,
                &backup,
                BackupStatus { phase: Some(BackupPhase::Failed), message: Some(message.clone()), ..status },
                "JobFailed",
                message,
            )
            .await?;
            Ok(Action::await_change())
        }
        Some(Ok(())) => {
            let store = open_store(&ctx.client, &ns, &af.spec, &store_url).await?;
            let m = Manifest::load(store.as_ref(), &name).await?;
            let seconds = (m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0;
            let completed = BackupStatus {
                phase: Some(BackupPhase::Completed),
                message: None,
                location: Some(backup_location(&store_url, &name)),
                started_at: Some(m.started_at),
                completed_at: Some(m.completed_at),
                duration: Some(human_duration(seconds)),
                snapshot_time: Some(m.snapshot_time),
                size: Some(human_bytes(m.dump.size_bytes)),
                size_bytes: Some(m.dump.size_bytes),
                sha256: Some(m.dump.sha256.clone()),
                source: Some(m.source.clone()),
                pg_dump_version: Some(m.pg_dump_version.clone()),
                tables: m.tables.clone(),
                ..status
            };
            let message = format!("{} stored, {} tables recorded", human_bytes(m.dump.size_bytes), m.tables.len());
            write_status(&backups, &backup, completed, "Completed", message).await?;
            Ok(Action::await_change())
        }
    }
}

/// `s3://bucket/prefix/installation/backup/`: the store URL without its
/// connection parameters, plus the backup's directory.
fn backup_location(store_url: &str, backup: &str) -> String {
    let mut url = url::Url::parse(store_url).expect("built by backup_store_url");
    url.set_query(None);
    format!("{}/{backup}/", url.as_str().trim_end_matches('/'))
}

/// The installation's backup store, with the access keys from its Secret.
async fn open_store(
    client: &kube::Client,
    ns: &str,
    spec: &ArtifortressSpec,
    url: &str,
) -> Result<Box<dyn BackupStore>, Error> {
    let credentials = match &jobs::backup_storage(spec).credentials_secret_ref {
        None => None,
        Some(c) => {
            let secret = Api::<Secret>::namespaced(client.clone(), ns).get(&c.name).await?;
            let value = |key: &str| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .unwrap_or_default()
            };
            Some(StaticCredentials {
                access_key_id: value(&c.access_key_id_key),
                secret_access_key: value(&c.secret_access_key_key),
            })
        }
    };
    let parsed = url::Url::parse(url)
        .map_err(|e| crate::store::StoreError::InvalidUrl { url: url.into(), reason: e.to_string() })?;
    Ok(Box::new(S3Store::with_credentials(&parsed, credentials).await?))
}

/// Writes status with the `Ready` condition and `observedGeneration`.
async fn write_status(
    api: &Api<Backup>,
    backup: &Backup,
    mut status: BackupStatus,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let ready = match status.phase {
        Some(BackupPhase::Completed) => ConditionStatus::True,
        Some(BackupPhase::Failed) => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    let generation = backup.meta().generation;
    conditions::set(
        &mut status.conditions,
        Observed { type_: "Ready", status: ready, reason, message },
        generation,
        Utc::now(),
    );
    status.observed_generation = generation;
    let patch = json!({ "status": status });
    api.patch_status(&backup.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_drop_the_connection_parameters() {
        let url = "s3://backups/prod/production?endpoint=http%3A%2F%2Fminio%3A9000&region=us-east-1&path_style=true";
        assert_eq!(super::backup_location(url, "nightly-1"), "s3://backups/prod/production/nightly-1/");
    }
}
