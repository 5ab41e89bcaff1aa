//! `backup` and `drill`: create the resource as a person would with kubectl,
//! then (with --wait) follow its status to the end; `logs`: its Job's log.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{ListParams, LogParams};

use artifortress_operator::api::backup::{Backup, BackupPhase};
use artifortress_operator::api::backup_schedule::BackupSchedule;
use artifortress_operator::api::recovery_drill::{DrillPhase, DrillResult, RecoveryDrill};
use artifortress_operator::controller::jobs::{LABEL_OWNER, label_value};

use super::super::failure::{Failure, failed, usage};
use super::access::Cluster;
use super::view::short_duration;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The Artifortress installation.
    installation: String,
    /// A physical base backup (pg_basebackup) instead of a logical one.
    #[arg(long)]
    physical: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(clap::Args)]
pub struct DrillArgs {
    /// The Artifortress installation.
    installation: String,
    /// Restore this Backup.
    #[arg(long, conflicts_with_all = ["latest", "pitr"])]
    backup: Option<String>,
    /// Restore the newest completed backup (the default is a fresh one).
    #[arg(long)]
    latest: bool,
    /// A physical drill replaying the WAL up to this time (RFC 3339), LSN or
    /// `latest`, from the newest base backup.
    #[arg(long)]
    pitr: Option<String>,
    /// The scratch target's Secret (`NAME` or `NAME:KEY`, key default `uri`).
    /// Default: the target of the installation's newest drill, or of a
    /// schedule's drill policy.
    #[arg(long)]
    target_secret: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(clap::Args)]
