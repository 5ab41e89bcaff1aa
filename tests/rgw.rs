//! The Ceph object gateway of the test environment (hack/rgw.sh): what Garage
//! lacks — bucket versioning and S3 Object Lock — as the operator's store
//! sees it, and backups written to and restored from it.

mod support;

use artifortress_operator::store::{self, StaticCredentials, Versioning};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockLegalHoldStatus, VersioningConfiguration,
};
use support::{TestDatabase, assert_exit, env, operator, operator_with_env, unique_name, with_database};

async fn rgw() -> aws_sdk_s3::Client {
    support::rgw_client().await
}

fn store_url(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={}&region=us-east-1&path_style=true", env("AF_TEST_RGW_ENDPOINT"))
}

fn rgw_env() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), env("AF_TEST_RGW_ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY".into(), env("AF_TEST_RGW_SECRET_ACCESS_KEY")),
    ]
}

async fn our_store(bucket: &str) -> Box<dyn store::BackupStore> {
    let credentials = StaticCredentials {
        access_key_id: env("AF_TEST_RGW_ACCESS_KEY_ID"),
        secret_access_key: env("AF_TEST_RGW_SECRET_ACCESS_KEY"),
    };
    store::open_with_credentials(&store_url(bucket, ""), Some(credentials)).await.unwrap()
}

#[tokio::test]
async fn the_store_tells_versioning_and_object_lock_apart_as_the_gateway_has_them() {
    let s3 = rgw().await;
    let plain = unique_name("plain");
    s3.create_bucket().bucket(&plain).send().await.unwrap();
    assert!(matches!(our_store(&plain).await.versioning().await.unwrap(), Versioning::Off { suspended: false }));

    let versioned = unique_name("versioned");
    s3.create_bucket().bucket(&versioned).send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket(&versioned).versioning_configuration(enabled).send().await.unwrap();
    let store = our_store(&versioned).await;
    assert!(matches!(store.versioning().await.unwrap(), Versioning::Enabled { object_lock: false }));
    assert_eq!(store.noncurrent_version_expiry().await.unwrap(), None);
    let rule = LifecycleRule::builder()
        .id("old-versions")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(30).build())
        .build()
        .unwrap();
    let lifecycle = BucketLifecycleConfiguration::builder().rules(rule).build().unwrap();
    s3.put_bucket_lifecycle_configuration().bucket(&versioned).lifecycle_configuration(lifecycle).send().await.unwrap();
    assert_eq!(store.noncurrent_version_expiry().await.unwrap(), Some(30));

    let locked = unique_name("locked");
    s3.create_bucket().bucket(&locked).object_lock_enabled_for_bucket(true).send().await.unwrap();
    assert!(matches!(our_store(&locked).await.versioning().await.unwrap(), Versioning::Enabled { object_lock: true }));
    // What Object Lock is for, as the gateway enforces it: a version under
    // legal hold is not deleted, whoever asks.
    let put = s3.put_object().bucket(&locked).key("held").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let version = put.version_id().unwrap().to_string();
    let hold = aws_sdk_s3::types::ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();
    s3.put_object_legal_hold().bucket(&locked).key("held").legal_hold(hold).send().await.unwrap();
    assert!(s3.delete_object().bucket(&locked).key("held").version_id(&version).send().await.is_err());
    let off = aws_sdk_s3::types::ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build();
    s3.put_object_legal_hold().bucket(&locked).key("held").legal_hold(off).send().await.unwrap();
}

#[tokio::test]
async fn an_encrypted_backup_goes_through_the_gateway_and_drills() {
    let source = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "rgwsrc").await;
    assert_exit(&operator(&["migrate", "--database", source.url.expose()]), 0);
    assert_exit(&operator(&["seed", "--database", source.url.expose(), "--scale", "small"]), 0);
    let s3 = rgw().await;
    let bucket = unique_name("rgwbk");
    s3.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(true).send().await.unwrap();
    let store = store_url(&bucket, "af");
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("key.txt");
    assert!(std::process::Command::new("age-keygen").arg("-o").arg(&identity).output().unwrap().status.success());
    let recipient = std::process::Command::new("age-keygen").arg("-y").arg(&identity).output().unwrap();
    let recipient = String::from_utf8(recipient.stdout).unwrap().trim().to_string();
    let out = operator_with_env(
        &["backup", "--source", source.url.expose(), "--store", &store, "--name", "b1", "--encrypt-to", &recipient],
        &rgw_env(),
    );
    assert_exit(&out, 0);
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("rgwscratch").replace('-', "_"));
    let out = operator_with_env(
        &["drill", "--backup", "b1", "--store", &store, "--target", &target, "--identity", identity.to_str().unwrap()],
        &rgw_env(),
    );
    assert_exit(&out, 0);
}

