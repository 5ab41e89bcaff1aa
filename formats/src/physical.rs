//! Physical backups: `base.json`, the manifest of a base backup (written last,
//! beside `base.tar.zst`, so its presence means the base is complete), log
//! sequence numbers, WAL segment names and the keys WAL segments are stored
//! under (`_wal/<system identifier>/<segment>[.partial].<sha256>.zst`: the
//! checksum travels in the key, so a segment is one object, written once).
//! `docs/backup-format.md` documents every field.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FormatError;

/// The newest base-backup manifest format this crate reads; version 2 (which
/// adds `encryption`) is written only for encrypted bases, as for manifests.
pub const BASE_MANIFEST_VERSION: u32 = 2;

pub const BASE_MANIFEST_FILE: &str = "base.json";
pub const BASE_FILE: &str = "base.tar.zst";
/// An encrypted base: age over the zstd stream.
pub const ENCRYPTED_BASE_FILE: &str = "base.tar.zst.age";
/// WAL lives beside the backups under a name no backup can have (backup names
/// have no `_`).
pub const WAL_PREFIX: &str = "_wal";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BaseManifest {
    #[serde(rename = "baseManifestVersion")]
    pub base_manifest_version: u32,
    #[serde(rename = "backupName")]
    pub backup_name: String,
    pub source: PhysicalSource,
    #[serde(rename = "startedAt")]
    pub started_at: DateTime<Utc>,
    #[serde(rename = "completedAt")]
    pub completed_at: DateTime<Utc>,
    /// The WAL a restore of this base needs at least: from `startLsn` (the
    /// backup's checkpoint redo point) to `endLsn` on `timeline`.
    pub timeline: u32,
    #[serde(rename = "startLsn")]
    pub start_lsn: Lsn,
    #[serde(rename = "endLsn")]
    pub end_lsn: Lsn,
    /// The base backup: pg_basebackup's tar (PostgreSQL's own `backup_manifest`
    /// inside it) compressed with zstd.
    pub base: BaseFile,
    #[serde(rename = "pgBasebackupVersion")]
    pub pg_basebackup_version: String,
    #[serde(rename = "toolVersion")]
    pub tool_version: String,
    /// How the base is encrypted (absent: it is not). Version 2 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::manifest::Encryption>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PhysicalSource {
    #[serde(rename = "systemIdentifier")]
    pub system_identifier: String,
    /// e.g. 15.
    pub major: u32,
    #[serde(rename = "serverVersion")]
    pub server_version: String,
    /// The database the backup was asked for (where the heartbeat is); the
    /// base holds every database of the cluster.
    pub database: String,
    #[serde(rename = "walSegmentBytes")]
    pub wal_segment_bytes: u64,
    /// The role created by initdb (oid 10): the scratch instance is entered as it.
    #[serde(rename = "bootstrapSuperuser")]
    pub bootstrap_superuser: String,
    /// The settings a server replaying this WAL needs at least as large as the
    /// source's (max_connections, max_worker_processes, …).
    #[serde(rename = "recoverySettings")]
    pub recovery_settings: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BaseFile {
    pub file: String,
    /// Stored (compressed) bytes and their SHA-256.
    #[serde(rename = "sizeBytes")]
    pub size_bytes: u64,
    pub sha256: String,
    /// Bytes of the tar pg_basebackup wrote.
    #[serde(rename = "tarBytes")]
    pub tar_bytes: u64,
    /// Its version id on a versioned bucket: restores read exactly this version.
    #[serde(rename = "versionId", default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl BaseManifest {
    pub fn parse(bytes: &[u8]) -> Result<BaseManifest, FormatError> {
        crate::versioned::parse("base backup manifest", bytes, "baseManifestVersion", BASE_MANIFEST_VERSION)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a base manifest serialises")
    }

    /// The WAL segment holding `lsn` on this backup's timeline.
    pub fn segment_of(&self, lsn: Lsn) -> Segment {
        Segment::holding(self.timeline, lsn, self.source.wal_segment_bytes)
    }
}

/// A log sequence number, written as PostgreSQL writes it (`16/B374D848`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Lsn, String> {
        let bad = || format!("{s:?} is not an LSN (expected e.g. 16/B374D848)");
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(hi << 32 | lo))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One WAL segment: timeline and number, named as in `pg_wal`
/// (`000000010000000A000000FF`: timeline, then the number split at 4 GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    pub timeline: u32,
    pub number: u64,
    pub segment_bytes: u64,
}