struct WaitArgs {
    /// Follow it until it finishes; exit code 1 when it fails.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn backup(cluster: &Cluster, args: BackupArgs) -> Result<(), Failure> {
    cluster.installation(&args.installation).await?;
    let method = if args.physical { "Physical" } else { "Logical" };
    let name = format!("{}-backup-{}", args.installation, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let body = serde_json::json!({
        "apiVersion": "artifortress.io/v1alpha1", "kind": "Backup", "metadata": {"name": name},
        "spec": {"artifortressRef": {"name": args.installation}, "method": method}});
    let backup: Backup = serde_json::from_value(body).expect("a valid Backup");
    let followed = create_and_follow(cluster, &backup, "backup", &args.wait, |b: &Backup| {
        let s = b.status.as_ref()?;
        Some((format!("{:?}", s.phase?), matches!(s.phase, Some(BackupPhase::Completed | BackupPhase::Failed))))
    });
    let Some(done) = followed.await? else { return Ok(()) };
    let s = done.status.unwrap_or_default();
    if s.phase == Some(BackupPhase::Completed) {
        let size = s.size.unwrap_or_else(|| "-".into());
        println!(
            "completed in {}: {size} at {}",
            s.duration.unwrap_or_else(|| "-".into()),
            s.location.unwrap_or_default()
        );
        Ok(())
    } else {
        Err(failed(format!("backup {name} failed: {}", s.message.unwrap_or_else(|| "no reason given".into()))))
    }
}

pub async fn drill(cluster: &Cluster, args: DrillArgs) -> Result<(), Failure> {
    cluster.installation(&args.installation).await?;
    let backup = match (&args.backup, args.latest || args.pitr.is_some()) {
        (Some(name), _) => serde_json::json!({"mode": "Named", "name": name}),
        (None, true) => serde_json::json!({"mode": "Latest"}),
        (None, false) => serde_json::json!({"mode": "Fresh"}),
    };
    let mut spec = serde_json::json!({"artifortressRef": {"name": args.installation}, "backup": backup});
    match &args.pitr {
        Some(target) => {
            spec["method"] = "Physical".into();
            spec["recoveryTarget"] = target.clone().into();
        }
        None => spec["target"] = drill_target(cluster, &args).await?,
    }
    let name = format!("{}-drill-{}", args.installation, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let body = serde_json::json!({"apiVersion": "artifortress.io/v1alpha1", "kind": "RecoveryDrill",
                                  "metadata": {"name": name}, "spec": spec});
    let drill: RecoveryDrill = serde_json::from_value(body).map_err(|e| usage(format!("drill spec: {e}")))?;
    let followed = create_and_follow(cluster, &drill, "recoverydrill", &args.wait, |d: &RecoveryDrill| {
        let s = d.status.as_ref()?;
        Some((format!("{:?}", s.phase?), matches!(s.phase, Some(DrillPhase::Succeeded | DrillPhase::Failed))))
    });
    let Some(done) = followed.await? else { return Ok(()) };
    let s = done.status.unwrap_or_default();
    let summary = |o: &Option<artifortress_operator::api::recovery_drill::ObjectiveResult>| {
        o.as_ref().map_or("-".to_string(), |o| o.summary.clone())
    };
    if s.result == Some(DrillResult::Passed) {
        println!("passed: RPO {}, RTO {}", summary(&s.rpo), summary(&s.rto));
        for t in &s.tampering {
            eprintln!("tampering: {t}");
        }
        Ok(())
    } else {
        let reason = s.reason.unwrap_or_else(|| "Failed".into());
        Err(failed(format!("drill {name} failed ({reason}): {}", s.failures.join("; "))))
    }
}

/// The target of a logical drill: given, or the one the installation's drills use.
async fn drill_target(cluster: &Cluster, args: &DrillArgs) -> Result<serde_json::Value, Failure> {
    if let Some(secret) = &args.target_secret {
        let (name, key) = secret.split_once(':').unwrap_or((secret, "uri"));
        return Ok(serde_json::json!({"connectionSecretRef": {"name": name, "key": key}}));
    }
    let mut drills = cluster.list::<RecoveryDrill>().await?;
    drills.retain(|d| d.spec.artifortress_ref.name == args.installation && d.spec.template.target.is_some());
    drills.sort_by_key(|d| d.creation_timestamp().map(|t| artifortress_operator::controller::k8s_time(&t)));
    let from_drill = drills.last().and_then(|d| d.spec.template.target.clone());
    let from_schedule = || async {
        let schedules = cluster.list::<BackupSchedule>().await.ok()?;
        schedules
            .into_iter()
            .filter(|s| s.spec.artifortress_ref.name == args.installation)
            .find_map(|s| s.spec.drill.and_then(|d| d.template.target))
    };
    let target = match from_drill {
        Some(t) => Some(t),
        None => from_schedule().await,
    };
    let target = target.ok_or_else(|| {
        usage(format!(
            "no scratch target known for {}: give --target-secret NAME[:KEY] (a Secret holding a URL of the server \
             to restore into), or --pitr latest for a physical drill",
            args.installation
        ))
    })?;
    Ok(serde_json::to_value(target).expect("a target serializes"))
}

/// Creates `object` and says so as kubectl does; with --wait, polls it until
/// `state` (its phase, and whether that is final) says it finished, printing
/// each new phase. `None` without --wait.
async fn create_and_follow<K>(
    cluster: &Cluster,
    object: &K,
    kind: &str,
    wait: &WaitArgs,
    state: impl Fn(&K) -> Option<(String, bool)>,
) -> Result<Option<K>, Failure>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    cluster.create(object).await?;
    let name = object.name_any();
    println!("{kind}.artifortress.io/{name} created");
    if !wait.wait {
        return Ok(None);
    }
    let (name, timeout) = (name.as_str(), wait.timeout);
    let started = Instant::now();
    let mut last = String::new();
    let mut logs = LogFollower::default();
    loop {
        logs.poll(cluster, name).await;
        let Some(object) = cluster.get::<K>(name).await? else {
            return Err(failed(format!("{name} was deleted while it was followed")));
        };
        if let Some((phase, finished)) = state(&object) {
            if phase != last {
                eprintln!("[{}] {phase}", short_duration(started.elapsed().as_secs_f64()));
                last = phase;
            }
            if finished {
                logs.finish().await;
                return Ok(Some(object));
            }
        }
        if started.elapsed() > timeout {
            return Err(failed(format!(
                "{name} is still {} after {}: it goes on in the cluster; kubectl artifortress logs {name}",
                if last.is_empty() { "without status" } else { &last },
                short_duration(timeout.as_secs_f64())
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The pods of `owner`'s Jobs (the operator labels them), oldest first.
async fn pods_of(cluster: &Cluster, owner: &str) -> Result<Vec<Pod>, kube::Error> {
    let selector = format!("{LABEL_OWNER}={}", label_value(owner));
    let mut pods = cluster.api::<Pod>().list(&ListParams::default().labels(&selector)).await?.items;
    pods.sort_by_key(|p| p.creation_timestamp().map(|t| artifortress_operator::controller::k8s_time(&t)));
    Ok(pods)
}

/// The log of each pod of `owner`'s Jobs, streamed to stderr as it is
/// written, so a person sees the step's own progress lines; silent where the
/// user may not read pods or their logs.
#[derive(Default)]
struct LogFollower {
    streamed: Vec<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LogFollower {
    async fn poll(&mut self, cluster: &Cluster, owner: &str) {
        let Ok(pods) = pods_of(cluster, owner).await else { return };
        for pod in pods {
            let name = pod.name_any();
            let started = pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p != "Pending");
            if !started || self.streamed.contains(&name) {
                continue;
            }
            let follow = LogParams { follow: true, ..Default::default() };
            let Ok(stream) = cluster.api::<Pod>().log_stream(&name, &follow).await else { continue };
            self.streamed.push(name.clone());
            self.tasks.push(tokio::spawn(async move {
                let mut lines = futures::AsyncBufReadExt::lines(stream);
                while let Some(Ok(line)) = futures::StreamExt::next(&mut lines).await {
                    eprintln!("  {name} | {line}");
                }
            }));
        }
    }

    /// Lets the streams of the finished pods end (a few seconds at most).
    async fn finish(self) {
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

pub async fn logs(cluster: &Cluster, name: &str) -> Result<(), Failure> {
    // What the operator kept of a finished step: the container's termination
    // message (why it failed), in the resource's status.
    let kept = match (cluster.get::<Backup>(name).await?, cluster.get::<RecoveryDrill>(name).await?) {
        (Some(b), _) => b.status.and_then(|s| s.message).into_iter().collect::<Vec<_>>(),
        (None, Some(d)) => d.status.map(|s| s.failures).unwrap_or_default(),
        (None, None) => {
            return Err(usage(format!("no Backup or RecoveryDrill {name:?} in namespace {}", cluster.namespace)));
        }
    };
    let pods = pods_of(cluster, name).await.map_err(|e| cluster.explain(e, "list", "pods"))?;
    let Some(pod) = pods.last() else {
        let mut said = format!("{name} has no pod left (its Job finished and was removed)");
        if kept.is_empty() {
            said += "; its status holds the outcome: kubectl artifortress status";
            return Err(failed(said));
        }
        eprintln!("{said}; what the operator kept of why it failed:");
        println!("{}", kept.join("\n"));
        return Ok(());
    };
    let log = cluster.api::<Pod>().logs(&pod.name_any(), &LogParams::default()).await;
    print!("{}", log.map_err(|e| cluster.explain(e, "get", "pods/log"))?);
    Ok(())
}
