//! An installation on the test API server: a seeded database on the source
//! server, a bucket, the Secrets, an `Artifortress` object, and a job runner;
//! plus helpers to create resources and wait for their status.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use artifortress_operator::controller::Context;
use chrono::{DateTime, Utc};
use kube::Resource;
use kube::api::{Api, DynamicObject, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::job_runner::JobRunner;
use super::{TestDatabase, create_installation_secrets, create_namespace, env, install_crds, kube_client, unique_name};

/// Creates an Artifortress resource from JSON (`metadata` and `spec`).
pub async fn create(client: &kube::Client, ns: &str, kind: &str, body: Value) {
    let plural = match kind {
        "Artifortress" => "artifortresses".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    let ar = kube::api::ApiResource {
        group: "artifortress.io".into(),
        version: "v1alpha1".into(),
        api_version: "artifortress.io/v1alpha1".into(),
        kind: kind.into(),
        plural,
    };
    let mut body = body;
    body["apiVersion"] = json!("artifortress.io/v1alpha1");
    body["kind"] = json!(kind);
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
}

/// Polls `name` until `done` holds, failing after `within` with the last state seen.
/// The namespace's Events once one satisfies `wanted`: an Event may be
/// recorded just after the status change a test waited for.
pub async fn event_matching(
    api: &Api<k8s_openapi::api::events::v1::Event>,
    within: Duration,
    wanted: impl Fn(&k8s_openapi::api::events::v1::Event) -> bool,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let events = api.list(&Default::default()).await.expect("listing Events").items;
        if events.iter().any(&wanted) || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn wait_until<K>(api: &Api<K>, name: &str, within: Duration, done: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut last = None;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            if done(&obj) {
                return obj;
            }
            last = Some(obj);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} did not reach the expected state within {within:?}; last seen: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(t: &str) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(t.parse().unwrap())))
    }

    pub fn set(&self, t: &str) {
        *self.0.lock().unwrap() = t.parse().unwrap();
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// One installation (`production`) in a fresh namespace, with the controllers
/// running in this process and a job runner executing their Jobs.
pub struct Installation {
    pub client: kube::Client,
    pub ns: String,
    pub bucket: String,
    pub db: TestDatabase,
    pub ctx: Arc<Context>,
    controllers: Option<tokio::task::JoinHandle<()>>,
    pub runner: JobRunner,
}

impl Drop for Installation {
    fn drop(&mut self) {
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
    }
}

impl Installation {
    /// With controllers in this process (optionally on a manual clock).
    pub async fn start(prefix: &str, clock: Option<ManualClock>) -> Installation {
        let mut i = Installation::without_controllers(prefix).await;
        let mut ctx = Context::new(
            i.client.clone(),
            "artifortress-operator:test".into(),
            Arc::new(artifortress_operator::metrics::Metrics::new()),
        );
        if let Some(clock) = clock {
            ctx.clock = Arc::new(move || clock.now());
            ctx.max_requeue = Duration::from_secs(1);
        }
        let ctx = Arc::new(ctx);
        let ns = i.ns.clone();
        let run_ctx = ctx.clone();
        i.controllers = Some(tokio::spawn(async move {
            artifortress_operator::controller::run_all(run_ctx, Some(ns), std::future::pending()).await
        }));
        i.ctx = ctx;
        i
    }

    /// Everything but the controllers (for tests that run the operator process).
    pub async fn without_controllers(prefix: &str) -> Installation {
        let client = kube_client().await;
        install_crds(&client).await;
        let ns = create_namespace(&client).await;
        let (db, bucket) = provision(&client, &ns, prefix, str::to_string).await;
        let ctx = Arc::new(Context::new(
            client.clone(),
            "unused".into(),
            Arc::new(artifortress_operator::metrics::Metrics::new()),
        ));
        let runner = JobRunner::start(client.clone(), &ns);
        Installation { client, ns, bucket, db, ctx, controllers: None, runner }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn create(&self, kind: &str, body: Value) {
        create(&self.client, &self.ns, kind, body).await
    }

    /// The installation's backup store as the operator lays it out.
    pub async fn store(&self) -> Box<dyn artifortress_operator::store::BackupStore> {
        let url = format!(
            "s3://{}/prod/production?endpoint={}&region=us-east-1&path_style=true",
            self.bucket,
            env("AF_TEST_S3_ENDPOINT")
        );
        artifortress_operator::store::open(&url).await.unwrap()
    }
}

/// What an installation's Jobs need in `ns`: a migrated database seeded at the
/// small scale (its blobs' objects in a new bucket, which is returned), the
/// Secrets `db`, `s3` and `target` (a scratch database on the target server)
/// and the Artifortress `production`. `reach` turns a database URL into the
/// one the Jobs connect to.
pub async fn provision(
    client: &kube::Client,
    ns: &str,
    prefix: &str,
    reach: impl Fn(&str) -> String,
) -> (TestDatabase, String) {
    let db = TestDatabase::migrated(prefix).await;
    let bucket = unique_name(prefix);
    super::s3_client().await.create_bucket().bucket(&bucket).send().await.unwrap();
    let out = std::process::Command::new(super::operator_bin())
        .args(["seed", "--database", db.url.expose(), "--scale", "small", "--blob-store", &blob_store_url(&bucket)])
        .output()
        .unwrap();
    assert!(out.status.success(), "seed: {}", String::from_utf8_lossy(&out.stderr));
    create_installation_secrets(client, ns, &reach(db.url.expose())).await;
    let target = super::with_database(&env("AF_TEST_PG_TARGET_URL"), &format!("scratch_{}", db.name));
    secret(client, ns, "target", json!({"uri": reach(&target)})).await;
    create(
        client,
        ns,
        "Artifortress",
        json!({"metadata": {"name": "production"},
               "spec": {"database": {"connectionSecretRef": {"name": "db", "key": "uri"}},
                        "objectStorage": storage(&bucket), "backupStorage": backup_storage(&bucket),
                        "probeInterval": "2s"}}),
    )
    .await;
    (db, bucket)
}

/// `objectStorage` of a test installation (its blobs): the harness's Garage, prefix `blobs`.
pub fn storage(bucket: &str) -> Value {
    json!({"bucket": bucket, "prefix": "blobs", "endpoint": env("AF_TEST_S3_ENDPOINT"),
           "forcePathStyle": true, "credentialsSecretRef": {"name": "s3"}})
}

/// `backupStorage` of a test installation: the same Garage bucket, prefix `prod`,
/// apart from the blobs.
pub fn backup_storage(bucket: &str) -> Value {
    json!({"bucket": bucket, "prefix": "prod", "endpoint": env("AF_TEST_S3_ENDPOINT"),
           "forcePathStyle": true, "credentialsSecretRef": {"name": "s3"}})
}

/// The blob store of a test installation as a store URL.
pub fn blob_store_url(bucket: &str) -> String {
    super::s3_store_url(&env("AF_TEST_S3_ENDPOINT"), bucket, "blobs")
}

pub async fn secret(client: &kube::Client, ns: &str, name: &str, data: Value) {
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    Api::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await.unwrap();
}