impl Segment {
    pub fn holding(timeline: u32, lsn: Lsn, segment_bytes: u64) -> Segment {
        Segment { timeline, number: lsn.0 / segment_bytes, segment_bytes }
    }

    fn per_id(segment_bytes: u64) -> u64 {
        0x1_0000_0000 / segment_bytes
    }

    pub fn name(&self) -> String {
        let per = Segment::per_id(self.segment_bytes);
        format!("{:08X}{:08X}{:08X}", self.timeline, self.number / per, self.number % per)
    }

    /// Parses a segment file name; `segment_bytes` must be the server's.
    pub fn parse(name: &str, segment_bytes: u64) -> Option<Segment> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()) {
            return None;
        }
        if !segment_bytes.is_power_of_two() || !(1 << 20..=1 << 30).contains(&segment_bytes) {
            return None;
        }
        let field = |i: usize| u64::from_str_radix(&name[i * 8..i * 8 + 8], 16).ok();
        let (timeline, id, seg) = (field(0)?, field(1)?, field(2)?);
        let per = Segment::per_id(segment_bytes);
        if timeline == 0 || seg >= per {
            return None;
        }
        Some(Segment { timeline: u32::try_from(timeline).ok()?, number: id * per + seg, segment_bytes })
    }

    pub fn next(&self) -> Segment {
        Segment { number: self.number + 1, ..*self }
    }

    /// The first LSN after this segment.
    pub fn end(&self) -> Lsn {
        Lsn((self.number + 1) * self.segment_bytes)
    }
}

/// A stored WAL segment, as its key says: which segment, whether it is the
/// growing tail (`partial`: the newest bytes of a segment not yet complete,
/// replaced as it grows) and the SHA-256 of its uncompressed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalObject {
    pub segment: String,
    pub partial: bool,
    pub sha256: String,
}

impl WalObject {
    /// The directory of a source's WAL: `_wal/<system identifier>/`.
    pub fn prefix(system_identifier: &str) -> String {
        format!("{WAL_PREFIX}/{system_identifier}/")
    }

    pub fn key(&self, system_identifier: &str) -> String {
        let partial = if self.partial { ".partial" } else { "" };
        format!("{}{}{partial}.{}.zst", WalObject::prefix(system_identifier), self.segment, self.sha256)
    }

    /// Parses the file name part of a key (after the prefix); anything else
    /// in the directory (status documents) is `None`.
    pub fn parse(file: &str) -> Option<WalObject> {
        let rest = file.strip_suffix(".zst")?;
        let (rest, sha256) = rest.rsplit_once('.')?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return None;
        }
        let (segment, partial) = match rest.strip_suffix(".partial") {
            Some(segment) => (segment, true),
            None => (rest, false),
        };
        let upper_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase());
        let history = segment.strip_suffix(".history").is_some_and(|t| t.len() == 8 && upper_hex(t) && !partial);
        if !history && (segment.len() != 24 || !upper_hex(segment)) {
            return None;
        }
        Some(WalObject { segment: segment.to_string(), partial, sha256: sha256.to_string() })
    }

    /// The timeline whose history file this is (`00000002.history`), if it is one.
    pub fn history_of(&self) -> Option<u32> {
        TimelineHistory::timeline_of(&self.segment)
    }
}

/// A timeline's history file (`00000002.history`, written by the server that
/// was promoted): every timeline before it and the WAL address where each
/// ended, the next one beginning there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineHistory {
    pub timeline: u32,
    /// (timeline, address where it ended), oldest first.
    pub ended: Vec<(u32, Lsn)>,
}

impl TimelineHistory {
    pub fn file_name(timeline: u32) -> String {
        format!("{timeline:08X}.history")
    }

