//! Restoring the largest tables through several sessions at once.
//!
//! pg_restore copies each table in one session whatever `-j` is. When one
//! table is most of the data (an audit log, an event table), its one COPY
//! bounds the whole restore while the other sessions have run out of work.
//! Here such a table's COPY text is read straight out of the staged archive
//! (the index knows where its block is) and dealt out in line-aligned batches
//! to `jobs` sessions, each running the archive's own COPY statement, while
//! pg_restore restores the other tables' data beside them.
//!
//! The restore then goes in three runs: the schema; everything else except
//! what depends on these tables (pg_restore restores the other tables' data
//! and builds their indexes meanwhile, as it would); and once every row is in,
//! what depends on them — their indexes, constraints and policies, a foreign
//! key onto them, a materialized view's refresh, their sequences' values — so
//! no index is maintained and no foreign key checked row by row on a table
//! that is still filling, and nothing reads it half full.
//!
//! What the data ends as is what pg_restore would leave: the COPY statement
//! names only the columns pg_dump dumped, so stored generated columns are
//! computed again; identity columns take the dumped values and sequences are
//! set by the archive's own `SEQUENCE SET` entries. Only the rows' physical
//! order differs, which nothing relies on; parity counts every table after.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use artifortress_formats::archive::{self, Entry, Layout, Section};
use bytes::Bytes;
use sqlx::{Connection, PgConnection};
use tokio::sync::{Mutex, mpsc};

use crate::db::{DatabaseUrl, DbError};

use super::EngineError;
use super::pg_restore::{self, LargestTable, PgRestore, Phases, Restoring, Scope};
use super::pgtools::PgTools;
use super::progress::{Meter, Progress, Total, human_bytes};
use super::tuning::SessionSetting;

/// Tables with less data than this are left to pg_restore by default: below
/// it, a table's one session is not what a restore waits for.
pub const DEFAULT_MIN_BYTES: u64 = 64 << 20;

/// Batches of about this size go to one session at a time.
const BATCH_BYTES: usize = 1 << 20;

/// The tables to copy apart: table data of at least `min_bytes` in the
/// archive and at least a quarter of all the data (a table that can bound the
/// data phase), largest first. None when the archive cannot be read that way:
/// compressed data blocks, an encoding other than UTF-8 (our sessions speak
/// UTF-8), one job, or `min_bytes` 0 (turned off).
pub fn plan(entries: &[Entry], layout: Layout, jobs: u32, min_bytes: u64) -> Vec<Entry> {
    let utf8 = entries.iter().any(|e| e.desc == "ENCODING" && e.setting.trim() == "SET client_encoding = 'UTF8';");
    if jobs < 2 || layout.compressed || !utf8 || min_bytes == 0 {
        return Vec::new();
    }
    let total: u64 = entries.iter().filter(|e| e.section == Section::Data).map(|e| e.data_bytes).sum();
    let mut chosen: Vec<Entry> = entries
        .iter()
        .filter(|e| e.section == Section::Data && e.desc == "TABLE DATA")
        .filter(|e| e.copy_statement.starts_with("COPY ") && e.copy_statement.ends_with(" FROM stdin;\n"))
        .filter(|e| e.data_bytes >= min_bytes && e.data_bytes.saturating_mul(4) >= total)
        .cloned()
        .collect();
    chosen.sort_by_key(|e| std::cmp::Reverse(e.data_bytes));
    chosen
}

/// The entries restored after the tables copied apart: whatever depends on
/// those tables' definitions, directly or through other entries. Schema
/// entries among them were restored before any data anyway.
pub fn deferred(entries: &[Entry], tables: &[Entry]) -> HashSet<i64> {
    let mut dependents: HashMap<i64, Vec<&Entry>> = HashMap::new();
    for entry in entries {
        for dependency in &entry.dependencies {
            dependents.entry(*dependency).or_default().push(entry);
        }
    }
    let copied: HashSet<i64> = tables.iter().map(|t| t.dump_id).collect();
    let mut reached: HashSet<i64> = HashSet::new();
    let mut next: Vec<i64> = tables.iter().flat_map(|t| t.dependencies.iter().copied()).collect();
    while let Some(id) = next.pop() {
        for dependent in dependents.get(&id).into_iter().flatten() {
            if !copied.contains(&dependent.dump_id) && reached.insert(dependent.dump_id) {
                next.push(dependent.dump_id);
            }
        }
    }
    reached
}

/// How the sections are restored around the tables copied apart.
pub struct SplitRestore<'a> {
    pub tools: &'a PgTools,
    pub target: &'a DatabaseUrl,
    pub archive: &'a Path,
    pub layout: Layout,
    pub entries: &'a [Entry],
    pub tables: &'a [Entry],
    pub jobs: u32,
    pub with_owners: bool,
    pub settings: &'a [SessionSetting],
}

