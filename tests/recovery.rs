//! Recovering an Artifortress as its operators run it: the application's own
//! role owns the schema, the operator reads with a least-privileged role, the
//! restored database belongs to the application's role (its later migrations
//! still apply), and what going back to the restore point would undo — a token
//! revoked and a legal hold placed since, a GC run caught mid-run — is reported
//! by the drill and put back by `restore --reapply-from`.

mod support;

use serde_json::Value;
use sqlx::PgPool;
use support::{TestDatabase, assert_exit, env, operator, unique_name, with_database};

/// A URL of `server_url` as another role.
fn as_role(server_url: &str, role: &str, password: &str, database: &str) -> String {
    let mut u = url::Url::parse(server_url).unwrap();
    u.set_username(role).unwrap();
    u.set_password(Some(password)).unwrap();
    u.set_path(&format!("/{database}"));
    u.to_string()
}

/// An installation as upstream deploys it: a database owned by the
/// application's role (`kublai_…`), migrated and seeded as that role, and a
/// role for the operator that reads everything and may only insert audit rows.
struct Deployed {
    db: TestDatabase,
    app_role: String,
    app_url: String,
    operator_url: String,
}

async fn deployed() -> Deployed {
    let server = env("AF_TEST_PG_SOURCE_URL");
    let admin = PgPool::connect(&server).await.unwrap();
    let app_role = unique_name("kublai").replace('-', "_");
    let operator_role = unique_name("af_operator").replace('-', "_");
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "deployed").await;
    for sql in [
        format!("CREATE ROLE {app_role} LOGIN PASSWORD 'app-secret'"),
        format!("ALTER DATABASE {} OWNER TO {app_role}", db.name),
        format!("CREATE ROLE {operator_role} LOGIN PASSWORD 'operator-secret' IN ROLE pg_read_all_data"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    let app_url = as_role(&server, &app_role, "app-secret", &db.name);
    // The application's own role creates its extensions, schema and data (pgcrypto and
    // citext are trusted extensions: a database owner may create them).
    assert_exit(&operator(&["migrate", "--database", &app_url]), 0);
    assert_exit(&operator(&["seed", "--database", &app_url, "--scale", "small"]), 0);
    // The documented least privilege: read all data, INSERT on audit_log only.
    let app = PgPool::connect(&app_url).await.unwrap();
    sqlx::query(&format!("GRANT INSERT ON audit_log TO {operator_role}")).execute(&app).await.unwrap();
    let operator_url = as_role(&server, &operator_role, "operator-secret", &db.name);
    Deployed { db, app_role, app_url, operator_url }
}

#[tokio::test]
async fn a_least_privileged_operator_backs_up_serves_audits_and_the_restore_belongs_to_the_application() {
    let d = deployed().await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    // Backup and the audited ops summary with the operator's role only.
    assert_exit(&operator(&["backup", "--source", &d.operator_url, "--store", &store, "--name", "b1"]), 0);
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("{} admin ops-admin\n", artifortress_operator::server::auth::token_hash("admin-token")),
    )
    .unwrap();
    let server = support::Server::start(
        &["--database", &d.operator_url, "--object-store", &store, "--tokens-file", tokens.to_str().unwrap()],
        &[],
    )
    .await;
    let (status, body) = server.get("/v1/admin/ops/summary", Some("admin-token")).await;
    assert_eq!(status, 200, "{body}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'ops.summary.read' AND actor_subject = 'ops-admin'",
    )
    .fetch_one(&d.db.pool().await)
    .await
    .unwrap();
    assert_eq!(audited, 1, "the operator's role may insert audit rows");
    let refused = sqlx::query("DELETE FROM audit_log").execute(&PgPool::connect(&d.operator_url).await.unwrap()).await;
    assert!(refused.unwrap_err().to_string().contains("permission denied"), "and nothing else");

    // Restored elsewhere, the database and its objects belong to the application's role ...
    let scratch = unique_name("owned").replace('-', "_");
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &scratch);
    assert_exit(&operator(&["restore", "--store", &store, "--backup", "b1", "--target", &target]), 0);
    let restored = PgPool::connect(&target).await.unwrap();
    let owner: String = sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
        .bind(&scratch)
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(owner, d.app_role);
    // ... so its next migration, run as that role, applies (the role was created
    // on the target as NOLOGIN: log in as it for the test).
    sqlx::query(&format!("ALTER ROLE {} LOGIN PASSWORD 'app-secret'", d.app_role)).execute(&restored).await.unwrap();
    let as_app = as_role(&env("AF_TEST_PG_TARGET_URL"), &d.app_role, "app-secret", &scratch);
    let app = PgPool::connect(&as_app).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE next_feature (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid REFERENCES tenants (tenant_id));
         ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS source_ip inet;
         CREATE INDEX idx_next_feature_tenant ON next_feature (tenant_id);",
    )
    .execute(&app)
    .await
    .unwrap();
    drop(app);
    let _ = d.app_url;
}

