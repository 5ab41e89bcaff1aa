//! `s3://bucket/prefix?endpoint=…&region=…&path_style=true` through aws-sdk-s3.
//!
//! Credentials come from the standard AWS chain (environment, profile, web
//! identity), never from the URL. Large objects go up as multipart uploads:
//!
//! - one part size for the whole upload, chosen from the expected size so twice
//!   that fits in S3's 10 000 parts ([`part_size_for`]);
//! - memory: at most `(in_flight + 2) × part size` on top of the process's own
//!   ~40 MiB: the parts uploading and the one being read — a finished part's
//!   buffer is refilled, not freed, so what the allocator keeps of freed buffers
//!   does not add up (measured: 3 × 20 MiB for 2 in flight; before buffers were
//!   reused, 4 to 5 × 20 MiB depending on scheduling) — and one part of margin; `in_flight` at most
//!   2 and lowered to fit the memory budget (by default the container's memory
//!   limit less 96 MiB); an upload whose part cannot fit twice is refused before
//!   it starts, naming the limit it needs ([`in_flight_parts`]);
//! - each part attempt has a timeout of 30 s plus the part at 1 MiB/s (a 21 MiB
//!   part: 51 s), so a large part on an ordinary link is not cut off, while a
//!   stalled one is; a part is tried up to 5 times on timeouts, connection
//!   errors, 5xx and throttling, with backoff;
//! - any failure aborts the upload.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream as AwsByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use backon::{ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;

use super::{BackupStore, ByteStream, ObjectInfo, StoreError};

/// How long connecting to the store may take, for every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

mod listing;
mod lock;
mod tuning;
mod versions;
pub use lock::ObjectLock;
use tuning::MAX_PARTS;
pub use tuning::{UploadTuning, in_flight_parts, part_size_for};

/// An access key pair (never logged: no Debug).
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Key prefix without leading or trailing slash; may be empty.
    prefix: String,
    /// The URL as given, for messages (it never holds credentials).
    display: String,
    tuning: UploadTuning,
    /// Retention of every object written (`object_lock` and `retain` in the URL).
    lock: Option<ObjectLock>,
}

/// The SDK configuration stores are built from: the HTTPS client (TLS roots,
/// connection pool) and the credential chain. Building it is the expensive part
/// of opening a store; a long-lived caller (the operator) builds it once and
/// opens every store with [`S3Store::with_config`].
pub async fn sdk_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(Duration::from_secs(30))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts).load().await
}

impl S3Store {
    pub async fn from_url(url: &url::Url) -> Result<Self, StoreError> {
        Self::with_credentials(url, None).await
    }

    /// Like `from_url`, with a static access key pair instead of the AWS chain
    /// (the operator reads it from the installation's Secret).
    pub async fn with_credentials(url: &url::Url, credentials: Option<StaticCredentials>) -> Result<Self, StoreError> {
        Self::with_config(url, credentials, &sdk_config().await)
    }

