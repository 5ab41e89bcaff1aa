//! The embedded HTTP server: health probes, the admin ops summary and metrics.
//! Handlers stay thin: parse, authorise, call `artifortress/` or `store/`, audit, answer.

mod audit;
pub mod auth;
mod fresh;
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
use axum::serve::ListenerExt;
use axum_server::accept::NoDelayAcceptor;

use crate::installations::Installations;
use crate::metrics::{HttpLabels, Metrics, RouteLabels};

pub use health::ReadinessReport;

pub struct ServerConfig {
    /// Bound on each dependency check of `/health/ready`.
    pub check_timeout: Duration,
    /// How long a readiness result is reused, so probe storms cannot hammer the database.
    pub ready_cache: Duration,
    /// How often rejected ops-summary requests are written to the audit log.
    pub audit_flush: Duration,
    /// Bound on every request; a slower one is answered 503.
    pub request_timeout: Duration,
    /// How long one read of an installation's ops figures answers the
    /// requests that follow (each still audited); zero reads for every request.
    pub summary_max_age: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            check_timeout: Duration::from_secs(2),
            ready_cache: Duration::from_secs(2),
            audit_flush: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            summary_max_age: Duration::from_secs(1),
        }
    }
}

pub struct AppState {
    pub installations: Arc<Installations>,
    pub auth: auth::Authenticator,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// The Kubernetes API, checked by readiness when running in the cluster.
    pub kube: Option<kube::Client>,
    audit: audit::AuditLog,
    summaries: ops::SummaryCache,
    ready_cache: Arc<fresh::Fresh<health::ReadinessReport>>,
}

impl AppState {
    pub fn new(
        installations: Arc<Installations>,
        auth: auth::Authenticator,
        metrics: Arc<Metrics>,
        config: ServerConfig,
        kube: Option<kube::Client>,
    ) -> Self {
        AppState {
            installations,
            auth,
            audit: audit::AuditLog::new(metrics.clone()),
            metrics,
            config,
            kube,
            summaries: ops::SummaryCache::default(),
            ready_cache: Arc::default(),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/v1/admin/ops/summary", get(ops::summary))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), bounded))
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
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.http_requests.get_or_create(&HttpLabels { route: route.clone(), status }).inc();
    state.metrics.http_duration.get_or_create(&RouteLabels { route: route.clone() }).observe(elapsed.as_secs_f64());
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    // A probe answered as expected is the kubelet's heartbeat, every few
    // seconds for the pod's life: logged at debug, so the log keeps what
    // a person reads (and a probe storm costs no log writes).
    if route.starts_with("/health/") && response.status().is_success() {
        tracing::debug!(route, status, elapsed_ms, "request");
    } else {
        tracing::info!(route, status, elapsed_ms, "request");
    }
    response
}

/// Answers 503 when a handler takes longer than the request timeout (a
/// dependency that accepts and never answers must not hold connections).
async fn bounded(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("no answer within {} s; try again later", limit.as_secs_f64());
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "error": message })))
                .into_response()
        }
    }
}

/// A PEM certificate chain and its key (e.g. a mounted `kubernetes.io/tls` Secret).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// How often the certificate files are checked for a new version.
const TLS_RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Serves (HTTPS with `tls`, else plain HTTP) until `shutdown` resolves, then
/// finishes in-flight requests and writes the audit rows still counted.
///
/// Every connection has `TCP_NODELAY`: hyper may write a response's head and
/// body in two writes, and with Nagle's algorithm the second waits for the
/// client's delayed acknowledgement of the first, up to 40 ms.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), "HTTP server listening");
    let (stop_flushing, mut flushing_stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.audit_flush);
            loop {
                tokio::select! {
                    _ = tick.tick() => state.audit.flush().await,
                    _ = &mut flushing_stopped => break,
                }
            }
            state.audit.flush().await;
        })
    };
    let app = router(state);
    let served = match tls {
        None => {
            let listener = listener.tap_io(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY could not be set; serving the connection anyway");
                }
            });
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
        Some(files) => serve_tls(listener.into_std()?, app, files, shutdown).await,
    };
    let _ = stop_flushing.send(());
    let _ = flusher.await;
    served
}

async fn serve_tls(
    listener: std::net::TcpListener,
    app: Router,
    files: TlsFiles,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key).await?;
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let reloader = tokio::spawn(reload_on_change(config.clone(), files));
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config.clone()).acceptor(NoDelayAcceptor::new());
    let served = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle).serve(app.into_make_service()).await;
    reloader.abort();
    served
}

/// Serves a rotated certificate (cert-manager renewing the Secret, the kubelet
/// updating the mount) without a restart; a pair that does not load is logged
/// and the one in use kept.
async fn reload_on_change(config: axum_server::tls_rustls::RustlsConfig, files: TlsFiles) {
    let version = |f: &TlsFiles| [&f.cert, &f.key].map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let mut loaded = version(&files);
    loop {
        tokio::time::sleep(TLS_RELOAD_CHECK).await;
        let now = version(&files);
        if now == loaded {
            continue;
        }
        // A pair that does not load is tried again when the files change again.
        loaded = now;
        match config.reload_from_pem_file(&files.cert, &files.key).await {
            Ok(()) => tracing::info!(cert = %files.cert.display(), "serving the renewed TLS certificate"),
            Err(e) => tracing::error!(cert = %files.cert.display(), error = %e,
                "the new TLS certificate does not load; keeping the one in use"),
        }
    }
}
