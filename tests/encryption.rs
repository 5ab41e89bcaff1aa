//! Encrypted backups end to end, against real PostgreSQL and a real S3 server:
//! the bucket holds no row value, the reference `age` CLI and `pg_restore`
//! open a backup without the operator, drills need an identity that opens it
//! and refuse before touching the target without one, and keys rotate.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use support::physical::{await_slot, free_port, pitr, pool, system_identifier, terminate, wal_archiver};
use support::{
    ExtraPostgres, TestDatabase, assert_exit, env, file_store, operator, s3_client, s3_store_url, stderr, unique_name,
    with_database,
};

/// A value that is in exactly one row of the source, and so in the dump.
const CANARY: &str = "canary-d41d8cd98f00b204-only-in-plaintext";

/// A key pair made by the reference `age-keygen`: (identity file, recipient).
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let identity = dir.join(format!("{name}.txt"));
    let out = Command::new("age-keygen").arg("-o").arg(&identity).output().expect("age-keygen (apt: age)");
    assert!(out.status.success(), "age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let public = Command::new("age-keygen").arg("-y").arg(&identity).output().unwrap();
    (identity, String::from_utf8(public.stdout).unwrap().trim().to_string())
}

async fn source_with_canary() -> TestDatabase {
    let db = TestDatabase::create("AF_TEST_PG_SOURCE_URL", "enc").await;
    assert_exit(&operator(&["migrate", "--database", db.url.expose()]), 0);
    assert_exit(&operator(&["seed", "--database", db.url.expose(), "--scale", "small"]), 0);
    let pool = db.pool().await;
    sqlx::raw_sql(&format!("CREATE TABLE canary (note text); INSERT INTO canary VALUES ('{CANARY}')"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    db
}

fn scratch() -> String {
    with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("scratch").replace('-', "_"))
}

async fn stored(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn drill_json(args: &[&str], json: &Path) -> (std::process::Output, Value) {
    let mut all = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let out = operator(&all);
    let verdict = std::fs::read(json).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(Value::Null);
    (out, verdict)
}

#[tokio::test]
async fn an_encrypted_backup_hides_its_rows_opens_with_age_and_pg_restore_and_drills() {
    let source = source_with_canary().await;
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipient) = keypair(keys.path(), "restore");
    let s3 = s3_client().await;
    let bucket = unique_name("enc");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let store = s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "af");

    let out = operator(&[
        "backup",
        "--source",
        source.url.expose(),
        "--store",
        &store,
        "--name",
        "sealed",
        "--encrypt-to",
        &recipient,
    ]);
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("encrypted  age to {recipient}")));
    assert!(!stderr(&out).contains("AGE-SECRET-KEY"));

    // The manifest stays readable and says to whom; it holds no secret.
    let manifest: Value = serde_json::from_slice(&stored(&s3, &bucket, "af/sealed/manifest.json").await).unwrap();
    assert_eq!(manifest["manifestVersion"], 2);
    assert_eq!(manifest["encryption"]["recipients"], serde_json::json!([recipient]));
    assert_eq!(manifest["dump"]["file"], "dump.zst.age");
    let sealed = stored(&s3, &bucket, "af/sealed/dump.zst.age").await;
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(!contains(&sealed, CANARY), "the stored dump holds a row value in clear");
    // Nor does it open as the plain zstd stream an unencrypted dump is.
    assert!(zstd::stream::decode_all(&sealed[..]).is_err());

    // A person in a disaster, without the operator: age, zstd, pg_restore.
    let work = tempfile::tempdir().unwrap();
    let sealed_file = work.path().join("dump.zst.age");
    std::fs::write(&sealed_file, &sealed).unwrap();
    let archive = work.path().join("archive.dump");
    let opened = Command::new("sh")
        .arg("-c")
        .arg("age -d -i \"$1\" \"$2\" | zstd -d -o \"$3\"")
        .args(["sh", identity.to_str().unwrap(), sealed_file.to_str().unwrap(), archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(opened.status.success(), "age -d | zstd -d: {}", String::from_utf8_lossy(&opened.stderr));
    assert!(contains(&std::fs::read(&archive).unwrap(), CANARY), "the decrypted archive holds the row");
    let by_hand = TestDatabase::create("AF_TEST_PG_TARGET_URL", "byhand").await;
    let pg_restore = Path::new(&env("AF_TEST_PG_BINDIR")).join("pg_restore");
    let restored = Command::new(pg_restore)
        .args(["--no-owner", "--exit-on-error", "-d", by_hand.url.expose()])
        .arg(&archive)
        .output()
        .unwrap();
    // Roles the seed's grants name may be missing here; the rows are what matters.
    let pool = PgPool::connect(by_hand.url.expose()).await.unwrap();
    let note: Option<String> =
        sqlx::query_scalar("SELECT note FROM canary").fetch_optional(&pool).await.unwrap_or(None);
    assert_eq!(note.as_deref(), Some(CANARY), "pg_restore: {}", String::from_utf8_lossy(&restored.stderr));
    pool.close().await;

    // The operator's own drill, with the identity, passes.
    let target = scratch();
    let json = work.path().join("verdict.json");
    let (out, verdict) = drill_json(
        &[
            "drill",
            "--backup",
            "sealed",
            "--store",
            &store,
            "--target",
            &target,
            "--identity",
            identity.to_str().unwrap(),
        ],
        &json,
    );
    assert_exit(&out, 0);
    assert_eq!(verdict["result"], "Passed");
}

#[tokio::test]
async fn without_a_key_that_opens_it_the_drill_fails_before_touching_the_target() {
    let source = source_with_canary().await;
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipient) = keypair(keys.path(), "right");
    let (wrong, wrong_recipient) = keypair(keys.path(), "wrong");
    let store_dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", store_dir.path().display());
    let out = operator(&[
        "backup",
        "--source",
        source.url.expose(),
        "--store",
        &store,
        "--name",
        "b1",
        "--encrypt-to",
        &recipient,
    ]);
    assert_exit(&out, 0);

    // The engine's own scratch database, from a first drill, marked since.
    let target = scratch();
    let first = operator(&[
        "drill",
        "--backup",
        "b1",
        "--store",
        &store,
        "--target",
        &target,
        "--keep-target",
        "--identity",
        identity.to_str().unwrap(),
    ]);
    assert_exit(&first, 0);
    let pool = PgPool::connect(&target).await.unwrap();
    sqlx::raw_sql("CREATE TABLE marker (note text); INSERT INTO marker VALUES ('untouched')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let json = store_dir.path().join("verdict.json");
    let (out, verdict) = drill_json(
        &[
            "drill",
            "--backup",
            "b1",
            "--store",
            &store,
            "--target",
            &target,
            "--keep-target",
            "--identity",
            wrong.to_str().unwrap(),
        ],
        &json,
    );
    assert_exit(&out, 1);
    assert_eq!(verdict["result"], "Failed");
    assert_eq!(verdict["reason"], "KeyUnavailable", "{verdict}");
    let said = stderr(&out);
    assert!(said.contains(&recipient) && said.contains(&wrong_recipient), "{said}");
    assert!(!said.contains("AGE-SECRET-KEY"), "{said}");

    // No key at all: the restore refuses the same way.
    let out = operator(&["restore", "--store", &store, "--backup", "b1", "--target", &target]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no identity is configured"), "{}", stderr(&out));

    let pool = PgPool::connect(&target).await.unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM marker").fetch_one(&pool).await.expect("target untouched");
    assert_eq!(note, "untouched");
    pool.close().await;
}

#[tokio::test]
async fn after_a_key_rotation_old_and_new_backups_both_drill_and_a_passphrase_works_alone() {
    let source = source_with_canary().await;
    let keys = tempfile::tempdir().unwrap();
    let (old, old_recipient) = keypair(keys.path(), "old");
    let (new, new_recipient) = keypair(keys.path(), "new");
    let store_dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", store_dir.path().display());
    let recipients = keys.path().join("recipients.txt");
    std::fs::write(&recipients, format!("# rotated in December\n{new_recipient}\n")).unwrap();
    let backup = |name: &str, to: &[&str]| {
        let mut args = vec!["backup", "--source", source.url.expose(), "--store", &store, "--name", name];
        args.extend_from_slice(to);
        assert_exit(&operator(&args), 0);
    };
    backup("before-rotation", &["--encrypt-to", &old_recipient]);
    backup("after-rotation", &["--encrypt-to-file", recipients.to_str().unwrap()]);
    let manifest = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(store_dir.path().join(name).join("manifest.json")).unwrap()).unwrap()
    };
    assert_eq!(manifest("after-rotation")["encryption"]["recipients"], serde_json::json!([new_recipient]));

    let target = scratch();
    for name in ["before-rotation", "after-rotation"] {
        let out = operator(&[
            "drill",
            "--backup",
            name,
            "--store",
            &store,
            "--target",
            &target,
            "--identity",
            old.to_str().unwrap(),
            "--identity",
            new.to_str().unwrap(),
        ]);
        assert_exit(&out, 0);
    }

    let passphrase = keys.path().join("passphrase");
    std::fs::write(&passphrase, "a long passphrase for a small setup\n").unwrap();
    backup("with-passphrase", &["--passphrase-file", passphrase.to_str().unwrap()]);
    assert_eq!(manifest("with-passphrase")["encryption"]["passphrase"], true);
    let out = operator(&[
        "drill",
        "--backup",
        "with-passphrase",
        "--store",
        &store,
        "--target",
        &target,
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    assert_exit(&out, 0);
    // A passphrase and recipients together are refused: age allows a passphrase only alone.
    let out = operator(&[
        "backup",
        "--source",
        source.url.expose(),
        "--store",
        &store,
        "--encrypt-to",
        &new_recipient,
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
}

/// Every file under `dir` (the file store's objects).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(files_under(&path)) } else { files.push(path) }
    }
    files
}

#[tokio::test]
async fn physical_backups_and_their_wal_are_encrypted_and_drill_only_with_the_identity() {
    let pg = ExtraPostgres::start();
    let source = pool(&pg.url).await;
    sqlx::raw_sql(&format!("CREATE TABLE canary (note text); INSERT INTO canary VALUES ('{CANARY}')"))
        .execute(&source)
        .await
        .unwrap();
    let system = system_identifier(&source).await;
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipient) = keypair(keys.path(), "restore");
    let (wrong, _) = keypair(keys.path(), "wrong");
    let (store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let (archiver, _logs) = wal_archiver(&pg.url, &store, spool.path(), "af_sealed", &["--encrypt-to", &recipient]);
    await_slot(store_dir.path(), &system, "af_sealed").await;
    let out = operator(&[
        "base-backup",
        "--source",
        &pg.url,
        "--store",
        &store,
        "--name",
        "base-1",
        "--fast-checkpoint",
        "--encrypt-to",
        &recipient,
    ]);
    assert_exit(&out, 0);
    // A row committed after the base: only the encrypted WAL holds it.
    sqlx::query("INSERT INTO canary VALUES ('after the base')").execute(&source).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let base: Value =
        serde_json::from_slice(&std::fs::read(store_dir.path().join("base-1/base.json")).unwrap()).unwrap();
    assert_eq!(base["baseManifestVersion"], 2);
    assert_eq!(base["encryption"]["recipients"], serde_json::json!([recipient]));
    let wal: Vec<PathBuf> = files_under(&store_dir.path().join(format!("_wal/{system}")))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "zst"))
        .collect();
    assert!(!wal.is_empty(), "no WAL stored");
    for object in wal.iter().chain([&store_dir.path().join("base-1/base.tar.zst.age")]) {
        let bytes = std::fs::read(object).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{} is not an age file", object.display());
        assert!(
            !contains(&bytes, CANARY) && !contains(&bytes, "after the base"),
            "{} holds a row in clear",
            object.display()
        );
        assert!(zstd::stream::decode_all(&bytes[..]).is_err(), "{} opens without a key", object.display());
    }

    let dir = tempfile::tempdir().unwrap();
    let out = pitr(
        &store,
        &dir.path().join("wrong"),
        free_port(),
        &["--drill", "wrong", "--identity", wrong.to_str().unwrap()],
    );
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("KeyUnavailable") && stderr(&out).contains(&recipient), "{}", stderr(&out));
    assert!(!dir.path().join("wrong").exists(), "the scratch instance's directory was touched");

    let instance = dir.path().join("right");
    let port = free_port();
    let out = pitr(&store, &instance, port, &["--drill", "right", "--identity", identity.to_str().unwrap(), "--keep"]);
    assert_exit(&out, 0);
    let restored = PgConnectOptions::new().socket(&instance).port(port).username("postgres").database("postgres");
    let mut conn = PgConnection::connect_with(&restored).await.unwrap();
    let notes: Vec<String> =
        sqlx::query_scalar("SELECT note FROM canary ORDER BY note").fetch_all(&mut conn).await.unwrap();
    assert_eq!(notes, vec!["after the base".to_string(), CANARY.to_string()]);
    drop(conn);
    let pid = std::fs::read_to_string(instance.join("data/postmaster.pid")).unwrap();
    Command::new("kill").args(["-INT", pid.lines().next().unwrap()]).status().unwrap();
    terminate(&archiver);
    let _ = archiver.wait_with_output().await;
}
