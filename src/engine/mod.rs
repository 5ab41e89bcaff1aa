//! The recovery engine: consistent backups into a store, verified restores,
//! parity, RPO/RTO verdicts and reports. It knows PostgreSQL and object storage
//! and nothing of Kubernetes; the Jobs and the local commands both call it.

pub mod archive_index;
pub mod backup;
pub mod catalog;
pub mod checks;
pub mod drill;
pub mod encryption;
pub mod history;
mod inspect;
pub mod layout;
pub mod manifest;
pub mod objectives;
pub mod parity;
mod pg_restore;
pub mod pgtools;
pub mod physical;
pub mod pinned;
pub mod progress;
pub mod report;
pub mod restore;
pub mod scratch;
mod split_copy;
pub mod tuning;

/// The stored drill formats, owned (like the manifest) by the engine.
pub use artifortress_formats::{record, verdict};

use crate::db::DbError;
use crate::store::StoreError;

/// Why an engine step failed. `is_usage()` separates mistakes in what was asked
/// (exit code 2) from operations that failed (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input or environment: fix the command or the installation.
    #[error("{0}")]
    Config(String),
    /// A safety rule refused the operation before anything was touched;
    /// `reason` is the machine-readable name drills report (`TargetNotScratch`, …).
    #[error("refused: {message}")]
    Refused { reason: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored backup is not what its manifest describes.
    #[error("backup {backup} is corrupt: {detail}; nothing was restored — restore another backup")]
    Corrupt { backup: String, detail: String },
    /// A PostgreSQL client tool failed.
    #[error("{tool} failed: {detail}")]
    Tool { tool: &'static str, detail: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl EngineError {
    pub fn is_usage(&self) -> bool {
        matches!(self, EngineError::Config(_) | EngineError::Refused { .. })
            || matches!(self, EngineError::Db(DbError::InvalidUrl { .. }))
            || matches!(self, EngineError::Store(StoreError::InvalidUrl { .. }))
    }

    /// The machine-readable reason a drill reports for this error, when it has
    /// one of its own (a refusal, a corrupt backup); otherwise the step decides.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            EngineError::Refused { reason, .. } => Some(reason),
            EngineError::Corrupt { .. } => Some("BackupCorrupt"),
            EngineError::Config(_) => Some("InvalidRequest"),
            _ => None,
        }
    }

    fn refused(reason: &'static str, message: String) -> EngineError {
        EngineError::Refused { reason, message }
    }

    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let context = context.into();
        move |source| EngineError::Io { context, source }
    }
}

/// A backup name must be usable as an object-key segment and a Kubernetes name.
pub fn validate_backup_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(EngineError::Config(format!(
            "invalid backup name {name:?}: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        )))
    }
}
