//! The HTTP server (`artifortress-operator serve`) against real PostgreSQL, S3
//! and kube-apiserver: readiness and its failure modes, the admin authorisation
//! matrix with both authenticators, audit rows, summary numbers, metrics, and
//! no secret in any body or log line.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{
    ExtraPostgres, Server, TestDatabase, env, kube_client, operator_bin, s3_client, s3_store_url, unique_name,
    with_database,
};

async fn bucket_store() -> String {
    let s3 = s3_client().await;
    let bucket = unique_name("blobs");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "")
}

fn tokens_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("tokens");
    let text = format!(
        "# who may read the ops summary\n{} admin ops-admin\n{} viewer dev-viewer\n",
        artifortress_operator::server::auth::token_hash("admin-secret-token"),
        artifortress_operator::server::auth::token_hash("viewer-secret-token"),
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `serve` for `database` with the test tokens file and a fresh bucket.
async fn serve_with_tokens(database: &str, extra: &[&str]) -> (Server, tempfile::TempDir) {
    let store = bucket_store().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(&dir);
    let mut args = vec!["--database", database, "--object-store", &store, "--tokens-file", &tokens];
    args.extend_from_slice(extra);
    (Server::start(&args, &[]).await, dir)
}

fn dependency<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

#[tokio::test]
async fn ready_with_both_dependencies_up_and_live_without_any() {
    let db = TestDatabase::migrated("ready").await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &[]).await;
    assert_eq!(server.get("/health/live", None).await, (200, "ok".to_string()));
    let (status, body) = server.get("/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "ready");
    for name in ["postgresql", "objectStorage"] {
        let d = dependency(&report, name);
        assert_eq!(d["ok"], true, "{d}");
        assert!(d["latencyMs"].as_f64().unwrap() >= 0.0);
        assert!(d["error"].is_null());
    }
    let (_, metrics) = server.get("/metrics", None).await;
    assert!(
        metrics.contains(r#"artifortress_dependency_up{installation="default",dependency="postgresql"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("artifortress_http_requests_total{route=\"/health/ready\",status=\"200\"}"), "{metrics}");
}

#[tokio::test]
async fn not_ready_naming_postgresql_when_its_server_is_stopped() {
    let pg = ExtraPostgres::start();
    let url = with_database(&pg.url, "postgres");
    let out = std::process::Command::new(operator_bin()).args(["migrate", "--database", &url]).output().unwrap();
    assert!(out.status.success());
    let (server, _dir) = serve_with_tokens(&url, &["--ready-cache", "0s"]).await;
    assert_eq!(server.get("/health/ready", None).await.0, 200);
    pg.stop();
    let started = Instant::now();
    let (status, body) = server.get("/health/ready", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within the 2 s timeout plus margin: {:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "unavailable");
    let pg_check = dependency(&report, "postgresql");
    assert_eq!(pg_check["ok"], false);
    assert!(pg_check["error"].as_str().unwrap().contains("127.0.0.1"), "{pg_check}");
    assert_eq!(dependency(&report, "objectStorage")["ok"], true);
}

#[tokio::test]
async fn not_ready_naming_object_storage_when_s3_accepts_but_never_answers() {
    // A socket that accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let db = TestDatabase::migrated("hang").await;
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store_url(&format!("http://127.0.0.1:{port}"), "blobs", "");
    let server = Server::start(
        &["--database", db.url.expose(), "--object-store", &store, "--tokens-file", &tokens_file(&dir)],
        &[],
    )
    .await;
    let started = Instant::now();
    let (status, body) = server.get("/health/ready", None).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "bounded by the 2 s check timeout: {elapsed:?}");
    assert_eq!(status, 503, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let s3_check = dependency(&report, "objectStorage");
    assert_eq!(s3_check["ok"], false);
    assert!(s3_check["error"].as_str().unwrap().contains("no answer within 2000 ms"), "{s3_check}");
    assert_eq!(dependency(&report, "postgresql")["ok"], true);
}

/// The ops-summary audit rows as (actor, outcome, status, count), sorted, once
/// `expected` requests are accounted for (rejected ones are written in batches).
async fn audit_rows(pool: &PgPool, expected: i64) -> Vec<(String, String, i32, i64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<(String, String, i32, i64)> = sqlx::query_as(
            "SELECT actor, outcome, (details->>'status')::int, coalesce((details->>'count')::bigint, 1)
             FROM audit_log WHERE action = 'ops.summary.read' ORDER BY 1, 2, 3, 4",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        if rows.iter().map(|r| r.3).sum::<i64>() >= expected || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row(actor: &str, outcome: &str, status: i32, count: i64) -> (String, String, i32, i64) {
    (actor.to_string(), outcome.to_string(), status, count)
}

#[tokio::test]
async fn admin_matrix_with_the_tokens_file_and_every_request_audited() {
    let db = TestDatabase::migrated("authz").await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &["--audit-flush", "200ms"]).await;
    let path = "/v1/admin/ops/summary";
    assert_eq!(server.get(path, None).await.0, 401);
    assert_eq!(server.get(path, Some("not-a-token")).await.0, 401);
    assert_eq!(server.get(path, Some("viewer-secret-token")).await.0, 403);
    let (status, body) = server.get(path, Some("admin-secret-token")).await;
    assert_eq!(status, 200, "{body}");
    // One row per reason: "missing bearer token" and "invalid bearer token".
    assert_eq!(
        audit_rows(&db.pool().await, 4).await,
        [
            row("anonymous", "unauthenticated", 401, 1),
            row("anonymous", "unauthenticated", 401, 1),
            row("dev-viewer", "denied", 403, 1),
            row("ops-admin", "allowed", 200, 1),
        ]
    );
}

#[tokio::test]
async fn anonymous_callers_learn_no_names_and_a_flood_of_bad_tokens_is_a_few_counted_rows() {
    let db = TestDatabase::migrated("flood").await;
    let args = ["--installation", "acme-payments", "--namespace", "acme-prod", "--audit-flush", "1s"];
    let (server, _dir) = serve_with_tokens(db.url.expose(), &args).await;
    let path = "/v1/admin/ops/summary";
    for (query, token) in [("", None), ("?installation=nope", None), ("?installation=acme-payments", Some("bad"))] {
        let (status, body) = server.get(&format!("{path}{query}"), token).await;
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains("acme"), "a 401 names nothing that exists: {body}");
    }
    // An admin asking for an unknown installation is told so, without a list.
    let (status, body) = server.get(&format!("{path}?installation=nope"), Some("admin-secret-token")).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("acme"), "{body}");

    let pool = db.pool().await;
    let before = audit_rows(&pool, 2).await;
    let burst = futures::stream::iter(0..1000)
        .map(|_| server.get(path, Some("not-a-token")))
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    assert!(burst.iter().all(|(status, _)| *status == 401));
    let rows = audit_rows(&pool, 1002).await;
    let counted: i64 = rows.iter().map(|r| r.3).sum();
    assert_eq!(counted, 1002, "every request is counted: {rows:?}");
    // A burst inside a few flush intervals: a handful of rows, not a thousand.
    assert!(rows.len() - before.len() <= 10, "{} rows for 1000 requests: {rows:?}", rows.len() - before.len());
}

#[tokio::test]
async fn a_summary_read_that_fails_is_audited_as_failed() {
    let db = TestDatabase::migrated("readfail").await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &[]).await;
    let pool = db.pool().await;
    // The ops summary reads outbox_events; the audit row goes to audit_log.
    sqlx::query("ALTER TABLE outbox_events RENAME TO outbox_events_gone").execute(&pool).await.unwrap();
    let (status, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(audit_rows(&pool, 1).await, [row("ops-admin", "failed", 503, 1)]);
}

#[tokio::test]
async fn admin_matrix_decided_by_kubernetes_rbac() {
    let client = kube_client().await;
    let ns = unique_name("af-authz");
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "ops-summary-reader"},
        "rules": [{"apiGroups": ["artifortress.io"], "resources": ["artifortresses/opssummary"], "verbs": ["get"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), &ns).create(&PostParams::default(), &role).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "alice-reads-ops-summary"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ops-summary-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns).create(&PostParams::default(), &binding).await.unwrap();

    let db = TestDatabase::migrated("kauthz").await;
    let store = bucket_store().await;
    let kubeconfig = env("KUBECONFIG");
    let args = ["--database", db.url.expose(), "--object-store", &store, "--kubeconfig", &kubeconfig];
    let server = Server::start(&[&args[..], &["--namespace", &ns, "--audit-flush", "200ms"]].concat(), &[]).await;
    let path = "/v1/admin/ops/summary";
    assert_eq!(server.get(path, None).await.0, 401);
    assert_eq!(server.get(path, Some("not-a-kubernetes-token")).await.0, 401);
    assert_eq!(server.get(path, Some(&env("AF_TEST_KUBE_TOKEN_BOB"))).await.0, 403);
    let (status, body) = server.get(path, Some(&env("AF_TEST_KUBE_TOKEN_ALICE"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        audit_rows(&db.pool().await, 4).await,
        [
            row("alice", "allowed", 200, 1),
            row("anonymous", "unauthenticated", 401, 1),
            row("anonymous", "unauthenticated", 401, 1),
            row("bob", "denied", 403, 1),
        ]
    );
    // In-cluster mode also checks the Kubernetes API for readiness.
    let (status, body) = server.get("/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dependency(&serde_json::from_str(&body).unwrap(), "kubernetes")["ok"], true);
}

#[tokio::test]
async fn concurrent_readers_share_a_read_and_each_is_answered_after_its_own_audit_row_commits() {
    let db = TestDatabase::migrated("concurrent").await;
    let pool = db.pool().await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &[]).await;
    let requests = (0..64).map(|_| server.get("/v1/admin/ops/summary", Some("admin-secret-token")));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    // Every answer was given after its row committed: all 64 are there at once.
    let allowed = "SELECT count(*), count(DISTINCT occurred_at) FROM audit_log \
                   WHERE action = 'ops.summary.read' AND outcome = 'allowed'";
    let (rows, commits): (i64, i64) = sqlx::query_as(allowed).fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 64);
    // A row's occurred_at is its transaction's start: rows sharing one were
    // committed together, so fewer commits than requests.
    assert!(commits < 64, "{commits} commits for 64 rows: no group commit");
    // The read itself was shared: one generatedAt for requests within a second.
    let generated: std::collections::HashSet<String> = answers
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap()["generatedAt"].to_string())
        .collect();
    assert!(generated.len() <= 2, "{generated:?}");

    // The audit log refuses writes: every waiting request is refused, none answered.
    sqlx::query(
        "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse()")
        .execute(&pool)
        .await
        .unwrap();
    let requests = (0..16).map(|_| server.get("/v1/admin/ops/summary", Some("admin-secret-token")));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|(status, body)| *status == 503 && body.contains("unaudited")), "{answers:?}");
}

