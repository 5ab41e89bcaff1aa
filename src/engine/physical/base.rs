//! One base backup: `pg_basebackup` over the replication protocol writes a tar
//! of the whole cluster to its stdout (PostgreSQL's own `backup_manifest` is
//! its last member), streamed through zstd and SHA-256 into the store; our
//! manifest (`base.json`), written last, records the WAL range a restore needs,
//! read from PostgreSQL's manifest as the tar passes.
//!
//! No WAL is in the tar (`-X none`): the WAL archiver (`wal`) streams it
//! through its slot, and a restore takes it from there — a base backup without
//! the WAL archiver running is refused by the restore naming the missing
//! segment, never restored half.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sha2::Digest;
use sqlx::{Connection, PgConnection};

use super::super::backup::{OutputStats, compressed_output};
use super::super::encryption::Sealing;
use super::super::progress::{Progress, human_bytes};
use super::super::{EngineError, validate_backup_name};
use super::tools::PhysicalTools;
use super::{BaseManifest, Lsn};
use crate::db::{DatabaseUrl, DbError};
use crate::store::{BackupStore, StoreError};
use artifortress_formats::physical::{BASE_FILE, BASE_MANIFEST_FILE, BaseFile, ENCRYPTED_BASE_FILE, PhysicalSource};

/// Settings a server replaying WAL must have at least as large as the source
/// (PostgreSQL refuses to recover otherwise).
pub const RECOVERY_SETTINGS: [&str; 5] = [
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
];

/// `<backup>/base.json`.
pub fn manifest_key(backup: &str) -> String {
    format!("{backup}/{BASE_MANIFEST_FILE}")
}

/// The stored base (tar) of the backup a manifest describes.
pub fn data_key(manifest: &BaseManifest) -> String {
    format!("{}/{}", manifest.backup_name, manifest.base.file)
}

/// Reads a base backup's manifest; a missing one means the base is incomplete
/// or does not exist.
pub async fn load(store: &dyn BackupStore, backup: &str) -> Result<BaseManifest, EngineError> {
    Ok(load_pinned(store, backup, None).await?.0)
}

