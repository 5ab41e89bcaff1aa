//! What going back to a restore point would undo. A restored Artifortress
//! database is the installation as of its snapshot: tokens revoked since are
//! valid again (`personal_access_tokens.revoked_at`, `token_revocations`), legal
//! holds and protections placed since are gone (`artifact_protections`), and a
//! GC run the snapshot caught mid-run stays incomplete forever (the
//! `incompleteGcRuns` figure alarms after every such restore).
//!
//! [`compare`] lists these against the live database; [`reapply`] puts the
//! security decisions back into a restored database (one the operator
//! restored, never the live one) and closes the captured GC runs, so that a
//! recovery never reopens a security decision.

use std::collections::HashMap;

use sqlx::{Connection, PgConnection, Row};

use crate::db::{DatabaseUrl, DbError};
use crate::engine::verdict::TakeBackItem;

pub const TOKEN_REVOCATION: &str = "tokenRevocation";
pub const PROTECTION: &str = "protection";
pub const GC_RUN_INCOMPLETE: &str = "gcRunIncomplete";

/// A live revocation the restored database lacks.
struct Revocation {
    token_id: String,
    tenant: String,
    subject: String,
    revoked_at: String,
}

/// A live hold the restored database lacks (absent or released there).
struct Hold {
    tenant: String,
    version_id: String,
    mode: String,
    by: String,
    at: String,
}

fn query_error(url: &DatabaseUrl, context: &str) -> impl Fn(sqlx::Error) -> DbError + use<> {
    let (url, context) = (url.to_string(), context.to_string());
    move |source| DbError::Query { context: context.clone(), url: url.clone(), source }
}

async fn connect(url: &DatabaseUrl) -> Result<PgConnection, DbError> {
    PgConnection::connect_with(&url.connect_options())
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })
}

/// Tenant slugs by id, for messages.
async fn slugs(conn: &mut PgConnection) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows = sqlx::query("SELECT tenant_id::text, slug::text FROM tenants").fetch_all(conn).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Revocations live that the restored database does not have.
async fn missing_revocations(
    live: &mut PgConnection,
    restored: &mut PgConnection,
) -> Result<Vec<Revocation>, sqlx::Error> {
    let revoked = sqlx::query(
        "SELECT token_id::text, tenant_id::text, subject, to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM personal_access_tokens WHERE revoked_at IS NOT NULL ORDER BY revoked_at",
    )
    .fetch_all(live)
    .await?;
    let mut out = Vec::new();
    for chunk in revoked.chunks(5_000) {
        let ids: Vec<String> = chunk.iter().map(|r| r.get(0)).collect();
        let active: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT token_id::text FROM personal_access_tokens WHERE token_id = ANY($1::uuid[]) AND revoked_at IS NULL",
        )
        .bind(&ids)
        .fetch_all(&mut *restored)
        .await?
        .into_iter()
        .collect();
        for r in chunk.iter().filter(|r| active.contains(&r.get::<String, _>(0))) {
            out.push(Revocation { token_id: r.get(0), tenant: r.get(1), subject: r.get(2), revoked_at: r.get(3) });
        }
    }
    Ok(out)
}

/// Active holds and protections live that the restored database lacks or has released.
async fn missing_holds(live: &mut PgConnection, restored: &mut PgConnection) -> Result<Vec<Hold>, sqlx::Error> {
    let active = sqlx::query(
        "SELECT tenant_id::text, version_id::text, mode, protected_by_subject,
                to_char(protected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM artifact_protections WHERE released_at IS NULL ORDER BY protected_at",
    )
    .fetch_all(live)
    .await?;
    let mut out = Vec::new();
    for chunk in active.chunks(5_000) {
        let versions: Vec<String> = chunk.iter().map(|r| r.get(1)).collect();
        let held: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT version_id::text FROM artifact_protections WHERE version_id = ANY($1::uuid[]) AND released_at IS NULL",
        )
        .bind(&versions)
        .fetch_all(&mut *restored)
        .await?
        .into_iter()
        .collect();
        for r in chunk.iter().filter(|r| !held.contains(&r.get::<String, _>(1))) {
            out.push(Hold { tenant: r.get(0), version_id: r.get(1), mode: r.get(2), by: r.get(3), at: r.get(4) });
        }
    }
    Ok(out)
}