/// The schema; then, while our sessions copy `tables`, everything that does
/// not depend on them (pg_restore); then what does.
pub async fn restore(split: SplitRestore<'_>, progress: &Progress) -> Result<Phases, EngineError> {
    let SplitRestore { tools, target, archive, layout, entries, tables, jobs, with_owners, settings } = split;
    let after = deferred(entries, tables);
    let skip_meanwhile: HashSet<i64> = tables.iter().map(|e| e.dump_id).chain(after.iter().copied()).collect();
    let skip_after: HashSet<i64> = entries.iter().map(|e| e.dump_id).filter(|id| !after.contains(id)).collect();
    let none = HashSet::new();
    let run = |scope| PgRestore { archive, jobs, with_owners, settings, scope };
    let follow = |apart| Restoring { entries: Some(entries), apart, progress };

    let t = Instant::now();
    pg_restore::run(tools, target, run(Scope::Section("pre-data")), follow(&none)).await?;
    let schema_seconds = t.elapsed().as_secs_f64();

    let (meanwhile_list, after_list) = (archive.with_file_name("meanwhile.list"), archive.with_file_name("after.list"));
    pg_restore::list_leaving_out(tools, archive, &skip_meanwhile, &meanwhile_list).await?;
    pg_restore::list_leaving_out(tools, archive, &skip_after, &after_list).await?;
    let t = Instant::now();
    let others = pg_restore::run(tools, target, run(Scope::AfterSchema(&meanwhile_list)), follow(&skip_meanwhile));
    let copied = copy_tables(target, archive, layout, tables, jobs, settings, progress);
    let (_, largest_table) = tokio::try_join!(others, copied)?;
    let data_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    pg_restore::run(tools, target, run(Scope::AfterSchema(&after_list)), follow(&skip_after)).await?;
    let indexes_seconds = t.elapsed().as_secs_f64();
    Ok(Phases { schema_seconds, data_seconds, indexes_seconds, largest_table })
}

/// Copies each table through `jobs` sessions, one table after the other;
/// the largest one's timing comes back.
async fn copy_tables(
    target: &DatabaseUrl,
    archive: &Path,
    layout: Layout,
    tables: &[Entry],
    jobs: u32,
    settings: &[SessionSetting],
    progress: &Progress,
) -> Result<Option<LargestTable>, EngineError> {
    let options = target
        .connect_options()
        .options(settings.iter().map(|s| (s.name.as_str(), s.value.as_str())))
        // As pg_restore: names in the archive are qualified, and row security
        // must not silently hold rows back (it errors instead).
        .options([("search_path", ""), ("row_security", "off")]);
    let mut sessions = Vec::with_capacity(jobs as usize);
    for _ in 0..jobs {
        let conn = PgConnection::connect_with(&options)
            .await
            .map_err(|source| DbError::Connect { url: target.to_string(), source })?;
        sessions.push(conn);
    }
    let mut largest = None;
    for table in tables {
        let name = format!("{}.{}", table.namespace, table.tag);
        progress
            .step(format!("copying {name} ({} in the archive) through {jobs} sessions", human_bytes(table.data_bytes)));
        let meter = progress.meter("copying table data apart", Some(Total::Exact(table.data_bytes)));
        let t = Instant::now();
        let rows = copy_table(&mut sessions, archive, layout, table, &meter).await.map_err(|e| match e {
            CopyFault::Archive(detail) => EngineError::Io {
                context: format!("reading {name}'s data from the staged archive"),
                source: std::io::Error::other(detail),
            },
            CopyFault::Db(source) => EngineError::Db(DbError::Query {
                context: format!("copying {name}'s data"),
                url: target.to_string(),
                source,
            }),
        })?;
        let seconds = t.elapsed().as_secs_f64();
        progress.step(format!("copied {rows} rows of {name} in {seconds:.1} s"));
        if largest.is_none() {
            largest = Some(LargestTable { name, archive_bytes: table.data_bytes, seconds, sessions: jobs });
        }
    }
    Ok(largest)
}

#[derive(Debug)]
enum CopyFault {
    Archive(String),
    Db(sqlx::Error),
}

