//! One consistent backup: counts inside an exported snapshot, `pg_dump` of that
//! same snapshot streamed through zstd into the store, manifest written last.
//!
//! pg_dump writes an uncompressed custom-format archive (`-Fc -Z0`) and we
//! compress it with zstd level 1: pg_dump's own zlib is single-threaded and slow,
//! zstd is both faster and smaller, and the archive stays pg_restore's format.
//! With encryption configured the compressed stream is then encrypted
//! ([`super::encryption`]) and the manifest records to whom.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncRead, BufReader};

use crate::db::{DatabaseUrl, DbError};
use crate::store::{BackupStore, ByteStream};

use super::encryption::Sealing;
use super::manifest::{self, DUMP_FILE, DumpInfo, ENCRYPTED_DUMP_FILE, Manifest, ParityMethod, VerifyMode};
use super::pgtools::{PgTools, Toolset, read_tail};
use super::progress::{Progress, Total, human_bytes};
use super::{EngineError, inspect, validate_backup_name};

/// How new backups measure their tables (older ones are restored the way they were measured).
const PARITY_METHOD: ParityMethod = ParityMethod::Stored;

/// An unfinished upload older than this belongs to no live backup: the
/// longest backups take hours, not days.
pub const ABANDONED_UPLOAD_AGE: Duration = Duration::from_secs(2 * 86_400);

/// What to back up.
#[derive(Clone, Debug)]
pub struct BackupRequest {
    pub name: String,
    /// Tables whose numbers the manifest records; empty means all user tables.
    pub tables: Vec<String>,
    pub verify: VerifyMode,
    /// Recorded in the manifest (`labels`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// About how large the dump will be, when the caller knows better than the
    /// database size (the upload's part size is chosen from it once).
    pub expected_size: Option<u64>,
    /// Encrypt what is stored (the manifest stays readable).
    pub encryption: Option<Sealing>,
}

