//! What a store holds, as a person after a disaster needs it with only the
//! bucket and this binary: every backup — complete (a readable manifest) or
//! not — with its size and the drills that restored it, and deleting one
//! safely. The `backups` and `drills` commands print these.
//!
//! Only what this tool writes is a backup: a top-level directory holding a
//! manifest, a dump or a tombstone, or a base backup's manifest or tar (the WAL
//! archive, under `_wal/`, is no backup). Anything else in the store is not listed
//! and never deleted.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::EngineError;
use super::layout::{DrillEntry, result_key};
use super::manifest::{self, DUMP_FILE, MANIFEST_FILE, Manifest, TOMBSTONE_FILE};
use super::physical::BaseManifest;
use super::verdict::Verdict;
use crate::store::BackupStore;
use artifortress_formats::physical::{BASE_FILE, BASE_MANIFEST_FILE};

/// One backup directory of a store.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BackupEntry {
    pub name: String,
    /// `complete` (a readable manifest), `incomplete` (data without a
    /// manifest: a backup that never finished, or half deleted) or
    /// `unreadable` (a manifest this tool cannot read; `problem` says why).
    pub state: BackupState,
    /// Bytes stored under the directory (dump, manifest, drill results).
    pub stored_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Marked deleted (its `Backup` object was deleted with the data kept).
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// A physical base backup's manifest (`base.json`) instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseManifest>,
    /// The drills that restored it, oldest first.
    pub drills: Vec<DrillEntry>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BackupState {
    Complete,
    Incomplete,
    Unreadable,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Complete => "complete",
            BackupState::Incomplete => "incomplete",
            BackupState::Unreadable => "unreadable",
        }
    }
}

impl BackupEntry {
    /// The restore point, for a complete backup (a base backup's own: its end).
    pub fn snapshot_time(&self) -> Option<DateTime<Utc>> {
        self.manifest.as_ref().map(|m| m.snapshot_time).or_else(|| self.base.as_ref().map(|b| b.completed_at))
    }

    pub fn is_physical(&self) -> bool {
        self.base.is_some()
    }

    pub fn last_drill(&self) -> Option<&DrillEntry> {
        self.drills.last()
    }
}

/// Every backup in the store: complete ones by snapshot time, then the rest by name.
pub async fn backups(store: &dyn BackupStore) -> Result<Vec<BackupEntry>, EngineError> {
    #[derive(Default)]
    struct Seen {
        bytes: u64,
        ours: bool,
        manifest: bool,
        base: bool,
        tombstone: bool,
        verdicts: Vec<String>,
    }
    let mut dirs: BTreeMap<String, Seen> = BTreeMap::new();
    for object in store.list("").await? {
        let Some((dir, file)) = object.key.split_once('/') else { continue };
        let seen = dirs.entry(dir.to_string()).or_default();
        seen.bytes += object.size;
        match file {
            MANIFEST_FILE => (seen.ours, seen.manifest) = (true, true),
            BASE_MANIFEST_FILE | BASE_FILE => (seen.ours, seen.base) = (true, seen.base || file == BASE_MANIFEST_FILE),
            DUMP_FILE => seen.ours = true,
            TOMBSTONE_FILE => (seen.ours, seen.tombstone) = (true, true),
            _ => {
                if let Some(drill) = verdict_name(file) {
                    seen.verdicts.push(drill.to_string());
                }
            }
        }
    }
    let mut entries = Vec::new();
    for (name, seen) in dirs.into_iter().filter(|(_, s)| s.ours) {
        let (mut state, mut manifest, mut base, mut problem) = (BackupState::Incomplete, None, None, None);
        if seen.manifest {
            match manifest::load(store, &name).await {
                Ok(m) => (state, manifest) = (BackupState::Complete, Some(m)),
                Err(e) => (state, problem) = (BackupState::Unreadable, Some(e.to_string())),
            }
        } else if seen.base {
            match super::physical::base::load(store, &name).await {
                Ok(b) => (state, base) = (BackupState::Complete, Some(b)),
                Err(e) => (state, problem) = (BackupState::Unreadable, Some(e.to_string())),
            }
        } else {
            problem = Some("no manifest: the backup never finished, or its deletion did not".to_string());
        }
        let mut drills = Vec::new();
        for drill in seen.verdicts {
            match read_verdict(store, &name, &drill).await {
                Ok(verdict) => drills.push(DrillEntry { backup: name.clone(), drill, verdict }),
                Err(e) => tracing::warn!(backup = %name, drill, error = %e, "unreadable drill verdict; not listed"),
            }
        }
        drills.sort_by_key(DrillEntry::started_at);
        entries.push(BackupEntry {
            name,
            state,
            stored_bytes: seen.bytes,
            problem,
            deleted: seen.tombstone,
            manifest,
            base,
            drills,
        });
    }
    entries.sort_by(|a, b| match (a.snapshot_time(), b.snapshot_time()) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.name.cmp(&b.name)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.name.cmp(&b.name),
    });
    Ok(entries)
}

