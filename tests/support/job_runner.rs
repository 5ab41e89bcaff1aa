//! Plays the Kubernetes job controller and kubelet, which the test API server
//! does not have: it finds the operator's Jobs, runs each pod's container command
//! locally (the operator binary's own subcommand) with the environment resolved
//! from the referenced Secrets, and writes the Job's status as the job
//! controller would (succeeded/failed, Complete/Failed condition, times) —
//! stopping a run past the Job's `activeDeadlineSeconds` as `DeadlineExceeded`.
//! Like the real job controller it puts none of the pod's output into the
//! Job's status; the output is kept as the Job's log ([`JobRunner::log`]).
//! A failed run leaves what the kubelet would: a Pod labelled `job-name`,
//! `Failed`, its container terminated with the exit code and the termination
//! message the binary wrote (the operator reads why a step failed there).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use artifortress_operator::controller::jobs::TERMINATION_LOG_ENV;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub struct JobRunner {
    task: tokio::task::JoinHandle<()>,
    logs: Logs,
}

/// Each finished Job's stderr (what `kubectl logs` shows), by Job name.
type Logs = Arc<Mutex<BTreeMap<String, String>>>;

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JobRunner {
    /// Runs every Job labelled as the operator's in `namespace` until dropped.
    pub fn start(client: kube::Client, namespace: &str) -> JobRunner {
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let started = Arc::new(Mutex::new(HashSet::new()));
        let logs = Logs::default();
        let job_logs = logs.clone();
        let task = tokio::spawn(async move {
            loop {
                let lp = ListParams::default().labels("app.kubernetes.io/managed-by=artifortress-operator");
                if let Ok(list) = jobs.list(&lp).await {
                    for job in list {
                        let name = job.metadata.name.clone().unwrap_or_default();
                        let finished =
                            job.status.as_ref().is_some_and(|s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0) > 0);
                        if finished || !started.lock().unwrap().insert(name.clone()) {
                            continue;
                        }
                        tokio::spawn(run_job(jobs.clone(), secrets.clone(), pods.clone(), job, job_logs.clone()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        JobRunner { task, logs }
    }

    /// The log of a finished Job (empty when it has not run).
    pub fn log(&self, job: &str) -> String {
        self.logs.lock().unwrap().get(job).cloned().unwrap_or_default()
    }
}

async fn resolve_env(secrets: &Api<Secret>, job: &Job) -> Result<BTreeMap<String, String>, String> {
    let container = &job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, var.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref())) {
            (Some(value), _) => value.clone(),
            (None, Some(sel)) => {
                let secret = secrets.get(&sel.name).await.map_err(|e| format!("secret {}: {e}", sel.name))?;
                let bytes = secret
                    .data
                    .and_then(|d| d.get(&sel.key).cloned())
                    .ok_or(format!("secret {} has no key {}", sel.name, sel.key))?;
                String::from_utf8(bytes.0).map_err(|e| e.to_string())?
            }
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

/// The Pod a kubelet would leave for a failed run of `job`.
async fn failed_pod(pods: &Api<Pod>, job: &Job, exit_code: i32, message: &str) {
    let name = job.metadata.name.clone().unwrap();
    let container = &job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-run"), "labels": {"job-name": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": container.name, "image": container.image}]},
    }))
    .unwrap();
    let pod_name = pods.create(&PostParams::default(), &pod).await.unwrap().metadata.name.unwrap();
    let status = json!({"status": {"phase": "Failed", "containerStatuses": [{
        "name": container.name, "image": container.image, "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": exit_code, "reason": "Error", "message": message}}}]}});
    pods.patch_status(&pod_name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

async fn run_job(jobs: Api<Job>, secrets: Api<Secret>, pods: Api<Pod>, job: Job, logs: Logs) {
    let name = job.metadata.name.clone().unwrap();
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = |s: serde_json::Value| Patch::Merge(json!({ "status": s }));
    let _ = jobs.patch_status(&name, &PatchParams::default(), &status(json!({"startTime": now(), "active": 1}))).await;
    let args =
        job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].args.clone().unwrap_or_default();
    let staging = tempfile::tempdir().unwrap();
    // The pod's emptyDir at /staging is a temporary directory here.
    let args: Vec<String> = args
        .into_iter()
        .map(|a| match a.strip_prefix("/staging") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", staging.path().display()),
            _ => a,
        })
        .collect();
    let termination_log = staging.path().join("termination-log");
    let outcome = match resolve_env(&secrets, &job).await {
        Err(e) => Err(("BackoffLimitExceeded", format!("CreateContainerConfigError: {e}"))),
        Ok(env) => {
            // Only what the pod would have: no credential leaks in from the test
            // process. The image carries the client tools of every major; here
            // they are the harness's (ARTIFORTRESS_PG_BINDIR).
            let run = tokio::process::Command::new(super::operator_bin())
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("ARTIFORTRESS_PG_BINDIR", std::env::var("ARTIFORTRESS_PG_BINDIR").unwrap_or_default())
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .envs(env)
                .env(TERMINATION_LOG_ENV, &termination_log)
                .kill_on_drop(true)
                .output();
            let deadline = job.spec.as_ref().unwrap().active_deadline_seconds.unwrap_or(86_400);
            match tokio::time::timeout(Duration::from_secs(deadline as u64), run).await {
                // The job controller's own reason and message for a Job past its deadline.
                Err(_) => Err(("DeadlineExceeded", "Job was active longer than specified deadline".to_string())),
                Ok(out) => {
                    let out = out.unwrap();
                    logs.lock().unwrap().insert(name.clone(), String::from_utf8_lossy(&out.stderr).into_owned());
                    if out.status.success() {
                        Ok(())
                    } else {
                        let message = std::fs::read_to_string(&termination_log).unwrap_or_default();
                        failed_pod(&pods, &job, out.status.code().unwrap_or(1), &message).await;
                        Err(("BackoffLimitExceeded", "Job has reached the specified backoff limit".to_string()))
                    }
                }
            }
        }
    };
    let (counts, condition, reason, message) = match &outcome {
        Ok(()) => (json!({"succeeded": 1, "active": 0}), "Complete", "Completed", String::new()),
        Err((reason, message)) => (json!({"failed": 1, "active": 0}), "Failed", *reason, message.clone()),
    };
    let mut s = counts;
    s["conditions"] = json!([{"type": condition, "status": "True", "reason": reason, "message": message,
                              "lastProbeTime": now(), "lastTransitionTime": now()}]);
    if outcome.is_ok() {
        s["completionTime"] = json!(now());
    }
    let _ = jobs.patch_status(&name, &PatchParams::default(), &status(s)).await;
}