/// [`load`] of a pinned version (`None`: the current one), with a tampering
/// warning when the key now holds another version (see `pinned`).
pub async fn load_pinned(
    store: &dyn BackupStore,
    backup: &str,
    version: Option<&str>,
) -> Result<(BaseManifest, Option<String>), EngineError> {
    let bytes = match store.get_bytes_version(&manifest_key(backup), version).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => {
            return Err(EngineError::Config(format!(
                "base backup {backup:?} not found in {}: it has no {BASE_MANIFEST_FILE} (never written, incomplete, or a logical backup)",
                store.url()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let warning = crate::engine::pinned::tampering(store, &manifest_key(backup), version, "base manifest").await?;
    let manifest = BaseManifest::parse(&bytes)
        .map_err(|e| EngineError::Corrupt { backup: backup.to_string(), detail: e.to_string() })?;
    Ok((manifest, warning))
}

/// Every complete base backup of the store (one whose manifest reads).
pub async fn all(store: &dyn BackupStore) -> Result<Vec<BaseManifest>, EngineError> {
    let mut bases = Vec::new();
    for object in store.list("").await? {
        if let Some((backup, BASE_MANIFEST_FILE)) = object.key.split_once('/')
            && let Ok(m) = load(store, backup).await
        {
            bases.push(m);
        }
    }
    Ok(bases)
}

/// The newest complete base backup of the store (by completion time).
pub async fn latest(store: &dyn BackupStore) -> Result<BaseManifest, EngineError> {
    all(store)
        .await?
        .into_iter()
        .reduce(|newest, m| if m.completed_at > newest.completed_at { m } else { newest })
        .ok_or_else(|| EngineError::Config(format!("no complete base backup in {}", store.url())))
}

/// What the source is, read over an ordinary connection before the backup.
pub async fn source_identity(source: &DatabaseUrl) -> Result<PhysicalSource, EngineError> {
    let db_err = |context: &'static str| {
        move |e| EngineError::Db(DbError::Query { context: context.into(), url: source.to_string(), source: e })
    };
    let mut conn = PgConnection::connect_with(&source.connect_options())
        .await
        .map_err(|e| DbError::Connect { url: source.to_string(), source: e })?;
    let (system_identifier, num, server_version, segment, superuser): (String, i32, String, String, String) =
        sqlx::query_as(
            "SELECT (SELECT system_identifier::text FROM pg_control_system()), \
                    current_setting('server_version_num')::int, current_setting('server_version'), \
                    current_setting('wal_segment_size'), (SELECT rolname FROM pg_roles WHERE oid = 10)",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(db_err("reading the server identity"))?;
    let wal_segment_bytes: i64 = sqlx::query_scalar("SELECT pg_size_bytes($1)")
        .bind(&segment)
        .fetch_one(&mut conn)
        .await
        .map_err(db_err("reading wal_segment_size"))?;
    let mut recovery_settings = BTreeMap::new();
    for name in RECOVERY_SETTINGS {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .map_err(db_err("reading the recovery settings"))?;
        recovery_settings.insert(name.to_string(), value);
    }
    Ok(PhysicalSource {
        system_identifier,
        major: u32::try_from(num / 10_000).unwrap_or(0),
        server_version,
        database: source.database(),
        wal_segment_bytes: u64::try_from(wal_segment_bytes).unwrap_or(16 << 20),
        bootstrap_superuser: superuser,
        recovery_settings,
    })
}

/// How the base backup's checkpoint is taken on the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoint {
    /// Spread over `checkpoint_completion_target` (PostgreSQL's default): no
    /// I/O burst on a production source, but the backup may wait minutes.
    Spread,
    /// At once: the backup starts now, the source writes its dirty pages in a burst.
    Fast,
}

/// Takes a base backup of `source` into `store` as `name`, encrypted when `sealing` says so.
pub async fn run(
    source: &DatabaseUrl,
    store: &dyn BackupStore,
    name: &str,
    checkpoint: Checkpoint,
    sealing: Option<&Sealing>,
    progress: &Progress,
) -> Result<BaseManifest, EngineError> {
    validate_backup_name(name)?;
    store.require_object_lock().await?;
    for key in [manifest_key(name), super::super::manifest::key(name)] {
        match store.get_bytes(&key).await {
            Ok(_) => {
                return Err(EngineError::Config(format!(
                    "backup {name:?} already exists in {}; choose another --name",
                    store.url()
                )));
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    store.clean_incomplete(&format!("{name}/"), std::time::Duration::ZERO).await?;
    super::capability::require_physical(source).await?;
    let identity = source_identity(source).await?;
    let tools = PhysicalTools::for_streaming(identity.major).await?;
    progress.step(format!(
        "base backup of PostgreSQL {} (system {}) with {}, {} checkpoint",
        identity.server_version,
        identity.system_identifier,
        tools.version,
        if checkpoint == Checkpoint::Fast { "fast" } else { "spread" }
    ));
    let started_at = Utc::now();
    let child = tokio::process::Command::new(tools.bin("pg_basebackup"))
        .args(["--pgdata=-", "--format=tar", "--wal-method=none", "--no-password"])
        .arg(format!("--checkpoint={}", if checkpoint == Checkpoint::Fast { "fast" } else { "spread" }))
        .envs(source.libpq_env())
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(EngineError::io(format!("starting {}", tools.bin("pg_basebackup").display())))?;
    let pg_manifest = Arc::new(Mutex::new(TarMember::new("backup_manifest")));
    let stats = Arc::new(Mutex::new(OutputStats::default()));
    {
        let pg_manifest = pg_manifest.clone();
        stats.lock().unwrap().tap = Some(Box::new(move |bytes| pg_manifest.lock().unwrap().feed(bytes)));
    }
    let meter = progress.meter("streaming the base backup", None);
    let body = compressed_output(child, "pg_basebackup", sealing, stats.clone(), meter.counter());
    let file = if sealing.is_some() { ENCRYPTED_BASE_FILE } else { BASE_FILE };
    let key = format!("{name}/{file}");
    let uploaded = store.put_stream(&key, body).await;
    drop(meter);
    let failure = stats.lock().unwrap().failure.clone();
    let stored = match (uploaded, failure) {
        (_, Some(detail)) => return Err(EngineError::Tool { tool: "pg_basebackup", detail }),
        (Err(e), None) => return Err(e.into()),
        (Ok(n), None) => n,
    };
    let (sha256, tar_bytes) = {
        let stats = stats.lock().unwrap();
        (hex::encode(stats.sha256.clone().finalize()), stats.archive_bytes)
    };
    // Pinned, as a logical backup pins its dump (see `pinned`).
    let version_id = store.current_version(&key).await?;
    let range = pg_manifest.lock().unwrap().contents().and_then(|m| wal_range(&m));
    let Some((timeline, start_lsn, end_lsn)) = range else {
        let _ = store.delete(&key).await;
        return Err(EngineError::Tool {
            tool: "pg_basebackup",
            detail: "its tar has no backup_manifest with a WAL range (PostgreSQL 13 or newer writes one)".into(),
        });
    };
    progress.step(format!(
        "stored {} (tar {}); WAL {start_lsn} to {end_lsn} on timeline {timeline} needed",
        human_bytes(stored),
        human_bytes(tar_bytes)
    ));
    let encryption = sealing.map(Sealing::describe);
    let manifest = BaseManifest {
        base_manifest_version: artifortress_formats::manifest::version_for(encryption.as_ref()),
        backup_name: name.to_string(),
        source: identity,
        started_at,
        completed_at: Utc::now(),
        timeline,
        start_lsn,
        end_lsn,
        base: BaseFile { file: file.to_string(), size_bytes: stored, sha256, tar_bytes, version_id },
        pg_basebackup_version: tools.version.clone(),
        tool_version: format!("artifortress-operator {}", env!("CARGO_PKG_VERSION")),
        encryption,
    };
    store.put_bytes(&manifest_key(name), manifest.to_json()).await?;
    Ok(manifest)
}

/// The first WAL range of PostgreSQL's backup manifest: timeline, start, end.
fn wal_range(manifest: &[u8]) -> Option<(u32, Lsn, Lsn)> {
    let doc: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let range = doc.get("WAL-Ranges")?.as_array()?.first()?;
    let timeline = u32::try_from(range.get("Timeline")?.as_u64()?).ok()?;
    let start = range.get("Start-LSN")?.as_str()?.parse().ok()?;
    let end = range.get("End-LSN")?.as_str()?.parse().ok()?;
    Some((timeline, start, end))
}

/// Watches a tar stream go by and keeps one top-level member's contents
/// (bounded: a member larger than the bound is not kept).
pub struct TarMember {
    wanted: &'static str,
    header: Vec<u8>,
    /// Bytes of the current member (plus padding) still to pass.
    remaining: u64,
    capturing: Option<Vec<u8>>,
    member_size: u64,
    found: Option<Vec<u8>>,
    ended: bool,
}

const BLOCK: usize = 512;
const MAX_MEMBER: u64 = 256 << 20;

impl TarMember {
    pub fn new(wanted: &'static str) -> TarMember {
        TarMember {
            wanted,
            header: Vec::with_capacity(BLOCK),
            remaining: 0,
            capturing: None,
            member_size: 0,
            found: None,
            ended: false,
        }
    }

    pub fn contents(&self) -> Option<Vec<u8>> {
        self.found.clone()
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.ended {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining.min(bytes.len() as u64)).unwrap_or(bytes.len());
                if let Some(buf) = self.capturing.as_mut() {
                    let room = usize::try_from(self.member_size).unwrap_or(0).saturating_sub(buf.len());
                    buf.extend_from_slice(&bytes[..take.min(room)]);
                }
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                if self.remaining == 0
                    && let Some(buf) = self.capturing.take()
                {
                    self.found = Some(buf);
                }
                continue;
            }
            let take = (BLOCK - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() == BLOCK {
                let header = std::mem::take(&mut self.header);
                self.start_member(&header);
            }
        }
    }

    fn start_member(&mut self, header: &[u8]) {
        if header.iter().all(|b| *b == 0) {
            self.ended = true;
            return;
        }
        let name = String::from_utf8_lossy(header[..100].split(|b| *b == 0).next().unwrap_or_default()).into_owned();
        let size_field = &header[124..136];
        let size = if size_field[0] & 0x80 != 0 {
            // base-256, for members of 8 GiB and more
            size_field[1..].iter().fold(0u64, |acc, b| acc.saturating_mul(256).saturating_add(u64::from(*b)))
        } else {
            let text = String::from_utf8_lossy(size_field);
            u64::from_str_radix(text.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap_or(0)
        };
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        self.remaining = padded;
        self.member_size = size;
        self.capturing = (name == self.wanted && size <= MAX_MEMBER).then(Vec::new);
        if size == 0 && self.capturing.is_some() {
            self.found = self.capturing.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            let mut h = vec![0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", data.len());
            h[124..136].copy_from_slice(size.as_bytes());
            h[156] = b'0';
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn the_wanted_member_is_kept_whatever_the_chunking() {
        let manifest = br#"{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]}"#;
        let big = vec![7u8; 5000];
        let tar = tar_with(&[("base/1/1259", &big), ("backup_manifest", manifest), ("after", b"x")]);
        for chunk in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let mut m = TarMember::new("backup_manifest");
            for piece in tar.chunks(chunk) {
                m.feed(piece);
            }
            assert_eq!(m.contents().as_deref(), Some(&manifest[..]), "chunk {chunk}");
        }
        let (tli, start, end) = wal_range(manifest).unwrap();
        assert_eq!((tli, start.to_string(), end.to_string()), (1, "0/2000028".into(), "0/2000100".into()));
        let mut none = TarMember::new("backup_manifest");
        none.feed(&tar_with(&[("other", b"y")]));
        assert_eq!(none.contents(), None);
    }
}