    /// The timeline a history file's name says it is of.
    pub fn timeline_of(name: &str) -> Option<u32> {
        let t = name.strip_suffix(".history")?;
        if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()) {
            return None;
        }
        u32::from_str_radix(t, 16).ok().filter(|t| *t > 1)
    }

    /// Reads a history file as PostgreSQL writes it: `parent<TAB>address<TAB>reason`
    /// lines, comments and blank lines ignored. Its timelines must rise and
    /// stay below `timeline`, its addresses must not fall.
    pub fn parse(timeline: u32, text: &str) -> Result<TimelineHistory, String> {
        let mut ended: Vec<(u32, Lsn)> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut fields = line.split_whitespace();
            let parent = fields.next().and_then(|t| t.parse::<u32>().ok());
            let at = fields.next().and_then(|l| l.parse::<Lsn>().ok());
            let (Some(parent), Some(at)) = (parent, at) else {
                return Err(format!("{line:?} is not a timeline history line (timeline, address, reason)"));
            };
            if parent >= timeline || ended.last().is_some_and(|(t, l)| parent <= *t || at < *l) {
                return Err(format!("{line:?}: timelines must rise below {timeline} and addresses must not fall"));
            }
            ended.push((parent, at));
        }
        Ok(TimelineHistory { timeline, ended })
    }

    /// The timelines on the way to this one, each with the addresses it holds
    /// there: `[begin, end)`, the last one open-ended.
    pub fn path(&self) -> Vec<(u32, Lsn, Option<Lsn>)> {
        let mut begin = Lsn(0);
        let mut path = Vec::new();
        for (timeline, end) in &self.ended {
            path.push((*timeline, begin, Some(*end)));
            begin = *end;
        }
        path.push((self.timeline, begin, None));
        path
    }

    /// Whether WAL of `timeline` at `at` is on the way to this timeline.
    pub fn leads_through(&self, timeline: u32, at: Lsn) -> bool {
        self.path().iter().any(|(t, begin, end)| *t == timeline && *begin <= at && end.is_none_or(|e| at <= e))
    }
}

/// What the first page of a WAL segment says about itself: PostgreSQL's long
/// page header (`XLogLongPageHeaderData`: magic, info, timeline, page address,
/// remaining length, then system identifier, segment size and WAL block size),
/// in the byte order of the server that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub timeline: u32,
    pub page_address: Lsn,
    pub system_identifier: u64,
    pub segment_bytes: u32,
}

/// `xlp_info` of a segment's first page says the long header follows.
const XLP_LONG_HEADER: u16 = 0x0002;
const LONG_HEADER_BYTES: usize = 40;

