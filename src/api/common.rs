//! Types shared by the four custom resources.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::engine::manifest;

/// API group of every resource this operator owns.
pub const GROUP: &str = "artifortress.io";
/// The only served (and stored) version.
pub const VERSION: &str = "v1alpha1";

/// Reference to one key of a Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret whose value is used.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// Reference to the `Artifortress` installation, in the same namespace, that a
/// backup, schedule or drill belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifortressRef {
    /// Name of the `Artifortress` resource.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// What a backup records about each table so that a restore can be proven equal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VerifyMode {
    /// Exact row counts, taken inside the backup's snapshot.
    #[default]
    Counts,
    /// Row counts plus an order-independent digest of every row's content.
    Checksums,
}

/// How a backup is taken, and so how a drill restores it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BackupMethod {
    /// pg_dump of the installation's database, restored into a scratch database
    /// on a running server and proven equal table by table.
    #[default]
    Logical,
    /// pg_basebackup of the whole cluster over the replication protocol (the
    /// role needs REPLICATION), restored with the archived WAL into a scratch
    /// instance the drill's Job starts itself; needs `walArchive` on the
    /// installation for anything past the base's own end.
    Physical,
}

/// How the source's checkpoint that starts a physical base backup is taken.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CheckpointMode {
    /// Spread over `checkpoint_completion_target`: no I/O burst on the source,
    /// the backup may wait minutes before it copies anything.
    #[default]
    Spread,
    /// At once: an I/O burst on the source.
    Fast,
}

impl From<VerifyMode> for manifest::VerifyMode {
    fn from(mode: VerifyMode) -> Self {
        match mode {
            VerifyMode::Counts => manifest::VerifyMode::Counts,
            VerifyMode::Checksums => manifest::VerifyMode::Checksums,
        }
    }
}

impl From<manifest::VerifyMode> for VerifyMode {
    fn from(mode: manifest::VerifyMode) -> Self {
        match mode {
            manifest::VerifyMode::Counts => VerifyMode::Counts,
            manifest::VerifyMode::Checksums => VerifyMode::Checksums,
        }
    }
}

/// A length of time written the human way: one or more `<integer><unit>` parts with
/// units `ms`, `s`, `m`, `h`, `d`, e.g. `90s`, `15m`, `1h30m`, `7d`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct DurationString(pub String);

/// The OpenAPI pattern enforced by the API server for [`DurationString`].
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

impl DurationString {
    /// Parses the string; the error says what a valid value looks like.
    pub fn parse(&self) -> Result<Duration, String> {
        let s = self.0.as_str();
        let shape_ok = !s.is_empty()
            && s.chars().all(|c| c.is_ascii_digit() || "mshd".contains(c))
            && s.starts_with(|c: char| c.is_ascii_digit())
            && !s.ends_with(|c: char| c.is_ascii_digit());
        if !shape_ok {
            return Err(format!(
                "invalid duration {s:?}: write it as <number><unit> parts with units ms, s, m, h, d (e.g. 90s, 15m, 1h30m)"
            ));
        }
        humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
    }
}

impl From<&str> for DurationString {
    fn from(s: &str) -> Self {
        DurationString(s.to_string())
    }
}

impl JsonSchema for DurationString {
    fn schema_name() -> Cow<'static, str> {
        "DurationString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// Status of a condition, as in `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One aspect of the resource's state, shaped like `metav1.Condition` so that
/// `kubectl wait --for=condition=...` and generic tooling understand it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type in CamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason for the last transition.
    pub reason: String,
    /// Human-readable detail: what happened and what to do about it (may be empty).
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_documented_forms() {
        assert_eq!(DurationString::from("90s").parse(), Ok(Duration::from_secs(90)));
        assert_eq!(DurationString::from("15m").parse(), Ok(Duration::from_secs(900)));
        assert_eq!(DurationString::from("1h30m").parse(), Ok(Duration::from_secs(5400)));
        assert_eq!(DurationString::from("7d").parse(), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(DurationString::from("250ms").parse(), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn malformed_durations_are_rejected_with_an_example() {
        for bad in ["", "15", "m", "1.5h", "15 m", "-5m", "15min"] {
            let err = DurationString::from(bad).parse().unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_schema_pattern_agrees_with_the_parser() {
        // The API server enforces DURATION_PATTERN; the parser must accept what it admits.
        let re_ok = ["1s", "15m", "1h30m", "2d12h", "100ms"];
        for s in re_ok {
            assert!(DurationString::from(s).parse().is_ok(), "{s}");
        }
    }
}
