//! The recovery engine end to end through the `artifortress-operator` binary,
//! against two real PostgreSQL servers and a real S3 server, with real faults.

mod support;

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;
use sqlx::PgPool;
use support::{
    ExtraGarage, ExtraPostgres, TestDatabase, assert_exit, env, file_store, operator, operator_bin, operator_with_env,
    s3_client, s3_store_url, stderr, unique_name, with_database,
};

/// Tables whose names need quoting, a second schema, a partitioned table.
const AWKWARD_TABLES: &str = r#"
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (id int PRIMARY KEY, "Quoted Col" text);
INSERT INTO "Odd Schema"."Mixed Case" SELECT i, 'value ' || i FROM generate_series(1, 123) AS i;
CREATE TABLE public.events (id bigint, at date NOT NULL, payload text) PARTITION BY RANGE (at);
CREATE TABLE public.events_2026_10 PARTITION OF public.events FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE public.events_2026_11 PARTITION OF public.events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
INSERT INTO public.events SELECT i, date '2026-10-01' + (i % 60), 'event ' || i FROM generate_series(1, 1000) AS i;
CREATE TABLE public."select" (x int);
INSERT INTO public."select" VALUES (1), (2);
"#;

/// A migrated, seeded source database with the awkward tables.
async fn seeded_source() -> TestDatabase {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "src").await;
    assert_exit(&operator(&["migrate", "--database", db.url.expose()]), 0);
    assert_exit(&operator(&["seed", "--database", db.url.expose(), "--scale", "small"]), 0);
    let pool = db.pool().await;
    sqlx::raw_sql(AWKWARD_TABLES).execute(&pool).await.unwrap();
    db
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

async fn s3_bucket() -> (String, aws_sdk_s3::Client) {
    let s3 = s3_client().await;
    let bucket = unique_name("engine");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    (bucket, s3)
}

fn scratch_url(server_env: &str) -> String {
    with_database(&env(server_env), &unique_name("scratch").replace('-', "_"))
}

