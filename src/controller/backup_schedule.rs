//! The `BackupSchedule` controller: creates `Backup`s when the cron schedule
//! says so, prunes by retention and history limits, and creates
//! `RecoveryDrill`s for new backups per the drill policy.
//!
//! Time comes from the context's clock, so tests drive schedules with an
//! injected one. Backup and drill names derive from the scheduled time and the
//! backup, so a restarted operator never creates a run twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::retention::{self, BackupEntry, Finished};
use super::schedule::{self, Decision, Schedule};
use super::{Context, Error, jobs};
use crate::api::artifortress::ObjectRefWithTime;
use crate::api::backup::{Backup, BackupPhase, BackupSpec};
use crate::api::backup_schedule::{BackupSchedule, ScheduleFailure};
use crate::api::common::{ArtifortressRef, ConditionStatus, DurationString};
use crate::api::recovery_drill::{DrillBackup, DrillBackupMode, DrillPhase, RecoveryDrill, RecoveryDrillSpec};

/// Label on the backups and drills a schedule creates.
pub const LABEL_SCHEDULE: &str = "artifortress.io/schedule";

pub fn controller(ctx: Arc<Context>, namespace: Option<&str>) -> futures::stream::BoxStream<'static, ()> {
    let schedules = super::scoped::<BackupSchedule>(&ctx.client, namespace);
    Controller::new(schedules, watcher::Config::default())
        .owns(super::scoped::<Backup>(&ctx.client, namespace), super::managed_children())
        .owns(super::scoped::<RecoveryDrill>(&ctx.client, namespace), super::managed_children())
        .run(
            |s, ctx| async move {
                super::measured("backupschedule", s.as_ref(), &ctx, reconcile(s.clone(), ctx.clone())).await
            },
            |s, e, ctx| super::error_policy("backupschedule", s.as_ref(), e, &ctx),
            ctx,
        )
        .map(drop)
        .boxed()
}

/// The name of the backup for the run scheduled at `at`.
pub fn backup_name(schedule: &str, at: DateTime<Utc>) -> String {
    format!("{schedule}-{}", at.format("%Y%m%d%H%M"))
}

/// The backup to drill now, if any: the newest completed one, when it was not
/// drilled yet and `min_interval` has passed since the last drill.
pub fn drill_due<'a>(
    newest_completed: Option<&'a str>,
    last_drilled: Option<&str>,
    last_drill_time: Option<DateTime<Utc>>,
    min_interval: Duration,
    now: DateTime<Utc>,
) -> Option<&'a str> {
    let backup = newest_completed?;
    if last_drilled == Some(backup) {
        return None;
    }
    let waited = last_drill_time.is_none_or(|t| (now - t).to_std().unwrap_or_default() >= min_interval);
    waited.then_some(backup)
}

fn parse_duration(field: &str, d: &DurationString) -> Result<Duration, String> {
    d.parse().map_err(|e| format!("{field}: {e}"))
}

