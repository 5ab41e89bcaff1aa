//! The human-readable drill report (Markdown), rendered from the verdict that
//! is stored as JSON and mirrored into the `RecoveryDrill` resource.

use std::fmt::Write;

use super::progress::human_duration;
use super::verdict::{DrillMode, ObjectiveResult, RtoBasis, Verdict};

/// Where the drill ran, for the report header (URLs already without secrets).
pub struct ReportContext<'a> {
    pub drill_name: &'a str,
    pub source: Option<&'a str>,
    pub target: &'a str,
    pub store: &'a str,
    /// The history chart's file, beside the report (see `layout::chart_file`).
    pub history_chart: Option<&'a str>,
}

pub fn render(verdict: &Verdict, ctx: &ReportContext<'_>) -> String {
    let mut md = String::new();
    let headline = if verdict.passed() { "PASSED" } else { "FAILED" };
    let _ = writeln!(md, "# Recovery drill {}: {headline}\n", ctx.drill_name);
    if let (Some(start), Some(end)) = (verdict.started_at, verdict.completed_at) {
        let _ = writeln!(md, "- Started: {}\n- Finished: {}", start.to_rfc3339(), end.to_rfc3339());
    }
    if let Some(source) = ctx.source {
        let _ = writeln!(md, "- Source: `{source}`");
    }
    let _ = writeln!(md, "- Target (scratch): `{}`\n- Store: `{}`", ctx.target, ctx.store);
    let physical = verdict.mode == DrillMode::Physical;
    if let Some(b) = &verdict.backup {
        let _ = writeln!(
            md,
            "- {}: `{}` ({}), {} {}, completed {}",
            if physical { "Base backup" } else { "Backup" },
            b.name,
            if b.fresh { "taken by this drill" } else { "existing" },
            if physical { "recovery point (newest heartbeat recovered, else the base's end)" } else { "snapshot" },
            b.snapshot_time.to_rfc3339(),
            b.completed_at.to_rfc3339()
        );
    }
    if physical {
        md.push_str(
            "- Physical drill: the base and every WAL segment checked against their SHA-256, `pg_verifybackup` \
             against PostgreSQL's backup manifest, WAL CRCs during replay, promotion, then amcheck \
             (`bt_index_check`) of every valid B-tree index. No per-table counts: none are exact for an arbitrary \
             recovery point of a source that kept writing (docs/backup-format.md).\n",
        );
    }

    if let Some(m) = verdict.server_majors.filter(|m| m.is_upgrade()) {
        let _ = writeln!(md, "- Upgrade rehearsal: PostgreSQL {} → {}", m.source, m.target);
    }

    md.push_str("\n## Verdict\n\n");
    if verdict.failures.is_empty() {
        md.push_str("Every check passed.\n");
    } else {
        if let Some(reason) = &verdict.reason {
            let _ = writeln!(md, "Reason: `{reason}`\n");
        }
        for failure in &verdict.failures {
            let _ = writeln!(md, "- {failure}");
        }
    }
    for warning in &verdict.warnings {
        let _ = writeln!(md, "- warning: {warning}");
    }
    if !verdict.roles_created.is_empty() {
        let _ = writeln!(
            md,
            "\nRoles created on the target (NOLOGIN, the backup needs them): {}",
            verdict.roles_created.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
        );
    }

    let rto_label = match verdict.rto_basis {
        Some(RtoBasis::Verified) | None => "RTO (restore start to verified)",
        Some(RtoBasis::Usable) => "RTO (restore start to usable)",
    };
    md.push_str("\n## Objectives\n\n| objective | measured | target | met |\n|---|---|---|---|\n");
    for (label, objective) in [("RPO (age of the restore point)", &verdict.rpo), (rto_label, &verdict.rto)] {
        match objective {
            Some(o) => {
                let _ =
                    writeln!(md, "| {label} | {} | {} | {} |", human_duration(o.measured_seconds), target(o), met(o));
            }
            None => {
                let _ = writeln!(md, "| {label} | not measured | | |");
            }
        }
    }

    if let Some(chart) = ctx.history_chart {
        let _ = writeln!(
            md,
            "\n## History\n\nRTO and RPO of this installation's last drills (this one last) against their \
             objectives; failed drills ringed in red.\n\n![RTO and RPO over the last drills]({chart})"
        );
    }

    if let Some(t) = &verdict.timings {
        md.push_str("\n## Timings\n\n| step | duration |\n|---|---|\n");
        let steps: Vec<(&str, Option<f64>)> = if physical {
            vec![
                ("base backup", t.backup_seconds),
                ("download base and WAL, verify SHA-256", t.download_seconds),
                ("pg_verifybackup, WAL replay, promotion", t.restore_seconds),
                ("amcheck", t.parity_seconds),
                ("restore start to usable (promoted)", t.usable_seconds),
                ("restore start to verified (amcheck passed)", t.verified_seconds),
                ("whole drill", t.total_seconds),
            ]
        } else {
            vec![
                ("backup", t.backup_seconds),
                ("download, verify checksum, index archive", t.download_seconds),
                ("recreate database and pg_restore", t.restore_seconds),
                ("database settings and ANALYZE", t.analyze_seconds),
                ("parity", t.parity_seconds),
                ("restore start to usable (restored, analyzed)", t.usable_seconds),
                ("restore start to verified (usable, parity passed)", t.verified_seconds),
                ("whole drill", t.total_seconds),
            ]
        };
        for (step, value) in steps {
            if let Some(v) = value {
                let _ = writeln!(md, "| {step} | {} ({v:.3} s) |", human_duration(v));
            }
        }
    }

    if let Some(b) = &verdict.blobs {
        let _ = writeln!(md, "\n## Blobs\n\nThe restored database's blob rows against `{}`:\n", b.store);
        md.push_str(
            "| rows | present | missing | size mismatches | hashed | corrupt | objects without a row | took |\n",
        );
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let hashed = if b.all_digests_verified { format!("{} (all)", b.sampled) } else { b.sampled.to_string() };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {hashed} | {} | {} | {} |",
            b.referenced,
            b.present,
            b.missing,
            b.size_mismatches,
            b.corrupt,
            b.orphans,
            human_duration(b.seconds)
        );
        if let (Some(rows), Some(missing)) = (&b.row_classes, &b.missing_classes) {
            md.push_str("\n| rows referenced by | rows | missing objects |\n|---|---:|---:|\n");
            for (what, n, m) in [
                ("artifact entries or manifests", rows.referenced, missing.referenced),
                ("only a committed upload (downloadable through it)", rows.committed_only, missing.committed_only),
                ("nothing (garbage collection may delete them)", rows.unreferenced, missing.unreferenced),
            ] {
                let _ = writeln!(md, "| {what} | {n} | {m} |");
            }
        }
        if let Some(since) = &b.missing_since {
            let _ = writeln!(
                md,
                "\nMissing objects of referenced rows: {} deleted since the restore point (no longer referenced live), {} missing for the live installation too, {} not compared.",
                since.deleted_since_snapshot, since.missing_live, since.unknown
            );
            for key in &since.missing_live_keys {
                let _ = writeln!(md, "- missing live too: `{key}`");
            }
        }
        if let Some(w) = &b.without_row {
            let _ = writeln!(
                md,
                "\nObjects without a row (never a failure): {} in flight under an open upload ({}), {} left by aborted, duplicate or abandoned uploads ({}); {} multipart uploads in progress.",
                w.in_flight,
                crate::engine::progress::human_bytes(w.in_flight_bytes),
                w.leftovers,
                crate::engine::progress::human_bytes(w.leftover_bytes),
                b.multipart_in_progress
            );
        }
        if b.dangling_references > 0 {
            let _ = writeln!(
                md,
                "\n**{} references to blob rows the database lacks** (artifact entries, manifests).",
                b.dangling_references
            );
        }
        for (what, keys) in [
            ("missing", &b.missing_keys),
            ("size mismatch", &b.size_mismatch_keys),
            ("corrupt", &b.corrupt_keys),
            ("without a row", &b.orphan_keys),
        ] {
            for key in keys {
                let _ = writeln!(md, "- {what}: `{key}`");
            }
        }
    }

    if let Some(a) = &verdict.application {
        let _ = writeln!(
            md,
            "\n## {} schema and what a restore would take back\n\nSchema level: {}\n",
            a.name,
            a.schema_level.as_deref().unwrap_or("not recorded")
        );
        for note in &a.notes {
            let _ = writeln!(md, "- {note}");
        }
        if !a.take_back.is_empty() {
            md.push_str("\n| decision since the restore point | tenant | id | detail |\n|---|---|---|---|\n");
            for t in &a.take_back {
                let _ = writeln!(md, "| {} | {} | `{}` | {} |", t.kind, t.tenant, t.id, t.detail);
            }
        }
    }

    if !verdict.parity.is_empty() {
        let all = verdict.parity.len();
        let ok = verdict.parity.iter().filter(|p| p.matches).count();
        let _ = writeln!(md, "\n## Table parity ({ok} of {all} match)\n");
        let checksums = verdict.parity.iter().any(|p| p.expected_checksum.is_some());
        if checksums {
            md.push_str("| table | expected rows | restored rows | expected checksum | restored checksum | match |\n|---|---:|---:|---:|---:|---|\n");
        } else {
            md.push_str("| table | expected rows | restored rows | match |\n|---|---:|---:|---|\n");
        }
        for p in &verdict.parity {
            let restored = p.restored.map_or("missing".to_string(), |r| r.to_string());
            let mark = if p.matches { "yes" } else { "**NO**" };
            if checksums {
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {restored} | {} | {} | {mark} |",
                    p.table,
                    p.expected,
                    p.expected_checksum.as_deref().unwrap_or(""),
                    p.restored_checksum.as_deref().unwrap_or("")
                );
            } else {
                let _ = writeln!(md, "| `{}` | {} | {restored} | {mark} |", p.table, p.expected);
            }
        }
    }
    md
}

