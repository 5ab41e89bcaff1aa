//! The operator as a process (`artifortress-operator run`) against the real API
//! server: killed in the middle of a drill and restarted, two replicas electing
//! a leader, leader election under clock skew and with an API server that stops
//! answering.
//!
//! API-server level: its Jobs run in the job-runner stand-in; the operator as
//! a pod (deleted mid-drill, two replicas) is tests/node.rs.

mod support;

use std::time::Duration;

use artifortress_operator::api::backup::{Backup, BackupPhase};
use artifortress_operator::api::recovery_drill::{DrillPhase, DrillResult, RecoveryDrill};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;
use support::cluster::{Installation, wait_until};
use support::operator::Operator;

const MINUTE: Duration = Duration::from_secs(60);

/// One replica in the installation's namespace, with a short lease.
fn replica(ns: &str, identity: &str) -> Operator {
    replica_with(ns, identity, &[])
}

fn replica_with(ns: &str, identity: &str, extra: &[&str]) -> Operator {
    let base = [
        "--image",
        "artifortress-operator:test",
        "--namespace",
        ns,
        "--listen",
        "127.0.0.1:0",
        "--lease-namespace",
        ns,
        "--identity",
        identity,
        "--lease-duration",
        "3s",
        "--renew-every",
        "1s",
        "--plain-http",
    ];
    Operator::run(&[&base[..], extra].concat())
}

async fn holder(i: &Installation) -> Option<String> {
    let lease = i.api::<Lease>().get_opt("artifortress-operator").await.ok()??;
    lease.spec?.holder_identity
}

async fn wait_for_holder(i: &Installation, who: &str) {
    let poll = async {
        while holder(i).await.as_deref() != Some(who) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), poll).await.unwrap_or_else(|_| panic!("{who} never took the lease"));
}

