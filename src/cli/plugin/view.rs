//! What `status` says of one installation, derived from the resources alone
//! (the `Artifortress`, its `Backup`s, `RecoveryDrill`s and Jobs) and a clock,
//! so the same objects always give the same screen.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use serde::Serialize;

use artifortress_operator::api::artifortress::{Artifortress, DependencyState, SchemaStatus, Severity, SloSignal};
use artifortress_operator::api::backup::{Backup, BackupPhase};
use artifortress_operator::api::common::{BackupMethod, Condition, ConditionStatus};
use artifortress_operator::api::recovery_drill::{DrillPhase, DrillResult, ObjectiveResult, RecoveryDrill};
use artifortress_operator::controller::jobs::LABEL_STEP;
use artifortress_operator::engine::physical::Lsn;

/// How an installation stands, worst first when sorted.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Failing,
    Degraded,
    Healthy,
}

/// Everything `status` shows of one installation.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct InstallationView {
    pub name: String,
    pub namespace: String,
    pub health: Health,
    /// Why it is not healthy, most serious first.
    pub problems: Vec<String>,
    pub dependencies: Vec<DependencyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaStatus>,
    /// SLO signals of the worst tenants, worst first.
    pub slo: Vec<SloSignal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_backup: Option<BackupView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<DrillView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalView>,
    /// Condition `BlobsRecoverable`: can older restore points get their blobs back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<ConditionView>,
    pub active_jobs: Vec<JobView>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DependencyView {
    pub name: &'static str,
    /// None: not probed yet.
    pub up: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    pub name: String,
    pub method: BackupMethod,
    pub completed_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    /// The RPO objective of the installation's last drill, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo_objective_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Whom it is encrypted to (`passphrase` for a passphrase); empty: not encrypted.
    pub encrypted_to: Vec<String>,
    /// Condition `BackupsImmutable` of the installation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<ConditionView>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DrillView {
    pub name: String,
    pub result: Option<DrillResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo: Option<ObjectiveResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto: Option<ObjectiveResult>,
    /// From the start of the restore until the database answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usable_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tampering: Vec<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct WalView {
    pub slot: String,
    /// How old the archiver's last status is.
    pub status_age_seconds: f64,
    /// WAL the source has written and the archive has not received yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_bytes: Option<u64>,
    pub retained_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trouble: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub name: String,
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

/// An archiver whose status is older than this has stopped reporting.
const WAL_STATUS_STALE_SECONDS: f64 = 300.0;

/// The view of `installation` from its Backups, drills and Jobs (any order;
/// only those of this installation are used) at `now`.
pub fn installation_view(
    installation: &Artifortress,
    backups: &[Backup],
    drills: &[RecoveryDrill],
    jobs: &[Job],
    now: DateTime<Utc>,
) -> InstallationView {
    let name = installation.name_any();
    let status = installation.status.clone().unwrap_or_default();
    let condition = |type_: &str| status.conditions.iter().find(|c| c.type_ == type_).map(condition_view);
    let dependency = |name, d: &Option<artifortress_operator::api::artifortress::DependencyStatus>| DependencyView {
        name,
        up: d.as_ref().map(|d| d.state == DependencyState::Up),
        latency_ms: d.as_ref().map(|d| d.latency_ms),
        error: d.as_ref().and_then(|d| d.error.clone()),
    };
    let mut slo = status.slo.as_ref().map(|s| s.signals.clone()).unwrap_or_default();
    slo.retain(|s| s.severity != Severity::Ok);
    slo.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.signal.cmp(&b.signal)));
    let last_drill = newest_drill(&name, drills, now);
    let rpo_objective = last_drill.as_ref().and_then(|d| d.rpo.as_ref()).and_then(|o| o.objective_seconds);
    let newest_backup = newest_backup(&name, backups, now).map(|mut b| {
        b.rpo_objective_seconds = rpo_objective;
        b.immutable = condition("BackupsImmutable");
        b
    });
    let wal = status.wal.as_ref().map(|w| WalView {
        slot: w.slot.clone(),
        status_age_seconds: seconds(now - w.updated_at),
        behind_bytes: lsn(w.server_lsn.as_deref())
            .zip(lsn(w.received_lsn.as_deref()))
            .map(|(s, r)| s.saturating_sub(r)),
        retained_bytes: w.retained_bytes,
        trouble: w.stopped.clone().or_else(|| w.stalled.clone()),
    });
    let mut view = InstallationView {
        namespace: installation.namespace().unwrap_or_default(),
        health: Health::Healthy,
        problems: Vec::new(),
        dependencies: vec![
            dependency("database", &status.database),
            dependency("object storage", &status.object_storage),
        ],
        schema: status.schema.clone(),
        slo,
        newest_backup,
        last_drill,
        wal,
        blobs: condition("BlobsRecoverable"),
        active_jobs: active_jobs(&name, jobs),
        name,
    };
    judge(&mut view, condition("Ready"));
    view
}