#[tokio::test]
async fn drill_round_trip_on_two_servers_through_s3_with_checksums() {
    let source = seeded_source().await;
    let (bucket, _s3) = s3_bucket().await;
    let store = s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "prod/af");
    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("drill.json");
    let report = dir.path().join("drill.md");
    let out = operator(&[
        "drill",
        "--source",
        source.url.expose(),
        "--target",
        &target,
        "--store",
        &store,
        "--verify",
        "checksums",
        "--rpo",
        "15m",
        "--rto",
        "30m",
        "--json",
        json.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let progress = stderr(&out);
    // "archive indexed": the pipe-written archive got its data offsets (all 34 tables).
    for step in [
        "snapshot",
        "stored",
        "downloading",
        "dump verified",
        "archive indexed: data offsets for 34 tables",
        "pg_restore -j",
        "verifying",
        "verdict PASSED",
    ] {
        assert!(progress.contains(step), "progress line {step:?} in:\n{progress}");
    }

    let result: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(result["result"], "Passed");
    assert_eq!(result["phase"], "Succeeded");
    assert!(result["failures"].as_array().is_none_or(|f| f.is_empty()));
    assert_eq!(result["backup"]["fresh"], true);
    for objective in ["rpo", "rto"] {
        assert!(result[objective]["measuredSeconds"].as_f64().unwrap() >= 0.0);
        assert_eq!(result[objective]["met"], true);
    }
    assert_eq!(result["rto"]["objectiveSeconds"], 1800.0);
    for timing in [
        "backupSeconds",
        "downloadSeconds",
        "restoreSeconds",
        "analyzeSeconds",
        "paritySeconds",
        "usableSeconds",
        "verifiedSeconds",
        "totalSeconds",
    ] {
        assert!(result["timings"][timing].as_f64().is_some(), "timings.{timing}");
    }

    // Every table of the source that stores rows is in the parity list with the
    // exact count of the rows it stores (a partitioned parent stores none: its
    // partitions are listed).
    let pool = source.pool().await;
    let parity = result["parity"].as_array().unwrap();
    let tables: Vec<&str> = parity.iter().map(|p| p["table"].as_str().unwrap()).collect();
    assert!(!tables.contains(&"public.events"), "{tables:?}");
    for table in [
        r#""Odd Schema"."Mixed Case""#,
        "public.events_2026_10",
        "public.events_2026_11",
        r#"public."select""#,
        "public.audit_log",
        "public.package_versions",
    ] {
        assert!(tables.contains(&table), "{table} in {tables:?}");
    }
    for p in parity {
        let table = p["table"].as_str().unwrap();
        assert_eq!(p["match"], true, "{p}");
        assert_eq!(p["expected"], p["restored"], "{p}");
        assert!(p["expectedChecksum"].is_string() && p["expectedChecksum"] == p["restoredChecksum"], "{p}");
        assert_eq!(p["expected"].as_i64().unwrap(), count(&pool, &format!("ONLY {table}")).await, "{table}");
    }

    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("PASSED") && md.contains(r#"`"Odd Schema"."Mixed Case"` | 123 | 123"#), "{md}");
    // The report is also stored next to the backup, and the scratch database is gone.
    let stored = result["report"].as_str().unwrap();
    assert!(stored.starts_with(&format!("s3://{bucket}/prod/af/")) && stored.contains("/drills/"), "{stored}");
    let target_server = PgPool::connect(&env("AF_TEST_PG_TARGET_URL")).await.unwrap();
    let scratch = target.rsplit('/').next().unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(scratch)
        .fetch_one(&target_server)
        .await
        .unwrap();
    assert_eq!(left, 0, "scratch database dropped after the drill");
}

#[tokio::test]
async fn drill_into_another_database_of_the_same_server_with_the_file_store() {
    let source = seeded_source().await;
    let (store_dir, store) = file_store();
    let target = scratch_url("AF_TEST_PG_SOURCE_URL");
    let json = store_dir.path().join("result.json");
    let out = operator(&[
        "drill",
        "--source",
        source.url.expose(),
        "--target",
        &target,
        "--store",
        &store,
        "--json",
        json.to_str().unwrap(),
        "--keep-target",
    ]);
    assert_exit(&out, 0);
    let result: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(result["result"], "Passed");
    let backup = result["backup"]["name"].as_str().unwrap();
    assert!(store_dir.path().join(backup).join("manifest.json").exists());
    assert!(store_dir.path().join(backup).join("dump").exists());

    // --keep-target: the scratch database is there with the data.
    let kept = PgPool::connect(&target).await.unwrap();
    assert_eq!(count(&kept, r#""Odd Schema"."Mixed Case""#).await, 123);
    kept.close().await;

    // An existing backup can be drilled again (--latest), without --source.
    let out = operator(&["drill", "--latest", "--target", &target, "--store", &store]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains(&format!("latest backup is {backup}")));
}

#[tokio::test]
async fn rows_written_during_the_backup_are_in_neither_manifest_nor_restore() {
    let source = seeded_source().await;
    let pool = source.pool().await;
    sqlx::query("CREATE TABLE public.gate (x int)").execute(&pool).await.unwrap();
    let before = count(&pool, "public.audit_log").await;

    // Hold a lock that pg_dump and the counting need, so the backup is provably
    // past its snapshot and stuck while we write.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE public.gate IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();

    let (store_dir, store) = file_store();
    let child = tokio::process::Command::new(operator_bin())
        .args(["backup", "--source", source.url.expose(), "--store", &store, "--name", "during-writes"])
        .env("ARTIFORTRESS_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the backup waits on the lock (its snapshot is taken by then).
    let waiting = async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'gate' AND NOT l.granted",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if n > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting).await.expect("backup reaches the lock");
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id)
         SELECT (SELECT tenant_id FROM tenants LIMIT 1), 'late', 'package.download', 'package_version', 'v'
         FROM generate_series(1, 777)",
    )
    .execute(&pool)
    .await
    .unwrap();
    blocker.rollback().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_exit(&out, 0);

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(store_dir.path().join("during-writes/manifest.json")).unwrap()).unwrap();
    let recorded =
        manifest["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.audit_log").unwrap()["rows"]
            .as_i64()
            .unwrap();
    assert_eq!(recorded, before, "the manifest describes the snapshot, not the live table");
    assert_eq!(count(&pool, "public.audit_log").await, before + 777);

    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    let out = operator(&["restore", "--store", &store, "--backup", "during-writes", "--target", &target]);
    assert_exit(&out, 0);
    let restored = PgPool::connect(&target).await.unwrap();
    assert_eq!(count(&restored, "public.audit_log").await, before);
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE actor_subject = 'late'")
        .fetch_one(&restored)
        .await
        .unwrap();
    assert_eq!(late, 0);
}

/// A backup in S3 plus the engine's own scratch database from an earlier
/// restore, holding a marker row added since.
async fn backup_and_marked_target(name: &str) -> (TestDatabase, String, aws_sdk_s3::Client, String, String) {
    let source = seeded_source().await;
    let (bucket, s3) = s3_bucket().await;
    let store = s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "af");
    assert_exit(&operator(&["backup", "--source", source.url.expose(), "--store", &store, "--name", name]), 0);
    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    assert_exit(&operator(&["restore", "--store", &store, "--backup", name, "--target", &target]), 0);
    let pool = PgPool::connect(&target).await.unwrap();
    sqlx::raw_sql("CREATE TABLE marker (note text); INSERT INTO marker VALUES ('untouched')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    (source, bucket, s3, store, target)
}

async fn marker_intact(target: &str) {
    let pool = PgPool::connect(target).await.unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM marker").fetch_one(&pool).await.expect("target untouched");
    assert_eq!(note, "untouched");
}

#[tokio::test]
async fn a_flipped_byte_or_a_truncated_dump_is_refused_before_the_target_is_touched() {
    let (_source, bucket, s3, store, target) = backup_and_marked_target("corrupt-me").await;
    let key = "af/corrupt-me/dump";
    let original = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec();

    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let truncated = original[..original.len() / 2].to_vec();
    for (what, bytes) in [("flipped byte", flipped), ("truncated", truncated)] {
        s3.put_object().bucket(&bucket).key(key).body(ByteStream::from(bytes)).send().await.unwrap();
        let out = operator(&["restore", "--store", &store, "--backup", "corrupt-me", "--target", &target]);
        assert_exit(&out, 1);
        assert!(stderr(&out).contains("checksum mismatch"), "{what}: {}", stderr(&out));
        marker_intact(&target).await;

        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.md");
        let out = operator(&[
            "drill",
            "--backup",
            "corrupt-me",
            "--store",
            &store,
            "--target",
            &target,
            "--keep-target",
            "--report",
            report.to_str().unwrap(),
        ]);
        assert_exit(&out, 1);
        assert!(stderr(&out).contains("checksum mismatch"), "{what}: {}", stderr(&out));
        assert!(std::fs::read_to_string(&report).unwrap().contains("checksum mismatch"));
        marker_intact(&target).await;
    }
}

#[tokio::test]
async fn restoring_over_the_source_is_refused_even_through_another_address() {
    let source = seeded_source().await;
    let (_store_dir, store) = file_store();
    assert_exit(&operator(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "self"]), 0);
    let pool = source.pool().await;
    let before = count(&pool, "public.audit_log").await;

    let mut alias = url::Url::parse(source.url.expose()).unwrap();
    for host in ["127.0.0.1", "localhost"] {
        alias.set_host(Some(host)).unwrap();
        let out = operator(&["restore", "--store", &store, "--backup", "self", "--target", alias.as_str()]);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains("refused") && stderr(&out).contains("is the backup's source"),
            "{}",
            stderr(&out)
        );
        let out = operator(&["drill", "--source", source.url.expose(), "--store", &store, "--target", alias.as_str()]);
        assert_exit(&out, 2);
    }
    assert_eq!(count(&pool, "public.audit_log").await, before, "source untouched");
}

