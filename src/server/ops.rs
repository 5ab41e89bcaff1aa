//! `GET /v1/admin/ops/summary`: upstream's seven figures for one tenant
//! (`?tenant=` slug or id) or the whole installation with a per-tenant
//! breakdown, readiness in upstream's shape, the schema the figures come from,
//! and the SLO evaluation. Admin only, and every read audited in the
//! installation's own `audit_log`, one row per tenant read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::audit::Rejected;
use super::auth::AuthError;
use super::fresh::Fresh;
use super::health::{self, UpstreamReadiness};
use crate::api::artifortress::SloSignal;
use crate::artifortress::audit::{self as rows, AuditRow};
use crate::artifortress::ops::{self, Figures, OpsSummary, TenantFigures, Tenants};
use crate::artifortress::schema::{self, SchemaReport, Use};
use crate::installations::Installation;

#[derive(Deserialize)]
pub struct SummaryQuery {
    installation: Option<String>,
    tenant: Option<String>,
}

/// The tenant a one-tenant read is about.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct TenantRef {
    tenant_id: String,
    slug: String,
}

/// The documented response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryResponse {
    installation: String,
    checked_at_utc: DateTime<Utc>,
    /// The tenant asked for; absent for an installation-wide read.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<TenantRef>,
    /// The tenant's figures, or the installation's (counts summed over its
    /// tenants, the oldest age the oldest of theirs).
    #[serde(flatten)]
    figures: Figures,
    tenants: Vec<TenantFigures>,
    readiness: UpstreamReadiness,
    schema: SchemaReport,
    slo: SloAnswer,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SloAnswer {
    severity: crate::api::artifortress::Severity,
    /// Every tenant's every thresholded figure.
    signals: Vec<SloSignal>,
}

/// How long a detected schema is trusted: an upgrade of Artifortress shows
/// within this long.
const SCHEMA_MAX_AGE: Duration = Duration::from_secs(60);

/// One read of an installation's figures answers the requests of the next
/// `max_age` for the same tenants (see [`Fresh`]).
#[derive(Default)]
pub struct SummaryCache {
    summaries: Slots<(String, Tenants), OpsSummary>,
    schemas: Slots<String, SchemaReport>,
    /// Each installation's tenants (id, slug), to resolve `?tenant=` without
    /// a query per request.
    tenants: Slots<String, Vec<(String, String)>>,
}

/// One kept value per key (installation, and tenants for a summary).
type Slots<K, T> = Mutex<HashMap<K, Arc<Fresh<T>>>>;

/// Why there is no answer.
enum Unavailable {
    Db(String),
    NoTenant(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::Db(message) | Unavailable::NoTenant(message) => f.write_str(message),
        }
    }
}

impl SummaryCache {
    async fn schema(&self, installation: &Arc<Installation>) -> Result<SchemaReport, Unavailable> {
        let key = installation.qualified_name();
        kept(
            &self.schemas,
            key,
            SCHEMA_MAX_AGE,
            installation,
            |mut conn| async move { schema::detect(&mut conn).await },
        )
        .await
    }

    /// The tenant `wanted` names, from the installation's tenant list (at most
    /// [`SCHEMA_MAX_AGE`] old), or asked of the database when the list does not
    /// decide it (see [`ops::resolve`]).
    async fn tenant(
        &self,
        installation: &Arc<Installation>,
        wanted: &str,
    ) -> Result<Option<(String, String)>, Unavailable> {
        let key = installation.qualified_name();
        let listed = kept(&self.tenants, key, SCHEMA_MAX_AGE, installation, |mut conn| async move {
            ops::all_tenants(&mut conn).await
        })
        .await?;
        if let Some(found) = ops::resolve(&listed, wanted) {
            return Ok(Some(found));
        }
        let wanted = wanted.to_string();
        in_own_task(installation, move |mut conn| async move { ops::find_tenant(&mut conn, &wanted).await }).await
    }

    async fn read(
        &self,
        installation: &Arc<Installation>,
        schema: &SchemaReport,
        tenants: Tenants,
        max_age: Duration,
    ) -> Result<OpsSummary, Unavailable> {
        let key = (installation.qualified_name(), tenants.clone());
        let schema = schema.clone();
        kept(&self.summaries, key, max_age, installation, |mut conn| async move {
            ops::read(&mut conn, &schema, &tenants).await
        })
        .await
    }
}

