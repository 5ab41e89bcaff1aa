//! Drills on databases this project did not design, and the scratch-only rule:
//! an existing database the engine did not create is never touched; roles the
//! schema names are created on a server that lacks them; the scratch database
//! gets the source's encoding, locale and settings; checksums fail only on real
//! differences; a drill holds one maintenance session on its target server.
//! Real PostgreSQL servers: the harness's source and target, and servers of a
//! test's own where sessions are counted.

mod support;

use artifortress_operator::db::DatabaseUrl;
use artifortress_operator::engine::progress::Progress;
use artifortress_operator::engine::scratch::Maintenance;
use serde_json::Value;
use sqlx::PgPool;
use support::{ExtraPostgres, assert_exit, env, file_store, operator, stderr, unique_name, with_database};

fn db_name(prefix: &str) -> String {
    unique_name(prefix).replace('-', "_")
}

/// Databases and roles a test made on the two servers, removed when it ends
/// (databases first: a role that owns objects cannot be dropped).
struct Cleanup {
    databases: Vec<(String, String)>,
    roles: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (databases, roles) = (self.databases.clone(), self.roles.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                for server in ["AF_TEST_PG_SOURCE_URL", "AF_TEST_PG_TARGET_URL"] {
                    let Ok(admin) = PgPool::connect(&env(server)).await else { continue };
                    for (db_server, db) in &databases {
                        if db_server == server {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                                .execute(&admin)
                                .await;
                        }
                    }
                    for role in &roles {
                        let _ = sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\"")).execute(&admin).await;
                    }
                }
            });
        })
        .join();
    }
}

async fn create_database(server: &str, name: &str, options: &str) -> PgPool {
    let admin = PgPool::connect(&env(server)).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\" {options}")).execute(&admin).await.unwrap();
    admin.close().await;
    PgPool::connect(&with_database(&env(server), name)).await.unwrap()
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_drill_never_drops_a_database_it_did_not_create() {
    let mut cleanup = Cleanup { databases: Vec::new(), roles: Vec::new() };
    let source = db_name("src");
    let other_app = db_name("other_app_prod");
    cleanup.databases.push(("AF_TEST_PG_SOURCE_URL".into(), source.clone()));
    cleanup.databases.push(("AF_TEST_PG_TARGET_URL".into(), other_app.clone()));
    let src = create_database("AF_TEST_PG_SOURCE_URL", &source, "").await;
    sqlx::raw_sql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g").execute(&src).await.unwrap();
    // Another application's database on the target server, with its data.
    let app = create_database("AF_TEST_PG_TARGET_URL", &other_app, "").await;
    sqlx::raw_sql("CREATE TABLE customers AS SELECT g AS id FROM generate_series(1, 1000) g")
        .execute(&app)
        .await
        .unwrap();

    let (_dir, store) = file_store();
    let source_url = with_database(&env("AF_TEST_PG_SOURCE_URL"), &source);
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &other_app);
    let out = operator(&["drill", "--source", &source_url, "--store", &store, "--target", &target]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the target database \"{other_app}\""))
            && err.contains("was not created by artifortress-operator"),
        "{err}"
    );
    assert!(err.contains("choose a database name that does not exist yet"), "says what to do: {err}");
    assert!(!err.contains("backing up"), "refused before a backup was taken for nothing: {err}");
    assert_exit(&operator(&["backup", "--source", &source_url, "--store", &store]), 0);
    let out = operator(&["drill", "--latest", "--store", &store, "--target", &target]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("was not created by artifortress-operator"), "{}", stderr(&out));
    assert_eq!(count(&app, "customers").await, 1000, "every row of the other application is still there");

    // A database the engine creates is its own: a later drill recreates it.
    let scratch = db_name("scratch");
    cleanup.databases.push(("AF_TEST_PG_TARGET_URL".into(), scratch.clone()));
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &scratch);
    for _ in 0..2 {
        let out =
            operator(&["drill", "--source", &source_url, "--store", &store, "--target", &target, "--keep-target"]);
        assert_exit(&out, 0);
    }
    let restored = PgPool::connect(&target).await.unwrap();
    assert_eq!(count(&restored, "t").await, 100);
    let mark: String =
        sqlx::query_scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1")
            .bind(&scratch)
            .fetch_one(&restored)
            .await
            .unwrap();
    assert!(mark.starts_with("artifortress-operator scratch database"), "{mark}");
    restored.close().await;
    // Without --keep-target the drill drops its scratch database afterwards.
    assert_exit(&operator(&["drill", "--latest", "--store", &store, "--target", &target]), 0);
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&scratch)
        .fetch_one(&app)
        .await
        .unwrap();
    assert!(!exists);
}