#[tokio::test]
async fn other_clients_of_the_target_are_disconnected_and_the_restore_succeeds() {
    let (_source, _bucket, _s3, store, target) = backup_and_marked_target("busy-target").await;
    let mut other =
        sqlx::PgConnection::connect_with(&target.parse::<sqlx::postgres::PgConnectOptions>().unwrap()).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut other).await.unwrap();

    let out = operator(&["restore", "--store", &store, "--backup", "busy-target", "--target", &target]);
    assert_exit(&out, 0);
    assert!(sqlx::query("SELECT 1").execute(&mut other).await.is_err(), "the other session was terminated");
    let pool = PgPool::connect(&target).await.unwrap();
    let marker: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('marker')::text").fetch_one(&pool).await.unwrap();
    assert_eq!(marker, None, "the database was recreated from the backup");
    assert_eq!(count(&pool, r#""Odd Schema"."Mixed Case""#).await, 123);
}

use sqlx::Connection;

/// Incompressible-enough data so the dump needs several multipart parts.
const BIG_TABLE: &str =
    "CREATE TABLE big AS SELECT i, md5(i::text) || md5((i * 7)::text) AS h FROM generate_series(1, 1500000) AS i";

async fn wait_for_multipart_upload(s3: &aws_sdk_s3::Client, bucket: &str) {
    let started = async {
        loop {
            if let Ok(open) = s3.list_multipart_uploads().bucket(bucket).send().await
                && !open.uploads().is_empty()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), started).await.expect("a multipart upload starts");
}

#[tokio::test]
async fn postgres_stopped_during_the_backup_fails_it_and_leaves_nothing() {
    let server = ExtraPostgres::start();
    let db_url = with_database(&server.url, "postgres");
    let pool = PgPool::connect(&db_url).await.unwrap();
    sqlx::query(BIG_TABLE).execute(&pool).await.unwrap();
    pool.close().await;
    let (bucket, s3) = s3_bucket().await;
    let store = s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "af");

    let child = tokio::process::Command::new(operator_bin())
        .args(["backup", "--source", &db_url, "--store", &store, "--name", "crash"])
        .env("ARTIFORTRESS_LOG_FORMAT", "text")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_multipart_upload(&s3, &bucket).await;
    server.stop();
    let out = child.wait_with_output().await.unwrap();
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("pg_dump") || err.contains("counting"), "the reason names the failed step: {err}");

    let objects = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert!(!keys.iter().any(|k| k.ends_with("manifest.json")), "no manifest: {keys:?}");
    assert!(keys.is_empty(), "nothing half-written is stored: {keys:?}");
    let open = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(open.uploads().is_empty(), "the multipart upload was aborted");
}

