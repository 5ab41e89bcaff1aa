//! What a `Backup` resource is and where its data lives: how the operator
//! creates one (for a schedule's run, a fresh drill, or a backup found in the
//! bucket), the labels that say whose it is, when it is finished, and its
//! location in the store. The backup, schedule and drill controllers and the
//! catalog resync all build on these; none of them imports another for them.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use crate::api::artifortress::Artifortress;
use crate::api::backup::{Backup, BackupPhase, BackupSpec};
use crate::api::backup_schedule::BackupTemplate;
use crate::api::common::ArtifortressRef;

/// Label on the backups and drills a schedule creates.
pub const LABEL_SCHEDULE: &str = "artifortress.io/schedule";

/// A `Backup` as the operator creates it — for a schedule's run, a fresh drill,
/// or a backup found in the bucket; `meta` says which.
pub fn backup_resource(meta: ObjectMeta, installation: &str, template: BackupTemplate) -> Backup {
    Backup {
        metadata: meta,
        spec: BackupSpec {
            artifortress_ref: ArtifortressRef { name: installation.to_string() },
            method: template.method,
            checkpoint: template.checkpoint,
            verify: template.verify,
            tables: template.tables,
            deletion_policy: Default::default(),
            job_template: template.job_template,
            object_lock: None,
        },
        status: None,
    }
}

/// The labels a backup's manifest keeps, so a `Backup` recreated from the
/// catalog belongs where it did (its schedule's retention prunes it).
pub fn catalog_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.iter().filter(|(k, _)| *k == LABEL_SCHEDULE).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether an archiver streams the installation's WAL into its backup store:
/// the operator's (`spec.walArchive`), or one run by hand whose status it reads.
pub fn wal_archived(af: &Artifortress) -> bool {
    af.spec.wal_archive.is_some() || af.status.as_ref().is_some_and(|s| s.wal.is_some())
}

/// Completed or failed: its Job has nothing more to do.
pub fn is_finished(b: &Backup) -> bool {
    matches!(b.status.as_ref().and_then(|s| s.phase), Some(BackupPhase::Completed | BackupPhase::Failed))
}

/// `s3://bucket/prefix/installation/backup/`: the store URL without its
/// connection parameters, plus the backup's directory.
pub fn backup_location(store_url: &str, backup: &str) -> String {
    let mut url = url::Url::parse(store_url).expect("built by backup_store_url");
    url.set_query(None);
    format!("{}/{backup}/", url.as_str().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn locations_drop_the_connection_parameters() {
        let url = "s3://backups/prod/production?endpoint=http%3A%2F%2Fminio%3A9000&region=us-east-1&path_style=true";
        assert_eq!(super::backup_location(url, "nightly-1"), "s3://backups/prod/production/nightly-1/");
    }
}
