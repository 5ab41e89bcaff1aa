//! Exclusive claims arbitrated by the API server: one backup of an
//! installation at a time, one drill per scratch database at a time.
//!
//! A claim is a `coordination.k8s.io/v1` Lease the operator creates, whose
//! `holderIdentity` names the object holding it (`Kind/name/uid`). Taking it is
//! a create (409 if it exists) or a replace checked against the read
//! `resourceVersion`, so of two reconciles racing, exactly one wins. A claim
//! has no expiry and is never handed back: a holder that is gone (or replaced
//! by another object of its name) or finished leaves it to the next claimant,
//! so a crash between finishing and releasing cannot leave it stuck. A Lease of
//! that name the operator did not create is never touched.

use std::fmt::Debug;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::{Error, jobs};

/// A claim on something, by a holder.
pub struct Claim<'a> {
    pub api: &'a Api<Lease>,
    /// The Lease's name (what is claimed).
    pub lease: String,
    /// `Kind/name/uid` of the object that wants it.
    pub holder: String,
    /// What the Lease is removed with (the installation).
    pub owner: OwnerReference,
}

/// `Kind/name/uid` of an object, as a claim's holder.
pub fn holder_of<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!("{}/{}/{}", K::kind(&()), object.name_any(), object.uid().unwrap_or_default())
}

/// The name part of a holder written by [`holder_of`].
fn holder_name(holder: &str) -> &str {
    holder.split('/').nth(1).unwrap_or(holder)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The caller holds the claim (now or already).
    Held,
    /// Another live holder has it; `waiting_for` says who, for a person.
    Busy { waiting_for: String },
}

/// `Backup one` for the holder `Backup/one/<uid>`.
fn describe(holder: &str) -> String {
    format!("{} {}", holder.split('/').next().unwrap_or_default(), holder_name(holder))
}

impl Claim<'_> {
    /// Takes the claim if it is free, already ours, or held by an object of
    /// `holders` that is gone (or replaced by another of its name) or `finished`.
    pub async fn acquire<K>(&self, holders: &Api<K>, finished: fn(&K) -> bool) -> Result<Outcome, Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let Some(mut lease) = self.api.get_opt(&self.lease).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lease.clone()),
                    labels: Some([(jobs::LABEL_MANAGED_BY.to_string(), jobs::MANAGED_BY.to_string())].into()),
                    owner_references: Some(vec![self.owner.clone()]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec { holder_identity: Some(self.holder.clone()), ..Default::default() }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Held),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    Ok(Outcome::Busy { waiting_for: "another claimant (it was claimed a moment ago)".into() })
                }
                Err(e) => Err(e.into()),
            };
        };
        // Never take over a Lease someone else created under this name.
        if lease.labels().get(jobs::LABEL_MANAGED_BY).map(String::as_str) != Some(jobs::MANAGED_BY) {
            let waiting_for = format!(
                "Lease {}, which artifortress-operator did not create and will not change (remove or rename it)",
                self.lease
            );
            return Ok(Outcome::Busy { waiting_for });
        }
        let current = lease.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
        if current == self.holder {
            return Ok(Outcome::Held);
        }
        if !current.is_empty() {
            let live =
                holders.get_opt(holder_name(&current)).await?.filter(|h| holder_of(h) == current && !finished(h));
            if live.is_some() {
                return Ok(Outcome::Busy { waiting_for: describe(&current) });
            }
        }
        lease.spec.get_or_insert_default().holder_identity = Some(self.holder.clone());
        match self.api.replace(&self.lease, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Outcome::Held),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Busy { waiting_for: describe(&current) }),
            Err(e) => Err(e.into()),
        }
    }
}
