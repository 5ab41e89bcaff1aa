//! Prometheus metrics (prefix `artifortress_`), one registry per process, served
//! at `/metrics`. Controllers add their families here too.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::db::ops_summary::OpsSignals;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub installation: String,
    pub dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstallationLabels {
    pub installation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub dependency_up: Family<DependencyLabels, Gauge>,
    pub dependency_latency: Family<DependencyLabels, FloatGauge>,
    pub outbox_pending: Family<InstallationLabels, Gauge>,
    pub outbox_available: Family<InstallationLabels, Gauge>,
    pub outbox_oldest_pending_age: Family<InstallationLabels, FloatGauge>,
    pub search_jobs_failed: Family<InstallationLabels, Gauge>,
    pub search_jobs_pending: Family<InstallationLabels, Gauge>,
    pub incomplete_gc_runs: Family<InstallationLabels, Gauge>,
    pub policy_timeouts_24h: Family<InstallationLabels, Gauge>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("artifortress");
        let m = Metrics {
            dependency_up: Family::default(),
            dependency_latency: Family::default(),
            outbox_pending: Family::default(),
            outbox_available: Family::default(),
            outbox_oldest_pending_age: Family::default(),
            search_jobs_failed: Family::default(),
            search_jobs_pending: Family::default(),
            incomplete_gc_runs: Family::default(),
            policy_timeouts_24h: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            registry: Registry::default(),
        };
        registry.register(
            "dependency_up",
            "1 when the last probe of the dependency succeeded",
            m.dependency_up.clone(),
        );
        registry.register(
            "dependency_probe_latency_seconds",
            "Duration of the last dependency probe",
            m.dependency_latency.clone(),
        );
        registry.register("ops_outbox_pending", "Pending outbox events", m.outbox_pending.clone());
        registry.register(
            "ops_outbox_available",
            "Pending outbox events available for delivery now",
            m.outbox_available.clone(),
        );
        registry.register(
            "ops_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox event (0 when none)",
            m.outbox_oldest_pending_age.clone(),
        );
        registry.register("ops_search_jobs_failed", "Failed search-index jobs", m.search_jobs_failed.clone());
        registry.register("ops_search_jobs_pending", "Pending search-index jobs", m.search_jobs_pending.clone());
        registry.register(
            "ops_incomplete_gc_runs",
            "Garbage-collection runs without completion",
            m.incomplete_gc_runs.clone(),
        );
        registry.register(
            "ops_policy_timeouts_24h",
            "policy.timeout audit events in the last 24 hours",
            m.policy_timeouts_24h.clone(),
        );
        registry.register("http_requests", "HTTP requests served, by route and status", m.http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", m.http_duration.clone());
        Metrics { registry, ..m }
    }

    pub fn record_dependency(&self, installation: &str, dependency: &str, up: bool, seconds: f64) {
        let labels = DependencyLabels { installation: installation.to_string(), dependency: dependency.to_string() };
        self.dependency_up.get_or_create(&labels).set(i64::from(up));
        self.dependency_latency.get_or_create(&labels).set(seconds);
    }

    pub fn record_ops(&self, installation: &str, s: &OpsSignals) {
        let l = InstallationLabels { installation: installation.to_string() };
        self.outbox_pending.get_or_create(&l).set(s.outbox_pending);
        self.outbox_available.get_or_create(&l).set(s.outbox_available);
        self.outbox_oldest_pending_age.get_or_create(&l).set(s.outbox_oldest_pending_age_seconds.unwrap_or(0.0));
        self.search_jobs_failed.get_or_create(&l).set(s.search_jobs_failed);
        self.search_jobs_pending.get_or_create(&l).set(s.search_jobs_pending);
        self.incomplete_gc_runs.get_or_create(&l).set(s.incomplete_gc_runs);
        self.policy_timeouts_24h.get_or_create(&l).set(s.policy_timeouts_24h);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
