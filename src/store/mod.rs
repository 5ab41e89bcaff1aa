//! Where backups live: one trait, an `s3://` and a `file://` implementation.
//!
//! Keys are relative (`<backup>/dump`, `<backup>/manifest.json`); a store URL
//! names the bucket and prefix (or directory) they live under. An object becomes
//! visible only once completely written — a multipart upload is completed, a
//! temporary file renamed — so a failed write never looks like a backup.

mod file;
mod s3;

pub use file::FileStore;
pub use s3::{ObjectLock, S3Store, StaticCredentials, UploadTuning, in_flight_parts, part_size_for, sdk_config};

/// Like [`open`], with a static access key pair for `s3://` stores instead of
/// the AWS chain (e.g. the blob bucket's own keys beside the backup store's).
pub async fn open_with_credentials(
    url: &str,
    credentials: Option<StaticCredentials>,
) -> Result<Box<dyn BackupStore>, StoreError> {
    match (credentials, url::Url::parse(url)) {
        (Some(credentials), Ok(parsed)) if parsed.scheme() == "s3" => {
            Ok(Box::new(S3Store::with_credentials(&parsed, Some(credentials)).await?))
        }
        _ => open(url).await,
    }
}

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

/// A body streamed into a store. An `Err` item aborts the write: nothing is left behind.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Objects in key order (byte order), page by page.
pub type ObjectStream<'a> = Pin<Box<dyn Stream<Item = Result<ObjectInfo, StoreError>> + Send + 'a>>;

/// Whether a bucket keeps the versions of overwritten and deleted objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Versioning {
    Enabled {
        object_lock: bool,
    },
    /// Never enabled, or suspended: a deleted object is gone.
    Off {
        suspended: bool,
    },
    /// The store cannot say (e.g. an S3 implementation without versioning support).
    Unknown(String),
}

/// One kept version of a key on a versioned bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub version_id: String,
    pub size: u64,
    /// A delete marker: the key looks deleted while this is its newest version.
    pub delete_marker: bool,
    /// The key's newest version (an object, or a delete marker).
    pub latest: bool,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// Errors of the stores; messages name the store (never with credentials) and key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{key} not found in {store}")]
    NotFound { store: String, key: String },
    #[error("{op} {key} in {store}: {message}")]
    Io { store: String, op: &'static str, key: String, message: String },
    #[error("writing {key} to {store} was aborted: {cause}")]
    Aborted { store: String, key: String, cause: String },
}

/// Bound on the objects read whole (manifests, verdicts, records).
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When the object was written, where the store says.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A place to keep backups.
#[async_trait::async_trait]
pub trait BackupStore: Send + Sync {
    /// The store's URL, safe to log.
    fn url(&self) -> String;

    /// A URL naming one object (or, with a trailing `/`, a directory) of the
    /// store, e.g. `s3://bucket/prefix/backup-1/dump`, for status and reports.
    fn location(&self, key: &str) -> String;

    /// Writes `body` to `key`, making it visible only when the stream ended without
    /// error. Memory stays bounded whatever the body's size. Returns bytes written.
    async fn put_stream(&self, key: &str, body: ByteStream) -> Result<u64, StoreError>;

    /// Like `put_stream`, for a body of about `expected` bytes (S3 sizes its
    /// parts from it, so that twice as much still fits).
    async fn put_stream_expecting(&self, key: &str, body: ByteStream, expected: u64) -> Result<u64, StoreError> {
        let _ = expected;
        self.put_stream(key, body).await
    }

    /// Reads `key` as a stream of chunks.
    async fn get_stream(&self, key: &str) -> Result<ByteStream, StoreError>;

    /// Reads exactly `version` of `key` (on a versioned bucket), else the current object.
    async fn get_stream_version(&self, key: &str, version: Option<&str>) -> Result<ByteStream, StoreError> {
        let _ = version;
        self.get_stream(key).await
    }

    /// Until when `key`'s current version is locked against deletion (S3
    /// Object Lock retention, when in the future).
    async fn locked_until(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let _ = key;
        Ok(None)
    }

    /// The version id of `key`'s current object, on a versioned bucket.
    async fn current_version(&self, key: &str) -> Result<Option<String>, StoreError> {
        let _ = key;
        Ok(None)
    }

    /// Every version a versioned bucket keeps of exactly `key`, delete markers
    /// included, newest first; none where nothing is versioned.
    async fn versions(&self, key: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        let _ = key;
        Ok(Vec::new())
    }

    /// Every complete object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Every complete object under `prefix` in key order, streamed, so that a
    /// caller can walk millions of keys in bounded memory. The default collects
    /// [`list`](Self::list); stores that page override it.
    fn list_stream<'a>(&'a self, prefix: &'a str) -> ObjectStream<'a> {
        Box::pin(async_stream::try_stream! {
            for object in self.list(prefix).await? {
                yield object;
            }
        })
    }

