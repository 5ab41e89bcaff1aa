//! Where a drill stands after its restore step. In the cluster, restore and
//! verification are separate Jobs; this record travels between them through the
//! store, next to the backup (`<backup>/drills/<drill>.restore.json`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FormatError;
use crate::verdict::ServerMajors;

/// The record format this crate writes and the newest it reads (records
/// written before versions were have none: they are 1).
pub const RECORD_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RestoreRecord {
    #[serde(rename = "recordVersion", default = "version_one")]
    pub record_version: u32,
    pub drill: String,
    #[serde(rename = "drillStartedAt")]
    pub drill_started_at: DateTime<Utc>,
    /// Empty when no backup could be chosen or taken.
    pub backup: String,
    pub fresh: bool,
    #[serde(rename = "backupSeconds", default, skip_serializing_if = "Option::is_none")]
    pub backup_seconds: Option<f64>,
    #[serde(rename = "restoreStartedAt", default, skip_serializing_if = "Option::is_none")]
    pub restore_started_at: Option<DateTime<Utc>>,
    #[serde(rename = "downloadSeconds", default, skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    #[serde(rename = "restoreSeconds", default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// Whether the scratch database was (re)created, and so is ours to drop.
    #[serde(rename = "scratchCreated", default)]
    pub scratch_created: bool,
    /// Failures so far; a record with failures goes straight to the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Machine-readable reason of the first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(rename = "rolesCreated", default, skip_serializing_if = "Vec::is_empty")]
    pub roles_created: Vec<String>,
    #[serde(rename = "analyzeSeconds", default, skip_serializing_if = "Option::is_none")]
    pub analyze_seconds: Option<f64>,
    #[serde(rename = "serverMajors", default, skip_serializing_if = "Option::is_none")]
    pub server_majors: Option<ServerMajors>,
    /// When the restored database became usable (restored and analyzed).
    #[serde(rename = "usableAt", default, skip_serializing_if = "Option::is_none")]
    pub usable_at: Option<DateTime<Utc>>,
    /// The manifest version the restore read (pinned by the `Backup` status),
    /// so the verify step reads the same one.
    #[serde(rename = "manifestVersionId", default, skip_serializing_if = "Option::is_none")]
    pub manifest_version_id: Option<String>,
}

fn version_one() -> u32 {
    1
}

impl RestoreRecord {
    pub fn new(drill: &str, drill_started_at: DateTime<Utc>, backup: &str, fresh: bool) -> Self {
        RestoreRecord {
            record_version: RECORD_VERSION,
            drill: drill.to_string(),
            drill_started_at,
            backup: backup.to_string(),
            fresh,
            backup_seconds: None,
            restore_started_at: None,
            download_seconds: None,
            restore_seconds: None,
            scratch_created: false,
            failures: Vec::new(),
            reason: None,
            warnings: Vec::new(),
            roles_created: Vec::new(),
            manifest_version_id: None,
            analyze_seconds: None,
            server_majors: None,
            usable_at: None,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<RestoreRecord, FormatError> {
        crate::versioned::parse("restore record", bytes, "recordVersion", RECORD_VERSION)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serialises")
    }
}
