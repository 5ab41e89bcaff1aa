//! PostgreSQL's own programs for physical work. Streaming (pg_basebackup,
//! pg_receivewal) works with servers of the tools' major and older; replaying
//! WAL and checking a base (postgres, pg_ctl, pg_verifybackup, pg_waldump)
//! needs exactly the source's major, since WAL and data files differ between
//! majors.

use std::path::{Path, PathBuf};

use super::super::EngineError;
use super::super::pgtools::{candidate_dirs, parse_major};

#[derive(Clone, Debug)]
pub struct PhysicalTools {
    pub bindir: PathBuf,
    pub major: u32,
    /// e.g. `pg_basebackup (PostgreSQL) 15.18`.
    pub version: String,
}

impl PhysicalTools {
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bindir.join(program)
    }

    /// pg_basebackup and pg_receivewal for a source of `server_major`: that
    /// major's, else the oldest newer one.
    pub async fn for_streaming(server_major: u32) -> Result<PhysicalTools, EngineError> {
        let found = installed("pg_basebackup", &["pg_receivewal"]).await;
        found.iter().filter(|t| t.major >= server_major).min_by_key(|t| t.major).cloned().ok_or_else(|| {
            missing(format!("pg_basebackup and pg_receivewal of PostgreSQL {server_major} or newer"), &found)
        })
    }

    /// The server programs of exactly `major`, for a scratch instance.
    pub async fn for_server(major: u32) -> Result<PhysicalTools, EngineError> {
        let found = installed("postgres", &["pg_ctl", "pg_verifybackup", "pg_waldump"]).await;
        found.iter().find(|t| t.major == major).cloned().ok_or_else(|| {
            missing(format!("the PostgreSQL {major} server (postgres, pg_ctl, pg_verifybackup, pg_waldump)"), &found)
        })
    }
}

fn missing(what: String, found: &[PhysicalTools]) -> EngineError {
    let have = if found.is_empty() {
        "none found".to_string()
    } else {
        found.iter().map(|t| format!("{} in {}", t.major, t.bindir.display())).collect::<Vec<_>>().join(", ")
    };
    EngineError::refused(
        "UnsupportedVersions",
        format!(
            "{what} is not installed here (have: {have}); install it or list its bin directory in ARTIFORTRESS_PG_BINDIR"
        ),
    )
}

/// Every directory with `program` and `companions`, one per major.
async fn installed(program: &str, companions: &[&str]) -> Vec<PhysicalTools> {
    let mut found: Vec<PhysicalTools> = Vec::new();
    for dir in candidate_dirs() {
        if let Some(tools) = probe(&dir, program, companions).await
            && !found.iter().any(|t| t.major == tools.major)
        {
            found.push(tools);
        }
    }
    found
}

async fn probe(dir: &Path, program: &str, companions: &[&str]) -> Option<PhysicalTools> {
    let path = dir.join(program);
    if !path.exists() || companions.iter().any(|c| !dir.join(c).exists()) {
        return None;
    }
    let out = tokio::process::Command::new(&path).arg("--version").output().await.ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = parse_major(&version)?;
    let bindir = std::fs::canonicalize(&path).ok()?.parent()?.to_path_buf();
    Some(PhysicalTools { bindir, major, version })
}
