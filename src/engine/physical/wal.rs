//! The WAL archiver: `pg_receivewal` streams the source's WAL through a
//! replication slot into a local spool directory; every completed segment goes
//! into the store compressed (zstd) with its SHA-256 in its key, and the
//! growing segment is uploaded as `.partial` every few seconds, so the archive
//! is never more than that behind the source (RPO in seconds, whatever the
//! write rate).
//!
//! Bounds, so that a stalled archive cannot fill a disk:
//! - the spool: when uploads fail and `max_spooled` completed segments wait,
//!   receiving pauses (the source then keeps the WAL, in the slot);
//! - the source: when the slot retains more than `max_retained` bytes, the
//!   archiver stops, drops its slot (only a slot it created, as its record in
//!   the store says) and fails loudly: WAL continuity is broken from there and
//!   a new base backup is needed, but the source's disk is safe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use super::super::EngineError;
use super::super::pgtools::read_tail;
use super::super::progress::{Progress, human_bytes};
use super::tools::PhysicalTools;
use super::{Segment, WalObject, base, heartbeat};
use crate::db::{DatabaseUrl, DbError};
use crate::store::{BackupStore, StoreError};

#[derive(Clone, Debug)]
pub struct WalOptions {
    pub slot: String,
    /// Where pg_receivewal writes: new, empty, or marked as an archiver's spool.
    pub spool: PathBuf,
    /// How often the growing segment is uploaded.
    pub partial_every: Duration,
    /// A heartbeat row this often (None: no heartbeat).
    pub heartbeat: Option<Duration>,
    /// The most WAL the slot may hold back on the source.
    pub max_retained: u64,
    /// Completed segments waiting in the spool before receiving pauses.
    pub max_spooled: usize,
    /// How often the status document and a progress line are written.
    pub status_every: Duration,
}

/// `_wal/<system>/status.json`: where the archiver stands, for people and the operator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WalStatus {
    #[serde(rename = "updatedAt")]
    pub updated_at: DateTime<Utc>,
    pub slot: String,
    /// WAL the slot holds back on the source.
    #[serde(rename = "retainedBytes")]
    pub retained_bytes: u64,
    /// Newest segment stored complete, and the newest partial upload.
    #[serde(rename = "lastSegment", default, skip_serializing_if = "Option::is_none")]
    pub last_segment: Option<String>,
    #[serde(rename = "lastUploadAt", default, skip_serializing_if = "Option::is_none")]
    pub last_upload_at: Option<DateTime<Utc>>,
    #[serde(rename = "lastHeartbeatAt", default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Why the archiver stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// The record of a slot the archiver created (`_wal/<system>/slot-<name>.json`):
/// only a slot with a record is ever dropped.
#[derive(Serialize, Deserialize)]
struct SlotRecord {
    slot: String,
    #[serde(rename = "createdAt")]
    created_at: DateTime<Utc>,
}

fn slot_record_key(system: &str, slot: &str) -> String {
    format!("{}slot-{slot}.json", WalObject::prefix(system))
}

pub fn status_key(system: &str) -> String {
    format!("{}status.json", WalObject::prefix(system))
}

/// The newest status any WAL archiver wrote into the store (one per source
/// system it archived); `None` when none ever ran.
pub async fn newest_status(store: &dyn BackupStore) -> Result<Option<WalStatus>, EngineError> {
    let mut newest: Option<WalStatus> = None;
    for object in store.list(&format!("{}/", artifortress_formats::physical::WAL_PREFIX)).await? {
        if !object.key.ends_with("/status.json") {
            continue;
        }
        let Ok(status) = serde_json::from_slice::<WalStatus>(&store.get_bytes(&object.key).await?) else { continue };
        if newest.as_ref().is_none_or(|n| status.updated_at > n.updated_at) {
            newest = Some(status);
        }
    }
    Ok(newest)
}

/// A slot name is PostgreSQL's rule: lowercase letters, digits and `_`, 1–63.
pub fn validate_slot(slot: &str) -> Result<(), EngineError> {
    if !slot.is_empty()
        && slot.len() <= 63
        && slot.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(EngineError::Config(format!(
            "invalid replication slot name {slot:?}: use 1-63 lowercase letters, digits and '_'"
        )))
    }
}

