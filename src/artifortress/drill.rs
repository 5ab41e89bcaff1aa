//! What a drill checks in a restored Artifortress database beyond parity: the
//! schema level it records, its blob rows against the installation's bucket,
//! and, given the live database, what restoring it would take back.

use super::blobs::{self, DigestCheck};
use super::{schema, takeback};
use crate::db::DatabaseUrl;
use crate::engine::EngineError;
use crate::engine::checks::{CheckResult, RestoredCheck};
use crate::engine::progress::Progress;
use crate::engine::verdict::ApplicationCheck;
use crate::store::BackupStore;

/// The checks of one drill.
pub struct ArtifortressCheck {
    /// The installation's blob bucket; without it, no blob check.
    pub blob_store: Option<Box<dyn BackupStore>>,
    pub digests: DigestCheck,
    /// Missing or corrupt blobs are warnings instead of failures.
    pub blob_warn_only: bool,
    /// The live database, to classify missing blobs and list what a restore takes back.
    pub live: Option<DatabaseUrl>,
}

#[async_trait::async_trait]
impl RestoredCheck for ArtifortressCheck {
    async fn check(&self, restored: &DatabaseUrl, progress: &Progress) -> Result<CheckResult, EngineError> {
        let mut result = CheckResult::default();
        let shape = schema::detect_at(restored).await?;
        if shape.is_foreign() && self.blob_store.is_none() {
            // Another application's database: nothing of Artifortress to check.
            return Ok(result);
        }
        let mut application =
            ApplicationCheck { name: "Artifortress".into(), schema_level: shape.level.clone(), ..Default::default() };
        application.notes.push(format!("restored schema: {}", shape.summary()));
        if let Some(store) = &self.blob_store {
            match blobs::check(restored, store.as_ref(), self.live.as_ref(), self.digests, false, progress).await {
                Ok(check) => {
                    let (failures, warnings) = blobs::findings(&check);
                    result.warnings.extend(warnings);
                    for (reason, message) in failures {
                        if self.blob_warn_only {
                            result.warnings.push(message);
                        } else {
                            result.failures.push((reason, message));
                        }
                    }
                    result.blobs = Some(check);
                }
                // A blobs table that cannot be read fails the check: never a silent skip.
                Err(e) => result.failures.push(("BlobsUnreadable".into(), format!("blobs: {e}"))),
            }
        }
        match &self.live {
            Some(live) if !shape.is_foreign() => match takeback::compare(restored, live).await {
                Ok(items) => {
                    let count = |kind: &str| items.iter().filter(|i| i.kind == kind).count();
                    let (tokens, holds, runs) = (
                        count(takeback::TOKEN_REVOCATION),
                        count(takeback::PROTECTION),
                        count(takeback::GC_RUN_INCOMPLETE),
                    );
                    application.notes.push(format!(
                        "compared with the live database {live}: a restore would make {tokens} revoked token(s) valid again, remove {holds} hold(s) placed since, and leave {runs} GC run(s) incomplete"
                    ));
                    if tokens + holds + runs > 0 {
                        result.warnings.push(format!(
                            "restoring this backup would undo {tokens} token revocation(s) and {holds} hold(s) made since, and leave {runs} GC run(s) incomplete: restore with --reapply-from (docs/runbooks/backup-restore.md#after-a-restore-re-apply-security-decisions)"
                        ));
                    }
                    application.take_back = items;
                }
                Err(e) => result.warnings.push(format!("comparing with the live database {live} failed: {e}")),
            },
            Some(_) => {}
            None => application
                .notes
                .push("not compared with a live database: what a restore would take back is not known".into()),
        }
        result.application = Some(application);
        Ok(result)
    }
}
