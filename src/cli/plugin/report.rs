//! `report DRILL`: a drill's report in Markdown, written from the
//! RecoveryDrill's status (which mirrors the stored verdict), with where the
//! operator stored its own report and history chart. The plugin reads no
//! bucket: those two are for whoever holds the backup store's credentials.

use std::fmt::Write;

use artifortress_operator::api::recovery_drill::{ObjectiveResult, RecoveryDrill};
use artifortress_operator::engine::catalog::time;

use super::super::failure::{Failure, usage};
use super::access::Cluster;
use super::view::short_duration;

pub async fn report(cluster: &Cluster, name: &str) -> Result<(), Failure> {
    let drill = cluster.get::<RecoveryDrill>(name).await?.ok_or_else(|| {
        usage(format!(
            "no RecoveryDrill {name:?} in namespace {} (kubectl artifortress drills INSTALLATION)",
            cluster.namespace
        ))
    })?;
    print!("{}", markdown(name, &drill));
    Ok(())
}

fn objective(what: &str, o: &Option<ObjectiveResult>) -> String {
    o.as_ref().map_or(format!("- {what}: not measured\n"), |o| {
        let met = match o.met {
            Some(true) => " (met)",
            Some(false) => " (missed)",
            None => "",
        };
        format!("- {what}: {}{met}\n", o.summary)
    })
}

/// The report of `drill` from its status; "not finished" while it runs.
pub fn markdown(name: &str, drill: &RecoveryDrill) -> String {
    let s = drill.status.clone().unwrap_or_default();
    let result = s.result.map_or_else(|| format!("not finished ({:?})", s.phase), |r| format!("{r:?}"));
    let mut out = format!("# Recovery drill {name}: {result}\n\n");
    let _ = writeln!(out, "- Installation: {}", drill.spec.artifortress_ref.name);
    if let Some(b) = &s.backup {
        let _ =
            writeln!(out, "- Backup: {} (restore point {} UTC) at {}", b.name, time(Some(b.snapshot_time)), b.location);
    }
    let _ = writeln!(out, "- Started: {} UTC; finished: {} UTC", time(s.started_at), time(s.completed_at));
    if let Some(reason) = &s.reason {
        let _ = writeln!(out, "- Reason: {reason}");
    }
    out += &objective("RPO", &s.rpo);
    out += &objective("RTO", &s.rto);
    if let Some(usable) = s.timings.as_ref().and_then(|t| t.usable_seconds) {
        let _ = writeln!(out, "- Usable after: {}", short_duration(usable));
    }
    if !s.parity.is_empty() {
        out += "\n## Tables\n\n| table | expected rows | restored rows | match |\n|---|---:|---:|---|\n";
        for p in &s.parity {
            let restored = p.restored.map_or("-".into(), |r| r.to_string());
            let _ = writeln!(
                out,
                "| {} | {} | {restored} | {} |",
                p.table,
                p.expected,
                if p.matches { "yes" } else { "NO" }
            );
        }
    }
    if let Some(b) = &s.blobs {
        let _ = writeln!(
            out,
            "\n## Blobs\n\n{} referenced, {} present, {} missing, {} size mismatches, {} corrupt of {} sampled, {} orphans ({}).",
            b.referenced, b.present, b.missing, b.size_mismatches, b.corrupt, b.sampled, b.orphans, b.store
        );
    }
    for (title, lines) in [("Failures", &s.failures), ("Tampering", &s.tampering), ("Warnings", &s.warnings)] {
        if !lines.is_empty() {
            let _ = write!(out, "\n## {title}\n\n");
            for line in lines {
                let _ = writeln!(out, "- {line}");
            }
        }
    }
    if let Some(stored) = &s.report {
        let chart = stored.strip_suffix(".md").map(|r| format!("{r}.history.svg"));
        let _ = write!(out, "\n---\nThe operator's report: {stored}\n");
        if let Some(chart) = chart {
            let _ = writeln!(out, "History chart (RPO and RTO of the last drills): {chart}");
        }
    }
    out
}
