//! Helpers shared by the integration tests.
//!
//! The services come from `hack/test-env.sh` (run by `make test`), which exports
//! their addresses. A test that needs one and does not find it fails with a
//! message saying how to run it; it never skips silently.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicU32, Ordering};

use std::time::Duration;

use artifortress_operator::db::{self, DatabaseUrl};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
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

    /// A database on the source server with the Artifortress schema applied
    /// by the operator's own `migrate`.
    pub async fn migrated(prefix: &str) -> TestDatabase {
        let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", prefix).await;
        let out = std::process::Command::new(operator_bin())
            .args(["migrate", "--database", db.url.expose()])
            .output()
            .expect("run migrate");
        assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
        db
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

/// Runs the operator binary (text logs) to completion.
pub fn operator(args: &[&str]) -> std::process::Output {
    operator_with_env(args, &[])
}

/// Runs the operator binary with extra environment variables.
pub fn operator_with_env(args: &[&str], extra_env: &[(String, String)]) -> std::process::Output {
    std::process::Command::new(operator_bin())
        .args(args)
        .env("ARTIFORTRESS_LOG_FORMAT", "text")
        .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run operator")
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails, showing both outputs, unless the command exited with `code`.
pub fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// A `file://` store in a fresh directory (which lives as long as the TempDir).
pub fn file_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    (dir, url)
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

/// A client of the harness's Ceph object gateway (versioning, Object Lock), with its own keys.
pub async fn rgw_client() -> aws_sdk_s3::Client {
    let credentials = aws_sdk_s3::config::Credentials::new(
        env("AF_TEST_RGW_ACCESS_KEY_ID"),
        env("AF_TEST_RGW_SECRET_ACCESS_KEY"),
        None,
        None,
        "rgw-test",
    );
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(env("AF_TEST_RGW_ENDPOINT"))
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    aws_sdk_s3::Client::from_conf(config)
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
        ExtraPostgres::of_major(15)
    }

    /// A server of PostgreSQL `major` (14-18).
    pub fn of_major(major: u32) -> ExtraPostgres {
        let dir = tempfile::tempdir().unwrap();
        let url = harness(&["postgres", dir.path().to_str().unwrap(), &major.to_string()]).trim().to_string();
        ExtraPostgres { url, dir }
    }

    /// Starts a streaming standby of this server: its URL.
    pub fn standby(&self) -> String {
        harness(&["standby", self.dir.path().to_str().unwrap()]).trim().to_string()
    }

    /// Fails over to the standby: this server stops, the standby is promoted
    /// (a new timeline) and takes over this server's address, so `url` then
    /// reaches the new primary.
    pub fn failover(&self) {
        harness(&["failover", self.dir.path().to_str().unwrap()]);
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

/// A minimal HTTP/1.1 GET (the tests need nothing more): status and body.
pub async fn http_get(addr: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    http_get_with(addr, path, bearer, &[]).await
}

/// A GET with extra request headers.
pub async fn http_get_with(addr: &str, path: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to server");
    let mut auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    for (name, value) in headers {
        auth.push_str(&format!("{name}: {value}\r\n"));
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("HTTP status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// `artifortress-operator serve` running as a child process, its stderr (logs)
/// collected for inspection.
pub struct Server {
    pub addr: String,
    pub logs: std::sync::Arc<std::sync::Mutex<String>>,
    _child: tokio::process::Child,
}

impl Server {
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut command = tokio::process::Command::new(operator_bin());
        command.arg("serve").args(["--listen", "127.0.0.1:0"]).args(args).envs(envs.iter().copied());
        let (child, logs) = spawn_with_logs(&mut command);
        let listening = || {
            let logs = logs.lock().unwrap();
            logs.lines()
                .find_map(|l| l.strip_prefix("serve: listening on ").and_then(|u| u.split_once("://")))
                .map(|(_, addr)| addr.to_string())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let addr = loop {
            if let Some(addr) = listening() {
                break addr;
            }
            assert!(std::time::Instant::now() < deadline, "serve did not start:\n{}", logs.lock().unwrap());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        Server { addr, logs, _child: child }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        http_get(&self.addr, path, bearer).await
    }

    pub async fn get_with(&self, path: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
        http_get_with(&self.addr, path, bearer, headers).await
    }
}

/// Starts the command (JSON logs, killed on drop) and collects its stderr lines.
pub fn spawn_with_logs(
    command: &mut tokio::process::Command,
) -> (tokio::process::Child, std::sync::Arc<std::sync::Mutex<String>>) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .env("ARTIFORTRESS_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = logs.clone();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut logs = sink.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    (child, logs)
}

pub mod cluster;
pub mod job_runner;
pub mod operator;
pub mod physical;
pub mod prometheus;

/// Applies the CRDs (server-side apply, as the chart and operator do) and waits
/// until the API server serves them.
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("artifortress-operator-tests").force();
    for crd in artifortress_operator::api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &params, &Patch::Apply(&crd)).await.unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established within 30 s"))
        .unwrap();
    }
}

pub async fn create_namespace(client: &kube::Client) -> String {
    let name = unique_name("af-test");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    name
}

/// The Secrets an installation's Jobs read: `db` (key `uri`: the database URL)
/// and `s3` (the harness's access key pair under the AWS variable names).
pub async fn create_installation_secrets(client: &kube::Client, ns: &str, database_url: &str) {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    for (name, data) in [
        ("db", json!({"uri": database_url})),
        (
            "s3",
            json!({"AWS_ACCESS_KEY_ID": env("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY": env("AWS_SECRET_ACCESS_KEY")}),
        ),
    ] {
        let secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }
}

/// A self-signed certificate for 127.0.0.1 (`openssl`), as `tls.crt` and
/// `tls.key` in `dir`, written beside and renamed into place (as the kubelet
/// swaps a Secret's files) so a reader never sees half a pair.
pub fn write_self_signed(dir: &std::path::Path, common_name: &str) {
    let (crt, key) = (dir.join("new.crt"), dir.join("new.key"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={common_name}"), "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::rename(&key, dir.join("tls.key")).unwrap();
    std::fs::rename(&crt, dir.join("tls.crt")).unwrap();
}

/// Trusts whatever certificate the server presents and keeps it (the tests
/// check which certificate is served, not a chain of trust), but still checks
/// the handshake's signatures: the server must hold that certificate's key.
#[derive(Debug)]
struct AnyCertificate(std::sync::Mutex<Vec<u8>>);

mod any_certificate {
    use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use tokio_rustls::rustls::crypto::{self, WebPkiSupportedAlgorithms};
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{DigitallySignedStruct, Error, SignatureScheme};

    fn algorithms() -> WebPkiSupportedAlgorithms {
        crypto::ring::default_provider().signature_verification_algorithms
    }

    impl ServerCertVerifier for super::AnyCertificate {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            *self.0.lock().unwrap() = end_entity.to_vec();
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            crypto::verify_tls12_signature(message, cert, dss, &algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            crypto::verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    }
}

/// GET over HTTPS: status, body and the DER of the certificate the server presented.
pub async fn https_get(addr: &str, path: &str, bearer: Option<&str>) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let verifier = std::sync::Arc::new(AnyCertificate(std::sync::Mutex::new(Vec::new())));
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to server");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let auth = bearer.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("HTTP status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    let presented = verifier.0.lock().unwrap().clone();
    (status, body, presented)
}

/// The DER of the certificate in a PEM file.
pub fn certificate_der(pem: &std::path::Path) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}