/// GC runs incomplete in the restored database, each with whether the live
/// database completed it (and when).
async fn captured_gc_runs(
    restored: &mut PgConnection,
    live: Option<&mut PgConnection>,
) -> Result<Vec<(String, String, Option<String>)>, sqlx::Error> {
    let runs: Vec<(String, String)> = sqlx::query_as(
        "SELECT run_id::text, tenant_id::text FROM gc_runs WHERE completed_at IS NULL ORDER BY started_at",
    )
    .fetch_all(restored)
    .await?;
    let Some(live) = live else { return Ok(runs.into_iter().map(|(r, t)| (r, t, None)).collect()) };
    let ids: Vec<&str> = runs.iter().map(|(r, _)| r.as_str()).collect();
    let completed: HashMap<String, String> = sqlx::query_as(
        "SELECT run_id::text, to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM gc_runs WHERE run_id = ANY($1::uuid[]) AND completed_at IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(live)
    .await?
    .into_iter()
    .collect();
    Ok(runs
        .into_iter()
        .map(|(run, tenant)| {
            let at = completed.get(&run).cloned();
            (run, tenant, at)
        })
        .collect())
}

/// Everything restoring `restored` would undo compared with `live`.
pub async fn compare(restored: &DatabaseUrl, live: &DatabaseUrl) -> Result<Vec<TakeBackItem>, DbError> {
    let (mut r, mut l) = (connect(restored).await?, connect(live).await?);
    let names = slugs(&mut l).await.map_err(query_error(live, "reading tenants"))?;
    let tenant = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut items = Vec::new();
    for rev in
        missing_revocations(&mut l, &mut r).await.map_err(query_error(restored, "comparing token revocations"))?
    {
        items.push(TakeBackItem {
            kind: TOKEN_REVOCATION.into(),
            tenant: tenant(&rev.tenant),
            id: rev.token_id,
            detail: format!("token of {} revoked at {}: valid again after a restore", rev.subject, rev.revoked_at),
        });
    }
    for hold in missing_holds(&mut l, &mut r).await.map_err(query_error(restored, "comparing legal holds"))? {
        items.push(TakeBackItem {
            kind: PROTECTION.into(),
            tenant: tenant(&hold.tenant),
            id: hold.version_id,
            detail: format!("{} placed by {} at {}: gone after a restore", hold.mode, hold.by, hold.at),
        });
    }
    for (run, t, completed) in
        captured_gc_runs(&mut r, Some(&mut l)).await.map_err(query_error(restored, "reading incomplete GC runs"))?
    {
        let detail = match completed {
            Some(at) => format!("captured mid-run (completed live at {at}): incomplete forever after a restore"),
            None => "incomplete in the restored database (and not completed live): incomplete forever after a restore"
                .into(),
        };
        items.push(TakeBackItem { kind: GC_RUN_INCOMPLETE.into(), tenant: tenant(&t), id: run, detail });
    }
    let _ = r.close().await;
    let _ = l.close().await;
    Ok(items)
}

/// What [`reapply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reapplied {
    pub revocations: u64,
    pub holds: u64,
    /// Holds on versions the restored database does not have (created after the restore point).
    pub holds_without_version: u64,
    pub gc_runs_closed: u64,
    /// Without a live database: the newest security decisions the restored
    /// audit log records, for a person to check what came after.
    pub last_recorded: Vec<String>,
}

/// The actor of the rows [`reapply`] writes into the restored audit log.
pub const ACTOR: &str = "artifortress-operator";

