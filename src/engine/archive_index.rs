//! Stages a stored dump for pg_restore in one pass over its bytes: as they
//! arrive they are decompressed, written to the staging file, and scanned for
//! the data offsets pg_dump could not write.
//!
//! pg_dump writing to a pipe cannot seek back to fill in where each table's data
//! starts, so every TOC entry says "offset not set". pg_restore then finds a
//! table's data by scanning the archive from the start, chunk by chunk (one chunk
//! per row with `-Z0`), in every worker: on a 1 GB database that made a
//! `pg_restore -j 2` take 21 s instead of 13 s. The scan here
//! (`artifortress_formats::archive`) runs over the bytes while they are being
//! written, and the offsets go into the TOC when the file is complete, exactly
//! as pg_dump writes them when its output is a file. (Download, decompression,
//! checksum and indexing used to be three passes, a quarter of a restore.)
//!
//! A wrong offset cannot go unnoticed: pg_restore checks the block id it finds at
//! an offset, and parity checks every table afterwards.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use artifortress_formats::archive::{self, Entry, Layout, Scan};
use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

use super::encryption::Keyring;

/// How far indexing got.
#[derive(Debug, PartialEq, Eq)]
pub enum Indexed {
    /// Offsets written for this many data blocks; the archive's entries, with
    /// their sections and data blocks (for pg_restore's progress, and for
    /// copying a large table apart), and how its blocks are written.
    Blocks(usize, Vec<Entry>, Layout),
    /// The archive already had offsets, or its version is not one we know.
    Skipped(String),
}

/// Why staging failed: the stored bytes, or the staging disk.
#[derive(Debug)]
pub enum StagingFault {
    Decrypt(io::Error),
    Decompress(io::Error),
    Write(io::Error),
}

/// A staging file being written from the zstd-compressed chunks pushed into it.
pub struct Staging {
    chunks: mpsc::Sender<Bytes>,
    worker: tokio::task::JoinHandle<Result<io::Result<Indexed>, StagingFault>>,
}

/// Chunks in flight between the download and the staging thread: bounds the
/// memory a fast download can fill while the disk is slower.
const IN_FLIGHT: usize = 16;

impl Staging {
    /// Starts staging an archive of `archive_bytes` (decompressed) at `path`;
    /// with `keys`, the chunks are an age stream over the zstd one.
    pub fn start(path: PathBuf, archive_bytes: u64, keys: Option<Keyring>) -> Self {
        let (chunks, receiver) = mpsc::channel(IN_FLIGHT);
        let worker = tokio::task::spawn_blocking(move || stage(&path, archive_bytes, receiver, keys));
        Staging { chunks, worker }
    }

    /// Hands over the next compressed chunk; false once staging has stopped
    /// (its reason comes from [`Staging::finish`]).
    pub async fn push(&self, chunk: Bytes) -> bool {
        self.chunks.send(chunk).await.is_ok()
    }

    /// Waits for the file to be complete. The outer error is fatal; the inner
    /// one only means the archive is not indexed (pg_restore judges it itself).
    pub async fn finish(self) -> Result<io::Result<Indexed>, StagingFault> {
        drop(self.chunks);
        self.worker.await.unwrap_or_else(|e| Err(StagingFault::Write(io::Error::other(e))))
    }
}

