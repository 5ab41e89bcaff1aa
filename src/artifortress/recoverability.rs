//! How far back an installation's restore points are complete: whether every
//! blob a restore point references still exists, or can be brought back.
//!
//! Upstream deletes blob objects only in GC runs an admin starts (per tenant,
//! `POST /v1/admin/gc/runs`, execute mode), with that run's own grace
//! (`gc_runs.retention_grace_hours`; the admin CLI sends 0), and deletes a
//! tombstoned version (then its blobs) once the tombstone's retention has
//! passed. A restore point is therefore complete as long as no GC run that
//! deleted blobs (or died midway) started after it — whatever the default grace
//! setting says. With bucket versioning a deleted object stays as a noncurrent
//! version until the bucket's noncurrent-version expiry removes it.

use chrono::{DateTime, Duration as Span, Utc};
use sqlx::PgConnection;

use crate::api::common::ConditionStatus;
use crate::engine::progress::human_duration;
use crate::store::Versioning;

/// The GC runs that may have deleted blob objects (execute mode, with
/// deletions or never completed), newest first, and the versions the next run
/// will delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcHistory {
    pub deleting_runs: Vec<DateTime<Utc>>,
    /// Tombstoned versions whose retention has passed and no legal hold keeps.
    pub expired_tombstones: i64,
}

/// Reads [`GcHistory`] (bounded: the newest 1 000 deleting runs).
pub async fn gc_history(conn: &mut PgConnection) -> Result<GcHistory, sqlx::Error> {
    let deleting_runs = sqlx::query_scalar(
        "SELECT started_at FROM gc_runs WHERE mode = 'execute' AND (deleted_blob_count > 0 OR completed_at IS NULL)
         ORDER BY started_at DESC LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    // Holds exist from level 0013 on; before, nothing keeps an expired version.
    let holds: bool =
        sqlx::query_scalar("SELECT to_regclass('artifact_protections') IS NOT NULL").fetch_one(&mut *conn).await?;
    let expired_tombstones = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM tombstones t WHERE t.retention_until <= now()
           AND EXISTS (SELECT 1 FROM package_versions v WHERE v.version_id = t.version_id AND v.state = 'tombstoned'){}",
        if holds {
            " AND NOT EXISTS (SELECT 1 FROM artifact_protections p WHERE p.version_id = t.version_id AND p.released_at IS NULL)"
        } else {
            ""
        }
    ))
    .fetch_one(conn)
    .await?;
    Ok(GcHistory { deleting_runs, expired_tombstones })
}

/// A condition to set.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: ConditionStatus,
    pub reason: &'static str,
    pub message: String,
}

/// What the bucket keeps of deleted objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub versioning: Versioning,
    /// With versioning: days noncurrent versions are kept (`Ok(None)`: no
    /// expiry rule), or why the rules could not be read.
    pub noncurrent_expiry_days: Result<Option<u32>, String>,
}

