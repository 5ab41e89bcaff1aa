//! `Artifortress`: one installation — where its PostgreSQL and object storage
//! are, where its backups go, and the SLO thresholds its health is judged by.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, DurationString, SecretKeyRef};
use super::job_template::JobTemplate;

/// Desired state of an Artifortress installation as the operator sees it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "artifortress.io",
    version = "v1alpha1",
    kind = "Artifortress",
    plural = "artifortresses",
    namespaced,
    status = "ArtifortressStatus",
    shortname = "af",
    category = "artifortress",
    doc = "An Artifortress installation: its database, object storage, backup location and SLO thresholds.",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Database", type_ = "string", json_path = ".status.database.state"),
    printcolumn(name = "Storage", type_ = "string", json_path = ".status.objectStorage.state"),
    printcolumn(name = "SLO", type_ = "string", json_path = ".status.slo.severity"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ArtifortressSpec {
    /// Read the database and the blob store the way the Kublai Helm chart
    /// configures Artifortress: `ConnectionStrings__Postgres` (an Npgsql
    /// connection string) and `ObjectStorage__AccessKey`/`SecretKey` from its
    /// Secret, `ObjectStorage__Endpoint`/`Bucket` and the `Lifecycle__*` settings
    /// from its ConfigMap (upstream's S3 settings: path-style, region
    /// us-east-1). `database` and `objectStorage`, when given, take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kublai: Option<KublaiRelease>,
    /// The installation's PostgreSQL database (required without `kublai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// The installation's blob store (S3-compatible; required without `kublai`). Probed for readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_storage: Option<ObjectStorageSpec>,
    /// Where backups, their manifests and drill reports are written. Defaults to
    /// `objectStorage` with the prefix `artifortress-backups`. Use a separate bucket
    /// (ideally another account or region) so one incident cannot take both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_storage: Option<ObjectStorageSpec>,
    /// Thresholds the ops summary is evaluated against.
    #[serde(default)]
    pub slo: SloThresholds,
    /// How often dependencies are probed and the ops summary recomputed.
    #[serde(default = "default_probe_interval")]
    pub probe_interval: DurationString,
    /// Defaults for every engine Job of this installation (backup, restore,
    /// verify); a Backup, RecoveryDrill or BackupSchedule overrides them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
    /// Continuous WAL archiving for physical backups: a Deployment (one pod)
    /// running the `wal` archiver against the installation's database, through
    /// a replication slot of its own, into `backupStorage`. Removing this stops
    /// the archiver; its slot stays on the source (so the WAL since is kept for
    /// a restarted archiver) until dropped by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_archive: Option<WalArchiveSpec>,
    /// Client-side encryption (age) of everything backups store: dumps, base
    /// backups and WAL. Backup Jobs and the WAL archiver get only the
    /// recipients (public keys); only restore and drill Jobs get the identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
}

/// Whom backups are encrypted to, and what opens them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// age recipients (`age1…`, public keys) new backups and WAL are encrypted
    /// to; add the new one beside the old while rotating. Not secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// The Secret key holding the identities (`AGE-SECRET-KEY-1…` lines, as
    /// `age-keygen` writes them) restores and drills open backups with: every
    /// identity of older backups too, until they expire. Given only to
    /// restore and drill Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identities_secret_ref: Option<SecretKeyRef>,
    /// Instead of recipients, a passphrase (small setups): every backup, WAL
    /// archiver, restore and drill Job gets it, so whoever steals one can read
    /// every backup. Not with `recipients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_secret_ref: Option<SecretKeyRef>,
}

