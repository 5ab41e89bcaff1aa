//! The verdict of a recovery drill, stored next to the backup it restored
//! (`<backup>/drills/<drill>.json`) by the step that concluded the drill, and
//! mirrored into `RecoveryDrill.status` by the controller.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FormatError;

/// The verdict format this crate writes and the newest it reads. Verdicts
/// stored before versions were written have no `verdictVersion`: they are 1.
pub const VERDICT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Verdict {
    #[serde(rename = "verdictVersion", default = "version_one")]
    pub verdict_version: u32,
    /// `Succeeded` or `Failed`: the phase a finished drill ends in (follows `result`).
    pub phase: FinalPhase,
    pub result: DrillResult,
    /// Machine-readable reason of the first failure (`TargetNotScratch`,
    /// `ParityMismatch`, …); absent for a passed drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every reason the drill failed, each naming the step and the numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// What did not fail the drill but a person should know (e.g. a database
    /// setting that could not be carried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The warnings that report a backup object changed after its backup (a
    /// newer version over a pinned key, or a delete marker hiding it): the
    /// pinned version was restored, but someone with write access to the
    /// bucket wrote to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampering: Vec<String>,
    /// Roles the restore created on the target (`NOLOGIN`), because the backup
    /// needs them and the target lacked them.
    #[serde(rename = "rolesCreated", default, skip_serializing_if = "Vec::is_empty")]
    pub roles_created: Vec<String>,
    /// The PostgreSQL majors of the backup's source and of the target (present
    /// once a restore ran); a newer target means the drill rehearsed an upgrade.
    #[serde(rename = "serverMajors", default, skip_serializing_if = "Option::is_none")]
    pub server_majors: Option<ServerMajors>,
    /// Which recovery time `rto` judges (absent in the first verdicts: `verified`).
    #[serde(rename = "rtoBasis", default, skip_serializing_if = "Option::is_none")]
    pub rto_basis: Option<RtoBasis>,
    /// The backup restored (absent when none could be chosen or taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<ObjectiveResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<ObjectiveResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// One row per table the manifest recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parity: Vec<TableParity>,
    /// The restored database's blob rows checked against the blob store
    /// (absent when no blob store was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobCheck>,
    /// What the checks of the application in the database found (absent
    /// when none ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<ApplicationCheck>,
    /// Location of the Markdown report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(rename = "startedAt", default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(rename = "completedAt", default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// How the drill restored (absent in verdicts of logical drills).
    #[serde(default, skip_serializing_if = "DrillMode::is_logical")]
    pub mode: DrillMode,
}

/// `Logical`: pg_restore of a dump into a scratch database. `Physical`: a base
/// backup and WAL replayed into a scratch instance to a point in time.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DrillMode {
    #[default]
    Logical,
    Physical,
}

impl DrillMode {
    fn is_logical(&self) -> bool {
        *self == DrillMode::Logical
    }
}

fn version_one() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrillResult {
    #[serde(rename = "Passed")]
    Passed,
    #[serde(rename = "Failed")]
    Failed,
}

/// The PostgreSQL majors a restore went from and to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerMajors {
    pub source: u32,
    pub target: u32,
}

impl ServerMajors {
    /// Restoring into a newer major rehearses the upgrade to it.
    pub fn is_upgrade(&self) -> bool {
        self.target > self.source
    }
}

/// When a restored database counts as recovered, for the RTO objective.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtoBasis {
    /// Restored and analyzed: queries can run with planner statistics.
    #[default]
    #[serde(rename = "usable")]
    Usable,
    /// Restored, analyzed and proven equal to the backup (parity).
    #[serde(rename = "verified")]
    Verified,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalPhase {
    #[serde(rename = "Succeeded")]
    Succeeded,
    #[serde(rename = "Failed")]
    Failed,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BackupInfo {
    pub name: String,
    /// URL of the backup directory.
    pub location: String,
    /// The restore point.
    #[serde(rename = "snapshotTime")]
    pub snapshot_time: DateTime<Utc>,
    #[serde(rename = "completedAt")]
    pub completed_at: DateTime<Utc>,
    /// Whether the drill took this backup itself.
    pub fresh: bool,
}

/// A measured time against its objective.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ObjectiveResult {
    #[serde(rename = "measuredSeconds")]
    pub measured_seconds: f64,
    #[serde(rename = "objectiveSeconds", default, skip_serializing_if = "Option::is_none")]
    pub objective_seconds: Option<f64>,
    /// Absent without an objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// `measured / objective`, e.g. `14m2s / 15m`.
    pub summary: String,
}

