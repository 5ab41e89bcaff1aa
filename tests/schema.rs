//! The Artifortress schema on a real PostgreSQL server: migrations apply (twice),
//! the catalogue holds the contract, and the seed produces the documented data.

mod support;

use std::process::Command;

use artifortress_operator::db::seed::Scale;
use support::{TestDatabase, operator_bin};

fn operator(args: &[&str]) -> std::process::Output {
    Command::new(operator_bin()).args(args).env("ARTIFORTRESS_LOG_FORMAT", "text").output().expect("run operator")
}

fn assert_ok(out: &std::process::Output) {
    assert!(out.status.success(), "exit {:?}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn migrate_is_idempotent_and_creates_the_contract() {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "schema").await;
    assert_ok(&operator(&["migrate", "--database", db.url.expose()]));
    assert_ok(&operator(&["migrate", "--database", db.url.expose()]));

    let pool = db.pool().await;
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(applied.len(), artifortress_operator::db::MIGRATOR.iter().count());
    assert!(applied.iter().all(|(_, ok)| *ok));

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: Vec<&str> = artifortress_operator::db::seed::TABLES.to_vec();
    expected.sort();
    assert_eq!(tables, expected);

    // The operations columns other tools rely on, with their types.
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name IN ('outbox_events','search_index_jobs','gc_runs','audit_log')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let has = |t: &str, c: &str, ty: &str| columns.iter().any(|(tt, cc, tyy)| tt == t && cc == c && tyy == ty);
    for (t, c, ty) in [
        ("outbox_events", "status", "text"),
        ("outbox_events", "available_at", "timestamp with time zone"),
        ("outbox_events", "created_at", "timestamp with time zone"),
        ("outbox_events", "published_at", "timestamp with time zone"),
        ("outbox_events", "attempts", "integer"),
        ("outbox_events", "event_type", "text"),
        ("outbox_events", "payload", "jsonb"),
        ("search_index_jobs", "status", "text"),
        ("search_index_jobs", "attempts", "integer"),
        ("search_index_jobs", "last_error", "text"),
        ("search_index_jobs", "created_at", "timestamp with time zone"),
        ("search_index_jobs", "updated_at", "timestamp with time zone"),
        ("gc_runs", "started_at", "timestamp with time zone"),
        ("gc_runs", "completed_at", "timestamp with time zone"),
        ("audit_log", "occurred_at", "timestamp with time zone"),
        ("audit_log", "actor", "text"),
        ("audit_log", "action", "text"),
        ("audit_log", "resource", "text"),
        ("audit_log", "outcome", "text"),
        ("audit_log", "details", "jsonb"),
    ] {
        assert!(has(t, c, ty), "missing {t}.{c} {ty}");
    }

    // The indexes that keep the ops-summary queries bounded.
    let indexes: Vec<(String, String)> =
        sqlx::query_as("SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let index = |name: &str| {
        indexes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("index {name} missing"))
    };
    assert!(index("outbox_events_pending_created_at").contains("(created_at) WHERE (status = 'pending'::text)"));
    assert!(index("outbox_events_pending_available_at").contains("(available_at) WHERE (status = 'pending'::text)"));
    assert!(index("search_index_jobs_pending").contains("WHERE (status = 'pending'::text)"));
    assert!(index("search_index_jobs_failed").contains("WHERE (status = 'failed'::text)"));
    assert!(index("gc_runs_incomplete").contains("WHERE (completed_at IS NULL)"));
    assert!(index("audit_log_action_occurred_at").contains("(action, occurred_at)"));

    // Status values are a contract enforced by the database.
    let bad = sqlx::query("INSERT INTO outbox_events (event_type, status) VALUES ('x', 'queued')").execute(&pool).await;
    assert!(bad.unwrap_err().to_string().contains("check constraint"));
    let bad = sqlx::query("INSERT INTO search_index_jobs (status) VALUES ('lost')").execute(&pool).await;
    assert!(bad.unwrap_err().to_string().contains("check constraint"));
    // Digests are exactly sha256: plus 64 lowercase hex digits.
    let hex64 = "0123456789abcdef".repeat(4);
    for (digest, ok) in [
        (format!("sha256:{hex64}"), true),
        (format!("sha256:{}", &hex64[1..]), false),
        (format!("sha256:{hex64}0"), false),
        (format!("sha256:{}", hex64.to_uppercase()), false),
        (format!("sha512:{hex64}"), false),
    ] {
        let result = sqlx::query("INSERT INTO blobs (digest, size_bytes, storage_key) VALUES ($1, 1, 'k')")
            .bind(&digest)
            .execute(&pool)
            .await;
        assert_eq!(result.is_ok(), ok, "{digest}: {result:?}");
    }
}

