//! A whole recovery drill: backup (fresh or existing) → verified restore into a
//! scratch database → parity → RPO/RTO verdict → report, then cleanup.
//!
//! Operational failures (a corrupt backup, a failed pg_restore, a parity
//! mismatch, a missed objective) end in a `Failed` verdict that still carries
//! everything measured; mistakes in the request (bad URLs, the target being the
//! source) are returned as errors.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// Where a drill stands after its restore step. In the cluster, restore and
/// verification are separate Jobs and this record travels between them through
/// the store, next to the backup (`<backup>/drills/<drill>.restore.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    pub drill: String,
    pub drill_started_at: DateTime<Utc>,
    /// Empty when no backup could be chosen or taken.
    pub backup: String,
    pub fresh: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// Whether the scratch database was (re)created, and so is ours to drop.
    #[serde(default)]
    pub scratch_created: bool,
    /// Failures so far; a record with failures goes straight to the verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl RestoreRecord {
    pub fn new(drill: &str, drill_started_at: DateTime<Utc>, backup: &str, fresh: bool) -> Self {
        RestoreRecord {
            drill: drill.to_string(),
            drill_started_at,
            backup: backup.to_string(),
            fresh,
            backup_seconds: None,
            restore_started_at: None,
            download_seconds: None,
            restore_seconds: None,
            scratch_created: false,
            failures: Vec::new(),
        }
    }

    pub fn key(backup: &str, drill: &str) -> String {
        format!("{backup}/drills/{drill}.restore.json")
    }
}

/// Where a drill's verdict (the JSON of `RecoveryDrill.status`) and report are stored.
pub fn result_key(backup: &str, drill: &str) -> String {
    format!("{backup}/drills/{drill}.json")
}

pub fn report_key(backup: &str, drill: &str) -> String {
    format!("{backup}/drills/{drill}.md")
}

/// The whole drill in one process (the local `drill` command).
pub async fn run(
    store: &dyn BackupStore,
    request: &DrillRequest,
    progress: &Progress,
) -> Result<DrillOutcome, EngineError> {
    let started_at = Utc::now();
    let drill = started_at.format("drill-%Y%m%d-%H%M%S").to_string();

    // 1. The backup.
    let mut record = match &request.backup {
        BackupChoice::Fresh(backup_request) => {
            let source = request.source.as_ref().ok_or_else(|| {
                EngineError::Config(
                    "a drill with a fresh backup needs --source (or pick --backup NAME / --latest)".into(),
                )
            })?;
            progress.step(format!("backing up {source} as {}", backup_request.name));
            let t = Instant::now();
            let result = backup::run(source, store, backup_request, progress).await;
            let mut record = RestoreRecord::new(&drill, started_at, "", true);
            record.backup_seconds = Some(t.elapsed().as_secs_f64());
            match result {
                Ok(manifest) => record.backup = manifest.backup_name,
                Err(e) if e.is_usage() => return Err(e),
                Err(e) => {
                    record.failures.push(format!("backup: {e}"));
                    return conclude(store, request, record, progress).await;
                }
            }
            record
        }
        BackupChoice::Named(name) => RestoreRecord::new(&drill, started_at, name, false),
        BackupChoice::Latest => {
            let latest = Manifest::list(store).await?.pop().ok_or_else(|| {
                EngineError::Config(format!(
                    "no complete backup in {}; take one first or drill with a fresh backup",
                    store.url()
                ))
            })?;
            progress.step(format!("latest backup is {}", latest.backup_name));
            RestoreRecord::new(&drill, started_at, &latest.backup_name, false)
        }
    };

    // 2. Restore, verify, measure.
    restore_step(store, request, &mut record, progress).await?;
    conclude(store, request, record, progress).await
}

/// Restores the record's backup into the scratch database. Operational
/// failures are added to the record; mistakes in the request are returned.
pub async fn restore_step(
    store: &dyn BackupStore,
    request: &DrillRequest,
    record: &mut RestoreRecord,
    progress: &Progress,
) -> Result<(), EngineError> {
    let restore_request = RestoreRequest { backup: record.backup.clone(), ..request.restore.clone() };
    record.restore_started_at = Some(Utc::now());
    let staged = match restore::stage(store, &request.target, &restore_request, progress).await {
        Ok(staged) => staged,
        Err(e) if e.is_usage() => return Err(e),
        Err(e) => {
            record.failures.push(format!("restore: {e}"));
            return Ok(());
        }
    };
    record.scratch_created = true;
    match restore::load(&request.target, staged, &restore_request, progress).await {
        Ok(restored) => {
            record.download_seconds = Some(restored.download_seconds);
            record.restore_seconds = Some(restored.restore_seconds);
        }
        Err(e) => record.failures.push(format!("restore: {e}")),
    }
    Ok(())
}

