//! `BackupSchedule`: backups on a cron schedule, retention, and continuous proof
//! by recovery drills.

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::artifortress::{ObjectLockModeSpec, ObjectRefWithTime};
use super::common::{ArtifortressRef, BackupMethod, CheckpointMode, Condition, DurationString, VerifyMode};
use super::job_template::JobTemplate;
use super::recovery_drill::DrillTemplate;

/// Back up an installation on a schedule and prune old backups.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "artifortress.io",
    version = "v1alpha1",
    kind = "BackupSchedule",
    namespaced,
    status = "BackupScheduleStatus",
    shortname = "afbs",
    category = "artifortress",
    doc = "Creates Backups of an Artifortress installation on a cron schedule, prunes them by retention, and drills them.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastSuccessfulBackup.completedAt"),
    printcolumn(name = "Next", type_ = "string", json_path = ".status.nextScheduleTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// The installation to back up.
    pub artifortress_ref: ArtifortressRef,
    /// Standard 5-field cron expression (minute hour day-of-month month day-of-week),
    /// or a macro such as `@hourly` / `@daily`, evaluated in `timeZone`.
    #[schemars(regex(pattern = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|\S+(\s+\S+){4})$"))]
    pub schedule: String,
    /// IANA time zone the schedule is evaluated in, e.g. `Europe/Berlin`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Stop creating new backups; existing ones and retention are unaffected.
    #[serde(default)]
    pub suspend: bool,
    /// What to do when a run is due while a backup of the installation still
    /// runs: `Forbid` skips the run, `Replace` stops the running backup and starts
    /// a new one. Two backups of one installation never run at once.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A run missed by more than this many seconds (operator down, suspended) is
    /// skipped instead of started late. Unset: a missed run starts as soon as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// Settings of the `Backup`s this schedule creates.
    #[serde(default)]
    pub backup_template: BackupTemplate,
    /// Which successful backups to keep. Pruning deletes the stored objects and the
    /// `Backup` resource together and never deletes the newest successful backup.
    #[serde(default)]
    pub retention: Retention,
    /// How many finished objects of each kind this schedule keeps in the cluster.
    #[serde(default)]
    pub history_limits: HistoryLimits,
    /// Prove new backups restorable by creating `RecoveryDrill`s for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<ScheduledDrill>,
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

/// Behaviour when a scheduled run meets a running backup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    #[default]
    Forbid,
    Replace,
}

/// Settings copied into every `Backup` a schedule creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupTemplate {
    /// `Logical` or `Physical`; see `Backup.spec.method`.
    #[serde(default)]
    pub method: BackupMethod,
    /// Physical only; see `Backup.spec.checkpoint`.
    #[serde(default)]
    pub checkpoint: CheckpointMode,
    /// `Counts` or `Checksums`; see `Backup.spec.verify`.
    #[serde(default)]
    pub verify: VerifyMode,
    /// Tables to verify; see `Backup.spec.tables`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Pod settings of the backups' Jobs; see `Backup.spec.jobTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
}

/// Retention of successful backups. With both set, a backup is kept while either
/// rule keeps it. With neither, nothing is pruned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the newest N successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Keep every successful backup younger than this, e.g. `14d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<DurationString>,
    /// Write this schedule's backups under S3 Object Lock in this mode, each
    /// locked for `maxAge` (required with it): nobody holding the operator's
    /// storage credentials deletes one before retention would. The backup
    /// bucket must have Object Lock; `backupStorage.objectLock` applies too
    /// (the stricter mode and the longer period win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<ObjectLockModeSpec>,
}

/// Limits on finished objects kept in the cluster, so thousands of runs never
/// pile up in etcd.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryLimits {
    /// Failed `Backup`s kept (their partial uploads are already removed).
    #[serde(default = "three")]
    #[schemars(range(min = 0))]
    pub failed_backups: u32,
    /// Passed `RecoveryDrill`s kept.
    #[serde(default = "three")]
    #[schemars(range(min = 0))]
    pub succeeded_drills: u32,
    /// Failed `RecoveryDrill`s kept.
    #[serde(default = "three")]
    #[schemars(range(min = 0))]
    pub failed_drills: u32,
}

fn three() -> u32 {
    3
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits { failed_backups: 3, succeeded_drills: 3, failed_drills: 3 }
    }
}

/// Drill policy for the backups of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledDrill {
    /// Minimum time between two drills: `0s` drills every new backup, `24h` at
    /// most one drill a day (on the first new backup after the interval).
    #[serde(default = "default_drill_interval")]
    pub min_interval: DurationString,
    /// The drills to create; their backup is always the new backup.
    pub template: DrillTemplate,
}

fn default_drill_interval() -> DurationString {
    DurationString::from("24h")
}

/// Observed state of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// `Ready` (schedule valid and active) and `Suspended`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When a backup was last created by this schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// When the next backup is due (absent while suspended or invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<DateTime<Utc>>,
    /// The backup currently running, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// The newest backup that completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<ObjectRefWithTime>,
    /// The newest failure and its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<ScheduleFailure>,
    /// The newest drill created for one of this schedule's backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<ObjectRefWithTime>,
    /// When the schedule last created a drill; `drill.minInterval` counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill_time: Option<DateTime<Utc>>,
    /// The backup the last drill was created for; no backup is drilled twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drilled_backup: Option<String>,
}

/// A failed run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleFailure {
    /// The failed `Backup` (absent when the run could not even be created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// What went wrong.
    pub reason: String,
    /// When it failed.
    pub time: DateTime<Utc>,
}
