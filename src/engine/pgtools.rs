//! Choosing `pg_dump` / `pg_restore` for a server, so that no combination that
//! cannot work is ever tried.
//!
//! The rules (PostgreSQL's own, checked on 14–18):
//! - pg_dump dumps servers of its own major and older; it refuses newer ones.
//! - Each pg_dump writes one archive version (pg_dump 12–15: 1.14, 16: 1.15,
//!   17–18: 1.16), and pg_restore reads versions up to its own.
//! - pg_restore 17 and newer send `SET transaction_timeout`, which servers up to
//!   16 reject: restoring into 14–16 needs a pg_restore of 16 or older.
//! - Restoring into an older major than the source (a downgrade) is refused.
//!
//! So a backup uses the source's own major when installed, else the oldest newer
//! one (its archive can then be restored into the source's major with the most
//! pg_restore versions); a restore uses the target's own major when it qualifies,
//! else the newest qualifying one below it, else the oldest above. Several
//! majors are installed side by side (Debian's `/usr/lib/postgresql/<major>/bin`,
//! the operator image, or a list in `ARTIFORTRESS_PG_BINDIR`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::EngineError;
use crate::db::DatabaseUrl;

/// Client tools of one PostgreSQL major version.
#[derive(Clone, Debug)]
pub struct PgTools {
    pub bindir: PathBuf,
    pub major: u32,
    /// `pg_dump --version` output, e.g. `pg_dump (PostgreSQL) 15.18`.
    pub version: String,
}

impl PgTools {
    pub fn pg_dump(&self) -> PathBuf {
        self.bindir.join("pg_dump")
    }

    pub fn pg_restore(&self) -> PathBuf {
        self.bindir.join("pg_restore")
    }

    /// A `pg_dump`/`pg_restore` invocation connected to `url` through libpq
    /// environment variables (the password never appears in argv), with no
    /// stdin, stderr captured, and killed if dropped.
    pub fn command(&self, program: &Path, url: &DatabaseUrl) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .arg("--no-password")
            .envs(url.libpq_env())
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// The newest server major pg_restore can restore into before it sends
/// `SET transaction_timeout` (17+), which older servers reject.
const LAST_MAJOR_WITHOUT_TRANSACTION_TIMEOUT: u32 = 16;

/// The custom-archive minor version (1.x) pg_dump of `major` writes.
pub fn archive_version_written_by(dump_major: u32) -> u32 {
    match dump_major {
        ..=10 => 13,
        11 => 13,
        12..=15 => 14,
        16 => 15,
        _ => 16,
    }
}

/// The oldest pg_restore major that reads archive version 1.`minor`.
fn oldest_reader(minor: u32) -> u32 {
    match minor {
        ..=13 => 11,
        14 => 12,
        15 => 16,
        _ => 17,
    }
}

/// Every installed set of client tools, one per major.
#[derive(Clone, Debug)]
pub struct Toolset(Vec<PgTools>);

fn unsupported(message: String) -> EngineError {
    EngineError::refused("UnsupportedVersions", message)
}

impl Toolset {
    /// The tools installed on this machine (see [`candidate_dirs`]).
    pub async fn installed() -> Toolset {
        let mut found = Vec::new();
        for dir in candidate_dirs() {
            if let Some(tools) = probe(&dir).await {
                found.push(tools);
            }
        }
        Toolset::new(found)
    }

    pub fn new(mut found: Vec<PgTools>) -> Toolset {
        found.sort_by_key(|t| t.major);
        found.dedup_by_key(|t| t.major);
        Toolset(found)
    }

    pub fn all(&self) -> &[PgTools] {
        &self.0
    }

    fn majors(&self) -> String {
        if self.0.is_empty() {
            return "none found".into();
        }
        self.0.iter().map(|t| format!("{} in {}", t.major, t.bindir.display())).collect::<Vec<_>>().join(", ")
    }

    /// The pg_dump for a source server of `server_major`.
    pub fn for_backup(&self, server_major: u32) -> Result<&PgTools, EngineError> {
        self.0.iter().find(|t| t.major >= server_major).ok_or_else(|| {
            unsupported(format!(
                "no pg_dump for PostgreSQL {server_major} or newer (installed: {}); install the PostgreSQL {server_major} client tools or list their bin directory in ARTIFORTRESS_PG_BINDIR",
                self.majors()
            ))
        })
    }