/// The WAL archiver of an installation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalArchiveSpec {
    /// The replication slot (default `artifortress_<installation>`). A slot of
    /// that name the archiver did not create is refused and left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9_]{1,63}$"))]
    pub slot: Option<String>,
    /// How often the growing WAL segment is stored: the RPO under writes.
    #[serde(default = "default_partial_every")]
    pub partial_every: DurationString,
    /// Opt-in: a row committed this often into `artifortress_dr.heartbeat` in
    /// the installation's database, so physical drills measure the RPO achieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<DurationString>,
    /// The most WAL the slot may hold back on the source (e.g. `4GiB`); past
    /// it the archiver drops its slot (the source's disk is safe, WAL continuity
    /// is broken: condition `WalArchiving` False, take a new base backup).
    #[serde(default = "default_max_retained")]
    #[schemars(regex(pattern = r"^[0-9]+(B|KiB|MiB|GiB|TiB)?$"))]
    pub max_retained: String,
    /// Completed segments the archiver's volume may hold while the store is
    /// unreachable; then it pauses and the slot keeps the WAL on the source.
    #[serde(default = "default_spool_segments")]
    #[schemars(range(min = 1, max = 1024))]
    pub spool_segments: u32,
    /// Pod settings (resources, placement) of the archiver, over `jobTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<JobTemplate>,
}

fn default_partial_every() -> DurationString {
    DurationString::from("5s")
}

fn default_max_retained() -> String {
    "4GiB".into()
}

fn default_spool_segments() -> u32 {
    8
}

fn default_probe_interval() -> DurationString {
    DurationString::from("30s")
}

impl ArtifortressSpec {
    /// The database, once the controller resolved the spec (`controller::resolve_installation`).
    pub fn db(&self) -> &DatabaseSpec {
        self.database.as_ref().expect("the controller resolves spec.database before using it")
    }

    /// The blob store, once the controller resolved the spec.
    pub fn blobs(&self) -> &ObjectStorageSpec {
        self.object_storage.as_ref().expect("the controller resolves spec.objectStorage before using it")
    }
}

/// The Secret and ConfigMap of a Kublai Helm release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KublaiRelease {
    /// The release's Secret: the chart's `<fullname>-secrets` (default
    /// `kublai-secrets`), or its `secrets.existingSecretName`.
    #[serde(default = "default_kublai_secret")]
    pub secret_name: String,
    /// The release's ConfigMap, `<fullname>-config` (default `kublai-config`).
    #[serde(default = "default_kublai_config_map")]
    pub config_map_name: String,
}

fn default_kublai_secret() -> String {
    crate::artifortress::config::DEFAULT_SECRET.into()
}

fn default_kublai_config_map() -> String {
    crate::artifortress::config::DEFAULT_CONFIG_MAP.into()
}

/// How to reach the installation's PostgreSQL database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding a libpq connection URL,
    /// `postgres://user:password@host:5432/dbname?sslmode=require`, or an Npgsql
    /// connection string (`Host=…;Port=…;Username=…;Password=…;Database=…`; several
    /// hosts with `Target Session Attributes=primary`). The role needs read access
    /// to every table and INSERT on `audit_log` (docs/runbooks/security-review.md#the-database-role).
    pub connection_secret_ref: SecretKeyRef,
}

/// An S3-compatible bucket and how to reach it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorageSpec {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix under which this operator reads and writes, without a leading slash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// S3 endpoint URL for non-AWS servers (MinIO, Garage, Ceph), e.g.
    /// `http://minio.storage.svc:9000`. Empty means AWS S3 for the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Region used for request signing.
    #[serde(default = "default_region")]
    pub region: String,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`;
    /// most self-hosted servers need `true`.
    #[serde(default)]
    pub force_path_style: bool,
    /// Static credentials. Omit to use the pod's ambient credentials
    /// (e.g. IAM roles for service accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<S3CredentialsRef>,
    /// For `backupStorage`: write every backup object (dumps, manifests, base
    /// backups, WAL) as a version locked against deletion (S3 Object Lock; the
    /// bucket must have it enabled, or backups are refused saying so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockSpec>,
}

/// How long what the operator writes stays locked, and how strictly.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockSpec {
    /// `Compliance`: nobody can delete a locked version early, not even the
    /// account's root; `Governance`: only with the bypass permission.
    pub mode: ObjectLockModeSpec,
    /// How long each object stays locked after it is written (e.g. `30d`):
    /// at least as long as backups are kept. Deleting a Backup waits for it.
    pub retain: DurationString,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ObjectLockModeSpec {
    Compliance,
    Governance,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

/// Secret holding an S3 access key pair.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key holding the access key id.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key holding the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_string()
}

fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_string()
}

/// Levels for one ops-summary figure, compared as upstream's threshold files
/// (`deploy/phase6-alert-thresholds.yaml`, `deploy/enterprise-ops-alert-thresholds.yaml`)
/// compare them: a value strictly greater than a level reaches it. An absent
/// level is not checked.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// A value above this is `Warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub warning: Option<i64>,
    /// A value above this is `Critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub critical: Option<i64>,
}