#[tokio::test]
async fn summary_numbers_equal_hand_computed_values() {
    let db = TestDatabase::migrated("numbers").await;
    let pool = db.pool().await;
    sqlx::raw_sql(
        "INSERT INTO outbox_events (event_type, status, available_at, created_at) VALUES
           ('a', 'pending', now() - interval '1 minute', now() - interval '120 seconds'),
           ('a', 'pending', now(), now() - interval '30 seconds'),
           ('a', 'pending', now() + interval '5 minutes', now() - interval '10 seconds'),
           ('a', 'published', now(), now() - interval '1 day'),
           ('a', 'dead', now(), now() - interval '2 days');
         INSERT INTO search_index_jobs (status) VALUES ('failed'), ('failed'), ('pending'), ('running'), ('done');
         INSERT INTO gc_runs (started_at, completed_at) VALUES (now() - interval '2 hours', now() - interval '1 hour'), (now(), NULL);
         INSERT INTO audit_log (occurred_at, actor, action, outcome) VALUES
           (now() - interval '23 hours 59 minutes', 'policy', 'policy.timeout', 'error'),
           (now() - interval '24 hours 1 minute', 'policy', 'policy.timeout', 'error'),
           (now() - interval '1 hour', 'policy', 'policy.timeout', 'error'),
           (now() - interval '1 hour', 'policy', 'policy.evaluate', 'allowed');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (server, _dir) = serve_with_tokens(db.url.expose(), &["--summary-max-age", "500ms"]).await;
    let (status, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
    assert_eq!(status, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["installation"], "default");
    assert_eq!(s["outboxPending"], 3);
    assert_eq!(s["outboxAvailable"], 2, "the event available in 5 minutes is not available");
    let age = s["outboxOldestPendingAgeSeconds"].as_f64().unwrap();
    assert!((120.0..125.0).contains(&age), "{age}");
    assert_eq!(s["searchJobsFailed"], 2);
    assert_eq!(s["searchJobsPending"], 1);
    assert_eq!(s["incompleteGcRuns"], 1);
    assert_eq!(s["policyTimeouts24h"], 2, "the row 24 h 1 min old is outside the window");
    assert!(s["generatedAt"].is_string());
    // Default thresholds: incomplete GC 1 is a warning; nothing critical.
    assert_eq!(s["slo"]["severity"], "Warning");
    let gc = s["slo"]["signals"].as_array().unwrap().iter().find(|x| x["signal"] == "incompleteGcRuns").unwrap();
    assert_eq!((gc["value"].as_f64(), gc["warning"].as_i64(), gc["critical"].as_i64()), (Some(1.0), Some(1), Some(3)));

    // Within --summary-max-age the next request is answered from the same
    // read (its generatedAt says so); after it, from a new one: with nothing
    // pending, the oldest pending age is null.
    sqlx::query("UPDATE outbox_events SET status = 'published'").execute(&pool).await.unwrap();
    let (_, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((&again["generatedAt"], &again["outboxPending"]), (&s["generatedAt"], &s["outboxPending"]));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
    let s: Value = serde_json::from_str(&body).unwrap();
    assert!(s["outboxOldestPendingAgeSeconds"].is_null(), "{s}");
    assert_eq!(audit_rows(&pool, 3).await, vec![row("ops-admin", "allowed", 200, 1); 3], "every request audited");
    let (_, metrics) = server.get("/metrics", None).await;
    assert!(metrics.contains(r#"artifortress_ops_policy_timeouts_24h{installation="default"} 2"#), "{metrics}");
}

#[tokio::test]
async fn no_token_password_or_credential_url_reaches_a_body_or_a_log_line() {
    let db = TestDatabase::migrated("secrets").await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &[]).await;
    let mut bodies = String::new();
    for token in [None, Some("admin-secret-token"), Some("viewer-secret-token"), Some("wrong-secret-token")] {
        for path in ["/v1/admin/ops/summary", "/health/ready", "/metrics", "/nope"] {
            bodies.push_str(&server.get(path, token).await.1);
        }
    }
    // A database failure must not leak the URL's password either.
    let pool = PgPool::connect(&env("AF_TEST_PG_SOURCE_URL")).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name)).execute(&pool).await.unwrap();
    bodies.push_str(&server.get("/health/ready", None).await.1);
    bodies.push_str(&server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await.1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs.lock().unwrap().clone();
    assert!(logs.contains("\"route\""), "request logs were captured:\n{logs}");
    let password = url::Url::parse(db.url.expose()).unwrap().password().unwrap().to_string();
    for secret in
        ["admin-secret-token", "viewer-secret-token", "wrong-secret-token", &password, &env("AWS_SECRET_ACCESS_KEY")]
    {
        assert!(!bodies.contains(secret), "{secret} in a response body");
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}

#[tokio::test]
async fn https_serves_readiness_and_the_summary_refuses_plain_http_and_serves_a_rotated_certificate() {
    let db = TestDatabase::migrated("tls").await;
    let certs = tempfile::tempdir().unwrap();
    support::write_self_signed(certs.path(), "first");
    let (crt, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    let args = ["--tls-cert", crt.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let (server, _dir) = serve_with_tokens(db.url.expose(), &args).await;

    let (status, body, presented) = support::https_get(&server.addr, "/health/ready", None).await;
    assert_eq!(status, 200, "{body}");
    let first = support::certificate_der(&crt);
    assert_eq!(presented, first, "the configured certificate is served");
    let (status, body, _) = support::https_get(&server.addr, "/v1/admin/ops/summary", Some("admin-secret-token")).await;
    assert_eq!(status, 200, "{body}");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE outcome = 'allowed'")
        .fetch_one(&db.pool().await)
        .await
        .unwrap();
    assert_eq!(audited, 1);

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
        String::from_utf8_lossy(&raw).into_owned()
    };
    assert!(!plain.starts_with("HTTP/"), "plain HTTP is refused: {plain:?}");

    // cert-manager renews the Secret; the kubelet swaps the files. No restart.
    support::write_self_signed(certs.path(), "second");
    let second = support::certificate_der(&crt);
    assert_ne!(first, second);
    let started = Instant::now();
    loop {
        let (status, _, presented) = support::https_get(&server.addr, "/health/live", None).await;
        assert_eq!(status, 200);
        if presented == second {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the renewed certificate is served within 15 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
