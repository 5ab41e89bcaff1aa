//! Conditions helper: old conditions + an observation → new conditions, the way
//! `metav1.Condition` expects (transition time kept unless the status flips).

use chrono::{DateTime, Utc};

use crate::api::common::{Condition, ConditionStatus};

/// One observation of a condition.
pub struct Observed<'a> {
    pub type_: &'a str,
    pub status: ConditionStatus,
    pub reason: &'a str,
    pub message: String,
}

/// Sets `observed` in `conditions`: a new condition is appended; an existing one
/// takes the new reason, message and generation, and its `lastTransitionTime`
/// changes only when its status does.
pub fn set(conditions: &mut Vec<Condition>, observed: Observed<'_>, generation: Option<i64>, now: DateTime<Utc>) {
    match conditions.iter_mut().find(|c| c.type_ == observed.type_) {
        Some(existing) => {
            if existing.status != observed.status {
                existing.last_transition_time = now;
            }
            existing.status = observed.status;
            existing.reason = observed.reason.to_string();
            existing.message = observed.message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: observed.type_.to_string(),
            status: observed.status,
            reason: observed.reason.to_string(),
            message: observed.message,
            last_transition_time: now,
            observed_generation: generation,
        }),
    }
}

/// The reason a condition currently carries.
pub fn reason_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.reason.as_str())
}

/// Reasons that need a person: their Events are warnings.
pub fn is_problem(reason: &str) -> bool {
    reason.ends_with("NotFound")
        || reason.starts_with("Invalid")
        || reason.ends_with("Failed")
        || reason.starts_with("Target")
        || reason.starts_with("Missing")
        || reason.ends_with("Missed")
        || matches!(
            reason,
            "Unreachable"
                | "DependencyDown"
                | "BackupCorrupt"
                | "ParityMismatch"
                | "RolesNotAssignable"
                | "SystemDatabase"
                | "DeadlineExceeded"
                | "NoBackup"
                | "NoVerdict"
                | "BackupUnreadable"
        )
}

/// The status of a condition type, if present.
pub fn status_of(conditions: &[Condition], type_: &str) -> Option<ConditionStatus> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn ready(status: ConditionStatus, reason: &'static str) -> Observed<'static> {
        Observed { type_: "Ready", status, reason, message: format!("{reason} happened") }
    }

    #[test]
    fn a_new_condition_is_added_with_the_observation_time() {
        let mut c = Vec::new();
        set(&mut c, ready(ConditionStatus::False, "Probing"), Some(1), at("2026-11-27T10:00:00Z"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, at("2026-11-27T10:00:00Z"));
        assert_eq!(c[0].observed_generation, Some(1));
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_flips() {
        let mut c = Vec::new();
        set(&mut c, ready(ConditionStatus::False, "Probing"), Some(1), at("2026-11-27T10:00:00Z"));
        set(&mut c, ready(ConditionStatus::False, "DatabaseDown"), Some(2), at("2026-11-27T10:05:00Z"));
        assert_eq!(c[0].last_transition_time, at("2026-11-27T10:00:00Z"), "same status keeps the time");
        assert_eq!((c[0].reason.as_str(), c[0].observed_generation), ("DatabaseDown", Some(2)));
        set(&mut c, ready(ConditionStatus::True, "AllUp"), Some(2), at("2026-11-27T10:06:00Z"));
        assert_eq!(c[0].last_transition_time, at("2026-11-27T10:06:00Z"), "a flip records the time");
        assert_eq!(status_of(&c, "Ready"), Some(ConditionStatus::True));
        assert_eq!(status_of(&c, "Missing"), None);
        assert_eq!(c.len(), 1);
    }
}
