//! Leader election on a `coordination.k8s.io/v1` Lease, so only one replica
//! reconciles. The holder renews the lease every `renew_every`; a standby takes
//! it once its record has not changed for `lease_duration` **as observed by the
//! standby's own monotonic clock** (as client-go does): the `renewTime` written
//! by another node's clock is never compared with this one's, so clock skew
//! between nodes neither makes two leaders nor stops failover. Every write is a
//! replace with the read `resourceVersion`, so two candidates never both win.
//! Every call is bounded, and a leader that has not renewed within
//! `lease_duration - renew_every` stops, before any standby can take over.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica (pod name and a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The lease record last read (its resourceVersion) and when, here, it was
    /// first seen with that value.
    observed: Mutex<Option<(String, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("the API server did not answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
}

/// What a candidate does with the lease it read.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours: renew it.
    Renew,
    /// Free, or its record unchanged for longer than its duration: take it.
    Take,
    /// Someone else holds it and renews it.
    Held(String),
}

/// The decision for a lease whose record has been unchanged for
/// `unchanged_for` as observed here (pure).
pub fn claim(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration, lease_duration: Duration) -> Claim {
    let Some(spec) = spec else { return Claim::Take };
    match spec.holder_identity.as_deref() {
        None | Some("") => Claim::Take,
        Some(holder) if holder == me => Claim::Renew,
        Some(holder) => {
            let duration = spec.lease_duration_seconds.map_or(lease_duration, |s| Duration::from_secs(s.max(1) as u64));
            if unchanged_for > duration { Claim::Take } else { Claim::Held(holder.to_string()) }
        }
    }
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Elector { api: Api::namespaced(client, &config.namespace), config, observed: Mutex::new(None) }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// One API call, bounded by the renew interval.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ElectionError> {
        let limit = self.config.renew_every;
        tokio::time::timeout(limit, call).await.map_err(|_| ElectionError::Timeout(limit))?.map_err(Into::into)
    }

    /// How long the lease's record has been what it is now, by this replica's clock.
    fn unchanged_for(&self, lease: Option<&Lease>) -> Duration {
        let mut observed = self.observed.lock().expect("not poisoned");
        let version = lease.and_then(|l| l.resource_version()).unwrap_or_default();
        match observed.as_ref() {
            Some((seen, since)) if *seen == version => since.elapsed(),
            _ => {
                *observed = Some((version, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// One attempt to hold the lease: true when this replica holds it afterwards.
    pub async fn try_hold(&self) -> Result<bool, ElectionError> {
        let me = &self.config.identity;
        let current = self.bounded(self.api.get_opt(&self.config.name)).await?;
        let unchanged_for = self.unchanged_for(current.as_ref());
        let spec_read = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = claim(spec_read, me, unchanged_for, self.config.lease_duration);
        let mut spec = spec_read.cloned().unwrap_or_default();
        // renewTime is for people reading the Lease; no replica's decision uses it.
        let now = Timestamp::now();
        match decision {
            Claim::Held(_) => return Ok(false),
            Claim::Renew => spec.renew_time = Some(MicroTime(now)),
            Claim::Take => {
                spec.holder_identity = Some(me.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(self.config.lease_duration.as_secs() as i32);
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + i32::from(current.is_some()));
            }
        }
        let result = match current {
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.bounded(self.api.replace(&self.config.name, &PostParams::default(), &lease)).await.map(drop)
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                    spec: Some(spec),
                };
                self.bounded(self.api.create(&PostParams::default(), &lease)).await.map(drop)
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Another candidate wrote first: not ours this round.
            Err(ElectionError::Api(kube::Error::Api(e))) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease; returns when the winning
    /// attempt started (the lease is ours from no earlier than that).
    pub async fn acquire(&self) -> Instant {
        loop {
            let started = Instant::now();
            match self.try_hold().await {
                Ok(true) => return started,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: reading the lease failed"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renews the lease until it is lost — another replica took it, or it was
    /// not renewed within `lease_duration - renew_every` of the last renewal
    /// that started at `since` — then returns, so the caller stops reconciling
    /// before a standby can see the lease expire.
    pub async fn hold(&self, since: Instant) {
        let deadline_after = self.config.lease_duration.saturating_sub(self.config.renew_every);
        let mut renewed = since;
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            let started = Instant::now();
            let left = (renewed + deadline_after).saturating_duration_since(started);
            if left.is_zero() {
                tracing::error!("leader election: the lease was not renewed in time");
                return;
            }
            match tokio::time::timeout(left, self.try_hold()).await {
                Ok(Ok(true)) => renewed = started,
                Ok(Ok(false)) => {
                    tracing::error!("leader election: another replica holds the lease");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewing the lease failed"),
                Err(_) => tracing::warn!("leader election: renewing the lease did not finish in time"),
            }
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.bounded(self.api.get_opt(&self.config.name)).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.identity()) {
            return;
        }
        spec.holder_identity = None;
        if let Err(e) = self.bounded(self.api.replace(&self.config.name, &PostParams::default(), &lease)).await {
            tracing::warn!(error = %e, "leader election: releasing the lease failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_taken_only_when_free_or_unchanged_for_their_duration() {
        let d = Duration::from_secs(15);
        let held_by = |holder: &str| LeaseSpec {
            holder_identity: Some(holder.into()),
            // A clock an hour off: no decision looks at it.
            renew_time: Some(MicroTime("2020-01-01T00:00:00Z".parse().unwrap())),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        let s = Duration::from_secs;
        assert_eq!(claim(None, "a", s(0), d), Claim::Take);
        assert_eq!(claim(Some(&LeaseSpec::default()), "a", s(0), d), Claim::Take);
        assert_eq!(claim(Some(&held_by("a")), "a", s(0), d), Claim::Renew);
        assert_eq!(claim(Some(&held_by("b")), "a", s(5), d), Claim::Held("b".into()));
        assert_eq!(claim(Some(&held_by("b")), "a", s(16), d), Claim::Take);
    }
}