/// Runs until `stop` resolves (then uploads what it has and returns) or a
/// bound or error ends it.
pub async fn run(
    source: &DatabaseUrl,
    store: &dyn BackupStore,
    options: &WalOptions,
    progress: &Progress,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), EngineError> {
    validate_slot(&options.slot)?;
    let identity = base::source_identity(source).await?;
    let tools = PhysicalTools::for_streaming(identity.major).await?;
    let system = identity.system_identifier.clone();
    let segment_bytes = identity.wal_segment_bytes;
    claim_spool(&options.spool)?;
    let mut conn = connect(source).await?;
    ensure_slot(&mut conn, store, &system, &options.slot, source).await?;
    if options.heartbeat.is_some() {
        heartbeat::ensure_table(&mut conn).await?;
    }
    progress.step(format!(
        "archiving WAL of PostgreSQL {} (system {system}) through slot {} into {}",
        identity.server_version,
        options.slot,
        store.location(&WalObject::prefix(&system))
    ));

    let mut uploader = Uploader::new(store, &system, &options.spool, segment_bytes).await?;
    let mut receiver: Option<tokio::process::Child> = None;
    let mut status = WalStatus {
        updated_at: Utc::now(),
        slot: options.slot.clone(),
        retained_bytes: 0,
        last_segment: None,
        last_upload_at: None,
        last_heartbeat_at: None,
        stopped: None,
    };
    let (mut last_beat, mut last_status, mut last_partial) = (None::<Instant>, Instant::now(), Instant::now());
    let mut restarts = 0u32;
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let outcome = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            _ = tick.tick() => {}
        }
        // Uploads: completed segments always, the growing one when due.
        let partial_due = last_partial.elapsed() >= options.partial_every;
        match uploader.upload(partial_due).await {
            Ok(stored_any) => {
                if partial_due {
                    last_partial = Instant::now();
                }
                if stored_any {
                    status.last_upload_at = Some(Utc::now());
                    status.last_segment = uploader.newest_complete.clone();
                }
            }
            Err(e) => progress.step(format!("uploading WAL failed, retrying: {e}")),
        }
        // Receiving, unless the spool is full of segments not yet stored.
        let spooled = uploader.waiting().unwrap_or(0);
        if spooled >= options.max_spooled {
            if let Some(mut child) = receiver.take() {
                progress.step(format!(
                    "{spooled} segments wait for upload: receiving paused (the slot keeps the WAL on the source)"
                ));
                let _ = child.kill().await;
            }
        } else {
            if let Some(child) = receiver.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                let stderr = match child.stderr.take() {
                    Some(err) => read_tail(err, 4096).await,
                    None => String::new(),
                };
                progress.step(format!("pg_receivewal exited ({exit}), restarting: {}", stderr.trim()));
                receiver = None;
                restarts += 1;
            }
            if receiver.is_none() {
                if restarts > 0 {
                    tokio::time::sleep(Duration::from_secs(u64::from(restarts.min(10)))).await;
                }
                receiver = Some(start_receiver(&tools, source, options)?);
            }
        }
        // The source's side: the slot's retained WAL against the bound.
        match retained(&mut conn, &options.slot).await {
            Ok(Some(bytes)) => {
                status.retained_bytes = bytes;
                if bytes > options.max_retained {
                    if let Some(mut child) = receiver.take() {
                        let _ = child.kill().await;
                    }
                    let why =
                        bound_exceeded(&mut conn, store, &system, &options.slot, bytes, options.max_retained).await;
                    status.stopped = Some(why.clone());
                    break Err(EngineError::Tool { tool: "WAL archiver", detail: why });
                }
            }
            Ok(None) => {
                break Err(EngineError::Tool {
                    tool: "WAL archiver",
                    detail: format!(
                        "replication slot {} is gone from the source: WAL continuity is broken; take a new base backup",
                        options.slot
                    ),
                });
            }
            Err(e) => {
                progress.step(format!("reading the slot failed, reconnecting: {e}"));
                if let Ok(c) = connect(source).await {
                    conn = c;
                }
            }
        }
        if let Some(every) = options.heartbeat
            && last_beat.is_none_or(|t| t.elapsed() >= every)
        {
            match heartbeat::beat(&mut conn).await {
                Ok(at) => status.last_heartbeat_at = Some(at),
                Err(e) => progress.step(format!("heartbeat failed: {e}")),
            }
            last_beat = Some(Instant::now());
        }
        if last_status.elapsed() >= options.status_every {
            last_status = Instant::now();
            status.updated_at = Utc::now();
            progress.step(format!(
                "slot {} retains {}; newest stored segment {}",
                options.slot,
                human_bytes(status.retained_bytes),
                status.last_segment.as_deref().unwrap_or("none yet")
            ));
            let _ = store.put_bytes(&status_key(&system), serde_json::to_vec_pretty(&status).unwrap()).await;
        }
    };
    if let Some(mut child) = receiver.take() {
        let _ = child.kill().await;
    }
    if outcome.is_ok() {
        // What was received is stored before we go.
        uploader.upload(true).await?;
        status.stopped = Some("stopped".into());
        status.last_segment = uploader.newest_complete.clone();
    }
    status.updated_at = Utc::now();
    let _ = store.put_bytes(&status_key(&system), serde_json::to_vec_pretty(&status).unwrap()).await;
    outcome
}

