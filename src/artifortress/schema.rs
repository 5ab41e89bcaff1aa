//! The Artifortress schema: our model of upstream's migrations (`migrations/`,
//! one file per upstream version, under upstream's file names), applied the way
//! upstream's `db-migrate.sh` applies them, and the detection of the level and
//! shape of a real installation's schema.
//!
//! An installation's schema belongs to Artifortress: nothing here changes it.
//! [`migrate`] is for empty demo and test databases and refuses any other.

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};

use crate::db::{DatabaseUrl, DbError};

/// Our model, in upstream's order: (version = upstream's file name, DDL).
pub const MODEL: &[(&str, &str)] = &[
    ("0001_init.sql", include_str!("../../migrations/0001_init.sql")),
    ("0002_phase1_identity_and_rbac.sql", include_str!("../../migrations/0002_phase1_identity_and_rbac.sql")),
    ("0003_phase2_upload_sessions.sql", include_str!("../../migrations/0003_phase2_upload_sessions.sql")),
    ("0004_phase3_publish_guardrails.sql", include_str!("../../migrations/0004_phase3_publish_guardrails.sql")),
    (
        "0005_phase3_published_immutability_hardening.sql",
        include_str!("../../migrations/0005_phase3_published_immutability_hardening.sql"),
    ),
    (
        "0006_phase4_policy_search_quarantine_scaffold.sql",
        include_str!("../../migrations/0006_phase4_policy_search_quarantine_scaffold.sql"),
    ),
    ("0007_phase3_manifest_persistence.sql", include_str!("../../migrations/0007_phase3_manifest_persistence.sql")),
    (
        "0008_phase5_tombstones_gc_reconcile.sql",
        include_str!("../../migrations/0008_phase5_tombstones_gc_reconcile.sql"),
    ),
    ("0009_post_ga_search_read_model.sql", include_str!("../../migrations/0009_post_ga_search_read_model.sql")),
    (
        "0010_enterprise_identity_and_reliability.sql",
        include_str!("../../migrations/0010_enterprise_identity_and_reliability.sql"),
    ),
    (
        "0011_tenant_isolation_and_admission_controls.sql",
        include_str!("../../migrations/0011_tenant_isolation_and_admission_controls.sql"),
    ),
    (
        "0012_tenant_role_bindings_and_audit_correlation.sql",
        include_str!("../../migrations/0012_tenant_role_bindings_and_audit_correlation.sql"),
    ),
    ("0013_governance_controls.sql", include_str!("../../migrations/0013_governance_controls.sql")),
    ("0014_search_assurance_controls.sql", include_str!("../../migrations/0014_search_assurance_controls.sql")),
    ("0015_worker_claim_path_indexes.sql", include_str!("../../migrations/0015_worker_claim_path_indexes.sql")),
];

/// The newest level this operator knows.
pub fn model_level() -> &'static str {
    MODEL.last().expect("the model has levels").0
}

/// The table upstream's `db-migrate.sh` records applied versions in.
const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// What `migrate` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Migrated {
    /// The model was applied up to this level.
    Applied { level: &'static str, versions: usize },
    /// The database already is the complete model: nothing to do.
    AlreadyCurrent,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "refusing to migrate {url}: it already has a schema ({what}); the operator never changes an installation's schema — `migrate` is for empty demo and test databases (create one with `createdb`)"
    )]
    NotEmpty { url: String, what: String },
    #[error("{0}")]
    Db(#[from] DbError),
}

/// Applies the model to an empty database as upstream's `db-migrate.sh` does:
/// `schema_migrations` first, then every file in order, each recorded under its
/// file name (here each file and its record in one transaction, so a failure
/// leaves no half-applied level). A database that is the complete model already
/// is left as it is; any other database with tables, or with a partial or
/// foreign history, is refused.
pub async fn migrate(url: &DatabaseUrl) -> Result<Migrated, MigrateError> {
    let mut conn = connect(url).await?;
    let q = |context: &str| query_error(url, context);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(q("listing existing tables"))?;
    if !tables.is_empty() {
        if tables.iter().any(|t| t == "schema_migrations") {
            let recorded: Vec<String> = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .map_err(q("reading schema_migrations"))?;
            if recorded.iter().map(String::as_str).eq(MODEL.iter().map(|(v, _)| *v)) {
                return Ok(Migrated::AlreadyCurrent);
            }
            let what = format!(
                "schema_migrations records {} version(s), newest {}; this model has {} up to {}",
                recorded.len(),
                recorded.last().map_or("none", String::as_str),
                MODEL.len(),
                model_level()
            );
            return Err(MigrateError::NotEmpty { url: url.to_string(), what });
        }
        let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        let what =
            format!("{} table(s): {}{}", tables.len(), shown.join(", "), if tables.len() > 5 { ", …" } else { "" });
        return Err(MigrateError::NotEmpty { url: url.to_string(), what });
    }
    sqlx::query(SCHEMA_MIGRATIONS).execute(&mut conn).await.map_err(q("creating schema_migrations"))?;
    for (version, ddl) in MODEL {
        let mut tx = conn.begin().await.map_err(q("starting a transaction"))?;
        sqlx::raw_sql(ddl).execute(&mut *tx).await.map_err(q(&format!("applying {version}")))?;
        sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(q(&format!("recording {version}")))?;
        tx.commit().await.map_err(q(&format!("committing {version}")))?;
    }
    Ok(Migrated::Applied { level: model_level(), versions: MODEL.len() })
}

