//! The WAL archiver's spool: the directory `pg_receivewal` writes into. A
//! spool belongs to one source system and one slot, as its marker records;
//! `pg_receivewal` resumes after the newest segment it finds there, and the
//! archiver uploads whatever segment it finds there. So a spool left by an
//! archiver of another system (a database since replaced, the same slot name)
//! or another slot, or one whose WAL the slot can no longer serve (behind the
//! slot, or ahead of the server), would poison the archive or stall the
//! receiver: such a spool is moved aside whole, never uploaded from, and the
//! reason said. Every segment is also checked by its page header before upload.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::EngineError;
use super::{Lsn, Segment, SegmentHeader};

/// The marker file in every spool the archiver uses.
const MARKER: &str = "artifortress-wal-spool";
/// Where segments that fail their header check go, inside the spool
/// (`pg_receivewal` looks only at files named like segments).
const REJECTED: &str = "rejected";

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Marker {
    #[serde(rename = "spoolOf")]
    spool_of: String,
    system: String,
    slot: String,
}

impl Marker {
    fn new(system: &str, slot: &str) -> Marker {
        Marker { spool_of: "artifortress-operator WAL archiver".into(), system: system.into(), slot: slot.into() }
    }
}

/// The spool directory when none is given: one per source system and slot
/// under the temp directory, so archivers of two systems never share one.
pub fn default_dir(system: &str, slot: &str) -> PathBuf {
    std::env::temp_dir().join(format!("artifortress-wal-{system}-{slot}"))
}

/// Where the slot can serve WAL from, and where the server is.
pub struct Served {
    /// The slot's restart LSN: WAL before it is gone from the server.
    pub from: Lsn,
    /// The server's current WAL position.
    pub to: Lsn,
}

/// What claiming a spool found, for the archiver to act on and to say.
#[derive(Debug, PartialEq)]
pub enum Claimed {
    New,
    Resumed,
    /// An unusable spool was renamed to `moved_to`; a new one is in its place.
    MovedAside {
        moved_to: PathBuf,
        reason: String,
    },
    /// The spool's WAL is this system's but behind the slot (the slot was
    /// recreated): upload its complete segments, then [`restart`] it, so
    /// that `pg_receivewal` starts where the slot is.
    Behind {
        reason: String,
    },
}

/// Makes `spool` the spool of `system`'s `slot`. A directory that is not a
/// spool at all (a server's `pg_wal`, given by mistake) is refused and left
/// untouched; a spool that belongs elsewhere, or whose WAL is ahead of the
/// server, is moved aside; a segment whose header is not what its name says
/// is moved into `rejected/` (each said in `rejections`).
pub fn claim(
    spool: &Path,
    system: &str,
    slot: &str,
    segment_bytes: u64,
    served: &Served,
    rejections: &mut Vec<String>,
) -> Result<Claimed, EngineError> {
    let io = |what: &str| EngineError::io(format!("{what} the spool directory {}", spool.display()));
    let claimed = if refuse_if_not_a_spool(spool)? {
        std::fs::create_dir_all(spool).map_err(io("creating"))?;
        Claimed::New
    } else if let Some(reason) = foreign(spool, system, slot) {
        moved_aside(spool, reason)?
    } else {
        let mut kept = Vec::new();
        for (name, path) in segment_files(spool, segment_bytes).map_err(io("reading"))? {
            match check_file(&path, system, &name, segment_bytes) {
                Ok(_) => kept.push((name, path)),
                Err(why) => rejections.push(reject(spool, &path, &name, &why)?),
            }
        }
        match position(&kept, segment_bytes, served) {
            Position::Resumable => Claimed::Resumed,
            Position::Ahead(reason) => moved_aside(spool, reason)?,
            Position::Behind(reason) => Claimed::Behind { reason },
        }
    };
    write_marker(spool, system, slot)?;
    Ok(claimed)
}

/// Refuses a directory that is neither empty (or absent) nor marked as a
/// spool: a server's `pg_wal`, given by mistake, is left untouched. Checked
/// before anything is created on the source. Returns whether it is empty.
pub fn refuse_if_not_a_spool(spool: &Path) -> Result<bool, EngineError> {
    let empty = match std::fs::read_dir(spool) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(EngineError::io(format!("reading the spool directory {}", spool.display()))(e)),
        Ok(mut entries) => entries.next().is_none(),
    };
    if !empty && !spool.join(MARKER).exists() {
        return Err(EngineError::refused(
            "NotOurs",
            format!(
                "the spool directory {} is not empty and is not an archiver's (no {MARKER} file): it is left untouched; give a new or empty directory",
                spool.display()
            ),
        ));
    }
    Ok(empty)
}

/// Moves the spool aside and starts a new one in its place, marked.
pub fn restart(spool: &Path, system: &str, slot: &str, reason: String) -> Result<Claimed, EngineError> {
    let claimed = moved_aside(spool, reason)?;
    write_marker(spool, system, slot)?;
    Ok(claimed)
}

fn write_marker(spool: &Path, system: &str, slot: &str) -> Result<(), EngineError> {
    let marker = serde_json::to_vec_pretty(&Marker::new(system, slot)).expect("a marker serializes");
    std::fs::write(spool.join(MARKER), marker).map_err(EngineError::io(format!("writing into {}", spool.display())))
}

/// Why a marked spool is not this system's slot's, if it is not.
fn foreign(spool: &Path, system: &str, slot: &str) -> Option<String> {
    let marker = std::fs::read(spool.join(MARKER)).ok().and_then(|b| serde_json::from_slice::<Marker>(&b).ok());
    match marker {
        None => Some("its marker records no system and slot (an archiver of an older version)".into()),
        Some(m) if m.system != system => Some(format!("it holds WAL of database system {}", m.system)),
        Some(m) if m.slot != slot => Some(format!("it belongs to slot {}", m.slot)),
        Some(_) => None,
    }
}