#[tokio::test]
async fn a_locked_backup_resists_the_operators_own_keys_and_a_bucket_without_lock_is_refused() {
    let source = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "rgwlock").await;
    assert_exit(&operator(&["migrate", "--database", source.url.expose()]), 0);
    assert_exit(&operator(&["seed", "--database", source.url.expose(), "--scale", "small"]), 0);
    let s3 = rgw().await;
    let locked = unique_name("rgwlocked");
    s3.create_bucket().bucket(&locked).object_lock_enabled_for_bucket(true).send().await.unwrap();
    let store = format!("{}&object_lock=compliance&retain=1d", store_url(&locked, "af"));
    let out =
        operator_with_env(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "b1"], &rgw_env());
    assert_exit(&out, 0);

    // Every object of the backup is a version locked in compliance mode for a day.
    let versions = s3.list_object_versions().bucket(&locked).prefix("af/b1/").send().await.unwrap();
    let written: Vec<(String, String)> = versions
        .versions()
        .iter()
        .map(|v| (v.key().unwrap().to_string(), v.version_id().unwrap().to_string()))
        .collect();
    assert_eq!(written.len(), 2, "{written:?}");
    let in_a_day = chrono::Utc::now() + chrono::Duration::hours(23);
    for (key, version) in &written {
        let retention = s3.get_object_retention().bucket(&locked).key(key).version_id(version).send().await.unwrap();
        let retention = retention.retention().unwrap();
        assert_eq!(retention.mode().map(|m| m.as_str()), Some("COMPLIANCE"), "{key}");
        let until = retention.retain_until_date().unwrap().secs();
        assert!(until > in_a_day.timestamp(), "{key} retained until {until}");
        // The operator's own keys cannot delete it.
        let deleted = s3.delete_object().bucket(&locked).key(key).version_id(version).send().await;
        assert!(deleted.is_err(), "{key} version {version} was deleted");
    }
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("rgwlock").replace('-', "_"));
    let out = operator_with_env(&["drill", "--backup", "b1", "--store", &store, "--target", &target], &rgw_env());
    assert_exit(&out, 0);

    // The manifest pins the dump's version. Anyone with the operator's keys
    // can still put a newer version over the key: the drill restores the
    // pinned one and says what happened; then the same after a delete marker.
    let manifest = s3.get_object().bucket(&locked).key("af/b1/manifest.json").send().await.unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest.body.collect().await.unwrap().into_bytes()).unwrap();
    let pinned = manifest["dump"]["versionId"].as_str().expect("the dump's version in the manifest").to_string();
    assert!(written.iter().any(|(key, version)| key == "af/b1/dump" && *version == pinned), "{written:?}");
    let forged = s3.put_object().bucket(&locked).key("af/b1/dump").body(ByteStream::from_static(b"forged"));
    let forged = forged.send().await.unwrap().version_id().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("verdict.json");
    let drill = |extra: &[&str]| {
        let args =
            ["drill", "--backup", "b1", "--store", &store, "--target", &target, "--json", json.to_str().unwrap()];
        let out = operator_with_env(&[&args[..], extra].concat(), &rgw_env());
        let verdict: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (out, verdict)
    };
    let (out, verdict) = drill(&[]);
    assert_exit(&out, 0);
    let warnings = verdict["warnings"].to_string();
    assert!(warnings.contains("overwritten") && warnings.contains(&forged) && warnings.contains(&pinned), "{warnings}");
    s3.delete_object().bucket(&locked).key("af/b1/dump").send().await.unwrap();
    let (out, verdict) = drill(&[]);
    assert_exit(&out, 0);
    assert!(verdict["warnings"].to_string().contains("delete marker"), "{verdict:#}");

    // The manifest itself written over, pointing at the forged dump: a drill
    // given the manifest's pinned version (a Backup's status.manifestVersionId)
    // restores the real backup and reports both as tampering; one reading
    // the current manifest follows the forgery and fails on its bytes.
    let (_, original) = written.iter().find(|(key, _)| key == "af/b1/manifest.json").unwrap();
    let mut forged_manifest = manifest.clone();
    forged_manifest["dump"]["versionId"] = serde_json::json!(forged);
    let body = ByteStream::from(serde_json::to_vec(&forged_manifest).unwrap());
    s3.put_object().bucket(&locked).key("af/b1/manifest.json").body(body).send().await.unwrap();
    let (out, verdict) = drill(&["--manifest-version", original]);
    assert_exit(&out, 0);
    let tampering = verdict["tampering"].to_string();
    assert!(tampering.contains("manifest") && tampering.contains(original.as_str()), "{verdict:#}");
    assert!(tampering.contains("dump") && tampering.contains("delete marker"), "{verdict:#}");
    let (out, _) = drill(&[]);
    assert_exit(&out, 1);

    // Deleting it, even forced, is refused while the lock runs: nothing is attempted.
    let out = operator_with_env(&["backups", "delete", "--store", &store, "b1", "--force"], &rgw_env());
    assert_exit(&out, 2);
    assert!(support::stderr(&out).contains("locked (S3 Object Lock)"), "{}", support::stderr(&out));
    let listed = s3.list_objects_v2().bucket(&locked).prefix("af/b1/manifest.json").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1, "the manifest was hidden");

    // A store asked to lock on a bucket that cannot: refused before anything is written.
    let plain = unique_name("rgwplain");
    s3.create_bucket().bucket(&plain).send().await.unwrap();
    let store = format!("{}&object_lock=compliance&retain=1d", store_url(&plain, "af"));
    let out =
        operator_with_env(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "b1"], &rgw_env());
    assert_exit(&out, 2);
    assert!(support::stderr(&out).contains("does not have it"), "{}", support::stderr(&out));
    let listed = s3.list_objects_v2().bucket(&plain).send().await.unwrap();
    assert!(listed.contents().is_empty(), "something was written: {:?}", listed.contents());
}

