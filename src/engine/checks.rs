//! Checks of a restored database beyond parity, brought by whoever knows the
//! application in it. The engine knows PostgreSQL and object storage, not the
//! application: the local commands and the drill Jobs pass the application's
//! checks in (for Artifortress: its blobs against the bucket, its schema level,
//! what going back to the restore point would undo).

use crate::db::DatabaseUrl;

use super::EngineError;
use super::progress::Progress;
use super::verdict::{ApplicationCheck, BlobCheck};

/// What the checks found: stored in the verdict and reported.
#[derive(Default)]
pub struct CheckResult {
    pub blobs: Option<BlobCheck>,
    pub application: Option<ApplicationCheck>,
    /// Each fails the drill: (machine-readable reason, message).
    pub failures: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Checks run on a restored database once it is verified (logical drills) or
/// promoted (physical drills). An error is reported as the failure of the check.
#[async_trait::async_trait]
pub trait RestoredCheck: Send + Sync {
    async fn check(&self, restored: &DatabaseUrl, progress: &Progress) -> Result<CheckResult, EngineError>;
}
