//! Versions a backup pinned when it was written, read back exactly.
//!
//! S3 Object Lock protects versions, not keys: whoever holds write access to
//! the bucket — the operator's own credentials included — can put a newer
//! version over a manifest, a dump or a base backup, or hide it behind a
//! delete marker. So on a versioned bucket a backup records the version of
//! each object it wrote (the manifest pins its data; the `Backup` status pins
//! the manifest), restores read exactly those versions, and a key whose
//! current version is another one is reported as tampering. The pinned
//! version itself is what the checksums in the manifest then prove.

use crate::engine::EngineError;
use crate::store::{BackupStore, StoreError};

/// Prefix of every warning about an object changed after its backup, so a
/// verdict can tell tampering from other warnings.
pub const TAMPERING: &str = "tampering: ";

/// A warning when `key`'s current version is not `pinned` (overwritten, or
/// hidden behind a delete marker); `None` when it still is, or when nothing
/// was pinned (an unversioned bucket, or no version given).
pub async fn tampering(
    store: &dyn BackupStore,
    key: &str,
    pinned: Option<&str>,
    what: &str,
) -> Result<Option<String>, EngineError> {
    let Some(pinned) = pinned else { return Ok(None) };
    let at = store.location(key);
    match store.current_version(key).await {
        Err(StoreError::NotFound { .. }) => Ok(Some(format!(
            "{TAMPERING}{what} {at} was deleted after the backup (a delete marker hides it); its pinned version {pinned} was read"
        ))),
        Ok(Some(current)) if current != pinned => Ok(Some(format!(
            "{TAMPERING}{what} {at} was overwritten after the backup: its current version is {current}, the pinned one {pinned} \
             (that one was read, and checked); someone with write access to the bucket wrote over it"
        ))),
        Ok(_) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The warnings among `warnings` that report tampering.
pub fn tampered(warnings: &[String]) -> Vec<String> {
    warnings.iter().filter(|w| w.starts_with(TAMPERING)).cloned().collect()
}
