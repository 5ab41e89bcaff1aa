//! Whether a source can be protected physically: its role must be allowed to
//! stream WAL (REPLICATION, or superuser), and the server must write WAL a
//! replica can replay (`wal_level` replica or logical) and accept a WAL
//! sender (`max_wal_senders` above 0). Managed PostgreSQL often grants none of
//! this to an application's role; the logical path needs none of it.

use sqlx::{Connection, PgConnection};

use super::super::EngineError;
use crate::db::{DatabaseUrl, DbError};

/// Why the physical path is unavailable for this source, or `None` when it is
/// available.
pub async fn physical_unavailable(source: &DatabaseUrl) -> Result<Option<String>, EngineError> {
    let mut conn = PgConnection::connect_with(&source.connect_options())
        .await
        .map_err(|e| DbError::Connect { url: source.to_string(), source: e })?;
    let (allowed, role, wal_level, senders): (bool, String, String, i32) = sqlx::query_as(
        "SELECT r.rolsuper OR r.rolreplication, current_user::text, current_setting('wal_level'), \
                current_setting('max_wal_senders')::int \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| DbError::Query {
        context: "reading the role's REPLICATION attribute and the WAL settings".into(),
        url: source.to_string(),
        source: e,
    })?;
    Ok(explain(allowed, &role, &wal_level, senders))
}

/// Refuses a physical step (base backup, WAL archiving) on a source that
/// cannot serve it, saying why and what to do.
pub async fn require_physical(source: &DatabaseUrl) -> Result<(), EngineError> {
    match physical_unavailable(source).await? {
        None => Ok(()),
        Some(why) => Err(EngineError::Config(format!(
            "the physical path (base backups, WAL archiving) is unavailable for this source: {why}. Logical backups (backup) need none of this"
        ))),
    }
}

fn explain(allowed: bool, role: &str, wal_level: &str, senders: i32) -> Option<String> {
    let mut why = Vec::new();
    if !allowed {
        why.push(format!(
            "role {role} lacks the REPLICATION attribute (ALTER ROLE {role} REPLICATION, or on managed PostgreSQL use the provider's replication role)"
        ));
    }
    if wal_level == "minimal" {
        why.push("wal_level is minimal (set it to replica and restart the server)".to_string());
    }
    if senders < 1 {
        why.push("max_wal_senders is 0 (raise it and restart the server)".to_string());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn every_missing_capability_is_named_with_its_remedy() {
        assert_eq!(explain(true, "dr", "replica", 10), None);
        let why = explain(false, "app", "minimal", 0).unwrap();
        assert!(why.starts_with("role app lacks the REPLICATION attribute (ALTER ROLE app REPLICATION"), "{why}");
        assert!(why.contains("wal_level is minimal") && why.contains("max_wal_senders is 0"), "{why}");
        assert_eq!(explain(true, "dr", "logical", 1), None);
    }
}
