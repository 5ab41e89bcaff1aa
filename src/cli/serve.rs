//! `serve`: the HTTP server for one installation, without a cluster's controllers.

use std::path::PathBuf;
use std::sync::Arc;

use artifortress_operator::api::artifortress::SloThresholds;
use artifortress_operator::artifortress::ops;
use artifortress_operator::installations::{self, Installation, Installations};
use artifortress_operator::metrics::Metrics;
use artifortress_operator::server::{self, AppState, ServerConfig, auth};
use artifortress_operator::store;

use super::cluster::kube_client;
use super::failure::{Failure, failed, usage};
use super::flags::{TlsArgs, database, duration_flag};
use super::shutdown_signal;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The installation's database: postgres://user:password@host:port/dbname
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database: String,
    /// The installation's object storage, checked by readiness: s3://bucket/prefix?… or file:///path
    #[arg(long)]
    object_store: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Name of the installation (in audit rows, metrics and `?installation=`).
    #[arg(long, default_value = "default")]
    installation: String,
    /// Tokens file for the admin API: lines `sha256:<hex of the token's SHA-256> <admin|viewer> <actor>`.
    #[arg(long, conflicts_with = "kubeconfig")]
    tokens_file: Option<PathBuf>,
    /// Decide admin access with Kubernetes TokenReview and SubjectAccessReview
    /// (get artifortresses/opssummary in --namespace), using this kubeconfig.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace whose RBAC decides who is admin (with --kubeconfig).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// SLO thresholds as YAML (the `slo` block of an Artifortress spec); default thresholds otherwise.
    #[arg(long)]
    slo_thresholds: Option<PathBuf>,
    /// Bound on each readiness check.
    #[arg(long, default_value = "2s")]
    check_timeout: String,
    /// How long a readiness result is reused.
    #[arg(long, default_value = "2s")]
    ready_cache: String,
    /// How often the ops-summary metrics are refreshed.
    #[arg(long, default_value = "30s")]
    refresh_interval: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// How often rejected ops-summary requests (401/403) are written to the
    /// audit log, one counted row per actor and reason.
    #[arg(long, default_value = "5s")]
    audit_flush: String,
    /// Bound on every HTTP request.
    #[arg(long, default_value = "15s")]
    request_timeout: String,
    /// How long one read of the ops signals answers the ops-summary requests that
    /// follow (concurrent requests share it; every request is still audited); 0s
    /// reads for every request.
    #[arg(long, default_value = "1s")]
    summary_max_age: String,
}

pub async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let database_url = database(&args.database).await?;
    let object_store = store::open(&args.object_store).await.map_err(usage)?;
    let config = ServerConfig {
        check_timeout: duration_flag("check-timeout", &args.check_timeout)?,
        ready_cache: duration_flag("ready-cache", &args.ready_cache)?,
        audit_flush: duration_flag("audit-flush", &args.audit_flush)?,
        request_timeout: duration_flag("request-timeout", &args.request_timeout)?,
        summary_max_age: duration_flag("summary-max-age", &args.summary_max_age)?,
    };
    let refresh = duration_flag("refresh-interval", &args.refresh_interval)?;
    let slo = slo_thresholds(args.slo_thresholds.as_ref())?;
    let (authenticator, kube) = authenticator(&args).await?;
    let installation = Arc::new(Installation {
        name: args.installation.clone(),
        namespace: args.namespace.clone(),
        pool: installations::lazy_pool(&database_url, config.check_timeout),
        database_url,
        object_store,
        slo,
    });
    let metrics = Arc::new(Metrics::new());
    let installations = Arc::new(Installations::new(vec![installation.clone()]));
    let state = Arc::new(AppState::new(installations, authenticator, metrics.clone(), config, kube));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(refresh);
        loop {
            tick.tick().await;
            match ops::probe(&installation.database_url).await {
                Ok(probe) => metrics.record_ops(&installation.name, &probe.summary),
                Err(e) => tracing::warn!(error = %e, "refreshing ops-summary metrics failed"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", args.listen)))?;
    let tls = args.tls.files();
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("serve: listening on {scheme}://{}", listener.local_addr().map_err(failed)?);
    server::serve(listener, state, tls, shutdown_signal()).await.map_err(failed)
}

fn slo_thresholds(path: Option<&PathBuf>) -> Result<SloThresholds, Failure> {
    let Some(path) = path else { return Ok(Default::default()) };
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--slo-thresholds {}: {e}", path.display())))?;
    serde_saphyr::from_str(&text).map_err(|e| usage(format!("--slo-thresholds {}: {e}", path.display())))
}

/// Who is an admin: a tokens file, or Kubernetes RBAC (then the client is kept
/// for the server's own use).
async fn authenticator(args: &ServeArgs) -> Result<(auth::Authenticator, Option<kube::Client>), Failure> {
    match (&args.tokens_file, &args.kubeconfig) {
        (Some(path), None) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| usage(format!("--tokens-file {}: {e}", path.display())))?;
            Ok((auth::Authenticator::TokensFile(auth::parse_tokens_file(path, &text).map_err(usage)?), None))
        }
        (None, Some(path)) => {
            let client = kube_client(Some(path)).await?;
            Ok((auth::Authenticator::kubernetes(client.clone()), Some(client)))
        }
        _ => Err(usage("choose how admins are recognised: --tokens-file FILE or --kubeconfig FILE")),
    }
}