/// The value kept under `key`, read by `read` on `installation`'s pool (see
/// [`in_own_task`]) when the one in hand is `max_age` old (see [`Fresh`]).
async fn kept<K, T, F, Fut>(
    slots: &Slots<K, T>,
    key: K,
    max_age: Duration,
    installation: &Arc<Installation>,
    read: F,
) -> Result<T, Unavailable>
where
    K: std::hash::Hash + Eq,
    T: Clone + Send + 'static,
    F: FnOnce(sqlx::pool::PoolConnection<sqlx::Postgres>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>> + Send,
{
    let owner = installation.clone();
    slot(slots, key).get(max_age, move || async move { in_own_task(&owner, read).await }).await
}

fn slot<K: std::hash::Hash + Eq, T>(slots: &Slots<K, T>, key: K) -> Arc<Fresh<T>> {
    slots.lock().expect("not poisoned").entry(key).or_default().clone()
}

/// Runs `read` on a pooled connection in a task of its own: a request dropped
/// halfway (its client went away) must not leave a transaction open on a pooled
/// connection, holding locks that block the installation's own DDL.
async fn in_own_task<T, F, Fut>(installation: &Installation, read: F) -> Result<T, Unavailable>
where
    T: Send + 'static,
    F: FnOnce(sqlx::pool::PoolConnection<sqlx::Postgres>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>> + Send,
{
    let (pool, url) = (installation.pool.clone(), installation.database_url.to_string());
    tokio::spawn(async move {
        let conn = pool.acquire().await.map_err(|e| Unavailable::Db(format!("{url}: {e}")))?;
        read(conn).await.map_err(|e| Unavailable::Db(format!("reading the ops summary of {url}: {e}")))
    })
    .await
    .unwrap_or_else(|e| panic!("the ops summary read panicked: {e}"))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Upstream's correlation header: a valid UUID is kept, anything else replaced.
fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid_like(v.trim()).then(|| v.trim().to_lowercase()))
        .unwrap_or_else(|| time_ordered_uuid(Utc::now()))
}

fn uuid_like(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    s.len() == 36 && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// A version 7 UUID (RFC 9562: milliseconds since the epoch, then random
/// bits). Its rows land beside each other in upstream's index on
/// `audit_log (tenant_id, correlation_id, occurred_at)`; random (version 4) ids
/// each dirtied a leaf page of their own, and under load the full-page images
/// of those pages were most of the WAL (a checkpoint every 50 s, whose flushes
/// stalled the audited answers by tens of milliseconds).
fn time_ordered_uuid(now: DateTime<Utc>) -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Authenticates first (a 401 names nothing that exists), then finds the
/// installation, authorises in its namespace, reads, audits, answers.
pub async fn summary(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SummaryQuery>,
    headers: HeaderMap,
) -> Response {
    let correlation = correlation_id(&headers);
    let mut response = answer(&state, &query, &headers, &correlation).await;
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
}

async fn answer(state: &Arc<AppState>, query: &SummaryQuery, headers: &HeaderMap, correlation: &str) -> Response {
    let wanted_tenant = query.tenant.as_deref();
    let identity = match state.auth.authenticate(bearer(headers)).await {
        Ok(identity) => identity,
        Err(e) => return authorisation_unavailable(state, query, "unknown", &e),
    };
    let who = match identity {
        Ok(who) => who,
        Err(reason) => {
            if let Ok(installation) = pick(state, query.installation.as_deref()) {
                let rejected = Rejected { actor: "anonymous", outcome: "unauthenticated", status: 401, reason };
                state.audit.count_rejected(&installation, wanted_tenant, rejected);
            }
            let mut response =
                error(StatusCode::UNAUTHORIZED, format!("{reason}: send Authorization: Bearer <admin token>"));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let installation = match pick(state, query.installation.as_deref()) {
        Ok(i) => i,
        Err((status, message)) => return error(status, message),
    };
    match state.auth.authorize(&who, &installation.namespace).await {
        Ok(true) => {}
        Ok(false) => {
            let reason = "not an admin of this installation";
            let rejected = Rejected { actor: who.actor(), outcome: "denied", status: 403, reason };
            state.audit.count_rejected(&installation, wanted_tenant, rejected);
            let message = format!("{} may not read the ops summary of {}", who.actor(), installation.name);
            return error(StatusCode::FORBIDDEN, message);
        }
        Err(e) => return authorisation_unavailable(state, query, who.actor(), &e),
    }
    let read = read_summary(state, &installation, wanted_tenant).await;
    let (schema, summary, tenant) = match read {
        Ok(read) => read,
        Err(Unavailable::NoTenant(message)) => return error(StatusCode::NOT_FOUND, message),
        Err(Unavailable::Db(message)) => {
            tracing::error!(installation = installation.name, error = message, "ops summary failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };
    let readiness = health::cached_report(state).await.for_installation(&installation);
    // No unaudited reads: a row for every tenant read, before any answer.
    let audit: Vec<AuditRow> = summary
        .tenants
        .iter()
        .filter(|t| t.slug.is_some())
        .map(|t| AuditRow {
            tenant_id: t.tenant_id.clone(),
            actor_subject: who.actor().to_string(),
            action: rows::READ,
            resource_id: t.tenant_id.clone(),
            details: rows::read_details(&t.figures, readiness.status, &installation.name),
            correlation_id: correlation.to_string(),
        })
        .collect();
    if let Err(e) = state.audit.write_now(&installation, audit, schema.audit_correlation).await {
        tracing::error!(error = %e, installation = installation.name, "audit write failed; refusing the request");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the audit log cannot be written ({e}); refusing to serve unaudited"),
        );
    }
    if tenant.is_none() {
        state.metrics.record_ops(&installation.name, &summary);
    }
    let signals = crate::artifortress::slo::evaluate(&summary, &installation.slo);
    let severity = signals.iter().map(|s| s.severity).max().unwrap_or(crate::api::artifortress::Severity::Ok);
    let figures = match &tenant {
        Some(_) => summary.tenants.first().map(|t| t.figures.clone()).unwrap_or_default(),
        None => summary.totals.clone(),
    };
    Json(SummaryResponse {
        installation: installation.name.clone(),
        checked_at_utc: summary.checked_at,
        tenant,
        figures,
        tenants: summary.tenants,
        readiness,
        schema,
        slo: SloAnswer { severity, signals },
    })
    .into_response()
}

/// The schema, the tenant asked for and its (or every tenant's) figures.
async fn read_summary(
    state: &AppState,
    installation: &Arc<Installation>,
    wanted: Option<&str>,
) -> Result<(SchemaReport, OpsSummary, Option<TenantRef>), Unavailable> {
    let schema = state.summaries.schema(installation).await?;
    if schema.is_foreign() || !schema.supports(Use::Audit) {
        return Err(Unavailable::Db(format!(
            "the ops summary of {} cannot be served: {}",
            installation.name,
            schema.summary()
        )));
    }
    let (tenants, tenant) = match wanted {
        None => (Tenants::All, None),
        Some(wanted) => match state.summaries.tenant(installation, wanted).await? {
            Some((tenant_id, slug)) => (Tenants::One(tenant_id.clone()), Some(TenantRef { tenant_id, slug })),
            None => {
                return Err(Unavailable::NoTenant(format!(
                    "installation {} has no tenant {wanted:?} (give its slug or id)",
                    installation.name
                )));
            }
        },
    };
    let summary = state.summaries.read(installation, &schema, tenants, state.config.summary_max_age).await?;
    Ok((schema, summary, tenant))
}

fn authorisation_unavailable(state: &AppState, query: &SummaryQuery, actor: &str, e: &AuthError) -> Response {
    tracing::error!(error = %e, "authorisation unavailable");
    if let Ok(installation) = pick(state, query.installation.as_deref()) {
        let rejected = Rejected { actor, outcome: "error", status: 503, reason: "authorisation unavailable" };
        state.audit.count_rejected(&installation, query.tenant.as_deref(), rejected);
    }
    error(StatusCode::SERVICE_UNAVAILABLE, "authorisation is unavailable; try again later")
}

/// The installation a request is about: named by `?installation=` (`name`, or
/// `namespace/name` when a name is used in several namespaces), or the only
/// one. Errors name no installation: the caller may not be an admin of any.
fn pick(state: &AppState, wanted: Option<&str>) -> Result<Arc<Installation>, (StatusCode, String)> {
    let all = state.installations.all();
    let matching: Vec<&Arc<Installation>> = match wanted {
        Some(wanted) => all.iter().filter(|i| i.name == wanted || i.qualified_name() == wanted).collect(),
        None => all.iter().collect(),
    };
    match (matching.as_slice(), wanted) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(name)) => Err((StatusCode::NOT_FOUND, format!("no installation {name:?} is managed here"))),
        ([], None) => Err((StatusCode::NOT_FOUND, "no installation is managed yet".to_string())),
        (_, _) => Err((
            StatusCode::BAD_REQUEST,
            "several installations match: choose one with ?installation=NAME or NAMESPACE/NAME".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correlation_id_is_kept_when_it_is_a_uuid() {
        let mut headers = HeaderMap::new();
        headers.insert("x-correlation-id", HeaderValue::from_static("0E8A1C2D-3F4B-4A5C-8D6E-7F8091A2B3C4"));
        assert_eq!(correlation_id(&headers), "0e8a1c2d-3f4b-4a5c-8d6e-7f8091a2b3c4");
        headers.insert("x-correlation-id", HeaderValue::from_static("not-a-uuid'; drop table"));
        let made = correlation_id(&headers);
        assert!(uuid_like(&made) && made.as_bytes()[14] == b'7', "{made}");
    }

    #[test]
    fn made_correlation_ids_sort_by_time() {
        let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();
        let (earlier, later) = (time_ordered_uuid(at(1_700_000_000_000)), time_ordered_uuid(at(1_700_000_000_001)));
        assert!(earlier < later, "{earlier} {later}");
        assert!(earlier.starts_with("018bcfe5-6800-7"), "{earlier}");
        assert!(matches!(earlier.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "the RFC variant: {earlier}");
    }
}
