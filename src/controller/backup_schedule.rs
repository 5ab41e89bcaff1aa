//! The `BackupSchedule` controller: creates `Backup`s when the cron schedule
//! says so, prunes by retention and history limits, and creates
//! `RecoveryDrill`s for new backups per the drill policy.
//!
//! Time comes from the context's clock, so tests drive schedules with an
//! injected one. Backup and drill names derive from the scheduled time and the
//! backup, so a restarted operator never creates a run twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::backup_resource::{LABEL_SCHEDULE, backup_resource, is_finished};
use super::recovery_drill;
use super::retention::{self, BackupEntry, Finished};
use super::schedule::{self, Decision, Schedule};
use super::{Context, Error, jobs};
use crate::api::artifortress::{Artifortress, ObjectLockSpec, ObjectRefWithTime};
use crate::api::backup::{Backup, BackupPhase};
use crate::api::backup_schedule::{BackupSchedule, BackupScheduleSpec, BackupScheduleStatus, ScheduleFailure};
use crate::api::common::{BackupMethod, ConditionStatus, DurationString};
use crate::api::recovery_drill::{
    DrillBackup, DrillBackupMode, DrillPhase, DrillTemplate, RecoveryDrill, RecoveryDrillSpec,
};
use crate::engine::catalog;

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

/// The spec's schedule and durations, parsed.
pub struct Rules {
    pub cron: Schedule,
    pub max_age: Option<Duration>,
    /// Present when the schedule drills its backups.
    pub drill_interval: Option<Duration>,
    /// How the backups it creates are locked (`retention.lockMode` for `maxAge`).
    pub lock: Option<ObjectLockSpec>,
}

impl Rules {
    /// Everything in the spec that can be wrong beyond what the API server checks.
    pub fn parse(spec: &BackupScheduleSpec) -> Result<Rules, String> {
        let duration = |field: &str, d: &DurationString| d.parse().map_err(|e| format!("{field}: {e}"));
        let lock = match (spec.retention.lock_mode, &spec.retention.max_age) {
            (None, _) => None,
            (Some(mode), Some(max_age)) => Some(ObjectLockSpec { mode, retain: max_age.clone() }),
            (Some(_), None) => {
                return Err("retention.lockMode needs retention.maxAge: each backup is locked for as long as retention keeps it by age".into());
            }
        };
        Ok(Rules {
            lock,
            cron: Schedule::parse(&spec.schedule, &spec.time_zone)?,
            max_age: spec.retention.max_age.as_ref().map(|d| duration("retention.maxAge", d)).transpose()?,
            drill_interval: spec.drill.as_ref().map(|d| duration("drill.minInterval", &d.min_interval)).transpose()?,
        })
    }
}

/// What a schedule has created so far: the backups and drills with its label.
#[derive(Clone)]
pub struct Children {
    pub backups: Vec<Backup>,
    pub drills: Vec<RecoveryDrill>,
    /// Backups an unfinished drill (any in the namespace) restores: retention keeps them.
    pub in_use: BTreeSet<String>,
}

/// Everything one reconcile does, decided from what exists.
pub struct Plan {
    /// Running backups to stop first (`concurrencyPolicy: Replace`).
    pub replace: Vec<String>,
    /// The backup for the run that is due.
    pub create: Option<Backup>,
    /// Events about the run: (warning, reason, note).
    pub events: Vec<(bool, &'static str, String)>,
    /// Completed backups retention removes (objects and resource).
    pub prune: Vec<String>,
    /// Failed backups and finished drills beyond their history limits.
    pub forget_backups: Vec<String>,
    pub forget_drills: Vec<String>,
    /// The drill for the newest completed backup, when the drill policy says so.
    pub drill: Option<RecoveryDrill>,
    /// The status to write, its Ready reason and message, and when to look again.
    pub status: BackupScheduleStatus,
    pub reason: &'static str,
    pub message: String,
    pub requeue: Duration,
}

pub async fn reconcile(schedule: Arc<BackupSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = schedule.namespace().unwrap_or_default();
    let schedules: Api<BackupSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let status = schedule.status.clone().unwrap_or_default();
    let not_ready = |status: BackupScheduleStatus, reason: &'static str, message: String| {
        let (ctx, schedules, schedule) = (&ctx, &schedules, &schedule);
        async move {
            super::write_ready(ctx, schedules, schedule.as_ref(), status, ConditionStatus::False, reason, message).await
        }
    };

