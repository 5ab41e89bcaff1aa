//! Controllers: one module per kind. Each reconcile reads the resource and what
//! exists (Jobs, child resources, manifests in the bucket), decides the next
//! step with a pure function, applies it, and writes status, Events and metrics.

pub mod artifortress;
pub mod backup;
pub mod backup_resource;
pub mod backup_schedule;
pub mod claims;
pub mod conditions;
pub mod jobs;
pub mod leader;
pub mod recoverability;
pub mod recovery_drill;
pub mod registry;
pub mod retention;
pub mod schedule;
pub mod wal_archiver;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Resource;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

use crate::api::artifortress::{Artifortress, ArtifortressSpec, ObjectStorageSpec};
use crate::api::backup::BackupStatus;
use crate::api::backup_schedule::BackupScheduleStatus;
use crate::api::common::{Condition, ConditionStatus, SecretKeyRef};
use crate::api::recovery_drill::RecoveryDrillStatus;
use crate::metrics::{ControllerLabels, Metrics};
use crate::store::{BackupStore, S3Store, StaticCredentials};
use conditions::Observed;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
}

/// What every reconciler shares.
pub struct Context {
    pub client: kube::Client,
    /// Image of the engine Jobs (the operator's own).
    pub image: String,
    pub metrics: Arc<Metrics>,
    /// Wall clock; tests inject their own to drive schedules.
    pub clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// Longest wait before a resource is looked at again (schedules requeue
    /// until their next run, but never longer than this).
    pub max_requeue: Duration,
    /// What the HTTP server answers for, kept current by `registry` on every replica.
    pub installations: Arc<crate::installations::Installations>,
    /// Whether this replica holds the leader lease (its probes then feed the metrics).
    pub leading: std::sync::atomic::AtomicBool,
    /// Pod settings under every installation's `jobTemplate` (`--job-defaults`).
    pub job_defaults: crate::api::job_template::JobTemplate,
    recorder: Recorder,
    /// Built on first use and shared by every store the reconcilers open.
    aws: tokio::sync::OnceCell<aws_config::SdkConfig>,
    /// Consecutive reconcile errors per object, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: kube::Client, image: String, metrics: Arc<Metrics>) -> Self {
        let reporter =
            Reporter { controller: "artifortress-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            image,
            metrics,
            clock: Arc::new(Utc::now),
            max_requeue: Duration::from_secs(300),
            installations: Arc::default(),
            leading: std::sync::atomic::AtomicBool::new(false),
            job_defaults: Default::default(),
            failures: Mutex::new(HashMap::new()),
            aws: tokio::sync::OnceCell::new(),
        }
    }

    /// The pod settings of a Job for `own` (a Backup's or drill's template):
    /// the operator's defaults, then the installation's, then its own.
    pub fn job_template(
        &self,
        af: &crate::api::Artifortress,
        own: Option<&crate::api::job_template::JobTemplate>,
    ) -> crate::api::job_template::JobTemplate {
        crate::api::job_template::JobTemplate::resolve([Some(&self.job_defaults), af.spec.job_template.as_ref(), own])
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Publishes an Event on `obj`. An Event that cannot be written is logged,
    /// never a reason to fail the reconcile.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.to_string(),
            note: Some(truncate(note, 1000)),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }

    /// The installation's backup store, with the access keys from its Secret.
    pub async fn backup_store(
        &self,
        ns: &str,
        spec: &ArtifortressSpec,
        url: &str,
    ) -> Result<Box<dyn BackupStore>, Error> {
        self.store(ns, jobs::backup_storage(spec), url).await
    }

    /// A store in `storage` at `url`, with the access keys from its Secret.
    pub async fn store(&self, ns: &str, storage: &ObjectStorageSpec, url: &str) -> Result<Box<dyn BackupStore>, Error> {
        let credentials = match &storage.credentials_secret_ref {
            None => None,
            Some(c) => {
                let secrets = Api::<Secret>::namespaced(self.client.clone(), ns);
                let key = |key: &str| SecretKeyRef { name: c.name.clone(), key: key.to_string() };
                Some(StaticCredentials {
                    access_key_id: secret_value(&secrets, &key(&c.access_key_id_key)).await?.unwrap_or_default(),
                    secret_access_key: secret_value(&secrets, &key(&c.secret_access_key_key))
                        .await?
                        .unwrap_or_default(),
                })
            }
        };
        let parsed = url::Url::parse(url)
            .map_err(|e| crate::store::StoreError::InvalidUrl { url: url.into(), reason: e.to_string() })?;
        let base = self.aws.get_or_init(crate::store::sdk_config).await;
        Ok(Box::new(S3Store::with_config(&parsed, credentials, base)?))
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// A Secret's value, `None` when the Secret or the key is missing.
pub async fn secret_value(secrets: &Api<Secret>, key: &SecretKeyRef) -> Result<Option<String>, Error> {
    let Some(secret) = secrets.get_opt(&key.name).await? else { return Ok(None) };
    Ok(secret.data.as_ref().and_then(|d| d.get(&key.key)).map(|b| String::from_utf8_lossy(&b.0).into_owned()))
}

/// Which of `keys` do not resolve, as a message a person can act on.
pub async fn missing_secrets(client: &kube::Client, ns: &str, keys: &[&SecretKeyRef]) -> Result<Option<String>, Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let mut missing = Vec::new();
    for key in keys {
        match secrets.get_opt(&key.name).await? {
            None => missing.push(format!("Secret {:?} does not exist in namespace {ns}", key.name)),
            Some(s) if !s.data.as_ref().is_some_and(|d| d.contains_key(&key.key)) => {
                missing.push(format!("Secret {:?} has no key {:?}", key.name, key.key))
            }
            Some(_) => {}
        }
    }
    Ok((!missing.is_empty()).then(|| format!("{}; create it or fix the reference", missing.join("; "))))
}

