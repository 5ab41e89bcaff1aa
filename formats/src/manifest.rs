//! `manifest.json`: what a backup is. Written last, so its presence means the
//! dump beside it is complete. `docs/backup-format.md` documents every field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FormatError;

/// The newest manifest format this crate reads. Version 2 is written only
/// for encrypted backups (it adds `encryption`), so a reader of version 1
/// refuses them instead of taking an age file for a zstd stream; unencrypted
/// backups keep version 1.
pub const MANIFEST_VERSION: u32 = 2;

/// The version a manifest is written in.
pub fn version_for(encryption: Option<&Encryption>) -> u32 {
    if encryption.is_some() { 2 } else { 1 }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Manifest {
    #[serde(rename = "manifestVersion")]
    pub manifest_version: u32,
    #[serde(rename = "backupName")]
    pub backup_name: String,
    pub source: SourceIdentity,
    /// The instant the snapshot describes (the restore point).
    #[serde(rename = "snapshotTime")]
    pub snapshot_time: DateTime<Utc>,
    #[serde(rename = "startedAt")]
    pub started_at: DateTime<Utc>,
    #[serde(rename = "completedAt")]
    pub completed_at: DateTime<Utc>,
    pub dump: DumpInfo,
    /// What `tables` holds: counts, or counts and checksums.
    pub verify: VerifyMode,
    /// Per-table numbers taken inside the snapshot the dump was made from.
    pub tables: Vec<TableSnapshot>,
    #[serde(rename = "pgDumpVersion")]
    pub pg_dump_version: String,
    /// `artifortress-operator <version>` that wrote the backup.
    #[serde(rename = "toolVersion")]
    pub tool_version: String,
    /// How `tables` was measured (absent in the first manifests: `Inclusive`).
    #[serde(rename = "parityMethod", default, skip_serializing_if = "ParityMethod::is_inclusive")]
    pub parity_method: ParityMethod,
    /// The source database's properties a usable restore needs (absent in the first manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseProperties>,
    /// Roles the database's objects name: owners, grantees, policy roles, and
    /// the roles they are members of. No passwords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleInfo>,
    /// Extensions installed in the database; a restore needs each on the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionInfo>,
    /// Labels the backup was taken with (e.g. the schedule it belongs to), so
    /// a catalog resync can recreate its `Backup` as it was.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How the stored objects are encrypted (absent: they are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// Client-side encryption of a backup's stored objects: who can open them.
/// Public keys only; never a secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// `age` (age-encryption.org/v1), applied over the compressed bytes.
    pub format: String,
    /// The X25519 recipients (`age1…`) every object was encrypted to; any one
    /// of their identities opens them. Empty with a passphrase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Encrypted with a passphrase (age's scrypt recipient) instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passphrase: bool,
}

/// How the per-table numbers were measured; a restore measures the same way.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParityMethod {
    /// The first manifests: `count(*)` of a table including its inheritance
    /// children, checksums of `row::text` (physical column order, the session's
    /// output settings).
    #[default]
    #[serde(rename = "inclusive")]
    Inclusive,
    /// The rows stored in each table itself (`FROM ONLY`), so every row counts
    /// once, where it lives; checksums over the columns in name order with the
    /// output settings pinned, so column order and session settings cannot differ.
    #[serde(rename = "stored")]
    Stored,
}

impl ParityMethod {
    fn is_inclusive(&self) -> bool {
        *self == ParityMethod::Inclusive
    }
}

/// What `CREATE DATABASE` and `ALTER DATABASE … SET` need to recreate the
/// database as it was.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DatabaseProperties {
    /// e.g. `UTF8`.
    pub encoding: String,
    /// `LC_COLLATE` and `LC_CTYPE`.
    pub collate: String,
    pub ctype: String,
    /// `libc`, `icu` or `builtin`.
    #[serde(rename = "localeProvider")]
    pub locale_provider: String,
    /// The ICU or builtin locale (PostgreSQL 15+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// ICU collation rules (PostgreSQL 16+).
    #[serde(rename = "icuRules", default, skip_serializing_if = "Option::is_none")]
    pub icu_rules: Option<String>,
    /// Database-level settings (`ALTER DATABASE … SET`) as `name=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// The role that owned the database (absent in manifests that predate it):
    /// the restored database gets the same owner, so that the application's own
    /// migrations, run as that role, still apply to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A role the database needs on the server it is restored to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    /// Whether it inherits the privileges of the roles it is a member of.
    pub inherit: bool,
    /// Roles it is a member of (among the captured ones).
    #[serde(rename = "memberOf", default, skip_serializing_if = "Vec::is_empty")]
    pub member_of: Vec<String>,
    /// Why it is needed: `owner`, `grantee`, `policy`, `group`.
    #[serde(rename = "usedAs", default, skip_serializing_if = "Vec::is_empty")]
    pub used_as: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ExtensionInfo {
    pub name: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DumpInfo {
    /// Object key relative to the backup directory.
    pub file: String,
    /// `custom` (pg_dump -Fc), uncompressed by pg_dump.
    pub format: String,
    /// Compression of the stored object: `zstd`.
    pub compression: String,
    /// Stored (compressed) size and its SHA-256, checked before any restore.
    #[serde(rename = "sizeBytes")]
    pub size_bytes: u64,
    pub sha256: String,
    /// Size of the archive pg_restore reads (decompressed).
    #[serde(rename = "archiveBytes")]
    pub archive_bytes: u64,
    /// The dump's version id on a versioned bucket: restores read exactly
    /// this version, whatever was written over the key since.
    #[serde(rename = "versionId", default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// Identity of a PostgreSQL database, used to refuse restoring over the source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SourceIdentity {
    /// `pg_control_system().system_identifier` as a decimal string (it exceeds
    /// the integers JSON tools keep exactly).
    #[serde(rename = "systemIdentifier")]
    pub system_identifier: String,
    pub database: String,
    /// e.g. `15.18`.
    #[serde(rename = "serverVersion")]
    pub server_version: String,
}

/// What a backup records about each table so that a restore can be proven equal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// Exact row counts, taken inside the backup's snapshot.
    #[default]
    #[serde(rename = "Counts")]
    Counts,
    /// Row counts plus an order-independent digest of every row's content.
    #[serde(rename = "Checksums")]
    Checksums,
}

/// Numbers recorded for one table inside the backup's snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableSnapshot {
    /// `schema.table`, quoted where PostgreSQL would need quotes.
    pub table: String,
    /// Exact row count.
    pub rows: i64,
    /// Content digest (with `Checksums`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    /// Parses a stored manifest: any version up to [`MANIFEST_VERSION`], fields
    /// it does not know ignored.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, FormatError> {
        crate::versioned::parse("manifest", bytes, "manifestVersion", MANIFEST_VERSION)
    }

    /// The stored form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serialises")
    }
}
