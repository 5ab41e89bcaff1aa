//! The base backup from the store into `data/`, and the proof it is what
//! PostgreSQL sent.
//!
//! Two threads in a pipeline: one decompresses, the other writes the tar's
//! members, so neither waits for the other's half of the work (one thread
//! doing both was most of a restore's time). Regular files are written here in
//! 1 MiB writes (the tar crate's own copy writes 8 KiB at a time: 300 000
//! calls for a 2.4 GB cluster); directories and links go through the tar
//! crate. While a regular file is being
//! written its CRC-32C is taken from the bytes going by — the checksum
//! PostgreSQL's `backup_manifest` records by default — so the manifest's
//! checksums are compared without reading 2 GB of files again;
//! `pg_verifybackup --skip-checksums` then checks the rest (every file there
//! with its size, the WAL range parsed). A manifest with another checksum
//! algorithm is left to pg_verifybackup whole.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;

/// Each regular file's size and CRC-32C, by its path in the tar.
pub type Sums = HashMap<String, (u64, u32)>;

/// Decompressed bytes in flight between the two threads.
const IN_FLIGHT: usize = 8;
const CHUNK: usize = 1 << 20;

/// Unpacks a zstd-compressed tar into `data` (which must exist), preserving
/// modes, never writing outside it or over a file already there.
pub fn unpack(compressed: impl Read + Send + 'static, data: &Path) -> io::Result<Sums> {
    let (chunks, receiver) = mpsc::sync_channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
    let decompressing = std::thread::spawn(move || {
        let mut decoder = match zstd::Decoder::new(compressed) {
            Ok(decoder) => decoder,
            Err(e) => return drop(chunks.send(Err(e))),
        };
        loop {
            let mut chunk = vec![0u8; CHUNK];
            match read_full(&mut decoder, &mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    if chunks.send(Ok(chunk)).is_err() {
                        return; // the writer stopped; its error says why
                    }
                }
                Err(e) => return drop(chunks.send(Err(e))),
            }
        }
    });
    let written = write_members(Received { receiver, current: Vec::new(), at: 0 }, data);
    // The writer may stop first (an error): the decompressor then finds the channel closed.
    decompressing.join().map_err(|_| io::Error::other("the decompressing thread panicked"))?;
    written
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn write_members(input: Received, data: &Path) -> io::Result<Sums> {
    let tally = Rc::new(Cell::new((0u64, 0u32)));
    let mut archive = tar::Archive::new(Tally { input, tally: tally.clone() });
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    let mut sums = Sums::new();
    let mut buffer = vec![0u8; CHUNK];
    for entry in archive.entries()? {
        let mut entry = entry?;
        let member = entry.path()?.into_owned();
        let outside = || {
            let what = format!("member {} points outside the directory", member.display());
            io::Error::new(io::ErrorKind::InvalidData, what)
        };
        // The tar reads a member's header before handing it out and its
        // contents only while it is read: what the tally sees from here on
        // is this member's bytes.
        tally.set((0, 0));
        if entry.header().entry_type().is_file() {
            let path = inside(data, &member).ok_or_else(outside)?;
            write_file(&mut entry, &path, &mut buffer)?;
            sums.insert(member.to_string_lossy().into_owned(), tally.get());
        } else if !entry.unpack_in(data)? {
            return Err(outside());
        }
    }
    Ok(sums)
}

