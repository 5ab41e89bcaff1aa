//! `GET /v1/admin/ops/summary`: admin only, and every request audited.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::audit::Entry;
use super::auth::AuthError;
use crate::api::artifortress::SloStatus;
use crate::db::DbError;
use crate::db::ops_summary::{self, OpsSignals};
use crate::installations::Installation;

#[derive(Deserialize)]
pub struct SummaryQuery {
    installation: Option<String>,
}

/// The documented response: the signals, the installation and the SLO evaluation.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryResponse {
    installation: String,
    #[serde(flatten)]
    signals: OpsSignals,
    slo: SloStatus,
}

/// One read of an installation's signals answers the requests of the next
/// `max_age`: concurrent requests wait for the read in flight instead of each
/// running their own seven counts. The signals say when they were read
/// (`generatedAt`); a failed read is not kept.
#[derive(Default)]
pub struct SignalsCache {
    slots: std::sync::Mutex<HashMap<String, Arc<Slot>>>,
}

/// The last read of one installation and when it started; locked while a read runs.
type Slot = tokio::sync::Mutex<Option<(Instant, OpsSignals)>>;

impl SignalsCache {
    pub async fn read(&self, installation: &Installation, max_age: Duration) -> Result<OpsSignals, DbError> {
        if max_age.is_zero() {
            return read_to_the_end(installation).await;
        }
        let slot = self.slots.lock().expect("not poisoned").entry(installation.qualified_name()).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some((read_at, signals)) = &*slot
            && read_at.elapsed() < max_age
        {
            return Ok(signals.clone());
        }
        let read_at = Instant::now();
        let signals = read_to_the_end(installation).await?;
        *slot = Some((read_at, signals.clone()));
        Ok(signals)
    }
}

/// Reads the signals in a task of its own: a request dropped halfway (its
/// client went away) must not leave the read's transaction open on a pooled
/// connection, holding locks that block the installation's own DDL.
async fn read_to_the_end(installation: &Installation) -> Result<OpsSignals, DbError> {
    let (pool, url) = (installation.pool.clone(), installation.database_url.clone());
    tokio::spawn(async move { ops_summary::read(&pool, &url).await })
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

/// Authenticates first (a 401 names nothing that exists), then finds the
/// installation, authorises in its namespace, reads, audits, answers.
pub async fn summary(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SummaryQuery>,
    headers: HeaderMap,
) -> Response {
    let identity = match state.auth.authenticate(bearer(&headers)).await {
        Ok(identity) => identity,
        Err(e) => return authorisation_unavailable(&state, query.installation.as_deref(), "unknown", &e),
    };
    let who = match identity {
        Ok(who) => who,
        Err(reason) => {
            if let Ok(installation) = pick(&state, query.installation.as_deref()) {
                let entry = Entry { actor: "anonymous", outcome: "unauthenticated", status: 401, reason };
                state.audit.count_rejected(&installation, entry);
            }
            let mut response =
                error(StatusCode::UNAUTHORIZED, format!("{reason}: send Authorization: Bearer <admin token>"));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let installation = match pick(&state, query.installation.as_deref()) {
        Ok(i) => i,
        Err((status, message)) => return error(status, message),
    };
    match state.auth.authorize(&who, &installation.namespace).await {
        Ok(true) => {}
        Ok(false) => {
            let reason = "not an admin of this installation";
            let entry = Entry { actor: who.actor(), outcome: "denied", status: 403, reason };
            state.audit.count_rejected(&installation, entry);
            let message = format!("{} may not read the ops summary of {}", who.actor(), installation.name);
            return error(StatusCode::FORBIDDEN, message);
        }
        Err(e) => return authorisation_unavailable(&state, Some(&installation.qualified_name()), who.actor(), &e),
    }
    let read = state.summaries.read(&installation, state.config.summary_max_age).await;
    // No unaudited reads: the row, with what the read gave, is written before
    // any answer; if it cannot be, nothing is served.
    let entry = match &read {
        Ok(_) => Entry { actor: who.actor(), outcome: "allowed", status: 200, reason: "admin" },
        Err(_) => {
            Entry { actor: who.actor(), outcome: "failed", status: 503, reason: "reading the ops summary failed" }
        }
    };
    if let Err(e) = state.audit.write_now(&installation, entry).await {
        tracing::error!(error = %e, installation = installation.name, "audit write failed; refusing the request");
        return error(StatusCode::SERVICE_UNAVAILABLE, "the audit log cannot be written; refusing to serve unaudited");
    }
    match read {
        Ok(signals) => {
            state.metrics.record_ops(&installation.name, &signals);
            let slo = crate::slo::evaluate(&signals, &installation.slo, signals.generated_at);
            Json(SummaryResponse { installation: installation.name.clone(), signals, slo }).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "ops summary failed");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

fn authorisation_unavailable(state: &AppState, wanted: Option<&str>, actor: &str, e: &AuthError) -> Response {
    tracing::error!(error = %e, "authorisation unavailable");
    if let Ok(installation) = pick(state, wanted) {
        let entry = Entry { actor, outcome: "error", status: 503, reason: "authorisation unavailable" };
        state.audit.count_rejected(&installation, entry);
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