/// Puts back into `restored` (a database the operator restored) the token
/// revocations and holds `live` has and it lacks, and closes the GC runs the
/// restore point caught mid-run (with the live completion when known). Each
/// tenant's audit log records what was re-applied. Without `live`, closes the
/// GC runs and lists the restored audit log's newest security decisions.
pub async fn reapply(restored: &DatabaseUrl, live: Option<&DatabaseUrl>) -> Result<Reapplied, DbError> {
    let mut r = connect(restored).await?;
    let mut done = Reapplied::default();
    let mut per_tenant: HashMap<String, (u64, u64, u64)> = HashMap::new();
    let q = |context: &str| query_error(restored, context);
    let mut l = match live {
        Some(url) => Some(connect(url).await?),
        None => None,
    };
    let (revocations, holds) = match (&mut l, live) {
        (Some(l), Some(url)) => (
            missing_revocations(l, &mut r).await.map_err(query_error(url, "reading token revocations"))?,
            missing_holds(l, &mut r).await.map_err(query_error(url, "reading legal holds"))?,
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let gc = captured_gc_runs(&mut r, l.as_mut()).await.map_err(q("reading incomplete GC runs"))?;
    let mut tx = r.begin().await.map_err(q("starting a transaction"))?;
    for rev in &revocations {
        sqlx::query("UPDATE personal_access_tokens SET revoked_at = $2::timestamptz WHERE token_id = $1::uuid AND revoked_at IS NULL")
            .bind(&rev.token_id)
            .bind(&rev.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(q("re-applying a token revocation"))?;
        sqlx::query(
            "INSERT INTO token_revocations (tenant_id, token_id, revoked_by_subject, reason, revoked_at)
             SELECT $1::uuid, $2::uuid, $3, 'reapplied_after_restore', $4::timestamptz
             WHERE NOT EXISTS (SELECT 1 FROM token_revocations WHERE token_id = $2::uuid)",
        )
        .bind(&rev.tenant)
        .bind(&rev.token_id)
        .bind(ACTOR)
        .bind(&rev.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(q("recording a re-applied revocation"))?;
        done.revocations += 1;
        per_tenant.entry(rev.tenant.clone()).or_default().0 += 1;
    }
    for hold in &holds {
        let applied = sqlx::query(
            "INSERT INTO artifact_protections (tenant_id, repo_id, version_id, mode, reason, protected_by_subject, protected_at)
             SELECT v.tenant_id, v.repo_id, v.version_id, $2, 'placed after the restore point; re-applied after the restore',
                    $3, $4::timestamptz
             FROM package_versions v WHERE v.version_id = $1::uuid
             ON CONFLICT (tenant_id, version_id) DO UPDATE
               SET mode = excluded.mode, protected_by_subject = excluded.protected_by_subject,
                   protected_at = excluded.protected_at, released_at = NULL, released_by_subject = NULL, release_reason = NULL",
        )
        .bind(&hold.version_id)
        .bind(&hold.mode)
        .bind(&hold.by)
        .bind(&hold.at)
        .execute(&mut *tx)
        .await
        .map_err(q("re-applying a hold"))?;
        if applied.rows_affected() == 0 {
            done.holds_without_version += 1;
        } else {
            done.holds += 1;
            per_tenant.entry(hold.tenant.clone()).or_default().1 += 1;
        }
    }
    for (run, tenant, completed) in &gc {
        sqlx::query(
            "UPDATE gc_runs SET completed_at = coalesce($2::timestamptz, now()),
                    delete_error_count = CASE WHEN $2 IS NULL THEN greatest(delete_error_count, 1) ELSE delete_error_count END
             WHERE run_id = $1::uuid AND completed_at IS NULL",
        )
        .bind(run)
        .bind(completed)
        .execute(&mut *tx)
        .await
        .map_err(q("closing a captured GC run"))?;
        done.gc_runs_closed += 1;
        per_tenant.entry(tenant.clone()).or_default().2 += 1;
    }
    for (tenant, (revocations, holds, runs)) in &per_tenant {
        let details = serde_json::json!({
            "reappliedRevocations": revocations.to_string(),
            "reappliedHolds": holds.to_string(),
            "closedGcRuns": runs.to_string(),
            "live": live.map_or("none".to_string(), |u| u.to_string()),
        });
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id, details)
             VALUES ($1::uuid, $2, 'recovery.decisions.reapplied', 'recovery', $1, $3::jsonb)",
        )
        .bind(tenant)
        .bind(ACTOR)
        .bind(details.to_string())
        .execute(&mut *tx)
        .await
        .map_err(q("auditing what was re-applied"))?;
    }
    tx.commit().await.map_err(q("committing what was re-applied"))?;
    if live.is_none() {
        done.last_recorded = sqlx::query_scalar(
            "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' ' || action || ' ' || resource_type || ' '
                    || resource_id || ' by ' || actor_subject
             FROM audit_log WHERE action LIKE 'auth.pat.revoked%' OR action LIKE 'artifact.protection.%' OR action = 'access.revoked'
             ORDER BY occurred_at DESC LIMIT 20",
        )
        .fetch_all(&mut r)
        .await
        .map_err(q("reading the newest security decisions of the restored audit log"))?;
    }
    Ok(done)
}
