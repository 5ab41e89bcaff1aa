//! `Backup`: one consistent snapshot of an installation's database, stored in
//! object storage with a manifest.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::artifortress::ObjectLockSpec;
use super::common::{ArtifortressRef, BackupMethod, CheckpointMode, Condition, VerifyMode};
use super::job_template::JobTemplate;
use crate::engine::manifest;

/// Take one backup of an installation's database.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "artifortress.io",
    version = "v1alpha1",
    kind = "Backup",
    namespaced,
    status = "BackupStatus",
    shortname = "afbk",
    category = "artifortress",
    doc = "One consistent backup of an Artifortress database: a pg_dump archive and a manifest in object storage.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Method", type_ = "string", json_path = ".spec.method"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(name = "Started", type_ = "date", json_path = ".status.startedAt"),
    printcolumn(name = "Duration", type_ = "string", json_path = ".status.duration"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// The installation to back up.
    pub artifortress_ref: ArtifortressRef,
    /// `Logical` (pg_dump of the database) or `Physical` (a base backup of the
    /// whole cluster; `verify` and `tables` do not apply).
    #[serde(default)]
    pub method: BackupMethod,
    /// Physical only: the checkpoint the base backup starts with.
    #[serde(default)]
    pub checkpoint: CheckpointMode,
    /// What the manifest records per table to prove a restore later: `Counts`
    /// (exact row counts) or `Checksums` (counts plus content digests; slower).
    #[serde(default)]
    pub verify: VerifyMode,
    /// Tables to verify, as `schema.table`. Empty means every user table in every
    /// non-system schema, partitions included. The dump always holds the whole database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// What happens to the stored dump when this object is deleted by hand:
    /// `Retain` (default) keeps it, `Delete` removes it. Retention pruning by a
    /// schedule always deletes both.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Pod settings of this backup's Job, over the installation's `jobTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
    /// Write this backup's objects under S3 Object Lock (a schedule sets it
    /// from its `retention.lockMode` and `maxAge`). With the installation's
    /// `backupStorage.objectLock` too, the stricter mode and the longer period win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockSpec>,
}

/// Fate of stored objects when their resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// Lifecycle of a backup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    /// Accepted, waiting for its Job (e.g. another backup of the installation runs).
    Pending,
    /// The backup Job is running.
    Running,
    /// The dump and its manifest are stored and verified.
    Completed,
    /// The backup failed; `message` says why. Nothing of it is listed as usable.
    Failed,
}

/// Observed state of a backup; once `Completed` it mirrors the stored manifest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// `Pending`, `Running`, `Completed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// `Ready` (True once completed) and `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Why the backup failed, naming the step and what the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Job running (or that ran) the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Object-storage URL of the backup directory (`dump` and `manifest.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the manifest was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Wall time, human-readable (e.g. `6m12s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The instant the snapshot describes: the restore point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<DateTime<Utc>>,
    /// Stored dump size, human-readable (e.g. `1.2 GiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Stored dump size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// SHA-256 of the stored dump, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// On a versioned backup bucket: the S3 version of the manifest when the
    /// backup completed. Restores and drills read exactly this version; a
    /// newer one written over it is reported as tampering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_version_id: Option<String>,
    /// The S3 version of the dump (or base backup) the manifest pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_version_id: Option<String>,
    /// The database the backup was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceIdentity>,
    /// Version of the pg_dump that wrote the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    /// Per-table numbers recorded inside the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableSnapshot>,
    /// Whom the stored backup is encrypted to (absent: not encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BackupEncryption>,
}

/// How a stored backup is encrypted, as its manifest records it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupEncryption {
    /// The age recipients (public keys) it was encrypted to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Encrypted with a passphrase instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passphrase: bool,
}

impl From<manifest::Encryption> for BackupEncryption {
    fn from(e: manifest::Encryption) -> Self {
        BackupEncryption { recipients: e.recipients, passphrase: e.passphrase }
    }
}

impl BackupEncryption {
    /// What the manifest recorded (the format is the only one written).
    pub fn recorded(&self) -> manifest::Encryption {
        manifest::Encryption {
            format: crate::engine::encryption::FORMAT.into(),
            recipients: self.recipients.clone(),
            passphrase: self.passphrase,
        }
    }
}

/// Identity of a PostgreSQL database, used to refuse restoring over the source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceIdentity {
    /// `pg_control_system().system_identifier` as a decimal string (it exceeds
    /// the integer range JSON tools keep exactly).
    pub system_identifier: String,
    /// Database name.
    pub database: String,
    /// Server version, e.g. `15.18`.
    pub server_version: String,
}

/// Numbers recorded for one table inside the backup's snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableSnapshot {
    /// `schema.table`, quoted where PostgreSQL would need quotes.
    pub table: String,
    /// Exact row count.
    pub rows: i64,
    /// Content digest (with `verify: Checksums`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl From<manifest::SourceIdentity> for SourceIdentity {
    fn from(s: manifest::SourceIdentity) -> Self {
        SourceIdentity {
            system_identifier: s.system_identifier,
            database: s.database,
            server_version: s.server_version,
        }
    }
}

impl From<manifest::TableSnapshot> for TableSnapshot {
    fn from(t: manifest::TableSnapshot) -> Self {
        TableSnapshot { table: t.table, rows: t.rows, checksum: t.checksum }
    }
}
