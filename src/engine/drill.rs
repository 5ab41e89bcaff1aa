//! A whole recovery drill: backup (fresh or existing) → verified restore into a
//! scratch database → parity → RPO/RTO verdict → report, then cleanup.
//!
//! Operational failures (a corrupt backup, a failed pg_restore, a parity
//! mismatch, a missed objective) end in a `Failed` verdict that still carries
//! everything measured; mistakes in the request (bad URLs, the target being the
//! source) are returned as errors.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::db::DatabaseUrl;
use crate::store::BackupStore;

use super::EngineError;
use super::backup::{self, BackupRequest};
use super::checks::RestoredCheck;
use super::encryption::KEY_UNAVAILABLE;
use super::history;
use super::layout::{DrillEntry, chart_file, chart_key, report_key, result_key};
use super::manifest::{self, Manifest};
use super::objectives;
use super::progress::{Progress, human_duration};
pub use super::record::RestoreRecord;
use super::report::{self, ReportContext};
use super::restore::{self, RestoreRequest};
use super::scratch::Maintenance;
use super::verdict::{
    ApplicationCheck, BackupInfo, BlobCheck, DrillResult, FinalPhase, ObjectiveResult, RtoBasis, ServerMajors,
    TableParity, Timings, Verdict,
};

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
    /// Which recovery time the RTO objective judges.
    pub rto_basis: RtoBasis,
    /// Keep the scratch database for inspection.
    pub keep_target: bool,
}

pub struct DrillOutcome {
    pub verdict: Verdict,
    pub report_markdown: String,
    /// The history chart the report links: its file name (relative to the
    /// report) and the SVG.
    pub history_chart: Option<(String, String)>,
}

impl DrillOutcome {
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }
}

/// Adds a failed step to a restore record, with the reason drills report
/// (the error's own, or the step's).
pub fn record_failure(record: &mut RestoreRecord, step: &str, error: &EngineError) {
    let reason = error.reason().unwrap_or(match step {
        "backup" => "BackupFailed",
        _ => "RestoreFailed",
    });
    record.reason.get_or_insert_with(|| reason.to_string());
    record.failures.push(format!("{step}: {error}"));
}

