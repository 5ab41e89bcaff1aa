//! `BackupsDecryptable`: whether the newest good backup can be opened by an
//! identity the operator can give its restores — the "we encrypted and lost
//! the key" trap, seen before a disaster rather than in one.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::Conditions;
use crate::api::artifortress::Artifortress;
use crate::api::backup::{Backup, BackupPhase};
use crate::controller::{Context, Error, secret_value};
use crate::engine::encryption::Keyring;

/// Sets the condition when the installation encrypts or its newest good
/// backup is encrypted; says nothing for an installation that never did.
pub(super) async fn record_keys(
    ctx: &Context,
    af: &Artifortress,
    conditions: &mut Conditions,
    backups: &[Backup],
) -> Result<(), Error> {
    let newest = backups
        .iter()
        .filter(|b| b.spec.artifortress_ref.name == af.name_any())
        .filter_map(|b| b.status.as_ref().filter(|s| s.phase == Some(BackupPhase::Completed)).map(|s| (b, s)))
        .max_by_key(|(_, s)| s.completed_at);
    let Some((backup, status)) = newest else { return Ok(()) };
    let Some(encryption) = &status.encryption else {
        if af.spec.encryption.is_some() {
            let message = format!(
                "the newest backup {} is not encrypted (taken before encryption was configured)",
                backup.name_any()
            );
            conditions.set("BackupsDecryptable", true, "NotEncrypted", message);
        }
        return Ok(());
    };
    let keyring = match reachable_keys(ctx, af).await? {
        Ok(keyring) => keyring,
        Err(why) => {
            conditions.set("BackupsDecryptable", false, "KeyUnavailable", why);
            return Ok(());
        }
    };
    let what = format!("the newest backup {}", backup.name_any());
    match keyring.check(&encryption.recorded(), &what) {
        Ok(()) => {
            conditions.set("BackupsDecryptable", true, "KeyAvailable", format!("{what} opens with a configured key"))
        }
        Err(e) => conditions.set("BackupsDecryptable", false, "KeyUnavailable", e.to_string()),
    }
    Ok(())
}

/// The identities and passphrase restores of this installation would get,
/// read from their Secrets as the Jobs would; why not, when a Secret is missing
/// or holds no key.
async fn reachable_keys(ctx: &Context, af: &Artifortress) -> Result<Result<Keyring, String>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &af.namespace().unwrap_or_default());
    let Some(spec) = &af.spec.encryption else { return Ok(Ok(Keyring::default())) };
    let mut identities = None;
    if let Some(r) = &spec.identities_secret_ref {
        match secret_value(&secrets, r).await? {
            Some(text) => identities = Some(text),
            None => return Ok(Err(format!("the identities Secret {:?} key {:?} does not exist", r.name, r.key))),
        }
    }
    let mut passphrase = None;
    if let Some(r) = &spec.passphrase_secret_ref {
        match secret_value(&secrets, r).await? {
            Some(p) => passphrase = Some(p.into()),
            None => return Ok(Err(format!("the passphrase Secret {:?} key {:?} does not exist", r.name, r.key))),
        }
    }
    let from =
        spec.identities_secret_ref.as_ref().map(|r| format!("Secret {:?} key {:?}", r.name, r.key)).unwrap_or_default();
    Ok(Keyring::load(&[], identities.as_deref().map(|t| (t, from.as_str())), passphrase).map_err(|e| e.to_string()))
}