/// Duration of each drill step in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Timings {
    #[serde(rename = "backupSeconds", default, skip_serializing_if = "Option::is_none")]
    pub backup_seconds: Option<f64>,
    /// Download, size and SHA-256 check, archive indexing.
    #[serde(rename = "downloadSeconds", default, skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    /// Recreating the scratch database and pg_restore.
    #[serde(rename = "restoreSeconds", default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// `ANALYZE` of the restored database (and carrying its settings).
    #[serde(rename = "analyzeSeconds", default, skip_serializing_if = "Option::is_none")]
    pub analyze_seconds: Option<f64>,
    #[serde(rename = "paritySeconds", default, skip_serializing_if = "Option::is_none")]
    pub parity_seconds: Option<f64>,
    /// Restore start to a usable database (restored and analyzed).
    #[serde(rename = "usableSeconds", default, skip_serializing_if = "Option::is_none")]
    pub usable_seconds: Option<f64>,
    /// Restore start to a verified database (usable, and parity passed).
    #[serde(rename = "verifiedSeconds", default, skip_serializing_if = "Option::is_none")]
    pub verified_seconds: Option<f64>,
    #[serde(rename = "totalSeconds", default, skip_serializing_if = "Option::is_none")]
    pub total_seconds: Option<f64>,
}

/// The blob references of a restored database against the objects in the blob store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct BlobCheck {
    /// The blob store (URL without credentials).
    pub store: String,
    /// `blobs` rows in the restored database.
    pub referenced: u64,
    /// Rows whose object was found in the store.
    pub present: u64,
    /// Rows whose object is not in the store, and the first of their keys.
    pub missing: u64,
    #[serde(rename = "missingKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub missing_keys: Vec<String>,
    /// Objects whose size differs from the row's, and the first of them.
    #[serde(rename = "sizeMismatches")]
    pub size_mismatches: u64,
    #[serde(rename = "sizeMismatchKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub size_mismatch_keys: Vec<String>,
    /// Objects without a row (informational), and the first of them.
    pub orphans: u64,
    #[serde(rename = "orphanKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub orphan_keys: Vec<String>,
    /// Blobs fetched and hashed, and those whose SHA-256 differs from their digest.
    pub sampled: u64,
    pub corrupt: u64,
    #[serde(rename = "corruptKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt_keys: Vec<String>,
    pub seconds: f64,
    /// Every present blob was hashed, not a sample.
    #[serde(rename = "allDigestsVerified", default, skip_serializing_if = "is_false")]
    pub all_digests_verified: bool,
    /// The rows by what references them (absent in verdicts of older versions).
    #[serde(rename = "rowClasses", default, skip_serializing_if = "Option::is_none")]
    pub row_classes: Option<BlobClasses>,
    /// The missing objects by the class of their row.
    #[serde(rename = "missingClasses", default, skip_serializing_if = "Option::is_none")]
    pub missing_classes: Option<BlobClasses>,
    /// The missing objects of referenced rows, by what the live database says of them.
    #[serde(rename = "missingSince", default, skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<MissingSince>,
    /// The missing objects of referenced rows, by what the bucket's versions keep of them.
    #[serde(rename = "fromVersions", default, skip_serializing_if = "Option::is_none")]
    pub from_versions: Option<FromVersions>,
    /// The objects without a row, by kind.
    #[serde(rename = "withoutRow", default, skip_serializing_if = "Option::is_none")]
    pub without_row: Option<ObjectsWithoutRow>,
    /// Multipart uploads started and not finished (not objects yet).
    #[serde(rename = "multipartInProgress", default, skip_serializing_if = "is_zero")]
    pub multipart_in_progress: u64,
    /// References of the database itself to blob rows it lacks (artifact entries, manifests).
    #[serde(rename = "danglingReferences", default, skip_serializing_if = "is_zero")]
    pub dangling_references: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Blob rows (or their missing objects) by what references them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlobClasses {
    /// Referenced by an artifact entry or a manifest.
    pub referenced: u64,
    /// Referenced only by a committed upload session (downloadable through it).
    #[serde(rename = "committedOnly")]
    pub committed_only: u64,
    /// Referenced by nothing: what the application's garbage collection may delete.
    pub unreferenced: u64,
}