    /// Like `with_credentials`, sharing an SDK configuration built once.
    pub fn with_config(
        url: &url::Url,
        credentials: Option<StaticCredentials>,
        base: &aws_config::SdkConfig,
    ) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl { url: crate::redact::redact_url(url), reason };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials must not be part of the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            ));
        }
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("missing bucket: s3://bucket/prefix".into()))?;
        let mut endpoint = None;
        let mut region = std::env::var("AWS_REGION").ok().unwrap_or_else(|| "us-east-1".to_string());
        let mut path_style = false;
        let (mut lock_mode, mut retain) = (None, None);
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "endpoint" => endpoint = Some(v.into_owned()),
                "region" => region = v.into_owned(),
                "path_style" => {
                    path_style =
                        v.parse().map_err(|_| invalid(format!("path_style must be true or false, not {v:?}")))?
                }
                "object_lock" => lock_mode = Some(v.into_owned()),
                "retain" => retain = Some(v.into_owned()),
                other => {
                    return Err(invalid(format!(
                        "unknown parameter {other:?}; known: endpoint, region, path_style, object_lock, retain"
                    )));
                }
            }
        }
        let mut builder = aws_sdk_s3::config::Builder::from(base)
            .region(aws_config::Region::new(region))
            .force_path_style(path_style);
        if let Some(c) = credentials {
            builder = builder.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                None,
                None,
                "artifortress-secret",
            ));
        }
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let lock = ObjectLock::from_params(lock_mode.as_deref(), retain.as_deref()).map_err(invalid)?;
        let prefix = url.path().trim_matches('/').to_string();
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            prefix,
            display: url.to_string(),
            tuning: UploadTuning::default(),
            lock,
        })
    }

    /// The same store with other upload settings.
    pub fn with_tuning(mut self, tuning: UploadTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Every multipart upload under `prefix` started and neither completed nor
    /// aborted, over all pages of ListMultipartUploads.
    async fn multipart_uploads(&self, prefix: &str) -> Result<Vec<aws_sdk_s3::types::MultipartUpload>, StoreError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let listed = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(self.full_key(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.err("listing unfinished uploads under", prefix, e))?;
            uploads.extend(listed.uploads().iter().cloned());
            key_marker = listed.next_key_marker().map(str::to_string);
            id_marker = listed.next_upload_id_marker().map(str::to_string);
            if listed.is_truncated() != Some(true) || key_marker.is_none() {
                return Ok(uploads);
            }
        }
    }

    /// The objects under `prefix` after `after` (exclusive), in key order
    /// (ListObjectsV2 returns byte order, up to 1 000 keys a page), keys
    /// relative to the store's prefix, one page fetched at a time.
    fn listed<'a>(&'a self, prefix: &'a str, after: Option<&'a str>) -> super::ObjectStream<'a> {
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        Box::pin(async_stream::try_stream! {
            let (mut after, mut token) = (after.map(|a| self.full_key(a)), None);
            loop {
                let page = self.list_page(prefix, after.take(), token.take()).await?;
                for mut object in page.objects {
                    object.key.drain(..strip.min(object.key.len()));
                    yield object;
                }
                match page.next {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        })
    }

    /// One ListObjectsV2 page under `prefix`, read by our own parser ([`listing`]).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<String>,
        continuation: Option<String>,
    ) -> Result<listing::Page, StoreError> {
        let taken = listing::Taken::default();
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .set_start_after(start_after)
            .set_continuation_token(continuation)
            .customize()
            .interceptor(listing::TakeBody(taken.clone()))
            .send()
            .await
            .map_err(|e| self.err("listing", prefix, e))?;
        let body = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
        let unreadable =
            |message| StoreError::Io { store: self.display.clone(), op: "listing", key: prefix.to_string(), message };
        listing::parse(&body.ok_or_else(|| unreadable("the listing's body went missing".to_string()))?)
            .map_err(unreadable)
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    fn err(&self, op: &'static str, key: &str, e: impl std::error::Error) -> StoreError {
        StoreError::Io {
            store: self.display.clone(),
            op,
            key: key.to_string(),
            message: DisplayErrorContext(e).to_string(),
        }
    }

    async fn put_single(&self, key: &str, data: Bytes) -> Result<u64, StoreError> {
        let len = data.len() as u64;
        let locked = self.lock.as_ref();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(AwsByteStream::from(data))
            .set_object_lock_mode(locked.map(|l| l.mode.clone()))
            .set_object_lock_retain_until_date(locked.map(ObjectLock::retain_until))
            .send()
            .await
            .map_err(|e| self.err("uploading", key, e))?;
        Ok(len)
    }

    fn aborted(&self, key: &str, cause: std::io::Error) -> StoreError {
        StoreError::Aborted { store: self.display.clone(), key: key.to_string(), cause: cause.to_string() }
    }

    /// Uploads `first` and the parts that follow it in the body (reading the next
    /// part while earlier ones upload), then completes the upload.
    async fn put_multipart(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        mut body: ByteStream,
        mut buf: BytesMut,
        (part_size, parts_in_flight): (usize, usize),
    ) -> Result<u64, StoreError> {
        let full_key = self.full_key(key);
        let mut in_flight: JoinSet<Result<CompletedPart, String>> = JoinSet::new();
        let mut done = Vec::new();
        let mut total = 0u64;
        let mut part_number = 1;
        let mut next = Some(first);
        // A handle on each part in flight: once its upload is done the handle is
        // the only one left, and its buffer is filled with a later part instead
        // of a new allocation, so that memory is the parts in flight and the
        // one being read, whatever the allocator keeps of freed buffers.
        let mut uploading: HashMap<i32, Bytes> = HashMap::new();
        let mut spare: Option<BytesMut> = None;
        while let Some(part) = next {
            total += part.len() as u64;
            while in_flight.len() >= parts_in_flight {
                let completed = join_part(in_flight.join_next().await).map_err(|m| self.upload_failed(key, m))?;
                if let Some(Ok(buffer)) =
                    completed.part_number().and_then(|n| uploading.remove(&n)).map(Bytes::try_into_mut)
                {
                    spare = Some(buffer);
                }
                done.push(completed);
            }
            uploading.insert(part_number, part.clone());
            let upload = PartUpload {
                client: self.client.clone(),
                bucket: self.bucket.clone(),
                key: full_key.clone(),
                upload_id: upload_id.to_string(),
                number: part_number,
                tuning: self.tuning.clone(),
            };
            in_flight.spawn(upload.run(part));
            part_number += 1;
            if let Some(mut reused) = spare.take() {
                reused.clear();
                reused.extend_from_slice(&buf); // what the last chunk held beyond the part
                buf = reused;
            }
            next = next_part(&mut body, &mut buf, part_size).await.map_err(|e| self.aborted(key, e))?;
            if next.is_some() && part_number as u64 > MAX_PARTS {
                return Err(self.upload_failed(
                    key,
                    format!(
                        "the stream outgrew {MAX_PARTS} parts of {} MiB (chosen for about {} MiB); \
                         back up with a larger expected size",
                        part_size >> 20,
                        (part_size as u64 * MAX_PARTS / 2) >> 20
                    ),
                ));
            }
        }
        while let Some(joined) = in_flight.join_next().await {
            done.push(join_part(Some(joined)).map_err(|m| self.upload_failed(key, m))?);
        }
        done.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .send()
            .await
            .map_err(|e| self.err("completing the upload of", key, e))?;
        Ok(total)
    }

    fn upload_failed(&self, key: &str, message: String) -> StoreError {
        StoreError::Io { store: self.display.clone(), op: "uploading", key: key.to_string(), message }
    }

    /// Aborts an upload, retrying for a while: an abandoned multipart upload keeps
    /// its parts (and costs storage) until someone aborts it.
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let full_key = self.full_key(key);
        let attempt = || async {
            self.client.abort_multipart_upload().bucket(&self.bucket).key(&full_key).upload_id(upload_id).send().await
        };
        attempt
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(5))
            .await
            .map(|_| ())
            .map_err(|e| self.err("aborting the upload of", key, e))
    }
}

