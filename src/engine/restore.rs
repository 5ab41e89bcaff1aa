//! Restoring a backup into a scratch database and proving it equal.
//!
//! Order matters: everything that can refuse is checked before the target is
//! touched — the target is not the backup's source and is the engine's own
//! scratch database (or does not exist yet), the server has the extensions and
//! (unless they may be created) the roles the backup needs, an encrypted
//! backup has a configured key that opens it, and the dump is
//! downloaded and checked against the manifest (size, SHA-256). Only then are
//! missing roles created, the scratch database recreated with the source's
//! encoding and locale, `pg_restore -j` run (ownership and grants included),
//! the database settings carried and the database analyzed. pg_restore cannot
//! restore in parallel from a pipe, so the archive is staged on local disk (an
//! `emptyDir` in the cluster).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::db::{DatabaseUrl, DbError};
use crate::store::BackupStore;

use artifortress_formats::archive::{Entry, Layout};

use super::archive_index::{Indexed, Staging, StagingFault};
use super::encryption::Keyring;
use super::manifest::{self, Manifest, ParityMethod, TableSnapshot, VerifyMode};
use super::pg_restore::{self, PgRestore, Restoring, Scope};
pub use super::pg_restore::{LargestTable, Phases};
use super::pgtools::{PgTools, Toolset, parse_major};
use super::progress::{Meter, Progress, Total, Unit, human_bytes};
use super::scratch::{self, Maintenance, Needs};
use super::split_copy::{self, SplitRestore};
use super::tuning::SessionSetting;
use super::verdict::TableParity;
use super::{EngineError, inspect, parity};

/// What to restore and how.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    pub backup: String,
    /// Parallel pg_restore jobs; default: the CPU count.
    pub jobs: Option<u32>,
    /// Tables to compare; empty means every table in the manifest.
    pub tables: Vec<String>,
    pub verify: VerifyMode,
    /// Where the archive is staged; default: the system temp directory.
    pub staging_dir: Option<PathBuf>,
    /// Refuse up front when the target lacks a role the backup needs, instead
    /// of creating it.
    pub require_roles: bool,
    /// For pg_restore's sessions (see [`super::tuning`]).
    pub session_settings: Vec<SessionSetting>,
    /// Tables with at least this much data are copied through `jobs`
    /// sessions (see [`split_copy`]); default [`split_copy::DEFAULT_MIN_BYTES`], 0 never.
    pub split_min_bytes: Option<u64>,
    /// What opens an encrypted backup.
    pub keys: Keyring,
    /// The manifest's pinned version (see [`super::pinned`]); `None`: the current one.
    pub manifest_version: Option<String>,
}

/// A restored, analyzed database, not yet compared with the manifest.
#[derive(Clone, Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// The manifest's numbers for the tables to compare.
    pub expected: Vec<TableSnapshot>,
    pub started_at: DateTime<Utc>,
    pub download_seconds: f64,
    /// Recreating the database and pg_restore.
    pub restore_seconds: f64,
    /// Carrying the settings and ANALYZE.
    pub analyze_seconds: f64,
    /// When the database became usable (restored and analyzed).
    pub usable_at: DateTime<Utc>,
    pub roles_created: Vec<String>,
    pub warnings: Vec<String>,
    pub versions: Versions,
    /// pg_restore's parallelism, reused for counting.
    pub jobs: u32,
    /// Where pg_restore's time went.
    pub phases: Phases,
}

/// What a restore measured. Parity failures are reported, not raised: a drill
/// reports everything it measured.
#[derive(Clone, Debug)]
pub struct RestoreOutcome {
    pub restored: Restored,
    pub verified_at: DateTime<Utc>,
    pub parity_seconds: f64,
    pub parity: Vec<TableParity>,
    pub failures: Vec<String>,
}

