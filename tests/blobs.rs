//! The blob check of a drill against a real S3 server (Garage), on the upstream
//! schema as the seed fills it: every blob row of the restored database must
//! have its object (keys from the bucket root) with its size and, hashed, its
//! SHA-256 (the bare hex digest); rows are classified by what references them,
//! objects without a row as in flight or leftovers, missing objects as deleted
//! since the restore point or missing live too. Objects really deleted,
//! overwritten, resized; GC really simulated on the live database.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use serde_json::Value;
use support::{
    TestDatabase, assert_exit, env, operator, operator_with_env, s3_client, s3_store_url, unique_name, with_database,
};

/// A seeded installation database whose objects are in a Garage bucket, and
/// a backup of it in a file store.
struct Installation {
    db: TestDatabase,
    bucket: String,
    s3: aws_sdk_s3::Client,
    blob_store: String,
    /// The blob bucket's own keys (BLOB_AWS_*), when not Garage's.
    blob_keys: Vec<(String, String)>,
    store_dir: tempfile::TempDir,
}

impl Installation {
    /// On Garage (no versioning).
    async fn new() -> Installation {
        Installation::on(s3_client().await, &env("AF_TEST_S3_ENDPOINT"), Vec::new()).await
    }

    /// On the Ceph object gateway, whose buckets can keep versions.
    async fn on_rgw() -> Installation {
        let keys = vec![
            ("BLOB_AWS_ACCESS_KEY_ID".to_string(), env("AF_TEST_RGW_ACCESS_KEY_ID")),
            ("BLOB_AWS_SECRET_ACCESS_KEY".to_string(), env("AF_TEST_RGW_SECRET_ACCESS_KEY")),
        ];
        Installation::on(support::rgw_client().await, &env("AF_TEST_RGW_ENDPOINT"), keys).await
    }

    async fn on(s3: aws_sdk_s3::Client, endpoint: &str, blob_keys: Vec<(String, String)>) -> Installation {
        let db = TestDatabase::migrated("blobs").await;
        let bucket = unique_name("blobs");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let blob_store = s3_store_url(endpoint, &bucket, "");
        let seed = ["seed", "--database", db.url.expose(), "--scale", "small", "--blob-store", &blob_store];
        let out = operator_with_env(&seed, &blob_keys);
        assert_exit(&out, 0);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("2590 blob objects written"),
            "{}",
            support::stderr(&out)
        );
        let store_dir = tempfile::tempdir().unwrap();
        let i = Installation { db, bucket, s3, blob_store, blob_keys, store_dir };
        let backup =
            ["backup", "--source", i.db.url.expose(), "--store", &i.store(), "--name", "b1", "--verify", "checksums"];
        assert_exit(&operator(&backup), 0);
        i
    }

    fn store(&self) -> String {
        format!("file://{}", self.store_dir.path().display())
    }

    /// A drill of the backup with the blob check; the verdict and the exit code.
    fn drill(&self, extra: &[&str]) -> (Value, Option<i32>) {
        let json = self.store_dir.path().join(format!("{}.json", unique_name("verdict")));
        let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("scratch").replace('-', "_"));
        let store = self.store();
        let mut args = vec![
            "drill",
            "--backup",
            "b1",
            "--store",
            &store,
            "--target",
            &target,
            "--blob-store",
            &self.blob_store,
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = operator_with_env(&args, &self.blob_keys);
        let verdict = serde_json::from_slice(&std::fs::read(&json).unwrap())
            .unwrap_or_else(|e| panic!("{e}: {}", support::stderr(&out)));
        (verdict, out.status.code())
    }

    /// The key, size and digest of a blob row of a class (`entries`, `manifests`,
    /// `committed`: only a committed upload references it, `none`).
    async fn blob(&self, class: &str) -> (String, i64, String) {
        let referenced = match class {
            "entries" => "EXISTS (SELECT 1 FROM artifact_entries e WHERE e.blob_digest = b.digest)",
            "manifests" => "EXISTS (SELECT 1 FROM manifests m WHERE m.manifest_blob_digest = b.digest)",
            "committed" => {
                "NOT EXISTS (SELECT 1 FROM artifact_entries e WHERE e.blob_digest = b.digest)
                 AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.manifest_blob_digest = b.digest)
                 AND EXISTS (SELECT 1 FROM upload_sessions u WHERE u.committed_blob_digest = b.digest)"
            }
            _ => {
                "NOT EXISTS (SELECT 1 FROM artifact_entries e WHERE e.blob_digest = b.digest)
                 AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.manifest_blob_digest = b.digest)
                 AND NOT EXISTS (SELECT 1 FROM upload_sessions u WHERE u.committed_blob_digest = b.digest)"
            }
        };
        sqlx::query_as(&format!(
            "SELECT storage_key, length_bytes, digest::text FROM blobs b WHERE {referenced} ORDER BY storage_key LIMIT 1"
        ))
        .fetch_one(&self.db.pool().await)
        .await
        .unwrap()
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(body)).send().await.unwrap();
    }

    async fn delete(&self, key: &str) {
        self.s3.delete_object().bucket(&self.bucket).key(key).send().await.unwrap();
    }

    /// What upstream's garbage collection does to a blob after the backup:
    /// the manifest referencing it lets go, its row and then its object are deleted.
    async fn collect(&self, key: &str, digest: &str) {
        sqlx::raw_sql(&format!(
            "UPDATE manifests SET manifest_blob_digest = NULL WHERE manifest_blob_digest = '{digest}';
             DELETE FROM blobs WHERE digest = '{digest}';"
        ))
        .execute(&self.db.pool().await)
        .await
        .unwrap();
        self.delete(key).await;
    }

    async fn versioning(&self, status: BucketVersioningStatus) {
        let config = VersioningConfiguration::builder().status(status).build();
        self.s3.put_bucket_versioning().bucket(&self.bucket).versioning_configuration(config).send().await.unwrap();
    }

    /// `restore` of the backup into a new scratch database with the blob bucket and more flags.
    fn restore(&self, extra: &[&str]) -> std::process::Output {
        let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("restored").replace('-', "_"));
        let store = self.store();
        let mut args =
            vec!["restore", "--backup", "b1", "--store", &store, "--target", &target, "--blob-store", &self.blob_store];
        args.extend_from_slice(extra);
        operator_with_env(&args, &self.blob_keys)
    }
}