const fn levels(warning: i64, critical: Option<i64>) -> Threshold {
    Threshold { warning: Some(warning), critical }
}

/// SLO thresholds for the ops-summary figures, per tenant, with upstream's
/// figure names; the defaults are upstream's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloThresholds {
    /// Undelivered outbox events (default: warning above 50, critical above 200).
    #[serde(default = "default_pending_outbox")]
    pub pending_outbox_events: Threshold,
    /// Age in seconds of the oldest undelivered outbox event (default: above 300, above 900).
    #[serde(default = "default_outbox_age")]
    pub oldest_pending_outbox_age_seconds: Threshold,
    /// Failed search-index jobs (default: above 5, above 20).
    #[serde(default = "default_failed_search")]
    pub failed_search_jobs: Threshold,
    /// Pending or processing search-index jobs (default: warning above 100, upstream's enterprise threshold).
    #[serde(default = "default_pending_search")]
    pub pending_search_jobs: Threshold,
    /// Garbage-collection runs without completion (default: warning above 0).
    #[serde(default = "default_incomplete_gc")]
    pub incomplete_gc_runs: Threshold,
    /// `policy.timeout` audit rows in the last 24 hours (default: warning above 0).
    #[serde(rename = "recentPolicyTimeouts24h", default = "default_policy_timeouts")]
    pub recent_policy_timeouts_24h: Threshold,
}

fn default_pending_outbox() -> Threshold {
    levels(50, Some(200))
}
fn default_outbox_age() -> Threshold {
    levels(300, Some(900))
}
fn default_failed_search() -> Threshold {
    levels(5, Some(20))
}
fn default_pending_search() -> Threshold {
    levels(100, None)
}
fn default_incomplete_gc() -> Threshold {
    levels(0, None)
}
fn default_policy_timeouts() -> Threshold {
    levels(0, None)
}

impl Default for SloThresholds {
    fn default() -> Self {
        SloThresholds {
            pending_outbox_events: default_pending_outbox(),
            oldest_pending_outbox_age_seconds: default_outbox_age(),
            failed_search_jobs: default_failed_search(),
            pending_search_jobs: default_pending_search(),
            incomplete_gc_runs: default_incomplete_gc(),
            recent_policy_timeouts_24h: default_policy_timeouts(),
        }
    }
}

