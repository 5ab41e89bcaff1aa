//! Whether an installation's restore points can be recovered at all, beyond
//! its database backups: the blob bucket against garbage collection, and the
//! backups kept apart from the blobs. Pure decisions, unit-tested.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::artifortress::ObjectStorageSpec;
use crate::api::common::ConditionStatus;
use crate::engine::progress::human_duration;
use crate::store::Versioning;

/// A condition to set.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
}

/// `BlobsRecoverable`: with versioning, blobs GC deleted after a restore point
/// are still there as noncurrent versions; without it, a backup older than the
/// GC grace period may reference blobs that are gone for good. `backups` are
/// (name, snapshot time) of the installation's completed backups.
pub fn blobs_recoverable(
    versioning: &Versioning,
    gc_grace: Duration,
    backups: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Finding {
    let grace = human_duration(gc_grace.as_secs_f64());
    let at_risk = || {
        let older: Vec<&(String, DateTime<Utc>)> =
            backups.iter().filter(|(_, at)| (now - *at).to_std().unwrap_or_default() > gc_grace).collect();
        match older.iter().min_by_key(|(_, at)| *at) {
            None => "no backup is older than that yet".to_string(),
            Some((name, at)) => format!(
                "{} of {} backups are older than that (the oldest, {name}, is {} old)",
                older.len(),
                backups.len(),
                human_duration((now - *at).num_seconds().max(0) as f64)
            ),
        }
    };
    let advice = "enable versioning on the blob bucket with a lifecycle rule that keeps noncurrent versions at least as long as backups are kept, or keep backups within the GC grace period (docs/runbooks/backup-restore.md#blobs-and-restore-points)";
    match versioning {
        Versioning::Enabled { object_lock } => Finding {
            status: ConditionStatus::True,
            reason: "VersioningEnabled",
            message: format!(
                "the blob bucket has versioning enabled{}: blobs garbage collection deletes after a restore point stay as noncurrent versions and can be brought back for that restore point (as long as a lifecycle rule keeps them as long as the backups)",
                if *object_lock { " and object lock" } else { "" }
            ),
        },
        Versioning::Off { suspended } => Finding {
            status: ConditionStatus::False,
            reason: if *suspended { "VersioningSuspended" } else { "VersioningOff" },
            message: format!(
                "blob bucket versioning is {}: garbage collection deletes a blob {grace} after it becomes unreferenced and nothing brings it back, so restoring a backup older than {grace} can reference blobs that no longer exist; {}; {advice}",
                if *suspended { "suspended" } else { "off" },
                at_risk()
            ),
        },
        Versioning::Unknown(why) => Finding {
            status: ConditionStatus::Unknown,
            reason: "VersioningUnknown",
            message: format!(
                "the object store did not say whether versioning is enabled ({why}); if it is not, restoring a backup older than the GC grace period ({grace}) can reference deleted blobs: {}",
                at_risk()
            ),
        },
    }
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

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn storage(bucket: &str, prefix: Option<&str>) -> ObjectStorageSpec {
        ObjectStorageSpec {
            bucket: bucket.into(),
            prefix: prefix.map(str::to_string),
            endpoint: None,
            region: "us-east-1".into(),
            force_path_style: false,
            credentials_secret_ref: None,
        }
    }

    #[test]
    fn without_versioning_old_backups_are_named_at_risk() {
        let now = at("2026-12-01T12:00:00Z");
        let backups = vec![
            ("nightly-1".to_string(), at("2026-11-28T12:00:00Z")),
            ("nightly-2".to_string(), at("2026-11-30T00:00:00Z")),
            ("nightly-3".to_string(), at("2026-12-01T06:00:00Z")),
        ];
        let day = Duration::from_secs(86_400);
        let f = blobs_recoverable(&Versioning::Off { suspended: false }, day, &backups, now);
        assert_eq!((f.status, f.reason), (ConditionStatus::False, "VersioningOff"));
        assert!(f.message.contains("older than 24h"), "{}", f.message);
        assert!(
            f.message.contains("2 of 3 backups are older than that (the oldest, nightly-1, is 72h old)"),
            "{}",
            f.message
        );
        let f = blobs_recoverable(&Versioning::Off { suspended: true }, day, &backups[2..], now);
        assert_eq!(f.reason, "VersioningSuspended");
        assert!(f.message.contains("no backup is older than that yet"), "{}", f.message);
    }

    #[test]
    fn with_versioning_restore_points_are_recoverable() {
        let f =
            blobs_recoverable(&Versioning::Enabled { object_lock: true }, Duration::from_secs(3600), &[], Utc::now());
        assert_eq!((f.status, f.reason), (ConditionStatus::True, "VersioningEnabled"));
        assert!(f.message.contains("and object lock"));
        let f = blobs_recoverable(
            &Versioning::Unknown("NotImplemented".into()),
            Duration::from_secs(3600),
            &[],
            Utc::now(),
        );
        assert_eq!((f.status, f.reason), (ConditionStatus::Unknown, "VersioningUnknown"));
        assert!(f.message.contains("NotImplemented"));
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