/// `drills/<id>.json` (not the restore record `<id>.restore.json`).
fn verdict_name(file: &str) -> Option<&str> {
    let id = file.strip_prefix("drills/")?.strip_suffix(".json")?;
    (!id.ends_with(".restore") && !id.contains('/')).then_some(id)
}

async fn read_verdict(store: &dyn BackupStore, backup: &str, drill: &str) -> Result<Verdict, EngineError> {
    let bytes = store.get_bytes(&result_key(backup, drill)).await?;
    Verdict::parse(&bytes)
        .map_err(|e| EngineError::Corrupt { backup: backup.to_string(), detail: format!("verdict of {drill}: {e}") })
}

/// Every stored drill (of one backup, or all), oldest first.
pub async fn drills(store: &dyn BackupStore, backup: Option<&str>) -> Result<Vec<DrillEntry>, EngineError> {
    let all = backups(store).await?;
    if let Some(name) = backup
        && !all.iter().any(|b| b.name == name)
    {
        return Err(not_found(store, name, &all));
    }
    let mut drills: Vec<DrillEntry> =
        all.into_iter().filter(|b| backup.is_none_or(|n| b.name == n)).flat_map(|b| b.drills).collect();
    drills.sort_by_key(DrillEntry::started_at);
    Ok(drills)
}

/// One backup, by name.
pub async fn backup(store: &dyn BackupStore, name: &str) -> Result<BackupEntry, EngineError> {
    let mut all = backups(store).await?;
    match all.iter().position(|b| b.name == name) {
        Some(at) => Ok(all.swap_remove(at)),
        None => Err(not_found(store, name, &all)),
    }
}

fn not_found(store: &dyn BackupStore, name: &str, all: &[BackupEntry]) -> EngineError {
    let known: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
    let listed =
        if known.is_empty() { "it holds no backups".to_string() } else { format!("it holds {}", known.join(", ")) };
    EngineError::Config(format!("no backup {name:?} in {}: {listed}", store.url()))
}

/// What `delete` removed.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub name: String,
    pub objects: usize,
    pub bytes: u64,
    /// A base backup's deletion prunes the WAL no remaining base needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<super::physical::retention::Pruned>,
}

/// Deletes a backup: the manifest first (from then on it is never offered as
/// complete), then everything else under its directory. The newest complete
/// backup is the one a recovery would use: it is refused unless `force`.
pub async fn delete(store: &dyn BackupStore, name: &str, force: bool) -> Result<Deleted, EngineError> {
    let all = backups(store).await?;
    let Some(entry) = all.iter().find(|b| b.name == name) else { return Err(not_found(store, name, &all)) };
    // Logical and physical backups are restore points of their own kinds.
    let restorable =
        |b: &&BackupEntry| b.state == BackupState::Complete && !b.deleted && b.is_physical() == entry.is_physical();
    let newest = all.iter().rfind(restorable);
    if !force && newest.is_some_and(|n| n.name == name) {
        let next = all.iter().rev().filter(restorable).nth(1);
        let then = match next {
            Some(b) => format!("{} would be the newest restore point", b.name),
            None => "no complete backup would be left".to_string(),
        };
        return Err(EngineError::Config(format!(
            "{name} is the newest complete backup in {}: {then}; pass --force to delete it anyway",
            store.url()
        )));
    }
    refuse_if_locked(store, name).await?;
    let mut objects = 0;
    if entry.state != BackupState::Incomplete {
        let key = if entry.is_physical() { super::physical::base::manifest_key(name) } else { manifest::key(name) };
        store.delete(&key).await?;
        objects += 1;
    }
    for object in store.list(&format!("{name}/")).await? {
        store.delete(&object.key).await?;
        objects += 1;
    }
    let wal = match entry.is_physical() {
        true => Some(super::physical::retention::prune(store, &super::progress::Progress::quiet()).await?),
        false => None,
    };
    Ok(Deleted { name: name.to_string(), objects, bytes: entry.stored_bytes, wal })
}

/// The latest S3 Object Lock retention of a backup's objects, when one is
/// still running: before then its objects cannot be deleted (a deletion would
/// only hide them behind delete markers), so nothing is attempted.
pub async fn locked_until(store: &dyn BackupStore, name: &str) -> Result<Option<DateTime<Utc>>, EngineError> {
    let mut latest = None;
    for object in store.list(&format!("{name}/")).await? {
        latest = latest.max(store.locked_until(&object.key).await?);
    }
    Ok(latest)
}

/// Refuses (reason `BackupLocked`) to delete a backup still under Object Lock.
pub async fn refuse_if_locked(store: &dyn BackupStore, name: &str) -> Result<(), EngineError> {
    match locked_until(store, name).await? {
        None => Ok(()),
        Some(until) => Err(EngineError::refused(
            "BackupLocked",
            format!(
                "{name} is locked (S3 Object Lock) in {} until {}: it can be deleted from then on; nothing was deleted",
                store.url(),
                until.to_rfc3339()
            ),
        )),
    }
}

