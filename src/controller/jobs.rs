//! Pure Job builders: the Jobs that run the engine's `backup` and `restore`
//! commands for a resource. Same inputs, same Job — names are deterministic, so
//! a restarted operator finds the Job it already created instead of making a
//! second one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, EphemeralVolumeSource,
    PersistentVolumeClaimSpec, PersistentVolumeClaimTemplate, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::api::artifortress::{
    ArtifortressSpec, ObjectLockModeSpec, ObjectLockSpec, ObjectStorageSpec, WalArchiveSpec,
};
use chrono::{DateTime, Utc};

use crate::api::common::{CheckpointMode, SecretKeyRef, VerifyMode};
use crate::api::job_template::{JobTemplate, StagingVolumeKind};
use crate::api::recovery_drill::{BlobFindingPolicy, CleanupPolicy, DrillTemplate, RtoBasis};
use crate::engine::encryption::{IDENTITIES_ENV, PASSPHRASE_ENV};

pub const MANAGED_BY: &str = "artifortress-operator";
/// The label every object the operator creates carries, with [`MANAGED_BY`].
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_INSTALLATION: &str = "artifortress.io/installation";
pub const LABEL_OWNER: &str = "artifortress.io/owner";
pub const LABEL_STEP: &str = "artifortress.io/step";
/// Where restores stage the archive (the staging volume).
pub const STAGING_DIR: &str = "/staging";
/// Where an engine step's container writes why it failed (Kubernetes' default
/// `terminationMessagePath`), and the variable that tells the binary so.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
pub const TERMINATION_LOG_ENV: &str = "ARTIFORTRESS_TERMINATION_LOG";
/// A Job running longer is stopped by Kubernetes (`DeadlineExceeded`) unless
/// its `jobTemplate` says otherwise: generous for a large restore, yet a pod
/// stuck in ImagePullBackOff does not hold the installation's backups forever.
pub const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 6 * 3600;

/// The store URL of an installation's backups:
/// `s3://<bucket>/<prefix>/<installation>?endpoint=…&region=…&path_style=…`.
pub fn backup_store_url(spec: &ArtifortressSpec, installation: &str) -> String {
    installation_store_url(spec, backup_storage(spec), installation)
}

/// The store URL a Backup's Job writes with: the installation's, locked by
/// the stricter of `backupStorage.objectLock` and the Backup's own lock.
pub fn backup_job_store_url(spec: &ArtifortressSpec, installation: &str, own: Option<&ObjectLockSpec>) -> String {
    let Some(own) = own else { return backup_store_url(spec, installation) };
    let mut storage = backup_storage(spec).clone();
    storage.object_lock = Some(stricter(storage.object_lock.as_ref(), own));
    installation_store_url(spec, &storage, installation)
}

/// Compliance over governance, the longer period over the shorter.
fn stricter(a: Option<&ObjectLockSpec>, b: &ObjectLockSpec) -> ObjectLockSpec {
    let Some(a) = a else { return b.clone() };
    let longer = |x: &ObjectLockSpec| x.retain.parse().unwrap_or_default();
    let compliance = [a.mode, b.mode].contains(&ObjectLockModeSpec::Compliance);
    ObjectLockSpec {
        mode: if compliance { ObjectLockModeSpec::Compliance } else { ObjectLockModeSpec::Governance },
        retain: if longer(a) >= longer(b) { a.retain.clone() } else { b.retain.clone() },
    }
}

fn installation_store_url(spec: &ArtifortressSpec, storage: &ObjectStorageSpec, installation: &str) -> String {
    let default_prefix = if spec.backup_storage.is_some() { "" } else { "artifortress-backups" };
    let prefix = storage.prefix.as_deref().unwrap_or(default_prefix).trim_matches('/');
    store_url(storage, &if prefix.is_empty() { installation.to_string() } else { format!("{prefix}/{installation}") })
}

