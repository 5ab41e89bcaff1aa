//! What a physical drill checks on the restored instance: the recovery point
//! its heartbeat shows, and amcheck on every valid B-tree index.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::super::super::EngineError;
use super::super::heartbeat;
use super::{Restored, Target};

/// What a physical drill found.
#[derive(Debug)]
pub struct DrillFindings {
    /// The newest heartbeat recovered.
    pub newest_heartbeat: Option<DateTime<Utc>>,
    /// Target (or drill start, for latest) minus the newest heartbeat.
    pub rpo_seconds: Option<f64>,
    pub indexes_checked: u64,
    pub amcheck_seconds: f64,
    /// Indexes whose only finding is a deduplication flag an older minor release set.
    pub warnings: Vec<String>,
}

/// What amcheck says of a B-tree index built by a minor release that judged
/// deduplication safe for its type when a later one does not (PostgreSQL
/// changed this for `char(n)` in a minor release): not corruption of the
/// backup; the index should be rebuilt (REINDEX) on the source after that update.
const DEDUPLICATION_FLAG: &str = "metapage incorrectly indicates that deduplication is safe";

/// The checks of a physical drill on a restored instance: the heartbeat's
/// recovery point, and amcheck on every valid B-tree index of the database.
pub async fn check(
    restored: &Restored,
    target: Target,
    drill_started: DateTime<Utc>,
) -> Result<DrillFindings, EngineError> {
    let database = &restored.manifest.source.database;
    let mut conn = restored.instance.connect(database).await.map_err(|e| EngineError::Tool {
        tool: "postgres (scratch instance)",
        detail: format!("connecting to its database {database}: {e}"),
    })?;
    let newest_heartbeat = heartbeat::newest(&mut conn).await?;
    let reference = match target {
        Target::Time(t) => t,
        _ => drill_started,
    };
    let rpo_seconds = newest_heartbeat.map(|h| (reference - h).num_milliseconds().max(0) as f64 / 1000.0);
    let started = Instant::now();
    let q = |e: sqlx::Error| EngineError::Tool { tool: "amcheck", detail: format!("on the scratch instance: {e}") };
    sqlx::query("CREATE EXTENSION IF NOT EXISTS amcheck").execute(&mut conn).await.map_err(q)?;
    let indexes: Vec<(i64, String)> = sqlx::query_as(
        "SELECT c.oid::bigint, c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND i.indisvalid AND c.relpersistence <> 't' \
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(q)?;
    // One index at a time: a finding names its index, and a stale deduplication
    // flag does not hide the checks of the others.
    let mut flagged = Vec::new();
    for (oid, name) in &indexes {
        match sqlx::query("SELECT bt_index_check($1::oid::regclass)").bind(oid).execute(&mut conn).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains(DEDUPLICATION_FLAG) => flagged.push(name.clone()),
            Err(e) => return Err(q(e)),
        }
    }
    let warnings = if flagged.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "amcheck: {} index(es) carry a deduplication flag an older PostgreSQL minor release set ({}); not a fault of the backup: REINDEX them on the source after its minor update",
            flagged.len(),
            flagged.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )]
    };
    Ok(DrillFindings {
        newest_heartbeat,
        rpo_seconds,
        indexes_checked: indexes.len() as u64,
        amcheck_seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
}
