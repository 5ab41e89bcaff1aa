//! The WAL a restore replays, fetched from the archive into the instance's
//! `wal/`: from the base's start on, along the timelines the source took.
//!
//! A promoted source (a failover) continues on a new timeline from a switch
//! address; the archive then holds each timeline's history file and, for the
//! segment holding the switch, two versions (the old timeline's last, partial
//! one, and the new timeline's first, which begins with the same WAL). The
//! restore follows the newest timeline whose history leads through the base:
//! for each segment it takes every version on that way, as PostgreSQL looks
//! for the newest one itself, and stops at the first segment the archive
//! lacks, or after the growing one.
//!
//! The archiver stores each segment once, under a key carrying its SHA-256.
//! Whoever else can write to the bucket may add a second object for a
//! segment (another digest, a valid key) or put a newer version over a key:
//! the restore then replays the first object written (what Object Lock keeps)
//! and, over a key, the oldest version whose bytes match its digest, and
//! reports the rest as tampering, never replaying it.

use std::collections::BTreeMap;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::super::super::EngineError;
use super::super::super::encryption::Keyring;
use super::super::super::progress::Progress;
use super::super::instance::Instance;
use super::super::{BaseManifest, Segment, WalObject, spool};
use crate::engine::pinned::TAMPERING;
use crate::store::BackupStore;
use artifortress_formats::physical::TimelineHistory;

/// What was fetched: the segments (and their bytes), and the timeline the
/// recovery follows.
pub struct Fetched {
    pub segments: usize,
    pub bytes: u64,
    pub timeline: u32,
    /// Objects someone other than the archiver wrote (see the module's opening).
    pub tampering: Vec<String>,
}

/// One stored WAL object: its key, what the key says, and when it was written.
struct Stored {
    key: String,
    wal: WalObject,
    written: Option<chrono::DateTime<chrono::Utc>>,
}

type Listing = BTreeMap<String, Stored>;

/// The stored WAL of one source: complete segments, growing ones and
/// history files, by name.
struct Archive {
    complete: Listing,
    partial: Listing,
    histories: Listing,
    /// Second objects of a complete segment or history file, not taken.
    tampering: Vec<String>,
}

impl Archive {
    async fn list(store: &dyn BackupStore, prefix: &str) -> Result<Archive, EngineError> {
        let mut archive = Archive {
            complete: Listing::new(),
            partial: Listing::new(),
            histories: Listing::new(),
            tampering: Vec::new(),
        };
        for object in store.list(prefix).await? {
            let Some(wal) = object.key.strip_prefix(prefix).and_then(WalObject::parse) else { continue };
            let (map, growing) = match (wal.history_of(), wal.partial) {
                (Some(_), _) => (&mut archive.histories, false),
                (None, true) => (&mut archive.partial, true),
                (None, false) => (&mut archive.complete, false),
            };
            let stored = Stored { key: object.key, wal, written: object.modified };
            let Some(kept) = map.get(&stored.wal.segment) else {
                map.insert(stored.wal.segment.clone(), stored);
                continue;
            };
            // A growing segment is replaced as it grows (the newest counts);
            // anything else is written once, so the first written is the archiver's.
            let take = match (kept.written, stored.written) {
                (Some(kept_at), Some(at)) => (at > kept_at) == growing,
                _ => false,
            };
            if !growing {
                let (first, second) = if take { (&stored.key, &kept.key) } else { (&kept.key, &stored.key) };
                archive.tampering.push(format!(
                    "{TAMPERING}WAL {} is stored twice with different bytes: {} was written first and replayed, {} later, \
                     not by the archiver (which stores each once), and was not replayed",
                    stored.wal.segment,
                    store.location(first),
                    store.location(second)
                ));
            }
            if take {
                map.insert(stored.wal.segment.clone(), stored);
            }
        }
        Ok(archive)
    }

    /// The stored version of a segment: complete, else growing (`true`).
    fn find(&self, name: &str) -> Option<(&Stored, bool)> {
        self.complete.get(name).map(|c| (c, false)).or_else(|| self.partial.get(name).map(|p| (p, true)))
    }
}