/// An S3 store URL for a path in a bucket, with the connection parameters.
pub fn store_url(storage: &ObjectStorageSpec, path: &str) -> String {
    let mut url = url::Url::parse(&format!("s3://{}/{path}", storage.bucket)).expect("bucket names are URL hosts");
    {
        let mut q = url.query_pairs_mut();
        if let Some(endpoint) = &storage.endpoint {
            q.append_pair("endpoint", endpoint);
        }
        q.append_pair("region", &storage.region);
        q.append_pair("path_style", if storage.force_path_style { "true" } else { "false" });
        if let Some(lock) = &storage.object_lock {
            let mode = match lock.mode {
                ObjectLockModeSpec::Compliance => "compliance",
                ObjectLockModeSpec::Governance => "governance",
            };
            q.append_pair("object_lock", mode);
            q.append_pair("retain", &lock.retain.0);
        }
    }
    url.to_string()
}

/// Where an installation's backups go: `backupStorage`, else `objectStorage`.
pub fn backup_storage(spec: &ArtifortressSpec) -> &ObjectStorageSpec {
    spec.backup_storage.as_ref().unwrap_or_else(|| spec.blobs())
}

/// The Secrets a backup Job reads: the source database URL and the backup
/// storage's access keys.
pub fn backup_secret_env(spec: &ArtifortressSpec) -> Vec<(&'static str, SecretKeyRef)> {
    let mut env = vec![("SOURCE_DATABASE_URL", spec.db().connection_secret_ref.clone())];
    env.extend(s3_credentials(backup_storage(spec)));
    env.extend(passphrase_env(spec));
    env
}

/// Arguments that encrypt what a backup Job or the WAL archiver stores to
/// the installation's recipients (public keys: nothing there decrypts).
pub fn encryption_args(spec: &ArtifortressSpec) -> Vec<String> {
    let recipients = spec.encryption.iter().flat_map(|e| e.recipients.iter());
    recipients.flat_map(|r| ["--encrypt-to".to_string(), r.clone()]).collect()
}

/// What a restore or drill Job opens encrypted backups with: the identities
/// and the passphrase, from their Secrets. Only those Jobs get them.
pub fn key_env(spec: &ArtifortressSpec) -> Vec<(&'static str, SecretKeyRef)> {
    let identities = spec.encryption.iter().filter_map(|e| e.identities_secret_ref.clone());
    let mut env: Vec<_> = identities.map(|r| (IDENTITIES_ENV, r)).collect();
    env.extend(passphrase_env(spec));
    env
}

fn passphrase_env(spec: &ArtifortressSpec) -> Option<(&'static str, SecretKeyRef)> {
    spec.encryption.as_ref()?.passphrase_secret_ref.clone().map(|r| (PASSPHRASE_ENV, r))
}

/// A Kubernetes name from parts, cut to 63 characters with a hash suffix when
/// too long, so different long inputs never collide.
pub fn job_name(step: &str, owner: &str) -> String {
    at_most_63(&format!("{step}-{owner}"))
}

/// A label value for an object name: names may have 253 characters, label
/// values 63 (the API server rejects more). Selectors must use the same value.
pub fn label_value(name: &str) -> String {
    at_most_63(name)
}

/// `s` when it fits in 63 characters, else its first 54 and a hash of the whole,
/// so different long inputs never collide and the same input always maps alike.
fn at_most_63(s: &str) -> String {
    if s.len() <= 63 {
        return s.to_string();
    }
    let hash = hex::encode(&Sha256::digest(s.as_bytes())[..4]);
    // Names are ASCII (DNS subdomains); a label value must end alphanumeric.
    format!("{}-{hash}", s[..54].trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
}

/// Labels of everything the operator creates for a resource.
pub fn child_labels(installation: &str, owner: &str, step: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_INSTALLATION.to_string(), label_value(installation)),
        (LABEL_OWNER.to_string(), label_value(owner)),
        (LABEL_STEP.to_string(), step.to_string()),
    ])
}

