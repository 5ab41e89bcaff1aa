//! `make demo` (hack/demo.py) end to end, into a scratch directory: every check
//! passes and the report carries them; a drill that misses its RTO fails the
//! demo, and so does a blob deleted from the blob store. The report charts the
//! drill history of the demo's store, which grows run by run.

mod support;

use std::process::Command;

fn demo(out: &std::path::Path, rto: &str, delete_blob: bool) -> (std::process::ExitStatus, String, String) {
    let report = out.join("report.md");
    let done = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/demo.py"))
        .env("BIN", support::operator_bin())
        .env("DEMO_OUT", out)
        .env("DEMO_REPORT", &report)
        .env("DEMO_RTO", rto)
        .env("DEMO_DELETE_BLOB", if delete_blob { "1" } else { "0" })
        .output()
        .expect("run hack/demo.py");
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    (done.status, report, String::from_utf8_lossy(&done.stderr).into_owned())
}

#[test]
fn the_demo_passes_every_check_and_fails_when_the_drill_misses_its_objective() {
    let dir = tempfile::tempdir().unwrap();
    let (status, report, progress) = demo(&dir.path().join("pass"), "30m", false);
    assert!(status.success(), "{progress}\n{report}");
    assert!(report.contains("Overall: **PASS**"), "{report}");
    for check in [
        "/health/ready is 200",
        "with the admin token is 200",
        "without a token is 401",
        "with a viewer token is 403",
        "audited",
        "recovery drill",
        "every blob the restored database references is in the blob store",
    ] {
        let row = report.lines().find(|l| l.contains(check)).unwrap_or_else(|| panic!("{check}: {report}"));
        assert!(row.contains("| pass"), "{row}");
    }
    assert!(report.contains("| public.outbox_events | 5000 | 5000 | yes |"), "{report}");
    assert!(report.contains("## Ops summary") && report.contains("| incompleteGcRuns | default | 1 |"), "{report}");
    assert!(progress.contains("demo: all checks passed"), "{progress}");
    assert!(report.contains("## Blobs") && report.contains("| 2560 | 2560 | 0 | 0 | 100 | 0 | 30 |"), "{report}");

    let chart_of = |report: &str| {
        let link = report.lines().find_map(|l| l.strip_prefix("![RTO and RPO of the last drills](")).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("pass").join(link.trim_end_matches(')'))).unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        svg
    };
    assert!(report.contains("## History"), "{report}");
    let first = chart_of(&report);

    // Into the same output directory: its store keeps the first run's drill, so
    // the GA report's history now charts two drills, the second one failed.
    let (status, report, progress) = demo(&dir.path().join("pass"), "1ms", false);
    assert_eq!(status.code(), Some(1), "{progress}");
    assert!(
        report.contains("Overall: **FAIL**") && report.contains("| RTO |") && report.contains("**no**"),
        "{report}"
    );
    assert!(report.contains("RTO objective missed"), "{report}");
    assert!(report.contains("charted in report.history.svg") && report.contains("last 2 drills"), "{report}");
    let ring = "stroke=\"#FF0000\"";
    assert!(!first.contains(ring) && chart_of(&report).contains(ring), "the failed drill is ringed in red");

    let (status, report, progress) = demo(&dir.path().join("blob"), "30m", true);
    assert_eq!(status.code(), Some(1), "{progress}");
    assert!(report.contains("Overall: **FAIL**") && report.contains("`BlobsMissing`"), "{report}");
    let row = report.lines().find(|l| l.contains("every blob the restored database references")).unwrap();
    assert!(row.contains("**FAIL**") && row.contains("1 missing"), "{row}");
}
