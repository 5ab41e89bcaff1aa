//! The archive scanner on real pg_dump output (tests/data: pg_dump 15, archive
//! 1.14, written once to a pipe and once to a file from the same database).

use std::io::Cursor;

use artifortress_formats::archive::{Scan, scan};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The header's creation time (seven integers after the compression level)
/// differs between the two dumps; everything else must be equal.
fn without_creation_time(mut archive: Vec<u8>) -> Vec<u8> {
    archive[16..16 + 7 * 5].fill(0);
    archive
}

#[test]
fn a_pipe_written_archive_gets_the_offsets_pg_dump_writes_into_a_file() {
    let mut pipe = data("pg15-pipe.dump");
    let Scan::Offsets(patches) = scan(Cursor::new(&pipe)).unwrap() else { panic!("not scanned") };
    // tenants, "Mixed Case", empty_one, and the large object's block.
    assert_eq!(patches.len(), 4);
    for p in patches {
        pipe[p.at as usize..p.at as usize + p.bytes.len()].copy_from_slice(&p.bytes);
    }
    assert_eq!(without_creation_time(pipe), without_creation_time(data("pg15-file.dump")));
}

#[test]
fn an_archive_with_offsets_is_left_alone() {
    assert_eq!(
        scan(Cursor::new(data("pg15-file.dump"))).unwrap(),
        Scan::Skipped("the archive already has data offsets".into())
    );
}

#[test]
fn every_truncation_is_an_error_or_a_partial_index_never_a_panic() {
    let pipe = data("pg15-pipe.dump");
    for cut in 0..pipe.len() {
        if let Ok(Scan::Offsets(patches)) = scan(Cursor::new(&pipe[..cut])) {
            assert!(patches.iter().all(|p| (p.at as usize) < cut), "cut at {cut}");
        }
    }
}
