//! Running pg_restore on a staged archive and following it through its
//! verbose output: progress in archive bytes and items, and where the time went.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use artifortress_formats::archive::{Entry, Section};

use crate::db::DatabaseUrl;

use super::EngineError;
use super::pgtools::PgTools;
use super::progress::{Progress, Total, Unit};
use super::tuning::{self, SessionSetting};

/// pg_restore's run in parts, read off its verbose output: the schema before
/// any data (restored by one session), table data until the last table's data
/// is in (indexes of finished tables already build meanwhile), then what is
/// left of indexes, constraints and triggers. The largest table bounds the
/// data phase: one session copies it whatever `-j` is.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    pub schema_seconds: f64,
    pub data_seconds: f64,
    pub indexes_seconds: f64,
    pub largest_table: Option<LargestTable>,
}

#[derive(Debug, Clone)]
pub struct LargestTable {
    pub name: String,
    pub archive_bytes: u64,
    pub seconds: f64,
    /// How many sessions copied it: 1 by pg_restore, more by `split_copy`.
    pub sessions: u32,
}

/// What part of the archive one pg_restore run restores.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    Whole,
    /// One of pg_restore's sections: `pre-data` or `post-data`.
    Section(&'static str),
    /// Table data and what is built on it, as far as the list (`pg_restore -L`) keeps them.
    AfterSchema(&'a Path),
}

/// What pg_restore restores, how, and with which session settings.
pub struct PgRestore<'a> {
    pub archive: &'a Path,
    pub jobs: u32,
    pub with_owners: bool,
    pub settings: &'a [SessionSetting],
    pub scope: Scope<'a>,
}

/// pg_restore stopping at the first error; with ownership and grants when the
/// backup recorded the roles (they exist by now).
pub async fn run(
    tools: &PgTools,
    target: &DatabaseUrl,
    PgRestore { archive, jobs, with_owners, settings, scope }: PgRestore<'_>,
    restoring: Restoring<'_>,
) -> Result<Phases, EngineError> {
    let mut command = tools.command(&tools.pg_restore(), target);
    if !settings.is_empty() {
        command.env("PGOPTIONS", tuning::pgoptions(settings));
    }
    if !with_owners {
        command.args(["--no-owner", "--no-acl"]);
    }
    match scope {
        Scope::Whole => {}
        Scope::Section(section) => {
            command.arg(format!("--section={section}"));
        }
        Scope::AfterSchema(list) => {
            command.args(["--section=data", "--section=post-data", "--use-list"]).arg(list);
        }
    }
    let mut child = command
        .arg("--exit-on-error")
        .arg("--verbose") // which items finish, for the progress report
        .arg(format!("--jobs={jobs}"))
        .arg(format!("--dbname={}", target.database()))
        .arg(archive)
        .stdout(Stdio::null())
        .spawn()
        .map_err(EngineError::io(format!("starting {}", tools.pg_restore().display())))?;
    let (stderr, phases) = restoring.follow(child.stderr.take().expect("piped")).await;
    let status = child.wait().await.map_err(EngineError::io("waiting for pg_restore"))?;
    if !status.success() {
        let detail = format!("{status}: {}", super::pgtools::failure_summary("pg_restore", &stderr));
        return Err(EngineError::Tool { tool: "pg_restore", detail });
    }
    Ok(phases)
}

/// Follows a parallel pg_restore through its verbose output: reports table
/// data in archive bytes (the index knows each table's), then indexes,
/// constraints and triggers by count, and times its [`Phases`]. Keeps what is
/// not a progress line, for the error.
pub struct Restoring<'a> {
    pub entries: Option<&'a [Entry]>,
    /// Entries this run leaves to others (see `split_copy`).
    pub apart: &'a HashSet<i64>,
    pub progress: &'a Progress,
}

