//! The WAL archiver of an installation, run by the `Artifortress` controller:
//! `spec.walArchive` set → one Deployment (`wal-<installation>`, one pod)
//! running the engine's `wal` command; unset → the operator's Deployment is
//! deleted (the slot stays on the source: a restarted archiver resumes from it).
//! How the archiver is doing is read from its status in the backup store
//! (`WalArchiving`), not from the Deployment: a running pod is not proof of
//! archived WAL.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

use super::jobs::{self, EngineJob};
use super::{Context, Error};
use crate::api::artifortress::Artifortress;

/// The Deployment's step label and name prefix.
pub const STEP: &str = "wal";

/// Creates, replaces (when the spec changed) or deletes the archiver's
/// Deployment. A Deployment of that name the operator did not create is never
/// touched: `Err(message)` says so, for the `WalArchiving` condition.
pub async fn apply(ctx: &Context, af: &Artifortress) -> Result<Result<(), String>, Error> {
    let (installation, ns) = (af.name_any(), af.namespace().unwrap_or_default());
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let name = jobs::job_name(STEP, &installation);
    let existing = api.get_opt(&name).await?;
    if let Some(d) = &existing
        && !owned_by(d, af)
    {
        return Ok(Err(format!(
            "Deployment {ns}/{name} exists and is not the WAL archiver this operator runs for {installation}; \
             it is left alone — rename or delete it to let walArchive run"
        )));
    }
    let Some(spec) = &af.spec.wal_archive else {
        if existing.is_some() {
            super::delete_child(&api, &name).await?;
            tracing::info!(installation, namespace = %ns, "walArchive removed: the WAL archiver was deleted");
        }
        return Ok(Ok(()));
    };
    let template = ctx.job_template(af, spec.pod_template.as_ref());
    let store_url = jobs::backup_store_url(&af.spec, &installation);
    let wanted = jobs::wal_deployment(EngineJob {
        step: STEP,
        owner_name: &installation,
        owner: af.controller_owner_ref(&()).expect("a stored Artifortress has a uid"),
        namespace: &ns,
        installation: &installation,
        image: &ctx.image,
        args: [jobs::wal_args(&store_url, &installation, spec), jobs::encryption_args(&af.spec)].concat(),
        secret_env: jobs::backup_secret_env(&af.spec),
        staging_bytes: Some(jobs::wal_spool_bytes(spec)),
        template: &template,
    });
    match existing {
        None => {
            super::create_child(&api, &wanted).await?;
            tracing::info!(installation, namespace = %ns, deployment = %name, "WAL archiver created");
        }
        Some(current) if digest(&current) != digest(&wanted) => {
            let mut replacement = wanted;
            replacement.metadata.resource_version = current.resource_version();
            api.replace(&name, &PostParams::default(), &replacement).await?;
            tracing::info!(installation, namespace = %ns, deployment = %name, "WAL archiver updated");
        }
        Some(_) => {}
    }
    Ok(Ok(()))
}

fn digest(d: &Deployment) -> Option<&String> {
    d.metadata.annotations.as_ref().and_then(|a| a.get(jobs::SPEC_DIGEST))
}

fn owned_by(d: &Deployment, af: &Artifortress) -> bool {
    let uid = af.uid();
    d.owner_references().iter().any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        && d.labels().get(jobs::LABEL_MANAGED_BY).map(String::as_str) == Some(jobs::MANAGED_BY)
}
