//! Physical backups of the whole cluster: base backups, the WAL archiver, and
//! point-in-time drills into a scratch instance started here.

use std::path::PathBuf;

use artifortress_operator::engine::physical::{base, pitr, wal};
use artifortress_operator::engine::progress::{Progress, human_bytes, human_duration};
use artifortress_operator::store::BackupStore;

use super::failure::{Failure, engine_failure, failed, usage};
use super::flags::{BlobArgs, KeyArgs, SealArgs, StoreArg, database, duration_flag, parse_objective, parse_size};
use super::shutdown_signal;

#[derive(clap::Args)]
pub struct BaseBackupArgs {
    /// postgres://user:password@host:port/dbname (dbname: where the heartbeat is)
    #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
    source: String,
    #[command(flatten)]
    store: StoreArg,
    /// Backup name (default: base-YYYYMMDD-HHMMSS).
    #[arg(long)]
    name: Option<String>,
    /// Checkpoint at once (an I/O burst on the source) instead of spread
    /// over checkpoint_completion_target (the backup may wait minutes).
    #[arg(long)]
    fast_checkpoint: bool,
    #[command(flatten)]
    seal: SealArgs,
    /// Encrypt with the passphrase in this file instead of to recipients.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipients", "recipient_files"])]
    passphrase_file: Option<PathBuf>,
}

pub async fn base_backup(args: BaseBackupArgs) -> Result<(), Failure> {
    let sealing = args.seal.sealing(args.passphrase_file.as_deref())?;
    let source = database(&args.source).await?;
    let store = args.store.open().await?;
    let name = args.name.unwrap_or_else(|| chrono::Utc::now().format("base-%Y%m%d-%H%M%S").to_string());
    let checkpoint = if args.fast_checkpoint { base::Checkpoint::Fast } else { base::Checkpoint::Spread };
    let m = base::run(&source, store.as_ref(), &name, checkpoint, sealing.as_ref(), &Progress::new("base-backup"))
        .await
        .map_err(engine_failure)?;
    println!("backup     {} (physical)", m.backup_name);
    println!("location   {}", store.location(&format!("{}/", m.backup_name)));
    println!("source     system {} (PostgreSQL {})", m.source.system_identifier, m.source.server_version);
    println!("duration   {}", human_duration((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0));
    println!(
        "base       {} (tar {}), sha256 {}",
        human_bytes(m.base.size_bytes),
        human_bytes(m.base.tar_bytes),
        m.base.sha256
    );
    println!("wal        {} to {} on timeline {}", m.start_lsn, m.end_lsn, m.timeline);
    Ok(())
}

#[derive(clap::Args)]
pub struct WalArgs {
    #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
    source: String,
    #[command(flatten)]
    store: StoreArg,
    /// The replication slot (created, and recorded in the store, when absent).
    #[arg(long, default_value = "artifortress_wal")]
    slot: String,
    /// pg_receivewal's directory (default: one per source system and slot
    /// under the temp directory).
    #[arg(long)]
    spool: Option<PathBuf>,
    /// How often the growing segment is stored, e.g. 5s.
    #[arg(long, default_value = "5s")]
    partial_every: String,
    /// Write a heartbeat row into the source (artifortress_dr.heartbeat) this
    /// often, e.g. 2s, so drills can measure the RPO they achieve.
    #[arg(long)]
    heartbeat: Option<String>,
    /// The most WAL the slot may hold back on the source; past it the slot
    /// is dropped (the source's disk is safe, WAL continuity is broken).
    #[arg(long, value_parser = parse_size, default_value = "4GiB")]
    max_retained: u64,
    /// Completed segments the spool may hold while the store is unreachable;
    /// then receiving pauses and the slot keeps the WAL on the source.
    #[arg(long, default_value_t = 8)]
    spool_segments: usize,
    /// How often the status (store: _wal/<system>/status.json) and a log line are written.
    #[arg(long, default_value = "10s")]
    status_every: String,
    /// Every segment is encrypted to these recipients.
    #[command(flatten)]
    seal: SealArgs,
    /// Encrypt with the passphrase in this file instead (a scrypt per upload: about a second of CPU each).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipients", "recipient_files"])]
    passphrase_file: Option<PathBuf>,
}

pub async fn wal(args: WalArgs) -> Result<(), Failure> {
    let source = database(&args.source).await?;
    let store = args.store.open().await?;
    let options = wal::WalOptions {
        spool: args.spool,
        slot: args.slot,
        partial_every: duration_flag("partial-every", &args.partial_every)?,
        heartbeat: parse_objective("heartbeat", args.heartbeat)?,
        max_retained: args.max_retained,
        max_spooled: args.spool_segments.max(1),
        status_every: duration_flag("status-every", &args.status_every)?,
        encryption: args.seal.sealing(args.passphrase_file.as_deref())?,
    };
    wal::run(&source, store.as_ref(), &options, &Progress::new("wal"), shutdown_signal()).await.map_err(engine_failure)
}

#[derive(clap::Args)]
pub struct PitrArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The base backup (default: the newest one before the target).
    #[arg(long)]
    backup: Option<String>,
    /// The scratch instance's directory: new, empty, or one of ours.
    #[arg(long)]
    dir: PathBuf,
    /// The scratch instance's port (its Unix socket only; must be free).
    #[arg(long, default_value_t = 54329)]
    port: u16,
    /// latest, a time (RFC 3339), an LSN, or random:<window> (a time drawn in that window before now, e.g. random:24h).
    #[arg(long, default_value = "latest")]
    target: String,
    /// Recovery point objective: the heartbeat recovered must be this recent.
    #[arg(long)]
    rpo: Option<String>,
    /// Recovery time objective: from the drill's start to the promoted instance.
    #[arg(long)]
    rto: Option<String>,
    /// Keep the instance running after the drill (stop it with pg_ctl, or the next pitr into the same --dir).
    #[arg(long)]
    keep: bool,
    /// How long replay may take.
    #[arg(long, default_value = "30m")]
    timeout: String,
    /// Names the verdict (`<base>/drills/<drill>.json`; default pitr-<time>).
    #[arg(long)]
    drill: Option<String>,
    /// With --backup: read its base manifest at exactly this S3 version (a
    /// `Backup`'s status.manifestVersionId): a newer version written over it
    /// since is reported as tampering, never used.
    #[arg(long, value_name = "VERSION_ID", requires = "backup")]
    manifest_version: Option<String>,
    #[command(flatten)]
    blobs: BlobArgs,
    /// After the drill, on the kept instance: bring back each missing object a
    /// restored row references from the version the blob bucket kept, as
    /// `restore --restore-blobs` does (never over a current object, never an
    /// object no restored row references). Exit code 0 when every referenced
    /// object is there afterwards and nothing else failed.
    #[arg(long, requires_all = ["keep", "blob_store"])]
    restore_blobs: bool,
    #[command(flatten)]
    keys: KeyArgs,
}

