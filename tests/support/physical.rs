//! Helpers of the physical tests: the source's facts, the WAL archiver and
//! point-in-time drills run as the command line runs them, a writer whose
//! commits are timed by the client's clock.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::{assert_exit, operator, operator_bin, operator_with_env, spawn_with_logs};

pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new().max_connections(2).connect(url).await.unwrap()
}

pub async fn system_identifier(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT system_identifier::text FROM pg_control_system()").fetch_one(pool).await.unwrap()
}

pub async fn slot_count(pool: &PgPool, slot: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1")
        .bind(slot)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

pub fn wal_archiver(
    source: &str,
    store: &str,
    spool: &Path,
    slot: &str,
    extra: &[&str],
) -> (tokio::process::Child, Arc<Mutex<String>>) {
    let mut command = tokio::process::Command::new(operator_bin());
    command
        .args(["wal", "--source", source, "--store", store, "--slot", slot, "--spool"])
        .arg(spool)
        .args(["--partial-every", "1s", "--status-every", "2s"])
        .args(extra);
    spawn_with_logs(&mut command)
}

/// Waits until the archiver has recorded its slot (it then streams).
pub async fn await_slot(store_dir: &Path, system: &str, slot: &str) {
    let record = store_dir.join(format!("_wal/{system}/slot-{slot}.json"));
    for _ in 0..200 {
        if record.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the archiver did not record slot {slot} in {}", record.display());
}

/// One committed row: its id, and the client's clock just before the INSERT
/// was sent and just after its commit returned (the server's commit
/// timestamp lies between them; same machine, same clock).
#[derive(Clone, Copy)]
pub struct Commit {
    pub id: i32,
    pub sent: DateTime<Utc>,
    pub returned: DateTime<Utc>,
}

/// Commits a row every 20 ms into `ledger` until stopped.
pub fn writer(pool: PgPool, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<Vec<Commit>> {
    tokio::spawn(async move {
        let mut commits = Vec::new();
        let mut id = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            id += 1;
            let sent = Utc::now();
            sqlx::query("INSERT INTO ledger (id, note) VALUES ($1, repeat('x', 200))")
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
            commits.push(Commit { id, sent, returned: Utc::now() });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        commits
    })
}

pub fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

/// `pitr` into `instance` on `port`, with `extra` flags.
pub fn pitr(store: &str, instance: &Path, port: u16, extra: &[&str]) -> std::process::Output {
    pitr_with_env(store, instance, port, &[], extra)
}

/// [`pitr`] with more environment (a store's credentials).
pub fn pitr_with_env(
    store: &str,
    instance: &Path,
    port: u16,
    env: &[(String, String)],
    extra: &[&str],
) -> std::process::Output {
    let port = port.to_string();
    let mut args = vec!["pitr", "--store", store, "--dir", instance.to_str().unwrap(), "--port", &port];
    args.extend_from_slice(extra);
    operator_with_env(&args, env)
}

/// The rows of `ledger` a drill restored: `pitr --keep` into a new instance
/// (it must pass), counted, then the instance stopped; and the drill's output.
pub async fn drilled_rows(
    store: &str,
    env: &[(String, String)],
    extra: &[&str],
) -> ((i64, Option<i32>), std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("instance");
    let port = free_port();
    let out = pitr_with_env(store, &instance, port, env, &[&["--keep"], extra].concat());
    assert_exit(&out, 0);
    let restored = PgConnectOptions::new().socket(&instance).port(port).username("postgres").database("postgres");
    let mut conn = PgConnection::connect_with(&restored).await.unwrap();
    let counted = sqlx::query_as("SELECT count(*), max(id) FROM ledger").fetch_one(&mut conn).await.unwrap();
    drop(conn);
    stop_instance(&instance).await;
    (counted, out)
}

/// Stops an instance `pitr --keep` left running: a fast shutdown (SIGINT to
/// its postmaster), awaited.
pub async fn stop_instance(instance: &Path) {
    let pid = std::fs::read_to_string(instance.join("data/postmaster.pid")).unwrap();
    let pid = pid.lines().next().unwrap().to_string();
    std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let alive = || {
        let probe = std::process::Command::new("kill").args(["-0", &pid]).stderr(std::process::Stdio::null()).status();
        probe.unwrap().success()
    };
    while alive() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn rpo_of(out: &std::process::Output) -> f64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("rpo ")).unwrap_or_else(|| panic!("no rpo line in:\n{stdout}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap_or_else(|_| panic!("rpo not measured: {line}"))
}

/// A physical base backup named `name` with an immediate checkpoint; it must succeed.
pub fn base_backup(source: &str, store: &str, name: &str) {
    let out = operator(&["base-backup", "--source", source, "--store", store, "--name", name, "--fast-checkpoint"]);
    assert_exit(&out, 0);
}