fn stage(
    path: &std::path::Path,
    archive_bytes: u64,
    chunks: mpsc::Receiver<Bytes>,
    keys: Option<Keyring>,
) -> Result<io::Result<Indexed>, StagingFault> {
    let file = File::create(path).map_err(StagingFault::Write)?;
    let stored = Chunks { receiver: chunks, current: Bytes::new() };
    let compressed: Box<dyn Read + Send> = match keys {
        Some(keys) => keys.open(stored).map_err(StagingFault::Decrypt)?,
        None => Box::new(stored),
    };
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(StagingFault::Decompress)?;
    let mut tee = Tee { input: decoder, out: BufWriter::with_capacity(1 << 20, &file), fault: None };
    let scanned = archive::scan_stream(&mut tee, archive_bytes);
    // What the scan did not read (after an archive it does not index) belongs in the file too.
    let rest = io::copy(&mut tee, &mut io::sink());
    if let Some(fault) = tee.fault.take() {
        return Err(fault);
    }
    rest.map_err(StagingFault::Write)?;
    tee.out.flush().map_err(StagingFault::Write)?;
    drop(tee);
    Ok(match scanned {
        Ok(Scan::Skipped(why)) => Ok(Indexed::Skipped(why)),
        Ok(Scan::Offsets { patches, entries, layout }) => {
            for patch in &patches {
                file.write_all_at(&patch.bytes, patch.at).map_err(StagingFault::Write)?;
            }
            Ok(Indexed::Blocks(patches.len(), entries, layout))
        }
        Err(e) => Err(e),
    })
}

/// The compressed chunks as one byte stream.
struct Chunks {
    receiver: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// The decompressed archive, written to the file as it is read; remembers
/// which side failed, so a full disk is not reported as a corrupt dump.
struct Tee<R, W> {
    input: R,
    out: W,
    fault: Option<StagingFault>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf).inspect_err(|e| {
            self.fault.get_or_insert(StagingFault::Decompress(io::Error::new(e.kind(), e.to_string())));
        })?;
        self.out.write_all(&buf[..n]).inspect_err(|e| {
            self.fault.get_or_insert(StagingFault::Write(io::Error::new(e.kind(), e.to_string())));
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPE_DUMP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/formats/tests/data/pg15-pipe.dump");

    async fn staged(compressed: &[u8], archive_bytes: u64, path: PathBuf) -> Result<io::Result<Indexed>, StagingFault> {
        let staging = Staging::start(path, archive_bytes, None);
        for chunk in compressed.chunks(1000) {
            if !staging.push(Bytes::copy_from_slice(chunk)).await {
                break;
            }
        }
        staging.finish().await
    }

    #[tokio::test]
    async fn a_pipe_written_archive_is_written_and_indexed_in_one_pass() {
        let archive = std::fs::read(PIPE_DUMP).unwrap();
        let compressed = zstd::encode_all(&archive[..], 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.dump");
        let Indexed::Blocks(4, entries, _) =
            staged(&compressed, archive.len() as u64, path.clone()).await.unwrap().unwrap()
        else {
            panic!("not indexed")
        };
        assert_eq!(entries.iter().filter(|e| e.data_bytes > 0).count(), 4);
        // The file is the archive with the offsets a file-writing pg_dump puts in.
        let written = std::fs::read(&path).unwrap();
        let Scan::Offsets { patches, .. } = archive::scan(io::Cursor::new(&archive)).unwrap() else { panic!() };
        let mut expected = archive.clone();
        for p in patches {
            expected[p.at as usize..p.at as usize + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        assert_eq!(written, expected);
    }

    #[tokio::test]
    async fn what_is_not_indexed_is_still_staged_and_what_does_not_decompress_is_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let newer = b"PGDMP\x01\x11\x00\x04\x08\x01 and the rest of a future archive".to_vec();
        let compressed = zstd::encode_all(&newer[..], 3).unwrap();
        let path = dir.path().join("newer.dump");
        let indexed = staged(&compressed, newer.len() as u64, path.clone()).await.unwrap().unwrap();
        assert_eq!(indexed, Indexed::Skipped("archive version 1.17 is not indexed here".into()));
        assert_eq!(std::fs::read(&path).unwrap(), newer, "written whole, untouched");

        let garbage = b"PGDMP but not zstd at all".repeat(100);
        let fault = staged(&garbage, 1 << 20, dir.path().join("garbage.dump")).await.unwrap_err();
        assert!(matches!(fault, StagingFault::Decompress(_)), "{fault:?}");
    }
}