#[tokio::test]
async fn a_backup_is_deleted_once_its_lock_expired_and_not_before() {
    let source = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "rgwexp").await;
    assert_exit(&operator(&["migrate", "--database", source.url.expose()]), 0);
    let s3 = rgw().await;
    let bucket = unique_name("rgwexp");
    s3.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(true).send().await.unwrap();
    let store = format!("{}&object_lock=governance&retain=4s", store_url(&bucket, "af"));
    for name in ["older", "newer"] {
        let out = operator_with_env(
            &["backup", "--source", source.url.expose(), "--store", &store, "--name", name],
            &rgw_env(),
        );
        assert_exit(&out, 0);
    }
    let delete = || operator_with_env(&["backups", "delete", "--store", &store, "older"], &rgw_env());
    let out = delete();
    assert_exit(&out, 2);
    assert!(support::stderr(&out).contains("locked (S3 Object Lock)"), "{}", support::stderr(&out));
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_exit(&delete(), 0);
    let listed = s3.list_objects_v2().bucket(&bucket).prefix("af/older/").send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

/// The completed WAL segments of `system` in the bucket, by name.
async fn wal_segments(s3: &aws_sdk_s3::Client, bucket: &str, system: &str) -> Vec<String> {
    let prefix = format!("af/_wal/{system}/");
    let listed = s3.list_objects_v2().bucket(bucket).prefix(&prefix).send().await.unwrap();
    let mut names: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key()?.strip_prefix(&prefix))
        .filter(|n| n.len() > 24 && n[..24].chars().all(|c| c.is_ascii_hexdigit()) && !n.contains(".partial"))
        .map(|n| n[..24].to_string())
        .collect();
    names.sort();
    names
}