/// Missing objects of referenced rows, compared with the live database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MissingSince {
    /// No longer referenced live: deleted since the restore point (e.g. by garbage collection).
    #[serde(rename = "deletedSinceSnapshot")]
    pub deleted_since_snapshot: u64,
    /// Still referenced live: missing for the live installation too, and the first of their keys.
    #[serde(rename = "missingLive")]
    pub missing_live: u64,
    #[serde(rename = "missingLiveKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub missing_live_keys: Vec<String>,
    /// Not compared (no live database was given, or too many to compare).
    pub unknown: u64,
}

/// Missing objects of referenced rows, looked up in the versions a versioned
/// blob bucket keeps (a delete marker or a newer version hides an object the
/// garbage collection deleted; its bytes stay until the noncurrent versions expire).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct FromVersions {
    /// A kept version has the row's size and SHA-256: the object can come
    /// back. Keys are named with that version (`key (version v)`).
    pub recoverable: u64,
    #[serde(rename = "recoverableKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub recoverable_keys: Vec<String>,
    /// No kept version has the row's bytes (never versioned, or expired).
    pub lost: u64,
    #[serde(rename = "lostKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub lost_keys: Vec<String>,
    /// Not looked up (more missing objects than one check examines).
    #[serde(rename = "notExamined", default, skip_serializing_if = "is_zero")]
    pub not_examined: u64,
    /// Recoverable objects made current again by this run (`restore --restore-blobs`).
    #[serde(rename = "broughtBack", default, skip_serializing_if = "is_zero")]
    pub brought_back: u64,
    /// Why the versions could not be read (a drill reports without them;
    /// e.g. credentials without `s3:ListBucketVersions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Objects in the blob store that no blob row names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectsWithoutRow {
    /// Under the staging key of an upload still open (initiated, uploading, waiting for commit).
    #[serde(rename = "inFlight")]
    pub in_flight: u64,
    #[serde(rename = "inFlightBytes")]
    pub in_flight_bytes: u64,
    /// Left by aborted, duplicate or abandoned uploads (the application never collects them).
    pub leftovers: u64,
    #[serde(rename = "leftoverBytes")]
    pub leftover_bytes: u64,
}

/// What the checks of the application in the database found beyond parity
/// (for Artifortress: its schema level, what restoring would take back).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplicationCheck {
    /// The application, e.g. `artifortress`.
    pub name: String,
    /// The schema level the restored database records.
    #[serde(rename = "schemaLevel", default, skip_serializing_if = "Option::is_none")]
    pub schema_level: Option<String>,
    /// One sentence each: the schema's shape, what was compared with the live database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What restoring this backup would undo compared with the live database.
    #[serde(rename = "takeBack", default, skip_serializing_if = "Vec::is_empty")]
    pub take_back: Vec<TakeBackItem>,
}

/// One decision made after the restore point that a restore would undo.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TakeBackItem {
    /// e.g. `tokenRevocation`, `legalHold`, `gcRunIncomplete`.
    pub kind: String,
    /// The tenant (slug or id).
    pub tenant: String,
    /// The object's id (token, version, GC run).
    pub id: String,
    /// What a person reads: who did what, when.
    pub detail: String,
}

/// One table's restored numbers against the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableParity {
    pub table: String,
    /// Row count recorded in the manifest.
    pub expected: i64,
    /// Absent when the table is missing after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<i64>,
    #[serde(rename = "expectedChecksum", default, skip_serializing_if = "Option::is_none")]
    pub expected_checksum: Option<String>,
    #[serde(rename = "restoredChecksum", default, skip_serializing_if = "Option::is_none")]
    pub restored_checksum: Option<String>,
    #[serde(rename = "match")]
    pub matches: bool,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.result == DrillResult::Passed
    }

    /// Parses a stored verdict: any version up to [`VERDICT_VERSION`], fields it
    /// does not know ignored.
    pub fn parse(bytes: &[u8]) -> Result<Verdict, FormatError> {
        crate::versioned::parse("drill verdict", bytes, "verdictVersion", VERDICT_VERSION)
    }

    /// The stored form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a verdict serialises")
    }
}