/// Downloads the WAL from the base's start on into `wal/` (and the history
/// files of the timelines it follows). The base's own range must be there.
pub async fn download(
    store: &dyn BackupStore,
    manifest: &BaseManifest,
    keys: &Keyring,
    instance: &Instance,
    progress: &Progress,
) -> Result<Fetched, EngineError> {
    let prefix = WalObject::prefix(&manifest.source.system_identifier);
    let mut archive = Archive::list(store, &prefix).await?;
    let history = follow(store, manifest, keys, &archive, instance).await?;
    let way = history.path();
    let segment_bytes = manifest.source.wal_segment_bytes;
    let first = manifest.segment_of(manifest.start_lsn);
    let needed = manifest.segment_of(manifest.end_lsn);
    // The versions of segment `n` on the way, newest timeline first.
    let versions = |n: u64| -> Vec<Segment> {
        way.iter()
            .rev()
            .filter(|(_, begin, end)| begin.0 / segment_bytes <= n && end.is_none_or(|e| n <= e.0 / segment_bytes))
            .map(|(t, ..)| Segment { timeline: *t, number: n, segment_bytes })
            .collect()
    };
    let meter = progress.meter("downloading WAL", None);
    let mut relisted = 0;
    let (reached, count, bytes, tampering) = loop {
        let (plan, reached) = plan(&archive, first.number, &versions);
        // After a new listing everything is written (and counted) again.
        let (mut count, mut bytes) = (0usize, 0u64);
        let mut tampering = archive.tampering.clone();
        // Fetched a few at a time (a segment is 16 MiB to download,
        // decompress and hash), written in order.
        let mut fetched = futures::stream::iter(plan.iter().map(|(name, key, object)| async move {
            fetch(store, manifest, keys, name, key, object).await.map(|(raw, tampering)| (name, raw, tampering))
        }))
        .buffered(FETCHES_AT_ONCE);
        let mut gone = false;
        while let Some(result) = fetched.next().await {
            let (name, raw, overwritten) = match result {
                Ok(done) => done,
                // The archiver replaced the growing segment (or completed it)
                // since the listing: list again and take its newer form.
                Err(Fetch::Gone(_)) if relisted < 10 => {
                    gone = true;
                    break;
                }
                Err(Fetch::Gone(e)) => return Err(e.into()),
                Err(Fetch::Failed(e)) => return Err(e),
            };
            meter.add(raw.len() as u64);
            std::fs::write(instance.wal().join(name), &raw)
                .map_err(EngineError::io(format!("writing WAL segment {name}")))?;
            count += 1;
            bytes += raw.len() as u64;
            tampering.extend(overwritten);
        }
        if !gone {
            break (reached, count, bytes, tampering);
        }
        relisted += 1;
        archive = Archive::list(store, &prefix).await?;
    };
    drop(meter);
    if reached.is_none_or(|r| r < needed.number) {
        let missing = Segment { number: reached.map_or(first.number, |r| r + 1), ..first };
        return Err(EngineError::Corrupt {
            backup: manifest.backup_name.clone(),
            detail: format!(
                "WAL segment {} is missing from {}: the base backup needs WAL {} to {} (segments {} to {}); was the WAL archiver running during the backup?",
                missing.name(),
                store.location(&prefix),
                manifest.start_lsn,
                manifest.end_lsn,
                first.name(),
                needed.name()
            ),
        });
    }
    Ok(Fetched { segments: count, bytes, timeline: history.timeline, tampering })
}

/// Segments fetched at once: enough to keep the store, decompression and
/// hashing busy on a few cores.
const FETCHES_AT_ONCE: usize = 4;

/// What to fetch, in order: every version on the way of each segment from
/// `first` on, as long as the archive has one, and after a growing newest
/// version nothing more; and the last segment number reached.
fn plan(
    archive: &Archive,
    first: u64,
    versions: &dyn Fn(u64) -> Vec<Segment>,
) -> (Vec<(String, String, WalObject)>, Option<u64>) {
    let (mut plan, mut reached, mut number) = (Vec::new(), None, first);
    loop {
        // Whether a version was found, and whether the newest found is growing.
        let mut newest: Option<bool> = None;
        for segment in versions(number) {
            let name = segment.name();
            if let Some((Stored { key, wal: object, .. }, growing)) = archive.find(&name) {
                plan.push((name, key.clone(), object.clone()));
                newest.get_or_insert(growing);
            }
        }
        match newest {
            None => return (plan, reached),
            Some(growing) => {
                reached = Some(number);
                if growing {
                    return (plan, reached);
                }
                number += 1;
            }
        }
    }
}

enum Fetch {
    /// Not there any more (a growing segment replaced since the listing).
    Gone(crate::store::StoreError),
    Failed(EngineError),
}

