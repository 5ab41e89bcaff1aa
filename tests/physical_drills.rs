//! Physical drills as installations need them, against real servers:
//! - a source that fails over while its WAL is archived, as under Patroni,
//!   CloudNativePG or pg_auto_failover: its standby is promoted to timeline 2
//!   and takes over its address. The archiver follows onto the new timeline
//!   (its history file archived), drills from the base taken before the
//!   switch restore exactly the rows committed before a target on either side
//!   of it, and a base taken after the switch restores too;
//! - an Artifortress database with its blobs: the physical drill checks every
//!   blob row of the restored database against the bucket and reports it, as
//!   a logical drill does.

mod support;

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use support::physical::*;
use support::{ExtraPostgres, assert_exit, env, file_store, operator, s3_client, s3_store_url, unique_name};

/// Commits rows `ids` one by one, 30 ms apart, each timed by the client's clock.
async fn commit(source: &PgPool, ids: std::ops::RangeInclusive<i32>) -> Vec<Commit> {
    let mut commits = Vec::new();
    for id in ids {
        let sent = Utc::now();
        sqlx::query("INSERT INTO ledger (id, note) VALUES ($1, 'row')").bind(id).execute(source).await.unwrap();
        commits.push(Commit { id, sent, returned: Utc::now() });
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    commits
}

/// A time strictly between commit `i` and the next one.
fn between(commits: &[Commit], i: usize) -> chrono::DateTime<Utc> {
    let (before, after) = (commits[i], commits[i + 1]);
    assert!(before.returned < after.sent);
    before.returned + (after.sent - before.returned) / 2
}

#[tokio::test]
async fn drills_follow_a_failover_to_either_side_of_the_switch() {
    let primary = ExtraPostgres::start();
    let source = pool(&primary.url).await;
    let system = system_identifier(&source).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    primary.standby();
    let (store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let (archiver, logs) = wal_archiver(&primary.url, &store, spool.path(), "af_failover", &["--heartbeat", "1s"]);
    await_slot(store_dir.path(), &system, "af_failover").await;
    base_backup(&primary.url, &store, "before-switch");
    let mut commits = commit(&source, 1..=40).await;
    source.close().await;

    primary.failover();
    let source = pool(&primary.url).await;
    let timeline: i32 =
        sqlx::query_scalar("SELECT timeline_id FROM pg_control_checkpoint()").fetch_one(&source).await.unwrap();
    assert_eq!(timeline, 2, "the promoted standby is on a new timeline");
    commits.extend(commit(&source, 41..=80).await);
    // The archiver follows: timeline 2's history file is archived, and its
    // growing segment reaches past the last commit.
    let history = store_dir.path().join(format!("_wal/{system}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let names: Vec<String> = std::fs::read_dir(&history)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let status: serde_json::Value =
            serde_json::from_slice(&std::fs::read(history.join("status.json")).unwrap_or_default()).unwrap_or_default();
        let archived_beat =
            status["archivedHeartbeatAt"].as_str().and_then(|t| t.parse::<chrono::DateTime<Utc>>().ok());
        if names.iter().any(|n| n.starts_with("00000002.history."))
            && archived_beat.is_some_and(|t| t > commits.last().unwrap().returned)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the archiver did not follow onto timeline 2 within 60 s: {names:?}\n{}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // From the base before the switch: a target before it, and one after it.
    let (counted, _) =
        drilled_rows(&store, &[], &["--backup", "before-switch", "--target", &between(&commits, 19).to_rfc3339()])
            .await;
    assert_eq!(counted, (20, Some(20)), "a target before the switch: the rows committed before it");
    let (counted, _) =
        drilled_rows(&store, &[], &["--backup", "before-switch", "--target", &between(&commits, 59).to_rfc3339()])
            .await;
    assert_eq!(counted, (60, Some(60)), "a target after the switch, through timeline 2");

    // A base taken on the new timeline restores too, to the latest point.
    base_backup(&primary.url, &store, "after-switch");
    commit(&source, 81..=85).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ((rows, _), _) = drilled_rows(&store, &[], &["--backup", "after-switch"]).await;
    assert!(rows >= 80, "the latest point of a base after the switch has every row before it: {rows}");
    terminate(&archiver);
    let _ = archiver.wait_with_output().await;
}

/// A migrated source seeded with its blobs' objects in `s3`'s new bucket
/// (`keys`: the blob bucket's own credentials, when not Garage's), archived
/// into a file store with one base backup, `base-1`, taken.
struct ArchivedSeed {
    pg: ExtraPostgres,
    source: PgPool,
    s3: aws_sdk_s3::Client,
    bucket: String,
    blob_store: String,
    store_dir: tempfile::TempDir,
    store: String,
    archiver: tokio::process::Child,
    _spool: tempfile::TempDir,
}

impl ArchivedSeed {
    async fn start(s3: aws_sdk_s3::Client, endpoint: &str, keys: &[(String, String)], versioned: bool) -> ArchivedSeed {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let pg = ExtraPostgres::start();
        assert_exit(&operator(&["migrate", "--database", &pg.url]), 0);
        let bucket = unique_name("pblobs");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        if versioned {
            let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
            s3.put_bucket_versioning().bucket(&bucket).versioning_configuration(enabled).send().await.unwrap();
        }
        let blob_store = s3_store_url(endpoint, &bucket, "");
        let seed = ["seed", "--database", &pg.url, "--scale", "small", "--blob-store", &blob_store];
        assert_exit(&support::operator_with_env(&seed, keys), 0);
        let source = pool(&pg.url).await;
        let system = system_identifier(&source).await;
        let (store_dir, store) = file_store();
        let spool = tempfile::tempdir().unwrap();
        let (archiver, _logs) = wal_archiver(&pg.url, &store, spool.path(), "af_blobs", &[]);
        await_slot(store_dir.path(), &system, "af_blobs").await;
        base_backup(&pg.url, &store, "base-1");
        // The growing segment holding the base's end is stored every second.
        tokio::time::sleep(Duration::from_secs(3)).await;
        ArchivedSeed { pg, source, s3, bucket, blob_store, store_dir, store, archiver, _spool: spool }
    }

    /// The key (and digest) of a blob an artifact entry references.
    async fn referenced_blob(&self) -> (String, String) {
        sqlx::query_as(
            "SELECT storage_key, digest::text FROM blobs b \
             WHERE EXISTS (SELECT 1 FROM artifact_entries e WHERE e.blob_digest = b.digest) ORDER BY storage_key LIMIT 1",
        )
        .fetch_one(&self.source)
        .await
        .unwrap()
    }

    async fn stop(self) {
        terminate(&self.archiver);
        let _ = self.archiver.wait_with_output().await;
        drop(self.pg);
    }
}

#[tokio::test]
async fn a_physical_drill_checks_the_blobs_and_reports_them_as_a_logical_drill_does() {
    let seeded = ArchivedSeed::start(s3_client().await, &env("AF_TEST_S3_ENDPOINT"), &[], false).await;
    let (store_dir, store, blob_store) = (&seeded.store_dir, &seeded.store, &seeded.blob_store);
    let dir = tempfile::tempdir().unwrap();
    let drill = |name: &str| {
        let args = ["--drill", name, "--blob-store", blob_store, "--verify-blob-digests"];
        pitr(store, &dir.path().join(name), free_port(), &args)
    };
    let verdict = |name: &str| -> serde_json::Value {
        let path = store_dir.path().join(format!("base-1/drills/{name}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };

    let out = drill("intact");
    assert_exit(&out, 0);
    let v = verdict("intact");
    let blobs = &v["blobs"];
    assert_eq!((blobs["referenced"].as_u64(), blobs["present"].as_u64()), (Some(2560), Some(2560)), "{v:#}");
    assert_eq!((blobs["sampled"].as_u64(), blobs["allDigestsVerified"].as_bool()), (Some(2560), Some(true)));
    let report = v["report"].as_str().expect("a report location");
    let report = std::fs::read_to_string(report.strip_prefix("file://").unwrap_or(report)).unwrap();
    assert!(report.contains("## Blobs") && report.contains("Physical drill:"), "{report}");

    // An object an artifact entry references, deleted from the bucket.
    let (lost, _) = seeded.referenced_blob().await;
    seeded.s3.delete_object().bucket(&seeded.bucket).key(&lost).send().await.unwrap();
    let out = drill("one-lost");
    assert_exit(&out, 1);
    let v = verdict("one-lost");
    assert_eq!((v["result"].as_str(), v["reason"].as_str()), (Some("Failed"), Some("BlobsMissing")), "{v:#}");
    assert_eq!(v["blobs"]["missing"], 1);
    assert!(v["failures"].to_string().contains(&lost), "{v:#}");
    seeded.stop().await;
}

/// A physical restore brings back, from the versions the blob bucket kept,
/// the objects its restored rows reference that were deleted since the base
/// (`pitr --keep --restore-blobs`, on Ceph RGW); a drill after that passes.
#[tokio::test]
async fn a_physical_restore_brings_deleted_blobs_back_from_the_buckets_versions() {
    let keys = vec![
        ("BLOB_AWS_ACCESS_KEY_ID".to_string(), env("AF_TEST_RGW_ACCESS_KEY_ID")),
        ("BLOB_AWS_SECRET_ACCESS_KEY".to_string(), env("AF_TEST_RGW_SECRET_ACCESS_KEY")),
    ];
    let seeded = ArchivedSeed::start(support::rgw_client().await, &env("AF_TEST_RGW_ENDPOINT"), &keys, true).await;
    let (store, blob_store) = (&seeded.store, &seeded.blob_store);
    // An object an artifact entry references, deleted since: a delete marker hides its bytes.
    let (key, digest) = seeded.referenced_blob().await;
    seeded.s3.delete_object().bucket(&seeded.bucket).key(&key).send().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("restored");
    let args = ["--keep", "--blob-store", blob_store, "--restore-blobs"];
    let out = support::physical::pitr_with_env(store, &instance, free_port(), &keys, &args);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), support::stderr(&out));
    assert_exit(&out, 0);
    assert!(said.contains("1 object(s) brought back") && said.contains("blob failures are mended"), "{said}");
    stop_instance(&instance).await;
    let back = seeded.s3.get_object().bucket(&seeded.bucket).key(&key).send().await.unwrap();
    let bytes = back.body.collect().await.unwrap().into_bytes();
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), digest, "exactly the row's bytes");

    let again = dir.path().join("again");
    let out = support::physical::pitr_with_env(store, &again, free_port(), &keys, &["--blob-store", blob_store]);
    assert_exit(&out, 0);
    seeded.stop().await;
}

#[tokio::test]
async fn a_source_role_without_replication_is_refused_naming_what_to_grant() {
    let pg = ExtraPostgres::start();
    let admin = pool(&pg.url).await;
    sqlx::query("CREATE ROLE app LOGIN PASSWORD 'app-pw' IN ROLE pg_read_all_data").execute(&admin).await.unwrap();
    let mut app = url::Url::parse(&pg.url).unwrap();
    app.set_username("app").unwrap();
    app.set_password(Some("app-pw")).unwrap();
    let (_store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let spool = spool.path().join("spool");
    for args in [
        vec!["base-backup", "--source", app.as_str(), "--store", &store, "--name", "b"],
        vec!["wal", "--source", app.as_str(), "--store", &store, "--spool", spool.to_str().unwrap()],
    ] {
        let out = operator(&args);
        let err = support::stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("the physical path (base backups, WAL archiving) is unavailable for this source: role app lacks the REPLICATION attribute (ALTER ROLE app REPLICATION")
                && err.contains("Logical backups (backup) need none of this"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("app-pw"), "no password in the error: {err}");
    }
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots").fetch_one(&admin).await.unwrap();
    assert_eq!(slots, 0, "nothing was created on the source");
}