impl Restoring<'_> {
    async fn follow(&self, stderr: impl tokio::io::AsyncRead + Unpin) -> (String, Phases) {
        use tokio::io::AsyncBufReadExt;
        let entries: Vec<&Entry> =
            self.entries.unwrap_or_default().iter().filter(|e| !self.apart.contains(&e.dump_id)).collect();
        let data_bytes: u64 = entries.iter().filter(|e| e.section == Section::Data).map(|e| e.data_bytes).sum();
        let post_data = entries.iter().filter(|e| e.section == Section::PostData).count() as u64;
        let by_id: std::collections::HashMap<i64, (Section, u64)> =
            entries.iter().map(|e| (e.dump_id, (e.section, e.data_bytes))).collect();
        let (mut data, mut indexes) = (None, None);
        let started = Instant::now();
        let (mut first_launch, mut last_data) = (None, None);
        let largest = entries.iter().filter(|e| e.section == Section::Data).max_by_key(|e| e.data_bytes);
        let (mut largest_started, mut largest_table) = (None, None);
        let mut kept = String::new();
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let item = |verb: &str| {
                let rest = line.strip_prefix("pg_restore: ")?.strip_prefix(verb)?;
                rest.split(' ').next()?.parse::<i64>().ok()
            };
            if let Some(id) = item("launching item ") {
                first_launch.get_or_insert_with(Instant::now);
                if largest.is_some_and(|e| e.dump_id == id) {
                    largest_started = Some(Instant::now());
                }
                let section = by_id.get(&id).map_or(Section::Unknown, |(s, _)| *s);
                if section == Section::Data && data.is_none() && data_bytes > 0 {
                    data = Some(self.progress.meter("restoring table data", Some(Total::Exact(data_bytes))));
                } else if section == Section::PostData && indexes.is_none() {
                    let total = Some(Total::Exact(post_data));
                    indexes = Some(self.progress.meter_in("building indexes and constraints", Unit::Items, total));
                }
            } else if let Some(id) = item("finished item ") {
                if let (Some(e), Some(at)) = (largest.filter(|e| e.dump_id == id), largest_started) {
                    // `finished item 3350 TABLE DATA big`: the table's name, without its schema.
                    let name = line.split_once(" TABLE DATA ").map_or("", |(_, tag)| tag).to_string();
                    let seconds = at.elapsed().as_secs_f64();
                    largest_table = Some(LargestTable { name, archive_bytes: e.data_bytes, seconds, sessions: 1 });
                }
                match by_id.get(&id) {
                    // Only entries with a data block: a SEQUENCE SET is in the data
                    // section too, but may be restored after the indexes.
                    Some((Section::Data, bytes)) if *bytes > 0 => {
                        last_data = Some(Instant::now());
                        data.iter().for_each(|m| m.add(*bytes));
                    }
                    Some((Section::PostData, _)) => indexes.iter().for_each(|m| m.add(1)),
                    _ => {}
                }
            } else if !is_verbose_chatter(&line) {
                kept.push_str(&line);
                kept.push('\n');
                if kept.len() > 64 * 1024 {
                    // Whole lines only: the oldest half goes.
                    let cut = kept[kept.len() - 32 * 1024..].find('\n').map_or(0, |n| kept.len() - 32 * 1024 + n + 1);
                    kept.drain(..cut);
                }
            }
        }
        let ended = Instant::now();
        let first_launch = first_launch.unwrap_or(ended);
        let last_data = last_data.unwrap_or(first_launch).max(first_launch);
        let phases = Phases {
            schema_seconds: (first_launch - started).as_secs_f64(),
            data_seconds: (last_data - first_launch).as_secs_f64(),
            indexes_seconds: (ended - last_data).as_secs_f64(),
            largest_table,
        };
        (kept, phases)
    }
}

/// pg_restore --verbose's lines about objects it creates and items it runs,
/// one per object: never part of an error.
fn is_verbose_chatter(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("pg_restore: ") else { return false };
    ["creating ", "processing ", "executing ", "setting owner", "launching item ", "finished item "]
        .iter()
        .any(|p| rest.starts_with(p))
}

/// Writes the archive's list (`pg_restore -l`) to `list` with the entries
/// `apart` commented out, for a [`Scope::AfterSchema`] run.
pub async fn list_leaving_out(
    tools: &PgTools,
    archive: &Path,
    apart: &HashSet<i64>,
    list: &Path,
) -> Result<(), EngineError> {
    let output = tokio::process::Command::new(tools.pg_restore())
        .arg("--list")
        .arg(archive)
        .output()
        .await
        .map_err(EngineError::io(format!("starting {} --list", tools.pg_restore().display())))?;
    if !output.status.success() {
        let detail = format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
        return Err(EngineError::Tool { tool: "pg_restore", detail });
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let kept = listed
        .lines()
        .map(|line| {
            // `3350; 0 16390 TABLE DATA public big_table app`
            let id = line.split_once(';').and_then(|(id, _)| id.trim().parse::<i64>().ok());
            if id.is_some_and(|id| apart.contains(&id)) { format!(";{line}\n") } else { format!("{line}\n") }
        })
        .collect::<String>();
    tokio::fs::write(list, kept).await.map_err(EngineError::io(format!("writing {}", list.display())))
}
