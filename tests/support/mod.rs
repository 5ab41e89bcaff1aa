//! Helpers shared by the integration tests.
//!
//! The services come from `hack/test-env.sh` (run by `make test`), which exports
//! their addresses. A test that needs one and does not find it fails with a
//! message saying how to run it; it never skips silently.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicU32, Ordering};

use artifortress_operator::db::{self, DatabaseUrl};
use sqlx::PgPool;

/// A variable exported by the test harness.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (or `hack/test-env.sh run -- cargo test`), which starts PostgreSQL, Garage and kube-apiserver")
    })
}

/// A name unique to this process and call, usable as a database, bucket or namespace.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos % 0xffff)
}

/// Superuser URL of one of the harness's servers with another database name.
pub fn with_database(server_url: &str, database: &str) -> String {
    let mut u = url::Url::parse(server_url).expect("harness URL parses");
    u.set_path(&format!("/{database}"));
    u.to_string()
}

/// A database created for one test on a harness server, dropped when the test ends.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    pub name: String,
    server_url: String,
}

impl TestDatabase {
    /// Creates an empty database on the server whose URL is in `server_env`
    /// (`AF_TEST_PG_SOURCE_URL` or `AF_TEST_PG_TARGET_URL`).
    pub async fn create(server_env: &str, prefix: &str) -> TestDatabase {
        let server_url = env(server_env);
        let name = unique_name(prefix).replace('-', "_");
        let admin = PgPool::connect(&server_url).await.expect("connect to harness PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await.expect("create test database");
        admin.close().await;
        let url = DatabaseUrl::parse(&with_database(&server_url, &name)).unwrap();
        TestDatabase { url, name, server_url }
    }

    pub async fn pool(&self) -> PgPool {
        db::connect(&self.url, 4).await.expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee; use a short-lived one of our own.
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(admin) = PgPool::connect(&server_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&admin).await;
                }
            });
        })
        .join();
    }
}

/// Path of the built `artifortress-operator` binary (cargo builds it for integration tests).
pub fn operator_bin() -> &'static str {
    env!("CARGO_BIN_EXE_artifortress-operator")
}

/// An S3 client for the harness's Garage server (path-style, static test keys).
pub async fn s3_client() -> aws_sdk_s3::Client {
    let endpoint = env("AF_TEST_S3_ENDPOINT");
    artifortress_operator::install_crypto_provider();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let s3 = aws_sdk_s3::config::Builder::from(&config).endpoint_url(endpoint).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// A Kubernetes client for the harness's kube-apiserver as cluster admin.
pub async fn kube_client() -> kube::Client {
    env("KUBECONFIG");
    artifortress_operator::install_crypto_provider();
    kube::Client::try_default().await.expect("kube client from the harness kubeconfig")
}

/// Runs `hack/test-env.sh` with arguments and returns its stdout.
fn harness(args: &[&str]) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/test-env.sh");
    let out = std::process::Command::new(script).args(args).output().expect("run hack/test-env.sh");
    assert!(out.status.success(), "hack/test-env.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A PostgreSQL server of its own, for tests that stop it.
pub struct ExtraPostgres {
    pub url: String,
    dir: tempfile::TempDir,
}

impl ExtraPostgres {
    pub fn start() -> ExtraPostgres {
        let dir = tempfile::tempdir().unwrap();
        let url = harness(&["postgres", dir.path().to_str().unwrap()]).trim().to_string();
        ExtraPostgres { url, dir }
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&self) {
        harness(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

impl Drop for ExtraPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Garage S3 server of its own, for tests that kill it.
pub struct ExtraGarage {
    pub env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl ExtraGarage {
    pub fn start() -> ExtraGarage {
        let dir = tempfile::tempdir().unwrap();
        let out = harness(&["garage", dir.path().to_str().unwrap()]);
        let env = out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ExtraGarage { env, dir }
    }

    pub fn get(&self, name: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == name).unwrap().1
    }

    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("garage/pid")).unwrap();
        std::process::Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    }

    pub fn restart(&self) {
        harness(&["garage-restart", self.dir.path().to_str().unwrap()]);
    }

    pub async fn client(&self) -> aws_sdk_s3::Client {
        artifortress_operator::install_crypto_provider();
        let creds = aws_sdk_s3::config::Credentials::new(
            self.get("AWS_ACCESS_KEY_ID"),
            self.get("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "test",
        );
        let s3 = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(self.get("AF_TEST_S3_ENDPOINT"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(s3)
    }
}

impl Drop for ExtraGarage {
    fn drop(&mut self) {
        harness(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

/// An `s3://` store URL on the harness's Garage.
pub fn s3_store_url(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&path_style=true")
}
