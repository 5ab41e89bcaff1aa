//! The embedded HTTP server: health probes, the admin ops summary and metrics.
//! Handlers stay thin: parse, authorise, call `db/` or `store/`, audit, answer.

pub mod auth;
mod health;
mod ops;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::installations::Installations;
use crate::metrics::{HttpLabels, Metrics, RouteLabels};

pub use health::ReadinessReport;

pub struct ServerConfig {
    /// Bound on each dependency check of `/health/ready`.
    pub check_timeout: Duration,
    /// How long a readiness result is reused, so probe storms cannot hammer the database.
    pub ready_cache: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { check_timeout: Duration::from_secs(2), ready_cache: Duration::from_secs(2) }
    }
}

pub struct AppState {
    pub installations: Arc<Installations>,
    pub auth: auth::Authenticator,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// The Kubernetes API, checked by readiness when running in the cluster.
    pub kube: Option<kube::Client>,
    ready_cache: tokio::sync::Mutex<Option<(Instant, health::ReadinessReport)>>,
}

impl AppState {
    pub fn new(
        installations: Arc<Installations>,
        auth: auth::Authenticator,
        metrics: Arc<Metrics>,
        config: ServerConfig,
        kube: Option<kube::Client>,
    ) -> Self {
        AppState { installations, auth, metrics, config, kube, ready_cache: tokio::sync::Mutex::new(None) }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/v1/admin/ops/summary", get(ops::summary))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

/// Counts and times every request by route (the matched pattern, never the raw
/// path, so label values stay bounded).
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.metrics.http_requests.get_or_create(&HttpLabels { route: route.clone(), status }).inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(route, status, elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    response
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "HTTP server listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