/// The result of comparing a restored database with its manifest.
#[derive(Clone, Debug)]
pub struct Verified {
    pub parity: Vec<TableParity>,
    pub failures: Vec<String>,
    pub seconds: f64,
}

/// Restore and verify: [`restore`] then [`verify`].
pub async fn run(
    store: &dyn BackupStore,
    target: &DatabaseUrl,
    request: &RestoreRequest,
    progress: &Progress,
) -> Result<RestoreOutcome, EngineError> {
    let restored = restore(store, target, request, progress).await?;
    let method = restored.manifest.parity_method;
    let verified = verify(target, &restored.expected, request.verify, method, restored.jobs, progress).await?;
    Ok(RestoreOutcome {
        restored,
        verified_at: Utc::now(),
        parity_seconds: verified.seconds,
        parity: verified.parity,
        failures: verified.failures,
    })
}

/// Download and check the dump, then recreate the scratch database and run pg_restore.
pub async fn restore(
    store: &dyn BackupStore,
    target: &DatabaseUrl,
    request: &RestoreRequest,
    progress: &Progress,
) -> Result<Restored, EngineError> {
    let mut maintenance = Maintenance::new(target, progress);
    let staged = stage(store, &mut maintenance, target, request, progress).await?;
    load(&mut maintenance, target, staged, request, progress).await
}

/// The PostgreSQL majors a restore involves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// The backup's source server.
    pub source: u32,
    /// The pg_dump that wrote the archive.
    pub dump: u32,
    /// The target server.
    pub target: u32,
}

impl Versions {
    fn of(manifest: &Manifest, target: u32) -> Result<Versions, EngineError> {
        let unreadable = |what: &str, value: &str| EngineError::Corrupt {
            backup: manifest.backup_name.clone(),
            detail: format!("its manifest's {what} {value:?} has no major version"),
        };
        Ok(Versions {
            source: parse_major(&manifest.source.server_version)
                .ok_or_else(|| unreadable("serverVersion", &manifest.source.server_version))?,
            dump: parse_major(&manifest.pg_dump_version)
                .ok_or_else(|| unreadable("pgDumpVersion", &manifest.pg_dump_version))?,
            target,
        })
    }

    /// `(from, to)` when the target runs a newer major than the source: an upgrade rehearsal.
    pub fn upgrade(&self) -> Option<(u32, u32)> {
        (self.target > self.source).then_some((self.source, self.target))
    }
}

/// A checked dump on local disk, ready to restore; the target is untouched so far.
pub struct Staged {
    manifest: Manifest,
    expected: Vec<TableSnapshot>,
    tools: PgTools,
    needs: Needs,
    versions: Versions,
    started_at: DateTime<Utc>,
    download_seconds: f64,
    /// The archive's entries and layout, when indexing read them.
    index: Option<(Vec<Entry>, Layout)>,
    /// What staging found that the restore reports (a dump overwritten since).
    warnings: Vec<String>,
    // Dropping it removes the staged archive.
    staging: tempfile::TempDir,
}

impl Staged {
    fn archive(&self) -> PathBuf {
        self.staging.path().join("archive.dump")
    }
}

