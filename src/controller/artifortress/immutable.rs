//! `BackupsImmutable`: whether the newest good backup is locked against
//! deletion (S3 Object Lock), until when, and whether the backup bucket
//! enforces locks at all — the protection really in force, read from the
//! store, not assumed from the spec.

use kube::ResourceExt;

use super::{Conditions, jobs};
use crate::api::artifortress::Artifortress;
use crate::api::backup::{Backup, BackupPhase};
use crate::controller::{Context, Error};
use crate::engine::catalog;
use crate::store::Versioning;

pub(super) async fn record_immutability(
    ctx: &Context,
    af: &Artifortress,
    conditions: &mut Conditions,
    backups: &[Backup],
) -> Result<(), Error> {
    let asked = jobs::backup_storage(&af.spec).object_lock.is_some();
    let newest = backups
        .iter()
        .filter(|b| b.spec.artifortress_ref.name == af.name_any())
        .filter(|b| b.status.as_ref().is_some_and(|s| s.phase == Some(BackupPhase::Completed)))
        .max_by_key(|b| b.status.as_ref().and_then(|s| s.completed_at));
    let (ns, installation) = (af.namespace().unwrap_or_default(), af.name_any());
    let url = jobs::backup_store_url(&af.spec, &installation);
    let unknown = |conditions: &mut Conditions, e: String| {
        let message = format!("the backup bucket's Object Lock could not be read: {e}");
        conditions.set("BackupsImmutable", false, "Unknown", message);
    };
    let store = match ctx.backup_store(&ns, &af.spec, &url).await {
        Ok(store) => store,
        Err(e) => {
            unknown(conditions, e.to_string());
            return Ok(());
        }
    };
    let enforced = match store.versioning().await {
        Ok(Versioning::Enabled { object_lock: true }) => true,
        Ok(_) => false,
        Err(e) => {
            unknown(conditions, e.to_string());
            return Ok(());
        }
    };
    if !asked && !enforced {
        let message = "backups can be deleted by anyone holding the operator's storage credentials: the backup bucket has no Object Lock (set backupStorage.objectLock on a bucket created with Object Lock)";
        conditions.set("BackupsImmutable", false, "NotLocked", message.into());
        return Ok(());
    }
    if asked && !enforced {
        let message = format!(
            "backupStorage.objectLock is set but bucket {} has no Object Lock: backups are refused until it has",
            jobs::backup_storage(&af.spec).bucket
        );
        conditions.set("BackupsImmutable", false, "BucketWithoutObjectLock", message);
        return Ok(());
    }
    let Some(newest) = newest else {
        conditions.set(
            "BackupsImmutable",
            false,
            "NoBackup",
            "the bucket enforces Object Lock; no backup is complete yet".into(),
        );
        return Ok(());
    };
    match catalog::locked_until(store.as_ref(), &newest.name_any()).await {
        Err(e) => unknown(conditions, e.to_string()),
        Ok(Some(until)) => conditions.set(
            "BackupsImmutable",
            true,
            "Locked",
            format!("the newest backup {} is locked until {} (the bucket enforces Object Lock)", newest.name_any(), until.to_rfc3339()),
        ),
        Ok(None) => conditions.set(
            "BackupsImmutable",
            false,
            "NotLocked",
            format!("the newest backup {} has no running lock although the bucket enforces Object Lock (written before objectLock was set, or its lock expired)", newest.name_any()),
        ),
    }
    Ok(())
}
