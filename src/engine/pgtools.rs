//! Finding `pg_dump` / `pg_restore` that can handle a given server.
//!
//! pg_dump refuses (or silently mis-dumps) servers newer than itself, so the
//! engine picks a client whose major version is at least the server's: the same
//! major when installed, else the newest. Several majors can be installed side
//! by side (Debian's `/usr/lib/postgresql/<major>/bin`, the operator image).

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

    /// Picks tools able to dump and restore a server of `server_major`.
    /// `ARTIFORTRESS_PG_BINDIR` pins a directory (still version-checked).
    pub async fn for_server(server_major: u32) -> Result<PgTools, EngineError> {
        let mut found = Vec::new();
        for dir in candidate_dirs() {
            if let Some(tools) = probe(&dir).await {
                found.push(tools);
            }
        }
        choose(found, server_major)
    }
}

fn choose(mut found: Vec<PgTools>, server_major: u32) -> Result<PgTools, EngineError> {
    found.sort_by_key(|t| t.major);
    found.dedup_by_key(|t| t.major);
    let fits = |t: &&PgTools| t.major >= server_major;
    if let Some(exact) = found.iter().find(|t| t.major == server_major) {
        return Ok(exact.clone());
    }
    if let Some(newer) = found.iter().filter(fits).max_by_key(|t| t.major) {
        return Ok(newer.clone());
    }
    let seen = if found.is_empty() {
        "none found".to_string()
    } else {
        found.iter().map(|t| format!("{} in {}", t.major, t.bindir.display())).collect::<Vec<_>>().join(", ")
    };
    Err(EngineError::Config(format!(
        "no pg_dump/pg_restore for PostgreSQL {server_major} or newer (installed: {seen}); \
         install the PostgreSQL {server_major} client tools or set ARTIFORTRESS_PG_BINDIR"
    )))
}

fn candidate_dirs() -> Vec<PathBuf> {
    if let Ok(dir) = std::env::var("ARTIFORTRESS_PG_BINDIR") {
        return vec![PathBuf::from(dir)];
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

/// `pg_dump (PostgreSQL) 15.18 (Debian …)` → 15; `9.6.24` → 9.
pub fn parse_major(version_output: &str) -> Option<u32> {
    let number = version_output.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major: String = number.chars().take_while(char::is_ascii_digit).collect();
    major.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(major: u32) -> PgTools {
        PgTools { bindir: PathBuf::from(format!("/pg/{major}/bin")), major, version: format!("pg_dump {major}.1") }
    }

    #[test]
    fn major_versions_parse() {
        assert_eq!(parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn the_same_major_wins_then_the_newest_newer_one() {
        assert_eq!(choose(vec![tools(14), tools(15), tools(16)], 15).unwrap().major, 15);
        assert_eq!(choose(vec![tools(13), tools(16), tools(17)], 15).unwrap().major, 17);
    }

    #[test]
    fn an_older_client_is_refused_with_what_to_install() {
        let err = choose(vec![tools(13), tools(14)], 15).unwrap_err().to_string();
        assert!(err.contains("PostgreSQL 15 or newer") && err.contains("13 in /pg/13/bin"), "{err}");
        assert!(err.contains("install the PostgreSQL 15 client tools"), "{err}");
    }
}
