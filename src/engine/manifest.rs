//! Manifests in a store. The format itself (`manifest.json`, versioned, with
//! golden files) is `artifortress_formats::manifest`; here is where a backup's
//! manifest lives and how it is read back.

use artifortress_formats::FormatError;
pub use artifortress_formats::manifest::{
    DatabaseProperties, DumpInfo, ExtensionInfo, MANIFEST_VERSION, Manifest, ParityMethod, RoleInfo, SourceIdentity,
    TableSnapshot, VerifyMode,
};

use crate::store::{BackupStore, StoreError};

use super::EngineError;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const DUMP_FILE: &str = "dump";

/// `<backup>/manifest.json`.
pub fn key(backup: &str) -> String {
    format!("{backup}/{MANIFEST_FILE}")
}

/// The stored dump of the backup a manifest describes.
pub fn dump_key(manifest: &Manifest) -> String {
    format!("{}/{}", manifest.backup_name, manifest.dump.file)
}

/// Reads a backup's manifest; a missing one means the backup is incomplete or
/// does not exist. A manifest written in a newer format is refused naming the
/// tool version that reads it.
pub async fn load(store: &dyn BackupStore, backup: &str) -> Result<Manifest, EngineError> {
    let bytes = match store.get_bytes(&key(backup)).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => {
            return Err(EngineError::Config(format!(
                "backup {backup:?} not found in {}: it has no {MANIFEST_FILE} (never written, or incomplete)",
                store.url()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    match Manifest::parse(&bytes) {
        Ok(manifest) => Ok(manifest),
        Err(e @ FormatError::Newer { .. }) => Err(EngineError::Config(format!("backup {backup:?}: {e}"))),
        Err(e) => Err(EngineError::Corrupt { backup: backup.to_string(), detail: e.to_string() }),
    }
}

/// Every complete backup in the store (those with a readable manifest), oldest first.
pub async fn list(store: &dyn BackupStore) -> Result<Vec<Manifest>, EngineError> {
    let mut manifests = Vec::new();
    for object in store.list("").await? {
        if let Some(backup) = object.key.strip_suffix(&format!("/{MANIFEST_FILE}"))
            && !backup.contains('/')
        {
            manifests.push(load(store, backup).await?);
        }
    }
    manifests.sort_by_key(|m| m.completed_at);
    Ok(manifests)
}
