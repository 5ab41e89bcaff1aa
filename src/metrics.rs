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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
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
    pub backup_attempts: Family<InstallationLabels, Counter>,
    pub backup_successes: Family<InstallationLabels, Counter>,
    pub backup_failures: Family<InstallationLabels, Counter>,
    pub backup_last_success: Family<InstallationLabels, FloatGauge>,
    pub backup_last_status: Family<InstallationLabels, Gauge>,
    pub backup_last_size: Family<InstallationLabels, Gauge>,
    pub backup_last_duration: Family<InstallationLabels, FloatGauge>,
    pub drill_attempts: Family<InstallationLabels, Counter>,
    pub drill_passes: Family<InstallationLabels, Counter>,
    pub drill_failures: Family<InstallationLabels, Counter>,
    pub drill_last_result: Family<InstallationLabels, Gauge>,
    pub drill_last_timestamp: Family<InstallationLabels, FloatGauge>,
    pub drill_last_pass: Family<InstallationLabels, FloatGauge>,
    pub drill_rpo: Family<InstallationLabels, FloatGauge>,
    pub drill_rpo_objective: Family<InstallationLabels, FloatGauge>,
    pub drill_rto: Family<InstallationLabels, FloatGauge>,
    pub drill_rto_objective: Family<InstallationLabels, FloatGauge>,
    pub drill_source_major: Family<InstallationLabels, Gauge>,
    pub drill_blobs_referenced: Family<InstallationLabels, Gauge>,
    pub drill_blobs_missing: Family<InstallationLabels, Gauge>,
    pub drill_blobs_corrupt: Family<InstallationLabels, Gauge>,
    pub drill_blobs_orphans: Family<InstallationLabels, Gauge>,
    pub blobs_recoverable: Family<InstallationLabels, Gauge>,
    pub wal_status_age: Family<InstallationLabels, FloatGauge>,
    pub wal_retained_bytes: Family<InstallationLabels, Gauge>,
    pub drill_target_major: Family<InstallationLabels, Gauge>,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub reconcile_errors: Family<ControllerLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
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
            backup_attempts: Family::default(),
            backup_successes: Family::default(),
            backup_failures: Family::default(),
            backup_last_success: Family::default(),
            backup_last_status: Family::default(),
            backup_last_size: Family::default(),
            backup_last_duration: Family::default(),
            drill_attempts: Family::default(),
            drill_passes: Family::default(),
            drill_failures: Family::default(),
            drill_last_result: Family::default(),
            drill_last_timestamp: Family::default(),
            drill_last_pass: Family::default(),
            drill_rpo: Family::default(),
            drill_rpo_objective: Family::default(),
            drill_rto: Family::default(),
            drill_rto_objective: Family::default(),
            drill_source_major: Family::default(),
            drill_blobs_referenced: Family::default(),
            drill_blobs_missing: Family::default(),
            drill_blobs_corrupt: Family::default(),
            drill_blobs_orphans: Family::default(),
            blobs_recoverable: Family::default(),
            wal_status_age: Family::default(),
            wal_retained_bytes: Family::default(),
            drill_target_major: Family::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(latency_histogram),
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
        registry.register("backup_attempts", "Backup Jobs started", m.backup_attempts.clone());
        registry.register("backup_successes", "Backups completed", m.backup_successes.clone());
        registry.register("backup_failures", "Backups failed", m.backup_failures.clone());
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Completion time of the newest completed backup (Unix seconds)",
            m.backup_last_success.clone(),
        );
        registry.register(
            "backup_last_status",
            "1 when the last finished backup completed, 0 when it failed",
            m.backup_last_status.clone(),
        );
        registry.register(
            "backup_last_size_bytes",
            "Stored size of the last completed backup",
            m.backup_last_size.clone(),
        );
        registry.register(
            "backup_last_duration_seconds",
            "Duration of the last completed backup",
            m.backup_last_duration.clone(),
        );
        registry.register("drill_attempts", "Recovery drills started", m.drill_attempts.clone());
        registry.register("drill_passes", "Recovery drills passed", m.drill_passes.clone());
        registry.register("drill_failures", "Recovery drills failed", m.drill_failures.clone());
        registry.register(
            "drill_last_result",
            "1 when the last finished drill passed, 0 when it failed",
            m.drill_last_result.clone(),
        );
        registry.register(
            "drill_last_timestamp_seconds",
            "Completion time of the last finished drill (Unix seconds)",
            m.drill_last_timestamp.clone(),
        );
        registry.register(
            "drill_last_pass_timestamp_seconds",
            "Completion time of the newest passed drill (Unix seconds)",
            m.drill_last_pass.clone(),
        );
        registry.register("drill_rpo_seconds", "RPO measured by the last finished drill", m.drill_rpo.clone());
        registry.register(
            "drill_rpo_objective_seconds",
            "RPO objective of the last finished drill",
            m.drill_rpo_objective.clone(),
        );
        registry.register("drill_rto_seconds", "RTO measured by the last finished drill", m.drill_rto.clone());
        registry.register(
            "drill_rto_objective_seconds",
            "RTO objective of the last finished drill",
            m.drill_rto_objective.clone(),
        );
        registry.register(
            "drill_source_major",
            "PostgreSQL major of the backup the last finished drill restored",
            m.drill_source_major.clone(),
        );
        registry.register(
            "drill_blobs_referenced",
            "Blob references in the database the last finished drill restored",
            m.drill_blobs_referenced.clone(),
        );
        registry.register(
            "drill_blobs_missing",
            "Referenced blobs missing from object storage in the last finished drill",
            m.drill_blobs_missing.clone(),
        );
        registry.register(
            "drill_blobs_corrupt",
            "Referenced blobs of another size or digest in the last finished drill",
            m.drill_blobs_corrupt.clone(),
        );
        registry.register(
            "drill_blobs_orphans",
            "Objects no blob row references, in the last finished drill (informational)",
            m.drill_blobs_orphans.clone(),
        );
        registry.register(
            "blobs_recoverable",
            "1 when the blob bucket keeps deleted objects (versioning), 0 when it does not, -1 when unknown",
            m.blobs_recoverable.clone(),
        );
        registry.register(
            "wal_status_age_seconds",
            "Seconds since the WAL archiver last wrote its status into the backup store (it writes every 10 s by default); NaN when none ever ran",
            m.wal_status_age.clone(),
        );
        registry.register(
            "wal_retained_bytes",
            "WAL the archiver's replication slot held back on the source at its last status",
            m.wal_retained_bytes.clone(),
        );
        registry.register(
            "drill_target_major",
            "PostgreSQL major the last finished drill restored into (above the source: an upgrade rehearsal)",
            m.drill_target_major.clone(),
        );
        registry.register("reconciles", "Reconciles run, by controller", m.reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by controller", m.reconcile_errors.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration, by controller",
            m.reconcile_duration.clone(),
        );
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

    /// Starts an installation's backup and drill counters at 0, so that a
    /// failure count reads 0 (not "no data") before the first failure and
    /// `increase()` sees the first one.
    pub fn count_from_zero(&self, l: &InstallationLabels) {
        for family in [
            &self.backup_attempts,
            &self.backup_successes,
            &self.backup_failures,
            &self.drill_attempts,
            &self.drill_passes,
            &self.drill_failures,
        ] {
            let _ = family.get_or_create(l);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
