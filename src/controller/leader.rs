//! Leader election on a `coordination.k8s.io/v1` Lease, so only one replica
//! reconciles. The holder renews the lease every `renew_every`; a standby takes
//! it once it has not been renewed for `lease_duration`. Every write is a
//! replace with the read `resourceVersion`, so two candidates never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};

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
}

/// What a candidate does with the lease it read.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Someone else holds it and renews it.
    Held(String),
}

/// The decision for a lease as read at `now` (pure).
pub fn claim(spec: Option<&LeaseSpec>, me: &str, now: Timestamp, lease_duration: Duration) -> Claim {
    let Some(spec) = spec else { return Claim::Take };
    match spec.holder_identity.as_deref() {
        None | Some("") => Claim::Take,
        Some(holder) if holder == me => Claim::Renew,
        Some(holder) => {
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
            let duration = spec.lease_duration_seconds.map_or(lease_duration, |s| Duration::from_secs(s.max(1) as u64));
            let expired = renewed.is_none_or(|t| {
                let age = now.duration_since(t);
                age.is_positive() && age.unsigned_abs() > duration
            });
            if expired { Claim::Take } else { Claim::Held(holder.to_string()) }
        }
    }
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Elector { api: Api::namespaced(client, &config.namespace), config }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// One attempt to hold the lease: true when this replica holds it afterwards.
    pub async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let me = &self.config.identity;
        let current = self.api.get_opt(&self.config.name).await?;
        let decision = claim(current.as_ref().and_then(|l| l.spec.as_ref()), me, now, self.config.lease_duration);
        let mut spec = current.as_ref().and_then(|l| l.spec.clone()).unwrap_or_default();
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
                self.api.replace(&self.config.name, &PostParams::default(), &lease).await.map(drop)
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await.map(drop)
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Another candidate wrote first: not ours this round.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: reading the lease failed"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renews the lease until it is lost (another replica took it, or it could
    /// not be renewed within the lease duration); then returns.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_hold().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: renewing the lease failed");
                    // Stop before another replica may take over.
                    if last_renewed.elapsed() + self.config.renew_every >= self.config.lease_duration {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.identity()) {
            return;
        }
        spec.holder_identity = None;
        if let Err(e) = self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            tracing::warn!(error = %e, "leader election: releasing the lease failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn leases_are_taken_only_when_free_or_expired() {
        let now: Timestamp = "2026-11-28T03:00:00Z".parse().unwrap();
        let d = Duration::from_secs(15);
        let seconds_ago = |s: i64| now.checked_sub(jiff_seconds(s)).unwrap();
        assert_eq!(claim(None, "a", now, d), Claim::Take);
        assert_eq!(claim(Some(&LeaseSpec::default()), "a", now, d), Claim::Take);
        assert_eq!(claim(Some(&held_by("a", seconds_ago(5))), "a", now, d), Claim::Renew);
        assert_eq!(claim(Some(&held_by("b", seconds_ago(5))), "a", now, d), Claim::Held("b".into()));
        assert_eq!(claim(Some(&held_by("b", seconds_ago(16))), "a", now, d), Claim::Take);
    }

    fn jiff_seconds(s: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(s)
    }
}
