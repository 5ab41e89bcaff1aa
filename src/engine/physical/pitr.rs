//! Point-in-time restore into a scratch instance, and the physical drill.
//!
//! Restore: the base backup streamed from the store (SHA-256 checked) and
//! unpacked, the WAL segments from its start downloaded (each checked against
//! the SHA-256 its key carries), `pg_verifybackup` against PostgreSQL's own
//! manifest and that WAL, then the server of the source's major started with
//! recovery to the target and promoted.
//!
//! Drill: the heartbeat gives ground truth. After the restore, the newest
//! heartbeat in the restored instance is the newest moment provably
//! recovered; the achieved RPO is the gap from the target (for `latest`, the
//! moment the drill started) back to it. Exact row counts for the recovery
//! point cannot be had from a source that keeps writing: no snapshot of the
//! source corresponds to an arbitrary WAL position (a transaction's commit
//! record can precede the moment it becomes visible to new snapshots), so
//! counts taken on the source at any moment can differ from the restored
//! point by the transactions in flight. The checks that are exact instead:
//! checksums of every file against PostgreSQL's backup manifest, the WAL's own
//! CRCs during replay, amcheck on the restored indexes, and the heartbeat's
//! recovery point; and a target at a time between two known commits restores
//! exactly the rows committed before it (tests/physical.rs).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use super::super::EngineError;
use super::super::checks::{CheckResult, RestoredCheck};
use super::super::encryption::{KEY_UNAVAILABLE, Keyring};
use super::super::objectives;
use super::super::progress::{Progress, human_bytes, human_duration};
use super::super::report::{self, ReportContext};
use super::super::verdict::{BackupInfo, DrillMode, DrillResult, FinalPhase, RtoBasis, ServerMajors, Timings, Verdict};
use super::instance::{self, Instance};
use super::tools::PhysicalTools;
use super::{BaseManifest, Lsn, base, heartbeat};
use crate::store::BackupStore;
use unpack::Checksums;

mod fetch;
mod findings;
mod unpack;
pub use findings::{DrillFindings, check};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Everything the archive has.
    Latest,
    Time(DateTime<Utc>),
    Lsn(Lsn),
    /// A time drawn at random within this window before the drill (as AWS
    /// restore testing does): a drill of a moment nobody chose. Resolved to
    /// a `Time` when the drill starts ([`draw_time`]).
    Random(Duration),
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        if s == "latest" {
            return Ok(Target::Latest);
        }
        if let Ok(lsn) = s.parse::<Lsn>() {
            return Ok(Target::Lsn(lsn));
        }
        if let Some(window) = s.strip_prefix("random:") {
            return match humantime::parse_duration(window) {
                Ok(w) if !w.is_zero() => Ok(Target::Random(w)),
                _ => Err(format!("{s:?}: the window of a random target is a duration, e.g. random:24h")),
            };
        }
        DateTime::parse_from_rfc3339(s).map(|t| Target::Time(t.with_timezone(&Utc))).map_err(|_| {
            format!("{s:?} is not a recovery target: use latest, a time (RFC 3339, e.g. 2026-12-01T10:00:00Z), an LSN (e.g. 16/B374D848) or random:<window> (e.g. random:24h)")
        })
    }
}

pub struct PitrRequest {
    /// The base backup; None: the newest one that precedes the target.
    pub backup: Option<String>,
    pub dir: std::path::PathBuf,
    pub port: u16,
    pub target: Target,
    /// How long replay may take.
    pub timeout: Duration,
    /// What opens an encrypted base and its WAL.
    pub keys: Keyring,
    /// The base manifest's pinned version (with `backup`; see `pinned`).
    pub manifest_version: Option<String>,
}

pub struct Restored {
    pub instance: Instance,
    pub manifest: BaseManifest,
    pub segments: usize,
    pub wal_bytes: u64,
    pub download_seconds: f64,
    pub verify_seconds: f64,
    pub replay_seconds: f64,
    /// Objects changed since the backup (see `pinned`); their pinned versions were read.
    pub warnings: Vec<String>,
}

