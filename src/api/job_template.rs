//! `jobTemplate`: how the operator's engine Jobs (backup, restore, verify) run —
//! resources, placement, registry credentials, deadline and restore staging.
//!
//! Set on an `Artifortress` for all of its Jobs; a `Backup`, a `RecoveryDrill`
//! or a `BackupSchedule` (for what it creates) overrides it field by field. The
//! operator's own defaults (`--job-defaults`, the chart's `jobDefaults`) sit
//! under both.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, ResourceRequirements, Toleration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pod settings of the engine Jobs. Every field is optional; an unset field
/// takes the value from the level below (resource → Artifortress → operator
/// defaults → built-in).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    /// Container resources. Built-in: requests `cpu: 500m, memory: 128Mi`, limits
    /// `memory: 512Mi`. A restore runs `pg_restore -j` with as many jobs as whole
    /// CPUs requested (at least 1) unless the drill sets `restoreJobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Secrets for pulling the operator image from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Node labels the Job's pod must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the Job's pod tolerates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node and pod affinity of the Job's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the Job's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra labels on the Job's pod (merged key by key across levels; the
    /// operator's own `app.kubernetes.io/managed-by` and `artifortress.io/*`
    /// labels always win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on the Job's pod (merged key by key across levels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Longest a Job may run before Kubernetes stops it; the Backup or drill then
    /// fails with reason `DeadlineExceeded`. Built-in: 21600 (6 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Where a restore stages the archive (`pg_restore -j` needs a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<StagingVolume>,
}

/// The restore's staging volume, sized from the backup's manifest: the archive
/// plus 20 % and 1 GiB.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StagingVolume {
    /// `EmptyDir` (default): node disk, with an `ephemeral-storage` request of
    /// that size so the scheduler picks a node that has it. `Ephemeral`: a
    /// PersistentVolumeClaim created with the pod and deleted with it (a generic
    /// ephemeral volume), for nodes with small disks.
    #[serde(default)]
    pub volume: StagingVolumeKind,
    /// StorageClass of an `Ephemeral` staging volume; default: the cluster's
    /// default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Kind of staging volume.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StagingVolumeKind {
    #[default]
    EmptyDir,
    Ephemeral,
}

impl JobTemplate {
    /// `self` with every field `over` sets replaced by `over`'s; labels and
    /// annotations merge key by key, `over` winning.
    pub fn overlaid_with(mut self, over: &JobTemplate) -> JobTemplate {
        fn pick<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        pick(&mut self.resources, &over.resources);
        pick(&mut self.image_pull_secrets, &over.image_pull_secrets);
        pick(&mut self.node_selector, &over.node_selector);
        pick(&mut self.tolerations, &over.tolerations);
        pick(&mut self.affinity, &over.affinity);
        pick(&mut self.priority_class_name, &over.priority_class_name);
        pick(&mut self.active_deadline_seconds, &over.active_deadline_seconds);
        pick(&mut self.staging, &over.staging);
        self.pod_labels.extend(over.pod_labels.clone());
        self.pod_annotations.extend(over.pod_annotations.clone());
        self
    }

    /// The template of a Job from its levels, lowest first.
    pub fn resolve<'a>(levels: impl IntoIterator<Item = Option<&'a JobTemplate>>) -> JobTemplate {
        levels.into_iter().flatten().fold(JobTemplate::default(), |acc, t| acc.overlaid_with(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(json: serde_json::Value) -> JobTemplate {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_level_replaces_what_it_sets_and_merges_labels() {
        let installation = template(serde_json::json!({
            "nodeSelector": {"disk": "ssd"},
            "priorityClassName": "batch",
            "podLabels": {"team": "storage", "tier": "a"},
            "activeDeadlineSeconds": 3600,
        }));
        let drill = template(serde_json::json!({
            "nodeSelector": {"zone": "b"},
            "podLabels": {"tier": "b"},
            "staging": {"volume": "Ephemeral", "storageClassName": "fast"},
        }));
        let t = JobTemplate::resolve([None, Some(&installation), Some(&drill)]);
        assert_eq!(t.node_selector, Some(BTreeMap::from([("zone".into(), "b".into())])), "replaced whole");
        assert_eq!(t.priority_class_name.as_deref(), Some("batch"), "kept from below");
        assert_eq!(t.active_deadline_seconds, Some(3600));
        assert_eq!(t.pod_labels, BTreeMap::from([("team".into(), "storage".into()), ("tier".into(), "b".into())]));
        assert_eq!(t.staging.unwrap().volume, StagingVolumeKind::Ephemeral);
        assert_eq!(JobTemplate::resolve([None, None]), JobTemplate::default());
    }
}
