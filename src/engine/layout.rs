//! Where things live in a store. A backup is a top-level directory
//! (`<backup>/`) holding its manifest and dump (`manifest`) or a base backup
//! (`physical::base`); under `<backup>/drills/` lies every drill that restored
//! it: the restore step's record, the verdict, the report and the history
//! chart, each named after the drill. Drills write these keys; the catalog and
//! the history chart read them, as [`DrillEntry`]s.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::verdict::Verdict;

/// Where the restore step leaves its record for the verify step.
pub fn record_key(backup: &str, drill: &str) -> String {
    format!("{backup}/drills/{drill}.restore.json")
}

/// Where a drill's verdict is stored, next to the backup it restored.
pub fn result_key(backup: &str, drill: &str) -> String {
    format!("{backup}/drills/{drill}.json")
}

/// The drill's Markdown report, beside its verdict.
pub fn report_key(backup: &str, drill: &str) -> String {
    format!("{backup}/drills/{drill}.md")
}

/// `<backup>/drills/<drill>.history.svg`, beside the drill's report.
pub fn chart_key(backup: &str, drill: &str) -> String {
    format!("{backup}/drills/{}", chart_file(drill))
}

/// The chart's file name, which the report links relative to itself.
pub fn chart_file(drill: &str) -> String {
    format!("{drill}.history.svg")
}

/// One stored drill verdict.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct DrillEntry {
    pub backup: String,
    /// The drill's identifier (the RecoveryDrill's name and uid prefix, or the
    /// local drill's name).
    pub drill: String,
    pub verdict: Verdict,
}

impl DrillEntry {
    /// When the drill ran, for ordering (verdicts without a start time first).
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.verdict.started_at
    }
}