/// Restores the base the drill chose (`warnings`: what reading its manifest
/// found) into a new scratch instance, started and promoted, replaying up to
/// the request's target (a random one already drawn).
async fn restore(
    store: &dyn BackupStore,
    request: &PitrRequest,
    manifest: BaseManifest,
    mut warnings: Vec<String>,
    progress: &Progress,
) -> Result<Restored, EngineError> {
    let target = request.target;
    if let Some(encryption) = &manifest.encryption {
        request.keys.check(encryption, &format!("base backup {:?}", manifest.backup_name))?;
    }
    let tools = PhysicalTools::for_server(manifest.source.major).await?;
    instance::claim(&request.dir, request.port, &tools).await?;
    let instance = Instance {
        dir: request.dir.clone(),
        port: request.port,
        superuser: manifest.source.bootstrap_superuser.clone(),
        tools,
    };
    let started = Instant::now();
    progress.step(format!(
        "restoring base backup {} ({} stored, PostgreSQL {}) into {}",
        manifest.backup_name,
        human_bytes(manifest.base.size_bytes),
        manifest.source.server_version,
        request.dir.display()
    ));
    let key = base::data_key(&manifest);
    let pinned = manifest.base.version_id.as_deref();
    // The WAL comes down while the base unpacks: one is mostly network and
    // hashing, the other decompression and writes, and neither needs the other.
    let (checksums, mut wal, tampered) = tokio::try_join!(
        unpack_base(store, &manifest, &request.keys, &instance, progress),
        fetch::download(store, &manifest, &request.keys, &instance, progress),
        crate::engine::pinned::tampering(store, &key, pinned, "base backup"),
    )?;
    warnings.extend(tampered);
    warnings.append(&mut wal.tampering);
    let (segments, wal_bytes) = (wal.segments, wal.bytes);
    let download_seconds = started.elapsed().as_secs_f64();

    let verifying = Instant::now();
    verify_base(&instance, &checksums).await?;
    let verify_seconds = verifying.elapsed().as_secs_f64();
    let how = match checksums {
        Checksums::Match(n) => format!("{n} files' CRC-32C taken while unpacking"),
        Checksums::NotCrc32c => "checksums read back by pg_verifybackup".into(),
    };
    progress.step(format!(
        "pg_verifybackup: every file and the WAL range match PostgreSQL's manifest ({how}; {verify_seconds:.2} s)"
    ));

    configure(&instance, &manifest, target, wal.timeline)?;
    instance.hand_over().await?;
    let replaying = Instant::now();
    progress.step(format!("replaying {segments} WAL segments ({}) to {}", human_bytes(wal_bytes), describe(target)));
    if let Err(e) = instance.start_and_await_promotion(request.timeout).await {
        // Nothing is left running; the directory stays, with its server.log.
        instance.stop().await;
        return Err(e);
    }
    let replay_seconds = replaying.elapsed().as_secs_f64();
    progress.step(format!("promoted after {}", human_duration(replay_seconds)));
    Ok(Restored { instance, manifest, segments, wal_bytes, download_seconds, verify_seconds, replay_seconds, warnings })
}

fn describe(target: Target) -> String {
    match target {
        Target::Latest => "the end of the archive".into(),
        Target::Time(t) => format!("time {}", t.to_rfc3339()),
        Target::Lsn(l) => format!("LSN {l}"),
        Target::Random(w) => format!("a random time in the last {}", human_duration(w.as_secs_f64())),
    }
}