/// Why a resource's installation cannot be used: the condition reason and what
/// a person must fix.
pub struct Unusable {
    pub reason: &'static str,
    pub message: String,
}

/// The installation a resource refers to, resolved (see
/// [`resolve_installation`]), or why it cannot be used.
pub async fn installation(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Result<Artifortress, Unusable>, Error> {
    let Some(af) = Api::<Artifortress>::namespaced(client.clone(), ns).get_opt(name).await? else {
        let message =
            format!("Artifortress {name:?} not found in namespace {ns}; create it or fix spec.artifortressRef");
        return Ok(Err(Unusable { reason: "ArtifortressNotFound", message }));
    };
    Ok(resolve_installation(client, &af).await?.map(|r| r.artifortress).map_err(|problem| Unusable {
        reason: "ArtifortressInvalid",
        message: format!("Artifortress {name:?}: {problem}"),
    }))
}

/// An installation whose database and blob store are known.
pub struct Resolved {
    /// `spec.database` and `spec.objectStorage` are set.
    pub artifortress: Artifortress,
    /// The Kublai release's `Lifecycle__*` settings, when it names one.
    pub lifecycle: Option<crate::artifortress::config::Lifecycle>,
}

/// Fills `spec.database` and `spec.objectStorage` from the Kublai release's
/// Secret and ConfigMap (`spec.kublai`) where they are not given; the error is
/// what a person must fix.
pub async fn resolve_installation(client: &kube::Client, af: &Artifortress) -> Result<Result<Resolved, String>, Error> {
    use crate::api::artifortress::{DatabaseSpec, S3CredentialsRef};
    use crate::artifortress::config;
    use k8s_openapi::api::core::v1::ConfigMap;
    let mut resolved = af.clone();
    let spec = &mut resolved.spec;
    let Some(kublai) = spec.kublai.clone() else {
        return Ok(match (&spec.database, &spec.object_storage) {
            (Some(_), Some(_)) => Ok(Resolved { artifortress: resolved, lifecycle: None }),
            (None, _) => {
                Err("spec.database is not set: give it, or spec.kublai to read the Kublai release's Secret".into())
            }
            (_, None) => {
                Err("spec.objectStorage is not set: give it, or spec.kublai to read the Kublai release's ConfigMap"
                    .into())
            }
        });
    };
    spec.database.get_or_insert_with(|| DatabaseSpec {
        connection_secret_ref: SecretKeyRef { name: kublai.secret_name.clone(), key: config::CONNECTION_STRING.into() },
    });
    let ns = kube::ResourceExt::namespace(af).unwrap_or_default();
    let Some(map) = Api::<ConfigMap>::namespaced(client.clone(), &ns).get_opt(&kublai.config_map_name).await? else {
        return Ok(Err(format!(
            "ConfigMap {:?} (spec.kublai.configMapName) does not exist in namespace {ns}: name the Kublai release's ConfigMap (<fullname>-config)",
            kublai.config_map_name
        )));
    };
    let data = map.data.unwrap_or_default();
    let lifecycle = match config::lifecycle(&data, &kublai.config_map_name) {
        Ok(l) => l,
        Err(e) => return Ok(Err(e)),
    };
    if spec.object_storage.is_none() {
        let storage = match config::storage(&data, &kublai.config_map_name) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        spec.object_storage = Some(ObjectStorageSpec {
            bucket: storage.bucket,
            prefix: None,
            endpoint: storage.endpoint,
            region: config::REGION.into(),
            force_path_style: config::PATH_STYLE,
            credentials_secret_ref: Some(S3CredentialsRef {
                name: kublai.secret_name.clone(),
                access_key_id_key: config::ACCESS_KEY.into(),
                secret_access_key_key: config::SECRET_KEY.into(),
            }),
            object_lock: None,
        });
    }
    Ok(Ok(Resolved { artifortress: resolved, lifecycle: Some(lifecycle) }))
}

/// Statuses with a `Ready` condition and `observedGeneration`.
pub trait Conditioned: serde::Serialize {
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

macro_rules! conditioned {
    ($($status:ty),*) => {$(
        impl Conditioned for $status {
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    )*};
}
conditioned!(BackupStatus, RecoveryDrillStatus, BackupScheduleStatus);

/// Sets `Ready` (with `observedGeneration`), writes the status with a merge patch,
/// and publishes an Event when the condition's reason changes.
pub async fn write_ready<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    mut status: S,
    ready: ConditionStatus,
    reason: &str,
    message: String,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Conditioned,
{
    let generation = obj.meta().generation;
    let transition = conditions::reason_of(status.conditions_mut(), "Ready") != Some(reason);
    let observed = Observed { type_: "Ready", status: ready, reason, message: message.clone() };
    conditions::set(status.conditions_mut(), observed, generation, ctx.now());
    status.set_observed_generation(generation);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status }))).await?;
    if transition {
        ctx.event(obj, conditions::is_problem(reason), reason, message).await;
    }
    Ok(())
}