#[tokio::test]
async fn s3_stopped_during_the_upload_fails_the_backup_and_the_next_one_cleans_up() {
    let source = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "big").await;
    let pool = source.pool().await;
    sqlx::query(BIG_TABLE).execute(&pool).await.unwrap();
    let garage = ExtraGarage::start();
    let s3 = garage.client().await;
    let bucket = unique_name("outage");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let store = s3_store_url(garage.get("AF_TEST_S3_ENDPOINT"), &bucket, "af");
    let creds = vec![
        ("AWS_ACCESS_KEY_ID".to_string(), garage.get("AWS_ACCESS_KEY_ID").to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), garage.get("AWS_SECRET_ACCESS_KEY").to_string()),
    ];

    let child = tokio::process::Command::new(operator_bin())
        .args(["backup", "--source", source.url.expose(), "--store", &store, "--name", "outage"])
        .env("ARTIFORTRESS_LOG_FORMAT", "text")
        .envs(creds.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_multipart_upload(&s3, &bucket).await;
    garage.kill();
    let out =
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await.expect("fails in time").unwrap();
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("uploading") || stderr(&out).contains("upload"), "{}", stderr(&out));

    garage.restart();
    let objects = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(objects.contents().iter().filter_map(|o| o.key()).all(|k| !k.ends_with("manifest.json")), "no manifest");

    // Another backup into the store leaves the upload alone (it could be a live
    // backup's); the retry of the failed one removes what the server kept.
    let out =
        operator_with_env(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "other"], &creds);
    assert_exit(&out, 0);
    let open = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    let open: Vec<&str> = open.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(open, ["af/outage/dump"], "another backup aborts no upload but its own");
    let out =
        operator_with_env(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "outage"], &creds);
    assert_exit(&out, 0);
    let open = s3.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(open.uploads().is_empty(), "no multipart upload left: {:?}", open.uploads());
    let objects = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["af/other/dump", "af/other/manifest.json", "af/outage/dump", "af/outage/manifest.json"]);
}

