//! The ops summary: backlog and health signals of an installation, read from the
//! operations tables through their partial indexes (see migrations/).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::{DatabaseUrl, DbError};

/// The raw signals. Field names are the documented JSON contract of
/// `GET /v1/admin/ops/summary`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpsSignals {
    pub outbox_pending: i64,
    /// Pending and `available_at <= now()`: deliverable right now.
    pub outbox_available: i64,
    /// Age of the oldest pending event; `null` when none is pending.
    pub outbox_oldest_pending_age_seconds: Option<f64>,
    pub search_jobs_failed: i64,
    pub search_jobs_pending: i64,
    pub incomplete_gc_runs: i64,
    /// `policy.timeout` audit rows in the last 24 hours.
    pub policy_timeouts_24h: i64,
    pub generated_at: DateTime<Utc>,
}

/// One round trip in one transaction, so every signal describes the same moment.
/// Parallel workers are off: on these index-bounded counts starting a worker
/// costs more (~40 ms) than the count itself.
pub async fn read(pool: &PgPool, url: &DatabaseUrl) -> Result<OpsSignals, DbError> {
    let err = |source| DbError::Query { context: "reading the ops summary".into(), url: url.to_string(), source };
    let mut tx = pool.begin().await.map_err(err)?;
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0").execute(&mut *tx).await.map_err(err)?;
    let row = sqlx::query(
        "SELECT
           (SELECT count(*) FROM outbox_events WHERE status = 'pending'),
           (SELECT count(*) FROM outbox_events WHERE status = 'pending' AND available_at <= now()),
           (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM outbox_events WHERE status = 'pending'),
           (SELECT count(*) FROM search_index_jobs WHERE status = 'failed'),
           (SELECT count(*) FROM search_index_jobs WHERE status = 'pending'),
           (SELECT count(*) FROM gc_runs WHERE completed_at IS NULL),
           (SELECT count(*) FROM audit_log WHERE action = 'policy.timeout' AND occurred_at > now() - interval '24 hours'),
           now()",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(OpsSignals {
        outbox_pending: row.get(0),
        outbox_available: row.get(1),
        outbox_oldest_pending_age_seconds: row.get(2),
        search_jobs_failed: row.get(3),
        search_jobs_pending: row.get(4),
        incomplete_gc_runs: row.get(5),
        policy_timeouts_24h: row.get(6),
        generated_at: row.get(7),
    })
}