/// One table: a reader thread deals out batches, each session takes the next
/// one when it has sent its last, so a slower session never holds others up.
async fn copy_table(
    sessions: &mut [PgConnection],
    archive: &Path,
    layout: Layout,
    table: &Entry,
    meter: &Meter,
) -> Result<u64, CopyFault> {
    let (batches, receiver) = mpsc::channel::<Bytes>(2 * sessions.len());
    let receiver = Arc::new(Mutex::new(receiver));
    let (path, entry) = (archive.to_path_buf(), table.clone());
    let reader = tokio::task::spawn_blocking(move || deal(&path, layout, &entry, batches));
    let copies = sessions.iter_mut().map(|conn| {
        let receiver = Arc::clone(&receiver);
        async move {
            let mut copy = conn.copy_in_raw(&table.copy_statement).await.map_err(CopyFault::Db)?;
            loop {
                let batch = receiver.lock().await.recv().await;
                let Some(batch) = batch else { break };
                let len = batch.len() as u64;
                copy.send(batch).await.map_err(CopyFault::Db)?;
                meter.add(len);
            }
            copy.finish().await.map_err(CopyFault::Db)
        }
    });
    let copied = futures::future::try_join_all(copies).await;
    drop(receiver); // a reader blocked on a full channel stops
    // The reader's fault first: a session fails too when the batches stop early.
    let dealt = reader.await.map_err(|e| CopyFault::Archive(e.to_string()))?;
    dealt.map_err(CopyFault::Archive)?;
    Ok(copied?.iter().sum())
}

/// Reads the table's COPY text from its block and sends it on in batches
/// that end on a line; stops at COPY's end marker (`\.`), after which only
/// blank lines may follow.
fn deal(path: &Path, layout: Layout, entry: &Entry, batches: mpsc::Sender<Bytes>) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(entry.data_at)).map_err(|e| e.to_string())?;
    let mut data =
        archive::block_data(BufReader::with_capacity(BATCH_BYTES, file), layout, entry).map_err(|e| e.to_string())?;
    let mut lines = LineBatches::default();
    let mut buf = vec![0u8; BATCH_BYTES];
    loop {
        let n = data.read(&mut buf).map_err(|e| e.to_string())?;
        let batch = if n == 0 { lines.finish()? } else { lines.push(&buf[..n])? };
        if let Some(batch) = batch
            && batches.blocking_send(batch).is_err()
        {
            return Ok(()); // the sessions stopped; their error says why
        }
        if n == 0 {
            return Ok(());
        }
    }
}

/// COPY text cut into whole lines. Text-format COPY escapes newlines inside
/// values, so every raw newline ends a row (in UTF-8 no other character
/// contains the byte).
#[derive(Default)]
struct LineBatches {
    pending: Vec<u8>,
    ended: bool,
}

