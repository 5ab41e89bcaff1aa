//! Recovery drills: the whole drill on this machine (`drill`), and the two
//! steps the operator's Jobs run in a cluster (`drill-step restore|verify`).

use std::path::PathBuf;

use artifortress_operator::engine;
use artifortress_operator::engine::backup::BackupRequest;
use artifortress_operator::engine::drill::{BackupChoice, DrillOutcome, RestoreRecord};
use artifortress_operator::engine::progress::Progress;
use artifortress_operator::engine::scratch::Maintenance;
use artifortress_operator::store::BackupStore;

use super::failure::{Failure, engine_failure, failed};
use super::flags::{DrillArgs, RestoreArgs, SealArgs, StoreArg, VerifyArgs, database, write_file};

#[derive(clap::Args)]
pub struct DrillCommandArgs {
    /// Database to back up for a fresh drill: postgres://…
    #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
    source: Option<String>,
    #[command(flatten)]
    store: StoreArg,
    /// Restore this existing backup instead of taking a fresh one.
    #[arg(long, conflicts_with = "latest")]
    backup: Option<String>,
    /// Restore the newest complete backup in the store.
    #[arg(long)]
    latest: bool,
    #[command(flatten)]
    target: RestoreArgs,
    #[command(flatten)]
    verify: VerifyArgs,
    #[command(flatten)]
    objectives: DrillArgs,
    /// A fresh backup is encrypted to these recipients (else with
    /// --passphrase-file when given).
    #[command(flatten)]
    seal: SealArgs,
    /// Write the Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the JSON verdict (the stored format, mirrored into RecoveryDrill.status) here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn drill(args: DrillCommandArgs) -> Result<(), Failure> {
    let DrillCommandArgs { source, store, backup, latest, target, verify, objectives, seal, report, json } = args;
    let source = match &source {
        Some(raw) => Some(database(raw).await?),
        None => None,
    };
    let store = store.open().await?;
    let choice = match (backup, latest) {
        (Some(name), _) => BackupChoice::Named(name),
        (None, true) => BackupChoice::Latest,
        (None, false) => BackupChoice::Fresh(BackupRequest {
            name: engine::backup::default_name(store.as_ref(), chrono::Utc::now()).await.map_err(engine_failure)?,
            tables: verify.tables.clone(),
            verify: verify.mode(),
            labels: Default::default(),
            expected_size: None,
            encryption: seal.sealing(if seal.is_empty() { target.keys.passphrase_file.as_deref() } else { None })?,
        }),
    };
    let check = objectives.blobs.check(source.as_ref()).await?;
    let request =
        objectives.request(source, target.target_url().await?, choice, target.request(String::new(), &verify)?)?;
    let outcome = engine::drill::run(store.as_ref(), &request, Some(&check), &Progress::new("drill"))
        .await
        .map_err(engine_failure)?;
    if let Some(path) = &report {
        write_file(path, &outcome.report_markdown)?;
        eprintln!("drill: report written to {}", path.display());
        // The chart the report links, beside it.
        if let Some((file, svg)) = &outcome.history_chart {
            write_file(&path.with_file_name(file), svg)?;
        }
    }
    if let Some(path) = &json {
        write_file(path, outcome.verdict.to_json())?;
    }
    if let Some(stored) = &outcome.verdict.report {
        eprintln!("drill: report stored at {stored}");
    }
    verdict(&outcome)
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DrillStepKind {
    Restore,
    Verify,
}

#[derive(clap::Args)]
pub struct DrillStepArgs {
    #[arg(value_enum)]
    step: DrillStepKind,
    #[command(flatten)]
    store: StoreArg,
    /// The backup the drill restores.
    #[arg(long)]
    backup: String,
    /// Drill identifier: names the record, verdict and report in the store.
    #[arg(long)]
    drill: String,
    /// When the drill started (RFC 3339); the RPO of an existing backup is measured from it.
    #[arg(long)]
    started_at: chrono::DateTime<chrono::Utc>,
    /// The backup was taken for this drill.
    #[arg(long)]
    fresh: bool,
    #[command(flatten)]
    target: RestoreArgs,
    #[command(flatten)]
    verify: VerifyArgs,
    #[command(flatten)]
    objectives: DrillArgs,
}

pub async fn drill_step(args: DrillStepArgs) -> Result<(), Failure> {
    let DrillStepArgs { step, store, backup, drill, started_at, fresh, target, verify, objectives } = args;
    let check = objectives.blobs.check(None).await?;
    let request = objectives.request(
        None,
        target.target_url().await?,
        BackupChoice::Named(backup.clone()),
        target.request(backup.clone(), &verify)?,
    )?;
    let store = store.open().await?;
    let progress = Progress::new("drill");
    let record_key = engine::layout::record_key(&backup, &drill);
    let record = match step {
        DrillStepKind::Restore => {
            let record = RestoreRecord::new(&drill, started_at, &backup, fresh);
            return restore_step(store.as_ref(), &request, record, &record_key, &progress).await;
        }
        DrillStepKind::Verify => {
            let bytes = store.get_bytes(&record_key).await.map_err(|e| {
                failed(format!("the restore step left no record at {record_key}: {e}; rerun the drill"))
            })?;
            RestoreRecord::parse(&bytes).map_err(|e| failed(format!("reading {record_key}: {e}")))?
        }
    };
    let mut maintenance = Maintenance::new(&request.target, &progress);
    let outcome = engine::drill::conclude(store.as_ref(), &mut maintenance, &request, record, Some(&check), &progress)
        .await
        .map_err(engine_failure)?;
    verdict(&outcome)
}

/// The restore step stores its record for the verify step; a failed restore
/// ends the drill here, with its verdict stored.
async fn restore_step(
    store: &dyn BackupStore,
    request: &engine::drill::DrillRequest,
    mut record: RestoreRecord,
    record_key: &str,
    progress: &Progress,
) -> Result<(), Failure> {
    let mut maintenance = Maintenance::new(&request.target, progress);
    let refused = engine::drill::restore_step(store, &mut maintenance, request, &mut record, progress).await;
    if let Err(e) = &refused {
        engine::drill::record_failure(&mut record, "restore", e);
    }
    if record.failures.is_empty() {
        return store.put_bytes(record_key, record.to_json()).await.map(drop).map_err(failed);
    }
    let outcome = engine::drill::conclude(store, &mut maintenance, request, record, None, progress)
        .await
        .map_err(engine_failure)?;
    match refused {
        Err(e) => Err(engine_failure(e)),
        Ok(()) => verdict(&outcome),
    }
}

/// Exit code 0 for a drill that passed, 1 with its failures otherwise.
fn verdict(outcome: &DrillOutcome) -> Result<(), Failure> {
    if outcome.passed() {
        Ok(())
    } else {
        Err(failed(format!("drill failed:\n  {}", outcome.verdict.failures.join("\n  "))))
    }
}