fn target(o: &ObjectiveResult) -> String {
    o.objective_seconds.map_or("none".to_string(), human_duration)
}

fn met(o: &ObjectiveResult) -> &'static str {
    match o.met {
        Some(true) => "yes",
        Some(false) => "**NO**",
        None => "n/a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::verdict::{DrillResult, FinalPhase, TableParity, Timings};

    #[test]
    fn a_failed_drill_reports_reasons_numbers_and_parity() {
        let verdict = Verdict {
            verdict_version: 1,
            phase: FinalPhase::Failed,
            result: DrillResult::Failed,
            reason: Some("RTOMissed".into()),
            warnings: Vec::new(),
            tampering: Vec::new(),
            roles_created: vec!["app_reader".into()],
            rto_basis: Some(RtoBasis::Usable),
            server_majors: Some(crate::engine::verdict::ServerMajors { source: 15, target: 18 }),
            failures: vec!["RTO objective missed: measured 2.0s exceeds the objective 1ms".into()],
            rto: Some(ObjectiveResult {
                measured_seconds: 2.0,
                objective_seconds: Some(0.001),
                met: Some(false),
                summary: "2.0s / 1ms".into(),
            }),
            timings: Some(Timings { restore_seconds: Some(1.5), ..Default::default() }),
            parity: vec![TableParity {
                table: "public.tenants".into(),
                expected: 5,
                restored: Some(5),
                expected_checksum: None,
                restored_checksum: None,
                matches: true,
            }],
            backup: None,
            blobs: None,
            application: None,
            rpo: None,
            report: None,
            started_at: None,
            completed_at: None,
            mode: Default::default(),
        };
        let md = render(
            &verdict,
            &ReportContext {
                drill_name: "d1",
                source: None,
                target: "postgres://u:***@h/s",
                store: "file:///b",
                history_chart: None,
            },
        );
        assert!(md.starts_with("# Recovery drill d1: FAILED"));
        assert!(md.contains("- RTO objective missed"));
        assert!(md.contains("| RTO (restore start to usable) | 2.0s | 1ms | **NO** |"));
        assert!(md.contains("Reason: `RTOMissed`") && md.contains("`app_reader`"));
        assert!(md.contains("- Upgrade rehearsal: PostgreSQL 15 → 18"), "{md}");
        assert!(md.contains("| `public.tenants` | 5 | 5 | yes |"));
        assert!(md.contains("Table parity (1 of 1 match)"));
    }
}