#[tokio::test]
async fn a_checksum_drill_passes_and_objects_without_a_row_are_reported_not_failed() {
    let i = Installation::new().await;
    // An upload in progress: a multipart upload started, one part sent, never completed.
    let started =
        i.s3.create_multipart_upload().bucket(&i.bucket).key("staging/t/repo/in-progress").send().await.unwrap();
    i.s3.upload_part()
        .bucket(&i.bucket)
        .key("staging/t/repo/in-progress")
        .upload_id(started.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(vec![b'p'; 1024]))
        .send()
        .await
        .unwrap();
    let (verdict, code) = i.drill(&["--verify", "checksums", "--verify-blob-digests"]);
    assert_eq!(code, Some(0), "{verdict:#}");
    assert!(
        verdict["parity"].as_array().unwrap().iter().all(|p| p["match"] == true && p["expectedChecksum"].is_string())
    );
    assert_eq!(verdict["parity"].as_array().unwrap().len(), 30, "every table of the upstream schema");
    let blobs = &verdict["blobs"];
    assert_eq!((blobs["referenced"].as_u64(), blobs["present"].as_u64()), (Some(2560), Some(2560)));
    assert_eq!((blobs["missing"].as_u64(), blobs["sizeMismatches"].as_u64()), (Some(0), Some(0)));
    assert_eq!((blobs["sampled"].as_u64(), blobs["allDigestsVerified"].as_bool()), (Some(2560), Some(true)));
    assert_eq!(blobs["rowClasses"], serde_json::json!({"referenced": 2500, "committedOnly": 20, "unreferenced": 40}));
    // 20 duplicate uploads and 8 aborted ones left objects; 2 uploads wait for their commit.
    let without = &blobs["withoutRow"];
    assert_eq!((without["leftovers"].as_u64(), without["inFlight"].as_u64()), (Some(28), Some(2)), "{blobs:#}");
    assert_eq!(blobs["multipartInProgress"], 1);
    assert!(verdict["failures"].as_array().is_none_or(|f| f.is_empty()), "{verdict:#}");
}