/// Everything that can refuse or fail before the target is touched: the
/// manifest, the safety checks, what the server lacks, and the download
/// checked against the manifest.
pub async fn stage(
    store: &dyn BackupStore,
    maintenance: &mut Maintenance,
    target: &DatabaseUrl,
    request: &RestoreRequest,
    progress: &Progress,
) -> Result<Staged, EngineError> {
    let started_at = Utc::now();
    let (manifest, manifest_tampered) =
        manifest::load_pinned(store, &request.backup, request.manifest_version.as_deref()).await?;
    if request.verify == VerifyMode::Checksums && manifest.verify != VerifyMode::Checksums {
        return Err(EngineError::Config(format!(
            "backup {:?} recorded counts only; checksum verification needs a backup taken with --verify checksums",
            manifest.backup_name
        )));
    }
    let expected = expected_tables(&manifest, &request.tables, request.verify)?;
    if let Some(encryption) = &manifest.encryption {
        request.keys.check(encryption, &format!("backup {:?}", manifest.backup_name))?;
    }

    let scratch = target.database();
    let identity = maintenance.identity().await?;
    // The server's system identifier, not its address, decides: localhost and
    // 127.0.0.1 (or a DNS alias) reach the same server.
    if identity.source.system_identifier == manifest.source.system_identifier && scratch == manifest.source.database {
        return Err(EngineError::refused(
            "TargetIsSource",
            format!(
                "target {target} is the backup's source (database {scratch:?} on server {}); restore into a scratch database or another server",
                identity.source.system_identifier
            ),
        ));
    }
    let versions = Versions::of(&manifest, identity.major)?;
    let tools = Toolset::installed().await.for_restore(versions.dump, versions.source, versions.target)?.clone();
    if let Some((from, to)) = versions.upgrade() {
        progress.step(format!("upgrade rehearsal: PostgreSQL {from} → {to}, restoring with {}", tools.version));
    }
    maintenance.check_target().await?;
    let needs = maintenance.check_needs(&manifest, request.require_roles).await?;

    // Download and verify; the target is untouched until this succeeds.
    let t = Instant::now();
    let staging = tempfile::Builder::new()
        .prefix("artifortress-restore-")
        .tempdir_in(request.staging_dir.clone().unwrap_or_else(std::env::temp_dir))
        .map_err(EngineError::io("creating the staging directory"))?;
    let archive = staging.path().join("archive.dump");
    progress.step(format!(
        "downloading {} ({}) from {}",
        manifest::dump_key(&manifest),
        human_bytes(manifest.dump.size_bytes),
        store.url()
    ));
    let indexed = download_verified(store, &manifest, &request.keys, &archive, progress).await?;
    progress.step(format!("dump verified: {} bytes, sha256 {}", manifest.dump.size_bytes, manifest.dump.sha256));
    let mut index = None;
    match indexed {
        Ok(Indexed::Blocks(n, toc, layout)) => {
            progress.step(format!("archive indexed: data offsets for {n} tables"));
            index = Some((toc, layout));
        }
        Ok(Indexed::Skipped(why)) => progress.step(format!("archive not indexed ({why}); pg_restore will scan it")),
        // The checksum already proved the bytes; pg_restore judges the archive itself.
        Err(e) => progress.step(format!("archive not indexed ({e}); pg_restore will scan it")),
    }
    let download_seconds = t.elapsed().as_secs_f64();
    let mut warnings: Vec<String> = manifest_tampered.into_iter().collect();
    let pinned = manifest.dump.version_id.as_deref();
    warnings.extend(super::pinned::tampering(store, &manifest::dump_key(&manifest), pinned, "dump").await?);
    Ok(Staged { manifest, expected, tools, needs, versions, started_at, download_seconds, index, staging, warnings })
}

