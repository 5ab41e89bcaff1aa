//! Operator benchmark (`make bench`, not `make test`): the control overhead of a
//! drill (its total time minus the engine's own work) and the operator's idle
//! memory while it watches and probes 100 `Artifortress` objects. Runs against
//! the test environment's API server, PostgreSQL and Garage; prints the numbers
//! next to their targets.

mod support;

use std::time::{Duration, Instant};

use artifortress_operator::api::artifortress::Artifortress;
use artifortress_operator::api::recovery_drill::{DrillPhase, RecoveryDrill};
use kube::api::ListParams;
use serde_json::json;
use support::cluster::{Installation, storage, wait_until};

const INSTALLATIONS: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
#[ignore = "benchmark: run by `make bench`"]
async fn operator_overhead_and_idle_memory() {
    let i = Installation::without_controllers("bench").await;
    let mut operator = tokio::process::Command::new(support::operator_bin())
        .args(["run", "--image", "artifortress-operator:bench", "--namespace", &i.ns, "--listen", "127.0.0.1:0"])
        .arg("--plain-http")
        .args(["--lease-namespace", &i.ns, "--identity", "bench"])
        .env("ARTIFORTRESS_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(concat!(env!("CARGO_TARGET_TMPDIR"), "/operator-bench.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = operator.id().unwrap();

    let alone = drill(&i, "alone").await;

    // Then 99 more installations: every one probed once, then idle.
    for n in 1..INSTALLATIONS {
        i.create(
            "Artifortress",
            json!({"metadata": {"name": format!("tenant-{n:03}")},
                   "spec": {"database": {"connectionSecretRef": {"name": "db", "key": "uri"}},
                            "objectStorage": storage(&i.bucket), "probeInterval": "30s"}}),
        )
        .await;
    }
    let installations = i.api::<Artifortress>();
    let started = Instant::now();
    loop {
        let list = installations.list(&ListParams::default()).await.unwrap();
        if list.iter().filter(|a| a.status.as_ref().is_some_and(|s| s.database.is_some())).count() == INSTALLATIONS {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "all installations probed within 5 min");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first_pass = started.elapsed();
    let mut peak = 0;
    // 35 s: one whole probe interval of all installations.
    for _ in 0..70 {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let busy = drill(&i, "busy").await;
    let _ = operator.kill().await;

    println!("operator benchmark ({INSTALLATIONS} Artifortress objects, seed small)");
    println!("  first probe of every installation   {:>8.1} s", first_pass.as_secs_f64());
    println!("  idle RSS (peak over 35 s)            {:>8.1} MiB   target <= 50 MiB", peak as f64 / 1024.0);
    for (label, d) in [("a drill alone", &alone), ("a drill beside the 100 installations", &busy)] {
        println!("  {label}:");
        println!("    total (status)                     {:>8.2} s", d.total);
        println!("    engine work                        {:>8.2} s", d.engine);
        println!("    control overhead                   {:>8.2} s   target <= 5 s", d.total - d.engine);
        println!("    created -> Succeeded observed      {:>8.2} s", d.observed);
        println!("    timeline (seconds after the drill started):");
        for (at, what) in &d.timeline {
            println!("      {at:>7.2}  {what}");
        }
    }
}

struct DrillRun {
    total: f64,
    engine: f64,
    observed: f64,
    timeline: Vec<(f64, String)>,
}

/// A fresh drill through the operator, with its Events as a timeline.
async fn drill(i: &Installation, name: &str) -> DrillRun {
    let created = Instant::now();
    i.create(
        "RecoveryDrill",
        json!({"metadata": {"name": name},
               "spec": {"artifortressRef": {"name": "production"}, "backup": {"mode": "Fresh"},
                        "target": {"connectionSecretRef": {"name": "target", "key": "uri"}}}}),
    )
    .await;
    let drill = wait_until(&i.api::<RecoveryDrill>(), name, Duration::from_secs(600), |d| {
        matches!(d.status.as_ref().and_then(|s| s.phase), Some(DrillPhase::Succeeded | DrillPhase::Failed))
    })
    .await;
    let observed = created.elapsed().as_secs_f64();
    let status = drill.status.unwrap();
    assert_eq!(status.phase, Some(DrillPhase::Succeeded), "{:?}", status.failures);
    let t = status.timings.unwrap();
    let engine: f64 = [t.backup_seconds, t.download_seconds, t.restore_seconds, t.parity_seconds]
        .iter()
        .map(|x| x.unwrap_or(0.0))
        .sum();
    let backup = format!("drill-{name}");
    let events = i.api::<k8s_openapi::api::events::v1::Event>().list(&ListParams::default()).await.unwrap();
    let t0 = status.started_at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
    let mut timeline: Vec<(f64, String)> = events
        .iter()
        .filter_map(|e| {
            let regarding = e.regarding.as_ref()?.name.clone()?;
            let at = e.event_time.as_ref()?.0.as_millisecond() as f64 / 1000.0;
            (regarding == name || regarding == backup)
                .then(|| (at - t0, format!("{regarding} {}", e.reason.clone().unwrap_or_default())))
        })
        .collect();
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    DrillRun { total: t.total_seconds.unwrap(), engine, observed, timeline }
}