/// A schema an application team might have: roles in ownership, grants,
/// column privileges, default privileges and RLS policies; an inheritance tree
/// whose parent got a column after its child existed; a dropped column; a
/// domain, an enum, a range type, a generated column, money, interval, bytea,
/// regclass, float and time zone values; a partitioned table with a default
/// partition; a materialized view; a large object; identifiers that are
/// reserved words (`order`, `user`, `system_user`).
fn foreign_schema(r: &Roles) -> String {
    let Roles { owner, reader, auditor, member, group } = r;
    format!(
        r#"
CREATE ROLE {group} NOLOGIN;
CREATE ROLE {owner} NOLOGIN IN ROLE {group};
CREATE ROLE {reader} NOLOGIN;
CREATE ROLE {auditor} NOLOGIN NOINHERIT;
CREATE ROLE {member} NOLOGIN IN ROLE {reader};
CREATE SCHEMA app AUTHORIZATION {owner};
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
CREATE TYPE app.floatrange AS RANGE (subtype = float8);
CREATE TABLE app.accounts (
  id int PRIMARY KEY, tenant text NOT NULL, mood app.mood, score app.positive, span app.floatrange,
  happened tstzrange, amount numeric(12, 2), ratio float8, doubled int GENERATED ALWAYS AS (score * 2) STORED,
  "system_user" text, "Mixed Case" text, dur interval, data bytea, cash money, rel regclass, at timestamptz);
ALTER TABLE app.accounts ADD COLUMN gone int;
INSERT INTO app.accounts (id, tenant, mood, score, span, happened, amount, ratio, "system_user", "Mixed Case",
                          dur, data, cash, rel, at, gone)
  SELECT g, 'tenant' || (g % 3), (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::app.mood, g, app.floatrange(g / 7.0, g),
         tstzrange('2026-01-01'::timestamptz + g * interval '1 day', '2026-01-01'::timestamptz + g * interval '2 days'),
         g * 1.25, 1.0 / g, 'sys' || g, 'Value ' || g, g * interval '1 hour 3 minutes', decode(md5(g::text), 'hex'),
         g * 2.5, 'app.accounts'::regclass, '2026-03-29 01:30:00+01'::timestamptz + g * interval '17 minutes', g
  FROM generate_series(1, 200) g;
ALTER TABLE app.accounts DROP COLUMN gone;
ALTER TABLE app.accounts OWNER TO {owner};
ALTER TYPE app.mood OWNER TO {owner};
ALTER DOMAIN app.positive OWNER TO {owner};
ALTER TYPE app.floatrange OWNER TO {owner};
ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON app.accounts FOR SELECT TO {reader} USING (tenant = current_setting('app.tenant', true));
CREATE POLICY audit_all ON app.accounts FOR SELECT TO {auditor} USING (true);
GRANT USAGE ON SCHEMA app TO {reader}, {auditor};
GRANT SELECT ON app.accounts TO {reader};
GRANT SELECT (id, tenant) ON app.accounts TO {auditor};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT SELECT ON TABLES TO {reader};

CREATE TABLE app.events (id int, at timestamptz);
CREATE TABLE app.login_events (who text) INHERITS (app.events);
INSERT INTO app.events SELECT g, '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 50) g;
INSERT INTO app.login_events SELECT g, '2026-02-01'::timestamptz, 'user' || g FROM generate_series(51, 80) g;
ALTER TABLE app.events ADD COLUMN added_later int DEFAULT 7;
ALTER TABLE app.events OWNER TO {owner};
ALTER TABLE app.login_events OWNER TO {owner};

CREATE TABLE app.metrics (day date NOT NULL, v float8) PARTITION BY RANGE (day);
CREATE TABLE app.metrics_2026 PARTITION OF app.metrics FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE app.metrics_other PARTITION OF app.metrics DEFAULT;
INSERT INTO app.metrics SELECT date '2025-12-01' + g, g / 3.0 FROM generate_series(1, 90) g;

CREATE MATERIALIZED VIEW app.mood_counts AS SELECT mood, count(*) AS n FROM app.accounts GROUP BY mood;
ALTER MATERIALIZED VIEW app.mood_counts OWNER TO {owner};
CREATE TABLE app."order" ("user" text, "system_user" int, doc oid);
INSERT INTO app."order" VALUES ('a', 1, lo_from_bytea(0, 'a large object')), ('b', 2, NULL);
DO $$ BEGIN EXECUTE format('ALTER LARGE OBJECT %s OWNER TO {owner}', (SELECT doc FROM app."order" WHERE "user" = 'a')); END $$;
ALTER TABLE app."order" OWNER TO {owner};
"#
    )
}

struct Roles {
    owner: String,
    reader: String,
    auditor: String,
    member: String,
    group: String,
}

impl Roles {
    fn new() -> Roles {
        let suffix = db_name("r");
        let role = |what: &str| format!("af_{what}_{suffix}");
        Roles {
            owner: role("owner"),
            reader: role("reader"),
            auditor: role("auditor"),
            member: role("member"),
            group: role("group"),
        }
    }

    fn all(&self) -> Vec<String> {
        vec![self.owner.clone(), self.reader.clone(), self.auditor.clone(), self.member.clone(), self.group.clone()]
    }
}

/// The foreign schema in a new database on the source server with roles of
/// its own; the name of a scratch database on the target server; and what
/// removes them both (and the roles) at the end.
async fn foreign_source() -> (Roles, String, String, Cleanup) {
    let roles = Roles::new();
    let (source, scratch) = (db_name("foreign"), db_name("scratch"));
    let cleanup = Cleanup {
        databases: vec![
            ("AF_TEST_PG_SOURCE_URL".into(), source.clone()),
            ("AF_TEST_PG_TARGET_URL".into(), scratch.clone()),
        ],
        roles: roles.all(),
    };
    let src = create_database("AF_TEST_PG_SOURCE_URL", &source, "").await;
    sqlx::raw_sql(&foreign_schema(&roles)).execute(&src).await.unwrap();
    (roles, source, scratch, cleanup)
}

#[tokio::test]
async fn a_foreign_schema_drills_with_checksums_into_a_server_without_its_roles() {
    let (roles, source, scratch, _cleanup) = foreign_source().await;
    let target_server = PgPool::connect(&env("AF_TEST_PG_TARGET_URL")).await.unwrap();
    let on_target: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)")
        .bind(roles.all())
        .fetch_one(&target_server)
        .await
        .unwrap();
    assert_eq!(on_target, 0, "the target server has none of the roles");

    // The parity sessions on the target get other output settings than the
    // source's: checksums must not depend on them.
    let target = format!(
        "{}?options=-c%20IntervalStyle%3Dsql_standard%20-c%20TimeZone%3DAsia%2FTokyo%20-c%20extra_float_digits%3D0%20-c%20bytea_output%3Descape%20-c%20DateStyle%3DGerman",
        with_database(&env("AF_TEST_PG_TARGET_URL"), &scratch)
    );
    let (dir, store) = file_store();
    let json = dir.path().join("verdict.json");
    let report = dir.path().join("report.md");
    let out = operator(&[
        "drill",
        "--source",
        &with_database(&env("AF_TEST_PG_SOURCE_URL"), &source),
        "--store",
        &store,
        "--target",
        &target,
        "--verify",
        "checksums",
        "--keep-target",
        "--json",
        json.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let verdict: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(verdict["result"], "Passed", "{verdict:#}");
    let parity = verdict["parity"].as_array().unwrap();
    for table in
        ["app.accounts", "app.events", "app.login_events", "app.metrics_2026", "app.metrics_other", r#"app."order""#]
    {
        let row = parity.iter().find(|p| p["table"] == table).unwrap_or_else(|| panic!("{table} in {parity:#?}"));
        assert_eq!(row["match"], true, "{row}");
        assert!(row["expectedChecksum"].is_string(), "{row}");
    }
    // Rows live where they are stored: the parent's own 50, the child's 30.
    let rows = |table: &str| parity.iter().find(|p| p["table"] == table).unwrap()["expected"].as_i64().unwrap();
    assert_eq!((rows("app.events"), rows("app.login_events"), rows("app.accounts")), (50, 30, 200));

    // The roles the schema names, and the group the owner belongs to, were
    // created; the member nobody names was not.
    let mut expected_roles =
        vec![roles.auditor.clone(), roles.group.clone(), roles.owner.clone(), roles.reader.clone()];
    expected_roles.sort();
    let created: Vec<String> =
        verdict["rolesCreated"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    assert_eq!(created, expected_roles);
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(expected_roles.iter().all(|r| md.contains(r.as_str())), "created roles in the report:\n{md}");
    assert!(md.contains("restore start to usable") && md.contains("database settings and ANALYZE"), "{md}");
    let timings = &verdict["timings"];
    assert!(timings["usableSeconds"].as_f64().unwrap() <= timings["verifiedSeconds"].as_f64().unwrap(), "{timings}");
    assert_eq!(verdict["rtoBasis"], "usable");

    // The restored database is the source's: owners, grants, policies, memberships, statistics.
    let restored = PgPool::connect(&with_database(&env("AF_TEST_PG_TARGET_URL"), &scratch)).await.unwrap();
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'app' AND tablename = 'accounts'",
    )
    .fetch_one(&restored)
    .await
    .unwrap();
    assert_eq!(owner, roles.owner);
    let policies: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_policies WHERE schemaname = 'app'")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(policies, 2);
    let reader_may: bool = sqlx::query_scalar("SELECT has_table_privilege($1, 'app.accounts', 'SELECT')")
        .bind(&roles.reader)
        .fetch_one(&restored)
        .await
        .unwrap();
    assert!(reader_may);
    let login: Vec<bool> = sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = ANY($1)")
        .bind(&expected_roles)
        .fetch_all(&restored)
        .await
        .unwrap();
    assert_eq!(login, vec![false; 4], "created as NOLOGIN");
    let in_group: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
        .bind(&roles.owner)
        .bind(&roles.group)
        .fetch_one(&restored)
        .await
        .unwrap();
    assert!(in_group, "membership carried");
    let analyzed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stats WHERE schemaname = 'app' AND tablename = 'accounts'")
            .fetch_one(&restored)
            .await
            .unwrap();
    assert!(analyzed > 0, "planner statistics exist");
    restored.close().await;
}

#[tokio::test]
async fn missing_roles_can_be_required_and_missing_extensions_are_refused_before_anything_is_touched() {
    let (roles, source, scratch, _cleanup) = foreign_source().await;
    let (dir, store) = file_store();
    let source_url = with_database(&env("AF_TEST_PG_SOURCE_URL"), &source);
    assert_exit(&operator(&["backup", "--source", &source_url, "--store", &store, "--name", "b1"]), 0);
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &scratch);
    let target_server = PgPool::connect(&env("AF_TEST_PG_TARGET_URL")).await.unwrap();
    let exists = || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&scratch)
            .fetch_one(&target_server)
            .await
            .unwrap()
    };

    let out = operator(&["restore", "--store", &store, "--backup", "b1", "--target", &target, "--no-create-roles"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    for role in [&roles.owner, &roles.reader, &roles.auditor, &roles.group] {
        assert!(err.contains(role.as_str()), "names {role}: {err}");
    }
    assert!(!exists().await, "the target was not created");

    // A manifest naming an extension the target server does not have.
    let manifest_path = dir.path().join("b1/manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["extensions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "not_an_extension", "version": "1.0"}));
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let out = operator(&["restore", "--store", &store, "--backup", "b1", "--target", &target]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("lacks the extension(s) not_an_extension"), "{}", stderr(&out));
    assert!(!exists().await, "the target was not created");
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)")
        .bind(roles.all())
        .fetch_one(&target_server)
        .await
        .unwrap();
    assert_eq!(created, 0, "no role was created for a refused restore");
}