#[tokio::test]
async fn an_objective_that_cannot_be_met_fails_the_drill_with_both_numbers() {
    let source = seeded_source().await;
    let (store_dir, store) = file_store();
    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    let report = store_dir.path().join("r.md");
    let json = store_dir.path().join("r.json");
    let out = operator(&[
        "drill",
        "--source",
        source.url.expose(),
        "--target",
        &target,
        "--store",
        &store,
        "--rto",
        "1ms",
        "--report",
        report.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_exit(&out, 1);
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("FAILED") && md.contains("RTO objective missed"), "{md}");
    let result: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(result["result"], "Failed");
    assert_eq!(result["rto"]["met"], false);
    assert_eq!(result["rto"]["objectiveSeconds"], 0.001);
    let measured = result["rto"]["measuredSeconds"].as_f64().unwrap();
    let failure = result["failures"][0].as_str().unwrap();
    assert!(failure.contains(&format!("{measured:.3} s")) && failure.contains("0.001 s"), "{failure}");
    // Everything else was still measured and matched.
    assert!(result["parity"].as_array().unwrap().iter().all(|p| p["match"] == true));
}

#[tokio::test]
async fn bad_usage_exits_2_with_a_message_that_says_what_to_fix() {
    for (args, expect) in [
        (vec!["drill", "--target", "postgres://u@127.0.0.1/x", "--store", "file:///tmp/x"], "needs --source"),
        (
            vec!["drill", "--source", "mysql://a@b/c", "--target", "postgres://u@h/x", "--store", "file:///tmp/x"],
            "not postgres",
        ),
        (vec!["backup", "--source", "postgres://u@h/x", "--store", "ftp://x"], "unsupported scheme"),
        (
            vec!["backup", "--source", "postgres://u@h/x", "--store", "s3://k:secret@bucket/p"],
            "credentials must not be part of the URL",
        ),
        (
            vec![
                "drill",
                "--source",
                "postgres://u@h/x",
                "--target",
                "postgres://u@h/y",
                "--store",
                "file:///tmp/x",
                "--rto",
                "soon",
            ],
            "--rto: invalid duration",
        ),
    ] {
        let out = operator(&args);
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("secret"), "no credential echoed");
    }
}