pub async fn reconcile(schedule: Arc<BackupSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = ctx.now();
    let ns = schedule.namespace().unwrap_or_default();
    let name = schedule.name_any();
    let spec = &schedule.spec;
    let schedules: Api<BackupSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let mut status = schedule.status.clone().unwrap_or_default();

    // Validate.
    let parsed = Schedule::parse(&spec.schedule, &spec.time_zone).and_then(|cron| {
        let max_age = spec.retention.max_age.as_ref().map(|d| parse_duration("retention.maxAge", d)).transpose()?;
        let min_interval =
            spec.drill.as_ref().map(|d| parse_duration("drill.minInterval", &d.min_interval)).transpose()?;
        Ok((cron, max_age, min_interval))
    });
    let (cron, max_age, min_interval) = match parsed {
        Ok(p) => p,
        Err(message) => {
            status.next_schedule_time = None;
            super::write_ready(
                &ctx,
                &schedules,
                schedule.as_ref(),
                status,
                ConditionStatus::False,
                "InvalidSpec",
                message,
            )
            .await?;
            // A spec change triggers the next look; nothing else can fix it.
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    };
    let installation = &spec.artifortress_ref.name;
    let Some(af) = super::installation(&ctx.client, &ns, installation).await? else {
        let message = super::installation_not_found(installation, &ns);
        super::write_ready(
            &ctx,
            &schedules,
            schedule.as_ref(),
            status,
            ConditionStatus::False,
            "ArtifortressNotFound",
            message,
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };

    let backups_api: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let drills_api: Api<RecoveryDrill> = Api::namespaced(ctx.client.clone(), &ns);
    let mine = ListParams::default().labels(&format!("{LABEL_SCHEDULE}={name}"));
    let mut backups = backups_api.list(&mine).await?.items;
    let drills = drills_api.list(&mine).await?.items;
    let phase = |b: &Backup| b.status.as_ref().and_then(|s| s.phase);
    let active: Vec<String> = backups
        .iter()
        .filter(|b| !matches!(phase(b), Some(BackupPhase::Completed | BackupPhase::Failed)))
        .map(|b| b.name_any())
        .collect();

    // 1. The schedule itself.
    let since = status
        .last_schedule_time
        .or_else(|| schedule.meta().creation_timestamp.as_ref().map(super::k8s_time))
        .unwrap_or(now);
    let decision = schedule::decide(
        &cron,
        &schedule::State {
            since,
            now,
            suspended: spec.suspend,
            active: !active.is_empty(),
            policy: spec.concurrency_policy,
            starting_deadline: spec.starting_deadline_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
        },
    );
    match decision {
        Decision::Run { scheduled } | Decision::ReplaceAndRun { scheduled } => {
            if matches!(decision, Decision::ReplaceAndRun { .. }) {
                for running in &active {
                    super::delete_child(&backups_api, running).await?;
                    ctx.event(
                        schedule.as_ref(),
                        false,
                        "BackupReplaced",
                        format!("stopped {running} for the next run"),
                    )
                    .await;
                }
            }
            let backup = new_backup(&schedule, &backup_name(&name, scheduled));
            backups.extend(super::create_child(&backups_api, &backup).await?);
            status.last_schedule_time = Some(scheduled);
            let message = format!("created Backup {} for the run at {}", backup.name_any(), scheduled.to_rfc3339());
            ctx.event(schedule.as_ref(), false, "BackupCreated", message).await;
        }
        Decision::SkipBusy { scheduled } => {
            status.last_schedule_time = Some(scheduled);
            let message = format!(
                "skipped the run at {}: {} is still running (Forbid)",
                scheduled.to_rfc3339(),
                active.join(", ")
            );
            ctx.event(schedule.as_ref(), true, "RunSkipped", message).await;
        }
        Decision::SkipMissed { scheduled } => {
            status.last_schedule_time = Some(scheduled);
            let message = format!(
                "missed the run at {} by more than startingDeadlineSeconds; waiting for the next one",
                scheduled.to_rfc3339()
            );
            ctx.event(schedule.as_ref(), true, "RunMissed", message).await;
        }
        Decision::Wait { .. } | Decision::Suspended => {}
    }

    // 2. Retention: objects first, then the resource, newest success always kept.
    let entries: Vec<BackupEntry> = backups
        .iter()
        .map(|b| BackupEntry {
            name: b.name_any(),
            completed_at: b
                .status
                .as_ref()
                .filter(|s| s.phase == Some(BackupPhase::Completed))
                .and_then(|s| s.completed_at),
        })
        .collect();
    let pruned = retention::prune_backups(&entries, spec.retention.keep_last, max_age, now);
    if !pruned.is_empty() {
        let url = jobs::backup_store_url(&af.spec, installation);
        let store = ctx.backup_store(&ns, &af.spec, &url).await?;
        for backup in &pruned {
            super::backup::delete_backup_data(store.as_ref(), backup).await?;
            super::delete_child(&backups_api, backup).await?;
            ctx.event(
                schedule.as_ref(),
                false,
                "BackupPruned",
                format!("deleted {backup} (objects and resource) by retention"),
            )
            .await;
        }
        backups.retain(|b| !pruned.contains(&b.name_any()));
    }

    // 3. History limits.
    let failed_backups: Vec<Finished> = backups
        .iter()
        .filter(|b| phase(b) == Some(BackupPhase::Failed))
        .map(|b| Finished {
            name: b.name_any(),
            finished_at: finished_at(b.meta(), b.status.as_ref().and_then(|s| s.completed_at.or(s.started_at))),
        })
        .collect();
    for extra in retention::beyond_history(&failed_backups, spec.history_limits.failed_backups) {
        super::delete_child(&backups_api, &extra).await?;
    }
    let drill_phase = |d: &RecoveryDrill| d.status.as_ref().and_then(|s| s.phase);
    let finished_drills = |wanted: DrillPhase| -> Vec<Finished> {
        drills
            .iter()
            .filter(|d| drill_phase(d) == Some(wanted))
            .map(|d| Finished {
                name: d.name_any(),
                finished_at: finished_at(d.meta(), d.status.as_ref().and_then(|s| s.completed_at)),
            })
            .collect()
    };
    let mut drills_removed =
        retention::beyond_history(&finished_drills(DrillPhase::Succeeded), spec.history_limits.succeeded_drills);
    drills_removed
        .extend(retention::beyond_history(&finished_drills(DrillPhase::Failed), spec.history_limits.failed_drills));
    for extra in &drills_removed {
        super::delete_child(&drills_api, extra).await?;
    }

    // 4. Drill policy.
    let newest_completed = backups
        .iter()
        .filter_map(|b| Some((b, b.status.as_ref()?.completed_at?)))
        .filter(|(b, _)| phase(b) == Some(BackupPhase::Completed))
        .max_by_key(|(_, t)| *t);
    if let (Some(policy), Some(min_interval)) = (&spec.drill, min_interval)
        && let Some(backup) = drill_due(
            newest_completed.map(|(b, _)| b.meta().name.as_deref().unwrap_or_default()),
            status.last_drilled_backup.as_deref(),
            status.last_drill_time,
            min_interval,
            now,
        )
    {
        let drill = RecoveryDrill {
            metadata: child_meta(&schedule, &format!("{backup}-drill"), "drill"),
            spec: RecoveryDrillSpec {
                artifortress_ref: ArtifortressRef { name: installation.clone() },
                backup: DrillBackup { mode: DrillBackupMode::Named, name: Some(backup.to_string()) },
                template: policy.template.clone(),
            },
            status: None,
        };
        super::create_child(&drills_api, &drill).await?;
        status.last_drill_time = Some(now);
        status.last_drilled_backup = Some(backup.to_string());
        ctx.event(
            schedule.as_ref(),
            false,
            "DrillCreated",
            format!("created RecoveryDrill {} for {backup}", drill.name_any()),
        )
        .await;
    }

    // 5. Status.
    status.next_schedule_time = if spec.suspend { None } else { cron.next_after(now) };
    status.active = backups
        .iter()
        .find(|b| !matches!(phase(b), Some(BackupPhase::Completed | BackupPhase::Failed)))
        .map(|b| b.name_any());
    if let Some((b, at)) = newest_completed {
        status.last_successful_backup =
            Some(ObjectRefWithTime { name: b.name_any(), completed_at: Some(at), result: Some("Completed".into()) });
    }
    if let Some(b) = backups
        .iter()
        .filter(|b| phase(b) == Some(BackupPhase::Failed))
        .max_by_key(|b| finished_at(b.meta(), b.status.as_ref().and_then(|s| s.started_at)))
    {
        let s = b.status.clone().unwrap_or_default();
        status.last_failure = Some(ScheduleFailure {
            backup: Some(b.name_any()),
            reason: s.message.unwrap_or_else(|| "failed".into()),
            time: finished_at(b.meta(), s.started_at),
        });
    }
    if let Some(d) = drills
        .iter()
        .filter(|d| !drills_removed.contains(&d.name_any()))
        .max_by_key(|d| d.meta().creation_timestamp.clone())
    {
        let s = d.status.clone().unwrap_or_default();
        status.last_drill = Some(ObjectRefWithTime {
            name: d.name_any(),
            completed_at: s.completed_at,
            result: s.result.map(|r| format!("{r:?}")),
        });
    }
    let (reason, message) = match (&spec.suspend, status.next_schedule_time) {
        (true, _) => ("Suspended", "suspend is true; no backups are created".to_string()),
        (false, Some(next)) => ("Scheduled", format!("next backup at {}", next.to_rfc3339())),
        (false, None) => ("Scheduled", "the schedule has no future run".to_string()),
    };
    let wait = status.next_schedule_time.map_or(ctx.max_requeue, |next| {
        (next - now).to_std().unwrap_or_default().clamp(Duration::from_secs(1), ctx.max_requeue)
    });
    super::write_ready(&ctx, &schedules, schedule.as_ref(), status, ConditionStatus::True, reason, message).await?;
    Ok(Action::requeue(wait))
}

fn finished_at(meta: &ObjectMeta, at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    at.or_else(|| meta.creation_timestamp.as_ref().map(super::k8s_time)).unwrap_or_default()
}

fn child_meta(schedule: &BackupSchedule, name: &str, step: &str) -> ObjectMeta {
    let installation = &schedule.spec.artifortress_ref.name;
    let mut labels = jobs::child_labels(installation, &schedule.name_any(), step);
    labels.insert(LABEL_SCHEDULE.into(), schedule.name_any());
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: schedule.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![schedule.controller_owner_ref(&()).expect("a stored schedule has a uid")]),
        ..Default::default()
    }
}