/// The WAL archiver of `pg_url` into `store` (on the gateway) through `slot`,
/// once it has recorded its slot in `bucket` (it then streams); with its
/// spool, which must outlive it.
async fn archiver_on_rgw(
    pg_url: &str,
    store: &str,
    slot: &str,
    bucket: &str,
    system: &str,
) -> (tokio::process::Child, std::sync::Arc<std::sync::Mutex<String>>, tempfile::TempDir) {
    let spool = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(support::operator_bin());
    command
        .args(["wal", "--source", pg_url, "--store", store, "--slot", slot, "--spool"])
        .arg(spool.path())
        .args(["--partial-every", "1s", "--status-every", "2s"])
        .envs(rgw_env());
    let (archiver, logs) = support::spawn_with_logs(&mut command);
    let record = format!("af/_wal/{system}/slot-{slot}.json");
    let s3 = rgw().await;
    for _ in 0..300 {
        if s3.head_object().bucket(bucket).key(&record).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    (archiver, logs, spool)
}

/// WAL retention never hides a segment still under Object Lock behind a
/// delete marker: segments no base needs are counted as locked, with the date,
/// and stay current objects; a pruning after that date deletes them.
#[tokio::test]
async fn wal_retention_leaves_locked_segments_until_their_lock_ends() {
    use support::physical::{pool, system_identifier, terminate};
    let pg = support::ExtraPostgres::start();
    let source = pool(&pg.url).await;
    let system = system_identifier(&source).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    let s3 = rgw().await;
    let bucket = unique_name("rgwwal");
    s3.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(true).send().await.unwrap();
    // Segments stay locked for a while; base backups (another URL to the same
    // place) only for a second, so they can be deleted at once.
    let wal_store = format!("{}&object_lock=governance&retain=40s", store_url(&bucket, "af"));
    let base_store = format!("{}&object_lock=governance&retain=1s", store_url(&bucket, "af"));
    let (archiver, logs, _spool) = archiver_on_rgw(&pg.url, &wal_store, "af_locked", &bucket, &system).await;
    let mut id = 0;
    for base in ["base-1", "base-2", "base-3"] {
        let wanted = wal_segments(&s3, &bucket, &system).await.len() + 2;
        for _ in 0..100 {
            if wal_segments(&s3, &bucket, &system).await.len() >= wanted {
                break;
            }
            id += 1;
            sqlx::query("INSERT INTO ledger VALUES ($1, 'filler')").bind(id).execute(&source).await.unwrap();
            sqlx::query("SELECT pg_switch_wal()").execute(&source).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        let args = ["base-backup", "--source", &pg.url, "--store", &base_store, "--name", base, "--fast-checkpoint"];
        assert_exit(&operator_with_env(&args, &rgw_env()), 0);
    }
    let manifest = s3.get_object().bucket(&bucket).key("af/base-2/base.json").send().await.unwrap();
    let manifest = manifest.body.collect().await.unwrap().into_bytes();
    let manifest = artifortress_formats::physical::BaseManifest::parse(&manifest).unwrap();
    let needed = manifest.segment_of(manifest.start_lsn).name();
    let older: Vec<String> = wal_segments(&s3, &bucket, &system).await.into_iter().filter(|s| *s < needed).collect();
    assert!(older.len() >= 2, "segments before base-2's start {needed}: {older:?}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let delete = |name: &str| {
        let out =
            operator_with_env(&["backups", "delete", name, "--store", &base_store, "--output", "json"], &rgw_env());
        assert_exit(&out, 0);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let deleted = delete("base-1");
    let wal = &deleted["wal"];
    let locked = wal["locked"].as_u64().unwrap_or(0);
    assert!(locked > 0, "the newest of them were written seconds ago: {deleted}");
    assert_eq!(wal["segments"].as_u64().unwrap() + locked, older.len() as u64, "{deleted}");
    let after = wal_segments(&s3, &bucket, &system).await;
    assert!(after.iter().filter(|s| **s < needed).count() as u64 == locked, "locked ones stay current: {after:?}");

    let until: chrono::DateTime<chrono::Utc> = wal["lockedUntil"].as_str().unwrap().parse().unwrap();
    let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default() + std::time::Duration::from_secs(1);
    tokio::time::sleep(wait).await;
    delete("base-2");
    let after = wal_segments(&s3, &bucket, &system).await;
    assert!(older.iter().all(|s| !after.contains(s)), "deleted once their lock ended: {after:?}");
    terminate(&archiver);
    let _ = archiver.wait_with_output().await;
    drop(logs);
}

/// WAL someone other than the archiver wrote: a newer version put over one
/// segment's key and a second object (another digest, a valid key) for
/// another segment. Both are reported as tampering, and the restore replays
/// the archiver's own bytes: every row comes back.
#[tokio::test]
async fn forged_wal_is_reported_as_tampering_and_never_replayed() {
    use sha2::Digest;
    use support::physical::{drilled_rows, pool, system_identifier, terminate};
    let pg = support::ExtraPostgres::start();
    let source = pool(&pg.url).await;
    let system = system_identifier(&source).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    let s3 = rgw().await;
    let bucket = unique_name("rgwforge");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket(&bucket).versioning_configuration(enabled).send().await.unwrap();
    let store = store_url(&bucket, "af");
    let (archiver, logs, _spool) = archiver_on_rgw(&pg.url, &store, "af_forged", &bucket, &system).await;
    let args = ["base-backup", "--source", &pg.url, "--store", &store, "--name", "base", "--fast-checkpoint"];
    assert_exit(&operator_with_env(&args, &rgw_env()), 0);
    // Rows in segments of their own, all stored complete before the archiver stops.
    let before = wal_segments(&s3, &bucket, &system).await.len();
    for id in 1..=3 {
        sqlx::query("INSERT INTO ledger VALUES ($1, 'real')").bind(id).execute(&source).await.unwrap();
        sqlx::query("SELECT pg_switch_wal()").execute(&source).await.unwrap();
    }
    for _ in 0..100 {
        if wal_segments(&s3, &bucket, &system).await.len() >= before + 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    terminate(&archiver);
    let _ = archiver.wait_with_output().await;
    drop(logs);
    let segments = wal_segments(&s3, &bucket, &system).await;
    let (overwritten, doubled) = (&segments[segments.len() - 2], &segments[segments.len() - 1]);
    // S3 times have a second's resolution: the forgeries come clearly later.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let prefix = format!("af/_wal/{system}/");
    let listed = s3.list_objects_v2().bucket(&bucket).prefix(&prefix).send().await.unwrap();
    let key_of = |segment: &str| {
        let mut keys = listed.contents().iter().filter_map(|o| o.key());
        keys.find(|k| k.starts_with(&format!("{prefix}{segment}.")) && !k.contains(".partial")).unwrap().to_string()
    };
    let forged = zstd::encode_all(&b"forged WAL"[..], 0).unwrap();
    let body = ByteStream::from(forged);
    s3.put_object().bucket(&bucket).key(key_of(overwritten)).body(body).send().await.unwrap();
    // Its key sorts after the real one's, so a listing taken in key order
    // would meet it last.
    let real = key_of(doubled);
    let (forgery, second) = (0..)
        .map(|n| {
            let bytes = format!("forged WAL {n}").into_bytes();
            let key = format!("{prefix}{doubled}.{}.zst", hex::encode(sha2::Sha256::digest(&bytes)));
            (bytes, key)
        })
        .find(|(_, key)| *key > real)
        .unwrap();
    let body = ByteStream::from(zstd::encode_all(&forgery[..], 0).unwrap());
    s3.put_object().bucket(&bucket).key(&second).body(body).send().await.unwrap();

    let (counted, out) = drilled_rows(&store, &rgw_env(), &["--backup", "base"]).await;
    assert_eq!(counted, (3, Some(3)), "every row the archiver stored is replayed");
    let stderr = support::stderr(&out);
    let tampering: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: tampering: WAL")).collect();
    assert_eq!(tampering.len(), 2, "{stderr}");
    assert!(tampering.iter().any(|w| w.contains(overwritten.as_str()) && w.contains("newer version")), "{stderr}");
    assert!(tampering.iter().any(|w| w.contains(&second) && w.contains("stored twice")), "{stderr}");
}