/// One stored segment, decompressed and checked: the SHA-256 its key carries,
/// and its own page header saying it is this system's segment of that name
/// (a segment of another system or history would fail the replay halfway,
/// or worse, replay).
async fn fetch(
    store: &dyn BackupStore,
    manifest: &BaseManifest,
    keys: &Keyring,
    name: &str,
    key: &str,
    object: &WalObject,
) -> Result<(Vec<u8>, Option<String>), Fetch> {
    let stored = match store.get_bytes(key).await {
        Err(e @ crate::store::StoreError::NotFound { .. }) => return Err(Fetch::Gone(e)),
        other => other.map_err(|e| Fetch::Failed(e.into()))?,
    };
    let corrupt = |detail: String| {
        Fetch::Failed(EngineError::Corrupt {
            backup: manifest.backup_name.clone(),
            detail: format!("WAL segment {name} ({key}) {detail}"),
        })
    };
    let (raw, tampering) = match open(keys, stored, &object.sha256) {
        Ok(raw) => (raw, None),
        Err(why) => match first_matching_version(store, keys, key, &object.sha256).await {
            Some((version, raw)) => (
                raw,
                Some(format!(
                    "{TAMPERING}WAL segment {} {why}: a newer version was put over it; its first version {version}, \
                     which does match, was replayed",
                    store.location(key)
                )),
            ),
            None => return Err(corrupt(why)),
        },
    };
    let system = &manifest.source.system_identifier;
    match spool::check_bytes(&raw, system, name, manifest.source.wal_segment_bytes) {
        Ok(true) => Ok((raw, tampering)),
        Ok(false) => Err(corrupt("has no page header where it starts".into())),
        Err(why) => Err(corrupt(format!("{why}: it is not this backup's WAL"))),
    }
}

/// A stored WAL object's bytes: decrypted, decompressed, and having `sha256`.
fn open(keys: &Keyring, stored: Vec<u8>, sha256: &str) -> Result<Vec<u8>, String> {
    let compressed = keys.open_all(stored).map_err(|e| format!("does not decrypt: {e}"))?;
    let raw = zstd::stream::decode_all(&compressed[..]).map_err(|e| format!("does not decompress: {e}"))?;
    let sha = hex::encode(Sha256::digest(&raw));
    if sha != sha256 {
        return Err(format!("has SHA-256 {sha}, its key says {sha256}"));
    }
    Ok(raw)
}

/// On a versioned bucket, the oldest version of `key` (the archiver's)
/// whose bytes have the key's digest, when the current one does not.
async fn first_matching_version(
    store: &dyn BackupStore,
    keys: &Keyring,
    key: &str,
    sha256: &str,
) -> Option<(String, Vec<u8>)> {
    let versions = store.versions(key).await.ok()?;
    for version in versions.iter().rev().filter(|v| !v.delete_marker && !v.latest) {
        let Ok(stored) = store.get_bytes_version(key, Some(&version.version_id)).await else { continue };
        if let Ok(raw) = open(keys, stored, sha256) {
            return Some((version.version_id.clone(), raw));
        }
    }
    None
}

/// The history the restore follows: the newest timeline whose history leads
/// through the base's start (the base's own timeline when the source was
/// never promoted after it). Its history files are written into `wal/`.
async fn follow(
    store: &dyn BackupStore,
    manifest: &BaseManifest,
    keys: &Keyring,
    archive: &Archive,
    instance: &Instance,
) -> Result<TimelineHistory, EngineError> {
    let mut newest = TimelineHistory { timeline: manifest.timeline, ended: Vec::new() };
    let mut files = BTreeMap::new();
    for (name, Stored { key, wal: object, .. }) in &archive.histories {
        let timeline = object.history_of().expect("listed as a history file");
        let corrupt = |detail: String| EngineError::Corrupt {
            backup: manifest.backup_name.clone(),
            detail: format!("timeline history {name} ({key}) {detail}"),
        };
        let raw = open(keys, store.get_bytes(key).await?, &object.sha256).map_err(corrupt)?;
        let history = std::str::from_utf8(&raw)
            .map_err(|e| e.to_string())
            .and_then(|text| TimelineHistory::parse(timeline, text))
            .map_err(|why| corrupt(format!("does not read: {why}")))?;
        if timeline > newest.timeline && history.leads_through(manifest.timeline, manifest.start_lsn) {
            newest = history;
        }
        files.insert(timeline, (name.clone(), raw));
    }
    for (timeline, ..) in newest.path() {
        if let Some((name, raw)) = files.get(&timeline) {
            std::fs::write(instance.wal().join(name), raw)
                .map_err(EngineError::io(format!("writing timeline history {name}")))?;
        }
    }
    Ok(newest)
}