/// One part of a multipart upload, tried until it is stored or out of attempts.
struct PartUpload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    number: i32,
    tuning: UploadTuning,
}

impl PartUpload {
    async fn run(self, part: Bytes) -> Result<CompletedPart, String> {
        let timeout = self.tuning.attempt_timeout(part.len());
        // The SDK's own timeouts and retries are replaced by ours for parts: its
        // read timeout would cover sending the whole part.
        let overrides = aws_sdk_s3::config::Builder::default()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(timeout)
                    .build(),
            );
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=self.tuning.attempts {
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .part_number(self.number)
                .body(AwsByteStream::from(part.clone()))
                .customize()
                .config_override(overrides.clone());
            let failure = match tokio::time::timeout(timeout, request.send()).await {
                Ok(Ok(out)) => {
                    return Ok(CompletedPart::builder().part_number(self.number).set_e_tag(out.e_tag).build());
                }
                Ok(Err(e)) if !retryable(&e) => {
                    return Err(format!("part {}: {}", self.number, DisplayErrorContext(e)));
                }
                Ok(Err(e)) => DisplayErrorContext(e).to_string(),
                Err(_) => format!("no answer within {} s", timeout.as_secs()),
            };
            if attempt == self.tuning.attempts {
                return Err(format!("part {} failed {attempt} times, last: {failure}", self.number));
            }
            tracing::warn!(part = self.number, attempt, error = %failure, "part upload failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        unreachable!("the last attempt returns")
    }
}

/// An S3 time as a chrono one.
fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Whether an upload error may pass on a retry: timeouts, broken connections,
/// server errors and throttling, not refusals (403, a vanished upload).
fn retryable<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500 || status == 429
        }
        _ => false,
    }
}

/// Reads the next part of up to `want` bytes; `None` once the body is exhausted.
async fn next_part(body: &mut ByteStream, buf: &mut BytesMut, want: usize) -> std::io::Result<Option<Bytes>> {
    buf.reserve(want.saturating_sub(buf.len()));
    while buf.len() < want {
        match body.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => break,
        }
    }
    let take = buf.len().min(want);
    Ok((take > 0).then(|| buf.split_to(take).freeze()))
}

fn join_part(
    joined: Option<Result<Result<CompletedPart, String>, tokio::task::JoinError>>,
) -> Result<CompletedPart, String> {
    match joined {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(format!("upload task failed: {e}")),
        None => Err("no part upload in flight".to_string()),
    }
}

