//! The ops summary: upstream's seven figures (`readOpsSummary` of Kublai's API,
//! one tenant per call) with upstream's names and semantics, for one tenant or
//! for every tenant of an installation at once:
//!
//! - `pendingOutboxEvents`: outbox events with `delivered_at` null;
//! - `availableOutboxEvents`: those of them with `available_at <= now()`;
//! - `oldestPendingOutboxAgeSeconds`: the age of the oldest pending event by
//!   `occurred_at`, whole seconds, 0 when none is pending;
//! - `failedSearchJobs`: search-index jobs `failed`;
//! - `pendingSearchJobs`: jobs `pending` or `processing`;
//! - `incompleteGcRuns`: GC runs with `completed_at` null;
//! - `recentPolicyTimeouts24h`: `policy.timeout` audit rows of the last 24 hours.
//!
//! One statement reads every figure of every tenant asked for, each from the
//! small set its partial index bounds (pending events, unfinished jobs, one
//! audit action): upstream's indexes, none of ours. A figure whose table the
//! installation's schema lacks is `null`, never a guessed number.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};

use super::schema::{self, SchemaReport, Use};
use crate::db::{DatabaseUrl, DbError};

/// The seven figures; `None` where the schema lacks the table.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub pending_outbox_events: Option<i64>,
    pub available_outbox_events: Option<i64>,
    pub oldest_pending_outbox_age_seconds: Option<i64>,
    pub failed_search_jobs: Option<i64>,
    pub pending_search_jobs: Option<i64>,
    pub incomplete_gc_runs: Option<i64>,
    #[serde(rename = "recentPolicyTimeouts24h")]
    pub recent_policy_timeouts_24h: Option<i64>,
}

impl Figures {
    /// The figures of several tenants as one installation: counts add up, the
    /// oldest pending age is the oldest of them.
    fn absorb(&mut self, other: &Figures) {
        fn add(into: &mut Option<i64>, v: Option<i64>) {
            if let Some(v) = v {
                *into = Some(into.unwrap_or(0) + v);
            }
        }
        add(&mut self.pending_outbox_events, other.pending_outbox_events);
        add(&mut self.available_outbox_events, other.available_outbox_events);
        add(&mut self.failed_search_jobs, other.failed_search_jobs);
        add(&mut self.pending_search_jobs, other.pending_search_jobs);
        add(&mut self.incomplete_gc_runs, other.incomplete_gc_runs);
        add(&mut self.recent_policy_timeouts_24h, other.recent_policy_timeouts_24h);
        if let Some(age) = other.oldest_pending_outbox_age_seconds {
            let oldest = self.oldest_pending_outbox_age_seconds.unwrap_or(0).max(age);
            self.oldest_pending_outbox_age_seconds = Some(oldest);
        }
    }

    /// Each figure with its upstream name, for audit details and messages.
    pub fn named(&self) -> [(&'static str, Option<i64>); 7] {
        [
            ("pendingOutboxEvents", self.pending_outbox_events),
            ("availableOutboxEvents", self.available_outbox_events),
            ("oldestPendingOutboxAgeSeconds", self.oldest_pending_outbox_age_seconds),
            ("failedSearchJobs", self.failed_search_jobs),
            ("pendingSearchJobs", self.pending_search_jobs),
            ("incompleteGcRuns", self.incomplete_gc_runs),
            ("recentPolicyTimeouts24h", self.recent_policy_timeouts_24h),
        ]
    }
}

/// One tenant's figures. `slug` is absent for a tenant id that rows carry but
/// `tenants` does not (the operational tables have no foreign key).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantFigures {
    pub tenant_id: String,
    pub slug: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
}

impl TenantFigures {
    /// How a person names the tenant: its slug, else its id.
    pub fn name(&self) -> &str {
        self.slug.as_deref().unwrap_or(&self.tenant_id)
    }
}