/// A Kubernetes timestamp as chrono.
pub fn k8s_time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// Why a Job or a drill step failed: the reason its Backup or drill reports
/// (for a Job `DeadlineExceeded` when Kubernetes stopped it at its
/// `activeDeadlineSeconds`, else `JobFailed`) and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    pub reason: String,
    pub message: String,
}

impl StepFailure {
    /// The same failure, its message naming the step.
    pub fn in_step(&self, step: &str) -> StepFailure {
        StepFailure { reason: self.reason.clone(), message: format!("{step}: {}", self.message) }
    }
}

/// Whether a Job has finished, and how.
pub fn job_outcome(job: &Job) -> Option<Result<(), StepFailure>> {
    let status = job.status.as_ref()?;
    if status.succeeded.unwrap_or(0) > 0 {
        return Some(Ok(()));
    }
    let failed = status.conditions.iter().flatten().find(|c| c.type_ == "Failed" && c.status == "True");
    // A Job stopped at its deadline may have no failed pod (one that never started).
    if status.failed.unwrap_or(0) == 0 && failed.is_none() {
        return None;
    }
    let said = failed.and_then(|c| c.message.clone().or_else(|| c.reason.clone()));
    if failed.and_then(|c| c.reason.as_deref()) == Some("DeadlineExceeded") {
        let deadline = job.spec.as_ref().and_then(|s| s.active_deadline_seconds).unwrap_or_default();
        let message = format!(
            "ran longer than its deadline ({}; jobTemplate.activeDeadlineSeconds) and was stopped{}",
            crate::engine::progress::human_duration(deadline as f64),
            said.map(|s| format!(": {s}")).unwrap_or_default()
        );
        return Some(Err(StepFailure { reason: "DeadlineExceeded".into(), message }));
    }
    Some(Err(StepFailure { reason: "JobFailed".into(), message: said.unwrap_or_else(|| "the Job failed".into()) }))
}