/// A backup exactly as the operator wrote it before the engine owned its formats
/// (formats/tests/golden/store-v1: a pg_dump 15 archive and a version-1
/// manifest with checksums) restores, verifies and drills today.
#[tokio::test]
async fn a_backup_in_the_first_manifest_layout_still_restores() {
    let (dir, store) = file_store();
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/tests/golden/store-v1/golden-v1");
    std::fs::create_dir(dir.path().join("golden-v1")).unwrap();
    for file in ["dump", "manifest.json"] {
        std::fs::copy(golden.join(file), dir.path().join("golden-v1").join(file)).unwrap();
    }
    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    let out = operator(&[
        "restore",
        "--store",
        &store,
        "--backup",
        "golden-v1",
        "--target",
        &target,
        "--verify",
        "checksums",
    ]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("every table matches"), "{stdout}");
    for table in [r#""Odd Schema"."Mixed Case""#, "public.tenants", "public.empty_one"] {
        assert!(stdout.contains(table), "{table} in {stdout}");
    }

    let json = dir.path().join("verdict.json");
    let out = operator(&[
        "drill",
        "--latest",
        "--store",
        &store,
        "--target",
        &target,
        "--verify",
        "checksums",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    let verdict: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(verdict["verdictVersion"], 1);
    assert_eq!(verdict["result"], "Passed");
    assert_eq!(verdict["parity"].as_array().unwrap().len(), 3);
}

/// A unique index that holds in the source and breaks in the restore: its
/// function (declared immutable, which it is not) depends on a database
/// setting that pg_restore's session does not have yet.
const BREAKS_ON_RESTORE: &str = "
CREATE FUNCTION public.email_key(e text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN current_setting('app.full_keys', true) = 'on' THEN e ELSE left(e, 5) END $$;
CREATE TABLE public.accounts (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO public.accounts VALUES (1, 'alice.secret@example.com'), (2, 'alice.other@example.com');
";

#[tokio::test]
async fn a_restore_that_breaks_a_unique_index_reports_the_object_and_never_a_row_value() {
    let source = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "uniq").await;
    let pool = source.pool().await;
    sqlx::query(&format!("ALTER DATABASE \"{}\" SET app.full_keys = 'on'", source.name)).execute(&pool).await.unwrap();
    pool.close().await;
    let pool = source.pool().await;
    sqlx::raw_sql(BREAKS_ON_RESTORE).execute(&pool).await.unwrap();
    sqlx::query("CREATE UNIQUE INDEX accounts_email_key ON public.accounts (public.email_key(email))")
        .execute(&pool)
        .await
        .unwrap();
    let (dir, store) = file_store();
    let (report, json) = (dir.path().join("r.md"), dir.path().join("r.json"));
    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    let args = ["drill", "--source", source.url.expose(), "--target", &target, "--store", &store];
    let out =
        operator(&[&args[..], &["--report", report.to_str().unwrap(), "--json", json.to_str().unwrap()]].concat());
    assert_exit(&out, 1);
    let verdict = std::fs::read_to_string(&json).unwrap();
    let md = std::fs::read_to_string(&report).unwrap();
    let result: Value = serde_json::from_str(&verdict).unwrap();
    assert_eq!(result["reason"], "RestoreFailed", "{verdict}");
    let failure = result["failures"][0].as_str().unwrap();
    assert!(failure.contains("accounts_email_key") && failure.contains("public.accounts"), "{failure}");
    for text in [&verdict, &md] {
        assert!(!text.contains("alice"), "no row value in the verdict or the report:\n{text}");
    }
    // The whole error, values included, is in the process's own log (the Job's log in a cluster).
    assert!(stderr(&out).contains("is duplicated") && stderr(&out).contains("alice"), "{}", stderr(&out));
}

/// Progress lines of a metered step in a command's stderr.
fn meter_lines<'a>(stderr: &'a str, what: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(&format!("] {what}: "))).collect()
}

#[tokio::test]
async fn long_steps_report_bytes_rate_and_eta_while_they_run() {
    let source = seeded_source().await;
    let (bucket, _s3) = s3_bucket().await;
    let store = s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "progress");
    // Reports every millisecond, so that even the small seed's steps (tens of
    // milliseconds through Garage) report.
    let often = [("ARTIFORTRESS_PROGRESS_EVERY".to_string(), "0.001".to_string())];
    let backup = |name: &str| {
        operator_with_env(&["backup", "--source", source.url.expose(), "--store", &store, "--name", name], &often)
    };
    let first = backup("first");
    assert_exit(&first, 0);
    let log = stderr(&first);
    let lines = meter_lines(&log, "dumping and uploading");
    assert!(!lines.is_empty(), "progress while dumping:\n{log}");
    assert!(lines.iter().all(|l| l.contains("/s")), "a rate on every line: {lines:?}");
    // A backup of another, near-empty database into the same store between them...
    let other = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "other").await;
    let other_backup = ["backup", "--source", other.url.expose(), "--store", &store, "--name", "other"];
    assert_exit(&operator_with_env(&other_backup, &often), 0);
    // ...is no estimate for this one: the next backup of the same database has
    // the first one's size as its estimate, share and ETA.
    // (Two dumps of one database differ by a few bytes of compressed output,
    // so the second may end just past its estimate: that is reported, too.)
    let first_size = String::from_utf8_lossy(&first.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("dump").map(|rest| rest.trim().split(" (").next().unwrap().to_string()))
        .expect("the backup prints its dump size");
    let second = backup("second");
    assert_exit(&second, 0);
    let log = stderr(&second);
    let lines = meter_lines(&log, "dumping and uploading");
    assert!(lines.iter().any(|l| l.contains(" of ~") && l.contains("%") && l.contains("ETA")), "{lines:?}");
    let estimate = [format!(" of ~{first_size} ("), format!("past the estimate of {first_size})")];
    assert!(lines.iter().all(|l| estimate.iter().any(|e| l.contains(e.as_str()))), "{first_size}: {lines:?}");

    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    // Session settings for pg_restore: raised where the server has less
    // (maintenance_work_mem 64MB by default), left out where it has them already
    // (the test servers run with synchronous_commit off).
    let restore = operator_with_env(
        &[
            "restore",
            "--store",
            &store,
            "--backup",
            "second",
            "--target",
            &target,
            "--session-setting",
            "maintenance_work_mem=256MB",
            "--session-setting",
            "synchronous_commit=off",
        ],
        &often,
    );
    assert_exit(&restore, 0);
    let log = stderr(&restore);
    let lines = meter_lines(&log, "downloading");
    assert!(!lines.is_empty(), "progress while downloading:\n{log}");
    assert!(lines.iter().all(|l| l.contains(" of ") && !l.contains(" of ~")), "an exact total: {lines:?}");
    // pg_restore's table data in archive bytes, then its indexes and constraints
    // counted, then parity in rows: each with its exact total, rate and ETA.
    for (step, unit) in
        [("restoring table data", "MiB"), ("building indexes and constraints", "/s"), ("verifying", "rows")]
    {
        let lines = meter_lines(&log, step);
        assert!(!lines.is_empty(), "progress while {step}:\n{log}");
        assert!(lines.iter().all(|l| l.contains(" of ") && l.contains(unit) && l.contains("/s")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("ETA")), "{lines:?}");
    }
    assert!(log.contains("with maintenance_work_mem=256MB\n"), "{log}");
    // The archive is indexed while it downloads: no pass of its own.
    assert!(log.contains("archive indexed: data offsets for"), "{log}");
    // The default interval keeps a short step's log to its step lines.
    let quiet = operator(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "third"]);
    assert_exit(&quiet, 0);
    assert!(meter_lines(&stderr(&quiet), "dumping and uploading").is_empty(), "{}", stderr(&quiet));
}

