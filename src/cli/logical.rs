//! Logical backups on this machine: take one, restore one (and verify it),
//! and which PostgreSQL majors the installed client tools serve.

use artifortress_operator::engine::backup::BackupRequest;
use artifortress_operator::engine::progress::{Progress, human_bytes, human_duration};
use artifortress_operator::engine::restore::RestoreOutcome;
use artifortress_operator::engine::{self, pgtools};

use super::artifortress::reapply;
use super::failure::{Failure, engine_failure, failed};
use super::flags::{RestoreArgs, SealArgs, StoreArg, VerifyArgs, database, parse_label, parse_size};

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Database to back up: postgres://user:password@host:port/dbname
    #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
    source: String,
    #[command(flatten)]
    store: StoreArg,
    /// Backup name (default: backup-YYYYMMDD-HHMMSS).
    #[arg(long)]
    name: Option<String>,
    /// A label the manifest records, KEY=VALUE (repeatable); catalog resync
    /// gives a recreated Backup these labels.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// About how large the dump will be, e.g. 150GiB (default: the database's
    /// size). S3 uploads choose their one part size from it: twice this must
    /// fit in 10 000 parts.
    #[arg(long, value_parser = parse_size)]
    expected_size: Option<u64>,
    #[command(flatten)]
    verify: VerifyArgs,
    #[command(flatten)]
    seal: SealArgs,
    /// Encrypt with the passphrase in this file (its first line) instead of
    /// to recipients: whoever can back up can then also decrypt.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipients", "recipient_files"])]
    passphrase_file: Option<std::path::PathBuf>,
}

pub async fn backup(args: BackupArgs) -> Result<(), Failure> {
    let BackupArgs { source, store, name, labels, expected_size, verify, seal, passphrase_file } = args;
    let encryption = seal.sealing(passphrase_file.as_deref())?;
    let source = database(&source).await?;
    let store = store.open().await?;
    let name = match name {
        Some(name) => name,
        None => engine::backup::default_name(store.as_ref(), chrono::Utc::now()).await.map_err(engine_failure)?,
    };
    let labels = labels.into_iter().collect();
    let request =
        BackupRequest { name, verify: verify.mode(), tables: verify.tables, labels, expected_size, encryption };
    let m = engine::backup::run(&source, store.as_ref(), &request, &Progress::new("backup"))
        .await
        .map_err(engine_failure)?;
    println!("backup     {}", m.backup_name);
    println!("location   {}", store.location(&format!("{}/", m.backup_name)));
    println!(
        "source     {} on server {} (PostgreSQL {})",
        m.source.database, m.source.system_identifier, m.source.server_version
    );
    println!("snapshot   {}", m.snapshot_time.to_rfc3339());
    println!("duration   {}", human_duration((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0));
    println!(
        "dump       {} (archive {}), sha256 {}",
        human_bytes(m.dump.size_bytes),
        human_bytes(m.dump.archive_bytes),
        m.dump.sha256
    );
    println!("tables     {} ({} rows)", m.tables.len(), m.tables.iter().map(|t| t.rows).sum::<i64>());
    if let Some(e) = &m.encryption {
        let to = if e.passphrase { "a passphrase".to_string() } else { e.recipients.join(", ") };
        println!("encrypted  {} to {to}", e.format);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct RestoreCommandArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Name of the backup to restore.
    #[arg(long)]
    backup: String,
    #[command(flatten)]
    target: RestoreArgs,
    #[command(flatten)]
    verify: VerifyArgs,
    /// After a verified restore of an Artifortress database, put back the
    /// security decisions made since its restore point: the token
    /// revocations and legal holds of this live database (only read), and
    /// close the GC runs the restore point caught mid-run. `none` when the
    /// live database is gone: the runs are closed and the restored audit
    /// log's newest security decisions listed for a person to decide.
    #[arg(long, value_name = "LIVE_DATABASE|none")]
    reapply_from: Option<String>,
    /// The installation's blob bucket (as for drill --blob-store): after the
    /// restore, every blob row of the restored database must have its object
    /// there; missing ones are looked up in the bucket's versions.
    #[arg(long)]
    blob_store: Option<String>,
    /// Bring back each missing object of a referenced row whose bytes a kept
    /// version still has (deleted by a garbage collection since the restore
    /// point): written as the key's current object, checked against the row's
    /// SHA-256. A key that has a current object, and an object no restored row
    /// references, is never written.
    #[arg(long, requires = "blob_store")]
    restore_blobs: bool,
}

pub async fn restore(args: RestoreCommandArgs) -> Result<(), Failure> {
    let RestoreCommandArgs { store, backup, target, verify, reapply_from, blob_store, restore_blobs } = args;
    let target_url = target.target_url().await?;
    let live = match reapply_from.as_deref() {
        None | Some("none") => None,
        Some(raw) => Some(database(raw).await?),
    };
    let store = store.open().await?;
    let request = target.request(backup, &verify)?;
    let outcome = engine::restore::run(store.as_ref(), &target_url, &request, &Progress::new("restore"))
        .await
        .map_err(engine_failure)?;
    print_restore(&outcome);
    if !outcome.failures.is_empty() {
        return Err(failed(outcome.failures.join("\n")));
    }
    println!("restored {} into {target_url}: every table matches", outcome.restored.manifest.backup_name);
    if reapply_from.is_some() {
        reapply(&target_url, live.as_ref()).await?;
    }
    if let Some(bucket) = &blob_store {
        super::artifortress::restore_blobs(&target_url, bucket, restore_blobs).await?;
    }
    Ok(())
}

/// Each table's parity, then where the time went.
fn print_restore(outcome: &RestoreOutcome) {
    for p in &outcome.parity {
        let restored = p.restored.map_or("missing".to_string(), |r| r.to_string());
        println!(
            "{:<50} expected {:>10}  restored {:>10}  {}",
            p.table,
            p.expected,
            restored,
            if p.matches { "ok" } else { "MISMATCH" }
        );
    }
    let restored = &outcome.restored;
    println!(
        "timings    download+verify {:.3} s, recreate+pg_restore {:.3} s, settings+analyze {:.3} s, parity {:.3} s",
        restored.download_seconds, restored.restore_seconds, restored.analyze_seconds, outcome.parity_seconds
    );
    let phases = &restored.phases;
    print!(
        "pg_restore schema {:.3} s, data {:.3} s, indexes and constraints after the data {:.3} s",
        phases.schema_seconds, phases.data_seconds, phases.indexes_seconds
    );
    match &phases.largest_table {
        Some(t) => {
            let by = if t.sessions > 1 { format!(", copied by {} sessions", t.sessions) } else { String::new() };
            println!(
                "; largest table {} ({} in the archive{by}) {:.3} s",
                t.name,
                human_bytes(t.archive_bytes),
                t.seconds
            )
        }
        None => println!(),
    }
    if !restored.roles_created.is_empty() {
        println!("roles      created as NOLOGIN: {}", restored.roles_created.join(", "));
    }
    for warning in &restored.warnings {
        println!("warning    {warning}");
    }
}

pub async fn tools() -> Result<(), Failure> {
    let tools = pgtools::Toolset::installed().await;
    println!("PostgreSQL client tools found:");
    for t in tools.all() {
        println!("  {:<3} {}  ({})", t.major, t.version, t.bindir.display());
    }
    if tools.all().is_empty() {
        println!("  none: install PostgreSQL client tools or set ARTIFORTRESS_PG_BINDIR");
    }
    println!("\n{}", pgtools::support_table(&tools));
    Ok(())
}
