//! Moves segments from the spool into the store: complete ones once, the
//! growing one as it grows, each only after its page header proved it is this
//! system's segment of that name; and the history file of each timeline the
//! source was promoted to (`pg_receivewal` writes it when it follows a switch).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::super::super::EngineError;
use super::super::super::encryption::Sealing;
use super::super::spool;
use super::super::{Lsn, Segment, WalObject};
use crate::store::BackupStore;
use artifortress_formats::physical::TimelineHistory;

/// Moves segments from the spool into the store.
pub(super) struct Uploader<'a> {
    store: &'a dyn BackupStore,
    system: String,
    spool: PathBuf,
    segment_bytes: u64,
    /// Segments stored complete (names), to skip and to clean partials of.
    stored: BTreeMap<String, String>,
    /// Timeline history files stored (names).
    histories: BTreeSet<String>,
    pub(super) newest_complete: Option<String>,
    /// The stored partial: segment, key, and the file's length and mtime then.
    partial: Option<(String, String, u64, std::time::SystemTime)>,
    /// Segments refused by their page header since the last look, and why.
    pub(super) rejections: Vec<String>,
    /// The stored WAL reaches at least this far.
    pub(super) through: Lsn,
    /// Applied over the zstd bytes of every object.
    sealing: Option<Sealing>,
}