/// Parity (when the restore succeeded), RPO/RTO, verdict, report, cleanup.
/// Everything measured is reported, also for a failed drill; mistakes in the
/// request are returned.
pub async fn conclude(
    store: &dyn BackupStore,
    request: &DrillRequest,
    record: RestoreRecord,
    progress: &Progress,
) -> Result<DrillOutcome, EngineError> {
    let mut status = RecoveryDrillStatus {
        started_at: Some(record.drill_started_at),
        failures: record.failures.clone(),
        ..Default::default()
    };
    let mut timings = DrillTimings {
        backup_seconds: record.backup_seconds,
        download_seconds: record.download_seconds,
        restore_seconds: record.restore_seconds,
        ..Default::default()
    };
    let manifest = match record.backup.as_str() {
        "" => None,
        name => match Manifest::load(store, name).await {
            Ok(m) => Some(m),
            Err(e) => {
                if status.failures.is_empty() {
                    status.failures.push(format!("verify: {e}"));
                }
                None
            }
        },
    };
    if let Some(m) = &manifest {
        // A fresh backup taken by another Job: its own duration.
        if record.fresh && timings.backup_seconds.is_none() {
            timings.backup_seconds = Some((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0);
        }
        status.backup = Some(DrillBackupInfo {
            name: m.backup_name.clone(),
            location: store.location(&format!("{}/", m.backup_name)),
            snapshot_time: m.snapshot_time,
            completed_at: m.completed_at,
            fresh: record.fresh,
        });
    }
    if let (Some(m), true) = (&manifest, status.failures.is_empty()) {
        let expected = restore::expected_tables(m, &request.restore.tables)?;
        let jobs = restore::default_jobs(request.restore.jobs);
        match restore::verify(&request.target, &expected, request.restore.verify, jobs, progress).await {
            Ok(verified) => {
                let verified_at = Utc::now();
                timings.parity_seconds = Some(verified.seconds);
                status.parity = verified.parity;
                status.failures.extend(verified.failures);
                let rpo =
                    objectives::measured_rpo(m.snapshot_time, m.completed_at, record.drill_started_at, record.fresh);
                let restore_started = record.restore_started_at.unwrap_or(record.drill_started_at);
                let rto = (verified_at - restore_started).num_milliseconds() as f64 / 1000.0;
                let (rpo, rpo_failure) = objectives::evaluate("RPO", rpo, request.rpo);
                let (rto, rto_failure) = objectives::evaluate("RTO", rto, request.rto);
                status.failures.extend(rpo_failure);
                status.failures.extend(rto_failure);
                status.rpo = Some(rpo);
                status.rto = Some(rto);
            }
            Err(e) if e.is_usage() => return Err(e),
            Err(e) => status.failures.push(format!("verify: {e}")),
        }
    }
    Ok(finish(status, timings, store, request, &record, progress).await)
}

/// Verdict, cleanup and report; never fails the drill for a cleanup problem,
/// but says so.
async fn finish(
    mut status: RecoveryDrillStatus,
    mut timings: DrillTimings,
    store: &dyn BackupStore,
    request: &DrillRequest,
    record: &RestoreRecord,
    progress: &Progress,
) -> DrillOutcome {
    if record.scratch_created
        && !request.keep_target
        && let Err(e) = restore::drop_database(&request.target).await
    {
        progress.step(format!("warning: could not drop the scratch database: {e}"));
    }
    let passed = status.failures.is_empty();
    status.result = Some(if passed { DrillResult::Passed } else { DrillResult::Failed });
    status.phase = Some(if passed { DrillPhase::Succeeded } else { DrillPhase::Failed });
    let completed_at = Utc::now();
    timings.total_seconds = Some((completed_at - record.drill_started_at).num_milliseconds() as f64 / 1000.0);
    status.timings = Some(timings);
    status.completed_at = Some(completed_at);

    let source = request.source.as_ref().map(|s| s.to_string());
    let target = request.target.to_string();
    let store_url = store.url();
    let ctx =
        ReportContext { drill_name: &record.drill, source: source.as_deref(), target: &target, store: &store_url };
    // Stored next to the backup it drilled, so the proof travels with the data.
    if status.backup.is_some() {
        let key = report_key(&record.backup, &record.drill);
        status.report = Some(store.location(&key));
        let markdown = report::render(&status, &ctx);
        if let Err(e) = store.put_bytes(&key, markdown.into_bytes()).await {
            progress.step(format!("warning: could not store the report: {e}"));
            status.report = None;
        }
        let json = serde_json::to_vec_pretty(&status).expect("status serialises");
        if let Err(e) = store.put_bytes(&result_key(&record.backup, &record.drill), json).await {
            progress.step(format!("warning: could not store the result: {e}"));
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
