//! The Backup controller on the real API server, its Jobs run by the job-runner
//! helper against the real PostgreSQL and S3 servers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use artifortress_operator::api::backup::{Backup, BackupPhase, BackupStatus};
use artifortress_operator::controller::backup::{self, Context};
use artifortress_operator::engine::manifest::Manifest;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use support::job_runner::JobRunner;
use support::{TestDatabase, create_namespace, env, install_crds, kube_client, operator_bin, s3_client, unique_name};

async fn create(client: &kube::Client, ns: &str, kind: &str, plural: &str, body: serde_json::Value) {
    let ar = kube::api::ApiResource {
        group: "artifortress.io".into(),
        version: "v1alpha1".into(),
        api_version: "artifortress.io/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let mut body = body;
    body["apiVersion"] = json!("artifortress.io/v1alpha1");
    body["kind"] = json!(kind);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar).create(&PostParams::default(), &obj).await.unwrap();
}

async fn wait_for(api: &Api<Backup>, name: &str, done: impl Fn(&BackupStatus) -> bool) -> BackupStatus {
    let poll = async {
        loop {
            if let Some(status) = api.get(name).await.unwrap().status.filter(|s| done(s)) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), poll).await.expect("the backup reaches the expected state")
}

#[tokio::test]
async fn a_backup_reaches_completed_with_the_manifest_in_status() {
    let client = kube_client().await;
    install_crds(&client).await;
    let ns = create_namespace(&client).await;

    let db = TestDatabase::migrated("ctlsrc").await;
    assert!(
        std::process::Command::new(operator_bin())
            .args(["seed", "--database", db.url.expose(), "--scale", "small"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let bucket = unique_name("ctl");
    s3_client().await.create_bucket().bucket(&bucket).send().await.unwrap();
    support::create_installation_secrets(&client, &ns, db.url.expose()).await;
    let storage = json!({"bucket": bucket, "prefix": "prod", "endpoint": env("AF_TEST_S3_ENDPOINT"),
                         "forcePathStyle": true, "credentialsSecretRef": {"name": "s3"}});
    create(
        &client,
        &ns,
        "Artifortress",
        "artifortresses",
        json!({"metadata": {"name": "production"},
        "spec": {"database": {"connectionSecretRef": {"name": "db", "key": "uri"}}, "objectStorage": storage}}),
    )
    .await;

    let ctx = Arc::new(Context { client: client.clone(), image: "artifortress-operator:test".into() });
    let ns_for_controller = ns.clone();
    let controller = tokio::spawn(async move { backup::run(ctx, Some(&ns_for_controller)).await });
    let _runner = JobRunner::start(client.clone(), &ns);

    // A Backup of an installation that does not exist waits with an actionable reason.
    create(
        &client,
        &ns,
        "Backup",
        "backups",
        json!({"metadata": {"name": "orphan"}, "spec": {"artifortressRef": {"name": "nope"}}}),
    )
    .await;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let orphan = wait_for(&backups, "orphan", |s| !s.conditions.is_empty()).await;
    assert_eq!(orphan.phase, Some(BackupPhase::Pending));
    assert_eq!(orphan.conditions[0].reason, "ArtifortressNotFound");
    assert!(orphan.conditions[0].message.contains("fix spec.artifortressRef"), "{:?}", orphan.conditions);

    create(
        &client,
        &ns,
        "Backup",
        "backups",
        json!({"metadata": {"name": "nightly-1"}, "spec": {"artifortressRef": {"name": "production"}}}),
    )
    .await;
    let status =
        wait_for(&backups, "nightly-1", |s| matches!(s.phase, Some(BackupPhase::Completed | BackupPhase::Failed)))
            .await;
    assert_eq!(status.phase, Some(BackupPhase::Completed), "{status:?}");

    // Status mirrors the stored manifest.
    let store_url = format!(
        "s3://{bucket}/prod/production?endpoint={}&region=us-east-1&path_style=true",
        env("AF_TEST_S3_ENDPOINT")
    );
    let store = artifortress_operator::store::open(&store_url).await.unwrap();
    let manifest = Manifest::load(store.as_ref(), "nightly-1").await.unwrap();
    assert_eq!(status.sha256.as_deref(), Some(manifest.dump.sha256.as_str()));
    assert_eq!(status.size_bytes, Some(manifest.dump.size_bytes));
    assert_eq!(status.tables, manifest.tables);
    assert_eq!(status.snapshot_time, Some(manifest.snapshot_time));
    assert_eq!(status.location.as_deref(), Some(format!("s3://{bucket}/prod/production/nightly-1/").as_str()));
    assert_eq!(status.job_name.as_deref(), Some("backup-nightly-1"));
    assert_eq!(status.conditions.iter().find(|c| c.type_ == "Ready").unwrap().reason, "Completed");
    assert!(status.observed_generation.is_some());

    // A Job that exits non-zero fails the Backup with the Job's reason.
    let bad_db = json!({"uri": "postgres://nobody:wrong@127.0.0.1:1/none"});
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "bad-db"}, "stringData": bad_db})).unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns).create(&PostParams::default(), &secret).await.unwrap();
    let storage = json!({"bucket": bucket, "endpoint": env("AF_TEST_S3_ENDPOINT"), "forcePathStyle": true,
                         "credentialsSecretRef": {"name": "s3"}});
    create(
        &client,
        &ns,
        "Artifortress",
        "artifortresses",
        json!({"metadata": {"name": "broken"},
        "spec": {"database": {"connectionSecretRef": {"name": "bad-db", "key": "uri"}}, "objectStorage": storage}}),
    )
    .await;
    create(
        &client,
        &ns,
        "Backup",
        "backups",
        json!({"metadata": {"name": "doomed"}, "spec": {"artifortressRef": {"name": "broken"}}}),
    )
    .await;
    let status =
        wait_for(&backups, "doomed", |s| matches!(s.phase, Some(BackupPhase::Completed | BackupPhase::Failed))).await;
    assert_eq!(status.phase, Some(BackupPhase::Failed));
    let message = status.message.unwrap();
    assert!(message.contains("Job backup-doomed failed") && message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("wrong"), "no password in status: {message}");
    controller.abort();
}
