//! `RecoveryDrill`: restore a backup into a scratch database, prove it equal to
//! the snapshot, and measure RPO/RTO against objectives.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ArtifortressRef, BackupMethod, CheckpointMode, Condition, DurationString, SecretKeyRef, VerifyMode,
};
use super::job_template::JobTemplate;
use crate::engine::verdict;

/// Run one recovery drill.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "artifortress.io",
    version = "v1alpha1",
    kind = "RecoveryDrill",
    namespaced,
    status = "RecoveryDrillStatus",
    shortname = "drill",
    category = "artifortress",
    doc = "A recovery drill: restore a backup into a scratch database, verify table parity, measure RPO and RTO.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(name = "RPO", type_ = "string", json_path = ".status.rpo.summary"),
    printcolumn(name = "RTO", type_ = "string", json_path = ".status.rto.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryDrillSpec {
    /// The installation whose backup is drilled.
    pub artifortress_ref: ArtifortressRef,
    /// Which backup to restore. Default: take a fresh backup first.
    #[serde(default)]
    pub backup: DrillBackup,
    /// Target, objectives and verification.
    #[serde(flatten)]
    pub template: DrillTemplate,
}

/// Which backup a drill restores.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillBackup {
    /// `Fresh` takes a new backup for the drill; `Latest` uses the newest completed
    /// backup of the installation; `Named` uses the backup given in `name`.
    #[serde(default)]
    pub mode: DrillBackupMode,
    /// Name of the `Backup` to restore (with `mode: Named`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A `Fresh` physical drill's base backup: `Spread` (default) or `Fast`
    /// checkpoint; see `Backup.spec.checkpoint`.
    #[serde(default)]
    pub checkpoint: CheckpointMode,
}

/// How a drill picks its backup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DrillBackupMode {
    #[default]
    Fresh,
    Latest,
    Named,
}

/// Everything about a drill except which backup it restores; also the template
/// a `BackupSchedule` uses for its drills.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillTemplate {
    /// `Logical` restores a pg_dump backup into `target`; `Physical` restores a
    /// base backup and the archived WAL up to `recoveryTarget` into a scratch
    /// PostgreSQL instance its Job starts in its own volume (no `target`), and
    /// proves it with pg_verifybackup, WAL checksums and amcheck. In a schedule's
    /// drill policy the schedule's `backupTemplate.method` decides.
    #[serde(default)]
    pub method: BackupMethod,
    /// Physical only: how far the WAL is replayed — `latest` (default: the end
    /// of the archive), a time (RFC 3339), an LSN (`16/B374D848`), or
    /// `random:<window>` (e.g. `random:24h`): a time drawn at random in that
    /// window before the drill, between the oldest base and the archive's
    /// newest heartbeat (needs `walArchive.heartbeat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target: Option<String>,
    /// Logical only (and required there): the scratch database restored into.
    /// The drill creates it (and marks it as its scratch database), or drops and
    /// recreates one it created earlier; any other existing database is refused
    /// (`TargetNotScratch`), as is the backup's source and any installation's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<DrillTarget>,
    /// Recovery point objective: the restore point may be at most this old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<DurationString>,
    /// Recovery time objective: from the start of the restore (download
    /// included) to a recovered database — usable or verified, see `rtoBasis` —
    /// may take at most this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<DurationString>,
    /// What `rto` judges: `Usable` (restored and analyzed: queries run with
    /// planner statistics) or `Verified` (usable, and every table proven equal).
    #[serde(default)]
    pub rto_basis: RtoBasis,
    /// Create the roles the backup needs and the target server lacks, as
    /// `NOLOGIN` roles (existing roles are never changed). `false`: the drill
    /// fails up front, naming every missing role.
    #[serde(default = "create_missing_roles_default")]
    pub create_missing_roles: bool,
    /// `Counts` compares exact row counts; `Checksums` also compares content digests
    /// (needs a backup taken with `Checksums`).
    #[serde(default)]
    pub verify: VerifyMode,
    /// The blob check after parity: every blob the restored database references
    /// must exist in the installation's object storage with its size.
    #[serde(default)]
    pub blobs: DrillBlobPolicy,
    /// Tables to compare, as `schema.table`. Empty means every table in the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Parallel `pg_restore` jobs. Default: the whole CPUs the restore Job
    /// requests (`jobTemplate.resources`), at least 1 — never the node's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub restore_jobs: Option<u32>,
    /// `Delete` drops the scratch database after the drill; `Retain` keeps it for
    /// inspection.
    #[serde(default)]
    pub cleanup: CleanupPolicy,
    /// Pod settings of the drill's Jobs (and of its fresh backup's), over the
    /// installation's `jobTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
}