#[tokio::test]
async fn an_operator_killed_mid_drill_finishes_it_after_restart_without_a_second_job() {
    let i = Installation::without_controllers("oprst").await;
    let mut first = replica(&i.ns, "replica-1");
    i.create(
        "RecoveryDrill",
        json!({"metadata": {"name": "interrupted"},
               "spec": {"artifortressRef": {"name": "production"}, "backup": {"mode": "Fresh"},
                        "target": {"connectionSecretRef": {"name": "target", "key": "uri"}},
                        "rpo": "1h", "rto": "30m"}}),
    )
    .await;
    // Killed once the drill is past its backup and the restore Job exists.
    let jobs = i.api::<Job>();
    wait_until(&jobs, "restore-interrupted", 2 * MINUTE, |_| true).await;
    first.kill().await;
    let drills = i.api::<RecoveryDrill>();
    let phase = drills.get("interrupted").await.unwrap().status.and_then(|s| s.phase);
    assert!(!matches!(phase, Some(DrillPhase::Succeeded | DrillPhase::Failed)), "killed mid-drill: {phase:?}");

    let second = replica(&i.ns, "replica-2");
    let status = wait_until(&drills, "interrupted", 3 * MINUTE, |d| {
        matches!(d.status.as_ref().and_then(|s| s.phase), Some(DrillPhase::Succeeded | DrillPhase::Failed))
    })
    .await
    .status
    .unwrap();
    assert_eq!(status.result, Some(DrillResult::Passed), "{:?}", status.failures);
    let mut names: Vec<String> =
        jobs.list(&ListParams::default()).await.unwrap().iter().map(|j| j.name_any()).collect();
    names.sort();
    assert_eq!(names, ["backup-drill-interrupted", "restore-interrupted", "verify-interrupted"], "one Job per step");

    // Every metric the chart's alert rules use is exported, with a sample.
    let thresholds = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(artifortress_operator::alerts::THRESHOLDS_FILE),
    )
    .unwrap();
    let wanted =
        artifortress_operator::alerts::metric_names(&artifortress_operator::alerts::parse(&thresholds).unwrap());
    let poll = async {
        loop {
            let (_, metrics) = support::http_get(&second.addr(), "/metrics", None).await;
            let missing: Vec<&String> =
                wanted.iter().filter(|m| !metrics.lines().any(|l| l.starts_with(&format!("{m}{{")))).collect();
            if missing.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), poll).await.expect("every alerting metric is exported");

    // Every metric a dashboard panel queries is exported with a sample (a
    // failure counter reads 0 before the first failure, not "no data").
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(artifortress_operator::dashboard::DASHBOARD_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    let (_, metrics) = support::http_get(&second.addr(), "/metrics", None).await;
    for name in artifortress_operator::dashboard::metric_names(&dashboard) {
        let family =
            ["_total", "_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(metrics.contains(&format!("# TYPE {family} ")), "the dashboard queries {name}, which is not exported");
    }
}

#[tokio::test]
async fn one_replica_leads_and_the_other_takes_over_when_it_stops() {
    let i = Installation::without_controllers("oplead").await;
    let mut a = replica(&i.ns, "replica-a");
    wait_for_holder(&i, "replica-a").await;
    let mut b = replica(&i.ns, "replica-b");
    let backups = i.api::<Backup>();
    let completed = |b: &Backup| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed);
    i.create("Backup", json!({"metadata": {"name": "under-a"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&backups, "under-a", 2 * MINUTE, completed).await;
    assert!(a.leads(), "a leads:\n{}", a.logs());
    assert!(!b.leads(), "b stands by while a renews:\n{}", b.logs());
    assert_eq!(holder(&i).await.as_deref(), Some("replica-a"));

    // The leader's HTTP server answers for the installations its controller manages.
    let (status, body) = support::http_get(&a.addr(), "/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let checked: Vec<(String, String)> = ready["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().into(), d["installation"].as_str().unwrap_or("").into()))
        .collect();
    for expected in [("postgresql", "production"), ("objectStorage", "production"), ("kubernetes", "")] {
        assert!(checked.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {checked:?}");
    }
    // The pod's readiness probe judges only what the operator needs.
    let (status, body) = support::http_get(&a.addr(), "/health/ready?scope=operator", None).await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> =
        ready["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kubernetes"], "{body}");
    let (status, body) = support::http_get(&a.addr(), "/health/ready?scope=everything", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("scope=operator"), "{body}");
    let summary = "/v1/admin/ops/summary?installation=production";
    assert_eq!(support::http_get(&a.addr(), summary, None).await.0, 401);
    let (status, body) = support::http_get(&a.addr(), summary, Some(&support::env("AF_TEST_KUBE_TOKEN_ADMIN"))).await;
    assert_eq!(status, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["installation"], "production");
    assert!(summary["pendingOutboxEvents"].as_i64().unwrap() > 0, "{summary}");
    let (_, metrics) = support::http_get(&a.addr(), "/metrics", None).await;
    assert!(metrics.contains("artifortress_backup_successes_total{installation=\"production\"} 1"), "{metrics}");

    // The standby answers for every installation too: readiness, and the ops
    // summary with the database's own numbers, audited.
    let (status, body) = support::http_get(&b.addr(), "/health/ready", None).await;
    assert_eq!(status, 200, "the standby's readiness: {body}");
    assert!(body.contains("\"installation\":\"production\""), "{body}");
    let pool = i.db.pool().await;
    let allowed = "SELECT count(*) FROM audit_log WHERE action = 'ops.summary.read'";
    let audited_before: i64 = sqlx::query_scalar(allowed).fetch_one(&pool).await.unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE delivered_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Its metrics cover the installation before anyone asked it for the summary.
    let (_, metrics) = support::http_get(&b.addr(), "/metrics", None).await;
    let gauge =
        format!("artifortress_ops_pending_outbox_events{{installation=\"production\",tenant=\"default\"}} {pending}");
    assert!(metrics.contains(&gauge), "the standby's metrics: {gauge} in\n{metrics}");
    let admin = support::env("AF_TEST_KUBE_TOKEN_ADMIN");
    let (status, body) =
        support::http_get(&b.addr(), "/v1/admin/ops/summary?installation=production", Some(&admin)).await;
    assert_eq!(status, 200, "the standby's ops summary: {body}");
    let from_standby: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(from_standby["pendingOutboxEvents"].as_i64(), Some(pending));
    let audited_after: i64 = sqlx::query_scalar(allowed).fetch_one(&pool).await.unwrap();
    assert_eq!(audited_after, audited_before + 1, "the standby's read is audited");

    // a dies without releasing: b takes over once the lease expires.
    a.kill().await;
    wait_for_holder(&i, "replica-b").await;
    i.create("Backup", json!({"metadata": {"name": "under-b"}, "spec": {"artifortressRef": {"name": "production"}}}))
        .await;
    wait_until(&backups, "under-b", 2 * MINUTE, completed).await;
    assert!(b.leads(), "{}", b.logs());

    // A graceful stop gives the lease up at once.
    let exit = b.terminate().await;
    assert!(exit.success(), "{exit:?}\n{}", b.logs());
    assert_eq!(holder(&i).await, None);
}

#[tokio::test]
async fn leader_election_trusts_no_clock_but_its_own() {
    use artifortress_operator::controller::leader::{Elector, LeaseConfig};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let client = support::kube_client().await;
    let ns = support::create_namespace(&client).await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &ns);
    let config = |identity: &str| LeaseConfig {
        name: "skew".into(),
        namespace: ns.clone(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        renew_every: Duration::from_secs(1),
    };
    // A holder on a node whose clock is an hour behind, or ahead: it writes
    // renewTime by its clock.
    let write = {
        let leases = leases.clone();
        move |holder: &'static str, skew: i64| {
            let leases = leases.clone();
            async move {
                let at = k8s_openapi::jiff::Timestamp::now()
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(skew))
                    .unwrap();
                let mut lease = leases.get_opt("skew").await.unwrap().unwrap_or_default();
                lease.metadata.name = Some("skew".into());
                let spec = lease.spec.get_or_insert_default();
                spec.holder_identity = Some(holder.into());
                spec.renew_time = Some(MicroTime(at));
                spec.lease_duration_seconds = Some(3);
                if lease.metadata.resource_version.is_some() {
                    leases.replace("skew", &Default::default(), &lease).await.unwrap();
                } else {
                    leases.create(&Default::default(), &lease).await.unwrap();
                }
            }
        }
    };
    write("behind", -3600).await;
    let behind = tokio::spawn({
        let write = write.clone();
        async move {
            loop {
                write("behind", -3600).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let b = Elector::new(client.clone(), config("b"));
    let watching = std::time::Instant::now();
    while watching.elapsed() < Duration::from_secs(8) {
        assert!(!b.try_hold().await.unwrap(), "a lease renewed by a clock an hour behind is not stolen");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    behind.abort();

    // A holder whose clock is an hour ahead stops renewing: its lease expires
    // after the lease duration as seen here, not an hour later.
    write("ahead", 3600).await;
    let stopped = std::time::Instant::now();
    while !b.try_hold().await.unwrap() {
        assert!(stopped.elapsed() < Duration::from_secs(8), "the lease is taken over");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let waited = stopped.elapsed();
    assert!(waited >= Duration::from_secs(3), "not before the lease duration: {waited:?}");
    let spec = leases.get("skew").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
}

/// A TCP proxy to the API server that can stop answering: connections stay
/// open, nothing more goes through either way (a half-open link, a hung server).
struct Blackhole {
    addr: String,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Blackhole {
    async fn start(upstream: String) -> Blackhole {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = held.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, flag.clone()));
                    pump(sr, cw, flag).await;
                });
            }
        });
        Blackhole { addr, held }
    }

    fn hold(&self, on: bool) {
        self.held.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes while not held; while held, keeps both ends open and silent.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while held.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_within_the_lease_and_the_standby_takes_over() {
    let i = Installation::without_controllers("opcut").await;
    let server = support::env("AF_TEST_KUBE_SERVER");
    let proxy = Blackhole::start(server.trim_start_matches("https://").to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(support::env("KUBECONFIG")).unwrap();
    std::fs::write(&kubeconfig, text.replace(&server, &format!("https://{}", proxy.addr))).unwrap();

    let mut a = replica_with(&i.ns, "replica-a", &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    wait_for_holder(&i, "replica-a").await;
    let b = replica(&i.ns, "replica-b");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.leads() && !b.leads());

    // The API server stops answering a (connections open, no bytes).
    proxy.hold(true);
    let cut = std::time::Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(10), a.wait()).await.expect("a stops").unwrap();
    let stopped_after = cut.elapsed();
    assert!(!exit.success(), "{}", a.logs());
    assert!(a.logs().contains("lost the leader lease"), "{}", a.logs());
    assert!(stopped_after < Duration::from_secs(3), "a stopped reconciling within the 3 s lease: {stopped_after:?}");
    wait_for_holder(&i, "replica-b").await;
    // a's last renewal came at most 1 s (--renew-every) before the cut, and b
    // waits the 3 s lease from the last change it saw: not sooner than 2 s.
    let took_over = cut.elapsed();
    assert!(took_over >= Duration::from_secs(2), "b waited for the lease to expire: {took_over:?}");
    assert!(took_over > stopped_after, "b took over only after a stopped");
    proxy.hold(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(b.leads(), "{}", b.logs());
}

#[tokio::test]
async fn backups_stay_one_at_a_time_across_an_operator_killed_mid_backup() {
    let i = Installation::without_controllers("opbk1").await;
    let mut a = replica(&i.ns, "replica-a");
    wait_for_holder(&i, "replica-a").await;
    for name in ["one", "two"] {
        i.create("Backup", json!({"metadata": {"name": name}, "spec": {"artifortressRef": {"name": "production"}}}))
            .await;
    }
    let jobs = i.api::<Job>();
    let unfinished = || async {
        let list = jobs.list(&ListParams::default().labels("artifortress.io/step=backup")).await.unwrap();
        let done = |j: &Job| j.status.as_ref().is_some_and(|s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0) > 0);
        list.items.iter().filter(|j| !done(j)).count()
    };
    // Kill the leader as soon as the first backup Job exists, then start it again.
    while jobs.list(&ListParams::default()).await.unwrap().items.is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.kill().await;
    let _a2 = replica(&i.ns, "replica-a2");
    let s3 = support::s3_client().await;
    let (mut most_jobs, mut most_uploads) = (0, 0);
    let backups = i.api::<Backup>();
    let started = std::time::Instant::now();
    loop {
        most_jobs = most_jobs.max(unfinished().await);
        let uploads = s3.list_multipart_uploads().bucket(&i.bucket).send().await.unwrap();
        most_uploads = most_uploads.max(uploads.uploads().len());
        let all = backups.list(&ListParams::default()).await.unwrap().items;
        let completed = |b: &Backup| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed);
        if all.len() == 2 && all.iter().all(completed) {
            break;
        }
        assert!(started.elapsed() < 2 * MINUTE, "both backups complete: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(most_jobs <= 1, "never two backup Jobs at once, across the restart ({most_jobs})");
    assert!(most_uploads <= 1, "never two uploads at once in the bucket ({most_uploads})");
}

#[test]
fn run_serves_plain_http_only_when_told_to() {
    let out = support::operator(&["run", "--image", "artifortress-operator:test", "--listen", "127.0.0.1:0"]);
    support::assert_exit(&out, 2);
    assert!(support::stderr(&out).contains("--tls-cert FILE --tls-key FILE) or, explicitly, --plain-http"));
}