/// Columns padded to their widest cell, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// `NAME  SNAPSHOT  SOURCE  MAJOR  SIZE  VERIFY  STATE  LAST DRILL  RTO  RPO`.
pub fn backups_table(entries: &[BackupEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|b| {
            let m = b.manifest.as_ref();
            let drill = b.last_drill().map(|d| &d.verdict);
            let objective = |o: Option<&super::verdict::ObjectiveResult>| o.map_or("-".into(), |o| o.summary.clone());
            let mut state = b.state.as_str().to_string();
            if b.deleted {
                state += " (deleted)";
            }
            vec![
                b.name.clone(),
                time(b.snapshot_time()),
                m.map(|m| m.source.database.clone())
                    .or_else(|| b.base.as_ref().map(|p| p.source.database.clone()))
                    .unwrap_or("-".into()),
                m.and_then(|m| m.source.server_version.split('.').next().map(str::to_string))
                    .or_else(|| b.base.as_ref().map(|p| p.source.major.to_string()))
                    .unwrap_or("-".into()),
                super::progress::human_bytes(b.stored_bytes),
                match (m, &b.base) {
                    (Some(m), _) => format!("{:?}", m.verify).to_lowercase(),
                    (None, Some(_)) => "physical".into(),
                    (None, None) => "-".into(),
                },
                state,
                drill.map_or("-".into(), |v| format!("{:?}", v.result)),
                objective(drill.and_then(|v| v.rto.as_ref())),
                objective(drill.and_then(|v| v.rpo.as_ref())),
            ]
        })
        .collect();
    let headers = ["NAME", "SNAPSHOT (UTC)", "SOURCE", "MAJOR", "SIZE", "VERIFY", "STATE", "LAST DRILL", "RTO", "RPO"];
    table(&headers, &rows)
}

/// `BACKUP  DRILL  STARTED  RESULT  REASON  RTO  RPO`.
pub fn drills_table(drills: &[DrillEntry]) -> String {
    let rows: Vec<Vec<String>> = drills
        .iter()
        .map(|d| {
            let v = &d.verdict;
            let objective =
                |o: &Option<super::verdict::ObjectiveResult>| o.as_ref().map_or("-".into(), |o| o.summary.clone());
            vec![
                d.backup.clone(),
                d.drill.clone(),
                time(v.started_at),
                format!("{:?}", v.result),
                v.reason.clone().unwrap_or_else(|| "-".into()),
                objective(&v.rto),
                objective(&v.rpo),
            ]
        })
        .collect();
    table(&["BACKUP", "DRILL", "STARTED (UTC)", "RESULT", "REASON", "RTO", "RPO"], &rows)
}

/// One backup for a person: the manifest's facts, its tables, its drills.
pub fn show_text(b: &BackupEntry) -> String {
    let mut out = format!(
        "Backup:      {}\nState:       {}{}\n",
        b.name,
        b.state.as_str(),
        if b.deleted { " (marked deleted)" } else { "" }
    );
    if let Some(problem) = &b.problem {
        out += &format!("Problem:     {problem}\n");
    }
    out += &format!("Stored:      {}\n", super::progress::human_bytes(b.stored_bytes));
    if let Some(m) = &b.manifest {
        out += &format!(
            "Snapshot:    {} (started {}, completed {})\nSource:      database {} on PostgreSQL {} (system {})\n",
            time(Some(m.snapshot_time)),
            time(Some(m.started_at)),
            time(Some(m.completed_at)),
            m.source.database,
            m.source.server_version,
            m.source.system_identifier
        );
        out += &format!(
            "Dump:        {} ({} {}, {} stored, {} archive, sha256 {})\nWritten by:  {}; {}\n",
            m.dump.file,
            m.dump.format,
            m.dump.compression,
            super::progress::human_bytes(m.dump.size_bytes),
            super::progress::human_bytes(m.dump.archive_bytes),
            m.dump.sha256,
            m.pg_dump_version,
            m.tool_version
        );
        out += &format!("Verify:      {} ({} tables)\n", format!("{:?}", m.verify).to_lowercase(), m.tables.len());
        if !m.labels.is_empty() {
            let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out += &format!("Labels:      {}\n", labels.join(", "));
        }
        let rows: Vec<Vec<String>> = m.tables.iter().map(|t| vec![t.table.clone(), t.rows.to_string()]).collect();
        out += &format!("\nTables:\n{}", indent(&table(&["TABLE", "ROWS"], &rows)));
    }
    out += &if b.drills.is_empty() {
        "\nDrills:      none\n".to_string()
    } else {
        format!("\nDrills:\n{}", indent(&drills_table(&b.drills)))
    };
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verdicts_name_drills() {
        assert_eq!(verdict_name("drills/nightly-1a2b.json"), Some("nightly-1a2b"));
        assert_eq!(verdict_name("drills/nightly-1a2b.restore.json"), None);
        assert_eq!(verdict_name("drills/nightly-1a2b.md"), None);
        assert_eq!(verdict_name("dump"), None);
    }
}