impl<'a> Uploader<'a> {
    pub(super) async fn new(
        store: &'a dyn BackupStore,
        system: &str,
        spool: &Path,
        segment_bytes: u64,
        sealing: Option<Sealing>,
    ) -> Result<Uploader<'a>, EngineError> {
        let mut stored = BTreeMap::new();
        let mut partial = None;
        let mut histories = BTreeSet::new();
        let prefix = WalObject::prefix(system);
        for object in store.list(&prefix).await? {
            let Some(o) = object.key.strip_prefix(&prefix).and_then(WalObject::parse) else { continue };
            if o.history_of().is_some() {
                histories.insert(o.segment);
            } else if o.partial {
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
            histories,
            newest_complete,
            partial,
            rejections: Vec::new(),
            through: Lsn(0),
            sealing,
        })
    }

    /// The spool's complete segments, its growing one (after a timeline
    /// switch the old timeline's last segment stays partial: the newest
    /// grows) and its timeline history files.
    fn spool_files(&self) -> std::io::Result<(Vec<String>, Option<String>, Vec<String>)> {
        let (mut complete, mut partial, mut histories) = (Vec::new(), None::<String>, Vec::new());
        for entry in std::fs::read_dir(&self.spool)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(segment) = name.strip_suffix(".partial") {
                if Segment::parse(segment, self.segment_bytes).is_some() && partial.as_deref() < Some(segment) {
                    partial = Some(segment.to_string());
                }
            } else if Segment::parse(&name, self.segment_bytes).is_some() {
                complete.push(name);
            } else if TimelineHistory::timeline_of(&name).is_some() {
                histories.push(name);
            }
        }
        complete.sort();
        Ok((complete, partial, histories))
    }

    /// Completed segments in the spool not yet stored.
    pub(super) fn waiting(&self) -> std::io::Result<usize> {
        Ok(self.spool_files()?.0.iter().filter(|s| !self.stored.contains_key(*s)).count())
    }

    /// Stores what is new in the spool; whether anything was. `written`: how
    /// far the receiver had written before this look (bounds what a growing
    /// segment's upload holds).
    pub(super) async fn upload(&mut self, partial_due: bool, written: Option<Lsn>) -> Result<bool, EngineError> {
        let mut stored_any = false;
        let (complete, growing, histories) =
            self.spool_files().map_err(EngineError::io(format!("reading {}", self.spool.display())))?;
        for name in histories {
            if !self.histories.contains(&name) && self.put_history(&name).await? {
                self.histories.insert(name);
                stored_any = true;
            }
        }
        for segment in &complete {
            if !self.stored.contains_key(segment) {
                let Some(key) = self.put(segment, &self.spool.join(segment), false).await? else { continue };
                self.stored.insert(segment.clone(), key);
                if let Some(s) = Segment::parse(segment, self.segment_bytes) {
                    self.through = self.through.max(s.end());
                }
                stored_any = true;
            }
            if self.partial.as_ref().is_some_and(|(s, ..)| s == segment) {
                let (_, key, ..) = self.partial.take().unwrap();
                self.store.delete(&key).await?;
            }
        }
        self.newest_complete = self.stored.keys().next_back().cloned();
        // pg_receivewal resumes after the newest segment in its directory: keep
        // that one (of those stored; a rejected file is no longer there).
        for segment in complete.iter().filter(|s| self.stored.contains_key(*s)).rev().skip(1) {
            let _ = std::fs::remove_file(self.spool.join(segment));
        }
        if partial_due && let Some(segment) = growing {
            let path = self.spool.join(format!("{segment}.partial"));
            let meta = std::fs::metadata(&path).ok();
            let (len, mtime) =
                meta.map_or((0, std::time::UNIX_EPOCH), |m| (m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)));
            let changed = self.partial.as_ref().is_none_or(|(s, _, l, t)| *s != segment || *l != len || *t != mtime);
            if changed
                && len > 0
                && let Some(key) = self.put(&segment, &path, true).await?
            {
                if let (Some(written), Some(s)) = (written, Segment::parse(&segment, self.segment_bytes)) {
                    self.through = self.through.max(written.min(s.end()));
                }
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

    /// Stores a timeline history file that reads as one; whether it was
    /// (one that does not is moved into `rejected/`, said in `rejections`).
    async fn put_history(&mut self, name: &str) -> Result<bool, EngineError> {
        let path = self.spool.join(name);
        let bytes = std::fs::read(&path).map_err(EngineError::io(format!("reading {}", path.display())))?;
        let timeline = TimelineHistory::timeline_of(name).expect("a history file's name");
        let read = std::str::from_utf8(&bytes).map_err(|e| e.to_string());
        if let Err(why) = read.and_then(|text| TimelineHistory::parse(timeline, text)) {
            let why = format!("is not a timeline history: {why}");
            self.rejections.push(spool::reject(&self.spool, &path, name, &why)?);
            return Ok(false);
        }
        let object =
            WalObject { segment: name.to_string(), partial: false, sha256: hex::encode(Sha256::digest(&bytes)) };
        let stored =
            stored_form(&bytes, self.sealing.as_ref()).map_err(EngineError::io("compressing a history file"))?;
        self.store.put_bytes(&object.key(&self.system), stored).await?;
        Ok(true)
    }

    /// Stores a segment whose page header says it is the segment its name
    /// says, of this system; returns its key. `None`: not stored — a growing
    /// segment with nothing written yet, or a file refused (moved into the
    /// spool's `rejected/`, said in `rejections`).
    async fn put(&mut self, segment: &str, path: &Path, partial: bool) -> Result<Option<String>, EngineError> {
        let file = path.to_path_buf();
        let (system, name, segment_bytes) = (self.system.clone(), segment.to_string(), self.segment_bytes);
        let sealing = self.sealing.clone();
        type Read = (Result<bool, String>, String, Vec<u8>);
        let (checked, sha256, stored) = tokio::task::spawn_blocking(move || -> std::io::Result<Read> {
            let bytes = std::fs::read(&file)?;
            let checked = spool::check_bytes(&bytes, &system, &name, segment_bytes);
            if checked != Ok(true) {
                return Ok((checked, String::new(), Vec::new()));
            }
            let sha = hex::encode(Sha256::digest(&bytes));
            Ok((checked, sha, stored_form(&bytes, sealing.as_ref())?))
        })
        .await
        .map_err(|e| EngineError::io("compressing a WAL segment")(std::io::Error::other(e)))?
        .map_err(EngineError::io(format!("reading WAL segment {segment}")))?;
        match checked {
            Ok(true) => {}
            // A growing segment's first page arrives with its first record.
            Ok(false) if partial => return Ok(None),
            Ok(false) => {
                let why = "has no page header (all zeros where a complete segment starts)";
                self.rejections.push(spool::reject(&self.spool, path, segment, why)?);
                return Ok(None);
            }
            Err(why) => {
                self.rejections.push(spool::reject(&self.spool, path, segment, &why)?);
                return Ok(None);
            }
        }
        let object = WalObject { segment: segment.to_string(), partial, sha256 };
        let key = object.key(&self.system);
        self.store.put_bytes(&key, stored).await?;
        Ok(Some(key))
    }
}

/// What is stored of a file: zstd, then encrypted when configured.
fn stored_form(bytes: &[u8], sealing: Option<&Sealing>) -> std::io::Result<Vec<u8>> {
    let compressed = zstd::bulk::compress(bytes, 3)?;
    match sealing {
        Some(sealing) => sealing.seal_all(&compressed),
        None => Ok(compressed),
    }
}