/// A table of the test's own: identity, stored generated columns, values
/// COPY must escape (tabs, newlines, backslashes, COPY's own end marker on a
/// line of its own), a foreign key onto it; row security on audit_log and a
/// materialized view over it (refreshed only once all of it is in).
const LEDGER: &str = r#"
CREATE TABLE "Odd Schema"."Big Ledger" (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body    text NOT NULL,
    words   tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    doubled bigint GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO "Odd Schema"."Big Ledger" (body)
    SELECT format(E'entry %s\n\\.\nwith\ttab, back\\slash and ünïcode %s', i, repeat(md5(i::text), 10))
    FROM generate_series(1, 50000) AS i;
CREATE TABLE "Odd Schema".ledger_refs (ledger_id bigint NOT NULL REFERENCES "Odd Schema"."Big Ledger" (id));
INSERT INTO "Odd Schema".ledger_refs SELECT id FROM "Odd Schema"."Big Ledger" WHERE id % 100 = 0;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY one_tenant ON audit_log USING (tenant_id::text = current_setting('app.tenant', true));
INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id, details)
    SELECT (SELECT tenant_id FROM tenants LIMIT 1), 'user-' || i, 'package.publish', 'package', md5(i::text),
           jsonb_build_object('note', E'tab\there\nnewline', 'n', i, 'pad', repeat(md5(i::text), 4))
    FROM generate_series(1, 40000) AS i;