/// The whole drill in one process (the local `drill` command).
pub async fn run(
    store: &dyn BackupStore,
    request: &DrillRequest,
    check: Option<&dyn RestoredCheck>,
    progress: &Progress,
) -> Result<DrillOutcome, EngineError> {
    let started_at = Utc::now();
    let drill = started_at.format("drill-%Y%m%d-%H%M%S").to_string();
    let mut maintenance = Maintenance::new(&request.target, progress);

    // 1. The backup.
    let mut record = match &request.backup {
        BackupChoice::Fresh(backup_request) => {
            let source = request.source.as_ref().ok_or_else(|| {
                EngineError::Config(
                    "a drill with a fresh backup needs --source (or pick --backup NAME / --latest)".into(),
                )
            })?;
            // A target the restore would refuse is refused before the backup is taken.
            // (An unreachable server is the restore step's failure to report.)
            if let Err(e @ EngineError::Refused { .. }) = maintenance.check_target().await {
                return Err(e);
            }
            progress.step(format!("backing up {source} as {}", backup_request.name));
            let t = Instant::now();
            let result = backup::run(source, store, backup_request, progress).await;
            let mut record = RestoreRecord::new(&drill, started_at, "", true);
            record.backup_seconds = Some(t.elapsed().as_secs_f64());
            match result {
                Ok(manifest) => record.backup = manifest.backup_name,
                Err(e) if e.is_usage() => return Err(e),
                Err(e) => {
                    record_failure(&mut record, "backup", &e);
                    return conclude(store, &mut maintenance, request, record, None, progress).await;
                }
            }
            record
        }
        BackupChoice::Named(name) => RestoreRecord::new(&drill, started_at, name, false),
        BackupChoice::Latest => {
            let catalog = manifest::list(store).await?;
            for (backup, why) in &catalog.unreadable {
                progress.step(format!("skipping backup {backup}: {why}"));
            }
            let latest = catalog.latest().ok_or_else(|| {
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
    restore_step(store, &mut maintenance, request, &mut record, progress).await?;
    conclude(store, &mut maintenance, request, record, check, progress).await
}

/// Restores the record's backup into the scratch database. Operational
/// failures are added to the record; mistakes in the request are returned.
pub async fn restore_step(
    store: &dyn BackupStore,
    maintenance: &mut Maintenance,
    request: &DrillRequest,
    record: &mut RestoreRecord,
    progress: &Progress,
) -> Result<(), EngineError> {
    let restore_request = RestoreRequest { backup: record.backup.clone(), ..request.restore.clone() };
    record.manifest_version_id = restore_request.manifest_version.clone();
    record.restore_started_at = Some(Utc::now());
    let staged = match restore::stage(store, maintenance, &request.target, &restore_request, progress).await {
        Ok(staged) => staged,
        // A backup no configured key opens is what the drill found, not a mistake in the request.
        Err(e) if e.is_usage() && e.reason() != Some(KEY_UNAVAILABLE) => return Err(e),
        Err(e) => {
            record_failure(record, "restore", &e);
            return Ok(());
        }
    };
    record.scratch_created = true;
    match restore::load(maintenance, &request.target, staged, &restore_request, progress).await {
        Ok(restored) => {
            record.download_seconds = Some(restored.download_seconds);
            record.restore_seconds = Some(restored.restore_seconds);
            record.analyze_seconds = Some(restored.analyze_seconds);
            record.usable_at = Some(restored.usable_at);
            record.roles_created = restored.roles_created;
            record.server_majors =
                Some(ServerMajors { source: restored.versions.source, target: restored.versions.target });
            record.warnings = restored.warnings;
        }
        Err(e) => record_failure(record, "restore", &e),
    }
    Ok(())
}

/// What a drill measured so far; [`finish`] turns it into the verdict.
#[derive(Default)]
struct Findings {
    reason: Option<String>,
    failures: Vec<String>,
    warnings: Vec<String>,
    backup: Option<BackupInfo>,
    parity: Vec<TableParity>,
    rpo: Option<ObjectiveResult>,
    rto: Option<ObjectiveResult>,
    timings: Timings,
    blobs: Option<BlobCheck>,
    application: Option<ApplicationCheck>,
}

impl Findings {
    /// A failure with the reason reported when it is the first.
    fn fail(&mut self, reason: &str, message: String) {
        self.reason.get_or_insert_with(|| reason.to_string());
        self.failures.push(message);
    }
}

/// Parity and the application's checks (when the restore succeeded), RPO/RTO,
/// verdict, report, cleanup. Everything measured is reported, also for a failed
/// drill; mistakes in the request are returned.
pub async fn conclude(
    store: &dyn BackupStore,
    maintenance: &mut Maintenance,
    request: &DrillRequest,
    record: RestoreRecord,
    check: Option<&dyn RestoredCheck>,
    progress: &Progress,
) -> Result<DrillOutcome, EngineError> {
    let mut found = Findings {
        reason: record.reason.clone(),
        failures: record.failures.clone(),
        warnings: record.warnings.clone(),
        timings: Timings {
            backup_seconds: record.backup_seconds,
            download_seconds: record.download_seconds,
            restore_seconds: record.restore_seconds,
            analyze_seconds: record.analyze_seconds,
            ..Default::default()
        },
        ..Default::default()
    };
    let manifest = match record.backup.as_str() {
        "" => None,
        // The version the restore read; its tampering warning is already in the record.
        name => match manifest::load_version(store, name, record.manifest_version_id.as_deref()).await {
            Ok(m) => Some(m),
            Err(e) => {
                if found.failures.is_empty() {
                    found.fail(e.reason().unwrap_or("VerifyFailed"), format!("verify: {e}"));
                }
                None
            }
        },
    };
    if let Some(m) = &manifest {
        // A fresh backup taken by another Job: its own duration.
        if record.fresh && found.timings.backup_seconds.is_none() {
            found.timings.backup_seconds = Some((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0);
        }
        found.backup = Some(BackupInfo {
            name: m.backup_name.clone(),
            location: store.location(&format!("{}/", m.backup_name)),
            snapshot_time: m.snapshot_time,
            completed_at: m.completed_at,
            fresh: record.fresh,
        });
    }
    if let (Some(m), true) = (&manifest, found.failures.is_empty()) {
        verify_and_measure(request, &record, m, check, &mut found, progress).await?;
    }
    Ok(finish(found, maintenance, store, request, &record, progress).await)
}

/// Parity against the manifest, the application's checks, then RPO and RTO
/// against their objectives.
async fn verify_and_measure(
    request: &DrillRequest,
    record: &RestoreRecord,
    m: &Manifest,
    check: Option<&dyn RestoredCheck>,
    found: &mut Findings,
    progress: &Progress,
) -> Result<(), EngineError> {
    let mode = request.restore.verify;
    let expected = restore::expected_tables(m, &request.restore.tables, mode)?;
    let jobs = restore::default_jobs(request.restore.jobs);
    let verified = match restore::verify(&request.target, &expected, mode, m.parity_method, jobs, progress).await {
        Ok(verified) => verified,
        Err(e) if e.is_usage() => return Err(e),
        Err(e) => {
            found.fail("VerifyFailed", format!("verify: {e}"));
            return Ok(());
        }
    };
    found.timings.parity_seconds = Some(verified.seconds);
    found.parity = verified.parity;
    for failure in verified.failures {
        found.fail("ParityMismatch", failure);
    }
    if let Some(check) = check {
        match check.check(&request.target, progress).await {
            Ok(result) => {
                for (reason, message) in result.failures {
                    found.fail(&reason, message);
                }
                found.warnings.extend(result.warnings);
                found.blobs = result.blobs;
                found.application = result.application;
            }
            Err(e) => found.fail("VerifyFailed", format!("application check: {e}")),
        }
    }
    let verified_at = Utc::now();

    let rpo = objectives::measured_rpo(m.snapshot_time, m.completed_at, record.drill_started_at, record.fresh);
    let restore_started = record.restore_started_at.unwrap_or(record.drill_started_at);
    let since_restore = |at: chrono::DateTime<Utc>| (at - restore_started).num_milliseconds() as f64 / 1000.0;
    let verified_seconds = since_restore(verified_at);
    // A record from before analysis existed has no usable time: verified is the honest bound.
    let usable_seconds = record.usable_at.map(since_restore);
    found.timings.verified_seconds = Some(verified_seconds);
    found.timings.usable_seconds = usable_seconds;
    let rto = match request.rto_basis {
        RtoBasis::Usable => usable_seconds.unwrap_or(verified_seconds),
        RtoBasis::Verified => verified_seconds,
    };
    let (rpo, rpo_failure) = objectives::evaluate("RPO", rpo, request.rpo);
    let (rto, rto_failure) = objectives::evaluate("RTO", rto, request.rto);
    if let Some(failure) = rpo_failure {
        found.fail("RPOMissed", failure);
    }
    if let Some(failure) = rto_failure {
        found.fail("RTOMissed", failure);
    }
    found.rpo = Some(rpo);
    found.rto = Some(rto);
    Ok(())
}

/// Verdict, cleanup and report; never fails the drill for a cleanup problem,
/// but says so.
async fn finish(
    mut found: Findings,
    maintenance: &mut Maintenance,
    store: &dyn BackupStore,
    request: &DrillRequest,
    record: &RestoreRecord,
    progress: &Progress,
) -> DrillOutcome {
    if record.scratch_created
        && !request.keep_target
        && let Err(e) = maintenance.drop_scratch().await
    {
        progress.step(format!("warning: could not drop the scratch database: {e}"));
        found.warnings.push(format!("the scratch database was not dropped: {e}"));
    }
    let passed = found.failures.is_empty();
    let completed_at = Utc::now();
    let mut verdict = Verdict {
        verdict_version: super::verdict::VERDICT_VERSION,
        phase: if passed { FinalPhase::Succeeded } else { FinalPhase::Failed },
        result: if passed { DrillResult::Passed } else { DrillResult::Failed },
        reason: if passed { None } else { found.reason },
        failures: found.failures,
        tampering: super::pinned::tampered(&found.warnings),
        warnings: found.warnings,
        roles_created: record.roles_created.clone(),
        server_majors: record.server_majors,
        rto_basis: found.rto.as_ref().map(|_| request.rto_basis),
        backup: found.backup,
        rpo: found.rpo,
        rto: found.rto,
        timings: Some(Timings {
            total_seconds: Some((completed_at - record.drill_started_at).num_milliseconds() as f64 / 1000.0),
            ..found.timings
        }),
        parity: found.parity,
        blobs: found.blobs,
        application: found.application,
        report: None,
        started_at: Some(record.drill_started_at),
        completed_at: Some(completed_at),
        mode: Default::default(),
    };

    let source = request.source.as_ref().map(|s| s.to_string());
    let target = request.target.to_string();
    let store_url = store.url();
    // The store's earlier drills and this one, as a chart beside the report.
    let history_svg = if verdict.backup.is_some() {
        let mut drills = super::catalog::drills(store, None).await.unwrap_or_default();
        drills.push(DrillEntry {
            backup: record.backup.clone(),
            drill: record.drill.clone(),
            verdict: verdict.clone(),
        });
        history::svg(&drills)
    } else {
        None
    };
    let mut history_chart = None;
    if let Some(svg) = &history_svg {
        match store.put_bytes(&chart_key(&record.backup, &record.drill), svg.clone().into_bytes()).await {
            Ok(_) => history_chart = Some(chart_file(&record.drill)),
            Err(e) => progress.step(format!("warning: could not store the history chart: {e}")),
        }
    }
    let ctx = ReportContext {
        drill_name: &record.drill,
        source: source.as_deref(),
        target: &target,
        store: &store_url,
        history_chart: history_chart.as_deref(),
    };
    // Stored next to the backup it drilled, so the proof travels with the data.
    if verdict.backup.is_some() {
        let key = report_key(&record.backup, &record.drill);
        verdict.report = Some(store.location(&key));
        let markdown = report::render(&verdict, &ctx);
        if let Err(e) = store.put_bytes(&key, markdown.into_bytes()).await {
            progress.step(format!("warning: could not store the report: {e}"));
            verdict.report = None;
        }
        if let Err(e) = store.put_bytes(&result_key(&record.backup, &record.drill), verdict.to_json()).await {
            progress.step(format!("warning: could not store the result: {e}"));
        }
    }
    let report_markdown = report::render(&verdict, &ctx);
    progress.step(format!(
        "verdict {}: RPO {}, RTO {}, {} of {} tables match{}",
        if passed { "PASSED" } else { "FAILED" },
        verdict.rpo.as_ref().map_or("n/a".into(), |o| o.summary.clone()),
        verdict.rto.as_ref().map_or("n/a".into(), |o| o.summary.clone()),
        verdict.parity.iter().filter(|p| p.matches).count(),
        verdict.parity.len(),
        verdict
            .timings
            .as_ref()
            .and_then(|t| t.total_seconds)
            .map_or(String::new(), |s| format!(" in {}", human_duration(s)))
    ));
    let history_chart = history_chart.zip(history_svg);
    DrillOutcome { verdict, report_markdown, history_chart }
}
