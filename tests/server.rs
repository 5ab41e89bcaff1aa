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
    // The probe answered 200 is not an info line (the kubelet's heartbeat);
    // the one answered 503 is.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs.lock().unwrap().clone();
    let info_probe = |status: &str| {
        logs.lines()
            .any(|l| l.contains(r#""level":"INFO""#) && l.contains(r#""route":"/health/ready""#) && l.contains(status))
    };
    assert!(!info_probe(r#""status":200"#), "{logs}");
    assert!(info_probe(r#""status":503"#), "{logs}");
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
/// Reads are `ops.summary.read` rows; rejected requests `ops.summary.denied`
/// rows with their outcome, status and count in `details`.
async fn audit_rows(pool: &PgPool, expected: i64) -> Vec<(String, String, i32, i64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<(String, String, i32, i64)> = sqlx::query_as(
            "SELECT actor_subject, coalesce(details->>'outcome', 'allowed'), coalesce((details->>'status')::int, 200),
                    coalesce((details->>'count')::bigint, 1)
             FROM audit_log WHERE action IN ('ops.summary.read', 'ops.summary.denied') ORDER BY 1, 2, 3, 4",
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

/// A migrated database with these tenants (the first is `default`, as upstream deploys one).
async fn with_tenants(prefix: &str, slugs: &[&str]) -> TestDatabase {
    let db = TestDatabase::migrated(prefix).await;
    for slug in slugs {
        sqlx::query("INSERT INTO tenants (slug, name) VALUES ($1, $1)")
            .bind(slug)
            .execute(&db.pool().await)
            .await
            .unwrap();
    }
    db
}

#[tokio::test]
async fn admin_matrix_with_the_tokens_file_and_every_request_audited() {
    let db = with_tenants("authz", &["default"]).await;
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
    let db = with_tenants("flood", &["default"]).await;
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
async fn a_read_the_database_cannot_answer_is_refused_unaudited_as_upstream_does() {
    let db = with_tenants("readfail", &["default"]).await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &["--summary-max-age", "0s"]).await;
    let pool = db.pool().await;
    assert_eq!(server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await.0, 200);
    // The schema was read (and is trusted for a minute); the column goes under it.
    sqlx::query("ALTER TABLE outbox_events RENAME COLUMN occurred_at TO occurred").execute(&pool).await.unwrap();
    let (status, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("occurred_at"), "the server's message: {body}");
    assert_eq!(audit_rows(&pool, 1).await, [row("ops-admin", "allowed", 200, 1)], "only the answered read");
}

#[tokio::test]
async fn an_older_level_answers_the_figures_it_has_and_names_what_it_lacks() {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "level5").await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/db-migrate.sh");
    let out = std::process::Command::new(script)
        .args([db.url.expose(), "0005_phase3_published_immutability_hardening.sql"])
        .env("PSQL", std::path::Path::new(&env("AF_TEST_PG_BINDIR")).join("psql"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sqlx::query("INSERT INTO tenants (slug, name) VALUES ('default', 'Default')")
        .execute(&db.pool().await)
        .await
        .unwrap();
    let (server, _dir) = serve_with_tokens(db.url.expose(), &[]).await;
    let (status, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
    assert_eq!(status, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["pendingOutboxEvents"], 0);
    assert!(s["failedSearchJobs"].is_null() && s["incompleteGcRuns"].is_null(), "never a guessed number: {s}");
    assert_eq!(s["schema"]["level"], "0005_phase3_published_immutability_hardening.sql");
    let missing = s["schema"]["missing"].to_string();
    assert!(missing.contains("search_index_jobs (since 0006") && missing.contains("gc_runs (since 0008"), "{missing}");
    // Audited without correlation_id (it arrives at 0012).
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'ops.summary.read'")
        .fetch_one(&db.pool().await)
        .await
        .unwrap();
    assert_eq!(audited, 1);
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

    let db = with_tenants("kauthz", &["default"]).await;
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
    let db = with_tenants("concurrent", &["default"]).await;
    let pool = db.pool().await;
    let (server, _dir) = serve_with_tokens(db.url.expose(), &[]).await;
    let requests = (0..64).map(|_| server.get("/v1/admin/ops/summary", Some("admin-secret-token")));
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    // Every answer was given after its row committed: all 64 are there at once.
    let allowed = "SELECT count(*), count(DISTINCT occurred_at) FROM audit_log WHERE action = 'ops.summary.read'";
    let (rows, commits): (i64, i64) = sqlx::query_as(allowed).fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 64);
    // A row's occurred_at is its transaction's start: rows sharing one were
    // committed together, so fewer commits than requests.
    assert!(commits < 64, "{commits} commits for 64 rows: no group commit");
    // The read itself was shared: one checkedAtUtc for requests within a second.
    let generated: std::collections::HashSet<String> = answers
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap()["checkedAtUtc"].to_string())
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

/// Upstream's seven queries (`readOpsSummary` of Kublai's API, one tenant per
/// call), written here as upstream runs them, for one tenant.
async fn upstream_figures(pool: &PgPool, tenant_id: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "select count(*) from outbox_events where tenant_id = $1::uuid and delivered_at is null",
        "select count(*) from outbox_events where tenant_id = $1::uuid and delivered_at is null and available_at <= now()",
        "select coalesce(max(extract(epoch from (now() - occurred_at))), 0)::bigint from outbox_events where tenant_id = $1::uuid and delivered_at is null",
        "select count(*) from search_index_jobs where tenant_id = $1::uuid and status = 'failed'",
        "select count(*) from search_index_jobs where tenant_id = $1::uuid and status in ('pending', 'processing')",
        "select count(*) from gc_runs where tenant_id = $1::uuid and completed_at is null",
        "select count(*) from audit_log where tenant_id = $1::uuid and action = 'policy.timeout' and occurred_at >= now() - interval '24 hours'",
    ] {
        out.push(sqlx::query_scalar::<_, i64>(sql).bind(tenant_id).fetch_one(pool).await.unwrap());
    }
    out
}

const FIGURES: [&str; 7] = [
    "pendingOutboxEvents",
    "availableOutboxEvents",
    "oldestPendingOutboxAgeSeconds",
    "failedSearchJobs",
    "pendingSearchJobs",
    "incompleteGcRuns",
    "recentPolicyTimeouts24h",
];

fn figures_of(v: &Value) -> Vec<i64> {
    FIGURES.iter().map(|f| v[*f].as_i64().unwrap_or_else(|| panic!("{f} in {v}"))).collect()
}

/// One tenant, as upstream deploys it, and three: every tenant's figures and
/// the installation's equal upstream's own queries; every tenant read is one
/// audit row its auditors see, with the figures as upstream writes them.
#[tokio::test]
async fn the_figures_are_upstreams_for_every_tenant_and_for_all_and_each_tenant_read_is_audited() {
    for tenants in [1, 3] {
        let db = TestDatabase::migrated(&format!("figures{tenants}")).await;
        let seeded = support::operator(&[
            "seed",
            "--database",
            db.url.expose(),
            "--scale",
            "small",
            "--tenants",
            &tenants.to_string(),
        ]);
        support::assert_exit(&seeded, 0);
        let pool = db.pool().await;
        // Edges of each figure: an event available in 5 minutes, one 24 h 1 min
        // old policy timeout, a GC run of tenant 2 that never completed.
        sqlx::raw_sql(
            "INSERT INTO outbox_events (tenant_id, aggregate_type, aggregate_id, event_type, payload, occurred_at, available_at)
             SELECT tenant_id, 'package_version', 'v', 'version.published', '{}', now() - interval '7 minutes', now() + interval '5 minutes'
             FROM tenants;
             INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id, occurred_at)
             SELECT tenant_id, 'policy', 'policy.timeout', 'package_version', 'v', now() - interval '24 hours 1 minute' FROM tenants;
             INSERT INTO gc_runs (tenant_id, initiated_by_subject, mode, retention_grace_hours, batch_size)
             SELECT tenant_id, 'ops', 'execute', 0, 200 FROM tenants WHERE slug = 'tenant-2';",
        )
        .execute(&pool)
        .await
        .unwrap();
        let (server, _dir) = serve_with_tokens(db.url.expose(), &["--summary-max-age", "0s"]).await;
        let ids: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id::text, slug::text FROM tenants ORDER BY slug")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(ids.len(), tenants);
        let correlation = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
        let mut total = vec![0i64; 7];
        for (id, slug) in &ids {
            let expected = upstream_figures(&pool, id).await;
            for (k, (t, e)) in total.iter_mut().zip(&expected).enumerate() {
                // The oldest age is the oldest of the tenants'; counts add up.
                *t = if k == 2 { (*t).max(*e) } else { *t + e };
            }
            for wanted in [slug.as_str(), id.as_str()] {
                let (status, body) = server
                    .get_with(
                        &format!("/v1/admin/ops/summary?tenant={wanted}"),
                        Some("admin-secret-token"),
                        &[("X-Correlation-Id", correlation)],
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                let s: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(figures_of(&s), expected, "tenant {slug} asked as {wanted}: {s}");
                assert_eq!(s["tenant"]["slug"], slug.as_str());
                assert!(s["checkedAtUtc"].is_string());
                assert_eq!(s["readiness"]["status"], "ready", "{s}");
            }
        }
        let (status, body) = server.get("/v1/admin/ops/summary", Some("admin-secret-token")).await;
        assert_eq!(status, 200, "{body}");
        let all: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(figures_of(&all), total, "the installation: counts summed, the oldest age the oldest");
        let breakdown = all["tenants"].as_array().unwrap();
        assert_eq!(breakdown.len(), tenants);
        for (entry, (id, _)) in breakdown.iter().zip(&ids) {
            assert_eq!(figures_of(entry), upstream_figures(&pool, id).await, "{entry}");
        }
        if tenants == 3 {
            let gc = all["slo"]["signals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["signal"] == "incompleteGcRuns" && x["tenant"] == "tenant-2")
                .unwrap();
            let runs = upstream_figures(&pool, &ids[1].0).await[5] as f64;
            assert_eq!((gc["value"].as_f64(), gc["severity"].as_str()), (Some(runs), Some("Warning")), "{gc}");
        }
        // Rows upstream's auditors see: two reads per tenant asked, one per tenant for the installation-wide read.
        let rows: Vec<(String, String, String, String, String, Value, String)> = sqlx::query_as(
            "SELECT a.tenant_id::text, a.actor_subject, a.action, a.resource_type, a.resource_id, a.details, a.correlation_id::text
             FROM audit_log a WHERE a.action = 'ops.summary.read' ORDER BY a.audit_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 3 * tenants, "{rows:?}");
        for (id, _) in &ids {
            let mine: Vec<_> = rows.iter().filter(|r| &r.0 == id).collect();
            assert_eq!(mine.len(), 3);
            let expected = upstream_figures(&pool, id).await;
            for r in &mine {
                assert_eq!((r.1.as_str(), r.3.as_str(), r.4.as_str()), ("ops-admin", "operations", id.as_str()));
                let written: Vec<i64> = FIGURES.iter().map(|f| r.5[*f].as_str().unwrap().parse().unwrap()).collect();
                assert_eq!(written[..2], expected[..2], "details are strings of the figures: {}", r.5);
                assert_eq!(r.5["readinessStatus"], "ready");
            }
            assert_eq!(mine.iter().filter(|r| r.6 == correlation).count(), 2, "X-Correlation-Id is recorded");
        }
        // An unknown tenant is a 404, and no row.
        assert_eq!(server.get("/v1/admin/ops/summary?tenant=nobody", Some("admin-secret-token")).await.0, 404);
        let (_, metrics) = server.get("/metrics", None).await;
        let expected = upstream_figures(&pool, &ids[0].0).await[6];
        let line = format!(
            r#"artifortress_ops_recent_policy_timeouts_24h{{installation="default",tenant="default"}} {expected}"#
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
        // A tenant created after the server listed the tenants is still found
        // (by the database), whatever the case of its slug.
        sqlx::query("INSERT INTO tenants (slug, name) VALUES ('Late-Comer', 'created after the list')")
            .execute(&pool)
            .await
            .unwrap();
        let (status, body) = server.get("/v1/admin/ops/summary?tenant=late-comer", Some("admin-secret-token")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["tenant"]["slug"], "Late-Comer");
        let (status, body) = server.get("/v1/admin/ops/summary?tenant=DEFAULT", Some("admin-secret-token")).await;
        assert_eq!(
            (status, serde_json::from_str::<Value>(&body).unwrap()["tenant"]["slug"].clone()),
            (200, "default".into())
        );
    }
}

#[tokio::test]
async fn no_token_password_or_credential_url_reaches_a_body_or_a_log_line() {
    let db = with_tenants("secrets", &["default"]).await;
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
    let db = with_tenants("tls", &["default"]).await;
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
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'ops.summary.read'")
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