#[tokio::test]
async fn a_counts_drill_over_a_checksums_backup_passes() {
    let source = db_name("src");
    let _cleanup = Cleanup { databases: vec![("AF_TEST_PG_SOURCE_URL".into(), source.clone())], roles: Vec::new() };
    let src = create_database("AF_TEST_PG_SOURCE_URL", &source, "").await;
    sqlx::raw_sql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 500) g")
        .execute(&src)
        .await
        .unwrap();
    let (_dir, store) = file_store();
    let source_url = with_database(&env("AF_TEST_PG_SOURCE_URL"), &source);
    assert_exit(&operator(&["backup", "--source", &source_url, "--store", &store, "--verify", "checksums"]), 0);
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &db_name("scratch"));
    let out = operator(&["drill", "--latest", "--store", &store, "--target", &target]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("1 of 1 tables match"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_scratch_database_has_the_source_encoding_locale_and_settings() {
    let source = db_name("locale");
    let scratch = db_name("scratch");
    let _cleanup = Cleanup {
        databases: vec![
            ("AF_TEST_PG_SOURCE_URL".into(), source.clone()),
            ("AF_TEST_PG_TARGET_URL".into(), scratch.clone()),
        ],
        roles: Vec::new(),
    };
    let src = create_database(
        "AF_TEST_PG_SOURCE_URL",
        &source,
        "TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'",
    )
    .await;
    let admin = PgPool::connect(&env("AF_TEST_PG_SOURCE_URL")).await.unwrap();
    for setting in
        ["search_path = app, public", "work_mem = '7MB'", "app.tenant = 'acme'", "statement_timeout = '5min'"]
    {
        sqlx::query(&format!("ALTER DATABASE \"{source}\" SET {setting}")).execute(&admin).await.unwrap();
    }
    sqlx::raw_sql("CREATE SCHEMA app; CREATE TABLE app.names (n text); INSERT INTO app.names VALUES ('Zoë'), ('zebra'), ('Ångström')")
        .execute(&src)
        .await
        .unwrap();
    let (_dir, store) = file_store();
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &scratch);
    let out = operator(&[
        "drill",
        "--source",
        &with_database(&env("AF_TEST_PG_SOURCE_URL"), &source),
        "--store",
        &store,
        "--target",
        &target,
        "--keep-target",
    ]);
    assert_exit(&out, 0);

    const PROPERTIES: &str = "SELECT pg_encoding_to_char(encoding), datcollate::text, datctype::text, datlocprovider::text, \
        daticulocale, (SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0) \
        FROM pg_database d WHERE datname = $1";
    type Properties = (String, String, String, String, Option<String>, Option<Vec<String>>);
    let of = |server: &'static str, name: String| async move {
        let pool = PgPool::connect(&env(server)).await.unwrap();
        sqlx::query_as::<_, Properties>(PROPERTIES).bind(name).fetch_one(&pool).await.unwrap()
    };
    let (on_source, on_target) =
        (of("AF_TEST_PG_SOURCE_URL", source.clone()).await, of("AF_TEST_PG_TARGET_URL", scratch.clone()).await);
    assert_eq!(on_target, on_source);
    assert_eq!(on_source.3, "i", "an ICU database");
    assert_eq!(on_source.5.as_ref().map(Vec::len), Some(4), "{on_source:?}");
}