/// Every figure of the tenants read, read in one statement at `checked_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsSummary {
    pub checked_at: DateTime<Utc>,
    /// The installation as a whole (every tenant read).
    pub totals: Figures,
    /// Per tenant, by slug.
    pub tenants: Vec<TenantFigures>,
}

/// Which tenants to read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tenants {
    All,
    /// One tenant, by id (resolve a slug with [`find_tenant`] first).
    One(String),
}

/// A tenant as `?tenant=` names it: its slug (case-insensitive, as upstream's
/// citext) or its id. `None` when there is no such tenant.
pub async fn find_tenant(conn: &mut PgConnection, wanted: &str) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id::text, slug::text FROM tenants
         WHERE slug = $1::citext OR tenant_id::text = lower($1) ORDER BY slug LIMIT 1",
    )
    .bind(wanted)
    .fetch_optional(conn)
    .await
}

/// Every tenant's id and slug, to resolve `?tenant=` in memory ([`resolve`]).
pub async fn all_tenants(conn: &mut PgConnection) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT tenant_id::text, slug::text FROM tenants").fetch_all(conn).await
}

/// [`find_tenant`] over a list read by [`all_tenants`]. `None` means ask the
/// database: the tenant may be newer than the list, and a non-ASCII name is
/// left to the database's own case folding (citext), which Rust's need not match.
pub fn resolve(tenants: &[(String, String)], wanted: &str) -> Option<(String, String)> {
    if !wanted.is_ascii() {
        return None;
    }
    let named = |(id, slug): &&(String, String)| slug.eq_ignore_ascii_case(wanted) || id.eq_ignore_ascii_case(wanted);
    tenants.iter().filter(named).min_by(|a, b| a.1.cmp(&b.1)).cloned()
}

/// The installation's tenant when it has exactly one (as upstream deploys it).
pub async fn only_tenant(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT tenant_id::text FROM tenants LIMIT 2").fetch_all(conn).await?;
    Ok((ids.len() == 1).then(|| ids[0].clone()))
}

/// The statement [`read`] runs for `schema` (`$1`: the tenant id when
/// `one_tenant`): a figure whose table is missing reads as NULL.
pub fn statement(schema: &SchemaReport, one_tenant: bool) -> String {
    let only = |column: &str| if one_tenant { format!("AND {column} = $1::uuid") } else { String::new() };
    let empty = |columns: &str| format!("SELECT NULL::uuid AS tenant_id, {columns} WHERE false");
    let outbox = if schema.supports(Use::Outbox) {
        format!(
            "SELECT tenant_id, count(*) AS pending, count(*) FILTER (WHERE available_at <= now()) AS available,
                    coalesce(max(extract(epoch FROM (now() - occurred_at))), 0)::bigint AS oldest
             FROM outbox_events WHERE delivered_at IS NULL {} GROUP BY tenant_id",
            only("tenant_id")
        )
    } else {
        empty("NULL::bigint AS pending, NULL::bigint AS available, NULL::bigint AS oldest")
    };
    let search = if schema.supports(Use::SearchJobs) {
        format!(
            "SELECT tenant_id, count(*) FILTER (WHERE status = 'failed') AS failed,
                    count(*) FILTER (WHERE status IN ('pending', 'processing')) AS pending
             FROM search_index_jobs WHERE status IN ('pending', 'processing', 'failed') {} GROUP BY tenant_id",
            only("tenant_id")
        )
    } else {
        empty("NULL::bigint AS failed, NULL::bigint AS pending")
    };
    let gc = if schema.supports(Use::GcRuns) {
        format!(
            "SELECT tenant_id, count(*) AS incomplete FROM gc_runs WHERE completed_at IS NULL {} GROUP BY tenant_id",
            only("tenant_id")
        )
    } else {
        empty("NULL::bigint AS incomplete")
    };
    let policy = if schema.supports(Use::PolicyTimeouts) {
        format!(
            "SELECT tenant_id, count(*) AS timeouts FROM audit_log
             WHERE action = 'policy.timeout' AND occurred_at >= now() - interval '24 hours' {} GROUP BY tenant_id",
            only("tenant_id")
        )
    } else {
        empty("NULL::bigint AS timeouts")
    };
    // A figure the schema lacks stays NULL; one it has is 0 for a tenant without rows.
    let figure = |supported: bool, expr: &str| {
        if supported { format!("coalesce({expr}, 0)") } else { "NULL::bigint".to_string() }
    };
    format!(
        "WITH outbox AS ({outbox}), search AS ({search}), gc AS ({gc}), policy AS ({policy}),
         ids AS (SELECT tenant_id FROM tenants WHERE true {tenant_only}
                 UNION SELECT tenant_id FROM outbox UNION SELECT tenant_id FROM search
                 UNION SELECT tenant_id FROM gc UNION SELECT tenant_id FROM policy)
         SELECT ids.tenant_id::text, t.slug::text, {pending}, {available}, {oldest}, {failed}, {search_pending},
                {incomplete}, {timeouts}, now()
         FROM ids LEFT JOIN tenants t USING (tenant_id) LEFT JOIN outbox o USING (tenant_id)
              LEFT JOIN search s USING (tenant_id) LEFT JOIN gc g USING (tenant_id) LEFT JOIN policy p USING (tenant_id)
         ORDER BY t.slug NULLS LAST, ids.tenant_id",
        tenant_only = only("tenant_id"),
        pending = figure(schema.supports(Use::Outbox), "o.pending"),
        available = figure(schema.supports(Use::Outbox), "o.available"),
        oldest = figure(schema.supports(Use::Outbox), "o.oldest"),
        failed = figure(schema.supports(Use::SearchJobs), "s.failed"),
        search_pending = figure(schema.supports(Use::SearchJobs), "s.pending"),
        incomplete = figure(schema.supports(Use::GcRuns), "g.incomplete"),
        timeouts = figure(schema.supports(Use::PolicyTimeouts), "p.timeouts"),
    )
}

