//! The ops summary's audit trail in the installation's own `audit_log`
//! (rows shaped as upstream writes them: `artifortress::audit`).
//!
//! A read that returns data is audited before the response: one row per tenant
//! read (no unaudited reads). Concurrent requests' rows are group-committed:
//! while one batch commits, the next ones queue, and each batch is one INSERT
//! per installation, one commit (one WAL flush) for all of them; a request is
//! answered only once its batch has committed.
//!
//! Rejected requests (unauthenticated, denied, authorisation unavailable) cost
//! the database no write each: they are counted in memory (and in the metric
//! `artifortress_ops_summary_rejected`), and written every flush interval as one
//! `ops.summary.denied` row per (tenant, actor, outcome, reason) with
//! `details.count`. `audit_log.tenant_id` is a real tenant's: a rejected
//! request is written for the tenant it named when that tenant exists, or for
//! the installation's only tenant; a request that names no tenant of an
//! installation with several is logged and counted, never given an invented
//! tenant id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::artifortress::audit::{self as rows, AuditRow};
use crate::artifortress::ops;
use crate::installations::Installation;
use crate::metrics::Metrics;

/// Bound on the distinct groups held between flushes; beyond it, rejected
/// requests are counted under the actor [`OTHER_ACTORS`].
const MAX_GROUPS: usize = 1000;
const OTHER_ACTORS: &str = "(other actors)";

/// A rejected request.
pub struct Rejected<'a> {
    pub actor: &'a str,
    pub outcome: &'static str,
    pub status: u16,
    pub reason: &'a str,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    installation: String,
    tenant: Option<String>,
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

pub struct AuditLog {
    pending: Mutex<HashMap<GroupKey, Group>>,
    /// The group committer, started by the first write.
    writes: OnceLock<mpsc::UnboundedSender<Write>>,
    metrics: Arc<Metrics>,
}

/// Rows waiting for their batch, and who waits for their commit.
struct Write {
    installation: Arc<Installation>,
    rows: Vec<AuditRow>,
    correlation: bool,
    committed: oneshot::Sender<Result<(), String>>,
}

/// Rows per batch: bounds one INSERT's size; beyond it the next batch follows at once.
const MAX_BATCH: usize = 512;

impl AuditLog {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        AuditLog { pending: Mutex::new(HashMap::new()), writes: OnceLock::new(), metrics }
    }

    /// Writes the rows of a request about to be answered with data and
    /// returns once they are committed; an error means it must not be answered.
    /// `correlation`: the installation's `audit_log` has `correlation_id`.
    pub async fn write_now(
        &self,
        installation: &Arc<Installation>,
        rows: Vec<AuditRow>,
        correlation: bool,
    ) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let writes = self.writes.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(group_commit(receiver));
            sender
        });
        let (committed, done) = oneshot::channel();
        let write = Write { installation: installation.clone(), rows, correlation, committed };
        writes.send(write).map_err(|_| "the audit writer has stopped".to_string())?;
        done.await.map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Counts a rejected request (`tenant`: what `?tenant=` named); [`AuditLog::flush`] writes it.
    pub fn count_rejected(&self, installation: &Arc<Installation>, tenant: Option<&str>, rejected: Rejected<'_>) {
        self.metrics.count_rejected(&installation.name, rejected.outcome);
        let now = Utc::now();
        let mut pending = self.pending.lock().expect("not poisoned");
        let mut key = GroupKey {
            installation: installation.qualified_name(),
            tenant: tenant.map(str::to_string),
            actor: rejected.actor.to_string(),
            outcome: rejected.outcome,
            status: rejected.status,
            reason: rejected.reason.to_string(),
        };
        if pending.len() >= MAX_GROUPS && !pending.contains_key(&key) {
            key.actor = OTHER_ACTORS.to_string();
            key.tenant = None;
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
            match write_rejected(&key, &group).await {
                Ok(()) => {}
                Err(e) => {
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
}

/// One `ops.summary.denied` row for a group, for the tenant it can honestly
/// name; none (a log line) when there is no such tenant.
async fn write_rejected(key: &GroupKey, group: &Group) -> Result<(), sqlx::Error> {
    let pool = &group.installation.pool;
    let mut conn = pool.acquire().await?;
    let tenant = match &key.tenant {
        Some(wanted) => ops::find_tenant(&mut conn, wanted).await?.map(|(id, _)| id),
        None => ops::only_tenant(&mut conn).await?,
    };
    drop(conn);
    let Some(tenant_id) = tenant else {
        tracing::warn!(
            installation = key.installation,
            actor = key.actor,
            outcome = key.outcome,
            reason = key.reason,
            tenant = key.tenant.as_deref(),
            count = group.count,
            "rejected ops-summary requests naming no tenant of this installation: not written to its audit log (its rows need a real tenant), counted in artifortress_ops_summary_rejected"
        );
        return Ok(());
    };
    let details = serde_json::json!({
        "status": key.status.to_string(), "outcome": key.outcome, "reason": key.reason,
        "count": group.count.to_string(), "firstAt": group.first.to_rfc3339(), "lastAt": group.last.to_rfc3339(),
        "servedBy": "artifortress-operator", "installation": group.installation.name,
    });
    let row = AuditRow {
        resource_id: tenant_id.clone(),
        tenant_id,
        actor_subject: key.actor.clone(),
        action: rows::DENIED,
        details,
        correlation_id: String::new(),
    };
    rows::insert(pool, &[row], false).await
}

/// Commits queued rows in batches, one INSERT per installation in a batch,
/// and tells each request whether its rows are durable.
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
            let all: Vec<AuditRow> = writes.iter().flat_map(|w| w.rows.iter().cloned()).collect();
            let correlation = writes.iter().all(|w| w.correlation);
            let result = rows::insert(&writes[0].installation.pool, &all, correlation).await.map_err(|e| e.to_string());
            for write in writes {
                let _ = write.committed.send(result.clone()); // a request that gave up no longer listens
            }
        }))
        .await;
    }
}
