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
use sqlx::PgPool;

use crate::api::artifortress::SloThresholds;
use crate::db::DatabaseUrl;
use crate::metrics::{HttpLabels, Metrics, RouteLabels};
use crate::store::BackupStore;

pub use health::ReadinessReport;

/// One managed installation: its database and object storage.
pub struct Installation {
    pub name: String,
    /// Namespace whose RBAC decides who may read its ops summary.
    pub namespace: String,
    pub database_url: DatabaseUrl,
    pub pool: PgPool,
    pub object_store: Box<dyn BackupStore>,
    pub slo: SloThresholds,
}

impl Installation {
    fn same_config(&self, other: &Installation) -> bool {
        self.database_url.expose() == other.database_url.expose()
            && self.object_store.url() == other.object_store.url()
            && self.slo == other.slo
    }

    /// `namespace/name`, unique across namespaces.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The installations the server answers for: fixed for `serve`; for `run`,
/// kept current by the Artifortress controller from the resources it probes.
#[derive(Default)]
pub struct Installations(std::sync::RwLock<Vec<Arc<Installation>>>);

impl Installations {
    pub fn new(list: Vec<Arc<Installation>>) -> Self {
        Installations(std::sync::RwLock::new(list))
    }

    pub fn all(&self) -> Vec<Arc<Installation>> {
        self.0.read().expect("not poisoned").clone()
    }

    /// Adds an installation or replaces the one with the same namespace and
    /// name when its configuration changed (an unchanged one keeps its pool).
    pub fn upsert(&self, installation: Installation) {
        let mut list = self.0.write().expect("not poisoned");
        let same = |i: &Arc<Installation>| i.namespace == installation.namespace && i.name == installation.name;
        match list.iter_mut().find(|i| same(i)) {
            Some(existing) if existing.same_config(&installation) => {}
            Some(existing) => *existing = Arc::new(installation),
            None => list.push(Arc::new(installation)),
        }
    }

    pub fn retain(&self, keep: impl Fn(&Installation) -> bool) {
        self.0.write().expect("not poisoned").retain(|i| keep(i));
    }
}

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

/// A lazily connecting pool for an installation's database: the server starts
/// (and reports not ready) even while the database is down.
pub fn lazy_pool(url: &DatabaseUrl, check_timeout: Duration) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(check_timeout)
        .connect_lazy_with(url.connect_options())
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