fn condition_view(c: &Condition) -> ConditionView {
    ConditionView { ok: c.status == ConditionStatus::True, reason: c.reason.clone(), message: c.message.clone() }
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// `16/B374D848` as a number.
fn lsn(text: Option<&str>) -> Option<u64> {
    text?.parse::<Lsn>().ok().map(|l| l.0)
}

fn newest_backup(installation: &str, backups: &[Backup], now: DateTime<Utc>) -> Option<BackupView> {
    let completed = backups.iter().filter(|b| b.spec.artifortress_ref.name == installation).filter_map(|b| {
        let s = b.status.as_ref()?;
        (s.phase == Some(BackupPhase::Completed)).then_some((s.completed_at, b, s))
    });
    let (completed_at, backup, status) = completed.max_by_key(|(at, b, _)| (*at, b.name_any()))?;
    let encrypted_to = status
        .encryption
        .as_ref()
        .map_or_else(Vec::new, |e| if e.passphrase { vec!["passphrase".to_string()] } else { e.recipients.clone() });
    Some(BackupView {
        name: backup.name_any(),
        method: backup.spec.method,
        completed_at,
        age_seconds: completed_at.map(|at| seconds(now - at)),
        rpo_objective_seconds: None,
        size: status.size.clone(),
        encrypted_to,
        immutable: None,
    })
}

fn newest_drill(installation: &str, drills: &[RecoveryDrill], now: DateTime<Utc>) -> Option<DrillView> {
    let finished = drills.iter().filter(|d| d.spec.artifortress_ref.name == installation).filter_map(|d| {
        let s = d.status.as_ref()?;
        matches!(s.phase, Some(DrillPhase::Succeeded | DrillPhase::Failed)).then_some((s.completed_at, d, s))
    });
    let (completed_at, drill, s) = finished.max_by_key(|(at, d, _)| (*at, d.name_any()))?;
    Some(DrillView {
        name: drill.name_any(),
        result: s.result,
        reason: s.reason.clone().filter(|_| s.result != Some(DrillResult::Passed)),
        completed_at,
        age_seconds: completed_at.map(|at| seconds(now - at)),
        backup: s.backup.as_ref().map(|b| b.name.clone()),
        rpo: s.rpo.clone(),
        rto: s.rto.clone(),
        usable_seconds: s.timings.as_ref().and_then(|t| t.usable_seconds),
        failures: s.failures.clone(),
        tampering: s.tampering.clone(),
    })
}

fn active_jobs(installation: &str, jobs: &[Job]) -> Vec<JobView> {
    let mut active: Vec<JobView> = jobs
        .iter()
        .filter(|j| {
            j.labels().get(artifortress_operator::controller::jobs::LABEL_INSTALLATION).map(String::as_str)
                == Some(installation)
        })
        .filter(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0)
        .map(|j| JobView {
            name: j.name_any(),
            step: j.labels().get(LABEL_STEP).cloned().unwrap_or_default(),
            started_at: j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(artifortress_operator::controller::k8s_time),
        })
        .collect();
    active.sort_by(|a, b| a.name.cmp(&b.name));
    active
}

/// Health and problems: failing when it cannot be restored as proven (a
/// dependency down, no good backup, the last drill failed, not ready);
/// degraded when something erodes that proof.
fn judge(view: &mut InstallationView, ready: Option<ConditionView>) {
    let mut failing = Vec::new();
    let mut degraded = Vec::new();
    for d in &view.dependencies {
        if d.up == Some(false) {
            failing.push(format!("{} down: {}", d.name, d.error.as_deref().unwrap_or("no answer")));
        }
    }
    match &ready {
        Some(r) if !r.ok && failing.is_empty() => failing.push(format!("not ready ({}): {}", r.reason, r.message)),
        None => degraded.push("no status yet: is the operator running?".to_string()),
        _ => {}
    }
    match &view.newest_backup {
        None => failing.push("no completed backup".into()),
        Some(b) => {
            if let (Some(age), Some(objective)) = (b.age_seconds, b.rpo_objective_seconds)
                && age > objective
            {
                degraded.push(format!(
                    "newest backup {} is {} old, over the RPO objective {}",
                    b.name,
                    short_duration(age),
                    short_duration(objective)
                ));
            }
        }
    }
    match &view.last_drill {
        None => degraded.push("no finished drill: nothing proves a restore works".into()),
        Some(d) if d.result != Some(DrillResult::Passed) => failing.push(format!(
            "last drill {} failed ({}): {}",
            d.name,
            d.reason.as_deref().unwrap_or("Failed"),
            d.failures.first().map_or("", String::as_str)
        )),
        Some(d) if !d.tampering.is_empty() => {
            degraded.push(format!("last drill {} found {} tampered object(s)", d.name, d.tampering.len()))
        }
        Some(_) => {}
    }
    if let Some(s) = &view.schema
        && !s.supported
    {
        degraded.push(format!("schema {} lacks: {}", s.level.as_deref().unwrap_or("unknown"), s.missing.join(", ")));
    }
    if let Some(worst) = view.slo.first() {
        degraded.push(format!(
            "SLO {:?}: {} {} at {}",
            worst.severity,
            worst.tenant.as_deref().unwrap_or("-"),
            worst.signal,
            worst.value
        ));
    }
    if let Some(w) = &view.wal {
        if let Some(trouble) = &w.trouble {
            degraded.push(format!("WAL archiving: {trouble}"));
        } else if w.status_age_seconds > WAL_STATUS_STALE_SECONDS {
            degraded.push(format!("WAL archiver silent for {}", short_duration(w.status_age_seconds)));
        }
    }
    if let Some(b) = view.blobs.as_ref().filter(|b| !b.ok && b.reason != "Unknown") {
        degraded.push(format!("blobs of older restore points: {}", b.reason));
    }
    view.health = if !failing.is_empty() {
        Health::Failing
    } else if !degraded.is_empty() {
        Health::Degraded
    } else {
        Health::Healthy
    };
    view.problems = failing.into_iter().chain(degraded).collect();
}

/// `45s`, `12m`, `3h12m`, `2d4h`.
pub fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}
