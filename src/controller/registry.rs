//! What the HTTP server answers for (readiness, ops summary), kept current on
//! **every** replica, leader or standby: the Service sends probes and admin
//! calls to all of them. Read-only — it lists `Artifortress` objects and reads
//! the Secrets they name; it never writes to the cluster.
//!
//! An installation is registered when its object appears or changes (watch)
//! and at every pass (so a rotated Secret is picked up); one that is gone is
//! dropped at the next pass. On a standby each pass also reads every
//! installation's ops summary into the metrics (the leader's probes do that
//! there), so every replica's `/metrics` covers every installation.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};

use super::{Context, jobs};
use crate::api::artifortress::Artifortress;
use crate::db::DatabaseUrl;
use crate::installations::{self, Installation};

/// How often every installation is registered again and deleted ones dropped.
const PASS_EVERY: Duration = Duration::from_secs(30);
/// Bound on connecting to an installation's database from the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn keep_current(ctx: Arc<Context>, namespace: Option<String>) {
    let api = super::scoped::<Artifortress>(&ctx.client, namespace.as_deref());
    let mut changes = watcher(api.clone(), watcher::Config::default()).default_backoff().touched_objects().boxed();
    let mut pass = tokio::time::interval(PASS_EVERY);
    loop {
        tokio::select! {
            _ = pass.tick() => match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for af in &list {
                        register(&ctx, af).await;
                    }
                    let live: Vec<(String, String)> =
                        list.iter().map(|a| (a.namespace().unwrap_or_default(), a.name_any())).collect();
                    ctx.installations.retain(|i| live.contains(&(i.namespace.clone(), i.name.clone())));
                    if !ctx.leading.load(std::sync::atomic::Ordering::Relaxed) {
                        refresh_metrics(&ctx).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing installations failed"),
            },
            Some(change) = changes.next() => match change {
                Ok(af) => register(&ctx, &af).await,
                Err(e) => tracing::warn!(error = %e, "watching installations failed"),
            },
        }
    }
}

/// Registers one installation when its Secrets resolve; one that does not
/// resolve keeps what was registered (a probe then reports what is wrong).
async fn register(ctx: &Context, af: &Artifortress) {
    let ns = af.namespace().unwrap_or_default();
    let af = match super::resolve_installation(&ctx.client, af).await {
        Ok(Ok(resolved)) => resolved.artifortress,
        // The Artifortress controller reports what is wrong with it.
        Ok(Err(_)) => return,
        Err(e) => {
            tracing::warn!(installation = %af.name_any(), namespace = %ns, error = %e, "resolving the installation failed");
            return;
        }
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let database_url = match super::secret_value(&secrets, &af.spec.db().connection_secret_ref).await {
        Ok(Some(raw)) => match DatabaseUrl::parse(&raw) {
            Ok(url) => match url.resolve().await {
                Ok(url) => url,
                Err(_) => return,
            },
            Err(_) => return,
        },
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(installation = %af.name_any(), namespace = %ns, error = %e, "reading the database Secret failed");
            return;
        }
    };
    let storage = af.spec.blobs();
    let url = jobs::store_url(storage, storage.prefix.as_deref().unwrap_or(""));
    if ctx.installations.is_current(&ns, &af.name_any(), &database_url, &url, &af.spec.slo) {
        return;
    }
    let object_store = match ctx.store(&ns, storage, &url).await {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(installation = %af.name_any(), namespace = %ns, error = %e, "opening the object storage failed");
            return;
        }
    };
    ctx.installations.upsert(Installation {
        name: af.name_any(),
        namespace: ns,
        pool: installations::lazy_pool(&database_url, CONNECT_TIMEOUT),
        database_url,
        object_store,
        slo: af.spec.slo.clone(),
    });
}

/// The ops gauges and the PostgreSQL dependency gauges of every registered installation.
async fn refresh_metrics(ctx: &Context) {
    for installation in ctx.installations.all() {
        let started = std::time::Instant::now();
        let read =
            tokio::time::timeout(CONNECT_TIMEOUT, super::artifortress::read_ops_summary(&installation.database_url));
        let ok = match read.await {
            Ok(Ok(probe)) => {
                ctx.metrics.record_ops(&installation.name, &probe.summary);
                true
            }
            Ok(Err(_)) | Err(_) => false,
        };
        ctx.metrics.record_dependency(&installation.name, "postgresql", ok, started.elapsed().as_secs_f64());
    }
}
