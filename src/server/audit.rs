//! The ops summary's audit trail in the installation's own `audit_log`.
//!
//! A read that returns data is audited before the response, one row per
//! request (no unaudited reads). Concurrent requests' rows are group-committed:
//! while one batch commits, the next ones queue, and each batch is one
//! multi-row INSERT per installation, one commit (one WAL flush) for all of
//! them; a request is answered only once its batch has committed. Rejected requests (unauthenticated, denied,
//! authorisation unavailable) cost the customer's database no write each:
//! they are counted in memory and written as one row per (installation, actor,
//! outcome, reason) every flush interval, with `details.count`, so a flood of
//! bad tokens is a handful of rows that still count every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

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
    /// The group committer, started by the first write.
    writes: OnceLock<mpsc::UnboundedSender<Write>>,
}

/// A row waiting for its batch, and who waits for its commit.
struct Write {
    installation: Arc<Installation>,
    actor: String,
    outcome: &'static str,
    details: serde_json::Value,
    committed: oneshot::Sender<Result<(), String>>,
}

/// Rows per batch: bounds one INSERT's size; beyond it the next batch follows at once.
const MAX_BATCH: usize = 512;

impl AuditLog {
    /// Writes the row of a request that is about to be answered with data (or
    /// with the failure of reading it) and returns once it is committed; an
    /// error means it must not be answered.
    pub async fn write_now(&self, installation: &Arc<Installation>, entry: Entry<'_>) -> Result<(), String> {
        let writes = self.writes.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(group_commit(receiver));
            sender
        });
        let (committed, done) = oneshot::channel();
        let details = serde_json::json!({"status": entry.status, "reason": entry.reason});
        let write = Write {
            installation: installation.clone(),
            actor: entry.actor.into(),
            outcome: entry.outcome,
            details,
            committed,
        };
        writes.send(write).map_err(|_| "the audit writer has stopped".to_string())?;
        done.await.map_err(|_| "the audit writer has stopped".to_string())?
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

/// Commits queued rows in batches, one INSERT per installation in a batch,
/// and tells each request whether its row is durable.
async fn group_commit(mut queue: mpsc::UnboundedReceiver<Write>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let mut by_installation: Vec<Vec<Write>> = Vec::new();
        for write in batch {
            match by_installation.iter_mut().find(|g| Arc::ptr_eq(&g[0].installation, &write.installation)) {
                Some(group) => group.push(write),
                None => by_installation.push(vec![write]),
            }
        }
        futures::future::join_all(by_installation.into_iter().map(|writes| async move {
            let result = insert_many(&writes).await.map_err(|e| e.to_string());
            for write in writes {
                let _ = write.committed.send(result.clone()); // a request that gave up no longer listens
            }
        }))
        .await;
    }
}

/// One statement, one commit, for rows of the same installation.
async fn insert_many(writes: &[Write]) -> Result<(), sqlx::Error> {
    let installation = &writes[0].installation;
    let actors: Vec<&str> = writes.iter().map(|w| w.actor.as_str()).collect();
    let outcomes: Vec<&str> = writes.iter().map(|w| w.outcome).collect();
    let details: Vec<String> = writes.iter().map(|w| w.details.to_string()).collect();
    sqlx::query(
        "INSERT INTO audit_log (actor, action, resource, outcome, details) \
         SELECT a, $4, $5, o, d::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(a, o, d)",
    )
    .bind(actors)
    .bind(outcomes)
    .bind(details)
    .bind(AUDIT_ACTION)
    .bind(format!("installation/{}", installation.name))
    .execute(&installation.pool)
    .await
    .map(drop)
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
