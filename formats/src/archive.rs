//! The parts of a pg_dump custom-format archive the engine reads: where each
//! table-of-contents entry keeps its data offset, and where each data block
//! starts — so that a pipe-written archive can be given the offsets pg_dump
//! could not write (see the engine's `archive_index`).
//!
//! Layout (pg_dump's `pg_backup_archiver.c` / `pg_backup_custom.c`): the header
//! `PGDMP`, version bytes, integer and offset sizes, the format; then the TOC,
//! one entry per object, each ending in an offset field (a flag byte and the
//! offset); then the data blocks, each a type byte, the entry's dump id and
//! length-prefixed chunks ending with a zero length.
//!
//! Only archive versions whose layout is checked here against real pg_dump
//! output are scanned: 1.13 and 1.14 (pg_dump 11 to 15), 1.15 (pg_dump 16: the
//! compression algorithm as one header byte instead of an integer level) and
//! 1.16 (pg_dump 17 and 18: each TOC entry also carries its relation's relkind;
//! large objects come in groups, one data block holding several of them, as
//! before); anything else is [`Scan::Skipped`]. [`block_data`] reads one
//! table's COPY data back out of a block, for a restore that copies a large
//! table through several sessions itself. The archive is
//! untrusted: every length is checked against the input's size before it is
//! skipped, nothing is allocated from a length in the input, and every loop
//! consumes input, so any input ends in a result or an error.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

const MAGIC: &[u8] = b"PGDMP";
const FORMAT_CUSTOM: u8 = 1;
const OFFSET_NOT_SET: u8 = 1;
const OFFSET_SET: u8 = 2;
const BLOCK_DATA: u8 = 1;
const BLOCK_BLOBS: u8 = 3;

/// What a scan found.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The offsets to write into the TOC, one per data block found, and what
    /// the archive holds (for progress reports while pg_restore runs).
    Offsets { patches: Vec<OffsetPatch>, entries: Vec<Entry>, layout: Layout },
    /// Nothing to do: the archive has offsets already, or its version or format
    /// is not one scanned here.
    Skipped(String),
}

/// Bytes to write at `at`: an entry's offset field, now saying where its data starts.
#[derive(Debug, PartialEq, Eq)]
pub struct OffsetPatch {
    pub at: u64,
    pub bytes: Vec<u8>,
}

/// One TOC entry: its dump id (pg_restore's verbose output names items by
/// it), its section, what it is, and where its data block is, if it has one.
/// Text fields are empty when the archive's bytes are not UTF-8 or longer
/// than anything pg_dump writes there.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Entry {
    pub dump_id: i64,
    pub section: Section,
    /// pg_dump's kind of object: `TABLE DATA`, `INDEX`, `ENCODING`, …
    pub desc: String,
    pub namespace: String,
    pub tag: String,
    /// `COPY schema.table (columns) FROM stdin;` of table data.
    pub copy_statement: String,
    /// The statement of an `ENCODING` or `STDSTRINGS` entry (how the data
    /// was written); empty for every other kind.
    pub setting: String,
    /// The dump ids of the entries this one depends on.
    pub dependencies: Vec<i64>,
    /// Where the data block starts, and its length (0: no data).
    pub data_at: u64,
    pub data_bytes: u64,
}

/// How the archive writes integers, and whether its data is compressed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Layout {
    pub int_size: usize,
    pub compressed: bool,
}

/// The longest name or kind read from a TOC entry; PostgreSQL's names are 63 bytes.
const MAX_NAME: u64 = 64 * 1024;
/// The longest COPY statement read: 1 600 columns of 63-byte quoted names fit.
const MAX_COPY_STATEMENT: u64 = 1 << 20;

/// pg_dump's `teSection`: when pg_restore restores an entry.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Section {
    /// ACLs, comments and the like, restored beside what they belong to.
    None,
    PreData,
    Data,
    PostData,
    Unknown,
}

impl Section {
    fn from_code(code: i64) -> Self {
        match code {
            1 => Section::None,
            2 => Section::PreData,
            3 => Section::Data,
            4 => Section::PostData,
            _ => Section::Unknown,
        }
    }
}