/// Where a member goes under `data`: only plain names, and no directory on
/// the way may be a symbolic link (an earlier member could have made one
/// pointing anywhere).
fn inside(data: &Path, member: &Path) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let mut path = data.to_path_buf();
    for component in member.components() {
        match component {
            Component::Normal(name) => {
                if path != data && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return None;
                }
                path.push(name);
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    (path != data).then_some(path)
}

/// A new file (never over an existing one) with the member's bytes and mode.
fn write_file(entry: &mut tar::Entry<impl Read>, path: &Path, buffer: &mut [u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mode = entry.header().mode()? & 0o7777;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    loop {
        match entry.read(buffer)? {
            0 => break,
            n => file.write_all(&buffer[..n])?,
        }
    }
    start_writeback(&file);
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Asks the kernel to start writing the file to disk now, without waiting
/// for it. PostgreSQL fsyncs every file of a restored cluster before it
/// recovers; without this the whole cluster is still only in the page cache
/// then, and the server waits for all of it to reach the disk at once, while
/// the disk sat idle during the (CPU-bound) unpacking. Advisory: errors are
/// PostgreSQL's fsync's to report.
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor stays open for the call, which only schedules
    // writeback of the file's dirty pages and touches no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Counts and checksums what passes through.
struct Tally<R> {
    input: R,
    tally: Rc<Cell<(u64, u32)>>,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        let (bytes, crc) = self.tally.get();
        self.tally.set((bytes + n as u64, crc32c::crc32c_append(crc, &buf[..n])));
        Ok(n)
    }
}

/// The decompressed chunks as one byte stream.
struct Received {
    receiver: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.receiver.recv() {
                Ok(chunk) => (self.current, self.at) = (chunk?, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What comparing the manifest's checksums found.
#[derive(Debug, PartialEq, Eq)]
pub enum Checksums {
    /// Every file the manifest lists has its size and CRC-32C.
    Match(usize),
    /// The manifest uses another algorithm (or encodes a path): pg_verifybackup checks them.
    NotCrc32c,
}

/// Compares PostgreSQL's `backup_manifest` with the sums taken while
/// unpacking; a file it lists that the tar lacks, or with another size or
/// checksum, is an error naming it.
pub fn compare(manifest: &[u8], sums: &Sums) -> Result<Checksums, String> {
    let doc: serde_json::Value = serde_json::from_slice(manifest).map_err(|e| format!("backup_manifest: {e}"))?;
    let files = doc.get("Files").and_then(|f| f.as_array()).ok_or("backup_manifest has no Files list")?;
    for file in files {
        let text = |key: &str| file.get(key).and_then(|v| v.as_str());
        let (Some(path), Some("CRC32C"), Some(checksum)) = (text("Path"), text("Checksum-Algorithm"), text("Checksum"))
        else {
            return Ok(Checksums::NotCrc32c);
        };
        let size = file.get("Size").and_then(|v| v.as_u64()).ok_or_else(|| format!("{path}: no Size"))?;
        let Some((got_size, crc)) = sums.get(path) else {
            return Err(format!("{path} is in PostgreSQL's manifest but not in the backup"));
        };
        // PostgreSQL writes the CRC's bytes as they lie in memory: little-endian.
        let got = hex::encode(crc.to_le_bytes());
        if *got_size != size || got != checksum.to_ascii_lowercase() {
            return Err(format!(
                "{path}: PostgreSQL's manifest says {size} bytes with CRC-32C {checksum}, the backup has {got_size} bytes with {got}"
            ));
        }
    }
    Ok(Checksums::Match(files.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn files_are_written_with_the_checksums_of_their_bytes() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let tar = tar_of(&[("PG_VERSION", b"15\n"), ("base/1/1259", &big), ("empty", b"")]);
        let compressed = zstd::encode_all(&tar[..], 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sums = unpack(io::Cursor::new(compressed), dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("base/1/1259")).unwrap(), big);
        assert_eq!(sums["base/1/1259"], (big.len() as u64, crc32c::crc32c(&big)));
        assert_eq!(sums["PG_VERSION"], (3, crc32c::crc32c(b"15\n")));
        assert_eq!(sums["empty"], (0, 0));

        let entry = |path: &str, size: usize, crc: u32| serde_json::json!({"Path": path, "Size": size, "Checksum-Algorithm": "CRC32C", "Checksum": hex::encode(crc.to_le_bytes())});
        let manifest =
            |files: Vec<serde_json::Value>| serde_json::to_vec(&serde_json::json!({ "Files": files })).unwrap();
        let all = vec![
            entry("PG_VERSION", 3, crc32c::crc32c(b"15\n")),
            entry("base/1/1259", big.len(), crc32c::crc32c(&big)),
        ];
        assert_eq!(compare(&manifest(all), &sums), Ok(Checksums::Match(2)));
        let flipped = vec![entry("base/1/1259", big.len(), crc32c::crc32c(&big) ^ 1)];
        assert!(compare(&manifest(flipped), &sums).unwrap_err().starts_with("base/1/1259: PostgreSQL's manifest says"));
        let absent = vec![entry("global/pg_control", 8192, 0)];
        assert!(compare(&manifest(absent), &sums).unwrap_err().contains("not in the backup"));
        let sha = vec![
            serde_json::json!({"Path": "PG_VERSION", "Size": 3, "Checksum-Algorithm": "SHA256", "Checksum": "00"}),
        ];
        assert_eq!(compare(&manifest(sha), &sums), Ok(Checksums::NotCrc32c));
    }

    #[test]
    fn a_member_outside_the_directory_or_bytes_that_do_not_decompress_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o600);
        header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"x"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let inside = dir.path().join("data");
        std::fs::create_dir(&inside).unwrap();
        assert!(unpack(io::Cursor::new(zstd::encode_all(&tar[..], 1).unwrap()), &inside).is_err());
        assert!(!dir.path().join("escape").exists());

        // A link to outside, then a file through it.
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        builder.append_link(&mut link, "away", dir.path()).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(1);
        file.set_mode(0o600);
        file.set_cksum();
        builder.append_data(&mut file, "away/escape", &b"x"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let fresh = dir.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        let err = unpack(io::Cursor::new(zstd::encode_all(&tar[..], 1).unwrap()), &fresh).unwrap_err();
        assert!(err.to_string().contains("away/escape points outside the directory"), "{err}");
        assert!(!dir.path().join("escape").exists());
        assert_eq!(super::inside(&fresh, Path::new("away/escape")), None);
        assert_eq!(super::inside(&fresh, Path::new("./base/1/1259")), Some(fresh.join("base/1/1259")));
        assert_eq!(super::inside(&fresh, Path::new("/etc/passwd")), None);
        assert!(unpack(io::Cursor::new(b"not zstd at all".repeat(10)), &inside).is_err());
    }
}
