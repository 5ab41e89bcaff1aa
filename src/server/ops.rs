//! `GET /v1/admin/ops/summary`: admin only, and every request audited.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::auth::Decision;
use crate::api::artifortress::SloStatus;
use crate::db::ops_summary::{self, OpsSignals};
use crate::installations::Installation;

pub const AUDIT_ACTION: &str = "ops.summary.read";

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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub async fn summary(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SummaryQuery>,
    headers: HeaderMap,
) -> Response {
    let installation = match pick(&state, query.installation.as_deref()) {
        Ok(i) => i,
        Err((status, message)) => return error(status, message),
    };
    let decision = match state.auth.decide(bearer(&headers), &installation.namespace).await {
        Ok(decision) => decision,
        Err(e) => {
            tracing::error!(error = %e, "authorisation unavailable");
            let _ = audit(&installation, "unknown", "error", 503, "authorisation unavailable").await;
            return error(StatusCode::SERVICE_UNAVAILABLE, "authorisation is unavailable; try again later");
        }
    };
    let (actor, outcome, status, reason) = match &decision {
        Decision::Allowed { actor } => (actor.as_str(), "allowed", 200, "admin"),
        Decision::Forbidden { actor } => (actor.as_str(), "denied", 403, "not an admin of this installation"),
        Decision::Unauthenticated { reason } => ("anonymous", "unauthenticated", 401, *reason),
    };
    // No unaudited reads: if the audit row cannot be written, nothing is served.
    if let Err(e) = audit(&installation, actor, outcome, status, reason).await {
        tracing::error!(error = %e, installation = installation.name, "audit write failed; refusing the request");
        return error(StatusCode::SERVICE_UNAVAILABLE, "the audit log cannot be written; refusing to serve unaudited");
    }
    match decision {
        Decision::Unauthenticated { reason } => {
            let mut response =
                error(StatusCode::UNAUTHORIZED, format!("{reason}: send Authorization: Bearer <admin token>"));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            response
        }
        Decision::Forbidden { actor } => {
            error(StatusCode::FORBIDDEN, format!("{actor} may not read the ops summary of {}", installation.name))
        }
        Decision::Allowed { .. } => match ops_summary::read(&installation.pool, &installation.database_url).await {
            Ok(signals) => {
                state.metrics.record_ops(&installation.name, &signals);
                let slo = crate::slo::evaluate(&signals, &installation.slo, signals.generated_at);
                Json(SummaryResponse { installation: installation.name.clone(), signals, slo }).into_response()
            }
            Err(e) => {
                tracing::error!(error = %e, "ops summary failed");
                error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        },
    }
}

/// The installation a request is about: named by `?installation=` (`name`, or
/// `namespace/name` when a name is used in several namespaces), or the only one.
fn pick(state: &AppState, wanted: Option<&str>) -> Result<Arc<Installation>, (StatusCode, String)> {
    let all = state.installations.all();
    let names = || all.iter().map(|i| i.qualified_name()).collect::<Vec<_>>().join(", ");
    let matching: Vec<&Arc<Installation>> = match wanted {
        Some(wanted) => all.iter().filter(|i| i.name == wanted || i.qualified_name() == wanted).collect(),
        None => all.iter().collect(),
    };
    match (matching.as_slice(), wanted) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(name)) => Err((StatusCode::NOT_FOUND, format!("no installation {name:?}; known: {}", names()))),
        ([], None) => Err((StatusCode::NOT_FOUND, "no installation is managed yet".to_string())),
        (_, _) => Err((
            StatusCode::BAD_REQUEST,
            format!("several installations: choose one with ?installation=NAME or NAMESPACE/NAME ({})", names()),
        )),
    }
}

async fn audit(
    installation: &Installation,
    actor: &str,
    outcome: &str,
    status: u16,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, resource, outcome, details)
         VALUES ($1, $2, $3, $4, jsonb_build_object('status', $5::int, 'reason', $6::text))",
    )
    .bind(actor)
    .bind(AUDIT_ACTION)
    .bind(format!("installation/{}", installation.name))
    .bind(outcome)
    .bind(i32::from(status))
    .bind(reason)
    .execute(&installation.pool)
    .await
    .map(|_| ())
}