/// `BlobsRecoverable`. `backups`: (name, snapshot time) of the installation's
/// completed backups.
pub fn blobs_recoverable(
    retention: &Retention,
    gc: &GcHistory,
    backups: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Finding {
    let pending = if gc.expired_tombstones > 0 {
        format!(
            "; the next GC run will delete the blobs of {} tombstoned version(s) whose retention has passed",
            gc.expired_tombstones
        )
    } else {
        String::new()
    };
    // Restore points before `horizon` may reference objects gone for good.
    let judge = |horizon: Option<DateTime<Utc>>, why: String, ok_reason, lost_reason| match horizon {
        None => Finding { status: ConditionStatus::True, reason: ok_reason, message: format!("{why}{pending}") },
        Some(at) => {
            let older: Vec<&(String, DateTime<Utc>)> = backups.iter().filter(|(_, s)| *s < at).collect();
            let since = human_duration((now - at).num_seconds().max(0) as f64);
            let complete = format!("restore points are complete back to {} ({since} ago)", at.to_rfc3339());
            match older.iter().min_by_key(|(_, s)| *s) {
                None => Finding {
                    status: ConditionStatus::True,
                    reason: ok_reason,
                    message: format!("{why}; {complete}, and every backup is newer{pending}"),
                },
                Some((oldest, _)) => Finding {
                    status: ConditionStatus::False,
                    reason: lost_reason,
                    message: format!(
                        "{why}; {complete}: {} of {} backups are older (the oldest, {oldest}) and may reference blobs that no longer exist; enable versioning on the blob bucket with a noncurrent-version expiry at least as long as backups are kept (docs/runbooks/backup-restore.md#blobs-and-restore-points){pending}",
                        older.len(),
                        backups.len()
                    ),
                },
            }
        }
    };
    let newest_deleting = gc.deleting_runs.iter().max().copied();
    let runs = |at: DateTime<Utc>| format!("the newest GC run that deleted blobs started at {}", at.to_rfc3339());
    match (&retention.versioning, &retention.noncurrent_expiry_days) {
        (Versioning::Enabled { .. }, Ok(None)) => Finding {
            status: ConditionStatus::True,
            reason: "VersioningKeepsDeleted",
            message: format!(
                "the blob bucket keeps every deleted blob as a noncurrent version (versioning on, no noncurrent-version expiry): every restore point's blobs can be brought back{pending}"
            ),
        },
        (Versioning::Enabled { .. }, Ok(Some(days))) => {
            let cutoff = now - Span::days(i64::from(*days));
            let horizon = gc.deleting_runs.iter().filter(|at| **at < cutoff).max().copied();
            let why = format!("the blob bucket keeps deleted blobs {days} day(s) as noncurrent versions");
            judge(horizon, why, "VersionsCoverRestorePoints", "NoncurrentVersionsExpired")
        }
        (Versioning::Enabled { .. }, Err(e)) => Finding {
            status: ConditionStatus::Unknown,
            reason: "LifecycleUnknown",
            message: format!(
                "versioning is on but the bucket's lifecycle rules could not be read ({e}): how long deleted blobs stay is unknown{pending}"
            ),
        },
        (Versioning::Off { suspended }, _) => {
            let state = if *suspended { "suspended" } else { "off" };
            let why = match newest_deleting {
                None => format!("blob bucket versioning is {state} and no GC run has deleted a blob"),
                Some(at) => format!("blob bucket versioning is {state}: a blob a GC run deletes is gone; {}", runs(at)),
            };
            judge(newest_deleting, why, "CompleteSinceLastGc", "GcDeletedBlobs")
        }
        (Versioning::Unknown(why), _) => {
            let mut f = judge(
                newest_deleting,
                format!("the object store did not say whether versioning is on ({why}); counting as off"),
                "VersioningUnknown",
                "VersioningUnknown",
            );
            f.status = ConditionStatus::Unknown;
            f
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn backups() -> Vec<(String, DateTime<Utc>)> {
        vec![
            ("nightly-1".to_string(), at("2026-11-28T12:00:00Z")),
            ("nightly-2".to_string(), at("2026-11-30T00:00:00Z")),
            ("nightly-3".to_string(), at("2026-12-01T06:00:00Z")),
        ]
    }

    fn off() -> Retention {
        Retention { versioning: Versioning::Off { suspended: false }, noncurrent_expiry_days: Ok(None) }
    }

    #[test]
    fn without_versioning_the_gc_runs_recorded_decide_not_the_grace_setting() {
        let now = at("2026-12-01T12:00:00Z");
        let quiet = GcHistory::default();
        let f = blobs_recoverable(&off(), &quiet, &backups(), now);
        assert_eq!((f.status, f.reason), (ConditionStatus::True, "CompleteSinceLastGc"), "{}", f.message);
        let gc = GcHistory { deleting_runs: vec![at("2026-11-29T00:00:00Z")], expired_tombstones: 3 };
        let f = blobs_recoverable(&off(), &gc, &backups(), now);
        assert_eq!((f.status, f.reason), (ConditionStatus::False, "GcDeletedBlobs"));
        assert!(f.message.contains("1 of 3 backups are older (the oldest, nightly-1)"), "{}", f.message);
        assert!(f.message.contains("3 tombstoned version(s)"), "{}", f.message);
        let f = blobs_recoverable(&off(), &gc, &backups()[1..], now);
        assert_eq!(f.status, ConditionStatus::True, "{}", f.message);
        assert!(f.message.contains("every backup is newer"));
    }

    #[test]
    fn with_versioning_only_expired_noncurrent_versions_lose_blobs() {
        let now = at("2026-12-01T12:00:00Z");
        let gc = GcHistory {
            deleting_runs: vec![at("2026-11-29T00:00:00Z"), at("2026-11-20T00:00:00Z")],
            expired_tombstones: 0,
        };
        let forever =
            Retention { versioning: Versioning::Enabled { object_lock: false }, noncurrent_expiry_days: Ok(None) };
        assert_eq!(blobs_recoverable(&forever, &gc, &backups(), now).reason, "VersioningKeepsDeleted");
        let week = Retention { noncurrent_expiry_days: Ok(Some(7)), ..forever.clone() };
        // The run of 11-20 is past the 7 days: restore points before it are incomplete; none is.
        let f = blobs_recoverable(&week, &gc, &backups(), now);
        assert_eq!((f.status, f.reason), (ConditionStatus::True, "VersionsCoverRestorePoints"), "{}", f.message);
        let old = vec![("weekly-0".to_string(), at("2026-11-10T00:00:00Z"))];
        let f = blobs_recoverable(&week, &gc, &old, now);
        assert_eq!((f.status, f.reason), (ConditionStatus::False, "NoncurrentVersionsExpired"));
        let unknown = Retention { noncurrent_expiry_days: Err("AccessDenied".into()), ..forever };
        assert_eq!(blobs_recoverable(&unknown, &gc, &old, now).status, ConditionStatus::Unknown);
    }
}