/// What differs between the engine Jobs.
pub struct EngineJob<'a> {
    pub step: &'static str,
    pub owner_name: &'a str,
    pub owner: OwnerReference,
    pub namespace: &'a str,
    pub installation: &'a str,
    pub image: &'a str,
    pub args: Vec<String>,
    /// Environment from Secrets: (variable, secret key).
    pub secret_env: Vec<(&'static str, SecretKeyRef)>,
    /// Size of the archive a restore stages (its staging volume is sized from it).
    pub staging_bytes: Option<u64>,
    /// The resolved pod settings (see [`JobTemplate::resolve`]).
    pub template: &'a JobTemplate,
}

/// Resources of a Job whose template sets none.
fn default_resources() -> ResourceRequirements {
    let quantity = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), quantity("500m")),
            ("memory".to_string(), quantity("128Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), quantity("512Mi"))])),
        ..Default::default()
    }
}

/// CPU cores of a Kubernetes quantity (`500m`, `2`, `1.5`); `None` if unreadable.
fn cpu_cores(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok().map(|m| m / 1000.0),
        None => s.parse::<f64>().ok(),
    }
}

/// `pg_restore -j` of a restore Job: the drill's `restoreJobs`, else the whole
/// CPUs the Job requests (its limit when it requests none), at least 1. Never
/// the node's CPU count, which on a large node would open dozens of
/// connections to the target.
pub fn restore_jobs(explicit: Option<u32>, template: &JobTemplate) -> u32 {
    if let Some(jobs) = explicit {
        return jobs.max(1);
    }
    let resources = template.resources.clone().unwrap_or_else(default_resources);
    let cpu = |m: &Option<BTreeMap<String, Quantity>>| m.as_ref().and_then(|m| m.get("cpu")).and_then(cpu_cores);
    let cores = cpu(&resources.requests).or_else(|| cpu(&resources.limits)).unwrap_or(1.0);
    (cores.floor() as u32).clamp(1, 64)
}

/// Staging room for an archive: the archive, 20 % and 1 GiB for pg_restore's
/// temporary files and the file system.
fn staging_size(archive_bytes: u64) -> Quantity {
    Quantity(format!("{}", archive_bytes + archive_bytes / 5 + (1 << 30)))
}

