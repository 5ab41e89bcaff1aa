//! The blobs' contents against their digests: objects fetched and hashed,
//! a sample or every one.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::db::{DatabaseUrl, DbError};
use crate::engine::EngineError;
use crate::store::BackupStore;

/// Objects fetched and hashed at once (a sample or every one).
const HASHED_AT_ONCE: usize = 16;

/// Hashes the object of every row (a second pass over the rows, many objects
/// at once); rows whose object is missing were counted by the merge.
pub(super) async fn hash_every_row(
    conn: &mut PgConnection,
    store: &dyn BackupStore,
    restored: &DatabaseUrl,
) -> Result<(u64, Vec<String>), EngineError> {
    let url = restored.to_string();
    let rows =
        sqlx::query_as::<_, (String, String)>("SELECT storage_key, digest::text FROM blobs").fetch(conn).map(|row| {
            row.map_err(|source| {
                DbError::Query { context: "reading the blob rows to hash".into(), url: url.clone(), source }.into()
            })
        });
    hash_rows(store, rows).await
}

/// Hashes the objects of `rows` (key, digest), many at once: how many objects
/// were there to hash, and the keys whose bytes do not match their digest.
pub(super) async fn hash_rows<S>(store: &dyn BackupStore, rows: S) -> Result<(u64, Vec<String>), EngineError>
where
    S: futures::Stream<Item = Result<(String, String), EngineError>>,
{
    let mut hashed = std::pin::pin!(
        rows.map(|row| async move {
            let (key, digest) = row?;
            let found = hash_of(store, &key, None).await?;
            Ok::<_, EngineError>(found.map(|h| (h == digest, key)))
        })
        .buffer_unordered(HASHED_AT_ONCE)
    );
    let (mut count, mut corrupt) = (0, Vec::new());
    while let Some(result) = hashed.next().await {
        if let Some((matches, key)) = result? {
            count += 1;
            if !matches {
                corrupt.push(key);
            }
        }
    }
    Ok((count, corrupt))
}

/// The bare hex SHA-256 of an object's bytes (of one version of it);
/// `None` when it is gone.
pub(super) async fn hash_of(
    store: &dyn BackupStore,
    key: &str,
    version: Option<&str>,
) -> Result<Option<String>, EngineError> {
    let mut body = match store.get_stream_version(key, version).await {
        Ok(body) => body,
        Err(crate::store::StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| EngineError::Io { context: format!("reading blob {key}"), source: e })?;
        hasher.update(&chunk);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}
