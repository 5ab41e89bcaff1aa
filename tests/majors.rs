//! Every supported PostgreSQL major (14–18) as a drill's source, upgrade
//! rehearsals into 18, and a downgrade refused — on real servers of each major
//! (hack/install-postgres-majors.sh) with the client tools of 15, 16 and 18
//! (`ARTIFORTRESS_PG_BINDIR`, exported by the harness).

mod support;

use serde_json::Value;
use sqlx::PgPool;
use support::{TestDatabase, assert_exit, env, operator, stderr, unique_name, with_database};

fn server(major: u32) -> String {
    env(&format!("AF_TEST_PG{major}_URL"))
}

/// The Artifortress schema and seed, plus what differs between majors'
/// catalogs and dumps: partitions with a default, inheritance, an identity
/// column, a generated column, an enum, a materialized view, many large
/// objects (PostgreSQL 17+ dumps them in groups), awkward names.
const EXTRA: &str = r#"
CREATE SCHEMA "Odd Schema";
CREATE TYPE "Odd Schema".colour AS ENUM ('red', 'green');
CREATE TABLE "Odd Schema"."Mixed Case" (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, c "Odd Schema".colour,
  n numeric, twice numeric GENERATED ALWAYS AS (n * 2) STORED, "order" text);
INSERT INTO "Odd Schema"."Mixed Case" (c, n, "order") SELECT 'red', g / 3.0, 'o' || g FROM generate_series(1, 300) g;
CREATE TABLE public.readings (day date NOT NULL, v float8) PARTITION BY RANGE (day);
CREATE TABLE public.readings_2026 PARTITION OF public.readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.readings_rest PARTITION OF public.readings DEFAULT;
INSERT INTO public.readings SELECT date '2025-12-01' + g, g * 1.5 FROM generate_series(1, 120) g;
CREATE TABLE public.base (id int, at timestamptz DEFAULT '2026-01-01');
CREATE TABLE public.derived (extra text) INHERITS (public.base);
INSERT INTO public.base (id) SELECT generate_series(1, 20);
INSERT INTO public.derived (id, extra) SELECT g, 'x' FROM generate_series(21, 30) g;
ALTER TABLE public.base ADD COLUMN later int DEFAULT 1;
CREATE MATERIALIZED VIEW public.colour_counts AS SELECT c, count(*) FROM "Odd Schema"."Mixed Case" GROUP BY c;
CREATE TABLE public.documents (id int, body oid);
INSERT INTO public.documents SELECT g, lo_from_bytea(0, convert_to('document ' || g, 'UTF8')) FROM generate_series(1, 1200) g;
"#;

async fn seeded(major: u32) -> TestDatabase {
    let db = TestDatabase::create(&format!("AF_TEST_PG{major}_URL"), &format!("pg{major}")).await;
    assert_exit(&operator(&["migrate", "--database", db.url.expose()]), 0);
    assert_exit(&operator(&["seed", "--database", db.url.expose(), "--scale", "small"]), 0);
    sqlx::raw_sql(EXTRA).execute(&db.pool().await).await.unwrap();
    db
}

/// A drill of a database on `source` into a new scratch database on
/// `target`, with checksums; returns the verdict and the progress lines.
async fn drill(source: &TestDatabase, target_major: u32) -> (Value, String) {
    let scratch = with_database(&server(target_major), &unique_name("scratch").replace('-', "_"));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("verdict.json");
    let report = dir.path().join("report.md");
    let out = operator(&[
        "drill",
        "--source",
        source.url.expose(),
        "--store",
        &format!("file://{}", dir.path().join("store").display()),
        "--target",
        &scratch,
        "--verify",
        "checksums",
        "--json",
        json.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let mut verdict: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    verdict["reportMarkdown"] = std::fs::read_to_string(&report).unwrap().into();
    (verdict, stderr(&out))
}

fn assert_every_table_matches(verdict: &Value) {
    assert_eq!(verdict["result"], "Passed", "{verdict:#}");
    let parity = verdict["parity"].as_array().unwrap();
    assert!(parity.len() > 15, "{parity:?}");
    for p in parity {
        assert_eq!(p["match"], true, "{p}");
        assert!(p["expectedChecksum"].is_string(), "{p}");
    }
}

async fn same_major(major: u32) {
    let source = seeded(major).await;
    let (verdict, progress) = drill(&source, major).await;
    assert_every_table_matches(&verdict);
    assert_eq!(verdict["serverMajors"], serde_json::json!({"source": major, "target": major}));
    // Each archive version (1.14 for 14/15, 1.15 for 16, 1.16 for 17/18) gets the fast restore.
    assert!(progress.contains("archive indexed: data offsets for"), "{progress}");
    assert!(!verdict["reportMarkdown"].as_str().unwrap().contains("Upgrade rehearsal"));
}

#[tokio::test]
async fn postgresql_14_drills_with_checksums() {
    same_major(14).await;
}

#[tokio::test]
async fn postgresql_15_drills_with_checksums() {
    same_major(15).await;
}

#[tokio::test]
async fn postgresql_16_drills_with_checksums() {
    same_major(16).await;
}

#[tokio::test]
async fn postgresql_17_drills_with_checksums() {
    same_major(17).await;
}

#[tokio::test]
async fn postgresql_18_drills_with_checksums() {
    same_major(18).await;
}

#[tokio::test]
async fn upgrade_rehearsals_from_14_15_16_and_17_into_18() {
    for major in 14..=17 {
        let source = seeded(major).await;
        let (verdict, progress) = drill(&source, 18).await;
        assert_every_table_matches(&verdict);
        assert_eq!(verdict["serverMajors"], serde_json::json!({"source": major, "target": 18}));
        assert!(progress.contains(&format!("upgrade rehearsal: PostgreSQL {major} → 18")), "{progress}");
        let md = verdict["reportMarkdown"].as_str().unwrap();
        assert!(md.contains(&format!("Upgrade rehearsal: PostgreSQL {major} → 18")), "{md}");
    }
}

#[tokio::test]
async fn a_downgrade_is_refused_before_the_target_is_touched() {
    let source = seeded(18).await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    assert_exit(&operator(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "from-18"]), 0);
    let scratch = unique_name("scratch").replace('-', "_");
    let target = with_database(&server(15), &scratch);
    let out = operator(&["restore", "--store", &store, "--backup", "from-18", "--target", &target]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("PostgreSQL 18") && err.contains("PostgreSQL 15") && err.contains("downgrade"), "{err}");
    let out = operator(&["drill", "--latest", "--store", &store, "--target", &target]);
    assert_exit(&out, 2);
    let admin = PgPool::connect(&server(15)).await.unwrap();
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&scratch)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(!exists, "the target database was not created");
}

#[test]
fn the_tools_command_lists_every_major() {
    let out = operator(&["tools"]);
    assert_exit(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "| PostgreSQL 14 | pg_dump 15 |",
        "| PostgreSQL 16 | pg_dump 16 |",
        "| PostgreSQL 17 | pg_dump 18 |",
        "| PostgreSQL 18 | pg_dump 18 |",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
