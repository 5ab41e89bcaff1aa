//! A whole recovery drill: backup (fresh or existing) → verified restore into a
//! scratch database → parity → RPO/RTO verdict → report, then cleanup.
//!
//! Operational failures (a corrupt backup, a failed pg_restore, a parity
//! mismatch, a missed objective) end in a `Failed` verdict that still carries
//! everything measured; mistakes in the request (bad URLs, the target being the
//! source) are returned as errors.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::api::recovery_drill::{DrillBackupInfo, DrillPhase, DrillResult, DrillTimings, RecoveryDrillStatus};
use crate::db::DatabaseUrl;
use crate::store::BackupStore;

use super::EngineError;
use super::backup::{self, BackupRequest};
use super::manifest::Manifest;
use super::objectives;
use super::progress::{Progress, human_duration};
use super::report::{self, ReportContext};
use super::restore::{self, RestoreRequest};

/// Which backup a drill restores.
#[derive(Clone, Debug)]
pub enum BackupChoice {
    /// Take a new backup of the source first.
    Fresh(BackupRequest),
    /// The newest complete backup in the store.
    Latest,
    /// A named backup in the store.
    Named(String),
}

#[derive(Clone, Debug)]
pub struct DrillRequest {
    /// Needed for a fresh backup.
    pub source: Option<DatabaseUrl>,
    pub target: DatabaseUrl,
    pub backup: BackupChoice,
    /// Jobs, tables, verification mode and staging; `backup` is filled in by the drill.
    pub restore: RestoreRequest,
    pub rpo: Option<Duration>,
    pub rto: Option<Duration>,
    /// Keep the scratch database for inspection.
    pub keep_target: bool,
}

pub struct DrillOutcome {
    pub status: RecoveryDrillStatus,
    pub report_markdown: String,
}

impl DrillOutcome {
    pub fn passed(&self) -> bool {
        self.status.result == Some(DrillResult::Passed)
    }
}

pub async fn run(
    store: &dyn BackupStore,
    request: &DrillRequest,
    progress: &Progress,
) -> Result<DrillOutcome, EngineError> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let mut status = RecoveryDrillStatus { started_at: Some(started_at), ..Default::default() };
    let mut timings = DrillTimings::default();

    // 1. The backup.
    let (backup_name, fresh) = match &request.backup {
        BackupChoice::Fresh(backup_request) => {
            let source = request.source.as_ref().ok_or_else(|| {
                EngineError::Config(
                    "a drill with a fresh backup needs --source (or pick --backup NAME / --latest)".into(),
                )
            })?;
            progress.step(format!("backing up {source} as {}", backup_request.name));
            let t = Instant::now();
            let result = backup::run(source, store, backup_request, progress).await;
            timings.backup_seconds = Some(t.elapsed().as_secs_f64());
            match result {
                Ok(manifest) => (manifest.backup_name, true),
                Err(e) if e.is_usage() => return Err(e),
                Err(e) => {
                    status.failures.push(format!("backup: {e}"));
                    return Ok(finish(status, timings, clock, store, request, progress).await);
                }
            }
        }
        BackupChoice::Named(name) => (name.clone(), false),
        BackupChoice::Latest => {
            let latest = Manifest::list(store).await?.pop().ok_or_else(|| {
                EngineError::Config(format!(
                    "no complete backup in {}; take one first or drill with a fresh backup",
                    store.url()
                ))
            })?;
            progress.step(format!("latest backup is {}", latest.backup_name));
            (latest.backup_name, false)
        }
    };

    // 2. Restore, verify, measure.
    let restore_request = RestoreRequest { backup: backup_name.clone(), ..request.restore.clone() };
    match restore::run(store, &request.target, &restore_request, progress).await {
        Ok(outcome) => {
            let m = &outcome.manifest;
            status.backup = Some(DrillBackupInfo {
                name: m.backup_name.clone(),
                location: store.location(&format!("{}/", m.backup_name)),
                snapshot_time: m.snapshot_time,
                completed_at: m.completed_at,
                fresh,
            });
            timings.download_seconds = Some(outcome.download_seconds);
            timings.restore_seconds = Some(outcome.restore_seconds);
            timings.parity_seconds = Some(outcome.parity_seconds);
            let rpo = objectives::measured_rpo(m.snapshot_time, m.completed_at, started_at, fresh);
            let rto = (outcome.verified_at - outcome.started_at).num_milliseconds() as f64 / 1000.0;
            let (rpo, rpo_failure) = objectives::evaluate("RPO", rpo, request.rpo);
            let (rto, rto_failure) = objectives::evaluate("RTO", rto, request.rto);
            status.failures.extend(outcome.failures);
            status.failures.extend(rpo_failure);
            status.failures.extend(rto_failure);
            status.rpo = Some(rpo);
            status.rto = Some(rto);
            status.parity = outcome.parity;
        }
        Err(e) if e.is_usage() => return Err(e),
        Err(e) => status.failures.push(format!("restore: {e}")),
    }
    Ok(finish(status, timings, clock, store, request, progress).await)
}

/// Verdict, cleanup and report; never fails the drill for a cleanup problem,
/// but says so.
async fn finish(
    mut status: RecoveryDrillStatus,
    mut timings: DrillTimings,
    clock: Instant,
    store: &dyn BackupStore,
    request: &DrillRequest,
    progress: &Progress,
) -> DrillOutcome {
    if !request.keep_target
        && let Err(e) = restore::drop_database(&request.target).await
    {
        progress.step(format!("warning: could not drop the scratch database: {e}"));
    }
    let passed = status.failures.is_empty();
    status.result = Some(if passed { DrillResult::Passed } else { DrillResult::Failed });
    status.phase = Some(if passed { DrillPhase::Succeeded } else { DrillPhase::Failed });
    timings.total_seconds = Some(clock.elapsed().as_secs_f64());
    status.timings = Some(timings);
    status.completed_at = Some(Utc::now());

    let drill_name = status.started_at.unwrap_or_else(Utc::now).format("drill-%Y%m%d-%H%M%S").to_string();
    let source = request.source.as_ref().map(|s| s.to_string());
    let target = request.target.to_string();
    let store_url = store.url();
    let ctx = ReportContext { drill_name: &drill_name, source: source.as_deref(), target: &target, store: &store_url };
    // Stored next to the backup it drilled, so the proof travels with the data.
    if let Some(backup) = &status.backup {
        let key = format!("{}/drills/{drill_name}.md", backup.name);
        status.report = Some(store.location(&key));
        let markdown = report::render(&status, &ctx);
        if let Err(e) = store.put_bytes(&key, markdown.into_bytes()).await {
            progress.step(format!("warning: could not store the report: {e}"));
            status.report = None;
        }
    }
    let report_markdown = report::render(&status, &ctx);
    progress.step(format!(
        "verdict {}: RPO {}, RTO {}, {} of {} tables match{}",
        if passed { "PASSED" } else { "FAILED" },
        status.rpo.as_ref().map_or("n/a".into(), |o| o.summary.clone()),
        status.rto.as_ref().map_or("n/a".into(), |o| o.summary.clone()),
        status.parity.iter().filter(|p| p.matches).count(),
        status.parity.len(),
        status
            .timings
            .as_ref()
            .and_then(|t| t.total_seconds)
            .map_or(String::new(), |s| format!(" in {}", human_duration(s)))
    ));
    DrillOutcome { status, report_markdown }
}