enum Position {
    Resumable,
    Ahead(String),
    Behind(String),
}

/// Where `pg_receivewal` would resume in these segments, against what the
/// server and the slot can serve.
fn position(segments: &[(String, PathBuf)], segment_bytes: u64, served: &Served) -> Position {
    // It resumes at the start of its growing segment, else after its newest
    // complete one.
    let newest =
        segments.iter().filter_map(|(name, path)| Some((Segment::parse(name, segment_bytes)?, is_partial(path)))).max();
    let Some((newest, growing)) = newest else { return Position::Resumable };
    let resume = if growing { Lsn(newest.number * segment_bytes) } else { newest.end() };
    if resume > served.to {
        return Position::Ahead(format!(
            "it resumes at WAL address {resume}, ahead of the server's position {} (the server was restored or replaced: that WAL is another history)",
            served.to
        ));
    }
    if resume < Lsn(served.from.0 - served.from.0 % segment_bytes) {
        return Position::Behind(format!(
            "it resumes at WAL address {resume}, before the slot's first kept WAL {} (the slot was recreated)",
            served.from
        ));
    }
    Position::Resumable
}

fn moved_aside(spool: &Path, reason: String) -> Result<Claimed, EngineError> {
    let moved_to = move_aside(spool)?;
    std::fs::create_dir_all(spool).map_err(EngineError::io(format!("creating {}", spool.display())))?;
    Ok(Claimed::MovedAside { moved_to, reason })
}

/// The spool's WAL files (complete and growing) by segment name.
fn segment_files(spool: &Path, segment_bytes: u64) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(spool)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let segment = name.strip_suffix(".partial").unwrap_or(&name);
        if Segment::parse(segment, segment_bytes).is_some() {
            files.push((segment.to_string(), entry.path()));
        }
    }
    Ok(files)
}

fn is_partial(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "partial")
}

/// Whether the file at `path` is the segment `name` of `system`, by its page
/// header. `Ok(false)`: nothing written yet (a growing segment just created).
pub fn check_file(path: &Path, system: &str, name: &str, segment_bytes: u64) -> Result<bool, String> {
    use std::io::Read;
    let mut page = [0u8; 64];
    let read = std::fs::File::open(path).and_then(|f| f.take(page.len() as u64).read(&mut page));
    let read = read.map_err(|e| format!("cannot be read: {e}"))?;
    check_bytes(&page[..read], system, name, segment_bytes)
}

/// [`check_file`] on a segment's bytes.
pub fn check_bytes(bytes: &[u8], system: &str, name: &str, segment_bytes: u64) -> Result<bool, String> {
    let segment = Segment::parse(name, segment_bytes).ok_or_else(|| format!("{name} is not a segment name"))?;
    match SegmentHeader::read(bytes)? {
        None => Ok(false),
        Some(header) => header.belongs_to(system, &segment).map(|()| true),
    }
}

/// Sets aside a growing segment `pg_receivewal` would refuse to resume from.
/// It fills each new `.partial` file with zeros to full size before writing
/// any WAL into it, and refuses to start on one of any other size ("should be
/// 0 or 16777216"), restarting in a loop that never archives again. One is
/// left when it was stopped while filling (killed, or its pod evicted): it
/// holds no WAL, and the slot still has what belongs there, so it goes to
/// `rejected/` and streaming starts that segment afresh. Said in the message.
pub fn set_aside_unfinished(spool: &Path, segment_bytes: u64) -> Result<Option<String>, EngineError> {
    let files = segment_files(spool, segment_bytes).map_err(EngineError::io(format!("reading {}", spool.display())))?;
    for (name, path) in files.iter().filter(|(_, path)| is_partial(path)) {
        let size = std::fs::metadata(path).map_err(EngineError::io(format!("reading {}", path.display())))?.len();
        if size != 0 && size != segment_bytes {
            let why = format!(
                "is a growing segment of {size} bytes, not {segment_bytes}: pg_receivewal was stopped while creating it and cannot resume from it; it is streamed again from the slot"
            );
            return reject(spool, path, &format!("{name}.partial"), &why).map(Some);
        }
    }
    Ok(None)
}

/// Moves a file that failed its check into the spool's `rejected/`, where it
/// is kept (for whoever investigates) and never uploaded; says so.
pub fn reject(spool: &Path, file: &Path, name: &str, why: &str) -> Result<String, EngineError> {
    let dir = spool.join(REJECTED);
    std::fs::create_dir_all(&dir).map_err(EngineError::io(format!("creating {}", dir.display())))?;
    let to = free_name(&dir.join(file.file_name().unwrap_or_default()), "");
    std::fs::rename(file, &to).map_err(EngineError::io(format!("moving {} aside", file.display())))?;
    Ok(format!("WAL segment {name} {why}: moved to {} and never uploaded", to.display()))
}

/// `path` with `suffix`, or with a counter after it when that is taken: what
/// is moved aside never replaces what was moved there before (a rename would).
fn free_name(path: &Path, suffix: &str) -> PathBuf {
    (1..)
        .map(|n| {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(if n == 1 { suffix.to_string() } else { format!("{suffix}-{n}") });
            path.with_file_name(name)
        })
        .find(|to| !to.exists())
        .expect("a free name")
}

fn move_aside(spool: &Path) -> Result<PathBuf, EngineError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let to = free_name(spool, &format!(".moved-{stamp}"));
    std::fs::rename(spool, &to).map_err(EngineError::io(format!(
        "moving the unusable spool {} aside to {}",
        spool.display(),
        to.display()
    )))?;
    Ok(to)
}

#[cfg(test)]
mod tests;