fn new_backup(schedule: &BackupSchedule, name: &str) -> Backup {
    let template = &schedule.spec.backup_template;
    Backup {
        metadata: child_meta(schedule, name, "schedule"),
        spec: BackupSpec {
            artifortress_ref: schedule.spec.artifortress_ref.clone(),
            verify: template.verify,
            tables: template.tables.clone(),
            deletion_policy: Default::default(),
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn backup_names_come_from_the_scheduled_minute() {
        assert_eq!(backup_name("nightly", at("2026-03-29T01:00:00Z")), "nightly-202603290100");
    }

    #[test]
    fn drills_follow_new_backups_and_the_interval() {
        let day = Duration::from_secs(86_400);
        let now = at("2026-11-28T03:00:00Z");
        assert_eq!(drill_due(None, None, None, day, now), None, "nothing completed yet");
        assert_eq!(drill_due(Some("b1"), None, None, day, now), Some("b1"), "first drill");
        assert_eq!(drill_due(Some("b1"), Some("b1"), Some(now), Duration::ZERO, now), None, "never twice");
        let an_hour_ago = at("2026-11-28T02:00:00Z");
        assert_eq!(drill_due(Some("b2"), Some("b1"), Some(an_hour_ago), day, now), None, "interval not passed");
        assert_eq!(drill_due(Some("b2"), Some("b1"), Some(an_hour_ago), Duration::ZERO, now), Some("b2"));
        let yesterday = at("2026-11-27T03:00:00Z");
        assert_eq!(drill_due(Some("b2"), Some("b1"), Some(yesterday), day, now), Some("b2"));
    }
}