CREATE MATERIALIZED VIEW public.audit_per_action AS SELECT action, count(*) AS n FROM audit_log GROUP BY action;
"#;

#[tokio::test]
async fn the_largest_tables_copied_through_several_sessions_restore_exactly_and_go_on_counting() {
    let source = seeded_source().await;
    let pool = source.pool().await;
    sqlx::raw_sql(LEDGER).execute(&pool).await.unwrap();
    let (_store_dir, store) = file_store();
    let out = operator(&[
        "backup",
        "--source",
        source.url.expose(),
        "--store",
        &store,
        "--name",
        "split",
        "--verify",
        "checksums",
    ]);
    assert_exit(&out, 0);

    let target = scratch_url("AF_TEST_PG_TARGET_URL");
    let restore = |split: &str| {
        operator(&[
            "restore",
            "--store",
            &store,
            "--backup",
            "split",
            "--target",
            &target,
            "--jobs",
            "2",
            "--verify",
            "checksums",
            "--split-tables-above",
            split,
        ])
    };
    let out = restore("1");
    assert_exit(&out, 0);
    let (log, report) = (stderr(&out), String::from_utf8_lossy(&out.stdout).to_string());
    for table in [r#"public.audit_log"#, r#"Odd Schema.Big Ledger"#] {
        assert!(log.contains(&format!("copying {table} (")) && log.contains("through 2 sessions"), "{table}: {log}");
    }
    assert!(report.contains("copied by 2 sessions") && report.contains("every table matches"), "{report}");

    // Everything built on the data is there, as on the source.
    let restored = PgPool::connect(&target).await.unwrap();
    let shape = "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')),
                        (SELECT count(*) FROM pg_constraint WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)),
                        (SELECT count(*) FROM pg_policy), (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)";
    let of = |pool| async move { sqlx::query_as::<_, (i64, i64, i64, i64)>(shape).fetch_one(pool).await.unwrap() };
    assert_eq!(of(&restored).await, of(&pool).await, "indexes, constraints, policies, triggers");
    // Generated columns computed again; identities go on after the source's last value.
    let wrong: i64 = sqlx::query_scalar(
        r#"SELECT count(*) FROM "Odd Schema"."Big Ledger"
           WHERE words IS DISTINCT FROM to_tsvector('simple', body) OR doubled IS DISTINCT FROM id * 2"#,
    )
    .fetch_one(&restored)
    .await
    .unwrap();
    assert_eq!(wrong, 0);
    let per_action = "SELECT sum(n)::bigint FROM audit_per_action";
    let summed = |pool| async move { sqlx::query_scalar::<_, i64>(per_action).fetch_one(pool).await.unwrap() };
    assert_eq!(summed(&restored).await, summed(&pool).await, "the view was refreshed over the whole table");
    for (table, column, insert) in [
        (
            "audit_log",
            "audit_id",
            "INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id)
             SELECT tenant_id, 'after', 'restore', 'x', 'y' FROM tenants LIMIT 1 RETURNING audit_id",
        ),
        (
            r#""Odd Schema"."Big Ledger""#,
            "id",
            r#"INSERT INTO "Odd Schema"."Big Ledger" (body) VALUES ('after') RETURNING id"#,
        ),
    ] {
        let last: i64 =
            sqlx::query_scalar(&format!("SELECT max({column}) FROM {table}")).fetch_one(&pool).await.unwrap();
        let next: i64 = sqlx::query_scalar(insert).fetch_one(&restored).await.unwrap();
        assert!(next > last, "{table}: a new row got {next}, the source's last is {last}");
    }
    restored.close().await;

    // Turned off, pg_restore copies every table itself, and the result is the same.
    let out = restore("0");
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("through 2 sessions"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("every table matches"));
}