#[async_trait::async_trait]
impl BackupStore for S3Store {
    fn url(&self) -> String {
        self.display.clone()
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    async fn put_stream(&self, key: &str, body: ByteStream) -> Result<u64, StoreError> {
        self.put_stream_expecting(key, body, 0).await
    }

    async fn put_stream_expecting(&self, key: &str, mut body: ByteStream, expected: u64) -> Result<u64, StoreError> {
        let part_size = self.tuning.part_size.unwrap_or_else(|| part_size_for(expected));
        let parts_in_flight =
            in_flight_parts(part_size, self.tuning.memory_budget).map_err(|m| self.upload_failed(key, m))?;
        // A body that fits in one part goes up as a single PutObject.
        let mut buf = BytesMut::new();
        let first = next_part(&mut body, &mut buf, part_size).await.map_err(|e| self.aborted(key, e))?;
        let first = first.unwrap_or_default();
        if first.len() < part_size {
            return self.put_single(key, first).await;
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_object_lock_mode(self.lock.as_ref().map(|l| l.mode.clone()))
            .set_object_lock_retain_until_date(self.lock.as_ref().map(ObjectLock::retain_until))
            .send()
            .await
            .map_err(|e| self.err("starting the upload of", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        match self.put_multipart(key, &upload_id, first, body, buf, (part_size, parts_in_flight)).await {
            Ok(n) => Ok(n),
            Err(e) => {
                if let Err(abort) = self.abort(key, &upload_id).await {
                    tracing::warn!(error = %abort, "could not abort the failed upload; the next backup of this store removes it");
                }
                Err(e)
            }
        }
    }

    async fn get_stream(&self, key: &str) -> Result<ByteStream, StoreError> {
        self.get_stream_version(key, None).await
    }

    async fn get_stream_version(&self, key: &str, version: Option<&str>) -> Result<ByteStream, StoreError> {
        let request = self.client.get_object().bucket(&self.bucket).key(self.full_key(key));
        let out = request.set_version_id(version.map(str::to_string)).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                StoreError::NotFound { store: self.display.clone(), key: key.to_string() }
            } else {
                self.err("downloading", key, e)
            }
        })?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(out.body.into_async_read(), 1 << 20)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out: Vec<ObjectInfo> = self.listed(prefix, None).try_collect().await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn list_stream<'a>(&'a self, prefix: &'a str) -> super::ObjectStream<'a> {
        self.listed(prefix, None)
    }

    fn list_range<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
        up_to: Option<&'a str>,
    ) -> super::ObjectStream<'a> {
        // Stopping at the first key past the slice stops the paging too.
        Box::pin(
            self.listed(prefix, after)
                .try_take_while(move |o| futures::future::ready(Ok(up_to.is_none_or(|u| o.key.as_str() <= u)))),
        )
    }

    async fn locked_until(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.retention(key).await
    }

    async fn current_version(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.head_version(key).await
    }

    async fn versioning(&self) -> Result<super::Versioning, StoreError> {
        self.bucket_versioning().await
    }

    async fn versions(&self, key: &str) -> Result<Vec<super::ObjectVersion>, StoreError> {
        self.versions_of(key).await
    }

    async fn require_object_lock(&self) -> Result<(), StoreError> {
        self.check_object_lock().await
    }

    async fn noncurrent_version_expiry(&self) -> Result<Option<u32>, StoreError> {
        self.lifecycle_noncurrent_expiry().await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("checking bucket", "", e))
    }

    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let own = self.full_key("");
        let uploads = self.multipart_uploads(prefix).await?;
        Ok(uploads.iter().filter_map(|u| u.key()).map(|k| k.strip_prefix(&own).unwrap_or(k).to_string()).collect())
    }

    /// Aborts every unfinished multipart upload under `prefix`.
    async fn clean_incomplete(&self, prefix: &str, older_than: std::time::Duration) -> Result<usize, StoreError> {
        let cutoff = aws_sdk_s3::primitives::DateTime::from(std::time::SystemTime::now() - older_than);
        let mut aborted = 0;
        for upload in self.multipart_uploads(prefix).await? {
            let old_enough = upload.initiated().is_none_or(|at| at.secs() <= cutoff.secs());
            if let (Some(key), Some(id), true) = (upload.key(), upload.upload_id(), old_enough) {
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| self.err("aborting stale upload", key, e))?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("deleting", key, e))
    }
}

#[cfg(test)]
mod tests;