/// Marks the spool directory as the archiver's. The archiver deletes stored
/// segments from it, so a directory with anything else in it (a server's
/// `pg_wal`, given by mistake) is refused and left untouched.
fn claim_spool(spool: &Path) -> Result<(), EngineError> {
    const MARKER: &str = "artifortress-wal-spool";
    let io = EngineError::io(format!("preparing the spool directory {}", spool.display()));
    match std::fs::read_dir(spool) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(spool).map_err(io)?,
        Err(e) => return Err(io(e)),
        Ok(mut entries) => {
            if entries.next().is_some() && !spool.join(MARKER).exists() {
                return Err(EngineError::refused(
                    "NotOurs",
                    format!(
                        "the spool directory {} is not empty and is not an archiver's (no {MARKER} file): it is left untouched; give a new or empty directory",
                        spool.display()
                    ),
                ));
            }
        }
    }
    std::fs::write(spool.join(MARKER), "the spool of an artifortress-operator WAL archiver\n")
        .map_err(EngineError::io(format!("writing into {}", spool.display())))
}

async fn connect(source: &DatabaseUrl) -> Result<PgConnection, EngineError> {
    Ok(PgConnection::connect_with(&source.connect_options())
        .await
        .map_err(|e| DbError::Connect { url: source.to_string(), source: e })?)
}

fn db_err(context: &'static str, source: &DatabaseUrl) -> impl FnOnce(sqlx::Error) -> EngineError {
    let url = source.to_string();
    move |e| EngineError::Db(DbError::Query { context: context.into(), url, source: e })
}