#[tokio::test]
async fn a_deleted_blob_fails_the_drill_naming_its_key_and_whether_it_went_since_the_restore_point() {
    let i = Installation::new().await;
    let pool = i.db.pool().await;
    // Missing for the live installation too: its row still references it.
    let (lost, _, _) = i.blob("entries").await;
    i.delete(&lost).await;
    // Deleted since the restore point: a GC of the live database removed the
    // manifest referencing it, then its row and its object.
    let (collected, _, digest) = i.blob("manifests").await;
    sqlx::raw_sql(&format!(
        "UPDATE manifests SET manifest_blob_digest = NULL WHERE manifest_blob_digest = '{digest}';
         DELETE FROM blobs WHERE digest = '{digest}';"
    ))
    .execute(&pool)
    .await
    .unwrap();
    i.delete(&collected).await;
    // Unreferenced and committed-only rows whose objects are gone.
    let (unreferenced, _, _) = i.blob("none").await;
    i.delete(&unreferenced).await;
    let (committed, _, _) = i.blob("committed").await;
    i.delete(&committed).await;

    let (verdict, code) = i.drill(&["--live", i.db.url.expose()]);
    assert_eq!(code, Some(1), "{verdict:#}");
    assert_eq!((verdict["result"].as_str(), verdict["reason"].as_str()), (Some("Failed"), Some("BlobsMissing")));
    let blobs = &verdict["blobs"];
    assert_eq!(blobs["missing"], 4);
    assert_eq!(blobs["missingClasses"], serde_json::json!({"referenced": 2, "committedOnly": 1, "unreferenced": 1}));
    // The committed-only row is still referenced live (through its upload) too.
    assert_eq!(blobs["missingSince"]["deletedSinceSnapshot"], 1, "{blobs:#}");
    assert_eq!(blobs["missingSince"]["missingLive"], 2);
    let live_keys = blobs["missingSince"]["missingLiveKeys"].to_string();
    assert!(
        live_keys.contains(&lost) && live_keys.contains(&committed) && !live_keys.contains(&collected),
        "{live_keys}"
    );
    let failures = verdict["failures"].to_string();
    assert!(
        failures.contains("2 objects of blobs that artifact entries or manifests reference are missing"),
        "{failures}"
    );
    assert!(failures.contains(&lost) && failures.contains(&collected), "{failures}");
    assert!(!failures.contains(&unreferenced), "an unreferenced blob GC may delete is no failure: {failures}");
    assert!(verdict["warnings"].to_string().contains("only a committed upload references"), "{verdict:#}");

    // With the Warn policy the same finding is a warning.
    let (verdict, code) = i.drill(&["--blob-policy", "warn"]);
    assert_eq!(code, Some(0), "{verdict:#}");
    assert!(verdict["warnings"].to_string().contains("are missing"), "{verdict:#}");
    assert_eq!(verdict["blobs"]["missingSince"]["unknown"], 3, "not compared without a live database");
}

#[tokio::test]
async fn other_bytes_of_the_same_size_are_corrupt_when_hashed_and_another_size_is_a_mismatch() {
    let i = Installation::new().await;
    let (key, size, _) = i.blob("entries").await;
    i.put(&key, vec![b'x'; size as usize]).await;
    // Same size: only hashing can tell; the default sample of 100 of 2 520 may miss it.
    let (verdict, code) = i.drill(&["--verify-blob-digests"]);
    assert_eq!(code, Some(1), "{verdict:#}");
    assert_eq!(verdict["reason"], "BlobCorrupt");
    assert_eq!((verdict["blobs"]["sampled"].as_u64(), verdict["blobs"]["corrupt"].as_u64()), (Some(2560), Some(1)));
    assert_eq!(verdict["blobs"]["corruptKeys"], serde_json::json!([key]));

    let (other, _, _) = i.blob("manifests").await;
    i.put(&other, b"shorter".to_vec()).await;
    let (verdict, code) = i.drill(&["--blob-sample", "0"]);
    assert_eq!(code, Some(1));
    assert_eq!(verdict["reason"], "BlobCorrupt");
    assert_eq!(verdict["blobs"]["sizeMismatches"], 1);
    let mismatch = verdict["blobs"]["sizeMismatchKeys"][0].as_str().unwrap();
    assert!(mismatch.contains(&other) && mismatch.contains("store 7 bytes"), "{mismatch}");
}

