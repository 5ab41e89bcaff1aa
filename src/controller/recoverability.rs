//! Whether the backups are kept apart from the blobs (the blob side of
//! recoverability is Artifortress knowledge: `artifortress::recoverability`).
//! Pure decisions, unit-tested.

use crate::api::artifortress::ObjectStorageSpec;
use crate::api::common::ConditionStatus;

/// A condition to set.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
}

/// Prefix of a store path without slashes at either end ("" is the whole bucket).
fn trimmed(prefix: &str) -> &str {
    prefix.trim_matches('/')
}

fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (trimmed(a), trimmed(b));
    a.is_empty() || b.is_empty() || a == b || b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"))
}

/// `BackupStorageSeparate`: backups must not live inside the blob store (same
/// bucket and endpoint, overlapping prefixes): one incident or lifecycle rule
/// would take both, and the blob check would see backups as orphans.
/// `backup_path` is where the installation's backups go in `backups`.
pub fn backup_isolation(blobs: &ObjectStorageSpec, backups: &ObjectStorageSpec, backup_path: &str) -> Finding {
    let blob_path = blobs.prefix.as_deref().unwrap_or("");
    let shared =
        blobs.bucket == backups.bucket && blobs.endpoint == backups.endpoint && overlaps(blob_path, backup_path);
    let where_ = |bucket: &str, path: &str| format!("s3://{bucket}/{}", trimmed(path));
    if shared {
        Finding {
            status: ConditionStatus::False,
            reason: "SharesBlobStorage",
            message: format!(
                "backups are written inside the blob store ({} within {}): one bucket incident or lifecycle rule takes the blobs and their backups, and the blob check counts backup objects as orphans; set spec.backupStorage to another bucket (ideally another account or region)",
                where_(&backups.bucket, backup_path),
                where_(&blobs.bucket, blob_path)
            ),
        }
    } else {
        Finding {
            status: ConditionStatus::True,
            reason: "BackupsSeparate",
            message: format!(
                "backups go to {}, apart from the blobs in {}",
                where_(&backups.bucket, backup_path),
                where_(&blobs.bucket, blob_path)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(bucket: &str, prefix: Option<&str>) -> ObjectStorageSpec {
        ObjectStorageSpec {
            bucket: bucket.into(),
            prefix: prefix.map(str::to_string),
            endpoint: None,
            region: "us-east-1".into(),
            force_path_style: false,
            credentials_secret_ref: None,
            object_lock: None,
        }
    }

    #[test]
    fn backups_inside_the_blob_store_are_a_warning() {
        let blobs = storage("artifacts", Some("blobs"));
        assert_eq!(backup_isolation(&blobs, &storage("backups", None), "prod").reason, "BackupsSeparate");
        assert_eq!(backup_isolation(&blobs, &storage("artifacts", None), "backups/prod").reason, "BackupsSeparate");
        let shared = backup_isolation(&blobs, &storage("artifacts", None), "blobs/backups");
        assert_eq!((shared.status, shared.reason), (ConditionStatus::False, "SharesBlobStorage"));
        assert!(
            shared.message.contains("s3://artifacts/blobs/backups within s3://artifacts/blobs"),
            "{}",
            shared.message
        );
        let whole_bucket = storage("artifacts", None);
        assert_eq!(
            backup_isolation(&whole_bucket, &whole_bucket, "artifortress-backups/prod").reason,
            "SharesBlobStorage"
        );
        assert_eq!(
            backup_isolation(&blobs, &storage("artifacts", Some("blobsy")), "blobsy/p").reason,
            "BackupsSeparate"
        );
    }
}