/// Sessions ever opened to the maintenance databases (`postgres`, `template1`)
/// of the server `observer` is on (PostgreSQL 14+ counts them per database). A
/// session's count arrives with its statistics, at the latest when it ends:
/// read until the sum holds still.
async fn maintenance_sessions(observer: &PgPool) -> i64 {
    const SQL: &str = "SELECT sum(sessions)::bigint FROM pg_stat_database WHERE datname IN ('postgres', 'template1')";
    let mut last: i64 = sqlx::query_scalar(SQL).fetch_one(observer).await.unwrap();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let now: i64 = sqlx::query_scalar(SQL).fetch_one(observer).await.unwrap();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// A server of the test's own, so no other test's sessions are counted, and a
/// database on it to watch from without being counted.
async fn observed_server() -> (ExtraPostgres, PgPool) {
    let server = ExtraPostgres::start();
    let admin = PgPool::connect(&server.url).await.unwrap();
    sqlx::query("CREATE DATABASE observer").execute(&admin).await.unwrap();
    admin.close().await;
    let observer = PgPool::connect(&with_database(&server.url, "observer")).await.unwrap();
    (server, observer)
}

#[tokio::test]
async fn a_drill_holds_one_maintenance_session_on_its_target_server() {
    let (_roles, source, _, _cleanup) = foreign_source().await;
    let admin = PgPool::connect(&env("AF_TEST_PG_SOURCE_URL")).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE \"{source}\" SET work_mem = '7MB'")).execute(&admin).await.unwrap();
    let (server, observer) = observed_server().await;
    let before = maintenance_sessions(&observer).await;

    // Every step that needs the server outside the scratch database: the target
    // check before the backup, the checks before the download, the missing
    // roles, the recreate, the database settings, the final drop.
    let (_dir, store) = file_store();
    let out = operator(&[
        "drill",
        "--source",
        &with_database(&env("AF_TEST_PG_SOURCE_URL"), &source),
        "--store",
        &store,
        "--target",
        &with_database(&server.url, "scratch"),
    ]);
    assert_exit(&out, 0);
    let log = stderr(&out);
    assert!(log.contains("created missing role(s)"), "the roles step ran: {log}");
    let dropped: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'scratch')")
        .fetch_one(&observer)
        .await
        .unwrap();
    assert!(dropped, "the drop step ran");
    assert_eq!(maintenance_sessions(&observer).await - before, 1, "one maintenance session for the whole drill");
}

#[tokio::test]
async fn a_lost_maintenance_session_is_reopened_and_a_dead_server_fails_naming_the_step() {
    let (server, observer) = observed_server().await;
    let target = DatabaseUrl::parse(&with_database(&server.url, "scratch")).unwrap();
    let mut maintenance = Maintenance::new(&target, &Progress::quiet());
    assert!(!maintenance.check_target().await.unwrap(), "no scratch database yet");
    // An idle timeout (or a proxy) ends the session between two steps.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'artifortress-operator'",
    )
    .fetch_all(&observer)
    .await
    .unwrap();
    assert_eq!(ended, [true]);
    let before = maintenance_sessions(&observer).await;
    assert!(!maintenance.check_target().await.unwrap(), "the next step reopens the session");
    maintenance.drop_scratch().await.unwrap();
    assert_eq!(maintenance_sessions(&observer).await - before, 1, "reopened once, then kept");

    server.stop();
    let error = maintenance.drop_scratch().await.unwrap_err().to_string();
    assert!(error.starts_with("dropping the scratch database: opening the maintenance session on"), "{error}");
}
