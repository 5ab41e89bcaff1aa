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

mod uploader;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use self::uploader::Uploader;
use super::super::EngineError;
use super::super::encryption::{Encryption, Sealing};
use super::super::pgtools::read_tail;
use super::super::progress::{Progress, human_bytes};
use super::liveness::Liveness;
use super::spool::{self, Claimed};
use super::tools::PhysicalTools;
use super::{Lsn, WalObject, base, heartbeat};
use crate::db::{DatabaseUrl, DbError};
use crate::store::{BackupStore, StoreError};

#[derive(Clone, Debug)]
pub struct WalOptions {
    pub slot: String,
    /// Where pg_receivewal writes: new, empty, or marked as an archiver's
    /// spool (default: one per source system and slot, [`spool::default_dir`]).
    pub spool: Option<PathBuf>,
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
    /// Encrypt every segment and history file (public keys: the archiver
    /// cannot decrypt what it stored).
    pub encryption: Option<Sealing>,
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
    /// The newest heartbeat whose commit is in the stored WAL: a restore can
    /// reach every moment before it.
    #[serde(rename = "archivedHeartbeatAt", default, skip_serializing_if = "Option::is_none")]
    pub archived_heartbeat_at: Option<DateTime<Utc>>,
    /// Why the archiver stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The newest segment refused by its page header (never uploaded), and why.
    #[serde(rename = "lastRejected", default, skip_serializing_if = "Option::is_none")]
    pub last_rejected: Option<String>,
    /// Where the receiver stands as the source sees it: written, and fsynced.
    #[serde(rename = "receivedLsn", default, skip_serializing_if = "Option::is_none")]
    pub received_lsn: Option<Lsn>,
    #[serde(rename = "flushedLsn", default, skip_serializing_if = "Option::is_none")]
    pub flushed_lsn: Option<Lsn>,
    /// The source's own WAL position then.
    #[serde(rename = "serverLsn", default, skip_serializing_if = "Option::is_none")]
    pub server_lsn: Option<Lsn>,
    /// Why WAL is not arriving although the archiver runs (a receiver that
    /// keeps exiting, a position standing still while the source's moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
    /// Whom the segments uploaded since the archiver started are encrypted to
    /// (each object says itself whether it is: an age file or a zstd one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl WalStatus {
    /// The status of an archiver of `slot` that has done nothing yet.
    pub fn starting(slot: &str) -> WalStatus {
        WalStatus {
            updated_at: Utc::now(),
            slot: slot.to_string(),
            retained_bytes: 0,
            last_segment: None,
            last_upload_at: None,
            last_heartbeat_at: None,
            archived_heartbeat_at: None,
            stopped: None,
            last_rejected: None,
            received_lsn: None,
            flushed_lsn: None,
            server_lsn: None,
            stalled: None,
            encryption: None,
        }
    }
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
    store.require_object_lock().await?;
    super::capability::require_physical(source).await?;
    let identity = base::source_identity(source).await?;
    let tools = PhysicalTools::for_streaming(identity.major).await?;
    let system = identity.system_identifier.clone();
    let segment_bytes = identity.wal_segment_bytes;
    let spool = options.spool.clone().unwrap_or_else(|| spool::default_dir(&system, &options.slot));
    spool::refuse_if_not_a_spool(&spool)?;
    let mut conn = connect(source).await?;
    ensure_slot(&mut conn, store, &system, &options.slot, source).await?;
    let mut timeline = server_timeline(&mut conn).await.map_err(db_err("reading the server's timeline", source))?;
    let served = served(&mut conn, &options.slot).await.map_err(db_err("reading the slot's position", source))?;
    let mut rejections = Vec::new();
    let claimed = spool::claim(&spool, &system, &options.slot, segment_bytes, &served, &mut rejections)?;
    if options.heartbeat.is_some() {
        heartbeat::ensure_table(&mut conn).await?;
    }
    progress.step(format!(
        "archiving WAL of PostgreSQL {} (system {system}) through slot {} into {}",
        identity.server_version,
        options.slot,
        store.location(&WalObject::prefix(&system))
    ));

