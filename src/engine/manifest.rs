//! `manifest.json`: what a backup is, written last so that its presence means
//! the dump beside it is complete.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::backup::{SourceIdentity, TableSnapshot};
use crate::api::common::VerifyMode;
use crate::store::BackupStore;

use super::EngineError;

/// Version of the manifest format; readers refuse versions they do not know.
pub const MANIFEST_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const DUMP_FILE: &str = "dump";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub manifest_version: u32,
    pub backup_name: String,
    pub source: SourceIdentity,
    /// The instant the snapshot describes (the restore point).
    pub snapshot_time: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub dump: DumpInfo,
    /// What `tables` holds: counts, or counts and checksums.
    pub verify: VerifyMode,
    /// Per-table numbers taken inside the snapshot the dump was made from.
    pub tables: Vec<TableSnapshot>,
    pub pg_dump_version: String,
    /// `artifortress-operator <version>` that wrote the backup.
    pub tool_version: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DumpInfo {
    /// Object key relative to the backup directory.
    pub file: String,
    /// `custom` (pg_dump -Fc), uncompressed by pg_dump.
    pub format: String,
    /// Compression of the stored object: `zstd`.
    pub compression: String,
    /// Stored (compressed) size and its SHA-256, checked before any restore.
    pub size_bytes: u64,
    pub sha256: String,
    /// Size of the archive pg_restore reads (decompressed).
    pub archive_bytes: u64,
}

impl Manifest {
    pub fn key(backup: &str) -> String {
        format!("{backup}/{MANIFEST_FILE}")
    }

    pub fn dump_key(&self) -> String {
        format!("{}/{}", self.backup_name, self.dump.file)
    }

    /// Reads a backup's manifest; a missing one means the backup is incomplete
    /// or does not exist.
    pub async fn load(store: &dyn BackupStore, backup: &str) -> Result<Manifest, EngineError> {
        let bytes = match store.get_bytes(&Manifest::key(backup)).await {
            Ok(bytes) => bytes,
            Err(crate::store::StoreError::NotFound { .. }) => {
                return Err(EngineError::Config(format!(
                    "backup {backup:?} not found in {}: it has no {MANIFEST_FILE} (never written, or incomplete)",
                    store.url()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
            backup: backup.to_string(),
            detail: format!("{MANIFEST_FILE} is not valid: {e}"),
        })?;
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(EngineError::Config(format!(
                "backup {backup:?} has manifest version {}, this operator reads version {MANIFEST_VERSION}; use a matching operator version",
                manifest.manifest_version
            )));
        }
        Ok(manifest)
    }

    /// Every complete backup in the store (those with a readable manifest), oldest first.
    pub async fn list(store: &dyn BackupStore) -> Result<Vec<Manifest>, EngineError> {
        let mut manifests = Vec::new();
        for object in store.list("").await? {
            if let Some(backup) = object.key.strip_suffix(&format!("/{MANIFEST_FILE}"))
                && !backup.contains('/')
            {
                manifests.push(Manifest::load(store, backup).await?);
            }
        }
        manifests.sort_by_key(|m| m.completed_at);
        Ok(manifests)
    }
}