    /// The pg_restore for an archive written by pg_dump `dump_major` from a
    /// server of `source_major`, into a server of `target_major`.
    pub fn for_restore(&self, dump_major: u32, source_major: u32, target_major: u32) -> Result<&PgTools, EngineError> {
        if target_major < source_major {
            return Err(unsupported(format!(
                "the backup is of PostgreSQL {source_major} and the target server runs PostgreSQL {target_major}: restoring into an older major (a downgrade) is not possible; restore into PostgreSQL {source_major} or newer"
            )));
        }
        let minor = archive_version_written_by(dump_major);
        let lowest = oldest_reader(minor);
        let highest = if target_major <= LAST_MAJOR_WITHOUT_TRANSACTION_TIMEOUT {
            LAST_MAJOR_WITHOUT_TRANSACTION_TIMEOUT
        } else {
            u32::MAX
        };
        let fits: Vec<&PgTools> = self.0.iter().filter(|t| (lowest..=highest).contains(&t.major)).collect();
        let chosen = fits
            .iter()
            .find(|t| t.major == target_major)
            .or_else(|| fits.iter().rev().find(|t| t.major < target_major))
            .or_else(|| fits.iter().find(|t| t.major > target_major));
        if let Some(tools) = chosen {
            return Ok(tools);
        }
        if lowest > highest {
            return Err(unsupported(format!(
                "the backup was written by pg_dump {dump_major} (archive format 1.{minor}), which only pg_restore {lowest} or newer reads, and those cannot restore into PostgreSQL {target_major} (they send transaction_timeout, which servers up to {LAST_MAJOR_WITHOUT_TRANSACTION_TIMEOUT} reject); take the backup with the client tools of PostgreSQL {source_major} to restore it into {target_major}, or restore into PostgreSQL 17 or newer"
            )));
        }
        let wanted = if target_major <= highest && target_major >= lowest { target_major } else { lowest };
        let range = if highest == u32::MAX { format!("{lowest} or newer") } else { format!("{lowest} to {highest}") };
        Err(unsupported(format!(
            "no installed pg_restore can restore a backup written by pg_dump {dump_major} (archive format 1.{minor}) into PostgreSQL {target_major}: that needs pg_restore {range} (installed: {}); install the PostgreSQL {wanted} client tools or list their bin directory in ARTIFORTRESS_PG_BINDIR",
            self.majors()
        )))
    }
}

/// The supported server majors.
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 14..=18;

/// What the installed tools can do, as a table for people (`tools` command):
/// for each server major, the pg_dump a backup uses and, for a backup of each
/// source major taken with these tools, the pg_restore that restores it there.
pub fn support_table(tools: &Toolset) -> String {
    let mut out = String::from("| server | back up with |");
    for source in SUPPORTED_MAJORS {
        out.push_str(&format!(" restore a backup of {source} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(SUPPORTED_MAJORS.count()));
    for target in SUPPORTED_MAJORS {
        let dump = tools.for_backup(target).map_or("none".to_string(), |t| format!("pg_dump {}", t.major));
        out.push_str(&format!("\n| PostgreSQL {target} | {dump} |"));
        for source in SUPPORTED_MAJORS {
            let cell = match tools.for_backup(source) {
                _ if source > target => "downgrade".to_string(),
                Err(_) => "no pg_dump".to_string(),
                Ok(d) => match tools.for_restore(d.major, source, target) {
                    Ok(r) if source < target => format!("pg_restore {} (upgrade)", r.major),
                    Ok(r) => format!("pg_restore {}", r.major),
                    Err(_) => "none".to_string(),
                },
            };
            out.push_str(&format!(" {cell} |"));
        }
    }
    out.push('\n');
    out
}

/// Where client tools are looked for: `ARTIFORTRESS_PG_BINDIR` (one directory
/// or a `:`-separated list) when set, else every `/usr/lib/postgresql/*/bin`,
/// `/usr/local/lib/postgresql/*/bin` and `PATH`.
pub(super) fn candidate_dirs() -> Vec<PathBuf> {
    if let Some(dirs) = std::env::var_os("ARTIFORTRESS_PG_BINDIR") {
        return std::env::split_paths(&dirs).collect();
    }
    let mut dirs = Vec::new();
    for root in ["/usr/lib/postgresql", "/usr/local/lib/postgresql"] {
        if let Ok(entries) = std::fs::read_dir(root) {
            dirs.extend(entries.flatten().map(|e| e.path().join("bin")));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

async fn probe(dir: &Path) -> Option<PgTools> {
    let pg_dump = dir.join("pg_dump");
    if !dir.join("pg_restore").exists() || !pg_dump.exists() {
        return None;
    }
    let out = tokio::process::Command::new(&pg_dump).arg("--version").output().await.ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = parse_major(&version)?;
    // A PATH entry may be a symlink farm into a versioned bindir; keep the real one.
    let bindir = std::fs::canonicalize(&pg_dump).ok()?.parent()?.to_path_buf();
    Some(PgTools { bindir, major, version })
}

/// The last `limit` bytes of a child's stderr (where the error is).
pub async fn read_tail(mut stream: impl AsyncRead + Unpin, limit: usize) -> String {
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > limit {
            tail.drain(..tail.len() - limit);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// What of a failed tool's stderr may leave the Job's log (status, Events,
/// verdicts, reports): the object it was working on (`from TOC entry …`), the
/// first error line and the DDL it ran — never `DETAIL`, `CONTEXT`, `HINT` or
/// a data command, which quote row values, and with the values PostgreSQL
/// puts into an error line itself (`Key (…)=(…)`, `Failing row contains (…)`,
/// `invalid input syntax for type …: "…"`) cut out. The whole text goes to
/// this process's own log (the Job's), where it is needed to debug.
pub fn failure_summary(tool: &str, stderr: &str) -> String {
    tracing::error!(tool, stderr = stderr.trim(), "the tool failed; its whole error output");
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let is_error = |l: &str| l.contains("error:") || l.starts_with("ERROR:") || l.starts_with("FATAL:");
    let Some(first_error) = lines.iter().position(|l| is_error(l)) else {
        return lines.first().map(|l| redact_values(l)).unwrap_or_else(|| "no error output".into());
    };
    let mut kept = Vec::new();
    if let Some(object) = lines[..first_error].iter().rev().find(|l| l.contains("from TOC entry")) {
        kept.push(redact_values(object));
    }
    kept.push(redact_values(lines[first_error]));
    let ddl = lines[first_error + 1..]
        .iter()
        .take_while(|l| !is_error(l))
        .filter_map(|l| l.strip_prefix("Command was:").map(str::trim))
        .find(|c| ["CREATE ", "ALTER "].iter().any(|p| c.starts_with(p)));
    if let Some(ddl) = ddl {
        kept.push(format!("command: {}", redact_values(ddl)));
    }
    let summary = kept.join("; ");
    match summary.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &summary[..cut]),
        None => summary,
    }
}

/// Cuts the row values PostgreSQL quotes inside an error line.
fn redact_values(line: &str) -> String {
    let mut out = line.to_string();
    // `Key (email)=(a@example.com) already exists` and `Failing row contains (1, x)`.
    for marker in [")=(", "Failing row contains ("] {
        if let Some(at) = out.find(marker) {
            let start = at + marker.len();
            let end = matching_paren(&out[start..]).map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "…");
        }
    }
    // `invalid input syntax for type integer: "abc"` / `invalid input value for enum mood: "x"`.
    if out.contains("invalid input")
        && let Some(colon) = out.rfind(": \"")
    {
        out.replace_range(colon + 2.., "\"…\"");
    }
    out
}

/// The index of the `)` closing an opened `(`, counting nested pairs.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `pg_dump (PostgreSQL) 15.18 (Debian …)` → 15; `9.6.24` → 9.
pub fn parse_major(version_output: &str) -> Option<u32> {
    let number = version_output.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major: String = number.chars().take_while(char::is_ascii_digit).collect();
    major.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failure_summary_names_the_object_and_the_error_and_no_row_value() {
        let stderr = "pg_restore: from TOC entry 3383; 1259 16397 INDEX accounts_email_key owner
pg_restore: error: could not execute query: ERROR:  could not create unique index \"accounts_email_key\"
DETAIL:  Key (lower(email))=(alice@example.com) is duplicated.
Command was: CREATE UNIQUE INDEX accounts_email_key ON public.accounts USING btree (lower(email));
";
        let s = super::failure_summary("pg_restore", stderr);
        assert!(s.contains("INDEX accounts_email_key") && s.contains("ON public.accounts"), "{s}");
        assert!(!s.contains("alice") && !s.contains("DETAIL"), "{s}");
        let copy = "pg_restore: from TOC entry 3390; 0 16390 TABLE DATA accounts owner
pg_restore: error: COPY failed for table \"accounts\": ERROR:  invalid input syntax for type integer: \"secret-42\"
CONTEXT:  COPY accounts, line 1, column id: \"secret-42\"
";
        let s = super::failure_summary("pg_restore", copy);
        assert!(s.contains("TABLE DATA accounts") && s.contains("type integer"), "{s}");
        assert!(!s.contains("secret-42"), "{s}");
        let check = "ERROR:  new row violates check constraint \"c\"\nDETAIL:  Failing row contains (7, bob).";
        assert!(!super::failure_summary("psql", check).contains("bob"));
        assert_eq!(super::redact_values("Key (a, (b))=(1, (2)) exists"), "Key (a, (b))=(…) exists");
    }

    use super::*;

    fn tools(majors: &[u32]) -> Toolset {
        Toolset::new(
            majors
                .iter()
                .map(|&m| PgTools {
                    bindir: PathBuf::from(format!("/pg/{m}/bin")),
                    major: m,
                    version: format!("{m}.1"),
                })
                .collect(),
        )
    }

    #[test]
    fn major_versions_parse() {
        assert_eq!(parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn a_backup_uses_the_source_major_else_the_oldest_newer_one() {
        assert_eq!(tools(&[14, 15, 16]).for_backup(15).unwrap().major, 15);
        assert_eq!(
            tools(&[15, 16, 18]).for_backup(14).unwrap().major,
            15,
            "not 18: its archive would not restore into 14"
        );
        assert_eq!(tools(&[18]).for_backup(14).unwrap().major, 18, "only newer tools installed");
        let err = tools(&[14, 15]).for_backup(16).unwrap_err();
        assert_eq!(err.reason(), Some("UnsupportedVersions"));
        assert!(err.is_usage());
        let err = err.to_string();
        assert!(err.contains("PostgreSQL 16 or newer") && err.contains("15 in /pg/15/bin"), "{err}");
        assert!(err.contains("install the PostgreSQL 16 client tools"), "{err}");
    }

    /// Every (source, pg_dump, target) combination of 14–18 with the tools this
    /// project's test environment has (15, 16, 18): the pg_dump a backup would
    /// pick, then the pg_restore a restore picks, or why it refuses.
    #[test]
    fn every_combination_of_majors_14_to_18() {
        let installed = tools(&[15, 16, 18]);
        let mut table = Vec::new();
        for source in 14..=18 {
            let dump = installed.for_backup(source).unwrap().major;
            for target in 14..=18 {
                let choice = match installed.for_restore(dump, source, target) {
                    Ok(t) => t.major.to_string(),
                    Err(e) => {
                        assert_eq!(e.reason(), Some("UnsupportedVersions"), "{e}");
                        "-".into()
                    }
                };
                table.push(format!("{source}/{dump}->{target}:{choice}"));
            }
        }
        assert_eq!(
            table.join(" "),
            [
                // 14 is dumped with 15 (archive 1.14): 15 or 16 restore it into 14–16, 18 into 17–18.
                "14/15->14:15 14/15->15:15 14/15->16:16 14/15->17:16 14/15->18:18",
                "15/15->14:- 15/15->15:15 15/15->16:16 15/15->17:16 15/15->18:18",
                // archive 1.15 needs pg_restore 16+.
                "16/16->14:- 16/16->15:- 16/16->16:16 16/16->17:16 16/16->18:18",
                // 17 is dumped with 18 (archive 1.16): only pg_restore 17+ reads it.
                "17/18->14:- 17/18->15:- 17/18->16:- 17/18->17:18 17/18->18:18",
                "18/18->14:- 18/18->15:- 18/18->16:- 18/18->17:- 18/18->18:18",
            ]
            .join(" ")
        );
    }

    #[test]
    fn the_support_table_says_what_each_server_can_do() {
        let table = support_table(&tools(&[15, 16, 18]));
        assert!(table.contains("| PostgreSQL 14 | pg_dump 15 | pg_restore 15 | downgrade |"), "{table}");
        assert!(table.contains("| PostgreSQL 18 | pg_dump 18 | pg_restore 18 (upgrade) |"), "{table}");
        assert!(support_table(&tools(&[])).contains("| PostgreSQL 15 | none | no pg_dump |"));
    }

    #[test]
    fn a_downgrade_and_the_transaction_timeout_trap_are_refused_with_what_to_do() {
        let installed = tools(&[15, 16, 18]);
        let err = installed.for_restore(18, 18, 15).unwrap_err().to_string();
        assert!(err.contains("PostgreSQL 18") && err.contains("PostgreSQL 15") && err.contains("downgrade"), "{err}");
        // A 14 server dumped with pg_dump 18 (only 18 installed then): no pg_restore reads 1.16 and suits 14.
        let err = installed.for_restore(18, 14, 14).unwrap_err().to_string();
        assert!(err.contains("archive format 1.16") && err.contains("transaction_timeout"), "{err}");
        assert!(err.contains("client tools of PostgreSQL 14"), "{err}");
        // Only newer tools installed: 18 restores a 1.14 archive into 18, nothing into 14.
        let newer = tools(&[18]);
        assert_eq!(newer.for_restore(15, 15, 18).unwrap().major, 18);
        let err = newer.for_restore(15, 15, 15).unwrap_err().to_string();
        assert!(err.contains("pg_restore 12 to 16") && err.contains("install the PostgreSQL 15 client tools"), "{err}");
    }
}