/// Input the scan reads, and how it passes over data blocks.
trait Source: Read {
    fn pass(&mut self, n: u64) -> io::Result<()>;
}

/// A file: data blocks are seeked over.
struct Seekable<R>(BufReader<R>);

impl<R: Read + Seek> Read for Seekable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Seek> Source for Seekable<R> {
    fn pass(&mut self, n: u64) -> io::Result<()> {
        self.0.seek_relative(n as i64)
    }
}

/// A stream (the archive as it is downloaded): data blocks are read through.
struct Forward<R>(BufReader<R>);

impl<R: Read> Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for Forward<R> {
    fn pass(&mut self, n: u64) -> io::Result<()> {
        let passed = io::copy(&mut (&mut self.0).take(n), &mut io::sink())?;
        if passed < n {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a data block"));
        }
        Ok(())
    }
}

struct Reader<S> {
    inner: S,
    pos: u64,
    len: u64,
    int_size: usize,
}

impl<S: Source> Reader<S> {
    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        if n > self.len - self.pos {
            return Err(truncated(self.pos, n));
        }
        self.inner.pass(n)?;
        self.pos += n;
        Ok(())
    }

    fn int(&mut self) -> io::Result<i64> {
        let value = read_int(&mut self.inner, self.int_size)?;
        self.pos += 1 + self.int_size as u64;
        value.ok_or_else(|| invalid(format!("integer out of range at byte {}", self.pos)))
    }

    /// pg_dump's string, when it is UTF-8 of at most `max` bytes; otherwise
    /// (or NULL) it is passed over and read as empty.
    fn string(&mut self, max: u64) -> io::Result<String> {
        Ok(self.text(max)?.unwrap_or_default())
    }

    /// As [`Reader::string`], but NULL is `None`.
    fn text(&mut self, max: u64) -> io::Result<Option<String>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = len as u64;
        if len > self.len - self.pos {
            return Err(truncated(self.pos, len));
        }
        if len > max {
            self.skip(len)?;
            return Ok(Some(String::new()));
        }
        let mut bytes = vec![0u8; len as usize];
        self.inner.read_exact(&mut bytes)?;
        self.pos += len;
        Ok(Some(String::from_utf8(bytes).unwrap_or_default()))
    }

    /// Skips pg_dump's string (an int length, -1 for NULL, then the bytes);
    /// false for NULL.
    fn skip_string(&mut self) -> io::Result<bool> {
        let len = self.int()?;
        if len < 0 {
            return Ok(false);
        }
        self.skip(len as u64)?;
        Ok(true)
    }
}

/// pg_dump's integer: a sign byte, then `int_size` bytes, least significant
/// first; `None` when it does not fit an i64.
fn read_int(input: &mut impl Read, int_size: usize) -> io::Result<Option<i64>> {
    let mut bytes = [0u8; 9];
    input.read_exact(&mut bytes[..=int_size])?;
    let value = bytes[1..=int_size].iter().rev().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    Ok(i64::try_from(value).ok().map(|v| if bytes[0] != 0 { -v } else { v }))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn truncated(at: u64, wanted: u64) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, format!("archive ends inside a {wanted}-byte field at byte {at}"))
}

/// Scans an archive file for its data offsets.
pub fn scan<R: Read + Seek>(mut input: R) -> io::Result<Scan> {
    let len = input.seek(SeekFrom::End(0))?;
    input.seek(SeekFrom::Start(0))?;
    scan_from(Seekable(BufReader::with_capacity(1 << 20, input)), len)
}

/// Scans an archive of `len` bytes as it streams past, reading it once from
/// start to end (the result is the same as [`scan`]'s of the same bytes).
pub fn scan_stream<R: Read>(input: R, len: u64) -> io::Result<Scan> {
    scan_from(Forward(BufReader::with_capacity(1 << 20, input)), len)
}