/// The staging volume, and the ephemeral-storage request its node must have.
fn staging_volume(j: &EngineJob<'_>, labels: &BTreeMap<String, String>) -> (Volume, Option<Quantity>) {
    let staging = j.template.staging.clone().unwrap_or_default();
    let size = j.staging_bytes.map(staging_size);
    let volume = match (staging.volume, &size) {
        (StagingVolumeKind::Ephemeral, Some(size)) => Volume {
            name: "staging".into(),
            ephemeral: Some(EphemeralVolumeSource {
                volume_claim_template: Some(PersistentVolumeClaimTemplate {
                    metadata: Some(ObjectMeta { labels: Some(labels.clone()), ..Default::default() }),
                    spec: PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".into()]),
                        storage_class_name: staging.storage_class_name.clone(),
                        resources: Some(VolumeResourceRequirements {
                            requests: Some(BTreeMap::from([("storage".to_string(), size.clone())])),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                }),
            }),
            ..Default::default()
        },
        // Node disk: the request makes the scheduler pick a node with the room
        // (a sizeLimit alone only evicts the pod once it is too late).
        _ => Volume {
            name: "staging".into(),
            empty_dir: Some(EmptyDirVolumeSource { size_limit: size.clone(), ..Default::default() }),
            ..Default::default()
        },
    };
    let ephemeral_request = if staging.volume == StagingVolumeKind::EmptyDir { size } else { None };
    (volume, ephemeral_request)
}

fn secret_env(name: &str, key: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// S3 credentials as environment from the storage's Secret, when it has one.
pub fn s3_credentials(storage: &ObjectStorageSpec) -> Vec<(&'static str, SecretKeyRef)> {
    storage
        .credentials_secret_ref
        .iter()
        .flat_map(|c| {
            [
                ("AWS_ACCESS_KEY_ID", SecretKeyRef { name: c.name.clone(), key: c.access_key_id_key.clone() }),
                ("AWS_SECRET_ACCESS_KEY", SecretKeyRef { name: c.name.clone(), key: c.secret_access_key_key.clone() }),
            ]
        })
        .collect()
}

/// The blob bucket's access keys for the verify step (its blob check), under
/// their own names: the backup store's keys may be others.
pub fn blob_credentials(storage: &ObjectStorageSpec) -> Vec<(&'static str, SecretKeyRef)> {
    s3_credentials(storage)
        .into_iter()
        .map(|(var, key)| {
            (if var == "AWS_ACCESS_KEY_ID" { "BLOB_AWS_ACCESS_KEY_ID" } else { "BLOB_AWS_SECRET_ACCESS_KEY" }, key)
        })
        .collect()
}

/// The URL of an installation's blob store (`objectStorage` and its prefix).
pub fn blob_store_url(spec: &ArtifortressSpec) -> String {
    store_url(spec.blobs(), spec.blobs().prefix.as_deref().unwrap_or("").trim_matches('/'))
}

/// The Job: one attempt, no service-account token, restricted security context,
/// bounded resources and run time, credentials only through `secretKeyRef`;
/// placement and the rest from the template.
pub fn engine_job(j: EngineJob<'_>) -> Job {
    let labels = child_labels(j.installation, j.owner_name, j.step);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(j.step, j.owner_name)),
            namespace: Some(j.namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![j.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // A failed step is reported with its reason, not retried blindly.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(
                j.template.active_deadline_seconds.unwrap_or(DEFAULT_ACTIVE_DEADLINE_SECONDS),
            ),
            template: engine_pod(&j, &labels, "Never"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod of an engine Job or of the WAL archiver's Deployment: non-root,
/// read-only root file system, no service-account token, one volume (staging,
/// or the archiver's spool) at [`STAGING_DIR`].
fn engine_pod(j: &EngineJob<'_>, labels: &BTreeMap<String, String>, restart_policy: &str) -> PodTemplateSpec {
    let t = j.template;
    let mut env: Vec<EnvVar> = j.secret_env.iter().map(|(var, key)| secret_env(var, key)).collect();
    env.push(EnvVar { name: "ARTIFORTRESS_LOG_FORMAT".into(), value: Some("json".into()), ..Default::default() });
    // A failing step writes its redacted error here; the kubelet puts it into
    // the pod's status, where the operator reads why the step failed.
    env.push(EnvVar { name: TERMINATION_LOG_ENV.into(), value: Some(TERMINATION_LOG.into()), ..Default::default() });
    let (staging, ephemeral_request) = staging_volume(j, labels);
    let mut resources = t.resources.clone().unwrap_or_else(default_resources);
    if let Some(request) = ephemeral_request {
        resources.requests.get_or_insert_default().entry("ephemeral-storage".into()).or_insert(request);
    }
    // The operator's labels last: its selectors and ownership depend on them.
    let mut pod_labels = t.pod_labels.clone();
    pod_labels.extend(labels.clone());
    let annotations = (!t.pod_annotations.is_empty()).then(|| t.pod_annotations.clone());
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(pod_labels), annotations, ..Default::default() }),
        spec: Some(PodSpec {
            restart_policy: Some(restart_policy.into()),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                run_as_group: Some(65532),
                fs_group: Some(65532),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                ..Default::default()
            }),
            image_pull_secrets: t.image_pull_secrets.clone(),
            node_selector: t.node_selector.clone(),
            tolerations: t.tolerations.clone(),
            affinity: t.affinity.clone(),
            priority_class_name: t.priority_class_name.clone(),
            containers: vec![Container {
                name: j.step.to_string(),
                image: Some(j.image.to_string()),
                args: Some(j.args.clone()),
                env: Some(env),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
                    ..Default::default()
                }),
                resources: Some(resources),
                termination_message_path: Some(TERMINATION_LOG.into()),
                termination_message_policy: Some("File".into()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "staging".into(),
                    mount_path: STAGING_DIR.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![staging]),
            ..Default::default()
        }),
    }
}

