//! Rows in Artifortress's own `audit_log`, shaped as upstream writes them
//! (`writeAudit` of Kublai's API): `tenant_id`, `actor_subject`, `action`,
//! `resource_type`, `resource_id`, `details` (a JSON object of strings) and,
//! from level 0012, `correlation_id` — so the installation's auditors see the
//! operator's reads beside their own.

use sqlx::PgPool;

use super::ops::Figures;

/// A read of a tenant's ops summary (upstream's action for the same read).
pub const READ: &str = "ops.summary.read";
/// Rejected reads (unauthenticated or not an admin), counted per actor and reason.
pub const DENIED: &str = "ops.summary.denied";
pub const RESOURCE_TYPE: &str = "operations";

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub tenant_id: String,
    pub actor_subject: String,
    pub action: &'static str,
    /// The tenant id, as upstream's reads record it.
    pub resource_id: String,
    pub details: serde_json::Value,
    pub correlation_id: String,
}

/// The details of a read: each figure as a string (as upstream writes them),
/// `unavailable` where the schema lacks its table, and the readiness status.
pub fn read_details(figures: &Figures, readiness: &str, installation: &str) -> serde_json::Value {
    let mut details = serde_json::Map::new();
    for (name, value) in figures.named() {
        details.insert(name.into(), value.map_or("unavailable".into(), |v| v.to_string()).into());
    }
    details.insert("readinessStatus".into(), readiness.into());
    details.insert("servedBy".into(), "artifortress-operator".into());
    details.insert("installation".into(), installation.into());
    details.into()
}

/// Writes `rows` in one statement (one commit). Without the `correlation_id`
/// column (levels before 0012) the rows go without it.
pub async fn insert(pool: &PgPool, rows: &[AuditRow], correlation: bool) -> Result<(), sqlx::Error> {
    let column = |f: fn(&AuditRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let details: Vec<String> = rows.iter().map(|r| r.details.to_string()).collect();
    let actions = column(|r| r.action);
    let (columns, values) = if correlation { (", correlation_id", ", c::uuid") } else { ("", "") };
    sqlx::query(&format!(
        "INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id, details{columns})
         SELECT t::uuid, a, x, $7, r, d::jsonb{values}
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(t, a, x, r, d, c)"
    ))
    .bind(column(|r| &r.tenant_id))
    .bind(column(|r| &r.actor_subject))
    .bind(actions)
    .bind(column(|r| &r.resource_id))
    .bind(details)
    .bind(column(|r| &r.correlation_id))
    .bind(RESOURCE_TYPE)
    .execute(pool)
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_strings_as_upstream_writes_them() {
        let figures = Figures { pending_outbox_events: Some(12), incomplete_gc_runs: None, ..Default::default() };
        let d = read_details(&figures, "ready", "production");
        assert_eq!(d["pendingOutboxEvents"], "12");
        assert_eq!(d["incompleteGcRuns"], "unavailable");
        assert_eq!(d["readinessStatus"], "ready");
        assert!(d.as_object().unwrap().values().all(|v| v.is_string()), "{d}");
    }
}