/// How a drill checks blobs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillBlobPolicy {
    /// `Fail` (default): a missing or corrupt referenced blob fails the drill
    /// (`BlobsMissing`, `BlobCorrupt`); `Warn`: it is reported as a warning.
    #[serde(default)]
    pub policy: BlobFindingPolicy,
    /// Blobs fetched at random and hashed against their digest (0: none).
    #[serde(default = "default_blob_sample")]
    pub sample: u32,
    /// Hash every blob instead of a sample.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_digests: bool,
}

fn default_blob_sample() -> u32 {
    100
}

impl Default for DrillBlobPolicy {
    fn default() -> Self {
        DrillBlobPolicy { policy: BlobFindingPolicy::default(), sample: default_blob_sample(), verify_digests: false }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BlobFindingPolicy {
    #[default]
    Fail,
    Warn,
}

fn create_missing_roles_default() -> bool {
    true
}

/// When a restored database counts as recovered, for the RTO objective.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RtoBasis {
    /// Restored and analyzed.
    #[default]
    Usable,
    /// Restored, analyzed and proven equal to the backup.
    Verified,
}

/// Where a drill restores to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillTarget {
    /// Secret key holding a libpq connection URL of the target server; the user
    /// needs `CREATEDB` (or superuser) to drop and recreate the scratch database.
    pub connection_secret_ref: SecretKeyRef,
    /// Scratch database name; overrides the database named in the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$"))]
    pub database: Option<String>,
}

/// What happens to the scratch database after a drill.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Retain,
}

/// Steps of a drill.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DrillPhase {
    Pending,
    BackingUp,
    Restoring,
    Verifying,
    Succeeded,
    Failed,
}

/// Verdict of a finished drill.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DrillResult {
    Passed,
    Failed,
}

/// Observed state and verdict of a drill. A failed drill still reports
/// everything it measured.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryDrillStatus {
    /// Current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DrillPhase>,
    /// How the concluded drill restored: `Logical` or `Physical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<BackupMethod>,
    /// `Passed` or `Failed` once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<DrillResult>,
    /// Machine-readable reason of the first failure, e.g. `TargetNotScratch`,
    /// `ParityMismatch`, `RTOMissed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every reason the drill failed, each naming the step and the numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// What did not fail the drill but deserves attention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Objects of the backup someone changed after it was written (a newer
    /// version over a pinned key, a forged WAL segment): the drill read the
    /// backup's own versions and never what was put over them. Also among
    /// `warnings`; a person should find out who wrote them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampering: Vec<String>,
    /// Roles the restore created on the target (NOLOGIN) because the backup needs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles_created: Vec<String>,
    /// PostgreSQL major of the backup's source server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_major: Option<u32>,
    /// PostgreSQL major of the target server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_major: Option<u32>,
    /// Set when the target runs a newer major than the source: the drill
    /// rehearsed that upgrade, e.g. `15 → 18`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_rehearsal: Option<String>,
    /// `Ready` (finished), `Passed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The backup restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<DrillBackupInfo>,
    /// Measured recovery point vs objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<ObjectiveResult>,
    /// Measured recovery time vs objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<ObjectiveResult>,
    /// Duration of each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<DrillTimings>,
    /// Per-table comparison of the restored database with the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parity: Vec<TableParity>,
    /// The restored database's blob references against the installation's
    /// object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<DrillBlobs>,
    /// Object-storage URL of the Markdown report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The Job of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the drill started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the verdict was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// The backup a drill restored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillBackupInfo {
    /// Backup name.
    pub name: String,
    /// Object-storage URL of the backup directory.
    pub location: String,
    /// The restore point.
    pub snapshot_time: DateTime<Utc>,
    /// When the backup finished.
    pub completed_at: DateTime<Utc>,
    /// Whether the drill took this backup itself.
    pub fresh: bool,
}

/// What the blob check of a drill found.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillBlobs {
    /// The blob store checked.
    pub store: String,
    /// Blob rows in the restored database.
    pub referenced: u64,
    /// Referenced objects found.
    pub present: u64,
    /// Referenced objects missing from the store.
    pub missing: u64,
    /// The first missing keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_keys: Vec<String>,
    /// Objects whose size differs from the database's.
    pub size_mismatches: u64,
    /// The first of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub size_mismatch_keys: Vec<String>,
    /// Sampled objects fetched and hashed.
    pub sampled: u64,
    /// Sampled objects whose SHA-256 differs from their digest.
    pub corrupt: u64,
    /// The first of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt_keys: Vec<String>,
    /// Objects nobody references (informational).
    pub orphans: u64,
    /// Seconds the check took.
    pub seconds: f64,
}

impl From<verdict::BlobCheck> for DrillBlobs {
    fn from(b: verdict::BlobCheck) -> Self {
        DrillBlobs {
            store: b.store,
            referenced: b.referenced,
            present: b.present,
            missing: b.missing,
            missing_keys: b.missing_keys,
            size_mismatches: b.size_mismatches,
            size_mismatch_keys: b.size_mismatch_keys,
            sampled: b.sampled,
            corrupt: b.corrupt,
            corrupt_keys: b.corrupt_keys,
            orphans: b.orphans,
            seconds: b.seconds,
        }
    }
}

