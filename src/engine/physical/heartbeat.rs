//! The heartbeat: a row the WAL archiver commits into the source every few
//! seconds (opt-in, `wal --heartbeat`), so a point-in-time restore can say
//! exactly how recent the data it recovered is: the newest heartbeat present
//! is ground truth the WAL itself carries.
//!
//! The table is the engine's own, `artifortress_dr.heartbeat`, created with a
//! comment that marks it; a table of that name without the mark is refused,
//! and rows older than a week are pruned.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::super::EngineError;
use super::Lsn;

pub const TABLE: &str = "artifortress_dr.heartbeat";
const MARK: &str = "artifortress-operator heartbeat: one row per beat of `wal --heartbeat`; safe to drop when unused";

fn query_err(context: &'static str) -> impl FnOnce(sqlx::Error) -> EngineError {
    move |e| EngineError::Tool { tool: "PostgreSQL", detail: format!("{context}: {e}") }
}

/// Creates the heartbeat table unless it is there already (and ours).
pub async fn ensure_table(conn: &mut PgConnection) -> Result<(), EngineError> {
    let existing: Option<Option<String>> = sqlx::query_scalar(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'artifortress_dr' AND c.relname = 'heartbeat'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_err("looking for the heartbeat table"))?;
    match existing {
        Some(Some(comment)) if comment == MARK => return Ok(()),
        Some(_) => {
            return Err(EngineError::refused(
                "NotOurs",
                format!(
                    "{TABLE} exists on the source and was not created by artifortress-operator (no mark in its comment): \
                     it is left alone; drop --heartbeat or rename that table"
                ),
            ));
        }
        None => {}
    }
    for statement in [
        "CREATE SCHEMA IF NOT EXISTS artifortress_dr".to_string(),
        format!("CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"),
        format!("COMMENT ON TABLE {TABLE} IS '{MARK}'"),
    ] {
        sqlx::query(&statement).execute(&mut *conn).await.map_err(query_err("creating the heartbeat table"))?;
    }
    Ok(())
}

/// One beat: a committed row (autocommit), and an occasional prune. Returns
/// its time and a WAL position its commit record ends before (the archive
/// holds the beat once it holds the WAL up to there).
pub async fn beat(conn: &mut PgConnection) -> Result<(DateTime<Utc>, Lsn), EngineError> {
    let at: DateTime<Utc> = sqlx::query_scalar(&format!("INSERT INTO {TABLE} DEFAULT VALUES RETURNING at"))
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err("writing a heartbeat"))?;
    let after: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err("reading the WAL position after a heartbeat"))?;
    let after = after.parse::<Lsn>().map_err(EngineError::Config)?;
    if fastrand::u32(..1000) == 0 {
        sqlx::query(&format!("DELETE FROM {TABLE} WHERE at < now() - interval '7 days'"))
            .execute(&mut *conn)
            .await
            .map_err(query_err("pruning old heartbeats"))?;
    }
    Ok((at, after))
}

/// The newest heartbeat in a (restored) database; `None` without the table or rows.
pub async fn newest(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, EngineError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(TABLE)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err("looking for the heartbeat table"))?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar(&format!("SELECT max(at) FROM {TABLE}"))
        .fetch_one(&mut *conn)
        .await
        .map_err(query_err("reading the newest heartbeat"))
}
