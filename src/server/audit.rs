//! The ops summary's audit trail in the installation's own `audit_log`.
//!
//! A read that returns data is audited before the response, one row per
//! request (no unaudited reads). Rejected requests (unauthenticated, denied,
//! authorisation unavailable) cost the customer's database no write each:
//! they are counted in memory and written as one row per (installation, actor,
//! outcome, reason) every flush interval, with `details.count`, so a flood of
//! bad tokens is a handful of rows that still count every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::installations::Installation;

pub const AUDIT_ACTION: &str = "ops.summary.read";

/// Bound on the distinct groups held between flushes; beyond it, rejected
/// requests are counted under the actor [`OTHER_ACTORS`].
const MAX_GROUPS: usize = 1000;
const OTHER_ACTORS: &str = "(other actors)";

/// One audited outcome.
pub struct Entry<'a> {
    pub actor: &'a str,
    pub outcome: &'static str,
    pub status: u16,
    pub reason: &'a str,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    installation: String,
    actor: String,
    outcome: &'static str,
    status: u16,
    reason: String,
}

struct Group {
    installation: Arc<Installation>,
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

#[derive(Default)]
pub struct AuditLog {
    pending: Mutex<HashMap<GroupKey, Group>>,
}

impl AuditLog {
    /// Writes the row of a request that is about to be answered with data (or
    /// with the failure of reading it); an error means it must not be answered.
    pub async fn write_now(&self, installation: &Installation, entry: Entry<'_>) -> Result<(), sqlx::Error> {
        let details = serde_json::json!({"status": entry.status, "reason": entry.reason});
        insert(installation, entry.actor, entry.outcome, &details).await
    }

    /// Counts a rejected request; [`AuditLog::flush`] writes it.
    pub fn count_rejected(&self, installation: &Arc<Installation>, entry: Entry<'_>) {
        let now = Utc::now();
        let mut pending = self.pending.lock().expect("not poisoned");
        let mut key = GroupKey {
            installation: installation.qualified_name(),
            actor: entry.actor.to_string(),
            outcome: entry.outcome,
            status: entry.status,
            reason: entry.reason.to_string(),
        };
        if pending.len() >= MAX_GROUPS && !pending.contains_key(&key) {
            key.actor = OTHER_ACTORS.to_string();
        }
        let group = pending.entry(key).or_insert_with(|| Group {
            installation: installation.clone(),
            count: 0,
            first: now,
            last: now,
        });
        group.count += 1;
        group.last = now;
    }

    /// Writes one row per group counted since the last flush. A group whose
    /// database cannot be written is kept (and keeps counting) for the next.
    pub async fn flush(&self) {
        let groups: Vec<(GroupKey, Group)> = self.pending.lock().expect("not poisoned").drain().collect();
        for (key, group) in groups {
            let details = serde_json::json!({
                "status": key.status, "reason": key.reason, "count": group.count,
                "firstAt": group.first, "lastAt": group.last,
            });
            if let Err(e) = insert(&group.installation, &key.actor, key.outcome, &details).await {
                tracing::warn!(installation = key.installation, error = %e, count = group.count,
                    "writing rejected ops-summary requests to the audit log failed; retrying at the next flush");
                let (count, first) = (group.count, group.first);
                let mut pending = self.pending.lock().expect("not poisoned");
                let kept = pending.entry(key).or_insert(Group { count: 0, ..group });
                kept.count += count;
                kept.first = kept.first.min(first);
            }
        }
    }
}

async fn insert(
    installation: &Installation,
    actor: &str,
    outcome: &str,
    details: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (actor, action, resource, outcome, details) VALUES ($1, $2, $3, $4, $5::jsonb)")
        .bind(actor)
        .bind(AUDIT_ACTION)
        .bind(format!("installation/{}", installation.name))
        .bind(outcome)
        .bind(details)
        .execute(&installation.pool)
        .await
        .map(drop)
}