/// Set on the WAL archiver's Deployment: a digest of what the operator asked
/// for, so a changed spec replaces it and an unchanged one is left alone (the
/// API server fills in defaults, so the objects themselves never compare equal).
pub const SPEC_DIGEST: &str = "artifortress.io/spec-digest";

/// The WAL archiver of an installation: a Deployment of one pod running `wal`
/// (`j.args`), replaced, never rolled (`Recreate`): two archivers must not
/// stream through one slot. Its spool is the pod's volume of `spool_bytes`.
pub fn wal_deployment(j: EngineJob<'_>) -> Deployment {
    let labels = child_labels(j.installation, j.owner_name, j.step);
    let template = engine_pod(&j, &labels, "Always");
    let digest = hex::encode(Sha256::digest(serde_json::to_vec(&template).expect("serializable")));
    let spec = DeploymentSpec {
        replicas: Some(1),
        selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
        strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
        template,
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(job_name(j.step, j.owner_name)),
            namespace: Some(j.namespace.to_string()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(SPEC_DIGEST.to_string(), digest)])),
            owner_references: Some(vec![j.owner.clone()]),
            ..Default::default()
        },
        spec,
        ..Default::default()
    }
}

/// Arguments of the backup step.
pub fn backup_args(
    store_url: &str,
    backup: &str,
    verify: VerifyMode,
    tables: &[String],
    labels: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut args = vec!["backup".into(), "--store".into(), store_url.into(), "--name".into(), backup.into()];
    args.extend(["--verify".into(), if verify == VerifyMode::Checksums { "checksums" } else { "counts" }.into()]);
    if !tables.is_empty() {
        args.extend(["--tables".into(), tables.join(",")]);
    }
    for (key, value) in labels {
        args.extend(["--label".into(), format!("{key}={value}")]);
    }
    args
}

/// Arguments of a physical backup (`base-backup`; the source from SOURCE_DATABASE_URL).
pub fn base_backup_args(store_url: &str, backup: &str, checkpoint: CheckpointMode) -> Vec<String> {
    let mut args = vec!["base-backup".into(), "--store".into(), store_url.into(), "--name".into(), backup.into()];
    if checkpoint == CheckpointMode::Fast {
        args.push("--fast-checkpoint".into());
    }
    args
}

/// Where a physical drill's Job starts its scratch instance: in its own volume.
pub const SCRATCH_INSTANCE_DIR: &str = "/staging/instance";

/// Arguments of a physical drill's one step: `pitr` of `backup` into a scratch
/// instance in the Job's volume, with the drill's objectives and blob check.
pub fn pitr_args(store_url: &str, backup: &str, drill: &str, t: &DrillTemplate, blob_store_url: &str) -> Vec<String> {
    let mut args: Vec<String> =
        vec!["pitr".into(), "--store".into(), store_url.into(), "--backup".into(), backup.into()];
    args.extend(["--drill".into(), drill.into(), "--dir".into(), SCRATCH_INSTANCE_DIR.into()]);
    args.extend(["--target".into(), t.recovery_target.clone().unwrap_or_else(|| "latest".into())]);
    for (flag, objective) in [("--rpo", &t.rpo), ("--rto", &t.rto)] {
        if let Some(d) = objective {
            args.extend([flag.into(), d.0.clone()]);
        }
    }
    args.extend(blob_args(t, blob_store_url));
    args
}

fn blob_args(t: &DrillTemplate, blob_store_url: &str) -> Vec<String> {
    let mut args = vec!["--blob-store".into(), blob_store_url.into()];
    args.extend(["--blob-sample".into(), t.blobs.sample.to_string()]);
    if t.blobs.verify_digests {
        args.push("--verify-blob-digests".into());
    }
    if t.blobs.policy == BlobFindingPolicy::Warn {
        args.extend(["--blob-policy".into(), "warn".into()]);
    }
    args
}

