//! Commands about an Artifortress database itself: apply our model of its
//! schema, say what a database is, fill one with demo data, and put back what
//! a restore would undo.

use artifortress_operator::artifortress::schema::{self, MigrateError, Migrated};
use artifortress_operator::artifortress::{blobs, ops, seed, takeback};
use artifortress_operator::db::{self, DatabaseUrl};
use artifortress_operator::engine::progress::Progress;

use super::failure::{Failure, engine_failure, failed, usage};
use super::flags::{database, open_blob_store};

#[derive(clap::Args)]
pub struct DatabaseArg {
    /// postgres://user:password@host:port/dbname or an Npgsql string (Host=…;Database=…)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database: String,
}

pub async fn migrate(args: DatabaseArg) -> Result<(), Failure> {
    let url = database(&args.database).await?;
    match schema::migrate(&url).await {
        Ok(Migrated::Applied { level, versions }) => {
            eprintln!("migrate: {url} is at level {level} ({versions} versions applied)")
        }
        Ok(Migrated::AlreadyCurrent) => {
            eprintln!("migrate: {url} is already at level {}: nothing to do", schema::model_level())
        }
        Err(e @ MigrateError::NotEmpty { .. }) => return Err(usage(e)),
        Err(e) => return Err(failed(e)),
    }
    Ok(())
}

pub async fn inspect(args: DatabaseArg) -> Result<(), Failure> {
    let url = database(&args.database).await?;
    let ops::Probe { schema: shape, summary, gc } = ops::probe(&url).await.map_err(failed)?;
    println!("database   {url}");
    println!("level      {}", shape.level.as_deref().unwrap_or("none recorded (no schema_migrations)"));
    println!("versions   {} recorded; this operator knows up to {}", shape.versions, schema::model_level());
    for v in &shape.unknown_versions {
        println!("           newer than this operator: {v}");
    }
    println!("supported  {}", if shape.is_supported() { "yes: every figure and the audit" } else { "no" });
    for m in &shape.missing {
        println!("missing    {m}");
    }
    println!("audit      correlation_id {}", if shape.audit_correlation { "recorded" } else { "not in this schema" });
    if let Some(gc) = &gc {
        println!(
            "gc         {} run(s) may have deleted blobs, the newest started {}; {} tombstoned version(s) past retention",
            gc.deleting_runs.len(),
            gc.deleting_runs.first().map_or("never".to_string(), |t| t.to_rfc3339()),
            gc.expired_tombstones
        );
    }
    println!("tenants    {}", summary.tenants.len());
    for t in &summary.tenants {
        let figures: Vec<String> = t
            .figures
            .named()
            .iter()
            .map(|(n, v)| format!("{n}={}", v.map_or("n/a".into(), |v| v.to_string())))
            .collect();
        println!("  {:<20} {}", t.name(), figures.join(" "));
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// small (a few MB), medium (~150 MB), large (~1.5 GB) or xlarge (~12 GB).
    #[arg(long, value_enum, default_value = "small")]
    scale: seed::Scale,
    /// Tenants: 1 (`default`, as upstream deploys it) or several.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1000))]
    tenants: i64,
    /// Truncate every Artifortress table first (destroys existing data).
    #[arg(long)]
    reset: bool,
    /// Also write every seeded object into this bucket (each blob row's
    /// object under its storage_key, its SHA-256 the row's digest; what
    /// duplicate, aborted and uncommitted uploads left): file:///path or
    /// s3://bucket?… (credentials from BLOB_AWS_ACCESS_KEY_ID /
    /// BLOB_AWS_SECRET_ACCESS_KEY, else the AWS chain).
    #[arg(long)]
    blob_store: Option<String>,
}

pub async fn seed(args: SeedArgs) -> Result<(), Failure> {
    let SeedArgs { database: raw, scale, tenants, reset, blob_store } = args;
    let url = database(&raw.database).await?;
    let blob_store = match &blob_store {
        Some(u) => Some(open_blob_store(u).await?),
        None => None,
    };
    let pool = db::connect(&url, 2).await.map_err(failed)?;
    eprintln!("seed: filling {url} at scale {scale:?}, {tenants} tenant(s)");
    let sizes = scale.sizes(tenants);
    let report = seed::seed(&pool, &url, sizes, reset).await.map_err(failed)?;
    if let Some(store) = &blob_store {
        let progress = Progress::new("seed");
        progress.step(format!("writing blob objects into {}", store.url()));
        let n = blobs::write_seed_objects(&url, &sizes, store.as_ref(), 32, &progress).await.map_err(engine_failure)?;
        progress.step(format!("{n} blob objects written"));
    }
    for (table, rows) in &report.rows {
        eprintln!("seed: {table:<26} {rows:>9} rows");
    }
    eprintln!(
        "seed: done in {:.1} s, database size {:.1} MiB",
        report.seconds,
        report.database_bytes as f64 / 1_048_576.0
    );
    Ok(())
}

/// Puts the security decisions made since the restore point back into the
/// restored database, and says what it did (or, without a live database, what
/// a person has to decide).
pub async fn reapply(restored: &DatabaseUrl, live: Option<&DatabaseUrl>) -> Result<(), Failure> {
    let done = takeback::reapply(restored, live).await.map_err(failed)?;
    match live {
        Some(live) => println!(
            "reapplied  from {live}: {} token revocation(s), {} hold(s) ({} on versions this restore point does not have), {} GC run(s) closed",
            done.revocations, done.holds, done.holds_without_version, done.gc_runs_closed
        ),
        None => {
            println!("reapplied  no live database: {} GC run(s) closed; nothing else re-applied", done.gc_runs_closed);
            println!(
                "decide     revocations and holds made after the restore point are unknown here; the restored audit log's newest security decisions:"
            );
            for line in &done.last_recorded {
                println!("           {line}");
            }
        }
    }
    Ok(())
}

/// The restored database's blob rows against the installation's bucket; with
/// `bring_back`, the missing objects a kept version still has are written
/// back, then the bucket is checked again. Fails while a referenced object is
/// missing.
pub async fn restore_blobs(restored: &DatabaseUrl, bucket: &str, bring_back: bool) -> Result<(), Failure> {
    let store = open_blob_store(bucket).await?;
    if bring_back && !blobs::keeps_versions(store.as_ref()).await.map_err(engine_failure)? {
        return Err(failed(format!(
            "--restore-blobs: {} keeps no versions (versioning is off), so a deleted object cannot come back from it",
            store.url()
        )));
    }
    let progress = Progress::new("blobs");
    let no_hashing = blobs::DigestCheck { sample: 0, all: false };
    let mut check = blobs::check(restored, store.as_ref(), None, no_hashing, bring_back, &progress)
        .await
        .map_err(engine_failure)?;
    let brought = check.from_versions.as_ref().map_or(0, |f| f.brought_back);
    if brought > 0 {
        println!("blobs      {brought} object(s) brought back from the bucket's versions");
        check =
            blobs::check(restored, store.as_ref(), None, no_hashing, false, &progress).await.map_err(engine_failure)?;
    }
    let (failures, warnings) = blobs::findings(&check);
    for warning in warnings {
        println!("warning    {warning}");
    }
    if !failures.is_empty() {
        return Err(failed(failures.into_iter().map(|(_, message)| message).collect::<Vec<_>>().join("\n")));
    }
    println!("blobs      every referenced object of {restored} is in {}", store.url());
    Ok(())
}
