//! Prometheus metrics (prefix `artifortress_`), one registry per process, served
//! at `/metrics`. Controllers add their families here too.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::artifortress::ops::{Figures, OpsSummary};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub installation: String,
    pub dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstallationLabels {
    pub installation: String,
}

/// An ops figure of one tenant. At most [`TENANT_SERIES`] tenants of an
/// installation get series of their own (the first by slug); the others share
/// `tenant="_other"`, which holds the highest value among them, so that a
/// per-tenant threshold still fires for any of them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub installation: String,
    pub tenant: String,
}

pub const TENANT_SERIES: usize = 20;
pub const OTHER_TENANTS: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabels {
    pub installation: String,
    pub outcome: String,
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

/// The ops-figure metrics (name after the prefix, help), in upstream's order of the figures.
pub const OPS_METRICS: [(&str, &str); 7] = [
    ("ops_pending_outbox_events", "Undelivered outbox events (upstream's pendingOutboxEvents)"),
    ("ops_available_outbox_events", "Undelivered outbox events available now (availableOutboxEvents)"),
    (
        "ops_oldest_pending_outbox_age_seconds",
        "Age of the oldest undelivered outbox event, 0 when none (oldestPendingOutboxAgeSeconds)",
    ),
    ("ops_failed_search_jobs", "Failed search-index jobs (failedSearchJobs)"),
    ("ops_pending_search_jobs", "Pending or processing search-index jobs (pendingSearchJobs)"),
    ("ops_incomplete_gc_runs", "Garbage-collection runs without completion (incompleteGcRuns)"),
    ("ops_recent_policy_timeouts_24h", "policy.timeout audit rows in the last 24 hours (recentPolicyTimeouts24h)"),
];

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub dependency_up: Family<DependencyLabels, Gauge>,
    pub dependency_latency: Family<DependencyLabels, FloatGauge>,
    /// The seven ops figures, in upstream's order (see [`Figures::named`]).
    pub ops: [Family<TenantLabels, FloatGauge>; 7],
    /// The tenants each installation has series for, to drop those of tenants gone.
    ops_tenants: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
    pub ops_rejected: Family<RejectedLabels, Counter>,
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
    pub drill_tampered_objects: Family<InstallationLabels, Gauge>,
    pub blobs_recoverable: Family<InstallationLabels, Gauge>,
    pub wal_status_age: Family<InstallationLabels, FloatGauge>,
    pub wal_retained_bytes: Family<InstallationLabels, Gauge>,
    pub wal_stalled: Family<InstallationLabels, Gauge>,
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
            ops: Default::default(),
            ops_tenants: Default::default(),
            ops_rejected: Family::default(),
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
            drill_tampered_objects: Family::default(),
            blobs_recoverable: Family::default(),
            wal_status_age: Family::default(),
            wal_retained_bytes: Family::default(),
            wal_stalled: Family::default(),
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
        for (family, (name, help)) in m.ops.iter().zip(OPS_METRICS) {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "ops_summary_rejected",
            "Ops-summary requests refused (unauthenticated, denied, authorisation unavailable), by outcome",
            m.ops_rejected.clone(),
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
            "drill_tampered_objects",
            "Backup objects the last finished drill found changed after they were written (tampering)",
            m.drill_tampered_objects.clone(),
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
            "wal_stalled",
            "1 when the running WAL archiver reports that no WAL arrives from the source (a receiver that keeps exiting, a position standing still while the source's moves), else 0",
            m.wal_stalled.clone(),
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

    /// Every tenant's figures (bounded: see [`TenantLabels`]); a figure the
    /// schema lacks is NaN, which no threshold compares true with.
    pub fn record_ops(&self, installation: &str, summary: &OpsSummary) {
        let mut tenants: Vec<(String, &Figures)> =
            summary.tenants.iter().map(|t| (t.name().to_string(), &t.figures)).collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let others = tenants.split_off(tenants.len().min(TENANT_SERIES));
        let mut series: Vec<(String, [Option<i64>; 7])> =
            tenants.into_iter().map(|(t, f)| (t, f.named().map(|(_, v)| v))).collect();
        if !others.is_empty() {
            let mut worst = [None; 7];
            for (_, f) in &others {
                for (w, (_, v)) in worst.iter_mut().zip(f.named()) {
                    *w = (*w).max(v);
                }
            }
            series.push((OTHER_TENANTS.to_string(), worst));
        }
        let labels = |tenant: &str| TenantLabels { installation: installation.to_string(), tenant: tenant.to_string() };
        let names: Vec<String> = series.iter().map(|(t, _)| t.clone()).collect();
        let gone = self.ops_tenants.lock().expect("not poisoned").insert(installation.to_string(), names.clone());
        for tenant in gone.unwrap_or_default().iter().filter(|t| !names.contains(t)) {
            for family in &self.ops {
                family.remove(&labels(tenant));
            }
        }
        for (tenant, values) in &series {
            for (family, value) in self.ops.iter().zip(values) {
                family.get_or_create(&labels(tenant)).set(value.map_or(f64::NAN, |v| v as f64));
            }
        }
    }

    pub fn count_rejected(&self, installation: &str, outcome: &str) {
        let labels = RejectedLabels { installation: installation.to_string(), outcome: outcome.to_string() };
        self.ops_rejected.get_or_create(&labels).inc();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifortress::ops::TenantFigures;

    fn summary(tenants: usize) -> OpsSummary {
        OpsSummary {
            checked_at: chrono::Utc::now(),
            totals: Figures::default(),
            tenants: (0..tenants)
                .map(|i| TenantFigures {
                    tenant_id: format!("id-{i}"),
                    slug: Some(format!("t{i:03}")),
                    figures: Figures {
                        pending_outbox_events: Some(i as i64),
                        incomplete_gc_runs: None,
                        ..Default::default()
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn tenant_series_are_bounded_and_the_others_carry_their_worst_value() {
        let m = Metrics::new();
        m.record_ops("prod", &summary(50));
        let text = m.encode();
        let series = text.lines().filter(|l| l.starts_with("artifortress_ops_pending_outbox_events{")).count();
        assert_eq!(series, TENANT_SERIES + 1, "{text}");
        assert!(text.contains(r#"artifortress_ops_pending_outbox_events{installation="prod",tenant="t000"} 0"#));
        assert!(text.contains(r#"artifortress_ops_pending_outbox_events{installation="prod",tenant="_other"} 49"#));
        assert!(text.contains(r#"artifortress_ops_incomplete_gc_runs{installation="prod",tenant="t000"} NaN"#));
        // Tenants that went away lose their series.
        m.record_ops("prod", &summary(2));
        let text = m.encode();
        assert_eq!(text.lines().filter(|l| l.starts_with("artifortress_ops_pending_outbox_events{")).count(), 2);
        assert!(!text.contains("_other"), "{text}");
    }
}