async fn connect(url: &DatabaseUrl) -> Result<PgConnection, DbError> {
    PgConnection::connect_with(&url.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })
}

fn query_error(url: &DatabaseUrl, context: &str) -> impl Fn(sqlx::Error) -> DbError + use<> {
    let (url, context) = (url.to_string(), context.to_string());
    move |source| DbError::Query { context: context.clone(), url: url.clone(), source }
}

/// A piece of the schema something needs: a table with these columns, which
/// upstream level introduced them, and what uses them.
#[derive(Clone, Copy, Debug)]
pub struct Requirement {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    /// The upstream version that introduced them.
    pub since: &'static str,
    /// What needs them (figures, audit, blob check), for messages.
    pub needed_by: &'static str,
}

/// Everything the operator reads or writes, with the level that brought it.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        table: "tenants",
        columns: &["tenant_id", "slug"],
        since: "0001_init.sql",
        needed_by: "every per-tenant figure and audit row",
    },
    Requirement {
        table: "outbox_events",
        columns: &["tenant_id", "occurred_at", "available_at", "delivered_at"],
        since: "0001_init.sql",
        needed_by: "pendingOutboxEvents, availableOutboxEvents, oldestPendingOutboxAgeSeconds",
    },
    Requirement {
        table: "audit_log",
        columns: &["tenant_id", "actor_subject", "action", "resource_type", "resource_id", "details", "occurred_at"],
        since: "0001_init.sql",
        needed_by: "recentPolicyTimeouts24h and the audit of ops-summary reads",
    },
    Requirement {
        table: "search_index_jobs",
        columns: &["tenant_id", "status"],
        since: "0006_phase4_policy_search_quarantine_scaffold.sql",
        needed_by: "failedSearchJobs, pendingSearchJobs",
    },
    Requirement {
        table: "gc_runs",
        columns: &["tenant_id", "mode", "started_at", "completed_at", "deleted_blob_count", "retention_grace_hours"],
        since: "0008_phase5_tombstones_gc_reconcile.sql",
        needed_by: "incompleteGcRuns and the blob recoverability window",
    },
    Requirement {
        table: "blobs",
        columns: &["digest", "length_bytes", "storage_key"],
        since: "0001_init.sql",
        needed_by: "the blob check",
    },
    Requirement {
        table: "artifact_entries",
        columns: &["blob_digest"],
        since: "0001_init.sql",
        needed_by: "the blob check (references)",
    },
    Requirement {
        table: "upload_sessions",
        columns: &["state", "object_staging_key", "committed_blob_digest"],
        since: "0003_phase2_upload_sessions.sql",
        needed_by: "the blob check (uploads in flight, committed uploads)",
    },
    Requirement {
        table: "manifests",
        columns: &["manifest_blob_digest"],
        since: "0007_phase3_manifest_persistence.sql",
        needed_by: "the blob check (manifest references)",
    },
];

/// An optional column: used where present, never required.
pub const AUDIT_CORRELATION: (&str, &str, &str) =
    ("audit_log", "correlation_id", "0012_tenant_role_bindings_and_audit_correlation.sql");

/// The level and shape of an installation's schema.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaReport {
    /// The newest version `schema_migrations` records (none: no such table or empty).
    pub level: Option<String>,
    /// How many versions it records.
    pub versions: usize,
    /// Recorded versions this operator does not know (a newer Artifortress).
    pub unknown_versions: Vec<String>,
    /// What is missing, each as "table.column (since VERSION): needed by …".
    pub missing: Vec<String>,
    /// Whether audit rows can carry `correlation_id` (0012 on).
    pub audit_correlation: bool,
}

/// Which of the operator's uses the schema allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    Outbox,
    SearchJobs,
    GcRuns,
    PolicyTimeouts,
    Audit,
    Tenants,
    BlobCheck,
}

impl SchemaReport {
    fn lacks(&self, table: &str) -> bool {
        self.missing.iter().any(|m| m.starts_with(&format!("{table}.")) || m.starts_with(&format!("{table} ")))
    }

    pub fn supports(&self, what: Use) -> bool {
        let needs: &[&str] = match what {
            Use::Outbox => &["tenants", "outbox_events"],
            Use::SearchJobs => &["tenants", "search_index_jobs"],
            Use::GcRuns => &["tenants", "gc_runs"],
            Use::PolicyTimeouts | Use::Audit => &["tenants", "audit_log"],
            Use::Tenants => &["tenants"],
            Use::BlobCheck => &["blobs", "artifact_entries", "upload_sessions", "manifests"],
        };
        !needs.iter().any(|t| self.lacks(t))
    }