/// Creates the missing roles, recreates the scratch database, restores the
/// staged dump with `pg_restore -j`, carries the settings and analyzes.
pub async fn load(
    maintenance: &mut Maintenance,
    target: &DatabaseUrl,
    mut staged: Staged,
    request: &RestoreRequest,
    progress: &Progress,
) -> Result<Restored, EngineError> {
    let t = Instant::now();
    let roles_created = maintenance.create_roles(&staged.needs).await?;
    if !roles_created.is_empty() {
        progress.step(format!("created missing role(s) as NOLOGIN: {}", roles_created.join(", ")));
    }
    let properties = staged.manifest.database.as_ref();
    let backup = &staged.manifest.backup_name;
    maintenance.recreate(properties, backup, staged.versions.target).await?;
    let settings = maintenance.raising(&request.session_settings).await?;
    let jobs = default_jobs(request.jobs);
    let with = settings.iter().map(|s| format!("{}={}", s.name, s.value)).collect::<Vec<_>>();
    let with = if with.is_empty() { String::new() } else { format!(" with {}", with.join(", ")) };
    progress.step(format!("pg_restore -j {jobs} into {target}{with}"));
    // Backups from before roles travelled with them restore as they always did:
    // without owners and grants, which would name roles nobody recorded.
    let with_owners = staged.manifest.database.is_some();
    let archive = staged.archive();
    let min_bytes = request.split_min_bytes.unwrap_or(split_copy::DEFAULT_MIN_BYTES);
    let split = match &staged.index {
        Some((entries, layout)) => split_copy::plan(entries, *layout, jobs, min_bytes),
        None => Vec::new(),
    };
    let phases = match &staged.index {
        Some((entries, layout)) if !split.is_empty() => {
            let (tools, settings) = (&staged.tools, &settings[..]);
            let run = SplitRestore {
                tools,
                target,
                archive: &archive,
                layout: *layout,
                entries,
                tables: &split,
                jobs,
                with_owners,
                settings,
            };
            split_copy::restore(run, progress).await?
        }
        _ => {
            let entries = staged.index.as_ref().map(|(entries, _)| &entries[..]);
            let restoring = Restoring { entries, apart: &Default::default(), progress };
            let run = PgRestore { archive: &archive, jobs, with_owners, settings: &settings, scope: Scope::Whole };
            pg_restore::run(&staged.tools, target, run, restoring).await?
        }
    };
    let restore_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut warnings = std::mem::take(&mut staged.warnings);
    warnings.extend(maintenance.apply_settings(properties).await?);
    for warning in &warnings {
        progress.step(format!("warning: {warning}"));
    }
    scratch::analyze(target, jobs).await?;
    let analyze_seconds = t.elapsed().as_secs_f64();
    progress.step(format!("analyzed in {analyze_seconds:.1} s: the database is usable"));
    let Staged { manifest, expected, started_at, download_seconds, versions, .. } = staged;
    Ok(Restored {
        manifest,
        expected,
        started_at,
        download_seconds,
        restore_seconds,
        analyze_seconds,
        usable_at: Utc::now(),
        roles_created,
        warnings,
        versions,
        jobs,
        phases,
    })
}

/// pg_restore's parallelism: as asked, else the CPU count.
pub fn default_jobs(jobs: Option<u32>) -> u32 {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u32))
}

/// Counts (or checksums) the expected tables in the restored database, in
/// parallel and measured the way the manifest's were, and compares them.
pub async fn verify(
    target: &DatabaseUrl,
    expected: &[TableSnapshot],
    mode: VerifyMode,
    method: ParityMethod,
    jobs: u32,
    progress: &Progress,
) -> Result<Verified, EngineError> {
    let t = Instant::now();
    progress.step(format!("verifying {} tables ({mode:?})", expected.len()));
    let rows = expected.iter().map(|t| t.rows.max(0) as u64).sum();
    let meter = progress.meter_in("verifying", Unit::Rows, Some(Total::Exact(rows)));
    let restored = measure_restored(target, expected, mode, method, jobs as usize, &meter).await?;
    drop(meter);
    let (parity, failures) = parity::compare(expected, &restored);
    Ok(Verified { parity, failures, seconds: t.elapsed().as_secs_f64() })
}

/// The manifest's tables narrowed to the requested ones; with `Counts` the
/// checksums a backup may have recorded are not compared.
pub fn expected_tables(
    manifest: &Manifest,
    wanted: &[String],
    mode: VerifyMode,
) -> Result<Vec<TableSnapshot>, EngineError> {
    let all: Vec<inspect::Table> = manifest
        .tables
        .iter()
        .map(|t| {
            let (schema, name) = t.table.split_once('.').unwrap_or(("public", t.table.as_str()));
            inspect::Table {
                schema: schema.trim_matches('"').to_string(),
                name: name.trim_matches('"').to_string(),
                qualified: t.table.clone(),
            }
        })
        .collect();
    let chosen = inspect::select_tables(all, wanted)?;
    Ok(manifest
        .tables
        .iter()
        .filter(|t| chosen.iter().any(|c| c.qualified == t.table))
        .map(|t| TableSnapshot { checksum: t.checksum.clone().filter(|_| mode == VerifyMode::Checksums), ..t.clone() })
        .collect())
}

