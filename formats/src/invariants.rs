//! What every parser here guarantees on any input, as checks the fuzz targets
//! (`fuzz/`) run on generated inputs and `tests/fuzz_regressions.rs` runs on
//! every input a fuzzer ever found failing. Each panics when a guarantee breaks;
//! a parser error is not a failure.

use std::io::Cursor;

use crate::archive::{Scan, block_data, scan, scan_stream};
use crate::manifest::Manifest;
use crate::record::RestoreRecord;
use crate::tokens;
use crate::verdict::Verdict;

/// The scanner ends in a result or an error, only writes inside the archive,
/// sizes no more data than the archive holds, and finds the same in a stream
/// as in a file; each block it found reads back as at most its own bytes.
pub fn archive(data: &[u8]) {
    let scanned = scan(Cursor::new(data));
    let streamed = scan_stream(data, data.len() as u64);
    match (&scanned, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "a stream scans as the file does"),
        (Err(_), Err(_)) => {}
        _ => panic!("file {scanned:?}, stream {streamed:?}"),
    }
    if let Ok(Scan::Offsets { patches, entries, layout }) = scanned {
        for p in patches {
            assert!(p.at as usize + p.bytes.len() <= data.len(), "patch at {} outside the archive", p.at);
        }
        let sized: u64 = entries.iter().map(|e| e.data_bytes).sum();
        assert!(sized <= data.len() as u64, "{sized} bytes of data blocks in a {}-byte archive", data.len());
        for entry in entries.iter().filter(|e| e.data_bytes > 0) {
            let block = &data[entry.data_at as usize..];
            if let Ok(mut payload) = block_data(block, layout, entry) {
                let read = std::io::copy(&mut payload, &mut std::io::sink()).unwrap_or(0);
                assert!(read < entry.data_bytes, "{read} payload bytes from a {}-byte block", entry.data_bytes);
            }
        }
    }
}

/// A manifest that parses writes back to the same manifest.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::parse(data) {
        assert_eq!(Manifest::parse(&m.to_json()).as_ref(), Ok(&m));
    }
}

/// Verdicts and restore records that parse write back to something that parses.
pub fn verdict(data: &[u8]) {
    if let Ok(v) = Verdict::parse(data) {
        assert!(Verdict::parse(&v.to_json()).is_ok());
    }
    if let Ok(r) = RestoreRecord::parse(data) {
        assert!(RestoreRecord::parse(&r.to_json()).is_ok());
    }
}

/// A tokens file gives at most one entry per line, or an error naming a line it has.
pub fn tokens(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match tokens::parse(&text) {
        Ok(entries) => assert!(entries.len() <= lines),
        Err(e) => assert!(e.line >= 1 && e.line <= lines, "error on line {} of {lines}", e.line),
    }
}

/// Base manifests that parse write back to the same value; WAL object names and
/// segment names that parse write back to the same name; LSNs round-trip.
pub fn physical(data: &[u8]) {
    use crate::physical::{BaseManifest, Lsn, Segment, SegmentHeader, TimelineHistory, WalObject};
    if let Ok(m) = BaseManifest::parse(data) {
        assert_eq!(BaseManifest::parse(&m.to_json()).as_ref(), Ok(&m));
    }
    let text = String::from_utf8_lossy(data);
    if let Some(o) = WalObject::parse(&text) {
        let key = o.key("1");
        assert_eq!(WalObject::parse(key.rsplit('/').next().unwrap()), Some(o));
    }
    // A history that parses leads through each of its timelines from where it began.
    if let Ok(h) = TimelineHistory::parse(1000, &text) {
        for (timeline, begin, end) in h.path() {
            assert!(end.is_none_or(|end| begin <= end));
            assert!(h.leads_through(timeline, begin));
        }
    }
    if let Some(s) = Segment::parse(&text, 16 << 20) {
        assert_eq!(s.name(), text);
    }
    if let Ok(lsn) = text.parse::<Lsn>() {
        assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
    }
    // A segment's page header from any bytes: read, and judged against the
    // segment its own fields name, it belongs there.
    if let Ok(Some(h)) = SegmentHeader::read(data) {
        let segment = Segment {
            timeline: h.timeline,
            number: h.page_address.0 / u64::from(h.segment_bytes),
            segment_bytes: u64::from(h.segment_bytes),
        };
        if h.timeline != 0 && h.page_address.0 % u64::from(h.segment_bytes) == 0 {
            assert_eq!(h.belongs_to(&h.system_identifier.to_string(), &segment), Ok(()));
        }
    }
}