    // Validate, then fetch.
    let rules = match Rules::parse(&schedule.spec) {
        Ok(rules) => rules,
        Err(message) => {
            not_ready(BackupScheduleStatus { next_schedule_time: None, ..status }, "InvalidSpec", message).await?;
            // A spec change triggers the next look; nothing else can fix it.
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    };
    let installation = &schedule.spec.artifortress_ref.name;
    let af = match super::installation(&ctx.client, &ns, installation).await? {
        Ok(af) => af,
        Err(why) => {
            not_ready(status, why.reason, why.message).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let children = fetch_children(&ctx, &schedule).await?;

    // Decide, apply, report.
    let plan = plan(&schedule, &rules, &children, ctx.now(), ctx.max_requeue);
    let unlocked = apply(&ctx, &schedule, &af, &plan).await?;
    let (status, reason, message) = (plan.status, plan.reason, plan.message);
    super::write_ready(&ctx, &schedules, schedule.as_ref(), status, ConditionStatus::True, reason, message).await?;
    // Back when the first lock holding a pruned backup ends.
    let until_unlocked = unlocked.map(|t| (t - ctx.now()).to_std().unwrap_or_default() + Duration::from_secs(1));
    Ok(Action::requeue(until_unlocked.map_or(plan.requeue, |wait| wait.min(plan.requeue))))
}

async fn fetch_children(ctx: &Context, schedule: &BackupSchedule) -> Result<Children, Error> {
    let ns = schedule.namespace().unwrap_or_default();
    let value = jobs::label_value(&schedule.name_any());
    let mine = ListParams::default().labels(&format!("{LABEL_SCHEDULE}={value}"));
    // Every drill of the namespace: any of them may restore one of our backups.
    let drills = Api::<RecoveryDrill>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?.items;
    let in_use = drills.iter().filter(|d| !recovery_drill::is_finished(d)).filter_map(recovery_drill::backup_in_use);
    Ok(Children {
        backups: Api::<Backup>::namespaced(ctx.client.clone(), &ns).list(&mine).await?.items,
        in_use: in_use.collect(),
        drills: drills.into_iter().filter(|d| d.labels().get(LABEL_SCHEDULE) == Some(&value)).collect(),
    })
}

fn backup_phase(b: &Backup) -> Option<BackupPhase> {
    b.status.as_ref().and_then(|s| s.phase)
}

/// The pure decision: which run is due, what retention and history limits
/// remove, whether a drill is due, and the status that results.
pub fn plan(
    schedule: &BackupSchedule,
    rules: &Rules,
    children: &Children,
    now: DateTime<Utc>,
    max_requeue: Duration,
) -> Plan {
    let spec = &schedule.spec;
    let mut status = schedule.status.clone().unwrap_or_default();
    let (replace, create, events) = plan_run(schedule, rules, children, &mut status, now);
    let mut backups: Vec<&Backup> = children.backups.iter().collect();
    if let Some(new) = &create
        && !backups.iter().any(|b| b.name_any() == new.name_any())
    {
        backups.push(new);
    }
    // Retention: completed backups only; the newest success is always kept.
    let entries: Vec<BackupEntry> =
        backups.iter().map(|b| BackupEntry { name: b.name_any(), completed_at: completed_at(b) }).collect();
    let mut prune = retention::prune_backups(&entries, spec.retention.keep_last, rules.max_age, now);
    prune.retain(|b| !children.in_use.contains(b));
    backups.retain(|b| !prune.contains(&b.name_any()));
    let (forget_backups, forget_drills) = beyond_history_limits(spec, &backups, &children.drills);
    let drill = plan_drill(schedule, rules, &backups, &mut status, now);
    let drills: Vec<&RecoveryDrill> =
        children.drills.iter().filter(|d| !forget_drills.contains(&d.name_any())).collect();
    summarize(&mut status, &backups, &drills);

    status.next_schedule_time = if spec.suspend { None } else { rules.cron.next_after(now) };
    let (reason, message) = match (spec.suspend, status.next_schedule_time) {
        (true, _) => ("Suspended", "suspend is true; no backups are created".to_string()),
        (false, Some(next)) => ("Scheduled", format!("next backup at {}", next.to_rfc3339())),
        (false, None) => ("Scheduled", "the schedule has no future run".to_string()),
    };
    let requeue = status.next_schedule_time.map_or(max_requeue, |next| {
        (next - now).to_std().unwrap_or_default().clamp(Duration::from_secs(1), max_requeue)
    });
    Plan { replace, create, events, prune, forget_backups, forget_drills, drill, status, reason, message, requeue }
}

type RunPlan = (Vec<String>, Option<Backup>, Vec<(bool, &'static str, String)>);

/// The run that is due, if any: backups to stop, the backup to create, Events.
fn plan_run(
    schedule: &BackupSchedule,
    rules: &Rules,
    children: &Children,
    status: &mut BackupScheduleStatus,
    now: DateTime<Utc>,
) -> RunPlan {
    let spec = &schedule.spec;
    let active: Vec<String> = children.backups.iter().filter(|b| !is_finished(b)).map(|b| b.name_any()).collect();
    let since = status
        .last_schedule_time
        .or_else(|| schedule.meta().creation_timestamp.as_ref().map(super::k8s_time))
        .unwrap_or(now);
    let state = schedule::State {
        since,
        now,
        suspended: spec.suspend,
        active: !active.is_empty(),
        policy: spec.concurrency_policy,
        starting_deadline: spec.starting_deadline_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
    };
    match schedule::decide(&rules.cron, &state) {
        decision @ (Decision::Run { scheduled } | Decision::ReplaceAndRun { scheduled }) => {
            status.last_schedule_time = Some(scheduled);
            let replace = if matches!(decision, Decision::ReplaceAndRun { .. }) { active } else { Vec::new() };
            let meta = schedule_child(schedule, &backup_name(&schedule.name_any(), scheduled), "schedule");
            let template = &spec.backup_template;
            let mut backup = backup_resource(meta, &spec.artifortress_ref.name, template.clone());
            backup.spec.object_lock = rules.lock.clone();
            (replace, Some(backup), Vec::new())
        }
        Decision::SkipBusy { scheduled } => {
            status.last_schedule_time = Some(scheduled);
            let note = format!(
                "skipped the run at {}: {} is still running (Forbid)",
                scheduled.to_rfc3339(),
                active.join(", ")
            );
            (Vec::new(), None, vec![(true, "RunSkipped", note)])
        }
        Decision::SkipMissed { scheduled } => {
            status.last_schedule_time = Some(scheduled);
            let note = format!(
                "missed the run at {} by more than startingDeadlineSeconds; waiting for the next one",
                scheduled.to_rfc3339()
            );
            (Vec::new(), None, vec![(true, "RunMissed", note)])
        }
        Decision::Wait { .. } | Decision::Suspended => (Vec::new(), None, Vec::new()),
    }
}

/// Failed backups and finished drills beyond the history limits.
fn beyond_history_limits(
    spec: &BackupScheduleSpec,
    backups: &[&Backup],
    drills: &[RecoveryDrill],
) -> (Vec<String>, Vec<String>) {
    let failed: Vec<Finished> = backups
        .iter()
        .filter(|b| backup_phase(b) == Some(BackupPhase::Failed))
        .map(|b| Finished {
            name: b.name_any(),
            finished_at: finished_at(b.meta(), b.status.as_ref().and_then(|s| s.completed_at.or(s.started_at))),
        })
        .collect();
    let finished_drills = |wanted: DrillPhase| -> Vec<Finished> {
        drills
            .iter()
            .filter(|d| d.status.as_ref().and_then(|s| s.phase) == Some(wanted))
            .map(|d| Finished {
                name: d.name_any(),
                finished_at: finished_at(d.meta(), d.status.as_ref().and_then(|s| s.completed_at)),
            })
            .collect()
    };
    let limits = &spec.history_limits;
    let mut forget_drills = retention::beyond_history(&finished_drills(DrillPhase::Succeeded), limits.succeeded_drills);
    forget_drills.extend(retention::beyond_history(&finished_drills(DrillPhase::Failed), limits.failed_drills));
    (retention::beyond_history(&failed, limits.failed_backups), forget_drills)
}

/// The drill the policy asks for now, if any (for the newest completed backup).
fn plan_drill(
    schedule: &BackupSchedule,
    rules: &Rules,
    backups: &[&Backup],
    status: &mut BackupScheduleStatus,
    now: DateTime<Utc>,
) -> Option<RecoveryDrill> {
    let (policy, interval) = (schedule.spec.drill.as_ref()?, rules.drill_interval?);
    let newest = newest_completed(backups).map(|(b, _)| b.name_any());
    let backup =
        drill_due(newest.as_deref(), status.last_drilled_backup.as_deref(), status.last_drill_time, interval, now)?;
    let drill = RecoveryDrill {
        metadata: schedule_child(schedule, &format!("{backup}-drill"), "drill"),
        spec: RecoveryDrillSpec {
            artifortress_ref: schedule.spec.artifortress_ref.clone(),
            backup: DrillBackup { mode: DrillBackupMode::Named, name: Some(backup.to_string()), ..Default::default() },
            // The drill restores the schedule's backup: by that backup's method.
            template: DrillTemplate { method: schedule.spec.backup_template.method, ..policy.template.clone() },
        },
        status: None,
    };
    status.last_drill_time = Some(now);
    status.last_drilled_backup = Some(backup.to_string());
    Some(drill)
}

/// Active backup, last success, last failure and last drill, as status shows them.
fn summarize(status: &mut BackupScheduleStatus, backups: &[&Backup], drills: &[&RecoveryDrill]) {
    status.active = backups.iter().find(|b| !is_finished(b)).map(|b| b.name_any());
    if let Some((b, at)) = newest_completed(backups) {
        status.last_successful_backup =
            Some(ObjectRefWithTime { name: b.name_any(), completed_at: Some(at), result: Some("Completed".into()) });
    }
    if let Some(b) = backups
        .iter()
        .filter(|b| backup_phase(b) == Some(BackupPhase::Failed))
        .max_by_key(|b| finished_at(b.meta(), b.status.as_ref().and_then(|s| s.started_at)))
    {
        let s = b.status.clone().unwrap_or_default();
        status.last_failure = Some(ScheduleFailure {
            backup: Some(b.name_any()),
            reason: s.message.unwrap_or_else(|| "failed".into()),
            time: finished_at(b.meta(), s.started_at),
        });
    }
    if let Some(d) = drills.iter().max_by_key(|d| d.meta().creation_timestamp.clone()) {
        let s = d.status.clone().unwrap_or_default();
        status.last_drill = Some(ObjectRefWithTime {
            name: d.name_any(),
            completed_at: s.completed_at,
            result: s.result.map(|r| format!("{r:?}")),
        });
    }
}

fn completed_at(b: &Backup) -> Option<DateTime<Utc>> {
    b.status.as_ref().filter(|s| s.phase == Some(BackupPhase::Completed))?.completed_at
}

fn newest_completed<'a>(backups: &[&'a Backup]) -> Option<(&'a Backup, DateTime<Utc>)> {
    backups.iter().filter_map(|b| Some((*b, completed_at(b)?))).max_by_key(|(_, t)| *t)
}

/// Deletes the backups retention let go (objects and resource), except those
/// still under S3 Object Lock: deleting them now would only hide them behind
/// delete markers, so they are planned for when their lock ends (every
/// reconcile decides retention anew and takes them then); returns when the
/// first of those locks ends.
async fn prune(
    ctx: &Context,
    schedule: &BackupSchedule,
    af: &Artifortress,
    backups: &Api<Backup>,
    names: &[String],
) -> Result<Option<DateTime<Utc>>, Error> {
    let ns = schedule.namespace().unwrap_or_default();
    let installation = &schedule.spec.artifortress_ref.name;
    let url = jobs::backup_store_url(&af.spec, installation);
    let store = ctx.backup_store(&ns, &af.spec, &url).await?;
    let mut first_unlocked: Option<DateTime<Utc>> = None;
    for backup in names {
        if let Some(until) = catalog::locked_until(store.as_ref(), backup).await? {
            first_unlocked = Some(first_unlocked.map_or(until, |t| t.min(until)));
            let until = until.to_rfc3339();
            let note = format!(
                "retention lets {backup} go, but it is locked (S3 Object Lock) until {until}: it is deleted then"
            );
            ctx.event(schedule, false, "DeletionPlanned", note).await;
            continue;
        }
        super::backup::delete_backup_data(store.as_ref(), backup).await?;
        super::delete_child(backups, backup).await?;
        ctx.event(schedule, false, "BackupPruned", format!("deleted {backup} (objects and resource) by retention"))
            .await;
    }
    // The schedule's base backups: the WAL only they needed goes with them.
    if schedule.spec.backup_template.method == BackupMethod::Physical
        && let Some(note) = super::backup::prune_wal(backups, installation, store.as_ref()).await?
    {
        ctx.event(schedule, false, "WalPruned", note).await;
    }
    Ok(first_unlocked)
}

/// Carries out a plan: stops, creates, prunes and forgets, with an Event for
/// each. Says when the first lock that held a backup back from pruning ends.
async fn apply(
    ctx: &Context,
    schedule: &BackupSchedule,
    af: &Artifortress,
    plan: &Plan,
) -> Result<Option<DateTime<Utc>>, Error> {
    let ns = schedule.namespace().unwrap_or_default();
    let backups: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    let drills: Api<RecoveryDrill> = Api::namespaced(ctx.client.clone(), &ns);
    for running in &plan.replace {
        super::delete_child(&backups, running).await?;
        ctx.event(schedule, false, "BackupReplaced", format!("stopped {running} for the next run")).await;
    }
    if let Some(backup) = &plan.create {
        super::create_child(&backups, backup).await?;
        let at = plan.status.last_schedule_time.map(|t| t.to_rfc3339()).unwrap_or_default();
        ctx.event(
            schedule,
            false,
            "BackupCreated",
            format!("created Backup {} for the run at {at}", backup.name_any()),
        )
        .await;
    }
    for (warning, reason, note) in &plan.events {
        ctx.event(schedule, *warning, reason, note.clone()).await;
    }
    let unlocked = match plan.prune.is_empty() {
        true => None,
        false => prune(ctx, schedule, af, &backups, &plan.prune).await?,
    };
    for name in &plan.forget_backups {
        super::delete_child(&backups, name).await?;
    }
    for name in &plan.forget_drills {
        super::delete_child(&drills, name).await?;
    }
    if let Some(drill) = &plan.drill {
        super::create_child(&drills, drill).await?;
        let backup = drill.spec.backup.name.as_deref().unwrap_or_default();
        let note = format!("created RecoveryDrill {} for {backup}", drill.name_any());
        ctx.event(schedule, false, "DrillCreated", note).await;
    }
    Ok(unlocked)
}

fn finished_at(meta: &ObjectMeta, at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    at.or_else(|| meta.creation_timestamp.as_ref().map(super::k8s_time)).unwrap_or_default()
}

/// Metadata of a child the schedule creates: the operator's labels plus the
/// schedule's, and the schedule as owner.
fn schedule_child(schedule: &BackupSchedule, name: &str, step: &str) -> ObjectMeta {
    let mut meta = super::child_meta(schedule, name, &schedule.spec.artifortress_ref.name, step);
    meta.labels.get_or_insert_default().insert(LABEL_SCHEDULE.into(), jobs::label_value(&schedule.name_any()));
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::artifortress::ObjectLockModeSpec;
    use crate::api::common::CheckpointMode;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn completed(name: &str, at: &str) -> Backup {
        object(serde_json::json!({
            "apiVersion": "artifortress.io/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"artifortressRef": {"name": "production"}},
            "status": {"phase": "Completed", "completedAt": at},
        }))
    }

    #[test]
    fn a_due_run_creates_its_backup_retention_prunes_and_status_follows() {
        let schedule: BackupSchedule = object(serde_json::json!({
            "apiVersion": "artifortress.io/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": "nightly", "namespace": "prod", "uid": "u-1", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 * * * *", "retention": {"keepLast": 1}},
            "status": {"lastScheduleTime": "2026-11-28T01:00:00Z"},
        }));
        let children = Children {
            backups: vec![
                completed("nightly-202611280000", "2026-11-28T00:05:00Z"),
                completed("nightly-202611280100", "2026-11-28T01:05:00Z"),
            ],
            drills: Vec::new(),
            in_use: BTreeSet::new(),
        };
        let rules = Rules::parse(&schedule.spec).unwrap();
        let plan = plan(&schedule, &rules, &children, at("2026-11-28T02:00:30Z"), Duration::from_secs(300));
        let held = Children { in_use: BTreeSet::from(["nightly-202611280000".to_string()]), ..children.clone() };
        let held = super::plan(&schedule, &rules, &held, at("2026-11-28T02:00:30Z"), Duration::from_secs(300));
        assert!(held.prune.is_empty(), "a backup a drill restores is kept");

        let created = plan.create.expect("the 02:00 run is due");
        assert_eq!(created.name_any(), "nightly-202611280200");
        assert_eq!(created.labels().get(LABEL_SCHEDULE).map(String::as_str), Some("nightly"));
        assert_eq!(created.owner_references()[0].uid, "u-1");
        assert_eq!(plan.prune, ["nightly-202611280000"], "keepLast 1 keeps the newest success");
        assert!(plan.replace.is_empty() && plan.drill.is_none() && plan.events.is_empty());
        assert_eq!(plan.status.last_schedule_time, Some(at("2026-11-28T02:00:00Z")));
        assert_eq!(plan.status.active.as_deref(), Some("nightly-202611280200"));
        assert_eq!(plan.status.last_successful_backup.map(|b| b.name).as_deref(), Some("nightly-202611280100"));
        assert_eq!(plan.status.next_schedule_time, Some(at("2026-11-28T03:00:00Z")));
        assert_eq!(plan.requeue, Duration::from_secs(300), "never longer than the longest wait");
    }

    #[test]
    fn a_locking_retention_locks_each_backup_for_its_max_age_and_needs_one() {
        let with = |retention: serde_json::Value| -> BackupSchedule {
            object(serde_json::json!({
                "apiVersion": "artifortress.io/v1alpha1", "kind": "BackupSchedule",
                "metadata": {"name": "nightly", "namespace": "prod", "uid": "u-1", "creationTimestamp": "2026-11-01T00:00:00Z"},
                "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 * * * *", "retention": retention},
                "status": {"lastScheduleTime": "2026-11-28T01:00:00Z"},
            }))
        };
        let refused = Rules::parse(&with(serde_json::json!({"keepLast": 3, "lockMode": "Compliance"})).spec);
        assert!(refused.err().is_some_and(|e| e.contains("retention.lockMode needs retention.maxAge")));
        let schedule = with(serde_json::json!({"maxAge": "14d", "lockMode": "Governance"}));
        let rules = Rules::parse(&schedule.spec).unwrap();
        let children = Children { backups: Vec::new(), drills: Vec::new(), in_use: BTreeSet::new() };
        let plan = plan(&schedule, &rules, &children, at("2026-11-28T02:00:30Z"), Duration::from_secs(300));
        let lock = plan.create.expect("the 02:00 run is due").spec.object_lock.expect("locked");
        assert_eq!((lock.mode, lock.retain.0.as_str()), (ObjectLockModeSpec::Governance, "14d"));
    }

    #[test]
    fn a_schedule_of_base_backups_creates_physical_backups_and_physical_drills() {
        let schedule: BackupSchedule = object(serde_json::json!({
            "apiVersion": "artifortress.io/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": "base", "namespace": "prod", "uid": "u-2", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"artifortressRef": {"name": "production"}, "schedule": "0 * * * *",
                     "backupTemplate": {"method": "Physical", "checkpoint": "Fast"},
                     "drill": {"minInterval": "0s", "template": {"rpo": "30s", "recoveryTarget": "random:1h"}}},
            "status": {"lastScheduleTime": "2026-11-28T01:00:00Z"},
        }));
        let mut base = completed("base-202611280100", "2026-11-28T01:05:00Z");
        base.spec.method = BackupMethod::Physical;
        let children = Children { backups: vec![base], drills: Vec::new(), in_use: BTreeSet::new() };
        let rules = Rules::parse(&schedule.spec).unwrap();
        let plan = plan(&schedule, &rules, &children, at("2026-11-28T02:00:30Z"), Duration::from_secs(300));
        let created = plan.create.expect("the 02:00 run is due");
        assert_eq!((created.spec.method, created.spec.checkpoint), (BackupMethod::Physical, CheckpointMode::Fast));
        let drill = plan.drill.expect("a drill of the completed base");
        assert_eq!(drill.spec.backup.name.as_deref(), Some("base-202611280100"));
        assert_eq!(drill.spec.template.method, BackupMethod::Physical, "the schedule's method decides");
        assert_eq!(drill.spec.template.recovery_target.as_deref(), Some("random:1h"));
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