impl SloThresholds {
    /// Every threshold with its figure's upstream name.
    pub fn named(&self) -> [(&'static str, Threshold); 6] {
        [
            ("pendingOutboxEvents", self.pending_outbox_events),
            ("oldestPendingOutboxAgeSeconds", self.oldest_pending_outbox_age_seconds),
            ("failedSearchJobs", self.failed_search_jobs),
            ("pendingSearchJobs", self.pending_search_jobs),
            ("incompleteGcRuns", self.incomplete_gc_runs),
            ("recentPolicyTimeouts24h", self.recent_policy_timeouts_24h),
        ]
    }
}

/// Observed state of an installation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifortressStatus {
    /// `Ready`, `DatabaseReady`, `ObjectStorageReady`, `SchemaSupported` (the
    /// database's Artifortress schema has every table the figures and the audit
    /// need), `SLOHealthy`, `BlobsRecoverable`
    /// (can blobs of older restore points still be recovered: bucket versioning
    /// against garbage collection), `BackupStorageSeparate` (backups not inside
    /// the blob store), `CatalogReadable` (every stored manifest can be read)
    /// and, once a WAL archiver ran, `WalArchiving` (it streams and reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Result of the last PostgreSQL probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DependencyStatus>,
    /// Result of the last object-storage probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_storage: Option<DependencyStatus>,
    /// The Artifortress schema the installation's database is at (condition
    /// `SchemaSupported` judges it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaStatus>,
    /// Ops summary at the last probe and its SLO evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloStatus>,
    /// The newest successful backup of this installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<ObjectRefWithTime>,
    /// The newest finished recovery drill of this installation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<ObjectRefWithTime>,
    /// The value of the `artifortress.io/force-resync` annotation last acted
    /// on: a new value forces one resync that also recreates deleted backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_resync: Option<String>,
    /// The WAL archiver's last status, read from the backup store, when one
    /// ever ran for this installation (`WalArchiving` judges it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalArchiveStatus>,
}

/// Where the WAL archiver (`wal`) stands, as it last wrote into the backup store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalArchiveStatus {
    /// Its replication slot on the source.
    pub slot: String,
    /// When it last wrote its status.
    pub updated_at: DateTime<Utc>,
    /// WAL the slot held back on the source then.
    pub retained_bytes: u64,
    /// The newest WAL segment stored complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<String>,
    /// The newest heartbeat it wrote into the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Why it stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Its receiver's position and the source's, as LSNs (`16/B374D848`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_lsn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_lsn: Option<String>,
    /// Why no WAL arrives although it runs, when that is so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
    /// The newest WAL segment it refused (another system's, or not what its
    /// name says), never uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rejected: Option<String>,
}

/// The level and shape of the installation's Artifortress schema.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaStatus {
    /// The newest version its `schema_migrations` records (upstream's migration file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// How many versions it records.
    pub versions: u32,
    /// Every figure and the audit can be served.
    pub supported: bool,
    /// What the operator uses and the schema lacks, with the level that brings it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Recorded versions newer than this operator knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_versions: Vec<String>,
}

/// Whether a dependency answered its probe.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DependencyState {
    Up,
    Down,
}

/// One dependency probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    /// `Up` or `Down`.
    pub state: DependencyState,
    /// Round-trip time of the probe in milliseconds.
    pub latency_ms: f64,
    /// What failed, when `Down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the probe ran.
    pub checked_at: DateTime<Utc>,
}

/// Severity of an SLO signal (the worst one for the installation as a whole).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

/// SLO evaluation of the latest ops summary, per tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloStatus {
    /// Worst severity over every tenant and figure.
    pub severity: Severity,
    /// For each figure, the tenant with the worst value, and how many tenants
    /// reach a severity on it.
    pub signals: Vec<SloSignal>,
    /// How many tenants were evaluated.
    #[serde(default)]
    pub tenants: u32,
    /// When the ops summary was read.
    pub evaluated_at: DateTime<Utc>,
}

/// One figure of one tenant against its thresholds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloSignal {
    /// The figure's upstream name, e.g. `pendingOutboxEvents`.
    pub signal: String,
    /// The tenant (slug, or id when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Observed value.
    pub value: f64,
    /// Warning level (exceeded when the value is above it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<i64>,
    /// Critical level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<i64>,
    /// Severity reached.
    pub severity: Severity,
    /// Tenants at Warning or Critical on this figure (in status: over all tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants_breaching: Option<u32>,
}

/// A related object and when it finished.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRefWithTime {
    /// Object name (same namespace).
    pub name: String,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Outcome, e.g. `Passed` or `Failed` for drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}
