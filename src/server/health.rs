//! `/health/live` and `/health/ready`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use crate::installations::Installation;

/// Alive while the process runs; calls no dependency.
pub async fn live() -> &'static str {
    "ok"
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct DependencyCheck {
    /// `postgresql`, `objectStorage` or `kubernetes`.
    pub name: String,
    /// The installation it belongs to (absent for the Kubernetes API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    pub ok: bool,
    pub latency_ms: f64,
    pub error: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessReport {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    pub checked_at: DateTime<Utc>,
    pub dependencies: Vec<DependencyCheck>,
}

#[derive(serde::Deserialize)]
pub struct ReadyQuery {
    scope: Option<String>,
}

/// Real dependency checks, run concurrently, each bounded by the check timeout;
/// 200 when all pass, 503 otherwise. One result serves every probe for
/// `ready_cache`; concurrent probes wait for the check in flight instead of
/// starting their own.
///
/// `?scope=operator` judges only what the operator itself needs (the Kubernetes
/// API): the operator pod's readiness probe uses it, so one installation's
/// database outage does not take the operator out of its Service. It reads the
/// same cached full report: one check round per cache period whatever the scope,
/// each check bounded by the check timeout, well under the probe's timeout.
pub async fn ready(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ReadyQuery>,
) -> Result<(StatusCode, Json<ReadinessReport>), (StatusCode, String)> {
    let operator_only = match query.scope.as_deref() {
        None | Some("all") => false,
        Some("operator") => true,
        Some(other) => {
            return Err((StatusCode::BAD_REQUEST, format!("unknown scope {other:?}: use scope=operator or scope=all")));
        }
    };
    let report = cached_report(&state).await;
    let report = if operator_only { report.only("kubernetes") } else { report };
    let code = if report.status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((code, Json(report)))
}

/// The readiness checks, run at most once per `ready_cache` however many ask
/// (see [`super::fresh::Fresh`]).
pub async fn cached_report(state: &Arc<AppState>) -> ReadinessReport {
    let checking = state.clone();
    let Ok(report) = state
        .ready_cache
        .get(
            state.config.ready_cache,
            move || async move { Ok::<_, std::convert::Infallible>(check_all(&checking).await) },
        )
        .await;
    report
}

/// One dependency as upstream's readiness lists it.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamDependency {
    pub name: &'static str,
    pub healthy: bool,
    pub essential: bool,
    /// `ready`, `not_ready` or `degraded`.
    pub status: &'static str,
    pub detail: Option<String>,
}

/// Readiness in upstream's shape for one installation: `ready` when every
/// dependency is, `not_ready` when an essential one is not (its database or
/// object storage), `degraded` when only a non-essential one is not (the
/// Kubernetes API the operator reaches).
#[derive(Serialize, Clone, Debug)]
pub struct UpstreamReadiness {
    pub status: &'static str,
    pub dependencies: Vec<UpstreamDependency>,
}

impl ReadinessReport {
    pub fn for_installation(&self, installation: &Installation) -> UpstreamReadiness {
        let qualified = installation.name.as_str();
        let dependencies: Vec<UpstreamDependency> = self
            .dependencies
            .iter()
            .filter(|d| d.installation.as_deref().is_none_or(|i| i == qualified))
            .map(|d| {
                let (name, essential) = match d.name.as_str() {
                    "postgresql" => ("postgres", true),
                    "objectStorage" => ("object_storage", true),
                    _ => ("kubernetes", false),
                };
                UpstreamDependency {
                    name,
                    healthy: d.ok,
                    essential,
                    status: match (d.ok, essential) {
                        (true, _) => "ready",
                        (false, true) => "not_ready",
                        (false, false) => "degraded",
                    },
                    detail: d.error.clone(),
                }
            })
            .collect();
        let status = if dependencies.iter().any(|d| d.essential && !d.healthy) {
            "not_ready"
        } else if dependencies.iter().any(|d| !d.healthy) {
            "degraded"
        } else {
            "ready"
        };
        UpstreamReadiness { status, dependencies }
    }

    fn only(mut self, dependency: &str) -> Self {
        self.dependencies.retain(|d| d.name == dependency);
        self.status = if self.dependencies.iter().all(|d| d.ok) { "ready" } else { "unavailable" };
        self
    }
}

async fn check_all(state: &AppState) -> ReadinessReport {
    let installations = state.installations.all();
    let mut checks: Vec<futures::future::BoxFuture<'_, DependencyCheck>> = Vec::new();
    for installation in &installations {
        let limit = state.config.check_timeout;
        checks.push(Box::pin(timed(state, "postgresql", Some(installation), database(installation, limit))));
        checks.push(Box::pin(timed(state, "objectStorage", Some(installation), object_storage(installation))));
    }
    let mut dependencies: Vec<DependencyCheck> = futures::future::join_all(checks).await;
    if let Some(client) = &state.kube {
        let kube = async { client.apiserver_version().await.map(|_| ()).map_err(|e| e.to_string()) };
        dependencies.push(timed(state, "kubernetes", None, kube).await);
    }
    let all_ok = dependencies.iter().all(|d| d.ok);
    ReadinessReport { status: if all_ok { "ready" } else { "unavailable" }, checked_at: Utc::now(), dependencies }
}

/// `SELECT 1`; a failure or a silence names the database (its URL without the
/// password), a little before the check's own limit would say only "no answer".
async fn database(installation: &Installation, limit: Duration) -> Result<(), String> {
    let url = &installation.database_url;
    let select = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&installation.pool);
    let one = match tokio::time::timeout(limit.mul_f64(0.9), select).await {
        // sqlx errors carry no credentials.
        Ok(answer) => answer.map_err(|e| format!("{url}: {e}"))?,
        Err(_) => return Err(format!("{url}: no answer within {} ms", limit.as_millis())),
    };
    if one == 1 { Ok(()) } else { Err("unexpected answer to SELECT 1".into()) }
}

async fn object_storage(installation: &Installation) -> Result<(), String> {
    installation.object_store.check().await.map_err(|e| e.to_string())
}

async fn timed(
    state: &AppState,
    name: &str,
    installation: Option<&Installation>,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> DependencyCheck {
    let started = Instant::now();
    let timeout = state.config.check_timeout;
    let result = match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    };
    let seconds = started.elapsed().as_secs_f64();
    let installation_name = installation.map(|i| i.name.clone());
    state.metrics.record_dependency(installation_name.as_deref().unwrap_or(""), name, result.is_ok(), seconds);
    if let Err(error) = &result {
        tracing::warn!(dependency = name, installation = installation_name.as_deref(), error, "readiness check failed");
    }
    DependencyCheck {
        name: name.to_string(),
        installation: installation_name,
        ok: result.is_ok(),
        latency_ms: seconds * 1000.0,
        error: result.err(),
    }
}
