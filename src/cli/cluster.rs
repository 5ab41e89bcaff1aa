//! `run`: the operator in a cluster. Every replica serves HTTP for every
//! installation; the one holding the leader lease runs the controllers.

use std::path::PathBuf;
use std::sync::Arc;

use artifortress_operator::api::job_template::JobTemplate;
use artifortress_operator::controller::{self, Context, leader};
use artifortress_operator::installations::Installations;
use artifortress_operator::metrics::Metrics;
use artifortress_operator::server::{self, AppState, ServerConfig, auth};

use super::failure::{Failure, failed, usage};
use super::flags::{TlsArgs, duration_flag};
use super::shutdown_signal;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Image of the engine Jobs: the operator's own image.
    #[arg(long, env = "OPERATOR_IMAGE")]
    image: String,
    /// Watch one namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the HTTP server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Kubeconfig to use (default: in-cluster configuration or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "artifortress-operator")]
    lease_name: String,
    /// This replica's name in the Lease (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// A standby takes over when the leader has not renewed for this long.
    #[arg(long, default_value = "15s")]
    lease_duration: String,
    /// How often the leader renews the Lease.
    #[arg(long, default_value = "5s")]
    renew_every: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Serve plain HTTP (no --tls-cert/--tls-key): only when chosen explicitly.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    plain_http: bool,
    /// Pod settings of every engine Job, under each installation's
    /// `jobTemplate`: a JSON object of the same shape (the chart's `jobDefaults`).
    #[arg(long, env = "JOB_DEFAULTS", default_value = "{}", value_parser = job_template_json)]
    job_defaults: JobTemplate,
}

fn job_template_json(s: &str) -> Result<JobTemplate, String> {
    serde_json::from_str(s)
        .map_err(|e| format!("not a jobTemplate object ({e}); e.g. {{\"priorityClassName\": \"batch\"}}"))
}

pub async fn run(args: RunArgs) -> Result<(), Failure> {
    let tls = args.tls.files();
    if tls.is_none() && !args.plain_http {
        return Err(usage("choose HTTPS (--tls-cert FILE --tls-key FILE) or, explicitly, --plain-http"));
    }
    let lease = leader::LeaseConfig {
        name: args.lease_name,
        namespace: args.lease_namespace,
        identity: args
            .identity
            .unwrap_or_else(|| std::env::var("HOSTNAME").unwrap_or_else(|_| "artifortress-operator".into())),
        lease_duration: duration_flag("lease-duration", &args.lease_duration)?,
        renew_every: duration_flag("renew-every", &args.renew_every)?,
    };
    if lease.renew_every >= lease.lease_duration {
        return Err(usage("--renew-every must be shorter than --lease-duration"));
    }
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let installations = Arc::new(Installations::default());
    let state = Arc::new(AppState::new(
        installations.clone(),
        auth::Authenticator::kubernetes(client.clone()),
        metrics.clone(),
        ServerConfig::default(),
        Some(client.clone()),
    ));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", args.listen)))?;
    let server = tokio::spawn(server::serve(listener, state, tls, stopped()));

    // Every replica answers for every installation; only the leader reconciles.
    let mut ctx = Context::new(client.clone(), args.image, metrics);
    ctx.installations = installations;
    ctx.job_defaults = args.job_defaults;
    let ctx = Arc::new(ctx);
    tokio::spawn(controller::registry::keep_current(ctx.clone(), args.namespace.clone()));
    let identity = lease.identity.clone();
    let elector = leader::Elector::new(client, lease);
    tracing::info!(identity, "waiting for the leader lease");
    let since = tokio::select! {
        since = elector.acquire() => since,
        _ = stopped() => {
            let _ = server.await;
            return Ok(());
        }
    };
    tracing::info!(identity, "leading: controllers start");
    ctx.leading.store(true, std::sync::atomic::Ordering::Relaxed);
    // Losing the lease drops the controllers (and their calls in flight) at once.
    let outcome = tokio::select! {
        _ = controller::run_all(ctx, args.namespace, stopped()) => Ok(()),
        _ = elector.hold(since) => Err(failed("lost the leader lease; exiting so that only the new leader reconciles")),
    };
    if outcome.is_ok() {
        // A lease that could not be renewed is not ours to give up.
        elector.release().await;
        let _ = server.await;
    }
    outcome
}

/// A Kubernetes client from a kubeconfig, or from the pod's (or the user's) configuration.
pub async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, Failure> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| usage(format!("--kubeconfig: {e}")))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| usage(format!("--kubeconfig: {e}")))?
        }
        None => kube::Config::infer().await.map_err(|e| usage(format!("no Kubernetes configuration found: {e}")))?,
    };
    kube::Client::try_from(config).map_err(|e| usage(format!("Kubernetes client: {e}")))
}