/// How a Job ended, like [`job_outcome`], but a failed Job's message is its
/// pod's own account — the termination message the engine writes (its
/// redacted error), else the container's exit code and reason — instead of
/// the job controller's "Job has reached the specified backoff limit". When
/// the pods cannot be read (gone, or not allowed), the Job's message stays.
pub async fn job_result(client: &kube::Client, job: &Job) -> Option<Result<(), StepFailure>> {
    let outcome = job_outcome(job)?;
    let Err(failure) = outcome else { return Some(Ok(())) };
    if failure.reason == "DeadlineExceeded" {
        return Some(Err(failure));
    }
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let listed = pods.list(&kube::api::ListParams::default().labels(&format!("job-name={name}"))).await;
    let said = match listed {
        Ok(list) => list.items.iter().filter_map(pod_termination).next_back(),
        Err(e) => {
            tracing::warn!(job = %name, error = %e, "cannot read the failed Job's pods; reporting the Job's own message");
            None
        }
    };
    Some(Err(StepFailure { message: said.unwrap_or(failure.message), ..failure }))
}

/// Why a pod's container stopped: its termination message, else exit code and reason.
fn pod_termination(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let ended = statuses.iter().find_map(|s| s.state.as_ref()?.terminated.as_ref())?;
    if ended.exit_code == 0 {
        return None;
    }
    let message = ended.message.as_deref().map(str::trim).unwrap_or_default();
    let reason = ended.reason.as_deref().unwrap_or("Error");
    Some(match message {
        "" => format!("its container exited with code {} ({reason})", ended.exit_code),
        _ => message.to_string(),
    })
}