impl SegmentHeader {
    /// Reads a segment's first page. `Ok(None)`: the page is all zeros, nothing
    /// written yet (a growing segment just created). An error says why these
    /// bytes are not the start of a WAL segment.
    pub fn read(bytes: &[u8]) -> Result<Option<SegmentHeader>, String> {
        let Some(page) = bytes.get(..LONG_HEADER_BYTES) else {
            return Err(format!("{} bytes are too short for a WAL page header", bytes.len()));
        };
        if page.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        // The writer's byte order: the one in which the segment size reads as a
        // power of two between 1 MiB and 1 GiB.
        let le = |at: usize, n: usize| page[at..at + n].iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b));
        let be = |at: usize, n: usize| page[at..at + n].iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
        let plausible = |size: u64| size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size);
        let read: &dyn Fn(usize, usize) -> u64 = if plausible(le(32, 4)) {
            &le
        } else if plausible(be(32, 4)) {
            &be
        } else {
            return Err("its first page has no valid WAL segment size: not a WAL segment".into());
        };
        if read(2, 2) as u16 & XLP_LONG_HEADER == 0 {
            return Err("its first page lacks the long header every WAL segment starts with".into());
        }
        Ok(Some(SegmentHeader {
            timeline: read(4, 4) as u32,
            page_address: Lsn(read(8, 8)),
            system_identifier: read(24, 8),
            segment_bytes: read(32, 4) as u32,
        }))
    }

    /// The header as a little-endian server writes it (magic of PostgreSQL 15;
    /// tests forge segments with it).
    pub fn to_le_bytes(&self) -> [u8; LONG_HEADER_BYTES] {
        let mut page = [0u8; LONG_HEADER_BYTES];
        page[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        page[2..4].copy_from_slice(&XLP_LONG_HEADER.to_le_bytes());
        page[4..8].copy_from_slice(&self.timeline.to_le_bytes());
        page[8..16].copy_from_slice(&self.page_address.0.to_le_bytes());
        page[24..32].copy_from_slice(&self.system_identifier.to_le_bytes());
        page[32..36].copy_from_slice(&self.segment_bytes.to_le_bytes());
        page[36..40].copy_from_slice(&8192u32.to_le_bytes());
        page
    }

    /// Whether this is the header of `segment` of database system `system`:
    /// the reason when not.
    pub fn belongs_to(&self, system: &str, segment: &Segment) -> Result<(), String> {
        if self.system_identifier.to_string() != system {
            return Err(format!("is from database system {}, not {system}", self.system_identifier));
        }
        if u64::from(self.segment_bytes) != segment.segment_bytes {
            return Err(format!(
                "has segments of {} bytes, the server's are {}",
                self.segment_bytes, segment.segment_bytes
            ));
        }
        // The first segment of a new timeline begins with its parent's WAL,
        // pages of an older timeline; a newer one than its name is foreign.
        if self.timeline > segment.timeline {
            return Err(format!("is on timeline {}, after its name's {}", self.timeline, segment.timeline));
        }
        let start = Lsn(segment.number * segment.segment_bytes);
        if self.page_address != start {
            return Err(format!("starts at WAL address {}, its name says {start}", self.page_address));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB16: u64 = 16 << 20;

    #[test]
    fn lsns_read_and_write_as_postgresql_does() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        for bad in ["", "16", "/1", "1/", "x/1", "123456789/0", "1/2/3"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn segment_names_are_postgresqls() {
        // PostgreSQL: pg_walfile_name('0/2000028') on timeline 1 = 000000010000000000000002.
        let s = Segment::holding(1, "0/2000028".parse().unwrap(), MIB16);
        assert_eq!(s.name(), "000000010000000000000002");
        let s = Segment::holding(3, "A/FF000000".parse().unwrap(), MIB16);
        assert_eq!(s.name(), "000000030000000A000000FF");
        assert_eq!(s.next().name(), "000000030000000B00000000");
        assert_eq!(Segment::parse("000000030000000B00000000", MIB16), Some(s.next()));
        assert_eq!(s.end(), "B/0".parse().unwrap());
        for bad in
            ["00000003000000", "000000030000000b00000000", "000000000000000100000000", "000000010000000100000100"]
        {
            assert_eq!(Segment::parse(bad, MIB16), None, "{bad}");
        }
    }

    #[test]
    fn wal_keys_carry_segment_tail_and_checksum() {
        let sha = "ab".repeat(32);
        let o = WalObject { segment: "000000010000000000000002".into(), partial: true, sha256: sha.clone() };
        let key = o.key("7714455088091111146");
        assert_eq!(key, format!("_wal/7714455088091111146/000000010000000000000002.partial.{sha}.zst"));
        assert_eq!(WalObject::parse(key.rsplit('/').next().unwrap()), Some(o.clone()));
        let full = WalObject { partial: false, ..o };
        assert_eq!(WalObject::parse(&format!("000000010000000000000002.{sha}.zst")), Some(full));
        for bad in ["status.json", "000000010000000000000002.zst", "x.partial.ab.zst"] {
            assert_eq!(WalObject::parse(bad), None, "{bad}");
        }
        let history = WalObject { segment: "00000002.history".into(), partial: false, sha256: sha.clone() };
        assert_eq!(WalObject::parse(&format!("00000002.history.{sha}.zst")), Some(history.clone()));
        assert_eq!(history.history_of(), Some(2));
        for bad in [format!("00000002.history.partial.{sha}.zst"), format!("0000002.history.{sha}.zst")] {
            assert_eq!(WalObject::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_timeline_history_says_where_each_timeline_ended() {
        // As PostgreSQL 15 wrote it for timeline 3 (two promotions).
        let text = "1\t0/5000108\tno recovery target specified\n\n2\t0/9000000\tat restore point \"x\"\n";
        let h = TimelineHistory::parse(3, text).unwrap();
        assert_eq!(h.ended, [(1, "0/5000108".parse().unwrap()), (2, "0/9000000".parse().unwrap())]);
        let path = h.path();
        assert_eq!(path[0], (1, Lsn(0), Some("0/5000108".parse().unwrap())));
        assert_eq!(path[2], (3, "0/9000000".parse().unwrap(), None));
        assert!(h.leads_through(1, "0/4000000".parse().unwrap()));
        assert!(!h.leads_through(1, "0/6000000".parse().unwrap()), "timeline 1 past its end is another branch");
        assert!(h.leads_through(3, "1/0".parse().unwrap()));
        assert_eq!(TimelineHistory::timeline_of("0000000A.history"), Some(10));
        assert_eq!(TimelineHistory::file_name(10), "0000000A.history");
        for bad in ["1\t0/1\n1\t0/2\n", "3\t0/1\n", "2\t0/5\n1\t0/6\n", "one\t0/1\n", "1\n"] {
            assert!(TimelineHistory::parse(3, bad).is_err(), "{bad:?}");
        }
    }

    fn header_of(system: u64, segment: &Segment) -> SegmentHeader {
        SegmentHeader {
            timeline: segment.timeline,
            page_address: Lsn(segment.number * segment.segment_bytes),
            system_identifier: system,
            segment_bytes: segment.segment_bytes as u32,
        }
    }

    #[test]
    fn a_segment_header_names_its_system_timeline_and_address() {
        let segment = Segment::parse("000000020000000A000000FF", MIB16).unwrap();
        let mut page = vec![0u8; 8192];
        page[..40].copy_from_slice(&header_of(7_400_000_000_000_000_001, &segment).to_le_bytes());
        page[2] |= 0x04; // XLP_BKP_REMOVABLE beside the long-header flag
        let read = SegmentHeader::read(&page).unwrap().unwrap();
        assert_eq!(read.timeline, 2);
        assert_eq!(read.page_address, "A/FF000000".parse().unwrap());
        assert_eq!(read.belongs_to("7400000000000000001", &segment), Ok(()));
        assert_eq!(
            read.belongs_to("7400000000000000002", &segment),
            Err("is from database system 7400000000000000001, not 7400000000000000002".into())
        );
        let renamed = Segment::parse("000000010000000A000000FF", MIB16).unwrap();
        assert_eq!(
            read.belongs_to("7400000000000000001", &renamed),
            Err("is on timeline 2, after its name's 1".into())
        );
        // Timeline 3's first segment starts with timeline 2's pages.
        let successor = Segment { timeline: 3, ..segment };
        assert_eq!(read.belongs_to("7400000000000000001", &successor), Ok(()));
        assert_eq!(
            read.belongs_to("7400000000000000001", &segment.next()),
            Err("starts at WAL address A/FF000000, its name says B/0".into())
        );
        // A big-endian server's segment reads the same.
        let mut big = vec![0u8; 64];
        big[2..4].copy_from_slice(&XLP_LONG_HEADER.to_be_bytes());
        big[4..8].copy_from_slice(&2u32.to_be_bytes());
        big[8..16].copy_from_slice(&0xA_FF00_0000u64.to_be_bytes());
        big[24..32].copy_from_slice(&7_400_000_000_000_000_001u64.to_be_bytes());
        big[32..36].copy_from_slice(&(16u32 << 20).to_be_bytes());
        assert_eq!(SegmentHeader::read(&big), Ok(Some(read)));
    }

    #[test]
    fn what_is_not_a_segment_start_says_so() {
        assert_eq!(SegmentHeader::read(&[0u8; 8192]), Ok(None), "nothing written yet");
        assert!(SegmentHeader::read(&[0u8; 10]).unwrap_err().contains("too short"));
        assert!(
            SegmentHeader::read(b"#!/bin/sh\nrm -rf / # padding to forty bytes")
                .unwrap_err()
                .contains("not a WAL segment")
        );
        let segment = Segment::parse("000000010000000000000003", MIB16).unwrap();
        let mut short_header = header_of(1, &segment).to_le_bytes();
        short_header[2] = 0;
        assert!(SegmentHeader::read(&short_header).unwrap_err().contains("long header"));
    }
}