/// A measured time against its objective.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveResult {
    /// Measured value in seconds.
    pub measured_seconds: f64,
    /// Objective in seconds, when one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_seconds: Option<f64>,
    /// Whether the objective was met (absent without an objective).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// Human-readable `measured / objective`, e.g. `14m2s / 15m`.
    pub summary: String,
}

/// Duration of each drill step in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrillTimings {
    /// Taking the fresh backup (absent for an existing backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_seconds: Option<f64>,
    /// Downloading the dump, checking its size and SHA-256, indexing the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    /// Recreating the scratch database and running pg_restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// Carrying the database settings and ANALYZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyze_seconds: Option<f64>,
    /// Counting (or checksumming) the restored tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity_seconds: Option<f64>,
    /// Restore start to a usable database (restored and analyzed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable_seconds: Option<f64>,
    /// Restore start to a verified database (usable, parity passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_seconds: Option<f64>,
    /// Whole drill, first step to verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_seconds: Option<f64>,
}

/// One table's restored numbers against the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableParity {
    /// `schema.table`.
    pub table: String,
    /// Row count recorded in the manifest.
    pub expected: i64,
    /// Row count found after the restore (absent when the table is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<i64>,
    /// Digest recorded in the manifest (checksum mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_checksum: Option<String>,
    /// Digest found after the restore (checksum mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_checksum: Option<String>,
    /// Whether every compared number is equal.
    #[serde(rename = "match")]
    pub matches: bool,
}

/// The status a stored verdict gives a drill; conditions, generation and Job
/// are the controller's to add.
impl From<verdict::Verdict> for RecoveryDrillStatus {
    fn from(v: verdict::Verdict) -> Self {
        RecoveryDrillStatus {
            phase: Some(match v.phase {
                verdict::FinalPhase::Succeeded => DrillPhase::Succeeded,
                verdict::FinalPhase::Failed => DrillPhase::Failed,
            }),
            result: Some(v.result.into()),
            method: Some(match v.mode {
                verdict::DrillMode::Logical => BackupMethod::Logical,
                verdict::DrillMode::Physical => BackupMethod::Physical,
            }),
            reason: v.reason,
            failures: v.failures,
            warnings: v.warnings,
            tampering: v.tampering,
            roles_created: v.roles_created,
            source_major: v.server_majors.map(|m| m.source),
            target_major: v.server_majors.map(|m| m.target),
            upgrade_rehearsal: v
                .server_majors
                .filter(|m| m.is_upgrade())
                .map(|m| format!("{} → {}", m.source, m.target)),
            conditions: Vec::new(),
            observed_generation: None,
            backup: v.backup.map(Into::into),
            rpo: v.rpo.map(Into::into),
            rto: v.rto.map(Into::into),
            timings: v.timings.map(Into::into),
            parity: v.parity.into_iter().map(Into::into).collect(),
            blobs: v.blobs.map(Into::into),
            report: v.report,
            job_name: None,
            started_at: v.started_at,
            completed_at: v.completed_at,
        }
    }
}

impl From<verdict::DrillResult> for DrillResult {
    fn from(r: verdict::DrillResult) -> Self {
        match r {
            verdict::DrillResult::Passed => DrillResult::Passed,
            verdict::DrillResult::Failed => DrillResult::Failed,
        }
    }
}

impl From<verdict::BackupInfo> for DrillBackupInfo {
    fn from(b: verdict::BackupInfo) -> Self {
        DrillBackupInfo {
            name: b.name,
            location: b.location,
            snapshot_time: b.snapshot_time,
            completed_at: b.completed_at,
            fresh: b.fresh,
        }
    }
}

impl From<verdict::ObjectiveResult> for ObjectiveResult {
    fn from(o: verdict::ObjectiveResult) -> Self {
        ObjectiveResult {
            measured_seconds: o.measured_seconds,
            objective_seconds: o.objective_seconds,
            met: o.met,
            summary: o.summary,
        }
    }
}

impl From<verdict::Timings> for DrillTimings {
    fn from(t: verdict::Timings) -> Self {
        DrillTimings {
            backup_seconds: t.backup_seconds,
            download_seconds: t.download_seconds,
            restore_seconds: t.restore_seconds,
            analyze_seconds: t.analyze_seconds,
            parity_seconds: t.parity_seconds,
            usable_seconds: t.usable_seconds,
            verified_seconds: t.verified_seconds,
            total_seconds: t.total_seconds,
        }
    }
}

impl From<verdict::TableParity> for TableParity {
    fn from(p: verdict::TableParity) -> Self {
        TableParity {
            table: p.table,
            expected: p.expected,
            restored: p.restored,
            expected_checksum: p.expected_checksum,
            restored_checksum: p.restored_checksum,
            matches: p.matches,
        }
    }
}