#[tokio::test]
async fn blob_rows_that_cannot_be_read_fail_the_check_never_skip_it() {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "noblobs").await;
    sqlx::raw_sql("CREATE TABLE t AS SELECT 1 AS x").execute(&db.pool().await).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("scratch").replace('-', "_"));
    let out = operator(&[
        "drill",
        "--source",
        db.url.expose(),
        "--store",
        &format!("file://{}", dir.path().join("store").display()),
        "--target",
        &target,
        "--blob-store",
        &format!("file://{}", dir.path().join("blobs").display()),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_exit(&out, 1);
    let verdict: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(verdict["reason"], "BlobsUnreadable", "{verdict:#}");
    let failures = verdict["failures"].to_string();
    assert!(failures.contains("cannot be checked") && failures.contains("not an Artifortress database"), "{failures}");
}

#[tokio::test]
async fn a_blob_collected_after_the_backup_comes_back_from_its_kept_version_and_one_deleted_unversioned_is_lost() {
    // Seeded while the bucket kept no versions; versioning turned on later,
    // as on a live installation that turns it on one day.
    let i = Installation::on_rgw().await;
    i.versioning(BucketVersioningStatus::Enabled).await;
    // After the backup, a GC deletes a blob its manifest no longer needs:
    // on a versioned bucket a delete marker now hides its bytes.
    let (collected, length, digest) = i.blob("manifests").await;
    i.collect(&collected, &digest).await;
    // An unreferenced blob collected too: nothing references it, nothing brings it back.
    let (unreferenced, _, _) = i.blob("none").await;
    i.delete(&unreferenced).await;

    let (verdict, code) = i.drill(&[]);
    assert_eq!((code, verdict["reason"].as_str()), (Some(1), Some("BlobsMissing")), "{verdict:#}");
    let found = &verdict["blobs"]["fromVersions"];
    assert_eq!((found["recoverable"].as_u64(), found["lost"].as_u64()), (Some(1), Some(0)), "{verdict:#}");
    assert!(found["recoverableKeys"].to_string().contains(&collected), "{found}");
    assert_eq!(found["broughtBack"], serde_json::Value::Null, "a drill only reports");
    assert!(verdict["failures"].to_string().contains("restore --restore-blobs brings"), "{verdict:#}");
    assert!(i.s3.head_object().bucket(&i.bucket).key(&collected).send().await.is_err(), "a drill writes nothing");

    // Keys that may not list versions: the drill still finds the object
    // missing, and says the lookup could not be made instead of failing on it.
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":{{"AWS":["*"]}},"Action":["s3:ListBucketVersions"],"Resource":["arn:aws:s3:::{}"]}}]}}"#,
        i.bucket
    );
    i.s3.put_bucket_policy().bucket(&i.bucket).policy(deny).send().await.unwrap();
    let (verdict, code) = i.drill(&[]);
    i.s3.delete_bucket_policy().bucket(&i.bucket).send().await.unwrap();
    assert_eq!((code, verdict["reason"].as_str()), (Some(1), Some("BlobsMissing")), "{verdict:#}");
    let found = &verdict["blobs"]["fromVersions"];
    assert!(found["unreadable"].is_string() && found["notExamined"].as_u64() == Some(1), "{verdict:#}");
    assert!(verdict["warnings"].to_string().contains("s3:ListBucketVersions"), "{verdict:#}");

    let out = i.restore(&["--restore-blobs"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 object(s) brought back"), "{stdout}");
    let back = i.s3.get_object().bucket(&i.bucket).key(&collected).send().await.unwrap();
    let bytes = back.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len() as i64, length);
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), digest, "exactly the row's bytes");
    assert!(
        i.s3.head_object().bucket(&i.bucket).key(&unreferenced).send().await.is_err(),
        "an object no restored row references is not brought back"
    );
    let (verdict, code) = i.drill(&[]);
    assert_eq!(code, Some(0), "after --restore-blobs the drill passes: {verdict:#}");

    // Deleted while versioning was suspended: the delete replaced the only
    // (unversioned) copy. Lost; --restore-blobs writes nothing and says so.
    i.versioning(BucketVersioningStatus::Suspended).await;
    let (gone, _, _) = i.blob("entries").await;
    i.delete(&gone).await;
    let (verdict, code) = i.drill(&[]);
    assert_eq!(code, Some(1));
    let found = &verdict["blobs"]["fromVersions"];
    assert_eq!((found["recoverable"].as_u64(), found["lost"].as_u64()), (Some(0), Some(1)), "{verdict:#}");
    assert!(found["lostKeys"].to_string().contains(&gone), "{found}");
    let out = i.restore(&["--restore-blobs"]);
    assert_exit(&out, 1);
    let stderr = support::stderr(&out);
    assert!(stderr.contains("1 lost") && stderr.contains(&gone), "{stderr}");
}

#[tokio::test]
async fn restore_blobs_on_a_bucket_without_versions_is_refused_with_the_reason() {
    let i = Installation::new().await;
    let out = i.restore(&["--restore-blobs"]);
    assert_exit(&out, 1);
    assert!(support::stderr(&out).contains("keeps no versions"), "{}", support::stderr(&out));
}