/// Default backup name: `backup-20261127-231500`, or with `-2`, `-3`, … when
/// a backup of that second is in the store already.
pub async fn default_name(store: &dyn BackupStore, now: DateTime<Utc>) -> Result<String, EngineError> {
    let base = now.format("backup-%Y%m%d-%H%M%S").to_string();
    for n in 1..100 {
        let name = if n == 1 { base.clone() } else { format!("{base}-{n}") };
        match store.get_bytes(&manifest::key(&name)).await {
            Err(crate::store::StoreError::NotFound { .. }) => return Ok(name),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    Err(EngineError::Config(format!("99 backups named {base}… exist in {}; name this one with --name", store.url())))
}

/// Takes a backup of `source` into `store` and returns its manifest. On any
/// failure nothing is left that looks like a backup: no manifest is written and
/// the dump upload is aborted (or deleted when only the counts failed).
pub async fn run(
    source_url: &DatabaseUrl,
    store: &dyn BackupStore,
    request: &BackupRequest,
    progress: &Progress,
) -> Result<Manifest, EngineError> {
    let name = &request.name;
    validate_backup_name(name)?;
    store.require_object_lock().await?;
    match store.get_bytes(&manifest::key(name)).await {
        Ok(_) => {
            return Err(EngineError::Config(format!(
                "backup {name:?} already exists in {}; choose another --name",
                store.url()
            )));
        }
        Err(crate::store::StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Unfinished uploads of this backup's name were left by an earlier failed
    // attempt of it; elsewhere in the store another backup may be writing right
    // now (a local backup, another installation's), so only uploads too old to
    // belong to a live backup are swept there.
    let own = store.clean_incomplete(&format!("{name}/"), Duration::ZERO).await?;
    let abandoned = store.clean_incomplete("", ABANDONED_UPLOAD_AGE).await?;
    if own + abandoned > 0 {
        progress.step(format!(
            "removed {own} unfinished upload(s) of an earlier attempt of {name} and {abandoned} abandoned for over {}",
            super::progress::human_duration(ABANDONED_UPLOAD_AGE.as_secs_f64())
        ));
    }

    let started_at = Utc::now();
    let db_err = |context: &str| {
        let context = context.to_string();
        move |source| EngineError::Db(DbError::Query { context, url: source_url.to_string(), source })
    };
    let mut snap = PgConnection::connect_with(&source_url.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: source_url.to_string(), source })?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut snap)
        .await
        .map_err(db_err("starting the snapshot transaction"))?;
    // statement_timestamp() is taken just before the snapshot, so the recorded
    // restore point is never later than the data (RPO errs on the safe side).
    let (snapshot_id, snapshot_time): (String, DateTime<Utc>) =
        sqlx::query_as("SELECT pg_export_snapshot(), statement_timestamp()")
            .fetch_one(&mut snap)
            .await
            .map_err(db_err("exporting the snapshot"))?;
    let identity = inspect::identity(&mut snap).await.map_err(db_err("reading the server identity"))?;
    let tools = Toolset::installed().await.for_backup(identity.major)?.clone();
    let tables = inspect::select_tables(
        inspect::user_tables(&mut snap, PARITY_METHOD).await.map_err(db_err("listing tables"))?,
        &request.tables,
    )?;
    // What a restore needs around the data, read in the same snapshot.
    let database = inspect::database_properties(&mut snap).await.map_err(db_err("reading database properties"))?;
    let roles = inspect::needed_roles(&mut snap).await.map_err(db_err("reading the roles the database needs"))?;
    let extensions = inspect::extensions(&mut snap).await.map_err(db_err("listing extensions"))?;
    // The stored dump is smaller than the database (no index data, compressed);
    // the store sizes its upload parts from this.
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut snap)
        .await
        .map_err(db_err("reading the database size"))?;
    progress.step(format!(
        "snapshot {snapshot_id} of {} ({} tables, {} roles, PostgreSQL {}); dumping with {}",
        identity.source.database,
        tables.len(),
        roles.len(),
        identity.source.server_version,
        tools.version
    ));

    // A second connection counts in the same snapshot, beside the first.
    let mut counters = vec![snap];
    let mut extra = inspect::connections(source_url, 1).await?;
    for conn in &mut extra {
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await
            .map_err(db_err("starting a counting transaction"))?;
        sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot_id}'"))
            .execute(&mut *conn)
            .await
            .map_err(db_err("importing the snapshot"))?;
    }
    counters.extend(extra);
    for conn in &mut counters {
        inspect::prepare_measuring(conn, PARITY_METHOD).await.map_err(db_err("preparing the counting sessions"))?;
    }

    let dump_file = if request.encryption.is_some() { ENCRYPTED_DUMP_FILE } else { DUMP_FILE };
    let dump_key = format!("{name}/{dump_file}");
    let stats = Arc::new(Mutex::new(OutputStats::default()));
    // The previous backup of the same database estimates this one's size, for
    // the ETA (a store may hold backups of several).
    let previous = match manifest::list(store).await {
        Ok(catalog) => catalog
            .manifests
            .iter()
            .rev()
            .find(|m| {
                m.source.system_identifier == identity.source.system_identifier
                    && m.source.database == identity.source.database
            })
            .map(|m| Total::Estimate(m.dump.size_bytes)),
        Err(_) => None,
    };
    let meter = progress.meter("dumping and uploading", previous);
    let body =
        dump_stream(&tools, source_url, &snapshot_id, request.encryption.as_ref(), stats.clone(), meter.counter())?;
    let (uploaded, counted) = tokio::join!(
        store.put_stream_expecting(
            &dump_key,
            body,
            request.expected_size.unwrap_or_else(|| u64::try_from(database_bytes).unwrap_or(0))
        ),
        inspect::measure_tables(&mut counters, &tables, request.verify, PARITY_METHOD, None)
    );
    // Only now may the snapshot go: pg_dump has finished with it.
    drop(counters);
    drop(meter);

    let pg_dump_failure = stats.lock().unwrap().failure.clone();
    let stored_bytes = match (uploaded, pg_dump_failure) {
        (_, Some(detail)) => return Err(EngineError::Tool { tool: "pg_dump", detail }),
        (Err(e), None) => return Err(e.into()),
        (Ok(n), None) => n,
    };
    let tables = match counted {
        Ok(tables) => tables,
        Err(source) => {
            // The dump is complete but unproven; without a manifest it is no backup.
            let _ = store.delete(&dump_key).await;
            return Err(db_err("counting rows in the snapshot")(source));
        }
    };
    let (sha256, archive_bytes) = {
        let stats = stats.lock().unwrap();
        (hex::encode(stats.sha256.clone().finalize()), stats.archive_bytes)
    };
    // On a versioned bucket the manifest pins the dump's version; a version
    // written over the key later is then seen, and never restored.
    let version_id = store.current_version(&dump_key).await?;
    progress.step(format!(
        "stored {} (archive {}) in {}",
        human_bytes(stored_bytes),
        human_bytes(archive_bytes),
        store.url()
    ));

    let encryption = request.encryption.as_ref().map(Sealing::describe);
    let manifest = Manifest {
        manifest_version: manifest::version_for(encryption.as_ref()),
        backup_name: name.clone(),
        source: identity.source,
        snapshot_time,
        started_at,
        completed_at: Utc::now(),
        dump: DumpInfo {
            file: dump_file.to_string(),
            format: "custom".to_string(),
            compression: "zstd".to_string(),
            size_bytes: stored_bytes,
            sha256,
            archive_bytes,
            version_id,
        },
        verify: request.verify,
        tables,
        pg_dump_version: tools.version.clone(),
        tool_version: format!("artifortress-operator {}", env!("CARGO_PKG_VERSION")),
        parity_method: PARITY_METHOD,
        database: Some(database),
        roles,
        extensions,
        labels: request.labels.clone(),
        encryption,
    };
    store.put_bytes(&manifest::key(name), manifest.to_json()).await?;
    Ok(manifest)
}