#[tokio::test]
async fn seed_small_produces_the_documented_data() {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "seed").await;
    assert_ok(&operator(&["migrate", "--database", db.url.expose()]));
    let out = operator(&["seed", "--database", db.url.expose(), "--scale", "small"]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("seed: done in"), "progress and summary on stderr:\n{stderr}");
    let password = url::Url::parse(db.url.expose()).unwrap().password().unwrap().to_string();
    assert!(!stderr.contains(&password), "the password must never be printed:\n{stderr}");

    let pool = db.pool().await;
    let sizes = Scale::Small.sizes();
    for (table, rows) in [
        ("tenants", sizes.tenants),
        ("repositories", sizes.repositories),
        ("packages", sizes.packages),
        ("blobs", sizes.blobs),
        ("package_versions", sizes.package_versions),
        ("outbox_events", sizes.outbox_events),
        ("search_index_jobs", sizes.search_index_jobs),
        ("gc_runs", sizes.gc_runs),
        ("audit_log", sizes.audit_log),
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&pool).await.unwrap();
        assert_eq!(n, rows, "{table}");
    }

    // The signals the ops summary reads, hand-computed from the generator rules
    // (outbox: every 250th pending, every 1000th of those not yet available,
    // every 1000th+1 dead; search: every 2000th failed, every 500th+1 pending;
    // the newest GC run incomplete; audit: every 1000th a policy timeout, spread
    // over 2 days, so rows 11000..=20000 fall in the last 24 h).
    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(one("SELECT count(*) FROM outbox_events WHERE status = 'pending'").await, 20);
    assert_eq!(one("SELECT count(*) FROM outbox_events WHERE status = 'pending' AND available_at <= now()").await, 15);
    assert_eq!(one("SELECT count(*) FROM outbox_events WHERE status = 'dead'").await, 5);
    assert_eq!(one("SELECT count(*) FROM search_index_jobs WHERE status = 'failed'").await, 1);
    assert_eq!(one("SELECT count(*) FROM search_index_jobs WHERE status = 'pending'").await, 4);
    assert_eq!(one("SELECT count(*) FROM gc_runs WHERE completed_at IS NULL").await, 1);
    assert_eq!(
        one("SELECT count(*) FROM audit_log WHERE action = 'policy.timeout' AND occurred_at > now() - interval '24 hours'").await,
        10
    );
    let oldest_pending_age: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(created_at))::float8 FROM outbox_events WHERE status = 'pending'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((0.0..300.0).contains(&oldest_pending_age), "pending backlog is recent: {oldest_pending_age}");

    // Referential integrity holds (the FKs would have rejected the insert otherwise,
    // but check the shape: every package has versions, blobs are shared).
    assert_eq!(one("SELECT count(*) FROM packages p WHERE NOT EXISTS (SELECT 1 FROM package_versions v WHERE v.package_id = p.id)").await, 0);

    // A second seed without --reset is refused; with --reset it starts over.
    let again = operator(&["seed", "--database", db.url.expose(), "--scale", "small"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--reset"));
    assert_ok(&operator(&["seed", "--database", db.url.expose(), "--scale", "small", "--reset"]));
    assert_eq!(one("SELECT count(*) FROM audit_log").await, sizes.audit_log);
}

#[tokio::test]
async fn ops_summary_queries_use_the_partial_indexes() {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "plans").await;
    assert_ok(&operator(&["migrate", "--database", db.url.expose()]));
    assert_ok(&operator(&["seed", "--database", db.url.expose(), "--scale", "small"]));
    let pool = db.pool().await;
    // Give every operations table the production shape: many rows, of which the
    // counted states (pending, failed, incomplete, recent timeouts) are a sliver.
    // On a few pages a sequential scan is rightly cheaper, which would prove nothing.
    for bulk in [
        "INSERT INTO outbox_events (event_type, status, created_at, published_at)
         SELECT 'package.published', 'published', now() - interval '2 days', now() FROM generate_series(1, 200000)",
        "INSERT INTO search_index_jobs (status) SELECT 'done' FROM generate_series(1, 200000)",
        "INSERT INTO gc_runs (started_at, completed_at)
         SELECT now() - make_interval(mins => i), now() - make_interval(mins => i) + interval '30 seconds'
         FROM generate_series(100, 200000) AS i",
        "INSERT INTO audit_log (occurred_at, actor, action, outcome)
         SELECT now() - make_interval(secs => i), 'user-1', 'package.download', 'allowed' FROM generate_series(1, 300000) AS i",
        "VACUUM (ANALYZE) outbox_events, search_index_jobs, gc_runs, audit_log",
    ] {
        sqlx::query(bulk).execute(&pool).await.unwrap();
    }
    for (sql, index) in [
        ("SELECT count(*) FROM outbox_events WHERE status = 'pending'", "outbox_events_pending_"),
        // Either partial index bounds the scan to pending events; the planner picks by size.
        (
            "SELECT count(*) FROM outbox_events WHERE status = 'pending' AND available_at <= now()",
            "outbox_events_pending_",
        ),
        ("SELECT min(created_at) FROM outbox_events WHERE status = 'pending'", "outbox_events_pending_created_at"),
        ("SELECT count(*) FROM search_index_jobs WHERE status = 'failed'", "search_index_jobs_failed"),
        ("SELECT count(*) FROM search_index_jobs WHERE status = 'pending'", "search_index_jobs_pending"),
        ("SELECT count(*) FROM gc_runs WHERE completed_at IS NULL", "gc_runs_incomplete"),
        (
            "SELECT count(*) FROM audit_log WHERE action = 'policy.timeout' AND occurred_at > now() - interval '24 hours'",
            "audit_log_action_occurred_at",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}")).fetch_all(&pool).await.unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{sql}\n{plan}");
        assert!(plan.contains(index), "{sql} should use {index}\n{plan}");
    }
}
