//! The engine Jobs the controllers will create, on the real API server: the
//! builder's Job is accepted as is, and run by the job-runner helper it takes a
//! real backup of a real database into the real S3 server — credentials reaching
//! it only through Secrets.
//!
//! API-server level: the job-runner stand-in, not a kubelet, runs the Job;
//! tests/node.rs runs Jobs as pods.

mod support;

use std::time::Duration;

use artifortress_operator::api::artifortress::{ArtifortressSpec, DatabaseSpec, ObjectStorageSpec, S3CredentialsRef};
use artifortress_operator::api::common::{SecretKeyRef, VerifyMode};
use artifortress_operator::api::job_template::JobTemplate;
use artifortress_operator::controller::jobs::{self, EngineJob};
use artifortress_operator::engine::manifest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::job_runner::JobRunner;
use support::{TestDatabase, env, kube_client, s3_client, unique_name};

#[tokio::test]
async fn a_built_backup_job_runs_the_engine_with_credentials_from_secrets() {
    let client = kube_client().await;
    let ns = unique_name("af-jobs");
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();

    let db = TestDatabase::migrated("jobsrc").await;
    let bucket = unique_name("jobs");
    s3_client().await.create_bucket().bucket(&bucket).send().await.unwrap();

    support::create_installation_secrets(&client, &ns, db.url.expose()).await;
    let spec = ArtifortressSpec {
        kublai: None,
        database: Some(DatabaseSpec { connection_secret_ref: SecretKeyRef { name: "db".into(), key: "uri".into() } }),
        object_storage: Some(ObjectStorageSpec {
            bucket: bucket.clone(),
            prefix: Some("prod".into()),
            endpoint: Some(env("AF_TEST_S3_ENDPOINT")),
            region: "us-east-1".into(),
            force_path_style: true,
            credentials_secret_ref: Some(S3CredentialsRef {
                name: "s3".into(),
                access_key_id_key: "AWS_ACCESS_KEY_ID".into(),
                secret_access_key_key: "AWS_SECRET_ACCESS_KEY".into(),
            }),
            object_lock: None,
        }),
        backup_storage: None,
        slo: Default::default(),
        probe_interval: "30s".into(),
        job_template: None,
        wal_archive: None,
        encryption: None,
    };
    let store = jobs::backup_store_url(&spec, "production");
    let job = jobs::engine_job(EngineJob {
        step: "backup",
        owner_name: "nightly-1",
        owner: OwnerReference {
            api_version: "artifortress.io/v1alpha1".into(),
            kind: "Backup".into(),
            name: "nightly-1".into(),
            uid: "00000000-0000-0000-0000-000000000001".into(),
            ..Default::default()
        },
        namespace: &ns,
        installation: "production",
        image: "artifortress-operator:test",
        args: jobs::backup_args(&store, "nightly-1", VerifyMode::Counts, &[], &Default::default()),
        secret_env: jobs::backup_secret_env(&spec),
        staging_bytes: None,
        template: &JobTemplate::default(),
    });
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs_api.create(&PostParams::default(), &job).await.expect("the API server accepts the built Job");

    // Every jobTemplate field passes the API server's validation and is kept
    // (an unknown or feature-gated field would be dropped silently).
    let template: JobTemplate = serde_json::from_value(json!({
        "resources": {"requests": {"cpu": "1500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "imagePullSecrets": [{"name": "registry"}],
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"artifortress.io/step": "restore"}}}}]}},
        "priorityClassName": "batch-low",
        "podLabels": {"team": "storage"},
        "podAnnotations": {"example.com/note": "drill"},
        "activeDeadlineSeconds": 600,
        "staging": {"volume": "Ephemeral", "storageClassName": "fast"},
    }))
    .unwrap();
    for (staging, ephemeral) in [(template.clone(), true), (JobTemplate { staging: None, ..template.clone() }, false)] {
        let restore = jobs::engine_job(EngineJob {
            step: "restore",
            owner_name: "drill-1",
            owner: job.metadata.owner_references.clone().unwrap()[0].clone(),
            namespace: &ns,
            installation: "production",
            image: "artifortress-operator:test",
            args: vec!["drill-step".into(), "restore".into()],
            secret_env: Vec::new(),
            staging_bytes: Some(5 << 30),
            template: &staging,
        });
        let dry_run = PostParams { dry_run: true, ..Default::default() };
        let stored = jobs_api.create(&dry_run, &restore).await.expect("the API server accepts every template field");
        let (sent, kept) = (restore.spec.unwrap().template, stored.spec.clone().unwrap().template);
        let (sent_pod, kept_pod) = (sent.spec.unwrap(), kept.spec.unwrap());
        assert_eq!(kept_pod.node_selector, sent_pod.node_selector);
        assert_eq!(kept_pod.tolerations, sent_pod.tolerations);
        assert_eq!(kept_pod.affinity, sent_pod.affinity);
        assert_eq!(kept_pod.priority_class_name, sent_pod.priority_class_name);
        assert_eq!(kept_pod.image_pull_secrets, sent_pod.image_pull_secrets);
        assert_eq!(kept_pod.containers[0].resources, sent_pod.containers[0].resources);
        assert_eq!(kept_pod.volumes.as_ref().unwrap()[0].ephemeral.is_some(), ephemeral, "staging volume kept");
        let (sent_volume, kept_volume) = (&sent_pod.volumes.unwrap()[0], &kept_pod.volumes.as_ref().unwrap()[0]);
        assert_eq!(kept_volume.empty_dir, sent_volume.empty_dir);
        let claim = |v: &k8s_openapi::api::core::v1::Volume| {
            v.ephemeral.clone().map(|e| {
                let spec = e.volume_claim_template.unwrap().spec;
                (spec.storage_class_name, spec.resources)
            })
        };
        assert_eq!(claim(kept_volume), claim(sent_volume));
        assert_eq!(kept.metadata.unwrap().annotations, sent.metadata.unwrap().annotations);
        assert_eq!(stored.spec.unwrap().active_deadline_seconds, Some(600));
    }

    // The runner starts the command with the pod's environment only, so the
    // credentials can come from nowhere but the Secrets.
    let _runner = JobRunner::start(client.clone(), &ns);
    let finished = async {
        loop {
            let j = jobs_api.get("backup-nightly-1").await.unwrap();
            if let Some(s) = j.status.filter(|s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0) > 0) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(60), finished).await.expect("job finishes");
    assert_eq!(status.succeeded, Some(1), "{:?}", status.conditions);
    assert_eq!(status.conditions.unwrap()[0].type_, "Complete");

    let store = artifortress_operator::store::open(&store).await.unwrap();
    let manifest = manifest::load(store.as_ref(), "nightly-1").await.unwrap();
    assert_eq!(manifest.backup_name, "nightly-1");
    assert_eq!(store.location("nightly-1/"), format!("s3://{bucket}/prod/production/nightly-1/"));
    assert!(manifest.tables.iter().any(|t| t.table == "public.tenants"));
}
