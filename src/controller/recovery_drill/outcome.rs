//! What a concluded drill tells besides its status: the metrics its alerts
//! and dashboard read, and a Warning Event when its backup was tampered with
//! (a person has to find out who can write to the bucket).

use super::super::Context;
use crate::api::recovery_drill::{RecoveryDrill, RecoveryDrillStatus};
use crate::metrics::InstallationLabels;

pub(super) async fn record(ctx: &Context, drill: &RecoveryDrill, status: &RecoveryDrillStatus, passed: bool) {
    let labels = InstallationLabels { installation: drill.spec.artifortress_ref.name.clone() };
    let m = &ctx.metrics;
    let finished = status.completed_at.unwrap_or_else(|| ctx.now()).timestamp_millis() as f64 / 1000.0;
    m.drill_last_result.get_or_create(&labels).set(i64::from(passed));
    m.drill_last_timestamp.get_or_create(&labels).set(finished);
    if passed {
        m.drill_passes.get_or_create(&labels).inc();
        m.drill_last_pass.get_or_create(&labels).set(finished);
    } else {
        m.drill_failures.get_or_create(&labels).inc();
    }
    if let Some(b) = &status.blobs {
        m.drill_blobs_referenced.get_or_create(&labels).set(b.referenced as i64);
        m.drill_blobs_missing.get_or_create(&labels).set(b.missing as i64);
        m.drill_blobs_corrupt.get_or_create(&labels).set((b.size_mismatches + b.corrupt) as i64);
        m.drill_blobs_orphans.get_or_create(&labels).set(b.orphans as i64);
    }
    m.drill_tampered_objects.get_or_create(&labels).set(status.tampering.len() as i64);
    if let Some(first) = status.tampering.first() {
        let backup = status.backup.as_ref().map_or("its backup".to_string(), |b| format!("backup {}", b.name));
        let note = format!(
            "{} object(s) of {backup} were changed after it was written; the drill read the backup's own versions. First: {first}",
            status.tampering.len()
        );
        ctx.event(drill, true, "TamperingDetected", note).await;
    }
    if let (Some(source), Some(target)) = (status.source_major, status.target_major) {
        m.drill_source_major.get_or_create(&labels).set(i64::from(source));
        m.drill_target_major.get_or_create(&labels).set(i64::from(target));
    }
    for (objective, measured, target) in
        [(&status.rpo, &m.drill_rpo, &m.drill_rpo_objective), (&status.rto, &m.drill_rto, &m.drill_rto_objective)]
    {
        if let Some(o) = objective {
            measured.get_or_create(&labels).set(o.measured_seconds);
            if let Some(t) = o.objective_seconds {
                target.get_or_create(&labels).set(t);
            }
        }
    }
}