/// Reads the figures of `tenants` in one statement, in one read-only
/// transaction, so every figure describes the same moment. Parallel workers
/// are off: on these index-bounded counts starting one costs more than the count.
pub async fn read(
    conn: &mut PgConnection,
    schema: &SchemaReport,
    tenants: &Tenants,
) -> Result<OpsSummary, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0").execute(&mut *tx).await?;
    let sql = statement(schema, matches!(tenants, Tenants::One(_)));
    let mut query = sqlx::query(&sql);
    if let Tenants::One(id) = tenants {
        query = query.bind(id);
    }
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let mut summary = OpsSummary { checked_at: Utc::now(), totals: Figures::default(), tenants: Vec::new() };
    for row in rows {
        let figures = Figures {
            pending_outbox_events: row.get(2),
            available_outbox_events: row.get(3),
            oldest_pending_outbox_age_seconds: row.get(4),
            failed_search_jobs: row.get(5),
            pending_search_jobs: row.get(6),
            incomplete_gc_runs: row.get(7),
            recent_policy_timeouts_24h: row.get(8),
        };
        summary.checked_at = row.get(9);
        summary.totals.absorb(&figures);
        summary.tenants.push(TenantFigures { tenant_id: row.get(0), slug: row.get(1), figures });
    }
    // No tenant at all: the installation's figures are zeros where the tables exist.
    if summary.tenants.is_empty() {
        let zero = |u: Use| schema.supports(u).then_some(0);
        summary.totals = Figures {
            pending_outbox_events: zero(Use::Outbox),
            available_outbox_events: zero(Use::Outbox),
            oldest_pending_outbox_age_seconds: zero(Use::Outbox),
            failed_search_jobs: zero(Use::SearchJobs),
            pending_search_jobs: zero(Use::SearchJobs),
            incomplete_gc_runs: zero(Use::GcRuns),
            recent_policy_timeouts_24h: zero(Use::PolicyTimeouts),
        };
    }
    Ok(summary)
}

