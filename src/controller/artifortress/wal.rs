//! What the installation says of its physical path: whether the source can
//! serve it (`PhysicalPathAvailable`) and whether WAL is being archived
//! (`WalArchiving`, `status.wal`), from the archiver's status in the store.

use std::time::Duration;

use kube::ResourceExt;

use super::{Conditions, jobs};
use crate::api::artifortress::{Artifortress, WalArchiveStatus};
use crate::controller::Context;
use crate::engine::physical::wal::WalStatus;
use crate::engine::progress::{human_bytes, human_duration};
use crate::metrics::InstallationLabels;
use crate::store::BackupStore;

/// `PhysicalPathAvailable`: whether base backups and WAL archiving can work on
/// this source; when not, why, and that the logical path goes on.
pub(super) fn record_physical_path(conditions: &mut Conditions, unavailable: Option<&str>) {
    match unavailable {
        None => conditions.set(
            "PhysicalPathAvailable",
            true,
            "ReplicationAllowed",
            "the role may stream WAL and the server writes WAL a replica can replay".into(),
        ),
        Some(why) => conditions.set(
            "PhysicalPathAvailable",
            false,
            "ReplicationUnavailable",
            format!("physical base backups and WAL archiving are unavailable: {why}; logical backups and drills go on"),
        ),
    }
}

/// How long the WAL archiver may be silent (it writes its status every 10 s
/// by default) before `WalArchiving` says it is not archiving.
pub const WAL_SILENT_AFTER: Duration = Duration::from_secs(60);

/// `WalArchiving` and `status.wal` from the WAL archiver's status in the backup
/// store; nothing when no archiver ever ran for this installation. A store that
/// cannot be read is logged (the storage probe reports it).
pub(super) async fn record_wal_archiver(
    ctx: &Context,
    af: &Artifortress,
    conditions: &mut Conditions,
    store: &dyn BackupStore,
) {
    let name = af.name_any();
    let labels = InstallationLabels { installation: name.clone() };
    let status = match crate::engine::physical::wal::newest_status(store).await {
        Ok(Some(status)) => status,
        Ok(None) => {
            // No archiver ever ran: the age is unknown (NaN, which no alert
            // threshold compares true with), not missing.
            ctx.metrics.wal_status_age.get_or_create(&labels).set(f64::NAN);
            ctx.metrics.wal_stalled.get_or_create(&labels).set(0);
            if af.spec.wal_archive.is_some() {
                let deployment = jobs::job_name(crate::controller::wal_archiver::STEP, &name);
                let message = format!(
                    "the WAL archiver (Deployment {deployment}) has stored no status yet: it is starting, or cannot reach the source or the backup store (kubectl logs deployment/{deployment})"
                );
                conditions.set("WalArchiving", false, "NoStatusYet", message);
            }
            return;
        }
        Err(e) => {
            tracing::warn!(installation = %name, error = %e, "reading the WAL archiver's status failed");
            return;
        }
    };
    let age = (conditions.now - status.updated_at).to_std().unwrap_or_default();
    ctx.metrics.wal_status_age.get_or_create(&labels).set(age.as_secs_f64());
    ctx.metrics.wal_retained_bytes.get_or_create(&labels).set(i64::try_from(status.retained_bytes).unwrap_or(i64::MAX));
    let (ok, reason, message) = wal_archiving(&status, age);
    ctx.metrics.wal_stalled.get_or_create(&labels).set(i64::from(reason == "ArchiverStalled"));
    conditions.set("WalArchiving", ok, reason, message);
    conditions.status.wal = Some(WalArchiveStatus {
        slot: status.slot,
        updated_at: status.updated_at,
        retained_bytes: status.retained_bytes,
        last_segment: status.last_segment,
        last_heartbeat_at: status.last_heartbeat_at,
        stopped: status.stopped,
        received_lsn: status.received_lsn.map(|l| l.to_string()),
        server_lsn: status.server_lsn.map(|l| l.to_string()),
        stalled: status.stalled,
        last_rejected: status.last_rejected,
    });
}

/// `WalArchiving` from the archiver's status and its age: (ok, reason, message).
pub(super) fn wal_archiving(status: &WalStatus, age: Duration) -> (bool, &'static str, String) {
    let retained = human_bytes(status.retained_bytes);
    match (&status.stopped, age > WAL_SILENT_AFTER) {
        (Some(why), _) if why == "stopped" => (
            false,
            "ArchiverStopped",
            format!(
                "the WAL archiver of slot {} was stopped at {}: no WAL is archived, the RPO grows with time and the slot keeps WAL on the source ({retained} then); start it again",
                status.slot,
                status.updated_at.to_rfc3339()
            ),
        ),
        (Some(why), _) => (false, "ArchiverFailed", format!("the WAL archiver stopped: {why}")),
        (None, true) => (
            false,
            "ArchiverSilent",
            format!(
                "no status from the WAL archiver of slot {} for {} (it writes one every 10 s by default): it is down or cannot write to the backup store; WAL may not be archived and the slot keeps WAL on the source ({retained} at its last status)",
                status.slot,
                human_duration(age.as_secs_f64())
            ),
        ),
        (None, false) if status.stalled.is_some() => (
            false,
            "ArchiverStalled",
            format!(
                "the WAL archiver of slot {} runs but no WAL arrives from the source: {}; the archive falls behind and the slot keeps WAL on the source ({retained})",
                status.slot,
                status.stalled.as_deref().unwrap_or_default()
            ),
        ),
        (None, false) => (
            true,
            "Streaming",
            format!(
                "slot {} holds back {retained} on the source; newest stored segment {}",
                status.slot,
                status.last_segment.as_deref().unwrap_or("none yet")
            ),
        ),
    }
}
