//! Manifests in a store. The format itself (`manifest.json`, versioned, with
//! golden files) is `artifortress_formats::manifest`; here is where a backup's
//! manifest lives and how it is read back.

use artifortress_formats::FormatError;
pub use artifortress_formats::manifest::{
    DatabaseProperties, DumpInfo, Encryption, ExtensionInfo, MANIFEST_VERSION, Manifest, ParityMethod, RoleInfo,
    SourceIdentity, TableSnapshot, VerifyMode, version_for,
};

use crate::store::{BackupStore, StoreError};

use super::EngineError;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const DUMP_FILE: &str = "dump";
/// An encrypted dump: age over zstd over pg_dump's custom format, named so a
/// person in a disaster knows the two commands that open it.
pub const ENCRYPTED_DUMP_FILE: &str = "dump.zst.age";

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
    load_version(store, backup, None).await
}

/// [`load`] of one version of the manifest (`None`: the current one).
pub async fn load_version(
    store: &dyn BackupStore,
    backup: &str,
    version: Option<&str>,
) -> Result<Manifest, EngineError> {
    let bytes = match store.get_bytes_version(&key(backup), version).await {
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

/// [`load_version`] of the version the `Backup` status pinned, with a
/// tampering warning when the key now holds another version.
pub async fn load_pinned(
    store: &dyn BackupStore,
    backup: &str,
    version: Option<&str>,
) -> Result<(Manifest, Option<String>), EngineError> {
    let manifest = load_version(store, backup, version).await?;
    Ok((manifest, super::pinned::tampering(store, &key(backup), version, "manifest").await?))
}

/// What a store holds: every complete backup with a readable manifest (oldest
/// first), the backups whose manifest could not be read (each with why, so one
/// bad manifest never hides the others), and the backups marked deleted.
#[derive(Debug, Default)]
pub struct Catalog {
    pub manifests: Vec<Manifest>,
    pub unreadable: Vec<(String, String)>,
    pub deleted: std::collections::BTreeSet<String>,
}

impl Catalog {
    /// The newest complete backup.
    pub fn latest(&self) -> Option<&Manifest> {
        self.manifests.last()
    }
}

/// Reads the store's catalog; only a failed listing is an error.
pub async fn list(store: &dyn BackupStore) -> Result<Catalog, EngineError> {
    let mut catalog = Catalog::default();
    for object in store.list("").await? {
        let Some((backup, file)) = object.key.split_once('/') else { continue };
        match file {
            MANIFEST_FILE => match load(store, backup).await {
                Ok(m) => catalog.manifests.push(m),
                Err(e) => catalog.unreadable.push((backup.to_string(), e.to_string())),
            },
            TOMBSTONE_FILE => {
                catalog.deleted.insert(backup.to_string());
            }
            _ => {}
        }
    }
    catalog.manifests.sort_by_key(|m| m.completed_at);
    Ok(catalog)
}

/// Marks a backup whose `Backup` object was deleted with its data kept
/// (`deletionPolicy: Retain`), so catalog resync does not bring it back.
pub const TOMBSTONE_FILE: &str = "deleted.json";

/// Writes the tombstone of a backup that is still stored; a backup whose
/// manifest is gone (pruned, never completed) has nothing to bring back.
pub async fn mark_deleted(
    store: &dyn BackupStore,
    backup: &str,
    deleted_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), EngineError> {
    match store.get_bytes(&key(backup)).await {
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let body = serde_json::json!({"backupName": backup, "deletedAt": deleted_at});
    let bytes = serde_json::to_vec_pretty(&body).expect("a JSON value serializes");
    store.put_bytes(&format!("{backup}/{TOMBSTONE_FILE}"), bytes).await?;
    Ok(())
}

pub async fn unmark_deleted(store: &dyn BackupStore, backup: &str) -> Result<(), EngineError> {
    store.delete(&format!("{backup}/{TOMBSTONE_FILE}")).await?;
    Ok(())
}