/// Creates the slot (reserving WAL at once) unless it exists; an existing slot
/// without our record is someone else's and is refused.
async fn ensure_slot(
    conn: &mut PgConnection,
    store: &dyn BackupStore,
    system: &str,
    slot: &str,
    source: &DatabaseUrl,
) -> Result<(), EngineError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)")
        .bind(slot)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err("looking for the replication slot", source))?;
    let record = match store.get_bytes(&slot_record_key(system, slot)).await {
        Ok(_) => true,
        Err(StoreError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    if exists && !record {
        return Err(EngineError::refused(
            "NotOurs",
            format!(
                "replication slot {slot:?} exists on the source but was not created by this archiver (no record in {}): it is left alone; choose another --slot",
                store.location(&WalObject::prefix(system))
            ),
        ));
    }
    if !exists {
        sqlx::query("SELECT pg_create_physical_replication_slot($1, true)")
            .bind(slot)
            .execute(&mut *conn)
            .await
            .map_err(db_err("creating the replication slot (the role needs REPLICATION)", source))?;
        let record = SlotRecord { slot: slot.to_string(), created_at: Utc::now() };
        store.put_bytes(&slot_record_key(system, slot), serde_json::to_vec_pretty(&record).unwrap()).await?;
    }
    Ok(())
}

async fn retained(conn: &mut PgConnection, slot: &str) -> Result<Option<u64>, sqlx::Error> {
    let bytes: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(bytes.map(|b| u64::try_from(b.unwrap_or(0)).unwrap_or(0)))
}

/// Drops our slot past the bound; the message says what happened and what to do.
async fn bound_exceeded(
    conn: &mut PgConnection,
    store: &dyn BackupStore,
    system: &str,
    slot: &str,
    bytes: u64,
    bound: u64,
) -> String {
    // The receiver was just killed; its walsender may take a moment to go.
    let mut dropped = Err(String::new());
    for _ in 0..50 {
        dropped = sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(slot)
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if dropped.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = store.delete(&slot_record_key(system, slot)).await;
    let message = format!(
        "replication slot {slot} held back {} of WAL on the source, over the bound of {} (--max-retained): the archiver could not keep up or store its segments",
        human_bytes(bytes),
        human_bytes(bound)
    );
    let message = match dropped {
        Ok(()) => format!(
            "{message}; the slot was DROPPED so the source's disk cannot fill. WAL continuity is broken: fix the archive, start the archiver again and take a new base backup"
        ),
        Err(e) => format!("{message}; dropping the slot failed ({e}): drop it by hand or the source's disk may fill"),
    };
    tracing::error!(slot, retained = bytes, bound, "{message}");
    message
}

fn start_receiver(
    tools: &PhysicalTools,
    source: &DatabaseUrl,
    options: &WalOptions,
) -> Result<tokio::process::Child, EngineError> {
    tokio::process::Command::new(tools.bin("pg_receivewal"))
        .arg(format!("--directory={}", options.spool.display()))
        .arg(format!("--slot={}", options.slot))
        .args(["--no-loop", "--no-password", "--status-interval=1"])
        .envs(source.libpq_env())
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(EngineError::io(format!("starting {}", tools.bin("pg_receivewal").display())))
}

/// Moves segments from the spool into the store.
struct Uploader<'a> {
    store: &'a dyn BackupStore,
    system: String,
    spool: PathBuf,
    segment_bytes: u64,
    /// Segments stored complete (names), to skip and to clean partials of.
    stored: BTreeMap<String, String>,
    newest_complete: Option<String>,
    /// The stored partial: segment, key, and the file's length and mtime then.
    partial: Option<(String, String, u64, std::time::SystemTime)>,
}

impl<'a> Uploader<'a> {
    async fn new(
        store: &'a dyn BackupStore,
        system: &str,
        spool: &Path,
        segment_bytes: u64,
    ) -> Result<Uploader<'a>, EngineError> {
        let mut stored = BTreeMap::new();
        let mut partial = None;
        let prefix = WalObject::prefix(system);
        for object in store.list(&prefix).await? {
            let Some(o) = object.key.strip_prefix(&prefix).and_then(WalObject::parse) else { continue };
            if o.partial {
                partial = Some((o.segment.clone(), object.key.clone(), 0, std::time::UNIX_EPOCH));
            } else {
                stored.insert(o.segment.clone(), object.key.clone());
            }
        }
        let newest_complete = stored.keys().next_back().cloned();
        Ok(Uploader {
            store,
            system: system.to_string(),
            spool: spool.to_path_buf(),
            segment_bytes,
            stored,
            newest_complete,
            partial,
        })
    }

    fn spool_files(&self) -> std::io::Result<(Vec<String>, Option<String>)> {
        let (mut complete, mut partial) = (Vec::new(), None);
        for entry in std::fs::read_dir(&self.spool)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(segment) = name.strip_suffix(".partial") {
                if Segment::parse(segment, self.segment_bytes).is_some() {
                    partial = Some(segment.to_string());
                }
            } else if Segment::parse(&name, self.segment_bytes).is_some() {
                complete.push(name);
            }
        }
        complete.sort();
        Ok((complete, partial))
    }

    /// Completed segments in the spool not yet stored.
    fn waiting(&self) -> std::io::Result<usize> {
        Ok(self.spool_files()?.0.iter().filter(|s| !self.stored.contains_key(*s)).count())
    }

    /// Stores what is new in the spool; whether anything was.
    async fn upload(&mut self, partial_due: bool) -> Result<bool, EngineError> {
        let mut stored_any = false;
        let (complete, growing) =
            self.spool_files().map_err(EngineError::io(format!("reading {}", self.spool.display())))?;
        for segment in &complete {
            if !self.stored.contains_key(segment) {
                let key = self.put(segment, &self.spool.join(segment), false).await?;
                self.stored.insert(segment.clone(), key);
                stored_any = true;
            }
            if self.partial.as_ref().is_some_and(|(s, ..)| s == segment) {
                let (_, key, ..) = self.partial.take().unwrap();
                self.store.delete(&key).await?;
            }
        }
        self.newest_complete = self.stored.keys().next_back().cloned();
        // pg_receivewal resumes after the newest segment in its directory: keep that one.
        for segment in complete.iter().rev().skip(1) {
            let _ = std::fs::remove_file(self.spool.join(segment));
        }
        if partial_due && let Some(segment) = growing {
            let path = self.spool.join(format!("{segment}.partial"));
            let meta = std::fs::metadata(&path).ok();
            let (len, mtime) =
                meta.map_or((0, std::time::UNIX_EPOCH), |m| (m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)));
            let changed = self.partial.as_ref().is_none_or(|(s, _, l, t)| *s != segment || *l != len || *t != mtime);
            if changed && len > 0 {
                let key = self.put(&segment, &path, true).await?;
                if let Some((_, old, ..)) = self.partial.replace((segment, key.clone(), len, mtime))
                    && old != key
                {
                    self.store.delete(&old).await?;
                }
                stored_any = true;
            }
        }
        Ok(stored_any)
    }

    async fn put(&self, segment: &str, path: &Path, partial: bool) -> Result<String, EngineError> {
        let path = path.to_path_buf();
        let (sha256, compressed) = tokio::task::spawn_blocking(move || -> std::io::Result<(String, Vec<u8>)> {
            let bytes = std::fs::read(&path)?;
            let sha = hex::encode(Sha256::digest(&bytes));
            Ok((sha, zstd::bulk::compress(&bytes, 3)?))
        })
        .await
        .map_err(|e| EngineError::io("compressing a WAL segment")(std::io::Error::other(e)))?
        .map_err(EngineError::io(format!("reading WAL segment {segment}")))?;
        let object = WalObject { segment: segment.to_string(), partial, sha256 };
        let key = object.key(&self.system);
        self.store.put_bytes(&key, compressed).await?;
        Ok(key)
    }
}
