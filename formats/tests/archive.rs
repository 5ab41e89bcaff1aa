//! The archive scanner on real pg_dump output (tests/data): pg_dump 15 (archive
//! 1.14), 16 (1.15) and 18 (1.16, large objects grouped), each written once to a
//! pipe and once to a file from the same database (tables in a second schema,
//! an empty table, 1 or 30 large objects).

use std::io::{Cursor, Read};

use artifortress_formats::archive::{Entry, Layout, Scan, Section, block_data, scan, scan_stream};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const MAJORS: [u32; 3] = [15, 16, 18];

/// The header's creation time (seven integers after the compression setting:
/// an integer level before 1.15, one algorithm byte since) differs between two
/// dumps; everything else must be equal.
fn without_creation_time(mut archive: Vec<u8>) -> Vec<u8> {
    let start = if archive[6] >= 15 { 12 } else { 16 };
    archive[start..start + 7 * 5].fill(0);
    archive
}

#[test]
fn a_pipe_written_archive_gets_the_offsets_pg_dump_writes_into_a_file() {
    for major in MAJORS {
        let mut pipe = data(&format!("pg{major}-pipe.dump"));
        let Scan::Offsets { patches, .. } = scan(Cursor::new(&pipe)).unwrap() else { panic!("{major}: not scanned") };
        // tenants, "Mixed Case", empty_one, and the large objects' block.
        assert_eq!(patches.len(), 4, "pg_dump {major}");
        for p in patches {
            pipe[p.at as usize..p.at as usize + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        let file = data(&format!("pg{major}-file.dump"));
        assert_eq!(without_creation_time(pipe), without_creation_time(file), "pg_dump {major}");
    }
}

#[test]
fn every_data_block_is_sized_and_belongs_to_a_data_section_entry() {
    for major in MAJORS {
        let pipe = data(&format!("pg{major}-pipe.dump"));
        let scanned = scan(Cursor::new(&pipe)).unwrap();
        assert_eq!(scan_stream(&pipe[..], pipe.len() as u64).unwrap(), scanned, "a stream scans as the file");
        let Scan::Offsets { patches, entries, .. } = scanned else { panic!("{major}") };
        let with_data: Vec<_> = entries.iter().filter(|e| e.data_bytes > 0).collect();
        assert_eq!(with_data.len(), 4, "pg_dump {major}: {entries:?}");
        assert!(with_data.iter().all(|e| e.section == Section::Data), "pg_dump {major}: {entries:?}");
        assert!(entries.iter().any(|e| e.section == Section::PreData), "pg_dump {major}");
        // The blocks are the archive's tail, from the first one to the end, without gaps.
        let offset = |p: &artifortress_formats::archive::OffsetPatch| {
            p.bytes[1..].iter().rev().fold(0u64, |acc, b| acc << 8 | u64::from(*b))
        };
        let first = patches.iter().map(offset).min().unwrap();
        let sizes: u64 = with_data.iter().map(|e| e.data_bytes).sum();
        assert_eq!(sizes, pipe.len() as u64 - first, "pg_dump {major}");
    }
}

#[test]
fn the_archive_versions_are_the_ones_each_pg_dump_writes() {
    for (major, minor) in [(15, 14), (16, 15), (18, 16)] {
        assert_eq!(data(&format!("pg{major}-pipe.dump"))[5..7], [1, minor], "pg_dump {major}");
    }
}

#[test]
fn an_archive_with_offsets_is_left_alone() {
    for major in MAJORS {
        assert_eq!(
            scan(Cursor::new(data(&format!("pg{major}-file.dump")))).unwrap(),
            Scan::Skipped("the archive already has data offsets".into())
        );
    }
}

#[test]
fn every_truncation_is_an_error_or_a_partial_index_never_a_panic() {
    for major in MAJORS {
        let pipe = data(&format!("pg{major}-pipe.dump"));
        for cut in 0..pipe.len() {
            if let Ok(Scan::Offsets { patches, .. }) = scan(Cursor::new(&pipe[..cut])) {
                assert!(patches.iter().all(|p| (p.at as usize) < cut), "pg_dump {major}, cut at {cut}");
            }
        }
    }
}

#[test]
fn a_flipped_byte_is_an_error_or_offsets_inside_the_archive() {
    // pg_restore checks the block id at every offset and parity checks the
    // tables; here: the scanner itself never points outside the archive.
    for major in MAJORS {
        let pipe = data(&format!("pg{major}-pipe.dump"));
        for at in (0..pipe.len()).step_by(7) {
            let mut flipped = pipe.clone();
            flipped[at] ^= 0x5a;
            if let Ok(Scan::Offsets { patches, .. }) = scan(Cursor::new(&flipped)) {
                assert!(patches.iter().all(|p| p.at as usize + p.bytes.len() <= flipped.len()), "{major} at {at}");
            }
        }
    }
}

#[test]
fn a_tables_copy_data_reads_back_from_its_block_as_pg_dump_wrote_it() {
    for major in MAJORS {
        let pipe = data(&format!("pg{major}-pipe.dump"));
        let Scan::Offsets { entries, layout, .. } = scan(Cursor::new(&pipe)).unwrap() else { panic!("{major}") };
        assert_eq!(layout, Layout { int_size: 4, compressed: false }, "pg_dump {major} -Z0");
        let encoding = entries.iter().find(|e| e.desc == "ENCODING").unwrap();
        assert_eq!(encoding.setting, "SET client_encoding = 'UTF8';\n", "pg_dump {major}");
        let tenants = entries.iter().find(|e| e.desc == "TABLE DATA" && e.tag == "tenants").unwrap();
        assert_eq!(tenants.namespace, "public");
        let table = entries.iter().find(|e| e.desc == "TABLE" && e.tag == "tenants").unwrap();
        assert_eq!(tenants.dependencies, [table.dump_id], "table data depends on its table");
        assert!(tenants.copy_statement.starts_with("COPY public.tenants ("), "{}", tenants.copy_statement);
        assert!(tenants.copy_statement.ends_with(") FROM stdin;\n"), "{}", tenants.copy_statement);
        let mut text = String::new();
        block_data(&pipe[tenants.data_at as usize..], layout, tenants).unwrap().read_to_string(&mut text).unwrap();
        // Every pg_dump here ends the data with COPY's end marker and blank lines.
        assert!(
            text.starts_with("1\ttenant 1\n") && text.ends_with("5\ttenant 5\n\\.\n\n\n"),
            "pg_dump {major}: {text:?}"
        );

        // Another entry's id at that offset, or a chunk past the block, is an error.
        let other = Entry { dump_id: tenants.dump_id + 1, ..tenants.clone() };
        assert!(block_data(&pipe[tenants.data_at as usize..], layout, &other).is_err());
        let short = Entry { data_bytes: 20, ..tenants.clone() };
        let mut cut = block_data(&pipe[tenants.data_at as usize..], layout, &short).unwrap();
        assert!(cut.read_to_string(&mut String::new()).is_err(), "pg_dump {major}");
    }
}