    let mut uploader = Uploader::new(store, &system, &spool, segment_bytes, options.encryption.clone()).await?;
    match claimed {
        Claimed::New | Claimed::Resumed => {}
        Claimed::MovedAside { moved_to, reason } => progress.step(format!(
            "warning: the spool {} was moved aside to {} and nothing in it uploaded: {reason}",
            spool.display(),
            moved_to.display()
        )),
        Claimed::Behind { reason } => {
            // Its complete segments are this system's WAL: keep them, then
            // start over where the slot is.
            uploader.upload(false, None).await?;
            if let Claimed::MovedAside { moved_to, .. } =
                spool::restart(&spool, &system, &options.slot, reason.clone())?
            {
                progress.step(format!(
                    "the spool {} was behind the slot ({reason}): its complete segments were stored, the rest moved to {}",
                    spool.display(),
                    moved_to.display()
                ));
            }
        }
    }
    let mut receiver: Option<tokio::process::Child> = None;
    let mut status = WalStatus {
        encryption: options.encryption.as_ref().map(Sealing::describe),
        ..WalStatus::starting(&options.slot)
    };
    uploader.rejections.append(&mut rejections);
    let (mut last_beat, mut last_status, mut last_partial) = (None::<Instant>, Instant::now(), Instant::now());
    let mut liveness = Liveness::new(Instant::now());
    // Heartbeats written, not yet known to be in the store: time and WAL position.
    let mut beats = std::collections::VecDeque::new();
    let mut restart_at = Instant::now();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let outcome = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            _ = tick.tick() => {}
        }
        // Uploads: completed segments always, the growing one when due.
        let partial_due = last_partial.elapsed() >= options.partial_every;
        // The receiver had written at least this far before the spool is read.
        match uploader.upload(partial_due, status.received_lsn).await {
            Ok(stored_any) => {
                while let Some((at, _)) = beats.front().filter(|(_, lsn)| *lsn <= uploader.through) {
                    status.archived_heartbeat_at = Some(*at);
                    beats.pop_front();
                }
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
        for rejection in uploader.rejections.drain(..) {
            progress.step(format!("warning: {rejection}"));
            status.last_rejected = Some(rejection);
        }
        // Receiving, unless the spool is full of segments not yet stored.
        let spooled = uploader.waiting().unwrap_or(0);
        if spooled >= options.max_spooled {
            let why =
                format!("{spooled} segments wait for upload: receiving paused (the slot keeps the WAL on the source)");
            if let Some(child) = receiver.take() {
                progress.step(&why);
                stop_receiver(child).await;
            }
            liveness.paused(why);
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
                liveness.exited(Instant::now(), &stderr);
                restart_at = Instant::now() + liveness.backoff();
            }
            if receiver.is_none() && Instant::now() >= restart_at {
                match spool::set_aside_unfinished(&spool, segment_bytes) {
                    Ok(None) => {}
                    Ok(Some(said)) => progress.step(format!("warning: {said}")),
                    Err(e) => progress.step(format!("warning: {e}")),
                }
                receiver = Some(start_receiver(&tools, source, &spool, options)?);
            }
        }
        // The source's side: WAL arriving, and the slot's retained WAL against the bound.
        let mut write_now = false;
        match slot_state(&mut conn, &options.slot).await {
            Ok(Some(state)) => {
                let bytes = state.retained;
                status.retained_bytes = bytes;
                (status.received_lsn, status.flushed_lsn, status.server_lsn) =
                    (state.received, state.flushed, Some(state.server));
                let stalled = liveness.observe(Instant::now(), state.received, state.server);
                if stalled != status.stalled {
                    match &stalled {
                        Some(why) => progress.step(format!("warning: no WAL is arriving: {why}")),
                        None => progress.step("WAL is arriving again"),
                    }
                    status.stalled = stalled;
                    write_now = true;
                }
                if bytes > options.max_retained {
                    if let Some(child) = receiver.take() {
                        stop_receiver(child).await;
                    }
                    let why =
                        bound_exceeded(&mut conn, store, &system, &options.slot, bytes, options.max_retained).await;
                    status.stopped = Some(why.clone());
                    break Err(EngineError::Tool { tool: "WAL archiver", detail: why });
                }
            }
            // A failover: the promoted standby does not have the slot (unless
            // the HA manager keeps it, as Patroni's permanent slots do). Ours
            // is created there; pg_receivewal then follows onto the new
            // timeline from where it stopped, or, if that server no longer
            // has the WAL, fails in a loop and the archiver says it stalled.
            Ok(None) => match server_timeline(&mut conn).await {
                Ok(now) if now != timeline => {
                    progress.step(format!(
                        "the source was promoted (timeline {timeline} to {now}): a failover to a server without slot {}; creating it there",
                        options.slot
                    ));
                    timeline = now;
                    if let Err(e) = ensure_slot(&mut conn, store, &system, &options.slot, source).await {
                        break Err(e);
                    }
                }
                _ => {
                    break Err(EngineError::Tool {
                        tool: "WAL archiver",
                        detail: format!(
                            "replication slot {} is gone from the source: WAL continuity is broken; take a new base backup",
                            options.slot
                        ),
                    });
                }
            },
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
                Ok((at, lsn)) => {
                    status.last_heartbeat_at = Some(at);
                    beats.push_back((at, lsn));
                }
                Err(e) => progress.step(format!("heartbeat failed: {e}")),
            }
            last_beat = Some(Instant::now());
        }
        if write_now || last_status.elapsed() >= options.status_every {
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
    if let Some(child) = receiver.take() {
        stop_receiver(child).await;
    }
    if outcome.is_ok() {
        // What was received is stored before we go.
        uploader.upload(true, status.received_lsn).await?;
        status.stopped = Some("stopped".into());
        status.last_segment = uploader.newest_complete.clone();
    }
    status.updated_at = Utc::now();
    let _ = store.put_bytes(&status_key(&system), serde_json::to_vec_pretty(&status).unwrap()).await;
    outcome
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

/// The timeline the server writes WAL on (it changes when a standby is
/// promoted; the last checkpoint's may still be the old one): the first
/// eight digits of its current segment's name.
async fn server_timeline(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint")
        .fetch_one(conn)
        .await
}

/// Where the slot can serve WAL from, and the server's position.
async fn served(conn: &mut PgConnection, slot: &str) -> Result<spool::Served, sqlx::Error> {
    let (from, to): (String, String) = sqlx::query_as(
        "SELECT coalesce(restart_lsn, '0/0')::text, pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_one(&mut *conn)
    .await?;
    let lsn = |text: String| text.parse::<Lsn>().map_err(|e| sqlx::Error::Decode(e.into()));
    Ok(spool::Served { from: lsn(from)?, to: lsn(to)? })
}

/// The slot as the source sees it, when it exists.
struct SlotState {
    /// WAL it holds back on the source.
    retained: u64,
    /// Its receiver's written and fsynced positions, while one streams.
    received: Option<Lsn>,
    flushed: Option<Lsn>,
    /// The source's own position.
    server: Lsn,
}

/// The receiver's positions come from `pg_stat_replication`, which shows them
/// only to roles with pg_read_all_stats; otherwise from the slot's restart LSN,
/// which a `--synchronous` receiver advances with every write.
async fn slot_state(conn: &mut PgConnection, slot: &str) -> Result<Option<SlotState>, sqlx::Error> {
    type Row = (Option<i64>, Option<String>, Option<String>, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, \
                coalesce(r.write_lsn, s.restart_lsn)::text, coalesce(r.flush_lsn, s.restart_lsn)::text, \
                pg_current_wal_lsn()::text \
         FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(&mut *conn)
    .await?;
    let lsn = |text: &str| text.parse::<Lsn>().map_err(|e| sqlx::Error::Decode(e.into()));
    let Some((retained, received, flushed, server)) = row else { return Ok(None) };
    Ok(Some(SlotState {
        retained: u64::try_from(retained.unwrap_or(0)).unwrap_or(0),
        received: received.as_deref().map(lsn).transpose()?,
        flushed: flushed.as_deref().map(lsn).transpose()?,
        server: lsn(&server)?,
    }))
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

/// Stops `pg_receivewal` as its own Ctrl-C does: on SIGINT it finishes the
/// write in hand (filling a new segment with zeros included) and exits. It is
/// killed only if it has not exited within seconds; killed while filling, it
/// leaves a segment it cannot resume from ([`spool::set_aside_unfinished`]).
async fn stop_receiver(mut child: tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|id| libc::pid_t::try_from(id).ok()) {
        // SAFETY: signals our own child, not yet reaped (its id is still known).
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

fn start_receiver(
    tools: &PhysicalTools,
    source: &DatabaseUrl,
    spool: &Path,
    options: &WalOptions,
) -> Result<tokio::process::Child, EngineError> {
    tokio::process::Command::new(tools.bin("pg_receivewal"))
        .arg(format!("--directory={}", spool.display()))
        .arg(format!("--slot={}", options.slot))
        // --synchronous: each write is fsynced and reported at once, so the
        // slot's restart LSN follows what the spool holds durably (the
        // position a role without pg_read_all_stats can see).
        .args(["--no-loop", "--no-password", "--status-interval=1", "--synchronous"])
        .envs(source.libpq_env())
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(EngineError::io(format!("starting {}", tools.bin("pg_receivewal").display())))
}