impl LineBatches {
    /// Takes more bytes; gives back the whole lines gathered so far once they
    /// make a batch.
    fn push(&mut self, bytes: &[u8]) -> Result<Option<Bytes>, String> {
        if self.ended {
            return self.after_end(bytes).map(|_| None);
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() < BATCH_BYTES {
            return Ok(None);
        }
        let Some(last) = self.pending.iter().rposition(|b| *b == b'\n') else { return Ok(None) };
        let rest = self.pending.split_off(last + 1);
        let lines = std::mem::replace(&mut self.pending, rest);
        self.cut_at_end_marker(lines)
    }

    /// What is left once the block is read; it must end with a whole line.
    fn finish(&mut self) -> Result<Option<Bytes>, String> {
        let lines = std::mem::take(&mut self.pending);
        if self.ended {
            return self.after_end(&lines).map(|_| None);
        }
        if !lines.is_empty() && !lines.ends_with(b"\n") {
            return Err("the table's data ends inside a row".into());
        }
        self.cut_at_end_marker(lines)
    }

    fn cut_at_end_marker(&mut self, mut lines: Vec<u8>) -> Result<Option<Bytes>, String> {
        let marker = lines
            .windows(3)
            .enumerate()
            .find(|(at, w)| *w == b"\\.\n" && (*at == 0 || lines[at - 1] == b'\n'))
            .map(|(at, _)| at);
        if let Some(at) = marker {
            self.ended = true;
            self.after_end(&lines[at + 3..])?;
            lines.truncate(at);
        }
        Ok((!lines.is_empty()).then(|| Bytes::from(lines)))
    }

    fn after_end(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.iter().all(|b| *b == b'\n') {
            Ok(())
        } else {
            Err("the table's data goes on after COPY's end marker".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dump_id: i64, desc: &str, data_bytes: u64) -> Entry {
        Entry {
            dump_id,
            section: if desc == "TABLE DATA" { Section::Data } else { Section::PreData },
            desc: desc.into(),
            namespace: "public".into(),
            tag: format!("t{dump_id}"),
            copy_statement: if desc == "TABLE DATA" {
                format!("COPY public.t{dump_id} (id) FROM stdin;\n")
            } else {
                String::new()
            },
            setting: if desc == "ENCODING" { "SET client_encoding = 'UTF8';\n".into() } else { String::new() },
            dependencies: Vec::new(),
            data_at: 0,
            data_bytes,
        }
    }

    const PLAIN: Layout = Layout { int_size: 4, compressed: false };
    const MIB: u64 = 1 << 20;

    #[test]
    fn only_tables_that_bound_the_data_phase_are_split() {
        let entries =
            vec![entry(1, "ENCODING", 0), entry(2, "TABLE DATA", 400 * MIB), entry(3, "TABLE DATA", 100 * MIB)]
                .into_iter()
                .chain((4..20).map(|i| entry(i, "TABLE DATA", 10 * MIB)))
                .collect::<Vec<_>>();
        let ids = |chosen: Vec<Entry>| chosen.iter().map(|e| e.dump_id).collect::<Vec<_>>();
        assert_eq!(ids(plan(&entries, PLAIN, 2, DEFAULT_MIN_BYTES)), [2], "100 MiB of 660 is no bound");
        assert_eq!(ids(plan(&entries, PLAIN, 2, 500 * MIB)), Vec::<i64>::new(), "below the minimum");
        assert!(plan(&entries, PLAIN, 1, DEFAULT_MIN_BYTES).is_empty(), "one job");
        assert!(plan(&entries, PLAIN, 2, 0).is_empty(), "turned off");
        assert!(plan(&entries, Layout { compressed: true, ..PLAIN }, 2, DEFAULT_MIN_BYTES).is_empty());
        let latin1 = [Entry { setting: "SET client_encoding = 'LATIN1';\n".into(), ..entry(1, "ENCODING", 0) }];
        let other_encoding: Vec<Entry> = latin1.into_iter().chain(entries[1..].iter().cloned()).collect();
        assert!(plan(&other_encoding, PLAIN, 2, DEFAULT_MIN_BYTES).is_empty(), "not UTF-8");
        let two_big = [entry(1, "ENCODING", 0), entry(2, "TABLE DATA", 300 * MIB), entry(3, "TABLE DATA", 350 * MIB)];
        assert_eq!(ids(plan(&two_big, PLAIN, 2, DEFAULT_MIN_BYTES)), [3, 2], "largest first");
    }

    #[test]
    fn what_depends_on_a_copied_table_waits_for_it_and_nothing_else_does() {
        let on = |id: i64, desc: &str, section: Section, deps: &[i64]| Entry {
            section,
            dependencies: deps.to_vec(),
            ..entry(id, desc, if desc == "TABLE DATA" { MIB } else { 0 })
        };
        let entries = [
            on(1, "TABLE", Section::PreData, &[]), // the big table
            on(2, "TABLE", Section::PreData, &[]), // a small one
            on(3, "TABLE DATA", Section::Data, &[1]),
            on(4, "TABLE DATA", Section::Data, &[2]),
            on(5, "CONSTRAINT", Section::PostData, &[1]), // the big table's key
            on(6, "INDEX", Section::PostData, &[2]),
            on(7, "FK CONSTRAINT", Section::PostData, &[2, 5]), // onto the big table's key
            on(8, "MATERIALIZED VIEW", Section::PreData, &[1]),
            on(9, "MATERIALIZED VIEW DATA", Section::PostData, &[8]),
            on(10, "COMMENT", Section::None, &[5]),
            on(11, "SEQUENCE SET", Section::Data, &[12]),
            on(12, "SEQUENCE", Section::PreData, &[1]), // its identity
        ];
        let mut after: Vec<i64> = deferred(&entries, &entries[2..3]).into_iter().collect();
        after.sort();
        assert_eq!(after, [5, 7, 8, 9, 10, 11, 12]);
    }

    fn batches(input: &[u8], step: usize) -> Result<Vec<u8>, String> {
        let mut lines = LineBatches::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            if let Some(b) = lines.push(piece)? {
                assert!(b.ends_with(b"\n"), "a batch ends on a line");
                out.extend_from_slice(&b);
            }
        }
        if let Some(b) = lines.finish()? {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    #[test]
    fn batches_are_whole_lines_up_to_copys_end_marker() {
        let rows: Vec<u8> =
            (0..200_000).flat_map(|i| format!("{i}\tline \\\\. with\\nescapes\n").into_bytes()).collect();
        let mut archived = rows.clone();
        archived.extend_from_slice(b"\\.\n\n\n");
        for step in [1 << 16, 3 * BATCH_BYTES / 2, 7_777_777] {
            assert_eq!(batches(&archived, step).unwrap(), rows, "step {step}");
            assert_eq!(batches(&rows, step).unwrap(), rows, "no end marker");
        }
        let mut more = archived.clone();
        more.extend_from_slice(b"1\tafter the end\n");
        assert!(batches(&more, 1 << 16).unwrap_err().contains("after COPY's end marker"));
        assert!(batches(b"1\trow\n2\tcut", 4).unwrap_err().contains("inside a row"));
        assert_eq!(batches(b"\\.\n", 4).unwrap(), b"", "an empty table");
    }
}