pub async fn pitr(args: PitrArgs) -> Result<(), Failure> {
    let store = args.store.open().await?;
    let blob_store = args.blobs.store().map(str::to_string);
    let request = pitr::PhysicalDrill {
        restore: pitr::PitrRequest {
            backup: args.backup,
            dir: args.dir,
            port: args.port,
            target: args.target.parse().map_err(usage)?,
            timeout: duration_flag("timeout", &args.timeout)?,
            keys: args.keys.keyring()?,
            manifest_version: args.manifest_version,
        },
        rpo: parse_objective("rpo", args.rpo)?,
        rto: parse_objective("rto", args.rto)?,
        keep: args.keep,
        drill: args.drill.unwrap_or_else(|| chrono::Utc::now().format("pitr-%Y%m%d-%H%M%S-%3f").to_string()),
        check: Some(Box::new(args.blobs.check(None).await?)),
    };
    let drill = request.drill.clone();
    let outcome = pitr::drill(store.as_ref(), request, &Progress::new("pitr")).await.map_err(engine_failure)?;
    print_physical_drill(store.as_ref(), &drill, &outcome, args.keep);
    let v = &outcome.verdict;
    if let (true, Some(bucket), Some((r, _))) = (args.restore_blobs, blob_store, &outcome.restored) {
        let url = r.instance.database_url(&r.manifest.source.database).map_err(failed)?;
        super::artifortress::restore_blobs(&url, &bucket, true).await?;
        // The blobs the drill found missing are back: what else failed still counts.
        if outcome.reasons.iter().all(|r| r.starts_with("Blob")) {
            if !v.failures.is_empty() {
                println!(
                    "the drill's blob failures are mended; a new drill proves it (its verdict above stands as found)"
                );
            }
            return Ok(());
        }
    }
    match v.failures.first() {
        None => Ok(()),
        Some(first) => {
            for failure in &v.failures {
                eprintln!("failure: {failure}");
            }
            Err(failed(format!("drill failed ({}): {first}", v.reason.as_deref().unwrap_or("Failed"))))
        }
    }
}

/// Where the verdict is, where the time went, RTO and RPO, and the verdict.
fn print_physical_drill(store: &dyn BackupStore, drill: &str, outcome: &pitr::PhysicalOutcome, keep: bool) {
    let v = &outcome.verdict;
    let base = v.backup.as_ref().expect("a physical verdict names its base");
    println!(
        "drill      {drill} (physical), verdict in {}",
        store.location(&format!("{}/drills/{drill}.json", base.name))
    );
    if let Some((r, found)) = &outcome.restored {
        println!("backup     {} (physical), {} WAL segments ({})", base.name, r.segments, human_bytes(r.wal_bytes));
        println!(
            "timing     download+verify {:.2} s, pg_verifybackup {:.2} s, replay+promote {:.2} s, amcheck {:.2} s ({} indexes)",
            r.download_seconds, r.verify_seconds, r.replay_seconds, found.amcheck_seconds, found.indexes_checked
        );
        if keep {
            println!(
                "instance   running: psql -h {} -p {} -U {} {}",
                r.instance.dir.display(),
                r.instance.port,
                r.instance.superuser,
                r.manifest.source.database
            );
        }
    }
    if let Some(rto) = &v.rto {
        println!("rto        {} ({:.3} s to promoted)", rto.summary, rto.measured_seconds);
    }
    match &v.rpo {
        Some(rpo) => println!(
            "rpo        {:.3} s ({}; newest heartbeat recovered {})",
            rpo.measured_seconds,
            rpo.summary,
            base.snapshot_time.to_rfc3339()
        ),
        None => println!("rpo        not measured"),
    }
    for warning in &v.warnings {
        eprintln!("warning: {warning}");
    }
    println!("verdict    {:?}", v.result);
}
