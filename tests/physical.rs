//! Physical protection against real servers (PostgreSQL 15 and 18): the WAL
//! archiver (`wal`) streaming through its slot while a writer commits
//! continuously, a base backup (`base-backup`) taken meanwhile, and
//! point-in-time drills (`pitr`) into scratch instances the engine starts.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use support::physical::*;
use support::{ExtraPostgres, assert_exit, file_store, operator, operator_bin, spawn_with_logs, stderr};

async fn point_in_time_drills(major: u32) {
    let pg = ExtraPostgres::of_major(major);
    let source = pool(&pg.url).await;
    let system = system_identifier(&source).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    let (store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let (archiver, logs) = wal_archiver(&pg.url, &store, spool.path(), "af_test", &["--heartbeat", "1s"]);
    await_slot(store_dir.path(), &system, "af_test").await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = writer(source.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    base_backup(&pg.url, &store, "base-1");
    let base_done = Utc::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = writing.await.unwrap();
    // The commits kept going; the archive is at most a partial upload behind.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A target strictly between two known commits, well after the base.
    let k =
        commits.iter().position(|c| c.sent > base_done + chrono::Duration::seconds(1)).expect("commits after the base");
    let (before, after) = (commits[k], commits[k + 1]);
    assert!(before.returned < after.sent);
    let target = before.returned + (after.sent - before.returned) / 2;
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("instance");
    let port = free_port();
    let out = pitr(&store, &instance, port, &["--target", &target.to_rfc3339(), "--keep"]);
    assert_exit(&out, 0);
    let restored = PgConnectOptions::new().socket(&instance).port(port).username("postgres").database("postgres");
    let mut conn = PgConnection::connect_with(&restored).await.unwrap();
    let (rows, newest): (i64, Option<i32>) =
        sqlx::query_as("SELECT count(*), max(id) FROM ledger").fetch_one(&mut conn).await.unwrap();
    assert_eq!(
        (rows, newest),
        (i64::from(before.id), Some(before.id)),
        "a restore to {target} (between commits {} and {}) has exactly the rows committed before it",
        before.id,
        after.id
    );
    // The server the drill restored is promoted: a writable, separate cluster.
    sqlx::query("INSERT INTO ledger VALUES (-1, 'scratch')").execute(&mut conn).await.unwrap();
    drop(conn);
    let on_source: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger WHERE id = -1").fetch_one(&source).await.unwrap();
    assert_eq!(on_source, 0);

    // The latest point: the RPO achieved is a few seconds (heartbeat every
    // second, the growing segment stored every second). The instance kept
    // above is ours: this drill stops it and takes its directory.
    sqlx::query("INSERT INTO ledger VALUES (0, 'just before the drill')").execute(&source).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = pitr(&store, &instance, port, &["--rpo", "10s"]);
    assert_exit(&out, 0);
    let rpo = rpo_of(&out);
    assert!(rpo < 5.0, "RPO {rpo} s under continuous heartbeats");
    assert!(!instance.exists(), "a drill without --keep removes its instance");
    let last_drill = || {
        let out = operator(&["drills", "list", "--store", &store, "--output", "json"]);
        assert_exit(&out, 0);
        let drills: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        drills.as_array().unwrap().last().unwrap().clone()
    };
    // A moment nobody chose: drawn at random in the last minute, between the
    // base's completion and the archive's newest heartbeat; the RPO is the gap
    // to the newest heartbeat before it (one a second here).
    let out = pitr(&store, &instance, port, &["--target", "random:1m", "--rpo", "10s"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("recovery target drawn at random"), "{}", stderr(&out));
    // PostgreSQL's manifest checksums were compared while the files were written.
    assert!(stderr(&out).contains("files' CRC-32C taken while unpacking"), "{}", stderr(&out));
    let rpo = rpo_of(&out);
    assert!(rpo < 3.0, "RPO {rpo} s at a random time, heartbeats every second");
    let drill = last_drill();
    assert_eq!((drill["backup"].as_str(), drill["verdict"]["mode"].as_str()), (Some("base-1"), Some("Physical")));
    assert_eq!(drill["verdict"]["result"], "Passed");
    assert_eq!(drill["verdict"]["rpo"]["measuredSeconds"].as_f64(), Some(rpo));
    // Its report is stored beside the verdict, as a logical drill's.
    let report = drill["verdict"]["report"].as_str().expect("a report location");
    let report = std::fs::read_to_string(report.strip_prefix("file://").unwrap_or(report)).unwrap();
    for line in ["PASSED", "Base backup: `base-1`", "Physical drill:", "| amcheck |", "RPO (age of the restore point)"]
    {
        assert!(report.contains(line), "{line:?} in the report:\n{report}");
    }
    let out = operator(&["backups", "list", "--store", &store]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.lines().any(|l| l.starts_with("base-1") && l.contains("physical") && l.contains("complete")),
        "{listing}"
    );

    // Stopped, the archiver stores what it has and says so.
    terminate(&archiver);
    let status = archiver.wait_with_output().await.unwrap().status;
    assert!(status.success(), "archiver exit {status}: {}", logs.lock().unwrap());
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store_dir.path().join(format!("_wal/{system}/status.json"))).unwrap())
            .unwrap();
    assert_eq!(doc["stopped"], "stopped");

    // A corrupt WAL segment: the drill fails naming it, before any replay.
    let wal_dir = store_dir.path().join(format!("_wal/{system}"));
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".zst") && !p.to_string_lossy().contains(".partial."))
        .collect();
    segments.sort();
    let victim = segments.last().unwrap();
    let name = victim.file_name().unwrap().to_string_lossy()[..24].to_string();
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    let out = pitr(&store, &instance, port, &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains(&format!("WAL segment {name}")), "{}", stderr(&out));
    let drill = last_drill();
    assert_eq!(
        (drill["verdict"]["result"].as_str(), drill["verdict"]["reason"].as_str()),
        (Some("Failed"), Some("BackupCorrupt"))
    );

    // A directory that is not ours (here: what looks like a data directory) is
    // refused and left as it was.
    let theirs = tempfile::tempdir().unwrap();
    std::fs::write(theirs.path().join("PG_VERSION"), major.to_string()).unwrap();
    let out = pitr(&store, theirs.path(), port, &[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("was not created by artifortress-operator"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(theirs.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn point_in_time_drills_on_postgresql_15() {
    point_in_time_drills(15).await;
}

#[tokio::test]
async fn point_in_time_drills_on_postgresql_18() {
    point_in_time_drills(18).await;
}

/// The completed segments stored for `system`, by name.
fn stored_segments(store_dir: &Path, system: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store_dir.join(format!("_wal/{system}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".zst") && !n.contains(".partial."))
        .map(|n| n[..24].to_string())
        .collect();
    names.sort();
    names
}

/// Writes and switches WAL segments until `n` more are complete in the store.
async fn complete_segments(source: &PgPool, store_dir: &Path, system: &str, n: usize) {
    let wanted = stored_segments(store_dir, system).len() + n;
    for _ in 0..100 {
        if stored_segments(store_dir, system).len() >= wanted {
            return;
        }
        sqlx::query("INSERT INTO ledger SELECT coalesce(max(id), 0) + 1, 'filler' FROM ledger")
            .execute(source)
            .await
            .unwrap();
        sqlx::query("SELECT pg_switch_wal()").execute(source).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{n} more segments were not stored");
}

/// Retention keeps every WAL segment a stored base backup needs: deleting the
/// older of two bases deletes the segments before the newer one's start (and
/// the newer still restores); with no base left, no WAL is deleted.
#[tokio::test]
async fn deleting_a_base_backup_prunes_only_the_wal_no_remaining_base_needs() {
    let pg = ExtraPostgres::start();
    let source = pool(&pg.url).await;
    let system = system_identifier(&source).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    let (store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let (archiver, logs) = wal_archiver(&pg.url, &store, spool.path(), "af_retention", &[]);
    await_slot(store_dir.path(), &system, "af_retention").await;
    for base in ["base-1", "base-2"] {
        complete_segments(&source, store_dir.path(), &system, 3).await;
        base_backup(&pg.url, &store, base);
    }
    complete_segments(&source, store_dir.path(), &system, 2).await;
    let manifest = std::fs::read(store_dir.path().join("base-2/base.json")).unwrap();
    let manifest = artifortress_formats::physical::BaseManifest::parse(&manifest).unwrap();
    let needed = manifest.segment_of(manifest.start_lsn).name();
    let before = stored_segments(store_dir.path(), &system);
    let older = before.iter().filter(|s| **s < needed).count();
    assert!(older >= 3, "segments from before base-2: {before:?} (base-2 starts in {needed})");

    let out = operator(&["backups", "delete", "base-1", "--store", &store, "--output", "json"]);
    assert_exit(&out, 0);
    let deleted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deleted["wal"]["segments"].as_u64(), Some(older as u64), "{deleted}");
    assert_eq!(deleted["wal"]["keptFrom"][&system].as_str(), Some(needed.as_str()));
    let after = stored_segments(store_dir.path(), &system);
    assert_eq!(after, before.iter().filter(|s| **s >= needed).cloned().collect::<Vec<_>>());

    // What is left is all base-2 needs: it restores.
    terminate(&archiver);
    let status = archiver.wait_with_output().await.unwrap().status;
    assert!(status.success(), "{}", logs.lock().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let out = pitr(&store, &dir.path().join("instance"), free_port(), &[]);
    assert_exit(&out, 0);
    // A stopping archiver stores the segment it was receiving: the WAL as it is now.
    let after = stored_segments(store_dir.path(), &system);

    // The last base goes only with --force, and then no WAL is deleted: a
    // source without a base may have its first one running.
    let out = operator(&["backups", "delete", "base-2", "--store", &store]);
    assert_exit(&out, 2);
    let out = operator(&["backups", "delete", "base-2", "--store", &store, "--force", "--output", "json"]);
    assert_exit(&out, 0);
    let deleted: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deleted["wal"]["segments"].as_u64(), Some(0), "{deleted}");
    assert_eq!(stored_segments(store_dir.path(), &system), after);
}

#[tokio::test]
async fn past_its_bound_the_slot_is_dropped_so_the_source_disk_cannot_fill() {
    let pg = ExtraPostgres::start();
    let source = pool(&pg.url).await;
    let system = system_identifier(&source).await;
    let (store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    // A bound of six segments over a spool of two: receiving pauses first, and
    // a receiver a few segments behind on a busy machine does not skip the pause.
    let (mut archiver, logs) =
        wal_archiver(&pg.url, &store, spool.path(), "af_bound", &["--spool-segments", "2", "--max-retained", "96MiB"]);
    await_slot(store_dir.path(), &system, "af_bound").await;
    // The store breaks: where the WAL goes is now a file, every upload fails.
    let wal_dir = store_dir.path().join(format!("_wal/{system}"));
    std::fs::remove_dir_all(&wal_dir).unwrap();
    std::fs::write(&wal_dir, "not a directory").unwrap();
    sqlx::query("CREATE TABLE filler (n int)").execute(&source).await.unwrap();
    // Segments, one at a time, until the archiver stops (or two minutes pass).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut exited = None;
    while std::time::Instant::now() < deadline {
        sqlx::query("INSERT INTO filler SELECT generate_series(1, 1000)").execute(&source).await.unwrap();
        sqlx::query("SELECT pg_switch_wal()").execute(&source).await.unwrap();
        if let Some(status) = archiver.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = exited.unwrap_or_else(|| panic!("the archiver kept going past its bound: {}", logs.lock().unwrap()));
    assert_eq!(status.code(), Some(1), "{}", logs.lock().unwrap());
    let logs = logs.lock().unwrap().clone();
    assert!(logs.contains("paused"), "receiving paused first: {logs}");
    assert!(logs.contains("DROPPED"), "{logs}");
    let slots = slot_count(&source, "af_bound").await;
    assert_eq!(slots, 0, "the slot is gone, the source keeps no WAL for it");
}

/// `pg_receivewal` stopped while it filled a new segment with zeros (killed,
/// or its pod evicted) leaves a growing segment it refuses to resume from
/// ("should be 0 or 16777216"), restarting in a loop: the archiver sets it
/// aside, streams that segment again from the slot and archives on.
#[tokio::test]
async fn a_growing_segment_left_short_is_set_aside_and_archiving_goes_on() {
    let pg = ExtraPostgres::start();
    let source = pool(&pg.url).await;
    let system = system_identifier(&source).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    let (store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let (archiver, logs) = wal_archiver(&pg.url, &store, spool.path(), "af_short", &[]);
    await_slot(store_dir.path(), &system, "af_short").await;
    complete_segments(&source, store_dir.path(), &system, 1).await;
    let first = stop_archiver(archiver, &logs).await;
    assert!(!first.contains("should be 0 or"), "a stopped archiver leaves a segment it can resume: {first}");
    // What a fill interrupted at the next segment leaves: zeros, short of its size.
    let newest = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .max()
        .expect("the newest complete segment stays in the spool");
    let number =
        u64::from_str_radix(&newest[8..16], 16).unwrap() * 256 + u64::from_str_radix(&newest[16..], 16).unwrap() + 1;
    let name = format!("{}{:08X}{:08X}.partial", &newest[..8], number / 256, number % 256);
    let growing = spool.path().join(&name);
    std::fs::File::create(&growing).unwrap().set_len(5_955_584).unwrap();

    let (archiver, logs) = wal_archiver(&pg.url, &store, spool.path(), "af_short", &[]);
    complete_segments(&source, store_dir.path(), &system, 2).await;
    let segment = &name[..24];
    assert!(stored_segments(store_dir.path(), &system).iter().any(|s| s == segment), "{segment} streamed again");
    let logs = stop_archiver(archiver, &logs).await;
    assert!(logs.contains(&format!("WAL segment {name} is a growing segment of 5955584 bytes")), "{logs}");
    assert!(!logs.contains("should be 0 or"), "pg_receivewal never saw it: {logs}");
    assert!(spool.path().join("rejected").join(&name).exists(), "kept aside for whoever looks");
}

#[tokio::test]
async fn a_slot_the_archiver_did_not_create_is_refused_and_left_alone() {
    let pg = ExtraPostgres::start();
    let source = pool(&pg.url).await;
    sqlx::query("SELECT pg_create_physical_replication_slot('af_theirs')").execute(&source).await.unwrap();
    let (_store_dir, store) = file_store();
    let spool = tempfile::tempdir().unwrap();
    let out = operator(&[
        "wal",
        "--source",
        &pg.url,
        "--store",
        &store,
        "--slot",
        "af_theirs",
        "--spool",
        spool.path().to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("was not created by this archiver"), "{}", stderr(&out));
    let slots = slot_count(&source, "af_theirs").await;
    assert_eq!(slots, 1);
    // A spool directory with something else in it (a server's pg_wal, given by
    // mistake) is refused before anything is created, and left as it was.
    let theirs = tempfile::tempdir().unwrap();
    std::fs::write(theirs.path().join("000000010000000000000001"), "a segment of someone's server").unwrap();
    let out = operator(&[
        "wal",
        "--source",
        &pg.url,
        "--store",
        &store,
        "--slot",
        "af_new",
        "--spool",
        theirs.path().to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("not an archiver's"), "{}", stderr(&out));
    assert!(theirs.path().join("000000010000000000000001").exists());
    let slots = slot_count(&source, "af_new").await;
    assert_eq!(slots, 0);
}

/// The operator reads the archiver's status from the installation's backup
/// store: `WalArchiving` True while it streams, False once it is stopped.
#[tokio::test]
async fn the_installation_reports_its_wal_archiver_and_when_it_stops() {
    use artifortress_operator::api::artifortress::Artifortress;
    use artifortress_operator::api::common::ConditionStatus;
    let installation = support::cluster::Installation::start("walstatus", None).await;
    let store = format!(
        "s3://{}/prod/production?endpoint={}&region=us-east-1&path_style=true",
        installation.bucket,
        support::env("AF_TEST_S3_ENDPOINT")
    );
    let slot = support::unique_name("af_status").replace('-', "_");
    let spool = tempfile::tempdir().unwrap();
    let source = installation.db.url.expose().to_string();
    let (archiver, logs) = wal_archiver(&source, &store, spool.path(), &slot, &[]);
    let condition = |af: &Artifortress, status: ConditionStatus, reason: &str| {
        af.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "WalArchiving"))
            .is_some_and(|c| c.status == status && c.reason == reason)
    };
    let api = installation.api::<Artifortress>();
    let af = support::cluster::wait_until(&api, "production", Duration::from_secs(60), |af| {
        condition(af, ConditionStatus::True, "Streaming")
    })
    .await;
    assert_eq!(af.status.unwrap().wal.unwrap().slot, slot);

    terminate(&archiver);
    let exit = archiver.wait_with_output().await.unwrap().status;
    assert!(exit.success(), "{}", logs.lock().unwrap());
    support::cluster::wait_until(&api, "production", Duration::from_secs(60), |af| {
        condition(af, ConditionStatus::False, "ArchiverStopped")
    })
    .await;
    // The slot was the test's: off the shared server, or it keeps WAL forever.
    let pool = pool(&source).await;
    sqlx::query("SELECT pg_drop_replication_slot($1)").bind(&slot).execute(&pool).await.unwrap();
}

/// An archiver that dies without a word (SIGKILL: no final status) falls
/// silent: `WalArchiving` says so after a minute, and the status age the alert
/// watches crosses its warning, then its critical threshold.
#[tokio::test]
async fn a_killed_archiver_falls_silent_and_crosses_the_alert_thresholds() {
    use artifortress_operator::alerts;
    use artifortress_operator::api::artifortress::Artifortress;
    use artifortress_operator::api::common::ConditionStatus;
    use support::cluster::{Installation, ManualClock, wait_until};
    // The operator's clock runs with the real one, `ahead` minutes ahead (the
    // probes are due by that clock).
    let clock = ManualClock::at(&Utc::now().to_rfc3339());
    let ahead = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let ticking = {
        let (clock, ahead) = (clock.clone(), ahead.clone());
        tokio::spawn(async move {
            loop {
                let minutes = ahead.load(std::sync::atomic::Ordering::Relaxed);
                clock.set(&(Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let installation = Installation::start("walsilent", Some(clock)).await;
    let store = format!(
        "s3://{}/prod/production?endpoint={}&region=us-east-1&path_style=true",
        installation.bucket,
        support::env("AF_TEST_S3_ENDPOINT")
    );
    let slot = support::unique_name("af_silent").replace('-', "_");
    let spool = tempfile::tempdir().unwrap();
    let source = installation.db.url.expose().to_string();
    let (_archiver, _logs) = wal_archiver(&source, &store, spool.path(), &slot, &[]);
    let reason = |af: &Artifortress| {
        let conditions = af.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        conditions.into_iter().find(|c| c.type_ == "WalArchiving").map(|c| (c.status, c.reason))
    };
    let api = installation.api::<Artifortress>();
    let streaming = Some((ConditionStatus::True, "Streaming".to_string()));
    wait_until(&api, "production", Duration::from_secs(60), |af| reason(af) == streaming).await;

    // The archiver and its pg_receivewal die at once, as in a node crash.
    std::process::Command::new("pkill").args(["-KILL", "-f", &slot]).status().unwrap();
    let thresholds = alerts::parse(&std::fs::read_to_string(alerts::THRESHOLDS_FILE).unwrap()).unwrap();
    let alert = thresholds.alerts.iter().find(|a| a.alert == "ArtifortressWalArchiverSilent").unwrap();
    let age = || {
        let metrics = installation.ctx.metrics.encode();
        let sample = format!("{}{{installation=\"production\"}} ", alert.expr);
        let line = metrics.lines().find(|l| l.starts_with(&sample)).unwrap_or_else(|| panic!("{sample} in {metrics}"));
        line[sample.len()..].parse::<f64>().unwrap()
    };
    let silent = Some((ConditionStatus::False, "ArchiverSilent".to_string()));
    let critical = alert.critical.expect("the silent-archiver alert has a critical level");
    for (minutes, threshold) in [(3, alert.warning), (11, critical)] {
        ahead.store(minutes, std::sync::atomic::Ordering::Relaxed);
        let af = wait_until(&api, "production", Duration::from_secs(60), |af| reason(af) == silent).await;
        let message = af.status.unwrap().conditions.into_iter().find(|c| c.type_ == "WalArchiving").unwrap().message;
        assert!(message.contains(&slot) && message.contains("no status from the WAL archiver"), "{message}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while age() <= threshold {
            assert!(tokio::time::Instant::now() < deadline, "age {} never crossed {threshold}", age());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ticking.abort();
    // The slot was the test's, on the shared server: its walsender may take a
    // moment to notice the dead receiver.
    let pool = pool(&source).await;
    for _ in 0..50 {
        if sqlx::query("SELECT pg_drop_replication_slot($1)").bind(&slot).execute(&pool).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("slot {slot} could not be dropped");
}

/// The system identifier in a stored segment's page header (a file store's
/// object: zstd of the raw segment).
fn header_system(object: &Path) -> u64 {
    let raw = zstd::stream::decode_all(&std::fs::read(object).unwrap()[..]).unwrap();
    u64::from_le_bytes(raw[24..32].try_into().unwrap())
}

/// Every stored segment (complete and partial) of `system`'s archive, as files.
fn stored_objects(store_dir: &Path, system: &str) -> Vec<std::path::PathBuf> {
    let mut objects: Vec<_> = std::fs::read_dir(store_dir.join(format!("_wal/{system}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".zst"))
        .collect();
    objects.sort();
    objects
}

async fn stop_archiver(archiver: tokio::process::Child, logs: &Mutex<String>) -> String {
    terminate(&archiver);
    let status = archiver.wait_with_output().await.unwrap().status;
    let logs = logs.lock().unwrap().clone();
    assert!(status.success(), "archiver exit {status}: {logs}");
    logs
}

/// A database replaced by another (a new system) under the same slot name:
/// each archive holds only its own system's WAL, whatever the spools hold. A
/// spool of the old system is moved aside, a foreign segment dropped into a
/// live spool is rejected, and a foreign segment smuggled into the store fails
/// the drill by name before PostgreSQL starts.
#[tokio::test]
async fn an_archive_holds_only_its_own_systems_wal() {
    let (store_dir, store) = file_store();
    let tmp = tempfile::tempdir().unwrap();
    let archiver_on = |url: &str, spool: Option<&Path>| {
        let mut command = tokio::process::Command::new(operator_bin());
        command
            .args(["wal", "--source", url, "--store", &store, "--slot", "af_same"])
            .args(["--partial-every", "1s", "--status-every", "1s"])
            .env("TMPDIR", tmp.path());
        if let Some(spool) = spool {
            command.arg("--spool").arg(spool);
        }
        spawn_with_logs(&mut command)
    };

    // The old database: archived through the default spool, then gone.
    let old = ExtraPostgres::start();
    let old_pool = pool(&old.url).await;
    let old_system = system_identifier(&old_pool).await;
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&old_pool).await.unwrap();
    let (archiver, logs) = archiver_on(&old.url, None);
    await_slot(store_dir.path(), &old_system, "af_same").await;
    complete_segments(&old_pool, store_dir.path(), &old_system, 2).await;
    stop_archiver(archiver, &logs).await;
    old_pool.close().await;
    old.stop();
    let old_spool = tmp.path().join(format!("artifortress-wal-{old_system}-af_same"));
    assert!(old_spool.is_dir(), "the default spool is the system's own");

    // The new database, same slot name, default spool: its own.
    let new = ExtraPostgres::start();
    let source = pool(&new.url).await;
    let system = system_identifier(&source).await;
    assert_ne!(system, old_system);
    sqlx::query("CREATE TABLE ledger (id int PRIMARY KEY, note text)").execute(&source).await.unwrap();
    let (archiver, logs) = archiver_on(&new.url, None);
    await_slot(store_dir.path(), &system, "af_same").await;
    base_backup(&new.url, &store, "base-new");
    complete_segments(&source, store_dir.path(), &system, 2).await;
    stop_archiver(archiver, &logs).await;

    // Given the old system's spool by hand, the archiver moves it aside.
    let (archiver, logs) = archiver_on(&new.url, Some(&old_spool));
    complete_segments(&source, store_dir.path(), &system, 1).await;
    let marker = std::fs::read_to_string(old_spool.join("artifortress-wal-spool")).unwrap();
    assert!(marker.contains(&system), "the spool in use is the new system's now: {marker}");
    let moved: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".moved-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let old_segment = std::fs::read_dir(&moved[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().len() == 24)
        .expect("the old system's segments are kept where they were moved");
    // A foreign segment dropped into the live spool is rejected, never stored.
    std::fs::copy(&old_segment, old_spool.join("0000000100000000000000F0")).unwrap();
    let mut rejected = false;
    for _ in 0..50 {
        if old_spool.join("rejected/0000000100000000000000F0").exists() {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = stop_archiver(archiver, &logs).await;
    assert!(rejected, "{logs}");
    assert!(logs.contains(&format!("was moved aside to {}", moved[0].display())), "{logs}");
    assert!(logs.contains(&format!("it holds WAL of database system {old_system}")), "{logs}");
    assert!(
        logs.contains(&format!("WAL segment 0000000100000000000000F0 is from database system {old_system}")),
        "{logs}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store_dir.path().join(format!("_wal/{system}/status.json"))).unwrap())
            .unwrap();
    assert!(status["lastRejected"].as_str().unwrap().contains("0000000100000000000000F0"), "{status}");

    // Each archive holds its own system's WAL only, and the new one restores.
    let new_system: u64 = system.parse().unwrap();
    for object in stored_objects(store_dir.path(), &system) {
        assert_eq!(header_system(&object), new_system, "{}", object.display());
    }
    let old_id: u64 = old_system.parse().unwrap();
    for object in stored_objects(store_dir.path(), &old_system) {
        assert_eq!(header_system(&object), old_id, "{}", object.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("instance");
    let out = pitr(&store, &instance, free_port(), &[]);
    assert_exit(&out, 0);

    // A segment of the old system smuggled into the new archive under a name
    // the restore needs: the drill fails naming it, before any replay.
    let stored = stored_segments(store_dir.path(), &system);
    let victim_name = &stored[stored.len() - 1];
    let victim = stored_objects(store_dir.path(), &system)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(victim_name.as_str()));
    let victim = victim.unwrap();
    let smuggled =
        stored_objects(store_dir.path(), &old_system).into_iter().find(|p| !p.to_string_lossy().contains(".partial."));
    let smuggled = smuggled.unwrap();
    let sha = smuggled.file_name().unwrap().to_string_lossy().split('.').nth(1).unwrap().to_string();
    std::fs::remove_file(&victim).unwrap();
    std::fs::copy(&smuggled, victim.with_file_name(format!("{victim_name}.{sha}.zst"))).unwrap();
    let out = pitr(&store, &instance, free_port(), &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("WAL segment {victim_name}"))
            && err.contains(&format!("is from database system {old_system}")),
        "{err}"
    );
    assert!(!err.contains("replaying"), "PostgreSQL never started: {err}");
}

/// An archiver whose receiver cannot stream (here: its role lost REPLICATION,
/// so every `pg_receivewal` start is refused) runs, writes its status and
/// archives nothing: within 10 seconds the installation's `WalArchiving` is
/// False with reason `ArchiverStalled` and the server's words, and the gauge
/// the stall alert watches is 1, and a real Prometheus scraping the
/// operator's metrics fires the chart's alert on it. Streaming again clears
/// them.
#[tokio::test]
async fn an_archiver_that_receives_nothing_is_reported_stalled_within_seconds() {
    use artifortress_operator::api::artifortress::Artifortress;
    use artifortress_operator::api::common::ConditionStatus;
    use support::cluster::{Installation, wait_until};
    let installation = Installation::start("walstall", None).await;
    let store = format!(
        "s3://{}/prod/production?endpoint={}&region=us-east-1&path_style=true",
        installation.bucket,
        support::env("AF_TEST_S3_ENDPOINT")
    );
    let unique = support::unique_name("af_stall").replace('-', "_");
    let admin = pool(installation.db.url.expose()).await;
    sqlx::query(&format!("CREATE ROLE {unique} LOGIN REPLICATION PASSWORD 'stall-pw'")).execute(&admin).await.unwrap();
    let mut source = url::Url::parse(installation.db.url.expose()).unwrap();
    source.set_username(&unique).unwrap();
    source.set_password(Some("stall-pw")).unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (archiver, logs) = wal_archiver(source.as_str(), &store, spool.path(), &unique, &[]);
    let wal_archiving = |af: &Artifortress| {
        let conditions = af.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        conditions.into_iter().find(|c| c.type_ == "WalArchiving")
    };
    let is = |status: ConditionStatus, reason: &'static str| {
        move |af: &Artifortress| wal_archiving(af).is_some_and(|c| c.status == status && c.reason == reason)
    };
    let api = installation.api::<Artifortress>();
    wait_until(&api, "production", Duration::from_secs(60), is(ConditionStatus::True, "Streaming")).await;
    let stalled_gauge = || {
        let metrics = installation.ctx.metrics.encode();
        metrics
            .lines()
            .find(|l| l.starts_with("artifortress_wal_stalled{installation=\"production\"} "))
            .map(str::to_string)
    };
    assert_eq!(stalled_gauge().as_deref(), Some("artifortress_wal_stalled{installation=\"production\"} 0"));
    let thresholds = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(artifortress_operator::alerts::THRESHOLDS_FILE),
    )
    .unwrap();
    let rules = artifortress_operator::alerts::rule_file(
        &artifortress_operator::alerts::parse(&thresholds).unwrap(),
        "https://example.invalid/runbooks",
    );
    let exporter = support::prometheus::serve_metrics(installation.ctx.metrics.clone()).await;
    let prometheus = support::prometheus::Prometheus::start(&rules, &exporter);
    prometheus.ready().await;
    let stalled_alert = |alerts: Vec<(String, String, String)>| {
        alerts.into_iter().find(|(name, _, on)| name == "ArtifortressWalArchiverStalled" && on == "production")
    };

    // The source keeps writing; the receiver is cut off and refused from now on.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    sqlx::query(&format!("CREATE TABLE ledger_{unique} (id int PRIMARY KEY, note text)"))
        .execute(&admin)
        .await
        .unwrap();
    let writing = {
        let (admin, stop, table) = (admin.clone(), stop.clone(), format!("ledger_{unique}"));
        tokio::spawn(async move {
            let mut id = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                id += 1;
                sqlx::query(&format!("INSERT INTO {table} VALUES ($1, repeat('x', 500))"))
                    .bind(id)
                    .execute(&admin)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    sqlx::query(&format!("ALTER ROLE {unique} NOREPLICATION")).execute(&admin).await.unwrap();
    let cut = std::time::Instant::now();
    sqlx::query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1")
        .bind(&unique)
        .execute(&admin)
        .await
        .unwrap();
    let af =
        wait_until(&api, "production", Duration::from_secs(30), is(ConditionStatus::False, "ArchiverStalled")).await;
    let took = cut.elapsed();
    assert!(took <= Duration::from_secs(10), "WalArchiving turned False after {took:?}");
    let message = wal_archiving(&af).unwrap().message;
    assert!(message.contains("no WAL arrives") && message.to_lowercase().contains("replication"), "{message}");
    assert!(af.status.unwrap().wal.unwrap().stalled.is_some());
    assert_eq!(stalled_gauge().as_deref(), Some("artifortress_wal_stalled{installation=\"production\"} 1"));
    // Prometheus sees the gauge and, after the rule's 30 s, fires.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        match stalled_alert(prometheus.alerts().await) {
            Some((_, state, _)) if state == "firing" => break,
            other => assert!(std::time::Instant::now() < deadline, "the stall alert did not fire: {other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Given REPLICATION back, it streams again and says so.
    sqlx::query(&format!("ALTER ROLE {unique} REPLICATION")).execute(&admin).await.unwrap();
    wait_until(&api, "production", Duration::from_secs(60), is(ConditionStatus::True, "Streaming")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(alert) = stalled_alert(prometheus.alerts().await) {
        assert!(std::time::Instant::now() < deadline, "the stall alert stayed: {alert:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writing.await.unwrap();
    stop_archiver(archiver, &logs).await;
    // The slot and role were the test's, on the shared server.
    for _ in 0..50 {
        if sqlx::query("SELECT pg_drop_replication_slot($1)").bind(&unique).execute(&admin).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sqlx::query(&format!("DROP TABLE ledger_{unique}")).execute(&admin).await.unwrap();
    sqlx::query(&format!("DROP ROLE {unique}")).execute(&admin).await.unwrap();
}
