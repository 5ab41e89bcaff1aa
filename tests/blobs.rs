//! The blob check of a drill against a real S3 server (Garage): the restored
//! database's blob references must exist in the blob store with their size
//! (and, sampled, their SHA-256), whatever happened to the bucket since the
//! backup. Real PostgreSQL, objects really deleted, overwritten, resized.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;
use support::{TestDatabase, assert_exit, env, operator, s3_client, s3_store_url, unique_name, with_database};

/// A seeded installation database whose blobs are in a Garage bucket
/// (`blobs/` prefix), and a backup of it in a file store.
struct Installation {
    db: TestDatabase,
    bucket: String,
    s3: aws_sdk_s3::Client,
    blob_store: String,
    store_dir: tempfile::TempDir,
}

impl Installation {
    async fn new() -> Installation {
        let db = TestDatabase::migrated("blobs").await;
        let s3 = s3_client().await;
        let bucket = unique_name("blobs");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let blob_store = s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "blobs");
        let out = operator(&["seed", "--database", db.url.expose(), "--scale", "small", "--blob-store", &blob_store]);
        assert_exit(&out, 0);
        assert!(String::from_utf8_lossy(&out.stderr).contains("4500 blob objects written"));
        let store_dir = tempfile::tempdir().unwrap();
        let i = Installation { db, bucket, s3, blob_store, store_dir };
        assert_exit(&operator(&["backup", "--source", i.db.url.expose(), "--store", &i.store(), "--name", "b1"]), 0);
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
        let out = operator(&args);
        let verdict = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (verdict, out.status.code())
    }

    /// The key (under the bucket) of the `n`-th seeded blob, and its size.
    async fn blob(&self, n: i64) -> (String, i64) {
        let pool = self.db.pool().await;
        let (key, size): (String, i64) =
            sqlx::query_as("SELECT storage_key, size_bytes FROM blobs ORDER BY id OFFSET $1 LIMIT 1")
                .bind(n)
                .fetch_one(&pool)
                .await
                .unwrap();
        (format!("blobs/{key}"), size)
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(body)).send().await.unwrap();
    }
}

#[tokio::test]
async fn every_referenced_blob_present_passes_and_an_orphan_is_only_reported() {
    let i = Installation::new().await;
    i.put("blobs/nobody/references/this", b"stray".to_vec()).await;
    let (verdict, code) = i.drill(&["--blob-sample", "50"]);
    assert_eq!(code, Some(0), "{verdict:#}");
    let blobs = &verdict["blobs"];
    assert_eq!(blobs["referenced"], 4500);
    assert_eq!(blobs["present"], 4500);
    assert_eq!((blobs["missing"].as_u64(), blobs["sizeMismatches"].as_u64()), (Some(0), Some(0)));
    assert_eq!((blobs["sampled"].as_u64(), blobs["corrupt"].as_u64()), (Some(50), Some(0)));
    assert_eq!(blobs["orphans"], 1);
    assert_eq!(blobs["orphanKeys"], serde_json::json!(["nobody/references/this"]));
}

#[tokio::test]
async fn a_deleted_blob_fails_the_drill_naming_its_key() {
    let i = Installation::new().await;
    let (key, _) = i.blob(1234).await;
    i.s3.delete_object().bucket(&i.bucket).key(&key).send().await.unwrap();
    let (verdict, code) = i.drill(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(verdict["result"], "Failed");
    assert_eq!(verdict["reason"], "BlobsMissing");
    let stored_key = key.strip_prefix("blobs/").unwrap();
    assert_eq!(verdict["blobs"]["missing"], 1);
    assert_eq!(verdict["blobs"]["missingKeys"], serde_json::json!([stored_key]));
    let failures = verdict["failures"].to_string();
    assert!(failures.contains("1 of 4500 referenced blobs are missing") && failures.contains(stored_key), "{failures}");

    // With the Warn policy the same finding is a warning.
    let (verdict, code) = i.drill(&["--blob-policy", "warn"]);
    assert_eq!(code, Some(0), "{verdict:#}");
    assert!(verdict["warnings"].to_string().contains("missing"), "{verdict:#}");
}

#[tokio::test]
async fn other_bytes_of_the_same_size_are_corrupt_when_sampled_and_another_size_is_a_mismatch() {
    let i = Installation::new().await;
    let (key, size) = i.blob(77).await;
    i.put(&key, vec![b'x'; size as usize]).await;
    // Same size: only the content check can tell, and it samples every blob here.
    let (verdict, code) = i.drill(&[]);
    assert_eq!(code, Some(0), "unsampled, a same-size overwrite is not seen: {verdict:#}");
    let (verdict, code) = i.drill(&["--blob-sample", "100000"]);
    assert_eq!(code, Some(1));
    assert_eq!(verdict["reason"], "BlobCorrupt");
    assert_eq!((verdict["blobs"]["sampled"].as_u64(), verdict["blobs"]["corrupt"].as_u64()), (Some(4500), Some(1)));
    assert_eq!(verdict["blobs"]["corruptKeys"], serde_json::json!([key.strip_prefix("blobs/").unwrap()]));

    let (other, _) = i.blob(78).await;
    i.put(&other, b"shorter".to_vec()).await;
    let (verdict, code) = i.drill(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(verdict["reason"], "BlobCorrupt");
    assert_eq!(verdict["blobs"]["sizeMismatches"], 1);
    let mismatch = verdict["blobs"]["sizeMismatchKeys"][0].as_str().unwrap();
    assert!(
        mismatch.contains(other.strip_prefix("blobs/").unwrap()) && mismatch.contains("store 7 bytes"),
        "{mismatch}"
    );
}

#[tokio::test]
async fn a_database_without_a_blobs_table_is_not_checked() {
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
    assert_exit(&out, 0);
    let verdict: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(verdict["blobs"].is_null());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no blobs table"));
}
