//! Whether a drill may start: its spec is one a Job can run (the Secrets it
//! names exist, a Physical drill has archived WAL), its scratch database is no
//! installation's database, and no other drill holds that database.

use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::{is_finished, write_status};
use crate::api::artifortress::Artifortress;
use crate::api::common::{BackupMethod, SecretKeyRef};
use crate::api::recovery_drill::{DrillBackupMode, RecoveryDrill, RecoveryDrillStatus};
use crate::controller::backup_resource::wal_archived;
use crate::controller::{Context, Error, claims, jobs, missing_secrets, resolve_installation, secret_value};
use crate::db::DatabaseUrl;

/// A reason (the condition's) and a message that says what to fix.
pub type Problem = (&'static str, String);

/// Lets a drill start: its spec passes validation and it holds the claim on
/// its scratch database. `Some` is the action when it must wait (status written).
pub async fn admit(
    ctx: &Context,
    drills: &Api<RecoveryDrill>,
    drill: &RecoveryDrill,
    af: &Artifortress,
    pending: RecoveryDrillStatus,
) -> Result<Option<Action>, Error> {
    let ns = &drill.namespace().unwrap_or_default();
    let target = drill_target(ctx, ns, drill).await?;
    if let Some((reason, message)) = validate(ctx, ns, drill, af, target.as_ref()).await? {
        write_status(ctx, drills, drill, pending, reason, message).await?;
        return Ok(Some(Action::requeue(Duration::from_secs(300))));
    }
    // One drill per scratch database at a time: two restoring into one would
    // drop each other's work.
    if let Some(target) = &target {
        let leases = Api::namespaced(ctx.client.clone(), ns);
        let claim = claims::Claim {
            api: &leases,
            lease: format!("artifortress-scratch-{}", &hex::encode(Sha256::digest(target_identity(target)))[..16]),
            holder: claims::holder_of(drill),
            owner: af.controller_owner_ref(&()).expect("a stored Artifortress has a uid"),
        };
        if let claims::Outcome::Busy { waiting_for } = claim.acquire(drills, is_finished).await? {
            let message = format!("waiting for {waiting_for}: it holds the scratch database {target}");
            write_status(ctx, drills, drill, pending, "TargetBusy", message).await?;
            return Ok(Some(Action::requeue(Duration::from_secs(15))));
        }
    }
    Ok(None)
}

/// The database a drill restores into (its Secret's URL with `spec.target.database`);
/// None while the Secret or its URL is missing or bad (validation says which).
async fn drill_target(ctx: &Context, ns: &str, drill: &RecoveryDrill) -> Result<Option<DatabaseUrl>, Error> {
    let template = &drill.spec.template;
    let Some(target) = template.target.as_ref().filter(|_| template.method == BackupMethod::Logical) else {
        return Ok(None);
    };
    let secrets = Api::namespaced(ctx.client.clone(), ns);
    let Some(url) = secret_value(&secrets, &target.connection_secret_ref).await? else { return Ok(None) };
    let Ok(url) = DatabaseUrl::parse(&url) else { return Ok(None) };
    Ok(Some(match &target.database {
        Some(db) => url.with_database(db),
        None => url,
    }))
}

/// A scratch database as a claim knows it: server and database name.
fn target_identity(target: &DatabaseUrl) -> String {
    format!("{}/{}", target.server(), target.database())
}

/// The spec problems that would make a Job fail: missing Secrets or keys, a
/// named backup without a name, a target that is the source.
async fn validate(
    ctx: &Context,
    ns: &str,
    drill: &RecoveryDrill,
    af: &Artifortress,
    target: Option<&DatabaseUrl>,
) -> Result<Option<Problem>, Error> {
    let keys = match secrets_needed(drill, af) {
        Ok(keys) => keys,
        Err(problem) => return Ok(Some(problem)),
    };
    if let Some(missing) = missing_secrets(&ctx.client, ns, &keys.iter().collect::<Vec<_>>()).await? {
        return Ok(Some(("SecretNotFound", missing)));
    }
    // The engine refuses by server identity and by its scratch mark when it
    // restores; this catches the obvious cases before a backup is taken for nothing.
    match target {
        Some(target) => installation_at(ctx, ns, af, target).await,
        None => Ok(None),
    }
}

/// What the spec alone says: a problem, or the Secret keys its Jobs will read.
pub fn secrets_needed(drill: &RecoveryDrill, af: &Artifortress) -> Result<Vec<SecretKeyRef>, Problem> {
    let template = &drill.spec.template;
    if drill.spec.backup.mode == DrillBackupMode::Named && drill.spec.backup.name.is_none() {
        return Err(("InvalidSpec", "spec.backup.mode is Named but spec.backup.name is empty; name the backup".into()));
    }
    let mut keys = Vec::new();
    match (template.method, &template.target) {
        (BackupMethod::Logical, None) => {
            let message = "spec.target is missing: a Logical drill restores into a scratch database it names (spec.target.connectionSecretRef)";
            return Err(("InvalidSpec", message.into()));
        }
        (BackupMethod::Logical, Some(target)) => keys.push(target.connection_secret_ref.clone()),
        (BackupMethod::Physical, Some(_)) => {
            let message = "spec.target is for Logical drills: a Physical drill restores into a scratch instance it starts in its own Job; remove spec.target";
            return Err(("InvalidSpec", message.into()));
        }
        (BackupMethod::Physical, None) => {
            let wanted = template.recovery_target.as_deref().unwrap_or("latest");
            if let Err(e) = wanted.parse::<crate::engine::physical::pitr::Target>() {
                return Err(("InvalidSpec", format!("spec.recoveryTarget: {e}")));
            }
            if !wal_archived(af) {
                let message = format!(
                    "a Physical drill replays archived WAL, and no archiver streams for Artifortress {}: set its spec.walArchive",
                    af.name_any()
                );
                return Err(("WalNotArchived", message));
            }
        }
    }
    if drill.spec.backup.mode == DrillBackupMode::Fresh {
        keys.push(af.spec.db().connection_secret_ref.clone());
    }
    keys.extend(jobs::s3_credentials(jobs::backup_storage(&af.spec)).into_iter().map(|(_, k)| k));
    keys.extend(jobs::blob_credentials(af.spec.blobs()).into_iter().map(|(_, k)| k));
    Ok(keys)
}

/// The installation whose database `target` is, if any, as the problem to report.
async fn installation_at(
    ctx: &Context,
    ns: &str,
    af: &Artifortress,
    target: &DatabaseUrl,
) -> Result<Option<Problem>, Error> {
    for installation in visible_installations(ctx, ns).await? {
        // One that does not resolve has no database to compare with.
        let Ok(Ok(resolved)) = resolve_installation(&ctx.client, &installation).await else { continue };
        let installation = resolved.artifortress;
        let own = installation.namespace().as_deref() == Some(ns) && installation.name_any() == af.name_any();
        let their_secrets = Api::namespaced(ctx.client.clone(), &installation.namespace().unwrap_or_default());
        let database = match secret_value(&their_secrets, &installation.spec.db().connection_secret_ref).await {
            Ok(Some(url)) => url,
            // A Secret this operator may not read is a database it cannot compare with.
            Ok(None) | Err(_) => continue,
        };
        // Any host of a multi-host installation counts.
        let same = |db: DatabaseUrl| db.hosts().contains(&target.hosts()[0]) && db.database() == target.database();
        if !DatabaseUrl::parse(&database).is_ok_and(same) {
            continue;
        }
        let message = if own {
            format!(
                "the drill target {target} is the installation's database; point spec.target at a scratch database (set spec.target.database or another server)"
            )
        } else {
            format!(
                "the drill target {target} is the database of installation {}/{}; a drill never restores over an installation's database — point spec.target at a scratch database",
                installation.namespace().unwrap_or_default(),
                installation.name_any()
            )
        };
        return Ok(Some((if own { "TargetIsSource" } else { "TargetIsInstallation" }, message)));
    }
    Ok(None)
}

/// Every installation this operator can see: cluster-wide when it may list
/// them, else those of the drill's namespace.
async fn visible_installations(ctx: &Context, ns: &str) -> Result<Vec<Artifortress>, Error> {
    let params = kube::api::ListParams::default();
    match Api::<Artifortress>::all(ctx.client.clone()).list(&params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            Ok(Api::<Artifortress>::namespaced(ctx.client.clone(), ns).list(&params).await?.items)
        }
        Err(e) => Err(e.into()),
    }
}