/// A look at the bytes a tool writes as they pass.
pub(super) type Tap = Box<dyn FnMut(&[u8]) + Send>;

/// What a tool's output stream saw, for its caller once the stream ended.
#[derive(Default)]
pub(super) struct OutputStats {
    /// Bytes the tool wrote (the archive pg_restore will read, the tar).
    pub archive_bytes: u64,
    /// SHA-256 of the stored (compressed, maybe encrypted) bytes.
    pub sha256: Sha256,
    /// The tool's failure, when it exited non-zero or wrote nothing.
    pub failure: Option<String>,
    /// Sees every byte the tool wrote, before compression.
    pub tap: Option<Tap>,
}

/// pg_dump's output, compressed, maybe encrypted, and hashed, as a stream for the store.
fn dump_stream(
    tools: &PgTools,
    source_url: &DatabaseUrl,
    snapshot_id: &str,
    sealing: Option<&Sealing>,
    stats: Arc<Mutex<OutputStats>>,
    stored: Arc<std::sync::atomic::AtomicU64>,
) -> Result<ByteStream, EngineError> {
    let child = tools
        .command(&tools.pg_dump(), source_url)
        .args(["--format=custom", "--compress=0"])
        .arg(format!("--snapshot={snapshot_id}"))
        .stdout(Stdio::piped())
        .spawn()
        .map_err(EngineError::io(format!("starting {}", tools.pg_dump().display())))?;
    Ok(compressed_output(child, "pg_dump", sealing, stats, stored))
}

/// A tool's stdout, compressed with zstd, encrypted when `sealing` says so,
/// and hashed, as a stream for the store. The stream ends with an error — so
/// the store aborts the upload — unless the tool exits successfully after
/// writing something.
pub(super) fn compressed_output(
    mut child: tokio::process::Child,
    tool: &'static str,
    sealing: Option<&Sealing>,
    stats: Arc<Mutex<OutputStats>>,
    stored: Arc<std::sync::atomic::AtomicU64>,
) -> ByteStream {
    let stdout = child.stdout.take().expect("piped");
    let stderr = tokio::spawn(read_tail(child.stderr.take().expect("piped"), 8 * 1024));

    let counting = CountingReader { inner: stdout, stats: stats.clone() };
    let stats_for_chunks = stats.clone();
    let encoder = async_compression::tokio::bufread::ZstdEncoder::with_quality(
        BufReader::with_capacity(1 << 20, counting),
        async_compression::Level::Precise(1),
    );
    let sealer = sealing.map(Sealing::sealer);
    let stored_chunk = move |chunk: bytes::Bytes| {
        stats_for_chunks.lock().unwrap().sha256.update(&chunk);
        stored.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        chunk
    };
    Box::pin(async_stream::stream! {
        let mut sealer = match sealer.transpose() {
            Ok(sealer) => sealer,
            Err(e) => {
                yield Err(e);
                return;
            }
        };
        let mut chunks = tokio_util::io::ReaderStream::with_capacity(encoder, 1 << 20);
        while let Some(chunk) = chunks.next().await {
            let chunk = match (chunk, sealer.as_mut()) {
                (Ok(chunk), None) => Ok(chunk),
                (Ok(chunk), Some(sealer)) => sealer.seal(&chunk),
                (Err(e), _) => Err(e),
            };
            match chunk {
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => yield Ok(stored_chunk(chunk)),
                Err(e) => {
                    yield Err(e);
                    return;
                }
            }
        }
        let status = child.wait().await;
        let stderr = stderr.await.unwrap_or_default();
        let failure = match status {
            Ok(s) if s.success() && stats.lock().unwrap().archive_bytes > 0 => None,
            Ok(s) if s.success() => Some(format!("{tool} exited successfully but wrote nothing")),
            Ok(s) => Some(format!("{tool} {s}: {}", super::pgtools::failure_summary(tool, &stderr))),
            Err(e) => Some(format!("waiting for {tool}: {e}")),
        };
        if let Some(failure) = failure {
            stats.lock().unwrap().failure = Some(failure.clone());
            yield Err(std::io::Error::other(failure));
            return;
        }
        if let Some(sealer) = sealer {
            yield sealer.finish().map(stored_chunk);
        }
    })
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    stats: Arc<Mutex<OutputStats>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let mut stats = self.stats.lock().unwrap();
        let read = &buf.filled()[before..];
        stats.archive_bytes += read.len() as u64;
        if let Some(tap) = stats.tap.as_mut() {
            tap(read);
        }
        drop(stats);
        poll
    }
}
