//! WAL retention: the archive keeps every segment a stored base backup needs
//! to restore, and nothing older.
//!
//! A base backup restores from its start LSN onwards, so the oldest complete
//! base of a source bounds what is still needed: segments of its timeline,
//! or of an earlier one (before a failover), numbered before the one holding
//! its start are deleted. A source without a complete base keeps all its WAL
//! (its first base may be running now; where it starts is written only when
//! it completes). Segments of later timelines and every timeline history file
//! are kept: a restore reads the histories to follow the source's switches.
//!
//! A segment still under S3 Object Lock is left in place, not hidden behind
//! a delete marker: it is counted with the date its lock ends, and a pass
//! after that date deletes it.
//!
//! One race is the caller's to avoid: a base that began *before* the oldest
//! complete one and is still running needs WAL older than that one's start.
//! The operator prunes only when no physical Backup of the installation runs.

use std::collections::BTreeMap;

use artifortress_formats::physical::{Segment, WalObject};
use chrono::{DateTime, Utc};

use crate::engine::EngineError;
use crate::engine::progress::{Progress, human_bytes};
use crate::store::{BackupStore, Versioning};

/// What a pruning pass deleted, and from which segment on each source's WAL is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    pub segments: u64,
    pub bytes: u64,
    /// Source (system identifier) → the first segment kept.
    pub kept_from: BTreeMap<String, String>,
    /// Segments no base needs, still locked: deleted by a pass after `locked_until`.
    #[serde(skip_serializing_if = "is_zero")]
    pub locked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The first segment the oldest complete base of each source needs.
async fn needed_from(store: &dyn BackupStore) -> Result<BTreeMap<String, Segment>, EngineError> {
    let mut oldest: BTreeMap<String, Segment> = BTreeMap::new();
    for manifest in super::base::all(store).await? {
        let start = manifest.segment_of(manifest.start_lsn);
        let system = manifest.source.system_identifier.clone();
        if oldest.get(&system).is_none_or(|s| start.number < s.number) {
            oldest.insert(system, start);
        }
    }
    Ok(oldest)
}

/// Deletes the stored WAL no complete base backup needs.
pub async fn prune(store: &dyn BackupStore, progress: &Progress) -> Result<Pruned, EngineError> {
    let mut pruned = Pruned::default();
    // Only a bucket with Object Lock can hold locked segments: elsewhere no
    // retention is read, one request per segment saved.
    let lockable = matches!(store.versioning().await?, Versioning::Enabled { object_lock: true });
    for (system, first) in needed_from(store).await? {
        let prefix = WalObject::prefix(&system);
        for object in store.list(&prefix).await? {
            let Some(wal) = object.key.strip_prefix(&prefix).and_then(WalObject::parse) else { continue };
            let Some(segment) = Segment::parse(&wal.segment, first.segment_bytes) else { continue };
            if segment.timeline <= first.timeline && segment.number < first.number {
                if lockable && let Some(until) = store.locked_until(&object.key).await? {
                    pruned.locked += 1;
                    pruned.locked_until = pruned.locked_until.max(Some(until));
                    continue;
                }
                store.delete(&object.key).await?;
                pruned.segments += 1;
                pruned.bytes += object.size;
            }
        }
        pruned.kept_from.insert(system, first.name());
    }
    if pruned.segments > 0 {
        progress.step(format!(
            "WAL retention: deleted {} segments ({}) no stored base backup needs",
            pruned.segments,
            human_bytes(pruned.bytes)
        ));
    }
    if let Some(until) = pruned.locked_until {
        progress.step(format!(
            "WAL retention: {} more segments are locked until {until}; a pass after then deletes them",
            pruned.locked
        ));
    }
    Ok(pruned)
}