fn drill(store: &str, live: &str, dir: &std::path::Path) -> Value {
    let json = dir.join(format!("{}.json", unique_name("verdict")));
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("scratch").replace('-', "_"));
    let out = operator(&[
        "drill",
        "--latest",
        "--store",
        store,
        "--target",
        &target,
        "--live",
        live,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

#[tokio::test]
async fn a_revocation_and_a_legal_hold_made_after_the_backup_are_reported_and_reapplied() {
    let d = deployed().await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    assert_exit(&operator(&["backup", "--source", &d.operator_url, "--store", &store, "--name", "before"]), 0);
    // After the backup: a token revoked, a legal hold placed, the crashed GC run completed.
    let live = PgPool::connect(&d.app_url).await.unwrap();
    let (token, tenant): (String, String) = sqlx::query_as(
        "SELECT token_id::text, tenant_id::text FROM personal_access_tokens WHERE revoked_at IS NULL ORDER BY token_id LIMIT 1",
    )
    .fetch_one(&live)
    .await
    .unwrap();
    let version: String = sqlx::query_scalar(
        "SELECT v.version_id::text FROM package_versions v WHERE v.state = 'published'
           AND NOT EXISTS (SELECT 1 FROM artifact_protections p WHERE p.version_id = v.version_id) ORDER BY 1 LIMIT 1",
    )
    .fetch_one(&live)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "UPDATE personal_access_tokens SET revoked_at = now() WHERE token_id = '{token}';
         INSERT INTO token_revocations (tenant_id, token_id, revoked_by_subject, reason) VALUES ('{tenant}', '{token}', 'security', 'leaked');
         INSERT INTO artifact_protections (tenant_id, repo_id, version_id, mode, reason, protected_by_subject)
           SELECT tenant_id, repo_id, version_id, 'legal_hold', 'case 42', 'legal' FROM package_versions WHERE version_id = '{version}';
         UPDATE gc_runs SET completed_at = now() WHERE completed_at IS NULL;"
    ))
    .execute(&live)
    .await
    .unwrap();

    let verdict = drill(&store, &d.operator_url, dir.path());
    assert_eq!(verdict["result"], "Passed", "what a restore takes back is reported, it does not fail the drill");
    let take_back = verdict["application"]["takeBack"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> =
        take_back.iter().map(|t| (t["kind"].as_str().unwrap(), t["id"].as_str().unwrap())).collect();
    assert!(kinds.contains(&("tokenRevocation", token.as_str())), "{take_back:#?}");
    assert!(kinds.contains(&("protection", version.as_str())), "{take_back:#?}");
    assert!(kinds.iter().any(|(k, _)| *k == "gcRunIncomplete"), "{take_back:#?}");
    assert!(verdict["warnings"].to_string().contains("--reapply-from"), "{verdict:#}");

    // The restore puts the decisions back and closes the run; the live database is only read.
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("recovered").replace('-', "_"));
    let out = operator(&[
        "restore",
        "--store",
        &store,
        "--backup",
        "before",
        "--target",
        &target,
        "--reapply-from",
        &d.operator_url,
    ]);
    assert_exit(&out, 0);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 token revocation(s), 1 hold(s)") && said.contains("1 GC run(s) closed"), "{said}");
    let recovered = PgPool::connect(&target).await.unwrap();
    let revoked: bool =
        sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM personal_access_tokens WHERE token_id = $1::uuid")
            .bind(&token)
            .fetch_one(&recovered)
            .await
            .unwrap();
    assert!(revoked, "the leaked token stays revoked after the recovery");
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM artifact_protections WHERE version_id = $1::uuid AND mode = 'legal_hold' AND released_at IS NULL",
    )
    .bind(&version)
    .fetch_one(&recovered)
    .await
    .unwrap();
    assert_eq!(held, 1);
    let incomplete: i64 = sqlx::query_scalar("SELECT count(*) FROM gc_runs WHERE completed_at IS NULL")
        .fetch_one(&recovered)
        .await
        .unwrap();
    assert_eq!(incomplete, 0, "incompleteGcRuns does not alarm after the restore");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'recovery.decisions.reapplied'")
            .fetch_one(&recovered)
            .await
            .unwrap();
    assert_eq!(audited, 1, "the tenant's auditors see what was re-applied");

    // Without the live database: the run is closed, and the newest security
    // decisions the restored audit log knows are listed for a person to decide.
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("blind").replace('-', "_"));
    let out =
        operator(&["restore", "--store", &store, "--backup", "before", "--target", &target, "--reapply-from", "none"]);
    assert_exit(&out, 0);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("no live database: 1 GC run(s) closed") && said.contains("decide"), "{said}");
}
