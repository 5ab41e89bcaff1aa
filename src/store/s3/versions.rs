//! What a bucket keeps of an object's past: versioning, Object Lock and each
//! object's retention, and the lifecycle rule that expires noncurrent versions.
//! Services without these (Garage has neither versioning nor Object Lock)
//! answer "not implemented": for them nothing is locked and nothing is kept.

use aws_sdk_s3::error::DisplayErrorContext;

use super::S3Store;
use crate::store::{ObjectVersion, StoreError, Versioning};

impl S3Store {
    /// Until when the object's current version is locked (None: not locked, or
    /// the lock has expired).
    pub(super) async fn retention(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let retention = self.client.get_object_retention().bucket(&self.bucket).key(self.full_key(key)).send().await;
        let until = match retention {
            Ok(r) => r.retention().and_then(|r| r.retain_until_date()).map(|d| d.secs()),
            // No retention on the object, no Object Lock on the bucket, or no
            // Object Lock in the service at all.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    matches!(
                        s.meta().code(),
                        Some(
                            "NoSuchObjectLockConfiguration"
                                | "InvalidRequest"
                                | "ObjectLockConfigurationNotFoundError"
                                | "NotImplemented"
                        )
                    )
                }) =>
            {
                None
            }
            Err(e) => return Err(self.err("reading the retention of", key, e)),
        };
        let until = until.and_then(|secs| chrono::DateTime::from_timestamp(secs, 0));
        Ok(until.filter(|u| *u > chrono::Utc::now()))
    }

    /// The version id of the key's current version (None on an unversioned bucket).
    pub(super) async fn head_version(&self, key: &str) -> Result<Option<String>, StoreError> {
        let head = self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).send().await;
        let head = head.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                StoreError::NotFound { store: self.display.clone(), key: key.to_string() }
            } else {
                self.err("reading the version of", key, e)
            }
        })?;
        // An unversioned bucket answers "null" (or nothing).
        Ok(head.version_id().filter(|v| *v != "null").map(str::to_string))
    }

    /// Whether the bucket keeps versions and enforces Object Lock; a service
    /// that cannot say is Unknown, with its answer.
    pub(super) async fn bucket_versioning(&self) -> Result<Versioning, StoreError> {
        use aws_sdk_s3::types::BucketVersioningStatus;
        let versioning = match self.client.get_bucket_versioning().bucket(&self.bucket).send().await {
            Ok(v) => v,
            Err(e) => return Ok(Versioning::Unknown(format!("{}", DisplayErrorContext(&e)))),
        };
        Ok(match versioning.status() {
            Some(BucketVersioningStatus::Enabled) => {
                let object_lock = self
                    .client
                    .get_object_lock_configuration()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .ok()
                    .and_then(|c| c.object_lock_configuration().and_then(|c| c.object_lock_enabled().cloned()))
                    .is_some_and(|e| e.as_str() == "Enabled");
                Versioning::Enabled { object_lock }
            }
            Some(BucketVersioningStatus::Suspended) => Versioning::Off { suspended: true },
            _ => Versioning::Off { suspended: false },
        })
    }

    /// A store asked to lock what it writes refuses a bucket that cannot.
    pub(super) async fn check_object_lock(&self) -> Result<(), StoreError> {
        let Some(lock) = &self.lock else { return Ok(()) };
        match self.bucket_versioning().await? {
            Versioning::Enabled { object_lock: true } => Ok(()),
            found => Err(StoreError::InvalidUrl {
                url: self.display.clone(),
                reason: format!(
                    "it asks for Object Lock ({} mode) but bucket {} does not have it ({found:?}): \
                     create the bucket with Object Lock enabled, or remove object_lock and retain from the URL",
                    lock.mode.as_str().to_lowercase(),
                    self.bucket
                ),
            }),
        }
    }

    /// After how many days the bucket's lifecycle deletes noncurrent versions.
    pub(super) async fn lifecycle_noncurrent_expiry(&self) -> Result<Option<u32>, StoreError> {
        let rules = match self.client.get_bucket_lifecycle_configuration().bucket(&self.bucket).send().await {
            Ok(c) => c.rules().to_vec(),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchLifecycleConfiguration") => {
                return Ok(None);
            }
            Err(e) => return Err(self.err("reading the lifecycle configuration of", "", e)),
        };
        // The shortest expiry of an enabled rule that covers the whole bucket.
        Ok(rules
            .iter()
            .filter(|r| r.status().as_str() == "Enabled")
            .filter(|r| r.filter().and_then(|f| f.prefix()).unwrap_or("").is_empty())
            .filter_map(|r| r.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()))
            .filter_map(|days| u32::try_from(days).ok())
            .min())
    }

    /// The versions of exactly `key`, newest first (a listing by prefix also
    /// returns longer keys; those are skipped).
    pub(super) async fn versions_of(&self, key: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        let full = self.full_key(key);
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.err("listing the versions of", key, e))?;
            for v in page.versions().iter().filter(|v| v.key() == Some(full.as_str())) {
                out.push(ObjectVersion {
                    version_id: v.version_id().unwrap_or("null").to_string(),
                    size: v.size().unwrap_or(0).max(0) as u64,
                    delete_marker: false,
                    latest: v.is_latest().unwrap_or(false),
                    modified: super::time(v.last_modified()),
                });
            }
            for m in page.delete_markers().iter().filter(|m| m.key() == Some(full.as_str())) {
                out.push(ObjectVersion {
                    version_id: m.version_id().unwrap_or("null").to_string(),
                    size: 0,
                    delete_marker: true,
                    latest: m.is_latest().unwrap_or(false),
                    modified: super::time(m.last_modified()),
                });
            }
            // Past the key itself, later pages hold only longer keys.
            let past = page.next_key_marker().is_some_and(|k| k != full);
            if !page.is_truncated().unwrap_or(false) || past {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
        out.sort_by(|a, b| b.latest.cmp(&a.latest).then(b.modified.cmp(&a.modified)));
        Ok(out)
    }
}