fn scan_from<S: Source>(input: S, len: u64) -> io::Result<Scan> {
    let mut r = Reader { inner: input, pos: 0, len, int_size: 4 };
    let mut magic = [0u8; 5];
    r.inner.read_exact(&mut magic)?;
    r.pos = 5;
    if magic != MAGIC {
        return Err(invalid("not a pg_dump archive (no PGDMP header)".into()));
    }
    let (major, minor, _rev) = (r.byte()?, r.byte()?, r.byte()?);
    r.int_size = usize::from(r.byte()?);
    let off_size = usize::from(r.byte()?);
    let format = r.byte()?;
    if format != FORMAT_CUSTOM {
        return Ok(Scan::Skipped(format!("archive format {format} is not custom")));
    }
    if major != 1 || !(13..=16).contains(&minor) {
        return Ok(Scan::Skipped(format!("archive version {major}.{minor} is not indexed here")));
    }
    if !(1..=8).contains(&r.int_size) || !(1..=8).contains(&off_size) {
        return Err(invalid(format!("integer size {} / offset size {off_size} out of range", r.int_size)));
    }
    let compressed = if minor >= 15 {
        r.byte()? != 0 // compression algorithm, 0 for none
    } else {
        r.int()? != 0 // compression level
    };
    let layout = Layout { int_size: r.int_size, compressed };
    for _ in 0..7 {
        r.int()?; // creation time
    }
    for _ in 0..3 {
        r.skip_string()?; // database name, server version, pg_dump version
    }

    // TOC: remember where each entry's offset field is.
    let entries = r.int()?;
    let mut offset_fields = Vec::new(); // (dump id, position of the flag byte)
    let mut toc = Vec::new();
    for _ in 0..entries.max(0) {
        let dump_id = r.int()?;
        r.int()?; // had a data dumper
        r.skip_string()?; // table oid
        r.skip_string()?; // oid
        let tag = r.string(MAX_NAME)?;
        let desc = r.string(MAX_NAME)?;
        let section = Section::from_code(r.int()?);
        let setting = if desc == "ENCODING" || desc == "STDSTRINGS" { r.string(MAX_NAME)? } else { String::new() };
        if setting.is_empty() {
            r.skip_string()?; // definition
        }
        r.skip_string()?; // drop statement
        let copy_statement = r.string(MAX_COPY_STATEMENT)?;
        let namespace = r.string(MAX_NAME)?;
        r.skip_string()?; // tablespace
        if minor >= 14 {
            r.skip_string()?; // table access method
        }
        if minor >= 16 {
            r.int()?; // relkind
        }
        r.skip_string()?; // owner
        r.skip_string()?; // "false" (with oids)
        let mut dependencies = Vec::new();
        // Dependencies, NULL-terminated: each a dump id in decimal.
        while let Some(dependency) = r.text(MAX_NAME)? {
            dependencies.extend(dependency.parse::<i64>().ok());
        }
        let flag_at = r.pos;
        let flag = r.byte()?;
        r.skip(off_size as u64)?;
        toc.push(Entry {
            dump_id,
            section,
            desc,
            namespace,
            tag,
            copy_statement,
            setting,
            dependencies,
            data_at: 0,
            data_bytes: 0,
        });
        match flag {
            OFFSET_SET => return Ok(Scan::Skipped("the archive already has data offsets".into())),
            OFFSET_NOT_SET => offset_fields.push((dump_id, flag_at)),
            _ => {} // no data for this entry
        }
    }

    // Data: blocks of chunks, each chunk an int length and its bytes, a zero
    // length ending the block.
    let mut starts = std::collections::HashMap::new(); // dump id → (start, length)
    while r.pos < r.len {
        let block_at = r.pos;
        let kind = r.byte()?;
        let dump_id = r.int()?;
        match kind {
            BLOCK_DATA => skip_chunks(&mut r)?,
            BLOCK_BLOBS => {
                while r.int()? != 0 {
                    skip_chunks(&mut r)?; // one large object: its oid, then its chunks
                }
            }
            other => return Err(invalid(format!("unknown block type {other} at byte {block_at}"))),
        }
        starts.insert(dump_id, (block_at, r.pos - block_at));
    }
    for entry in &mut toc {
        if let Some((at, length)) = starts.get(&entry.dump_id) {
            (entry.data_at, entry.data_bytes) = (*at, *length);
        }
    }

    let patches = offset_fields
        .into_iter()
        .filter_map(|(dump_id, at)| {
            let (block_at, _) = *starts.get(&dump_id)?;
            let mut bytes = vec![OFFSET_SET];
            bytes.extend((0..off_size).map(|i| (block_at >> (8 * i)) as u8));
            Some(OffsetPatch { at, bytes })
        })
        .collect();
    Ok(Scan::Offsets { patches, entries: toc, layout })
}