/// What a probe of an installation's database reads.
pub struct Probe {
    pub schema: SchemaReport,
    pub summary: OpsSummary,
    /// The GC runs that may have deleted blobs (absent before level 0008).
    pub gc: Option<super::recoverability::GcHistory>,
}

/// The schema, every tenant's figures and the GC history over a connection of
/// its own, closed after: what the controller's periodic probe reads (never audited).
pub async fn probe(url: &DatabaseUrl) -> Result<Probe, DbError> {
    let mut conn = PgConnection::connect_with(&url.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })?;
    let q = |context: &'static str| {
        let url = url.to_string();
        move |source| DbError::Query { context: context.into(), url, source }
    };
    let shape = schema::detect(&mut conn).await.map_err(q("reading the schema's level and shape"))?;
    let summary = if shape.is_foreign() {
        OpsSummary { checked_at: Utc::now(), totals: Figures::default(), tenants: Vec::new() }
    } else {
        read(&mut conn, &shape, &Tenants::All).await.map_err(q("reading the ops summary"))?
    };
    let gc = if shape.supports(Use::GcRuns) {
        Some(super::recoverability::gc_history(&mut conn).await.map_err(q("reading the GC history"))?)
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(Probe { schema: shape, summary, gc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_found_by_slug_in_any_ascii_case_or_by_id_and_the_rest_is_asked_of_the_database() {
        let id = "40a6d137-32a4-de23-af98-3ddcfa762bef";
        let tenants = vec![(id.to_string(), "default".to_string()), ("1".repeat(8), "Team-B".to_string())];
        let found = |wanted: &str| resolve(&tenants, wanted).map(|(id, _)| id);
        assert_eq!(found("DEFAULT").as_deref(), Some(id));
        assert_eq!(found(&id.to_uppercase()).as_deref(), Some(id));
        assert_eq!(found("team-b").as_deref(), Some("11111111"));
        assert_eq!(found("other"), None, "a tenant newer than the list: the database decides");
        assert_eq!(found("défault"), None, "non-ASCII: citext's folding decides, not Rust's");
    }

    #[test]
    fn an_installation_adds_counts_and_keeps_the_oldest_age() {
        let mut total = Figures::default();
        let a = Figures {
            pending_outbox_events: Some(3),
            oldest_pending_outbox_age_seconds: Some(40),
            failed_search_jobs: Some(1),
            ..Default::default()
        };
        let b = Figures {
            pending_outbox_events: Some(2),
            oldest_pending_outbox_age_seconds: Some(700),
            failed_search_jobs: Some(0),
            ..Default::default()
        };
        total.absorb(&a);
        total.absorb(&b);
        assert_eq!(total.pending_outbox_events, Some(5));
        assert_eq!(total.oldest_pending_outbox_age_seconds, Some(700));
        assert_eq!(total.failed_search_jobs, Some(1));
        assert_eq!(total.incomplete_gc_runs, None, "a figure nobody could read stays unknown");
    }

    #[test]
    fn figures_serialise_with_upstreams_names() {
        let json = serde_json::to_value(Figures { recent_policy_timeouts_24h: Some(2), ..Default::default() }).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "availableOutboxEvents",
                "failedSearchJobs",
                "incompleteGcRuns",
                "oldestPendingOutboxAgeSeconds",
                "pendingOutboxEvents",
                "pendingSearchJobs",
                "recentPolicyTimeouts24h"
            ]
        );
        assert_eq!(json["recentPolicyTimeouts24h"], 2);
    }

    #[test]
    fn a_missing_table_reads_as_null_not_zero() {
        let schema = SchemaReport {
            missing: vec!["gc_runs (since 0008_phase5_tombstones_gc_reconcile.sql): needed by incompleteGcRuns".into()],
            ..Default::default()
        };
        let sql = statement(&schema, false);
        assert!(!sql.contains("FROM gc_runs"), "{sql}");
        assert!(sql.contains("FROM outbox_events"));
        let one = statement(&SchemaReport::default(), true);
        assert!(one.contains("delivered_at IS NULL AND tenant_id = $1::uuid"), "{one}");
    }
}