/// Creates a child; `None` when it exists already (created by an earlier
/// attempt, e.g. before an operator restart: names are deterministic).
pub async fn create_child<K>(api: &Api<K>, obj: &K) -> Result<Option<K>, Error>
where
    K: Resource + Clone + serde::Serialize + DeserializeOwned + Debug,
{
    match api.create(&kube::api::PostParams::default(), obj).await {
        Ok(created) => Ok(Some(created)),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates an engine Job like [`create_child`] (`Ok(true)` when this call
/// created it). A Job the API server rejects as invalid is `Err(message)`: a
/// `jobTemplate` value a person must fix, reported with reason
/// `InvalidJobTemplate` instead of retried at once.
pub async fn create_job(api: &Api<Job>, job: &Job) -> Result<Result<bool, String>, Error> {
    match create_child(api, job).await {
        Ok(created) => Ok(Ok(created.is_some())),
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 422 || e.code == 400 => Ok(Err(format!(
            "the API server rejects Job {}: {}; fix the jobTemplate (RecoveryDrill, Backup, BackupSchedule, \
             Artifortress) or the operator's --job-defaults",
            job.metadata.name.as_deref().unwrap_or_default(),
            e.message
        ))),
        Err(e) => Err(e),
    }
}

/// Metadata of a child created for `owner` (a Backup, a RecoveryDrill): the
/// operator's labels and `owner` as controller, so deleting the owner deletes it.
pub fn child_meta<K: Resource<DynamicType = ()>>(owner: &K, name: &str, installation: &str, step: &str) -> ObjectMeta {
    let owner_name = owner.meta().name.clone().unwrap_or_default();
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: owner.meta().namespace.clone(),
        labels: Some(jobs::child_labels(installation, &owner_name, step)),
        owner_references: Some(vec![owner.controller_owner_ref(&()).expect("a stored object has a uid")]),
        ..Default::default()
    }
}

/// Deletes a child in the background; a child already gone is fine.
pub async fn delete_child<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `Api`s for a resource kind, over one namespace or all.
pub fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the reconcile for one object, timing it and counting the outcome;
/// success clears the object's error backoff.
pub async fn measured<K, F>(controller: &'static str, obj: &K, ctx: &Context, reconcile: F) -> Result<Action, Error>
where
    K: Resource,
    F: std::future::Future<Output = Result<Action, Error>>,
{
    let started = Instant::now();
    let result = reconcile.await;
    let labels = ControllerLabels { controller: controller.to_string() };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    ctx.metrics.reconcile_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    // Errors read 0, not "no data", until the first one.
    let _ = ctx.metrics.reconcile_errors.get_or_create(&labels);
    if result.is_ok() {
        ctx.failures.lock().expect("not poisoned").remove(&object_key(controller, obj));
    }
    result
}

fn object_key<K: Resource>(controller: &str, obj: &K) -> String {
    format!(
        "{controller}/{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Counts the error and retries with exponential backoff (5 s doubling up to
/// 5 min), so a persistent failure never becomes a hot loop.
pub fn error_policy<K: Resource>(controller: &'static str, obj: &K, error: &Error, ctx: &Context) -> Action {
    ctx.metrics.reconcile_errors.get_or_create(&ControllerLabels { controller: controller.to_string() }).inc();
    let attempts = {
        let mut failures = ctx.failures.lock().expect("not poisoned");
        let n = failures.entry(object_key(controller, obj)).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(attempts);
    tracing::warn!(controller, object = obj.meta().name.as_deref().unwrap_or(""), %error, attempts, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << attempts.saturating_sub(1).min(6)).min(300))
}

/// Runs all four controllers until `shutdown` resolves.
pub async fn run_all(ctx: Arc<Context>, namespace: Option<String>, shutdown: impl std::future::Future<Output = ()>) {
    let ns = namespace.as_deref();
    let drain = |s: futures::stream::BoxStream<'static, ()>| s.for_each(|_| futures::future::ready(()));
    let controllers = futures::future::join4(
        drain(artifortress::controller(ctx.clone(), ns)),
        drain(backup::controller(ctx.clone(), ns)),
        drain(backup_schedule::controller(ctx.clone(), ns)),
        drain(recovery_drill::controller(ctx.clone(), ns)),
    );
    tokio::select! {
        _ = controllers => {}
        _ = shutdown => tracing::info!("controllers stopping"),
    }
}

/// The label selector of every child the operator creates.
pub fn managed_children() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}={}", jobs::LABEL_MANAGED_BY, jobs::MANAGED_BY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    fn pod_ended(exit_code: i32, message: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({"status": {"containerStatuses": [{
            "name": "backup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}}}]}}))
        .unwrap()
    }

    #[test]
    fn a_failed_pod_says_why_in_its_termination_message_else_its_exit_code() {
        let said = pod_termination(&pod_ended(1, Some("connecting to db: password authentication failed\n")));
        assert_eq!(said.as_deref(), Some("connecting to db: password authentication failed"));
        assert_eq!(
            pod_termination(&pod_ended(137, None)).as_deref(),
            Some("its container exited with code 137 (Error)")
        );
        assert_eq!(pod_termination(&pod_ended(0, Some("done"))), None, "a container that succeeded is no reason");
        assert_eq!(pod_termination(&Pod::default()), None, "a pod that never ran");
    }
}
