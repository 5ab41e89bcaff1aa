//! Missing blob objects looked up in the versions a versioned bucket keeps.
//!
//! Upstream's garbage collection deletes an object with a plain DELETE; on a
//! versioned bucket that only puts a delete marker on top, and the bytes stay
//! as a noncurrent version until the bucket's lifecycle expires them. A
//! missing object of a referenced row is recoverable when a kept version has
//! the row's size and SHA-256 — the digest, not the version's age, decides,
//! since any version could have been written over the key — and lost
//! otherwise. Bringing one back writes that version's bytes as the key's new
//! current version, checked against the digest as they stream; a key that has
//! a current object is never written, and only keys of the restored
//! database's referenced rows are ever looked at.

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::hashing::hash_of;
use super::{Missing, note};
use crate::engine::EngineError;
use crate::engine::progress::Progress;
use crate::engine::verdict::FromVersions;
use crate::store::{BackupStore, ByteStream, StoreError};

/// Missing objects one check looks up at most: each costs a version listing
/// and a download; more than this many missing is already the finding.
const EXAMINED_AT_MOST: usize = 10_000;
/// Lookups at once.
const AT_ONCE: usize = 8;

/// What the versions keep of one missing object.
enum Found {
    /// This version has the row's bytes.
    Recoverable(String),
    Lost,
    /// The key has a current object again (written since the listing).
    Present,
}

/// Looks up each missing object (the first [`EXAMINED_AT_MOST`]; `beyond` more
/// were not even kept by the merge) and, with `bring_back`, makes each
/// recoverable one current again.
pub async fn examine(
    store: &dyn BackupStore,
    missing: &[Missing],
    beyond: u64,
    bring_back: bool,
    progress: &Progress,
) -> Result<FromVersions, EngineError> {
    let examined = &missing[..missing.len().min(EXAMINED_AT_MOST)];
    let mut out = FromVersions { not_examined: (missing.len() - examined.len()) as u64 + beyond, ..Default::default() };
    progress.step(format!("looking up {} missing blob objects in the bucket's versions", examined.len()));
    let mut lookups = std::pin::pin!(
        futures::stream::iter(examined.iter().cloned())
            .map(|m| async move {
                let found = find(store, &m).await?;
                let brought = match (&found, bring_back) {
                    (Found::Recoverable(version), true) => write_back(store, &m, version).await?,
                    _ => false,
                };
                Ok::<_, EngineError>((m, found, brought))
            })
            .buffer_unordered(AT_ONCE)
    );
    while let Some(result) = lookups.next().await {
        let (m, found, brought) = result?;
        match found {
            Found::Recoverable(version) => {
                out.recoverable += 1;
                note(&mut out.recoverable_keys, &format!("{} (version {version})", m.key));
            }
            Found::Lost => {
                out.lost += 1;
                note(&mut out.lost_keys, &m.key);
            }
            Found::Present => {}
        }
        out.brought_back += u64::from(brought);
    }
    Ok(out)
}

async fn find(store: &dyn BackupStore, m: &Missing) -> Result<Found, EngineError> {
    let versions = store.versions(&m.key).await?;
    if versions.iter().any(|v| v.latest && !v.delete_marker) {
        return Ok(Found::Present);
    }
    let length = u64::try_from(m.length).ok();
    for v in versions.iter().filter(|v| !v.delete_marker && Some(v.size) == length) {
        if hash_of(store, &m.key, Some(&v.version_id)).await?.as_deref() == Some(m.digest.as_str()) {
            return Ok(Found::Recoverable(v.version_id.clone()));
        }
    }
    Ok(Found::Lost)
}

/// Writes `version`'s bytes as the key's current object, unless the key has
/// one (then nothing is written). The bytes are hashed as they stream: a
/// mismatch aborts the write, so nothing but the row's exact bytes lands.
async fn write_back(store: &dyn BackupStore, m: &Missing, version: &str) -> Result<bool, EngineError> {
    match store.current_version(&m.key).await {
        Err(StoreError::NotFound { .. }) => {}
        Ok(_) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let mut body = store.get_stream_version(&m.key, Some(version)).await?;
    let (what, digest) = (format!("{} version {version}", m.key), m.digest.clone());
    let checked: ByteStream = Box::pin(async_stream::stream! {
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            if let Ok(bytes) = &chunk {
                hasher.update(bytes);
            }
            yield chunk;
        }
        let found = hex::encode(hasher.finalize());
        if found != digest {
            yield Err(std::io::Error::other(format!("{what} hashes to {found}, not the row's {digest}")));
        }
    });
    store.put_stream_expecting(&m.key, checked, u64::try_from(m.length).unwrap_or(0)).await?;
    Ok(true)
}