fn skip_chunks<S: Source>(r: &mut Reader<S>) -> io::Result<()> {
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

/// The payload of one data block, read from its first byte (`entry.data_at`):
/// the chunks' bytes in order, which for table data is its COPY text. The
/// block's type and dump id are checked, and no chunk may reach past the
/// block's recorded length.
pub fn block_data<R: Read>(mut input: R, layout: Layout, entry: &Entry) -> io::Result<BlockData<R>> {
    let mut kind = [0u8; 1];
    input.read_exact(&mut kind)?;
    let dump_id = read_int(&mut input, layout.int_size)?;
    if kind[0] != BLOCK_DATA || dump_id != Some(entry.dump_id) {
        return Err(invalid(format!(
            "no data block of entry {} at byte {} (type {}, dump id {dump_id:?})",
            entry.dump_id, entry.data_at, kind[0]
        )));
    }
    let header = 2 + layout.int_size as u64;
    Ok(BlockData {
        input,
        int_size: layout.int_size,
        left: 0,
        budget: entry.data_bytes.saturating_sub(header),
        done: false,
    })
}

/// See [`block_data`].
pub struct BlockData<R> {
    input: R,
    int_size: usize,
    /// Bytes left of the current chunk.
    left: u64,
    /// Bytes left of the block.
    budget: u64,
    done: bool,
}

impl<R: Read> Read for BlockData<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let header = 1 + self.int_size as u64;
            if self.budget < header {
                return Err(invalid("a data block runs past its recorded length".into()));
            }
            self.budget -= header;
            match read_int(&mut self.input, self.int_size)? {
                Some(0) => self.done = true,
                Some(len) if len > 0 && len as u64 <= self.budget => {
                    self.left = len as u64;
                    self.budget -= self.left;
                }
                other => return Err(invalid(format!("chunk length {other:?} does not fit its data block"))),
            }
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a data block"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn scan_bytes(bytes: &[u8]) -> io::Result<Scan> {
        scan(Cursor::new(bytes))
    }

    #[test]
    fn unknown_versions_and_formats_are_left_alone() {
        assert_eq!(
            scan_bytes(b"PGDMP\x01\x11\x00\x04\x08\x01").unwrap(),
            Scan::Skipped("archive version 1.17 is not indexed here".into())
        );
        assert!(matches!(scan_bytes(b"PGDMP\x01\x0e\x00\x04\x08\x03").unwrap(), Scan::Skipped(_)));
    }

    #[test]
    fn what_is_no_archive_is_an_error() {
        assert!(scan_bytes(b"not an archive").is_err());
        assert!(scan_bytes(b"PGDMP\x01").is_err(), "truncated header");
        assert!(scan_bytes(b"PGDMP\x01\x0e\x00\x09\x08\x01").is_err(), "integer size 9");
    }

    #[test]
    fn lengths_beyond_the_input_are_errors_not_allocations() {
        // A header, then a database-name string claiming 2^62 bytes.
        let mut a = b"PGDMP\x01\x0e\x00\x08\x08\x01".to_vec();
        for _ in 0..8 {
            a.extend([0u8; 9]); // compression and creation time: +0
        }
        a.push(0);
        a.extend(&(1u64 << 62).to_le_bytes());
        let err = scan_bytes(&a).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