/// The replication slot of an installation's WAL archiver: `spec.slot`, else
/// `artifortress_<installation>` in the characters a slot name allows.
pub fn wal_slot(installation: &str, spec: &WalArchiveSpec) -> String {
    spec.slot.clone().unwrap_or_else(|| {
        let name: String = installation
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        format!("artifortress_{name}").chars().take(63).collect()
    })
}

/// Arguments of the WAL archiver (`wal`), its spool in the pod's volume.
pub fn wal_args(store_url: &str, installation: &str, spec: &WalArchiveSpec) -> Vec<String> {
    let mut args: Vec<String> = vec!["wal".into(), "--store".into(), store_url.into()];
    args.extend(["--slot".into(), wal_slot(installation, spec), "--spool".into(), format!("{STAGING_DIR}/spool")]);
    args.extend(["--partial-every".into(), spec.partial_every.0.clone()]);
    args.extend(["--max-retained".into(), spec.max_retained.clone()]);
    args.extend(["--spool-segments".into(), spec.spool_segments.to_string()]);
    if let Some(every) = &spec.heartbeat {
        args.extend(["--heartbeat".into(), every.0.clone()]);
    }
    args
}

/// Room the archiver's spool needs: its completed segments and the growing
/// one, at PostgreSQL's largest usual segment size (16 MiB default; a source
/// initialized with larger segments needs a larger `spoolSegments` bound).
pub fn wal_spool_bytes(spec: &WalArchiveSpec) -> u64 {
    (u64::from(spec.spool_segments) + 2) * (16 << 20)
}

/// What a drill step's arguments are made of.
pub struct DrillStepArgs<'a> {
    /// `restore` or `verify`.
    pub step: &'static str,
    pub store_url: &'a str,
    pub backup: &'a str,
    pub drill: &'a str,
    pub started_at: DateTime<Utc>,
    pub fresh: bool,
    pub template: &'a DrillTemplate,
    /// The installation's blob store, checked by the verify step.
    pub blob_store_url: &'a str,
    /// `pg_restore -j` (see [`restore_jobs`]).
    pub restore_jobs: u32,
}

/// Arguments of `artifortress-operator drill-step …`; the target URL comes from
/// the environment (`TARGET_DATABASE_URL`, a secretKeyRef).
pub fn drill_step_args(a: DrillStepArgs<'_>) -> Vec<String> {
    let t = a.template;
    let mut args: Vec<String> = vec!["drill-step".into(), a.step.into(), "--store".into(), a.store_url.into()];
    args.extend(["--backup".into(), a.backup.into(), "--drill".into(), a.drill.into()]);
    args.extend(["--started-at".into(), a.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)]);
    args.extend(["--staging-dir".into(), STAGING_DIR.into()]);
    args.extend(["--verify".into(), if t.verify == VerifyMode::Checksums { "checksums" } else { "counts" }.into()]);
    if a.fresh {
        args.push("--fresh".into());
    }
    if let Some(db) = t.target.as_ref().and_then(|t| t.database.as_ref()) {
        args.extend(["--target-database".into(), db.clone()]);
    }
    if a.step == "restore" {
        args.extend(["--jobs".into(), a.restore_jobs.to_string()]);
    }
    if !t.tables.is_empty() {
        args.extend(["--tables".into(), t.tables.join(",")]);
    }
    for (flag, objective) in [("--rpo", &t.rpo), ("--rto", &t.rto)] {
        if let Some(d) = objective {
            args.extend([flag.into(), d.0.clone()]);
        }
    }
    if t.cleanup == CleanupPolicy::Retain {
        args.push("--keep-target".into());
    }
    if t.rto_basis == RtoBasis::Verified {
        args.extend(["--rto-basis".into(), "verified".into()]);
    }
    if !t.create_missing_roles {
        args.push("--no-create-roles".into());
    }
    if a.step == "verify" {
        args.extend(blob_args(t, a.blob_store_url));
    }
    args
}

#[cfg(test)]
mod tests;
