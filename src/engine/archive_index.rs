//! Gives a pipe-written custom-format archive the data offsets pg_dump could not
//! write, so that `pg_restore -j` seeks straight to each table's data.
//!
//! pg_dump writing to a pipe cannot seek back to fill in where each table's data
//! starts, so every TOC entry says "offset not set". pg_restore then finds a
//! table's data by scanning the archive from the start, chunk by chunk (one chunk
//! per row with `-Z0`), in every worker: on a 1 GB database that made a
//! `pg_restore -j 2` take 21 s instead of 13 s. After the archive is staged on
//! local disk we scan it once, record where each data block starts, and write the
//! offsets into the TOC, exactly as pg_dump does when its output is a file.
//!
//! Only archive versions whose layout is checked here (1.13 and 1.14: pg_dump 11
//! to 15) are indexed; anything else is left as it is and restores the slow way.
//! A wrong offset cannot go unnoticed: pg_restore checks the block id it finds at
//! an offset, and parity checks every table afterwards.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8] = b"PGDMP";
const FORMAT_CUSTOM: u8 = 1;
const OFFSET_NOT_SET: u8 = 1;
const OFFSET_SET: u8 = 2;
const BLOCK_DATA: u8 = 1;
const BLOCK_BLOBS: u8 = 3;

/// How far indexing got.
#[derive(Debug, PartialEq, Eq)]
pub enum Indexed {
    /// Offsets written for this many data blocks.
    Blocks(usize),
    /// The archive already had offsets, or its version is not one we know.
    Skipped(String),
}

struct Reader {
    inner: BufReader<File>,
    pos: u64,
    int_size: usize,
}

impl Reader {
    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    fn bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.inner.read_exact(&mut b)?;
        self.pos += n as u64;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.inner.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }

    /// pg_dump's integer: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> std::io::Result<i64> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for (i, b) in self.bytes(self.int_size)?.into_iter().enumerate() {
            value |= i64::from(b) << (8 * i);
        }
        Ok(if negative { -value } else { value })
    }

    /// pg_dump's string: an int length (-1 for NULL) and the bytes.
    fn string(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let len = self.int()?;
        if len < 0 { Ok(None) } else { self.bytes(len as usize).map(Some) }
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Scans the archive at `path` and writes the data offsets into its TOC.
pub fn index(path: &Path) -> std::io::Result<Indexed> {
    let file = File::open(path)?;
    let mut r = Reader { inner: BufReader::with_capacity(1 << 20, file), pos: 0, int_size: 4 };
    if r.bytes(5)? != MAGIC {
        return Err(invalid("not a pg_dump archive (no PGDMP header)"));
    }
    let (major, minor, _rev) = (r.byte()?, r.byte()?, r.byte()?);
    r.int_size = usize::from(r.byte()?);
    let off_size = usize::from(r.byte()?);
    let format = r.byte()?;
    if format != FORMAT_CUSTOM {
        return Ok(Indexed::Skipped(format!("archive format {format} is not custom")));
    }
    if major != 1 || !(13..=14).contains(&minor) || r.int_size > 8 || off_size > 8 {
        return Ok(Indexed::Skipped(format!("archive version {major}.{minor} is not indexed here")));
    }
    r.int()?; // compression level
    for _ in 0..7 {
        r.int()?; // creation time
    }
    for _ in 0..3 {
        r.string()?; // database name, server version, pg_dump version
    }

    // TOC: remember where each entry's offset field is.
    let entries = r.int()?;
    let mut offset_fields = Vec::new(); // (dumpId, position of the flag byte)
    for _ in 0..entries {
        let dump_id = r.int()?;
        r.int()?; // had a data dumper
        for _ in 0..2 {
            r.string()?; // table oid, oid
        }
        r.string()?; // tag
        r.string()?; // desc
        r.int()?; // section
        for _ in 0..5 {
            r.string()?; // defn, drop, copy statement, namespace, tablespace
        }
        if minor >= 14 {
            r.string()?; // table access method
        }
        r.string()?; // owner
        r.string()?; // "false" (with oids)
        while r.string()?.is_some() {} // dependencies, NULL-terminated
        let flag_at = r.pos;
        let flag = r.byte()?;
        r.skip(off_size as u64)?;
        if flag == OFFSET_SET {
            return Ok(Indexed::Skipped("the archive already has data offsets".into()));
        }
        if flag == OFFSET_NOT_SET {
            offset_fields.push((dump_id, flag_at));
        }
    }

    // Data: blocks of chunks, each chunk an int length and its bytes, a zero
    // length ending the block.
    let mut starts = std::collections::HashMap::new();
    loop {
        let block_at = r.pos;
        let kind = match r.byte() {
            Ok(kind) => kind,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let dump_id = r.int()?;
        match kind {
            BLOCK_DATA => skip_chunks(&mut r)?,
            BLOCK_BLOBS => {
                while r.int()? != 0 {
                    skip_chunks(&mut r)?; // one large object: oid, then its chunks
                }
            }
            other => return Err(invalid(format!("unknown block type {other} at byte {block_at}"))),
        }
        starts.insert(dump_id, block_at);
    }

    let out = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut patched = 0;
    for (dump_id, flag_at) in offset_fields {
        if let Some(&block_at) = starts.get(&dump_id) {
            let mut field = vec![OFFSET_SET];
            field.extend((0..off_size).map(|i| (block_at >> (8 * i)) as u8));
            out.write_all_at(&field, flag_at)?;
            patched += 1;
        }
    }
    out.sync_all()?;
    Ok(Indexed::Blocks(patched))
}

fn skip_chunks(r: &mut Reader) -> std::io::Result<()> {
    loop {
        let len = r.int()?;
        if len == 0 {
            return Ok(());
        }
        if len < 0 {
            return Err(invalid(format!("negative chunk length at byte {}", r.pos)));
        }
        r.skip(len as u64)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(bytes: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        f
    }

    #[test]
    fn unknown_versions_and_formats_are_left_alone() {
        let newer = archive(b"PGDMP\x01\x10\x00\x04\x08\x01");
        assert_eq!(index(newer.path()).unwrap(), Indexed::Skipped("archive version 1.16 is not indexed here".into()));
        let directory = archive(b"PGDMP\x01\x0e\x00\x04\x08\x03");
        assert!(matches!(index(directory.path()).unwrap(), Indexed::Skipped(_)));
        let before = std::fs::read(newer.path()).unwrap();
        assert_eq!(before, b"PGDMP\x01\x10\x00\x04\x08\x01", "nothing written");
    }

    #[test]
    fn a_file_that_is_no_archive_is_an_error() {
        assert!(index(archive(b"not an archive").path()).is_err());
        assert!(index(archive(b"PGDMP\x01").path()).is_err(), "truncated header");
    }
}