/// A random recovery target in the last `window` before `now` that the store
/// can restore: after the oldest base backup's completion, and before the
/// newest heartbeat the archiver had stored with a later upload (a time target
/// past the archive's last commit cannot be reached: PostgreSQL stops with an
/// error). Needs the archiver's heartbeat for that bound.
pub async fn draw_time(
    store: &dyn BackupStore,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, EngineError> {
    let status = super::wal::newest_status(store).await?;
    // An archiver before archivedHeartbeatAt: its newest heartbeat and upload
    // (the upload may not hold the heartbeat yet: a draw can miss by a second).
    let archived = status
        .as_ref()
        .and_then(|s| s.archived_heartbeat_at.or_else(|| Some(s.last_heartbeat_at?.min(s.last_upload_at?))));
    let Some(archived) = archived else {
        return Err(EngineError::Config(format!(
            "a random recovery target needs the WAL archiver's heartbeat (wal --heartbeat, or walArchive.heartbeat) in {}: it bounds where the archive ends",
            store.url()
        )));
    };
    let oldest_base = base::all(store).await?.into_iter().map(|m| m.completed_at).min();
    let oldest_base =
        oldest_base.ok_or_else(|| EngineError::Config(format!("no complete base backup in {}", store.url())))?;
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let from = (now.checked_sub_signed(window).unwrap_or(oldest_base)).max(oldest_base) + chrono::Duration::seconds(1);
    let to = archived - chrono::Duration::seconds(1);
    if from >= to {
        return Err(EngineError::Config(format!(
            "no restorable moment in the window: the oldest base backup completed at {}, the archive's newest heartbeat is at {}",
            oldest_base.to_rfc3339(),
            archived.to_rfc3339()
        )));
    }
    let span = (to - from).num_milliseconds().max(1) as u64;
    Ok(from + chrono::Duration::milliseconds(fastrand::u64(0..span) as i64))
}

/// The newest base backup that ended before a time target (any for the others).
async fn choose_base(store: &dyn BackupStore, target: Target) -> Result<BaseManifest, EngineError> {
    let Target::Time(at) = target else { return base::latest(store).await };
    let best = base::all(store)
        .await?
        .into_iter()
        .filter(|m| m.completed_at < at)
        .reduce(|best, m| if m.completed_at > best.completed_at { m } else { best });
    best.ok_or_else(|| {
        EngineError::Config(format!("no base backup in {} completed before {}", store.url(), at.to_rfc3339()))
    })
}

/// Streams the base from the store into `data/`, checking its SHA-256 and
/// each file against PostgreSQL's manifest (see [`unpack`]).
async fn unpack_base(
    store: &dyn BackupStore,
    manifest: &BaseManifest,
    keys: &Keyring,
    instance: &Instance,
    progress: &Progress,
) -> Result<Checksums, EngineError> {
    let key = base::data_key(manifest);
    let meter = progress.meter(
        "downloading and unpacking the base backup",
        Some(super::super::progress::Total::Exact(manifest.base.size_bytes)),
    );
    let counter = meter.counter();
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
    let tap = hasher.clone();
    let stream = store.get_stream_version(&key, manifest.base.version_id.as_deref()).await?.inspect_ok(move |chunk| {
        tap.lock().unwrap().update(chunk);
        counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    });
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let data = instance.data();
    let keys = manifest.encryption.is_some().then(|| keys.clone());
    let unpacked = tokio::task::spawn_blocking(move || match keys {
        Some(keys) => unpack::unpack(keys.open(reader)?, &data),
        None => unpack::unpack(reader, &data),
    })
    .await
    .map_err(|e| EngineError::io("unpacking the base backup")(std::io::Error::other(e)))?;
    drop(meter);
    let sha256 = hex::encode(hasher.lock().unwrap().clone().finalize());
    let corrupt = |detail: String| EngineError::Corrupt { backup: manifest.backup_name.clone(), detail };
    if sha256 != manifest.base.sha256 {
        return Err(corrupt(format!("{key} has SHA-256 {sha256}, its manifest says {}", manifest.base.sha256)));
    }
    let sums = unpacked.map_err(|e| corrupt(format!("{key} does not unpack: {e}")))?;
    let pg_manifest = std::fs::read(instance.data().join("backup_manifest"))
        .map_err(|e| corrupt(format!("{key} has no readable backup_manifest: {e}")))?;
    unpack::compare(&pg_manifest, &sums).map_err(corrupt)
}

/// pg_verifybackup: the files against PostgreSQL's manifest (their checksums
/// only when unpacking did not compare them) and the WAL range, parsed.
async fn verify_base(instance: &Instance, checksums: &Checksums) -> Result<(), EngineError> {
    let mut command = tokio::process::Command::new(instance.tools.bin("pg_verifybackup"));
    if matches!(checksums, Checksums::Match(_)) {
        command.arg("--skip-checksums");
    }
    let out = command
        .arg("--quiet")
        .arg(format!("--wal-directory={}", instance.wal().display()))
        .arg(instance.data())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(EngineError::io("running pg_verifybackup"))?;
    if out.status.success() {
        return Ok(());
    }
    let detail = String::from_utf8_lossy(&out.stderr).lines().take(5).collect::<Vec<_>>().join(" | ");
    Err(EngineError::Corrupt {
        backup: instance.dir.display().to_string(),
        detail: format!("pg_verifybackup: {detail}"),
    })
}

/// Our settings for the scratch instance, appended to postgresql.auto.conf
/// (read last, so they override the source's): its own port and socket, no
/// TCP, no archiving, the source's recovery settings, recovery to the target.
/// The source's postgresql.conf and pg_hba.conf are kept beside, renamed.
fn configure(instance: &Instance, manifest: &BaseManifest, target: Target, timeline: u32) -> Result<(), EngineError> {
    let data = instance.data();
    let io = |what: &str| EngineError::io(format!("configuring the scratch instance: {what}"));
    for file in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
        if data.join(file).exists() {
            std::fs::rename(data.join(file), data.join(format!("{file}.source"))).map_err(io(file))?;
        }
    }
    std::fs::write(
        data.join("postgresql.conf"),
        "# artifortress-operator scratch instance: settings in postgresql.auto.conf\n",
    )
    .map_err(io("postgresql.conf"))?;
    std::fs::write(
        data.join("pg_hba.conf"),
        "# the scratch instance: its Unix socket only, in a directory of its own\nlocal all all trust\n",
    )
    .map_err(io("pg_hba.conf"))?;
    let mut settings = vec![
        ("port".to_string(), instance.port.to_string()),
        ("listen_addresses".into(), String::new()),
        ("unix_socket_directories".into(), instance.dir.display().to_string()),
        ("archive_mode".into(), "off".into()),
        ("hot_standby".into(), "on".into()),
        ("hba_file".into(), data.join("pg_hba.conf").display().to_string()),
        ("ident_file".into(), data.join("pg_ident.conf.missing").display().to_string()),
        ("ssl".into(), "off".into()),
        ("logging_collector".into(), "off".into()),
        ("cluster_name".into(), "artifortress-scratch".into()),
        ("restore_command".into(), format!("cp \"{}/%f\" \"%p\"", instance.wal().display())),
        // The timeline the fetched WAL follows: the base's own, or the newest
        // one the source was promoted to after it.
        ("recovery_target_timeline".into(), timeline.to_string()),
        ("recovery_target_action".into(), "promote".into()),
    ];
    for (name, value) in &manifest.source.recovery_settings {
        settings.push((name.clone(), value.clone()));
    }
    match target {
        Target::Latest => {}
        Target::Time(t) => {
            settings.push(("recovery_target_time".into(), t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()))
        }
        Target::Lsn(l) => settings.push(("recovery_target_lsn".into(), l.to_string())),
        Target::Random(_) => unreachable!("the drill draws a random target's time before restoring"),
    }
    let mut auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap_or_default();
    auto.push_str("\n# artifortress-operator: the scratch instance's own settings, over the source's\n");
    for (name, value) in settings {
        auto.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    std::fs::write(data.join("postgresql.auto.conf"), auto).map_err(io("postgresql.auto.conf"))?;
    std::fs::write(data.join("recovery.signal"), "").map_err(io("recovery.signal"))?;
    Ok(())
}

/// A physical drill: what to restore and what it is judged by.
pub struct PhysicalDrill {
    pub restore: PitrRequest,
    pub rpo: Option<Duration>,
    pub rto: Option<Duration>,
    /// Keep the instance running after the drill.
    pub keep: bool,
    /// Names the verdict in the store: `<base>/drills/<drill>.json`.
    pub drill: String,
    /// The application's checks of the restored database (as in logical drills).
    pub check: Option<Box<dyn RestoredCheck>>,
}

/// What a physical drill leaves: its verdict (stored beside the base) and,
/// when the restore got that far, the restore's numbers and findings.
pub struct PhysicalOutcome {
    pub verdict: Verdict,
    /// The reason of each of the verdict's failures, in their order.
    pub reasons: Vec<String>,
    pub restored: Option<(Restored, DrillFindings)>,
}

/// Restores, checks, judges and stores the verdict. Refusals (a directory or
/// port that is not the drill's to use) are errors; everything that failed
/// after that is a `Failed` verdict with what was measured.
pub async fn drill(
    store: &dyn BackupStore,
    mut request: PhysicalDrill,
    progress: &Progress,
) -> Result<PhysicalOutcome, EngineError> {
    let started = Utc::now();
    if let Target::Random(window) = request.restore.target {
        let at = draw_time(store, window, started).await?;
        progress.step(format!("recovery target drawn at random: {}", at.to_rfc3339()));
        request.restore.target = Target::Time(at);
    }
    // Read once, at its pinned version when given; a newer one written over it is reported.
    let (manifest, tampered) = match &request.restore.backup {
        Some(name) => base::load_pinned(store, name, request.restore.manifest_version.as_deref()).await?,
        None => (choose_base(store, request.restore.target).await?, None),
    };
    let (mut failures, mut reasons) = (Vec::new(), Vec::new());
    let mut warnings = Vec::new();
    let mut fail = |why: &str, message: String| {
        reasons.push(why.to_string());
        failures.push(message);
    };
    let (mut rpo, mut rto, mut timings, mut restored) = (None, None, Timings::default(), None);
    let mut checked = CheckResult::default();
    let mut recovery_point = manifest.completed_at;
    match restore(store, &request.restore, manifest.clone(), tampered.into_iter().collect(), progress).await {
        // A base no configured key opens is what the drill found, not a mistake in the request.
        Err(e) if e.is_usage() && e.reason() != Some(KEY_UNAVAILABLE) => return Err(e),
        Err(e) => fail(e.reason().unwrap_or("RestoreFailed"), e.to_string()),
        Ok(r) => {
            warnings.extend(r.warnings.iter().cloned());
            let usable = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;
            let (measured, failure) = objectives::evaluate("RTO", usable, request.rto);
            if let Some(f) = failure {
                fail("RTOMissed", f);
            }
            rto = Some(measured);
            timings.download_seconds = Some(r.download_seconds);
            timings.restore_seconds = Some(r.verify_seconds + r.replay_seconds);
            timings.usable_seconds = Some(usable);
            match check(&r, request.restore.target, started).await {
                Err(e) => fail("VerificationFailed", e.to_string()),
                Ok(found) => {
                    warnings.extend(found.warnings.iter().cloned());
                    timings.parity_seconds = Some(found.amcheck_seconds);
                    timings.verified_seconds = Some((Utc::now() - started).num_milliseconds() as f64 / 1000.0);
                    match (found.rpo_seconds, found.newest_heartbeat) {
                        (Some(gap), Some(at)) => {
                            recovery_point = at;
                            let (measured, failure) = objectives::evaluate("RPO", gap, request.rpo);
                            if let Some(f) = failure {
                                fail("RPOMissed", f);
                            }
                            rpo = Some(measured);
                        }
                        _ if request.rpo.is_some() => fail(
                            "RPOUnmeasured",
                            format!(
                                "an RPO objective was given and the restored database has no {} rows to measure it (run wal with --heartbeat)",
                                heartbeat::TABLE
                            ),
                        ),
                        _ => warnings
                            .push(format!("RPO not measured: no {} rows in the restored database", heartbeat::TABLE)),
                    }
                    if let Some(check) = &request.check {
                        let result = match r.instance.database_url(&manifest.source.database) {
                            Ok(url) => check.check(&url, progress).await,
                            Err(e) => Err(e.into()),
                        };
                        match result {
                            Ok(mut result) => {
                                for (why, message) in std::mem::take(&mut result.failures) {
                                    fail(&why, message);
                                }
                                warnings.append(&mut result.warnings);
                                checked = result;
                            }
                            Err(e) => fail("VerificationFailed", format!("application check: {e}")),
                        }
                    }
                    restored = Some((r, found));
                }
            }
        }
    }
    if !request.keep {
        let instance = restored.as_ref().map(|(r, _)| &r.instance);
        if let Some(instance) = instance
            && let Err(e) = instance.remove().await
        {
            warnings.push(format!("the scratch instance was not removed: {e}"));
        }
    }
    let passed = failures.is_empty();
    let completed_at = Utc::now();
    timings.total_seconds = Some((completed_at - started).num_milliseconds() as f64 / 1000.0);
    let mut verdict = Verdict {
        verdict_version: super::super::verdict::VERDICT_VERSION,
        phase: if passed { FinalPhase::Succeeded } else { FinalPhase::Failed },
        result: if passed { DrillResult::Passed } else { DrillResult::Failed },
        reason: if passed { None } else { reasons.first().cloned() },
        failures,
        tampering: super::super::pinned::tampered(&warnings),
        warnings,
        roles_created: Vec::new(),
        server_majors: Some(ServerMajors { source: manifest.source.major, target: manifest.source.major }),
        rto_basis: rto.as_ref().map(|_| RtoBasis::Usable),
        backup: Some(BackupInfo {
            name: manifest.backup_name.clone(),
            location: store.location(&format!("{}/", manifest.backup_name)),
            snapshot_time: recovery_point,
            completed_at: manifest.completed_at,
            fresh: false,
        }),
        rpo,
        rto,
        timings: Some(timings),
        parity: Vec::new(),
        blobs: checked.blobs,
        application: checked.application,
        report: None,
        started_at: Some(started),
        completed_at: Some(completed_at),
        mode: DrillMode::Physical,
    };
    // The report beside the verdict, as for logical drills; the verdict is
    // what counts, so a report that cannot be stored is only a warning.
    let report_key = super::super::layout::report_key(&manifest.backup_name, &request.drill);
    let scratch =
        format!("instance in {} (port {}, Unix socket only)", request.restore.dir.display(), request.restore.port);
    let source = format!(
        "PostgreSQL {} (system {}), database {}",
        manifest.source.server_version, manifest.source.system_identifier, manifest.source.database
    );
    let context = ReportContext {
        drill_name: &request.drill,
        source: Some(&source),
        target: &scratch,
        store: &store.url(),
        history_chart: None,
    };
    verdict.report = Some(store.location(&report_key));
    if let Err(e) = store.put_bytes(&report_key, report::render(&verdict, &context).into_bytes()).await {
        progress.step(format!("warning: could not store the report: {e}"));
        verdict.report = None;
    }
    let key = super::super::layout::result_key(&manifest.backup_name, &request.drill);
    store.put_bytes(&key, verdict.to_json()).await?;
    Ok(PhysicalOutcome { verdict, reasons, restored })
}

#[cfg(test)]
mod tests;