    /// Every figure and the audit can be served: the ops tables all exist.
    pub fn is_supported(&self) -> bool {
        [Use::Outbox, Use::SearchJobs, Use::GcRuns, Use::PolicyTimeouts, Use::Audit]
            .into_iter()
            .all(|u| self.supports(u))
    }

    /// Not an Artifortress database at all: no tenants and no recorded history.
    pub fn is_foreign(&self) -> bool {
        self.level.is_none() && self.lacks("tenants")
    }

    /// One sentence for a condition or a report.
    pub fn summary(&self) -> String {
        let level = self.level.as_deref().unwrap_or("no schema_migrations");
        let mut out = if self.is_foreign() {
            "not an Artifortress database: no tenants table and no schema_migrations".to_string()
        } else if self.missing.is_empty() {
            format!("level {level} ({} versions): every table and column the operator uses is present", self.versions)
        } else {
            format!("level {level} ({} versions) lacks {}", self.versions, self.missing.join("; "))
        };
        if !self.unknown_versions.is_empty() {
            out.push_str(&format!(
                "; versions newer than this operator knows ({}): {} — figures are read from the columns present",
                model_level(),
                self.unknown_versions.join(", ")
            ));
        }
        out
    }
}

/// Reads the schema's recorded level and which required tables and columns are
/// present (following the connection's search_path, as Artifortress does).
pub async fn detect(conn: &mut PgConnection) -> Result<SchemaReport, sqlx::Error> {
    let has_migrations: bool =
        sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    let recorded: Vec<String> = if has_migrations {
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version").fetch_all(&mut *conn).await?
    } else {
        Vec::new()
    };
    let mut tables: Vec<&str> = REQUIREMENTS.iter().map(|r| r.table).collect();
    tables.push(AUDIT_CORRELATION.0);
    let rows = sqlx::query(
        "SELECT t.name, a.attname::text FROM unnest($1::text[]) AS t(name)
         JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(&tables)
    .fetch_all(&mut *conn)
    .await?;
    let present: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let has = |t: &str, c: &str| present.iter().any(|(pt, pc)| pt == t && pc == c);
    let table_exists = |t: &str| present.iter().any(|(pt, _)| pt == t);
    let mut missing = Vec::new();
    for r in REQUIREMENTS {
        if !table_exists(r.table) {
            missing.push(format!("{} (since {}): needed by {}", r.table, r.since, r.needed_by));
            continue;
        }
        let lacking: Vec<&str> = r.columns.iter().copied().filter(|c| !has(r.table, c)).collect();
        if !lacking.is_empty() {
            missing.push(format!("{}.{} (since {}): needed by {}", r.table, lacking.join(", "), r.since, r.needed_by));
        }
    }
    Ok(SchemaReport {
        level: recorded.last().cloned(),
        versions: recorded.len(),
        unknown_versions: recorded.iter().filter(|v| !MODEL.iter().any(|(m, _)| m == v)).cloned().collect(),
        missing,
        audit_correlation: has(AUDIT_CORRELATION.0, AUDIT_CORRELATION.1),
    })
}

/// [`detect`] over a connection of its own.
pub async fn detect_at(url: &DatabaseUrl) -> Result<SchemaReport, DbError> {
    let mut conn = connect(url).await?;
    let report = detect(&mut conn).await.map_err(query_error(url, "reading the schema's level and shape"))?;
    let _ = conn.close().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_has_upstreams_fifteen_levels_in_order() {
        assert_eq!(MODEL.len(), 15);
        assert!(MODEL.windows(2).all(|w| w[0].0 < w[1].0), "file-name order is apply order");
        assert_eq!(model_level(), "0015_worker_claim_path_indexes.sql");
        for r in REQUIREMENTS {
            assert!(MODEL.iter().any(|(v, _)| *v == r.since), "{} names a level of the model", r.table);
        }
    }

    #[test]
    fn an_older_level_says_what_it_lacks_and_what_for() {
        let report = SchemaReport {
            level: Some("0005_phase3_published_immutability_hardening.sql".into()),
            versions: 5,
            missing: vec![
                "search_index_jobs (since 0006_phase4_policy_search_quarantine_scaffold.sql): needed by failedSearchJobs, pendingSearchJobs".into(),
                "gc_runs (since 0008_phase5_tombstones_gc_reconcile.sql): needed by incompleteGcRuns and the blob recoverability window".into(),
            ],
            ..Default::default()
        };
        assert!(!report.is_supported());
        assert!(report.supports(Use::Outbox) && report.supports(Use::Audit));
        assert!(!report.supports(Use::SearchJobs) && !report.supports(Use::GcRuns));
        assert!(report.summary().contains("lacks search_index_jobs (since 0006"), "{}", report.summary());
        assert!(!report.is_foreign());
    }
}
