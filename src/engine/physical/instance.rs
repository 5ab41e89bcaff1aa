//! A scratch PostgreSQL instance the engine starts itself: a directory of its
//! own (`data/` the cluster, `wal/` the segments to replay, `server.log`) and
//! a port, reachable only through a Unix socket in that directory.
//!
//! The scratch-only rules, as for scratch databases: the directory must be
//! absent, empty, or carry our marker file (then it is ours to wipe); the port
//! must be free. A directory that is anything else — someone's data directory,
//! a home — is refused and left untouched; so is a port something listens on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::super::EngineError;
use super::tools::PhysicalTools;

pub const MARKER: &str = "artifortress-scratch-instance";

pub struct Instance {
    pub dir: PathBuf,
    pub port: u16,
    pub superuser: String,
    pub tools: PhysicalTools,
}

/// PostgreSQL refuses to run as root: as root, the instance runs as `postgres`.
fn server_user() -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    root.then_some("postgres")
}

/// Makes `dir` ours and empty, or refuses. A running instance of ours in it is
/// stopped first.
pub async fn claim(dir: &Path, port: u16, tools: &PhysicalTools) -> Result<(), EngineError> {
    let text = dir.to_string_lossy();
    if !dir.is_absolute() || text.contains(['\'', '"', '\n', '\\']) {
        return Err(EngineError::Config(format!(
            "scratch instance directory {text:?} must be an absolute path without quotes or backslashes"
        )));
    }
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::io(format!("reading {}", dir.display()))(e)),
        Ok(mut entries) => {
            let empty = entries.next().is_none();
            if !empty {
                if !dir.join(MARKER).exists() {
                    return Err(EngineError::refused(
                        "TargetNotScratch",
                        format!(
                            "{} is not empty and was not created by artifortress-operator (no {MARKER} file): it is left untouched; give an empty or new directory",
                            dir.display()
                        ),
                    ));
                }
                let old = Instance { dir: dir.to_path_buf(), port, superuser: String::new(), tools: tools.clone() };
                old.stop().await;
                std::fs::remove_dir_all(dir).map_err(EngineError::io(format!("removing {}", dir.display())))?;
            }
        }
    }
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Err(EngineError::refused(
            "TargetNotScratch",
            format!(
                "port {port} is in use on this machine: the scratch instance needs a free port; choose another --port"
            ),
        ));
    }
    std::fs::create_dir_all(dir.join("data")).map_err(EngineError::io(format!("creating {}", dir.display())))?;
    std::fs::create_dir_all(dir.join("wal")).map_err(EngineError::io(format!("creating {}", dir.display())))?;
    std::fs::write(
        dir.join(MARKER),
        "a scratch PostgreSQL instance of artifortress-operator; removed after its drill\n",
    )
    .map_err(EngineError::io(format!("writing {}", dir.display())))?;
    Ok(())
}

impl Instance {
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn wal(&self) -> PathBuf {
        self.dir.join("wal")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = match server_user() {
            Some(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.tools.bin(program));
                c
            }
            None => tokio::process::Command::new(self.tools.bin(program)),
        };
        command.stdin(std::process::Stdio::null()).kill_on_drop(true);
        command
    }

    /// Gives the directory to the server's user (when we run as root) and the
    /// data directory the permissions PostgreSQL requires.
    pub async fn hand_over(&self) -> Result<(), EngineError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.data(), std::fs::Permissions::from_mode(0o700))
            .map_err(EngineError::io(format!("setting the mode of {}", self.data().display())))?;
        if let Some(user) = server_user() {
            let status = tokio::process::Command::new("chown")
                .args(["-R", user])
                .arg(&self.dir)
                .status()
                .await
                .map_err(EngineError::io("running chown"))?;
            if !status.success() {
                return Err(EngineError::Config(format!("chown -R {user} {} failed", self.dir.display())));
            }
        }
        Ok(())
    }

    /// Starts the server and waits until recovery has ended and it was promoted.
    pub async fn start_and_await_promotion(&self, timeout: Duration) -> Result<(), EngineError> {
        let started = Instant::now();
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", &timeout.as_secs().max(1).to_string(), "start"])
            .output()
            .await
            .map_err(EngineError::io("running pg_ctl start"))?;
        if !out.status.success() {
            return Err(self.failed("did not start"));
        }
        loop {
            match self.connect("postgres").await {
                Ok(mut conn) => {
                    let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                        .fetch_one(&mut conn)
                        .await
                        .map_err(|e| EngineError::Config(format!("asking the scratch instance: {e}")))?;
                    if !recovering {
                        return Ok(());
                    }
                }
                Err(_) if !self.dir.join("data/postmaster.pid").exists() => return Err(self.failed("stopped")),
                Err(_) => {}
            }
            if started.elapsed() > timeout {
                return Err(self.failed("was not promoted in time"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An error with what the server said about why.
    fn failed(&self, what: &str) -> EngineError {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("FATAL") || l.contains("PANIC") || l.contains("ERROR") || l.contains("HINT"))
            .collect();
        let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
        EngineError::Tool {
            tool: "postgres (scratch instance)",
            detail: format!("the scratch instance {what}: {tail} (whole log: {})", self.log().display()),
        }
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(self.port)
            .username(&self.superuser)
            .database(database)
            .application_name("artifortress-operator")
    }

    /// The instance as a connection URL (its socket directory as `host`), for
    /// checks shared with logical drills that take one.
    pub fn database_url(&self, database: &str) -> Result<crate::db::DatabaseUrl, crate::db::DbError> {
        let mut url = url::Url::parse("postgres://localhost/").expect("a valid URL");
        let _ = url.set_username(&self.superuser);
        let _ = url.set_port(Some(self.port));
        url.path_segments_mut().expect("a base URL").pop().push(database);
        url.query_pairs_mut().append_pair("host", &self.dir.display().to_string());
        crate::db::DatabaseUrl::parse(url.as_str())
    }

    pub async fn connect(&self, database: &str) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(&self.connect_options(database)).await
    }

    /// Stops the server if it runs (immediately: a scratch instance keeps nothing).
    pub async fn stop(&self) {
        if !self.data().join("postmaster.pid").exists() {
            return;
        }
        // A server that is already gone is what we want; pg_ctl's complaint is not news.
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }

    /// Stops the server and removes the directory (ours: it has the marker).
    pub async fn remove(&self) -> Result<(), EngineError> {
        self.stop().await;
        if self.dir.join(MARKER).exists() {
            std::fs::remove_dir_all(&self.dir).map_err(EngineError::io(format!("removing {}", self.dir.display())))?;
        }
        Ok(())
    }
}