/// Streams the dump to `archive` — decompressing, indexing (see
/// [`archive_index`]) and hashing on the way, in one pass — and checks size
/// and SHA-256 of the stored bytes against the manifest. The inner result is
/// the indexing's, which only decides whether pg_restore must scan.
async fn download_verified(
    store: &dyn BackupStore,
    manifest: &Manifest,
    keys: &Keyring,
    archive: &Path,
    progress: &Progress,
) -> Result<std::io::Result<Indexed>, EngineError> {
    let corrupt = |detail: String| EngineError::Corrupt { backup: manifest.backup_name.clone(), detail };
    let dump_key = manifest::dump_key(manifest);
    let mut body = store.get_stream_version(&dump_key, manifest.dump.version_id.as_deref()).await?;
    let keys = manifest.encryption.is_some().then(|| keys.clone());
    let staging = Staging::start(archive.to_path_buf(), manifest.dump.archive_bytes, keys);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut staging_stopped = false;
    let meter = progress.meter("downloading", Some(Total::Exact(manifest.dump.size_bytes)));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| EngineError::Io { context: format!("downloading {dump_key}"), source: e })?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        meter.add(chunk.len() as u64);
        // Keep hashing after staging stopped: a checksum mismatch is the clearer diagnosis.
        if !staging_stopped {
            staging_stopped = !staging.push(chunk).await;
        }
    }
    let sha256 = hex::encode(hasher.finalize());
    if size != manifest.dump.size_bytes || sha256 != manifest.dump.sha256 {
        return Err(corrupt(format!(
            "checksum mismatch: the manifest records {} bytes with sha256 {}, the stored dump has {size} bytes with sha256 {sha256}",
            manifest.dump.size_bytes, manifest.dump.sha256
        )));
    }
    match staging.finish().await {
        Ok(indexed) => Ok(indexed),
        Err(StagingFault::Decrypt(e)) => {
            Err(corrupt(format!("the dump matches its checksum but does not decrypt: {e}")))
        }
        Err(StagingFault::Decompress(e)) => {
            Err(corrupt(format!("the dump matches its checksum but does not decompress: {e}")))
        }
        Err(StagingFault::Write(e)) => Err(EngineError::Io { context: "writing the staged archive".into(), source: e }),
    }
}

/// Measures the expected tables in the restored database; tables that do not
/// exist there are left out (and so reported missing).
async fn measure_restored(
    target: &DatabaseUrl,
    expected: &[TableSnapshot],
    mode: VerifyMode,
    method: ParityMethod,
    parallel: usize,
    meter: &Meter,
) -> Result<Vec<TableSnapshot>, EngineError> {
    let mut conns = inspect::connections(target, parallel.clamp(1, 8)).await?;
    let db_err = |context: &'static str| {
        let url = target.to_string();
        move |source| EngineError::Db(DbError::Query { context: context.into(), url, source })
    };
    for conn in &mut conns {
        inspect::prepare_measuring(conn, method).await.map_err(db_err("preparing the counting sessions"))?;
    }
    let present = inspect::user_tables(&mut conns[0], method).await.map_err(db_err("listing restored tables"))?;
    let tables: Vec<inspect::Table> =
        present.into_iter().filter(|t| expected.iter().any(|e| e.table == t.qualified)).collect();
    inspect::measure_tables(&mut conns, &tables, mode, method, Some(meter))
        .await
        .map_err(db_err("counting restored tables"))
}