    /// The objects under `prefix` whose keys are after `after` (exclusive) and
    /// up to `up_to` (inclusive), in key order: one slice of a listing, so that
    /// slices can be listed concurrently. The default filters
    /// [`list_stream`](Self::list_stream); S3 starts each slice where it begins.
    fn list_range<'a>(&'a self, prefix: &'a str, after: Option<&'a str>, up_to: Option<&'a str>) -> ObjectStream<'a> {
        use futures::StreamExt;
        Box::pin(
            self.list_stream(prefix)
                .filter(move |o| {
                    futures::future::ready(o.as_ref().map_or(true, |o| after.is_none_or(|a| o.key.as_str() > a)))
                })
                .take_while(move |o| {
                    futures::future::ready(o.as_ref().map_or(true, |o| up_to.is_none_or(|u| o.key.as_str() <= u)))
                }),
        )
    }

    /// The bucket's versioning (and object lock) state.
    async fn versioning(&self) -> Result<Versioning, StoreError> {
        Ok(Versioning::Off { suspended: false })
    }

    /// How many days a lifecycle rule of the bucket keeps noncurrent versions
    /// (the shortest of the rules covering the whole bucket); `None`: no rule,
    /// they are kept until deleted by hand.
    async fn noncurrent_version_expiry(&self) -> Result<Option<u32>, StoreError> {
        Ok(None)
    }

    /// Multipart uploads under `prefix` that were started and neither completed
    /// nor aborted (not objects yet; S3's ListMultipartUploads): their keys.
    /// Stores without multipart uploads have none.
    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let _ = prefix;
        Ok(Vec::new())
    }

    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Refuses a store asked to lock what it writes (S3 Object Lock) whose
    /// bucket cannot; writers call it before writing anything.
    async fn require_object_lock(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Checks that the store is reachable with the configured credentials
    /// (S3: HeadBucket; file: the directory exists).
    async fn check(&self) -> Result<(), StoreError>;

    /// Removes unfinished writes under `prefix` left by a writer that died or lost
    /// the store mid-write (a multipart upload nobody could abort, a temporary
    /// file) and started more than `older_than` ago (`Duration::ZERO`: any).
    /// Another writer may be busy elsewhere in the store: callers sweep only
    /// their own keys, or writes too old to belong to a live writer. Returns
    /// how many were removed.
    async fn clean_incomplete(&self, prefix: &str, older_than: std::time::Duration) -> Result<usize, StoreError>;

    /// Writes a small object in one go.
    async fn put_bytes(&self, key: &str, data: Vec<u8>) -> Result<u64, StoreError> {
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(Bytes::from(data)) }));
        self.put_stream(key, body).await
    }

    /// Reads a small object (a manifest, a verdict) whole. Anything over
    /// [`MAX_DOCUMENT_BYTES`] is refused: whoever can write to the bucket must
    /// not be able to make the operator allocate without bound.
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.get_bytes_version(key, None).await
    }

    /// [`get_bytes`](Self::get_bytes) of one version of the key (`None`: the current one).
    async fn get_bytes_version(&self, key: &str, version: Option<&str>) -> Result<Vec<u8>, StoreError> {
        use futures::TryStreamExt;
        let mut stream = self.get_stream_version(key, version).await?;
        let mut out = Vec::new();
        let io = |message: String| StoreError::Io { store: self.url(), op: "reading", key: key.to_string(), message };
        while let Some(chunk) = stream.try_next().await.map_err(|e| io(e.to_string()))? {
            if out.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(io(format!(
                    "larger than {MAX_DOCUMENT_BYTES} bytes, which no document the operator writes is"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Opens the store a URL names: `file:///path` or
/// `s3://bucket/prefix?endpoint=…&region=…&path_style=true`.
pub async fn open(url: &str) -> Result<Box<dyn BackupStore>, StoreError> {
    let parsed = url::Url::parse(url).map_err(|e| StoreError::InvalidUrl {
        url: "<unparseable>".to_string(),
        reason: format!("{e}; expected file:///path or s3://bucket/prefix"),
    })?;
    match parsed.scheme() {
        "file" => Ok(Box::new(FileStore::from_url(&parsed)?)),
        "s3" => Ok(Box::new(S3Store::from_url(&parsed).await?)),
        other => Err(StoreError::InvalidUrl {
            url: crate::redact::redact_url(&parsed),
            reason: format!("unsupported scheme {other:?}; expected file:///path or s3://bucket/prefix"),
        }),
    }
}
