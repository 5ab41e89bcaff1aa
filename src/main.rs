//! `artifortress-operator`: one binary for the cluster and the laptop.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use artifortress_operator::api::common::{DurationString, VerifyMode};
use artifortress_operator::db::{self, DatabaseUrl, seed::Scale};
use artifortress_operator::engine::backup::BackupRequest;
use artifortress_operator::engine::drill::{BackupChoice, DrillRequest};
use artifortress_operator::engine::progress::{Progress, human_bytes, human_duration};
use artifortress_operator::engine::restore::RestoreRequest;
use artifortress_operator::engine::{self, EngineError};
use artifortress_operator::{crdgen, store, telemetry};

#[derive(Parser)]
#[command(name = "artifortress-operator", version, about = "Provable disaster recovery for Artifortress")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "json", env = "ARTIFORTRESS_LOG_FORMAT")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD with --out-dir).
    Crd {
        /// Write `<name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Apply the Artifortress schema (migrations/) to a database; safe to repeat.
    Migrate {
        /// postgres://user:password@host:port/dbname
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database: String,
    },
    /// Fill a migrated database with realistic demo data.
    Seed {
        /// postgres://user:password@host:port/dbname
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database: String,
        /// small (a few MB), medium (~100 MB) or large (~1 GB).
        #[arg(long, value_enum, default_value = "small")]
        scale: Scale,
        /// Truncate every Artifortress table first (destroys existing data).
        #[arg(long)]
        reset: bool,
    },
    /// Take one consistent backup of a database into a store.
    Backup {
        /// Database to back up: postgres://user:password@host:port/dbname
        #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
        source: String,
        #[command(flatten)]
        store: StoreArg,
        /// Backup name (default: backup-YYYYMMDD-HHMMSS).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Restore a backup into a scratch database and verify it against the manifest.
    Restore {
        #[command(flatten)]
        store: StoreArg,
        /// Name of the backup to restore.
        #[arg(long)]
        backup: String,
        #[command(flatten)]
        target: RestoreArgs,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// The HTTP server for one installation, without Kubernetes controllers:
    /// /health/live, /health/ready, /v1/admin/ops/summary, /metrics.
    Serve(ServeArgs),
    /// A full recovery drill: backup (or existing), restore, parity, RPO/RTO, report.
    /// Exit code 0 = passed, 1 = drill failed, 2 = bad usage or configuration.
    Drill {
        /// Database to back up for a fresh drill: postgres://…
        #[arg(long, env = "SOURCE_DATABASE_URL", hide_env_values = true)]
        source: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Restore this existing backup instead of taking a fresh one.
        #[arg(long, conflicts_with = "latest")]
        backup: Option<String>,
        /// Restore the newest complete backup in the store.
        #[arg(long)]
        latest: bool,
        #[command(flatten)]
        target: RestoreArgs,
        #[command(flatten)]
        verify: VerifyArgs,
        /// Recovery point objective, e.g. 15m.
        #[arg(long)]
        rpo: Option<String>,
        /// Recovery time objective, e.g. 30m.
        #[arg(long)]
        rto: Option<String>,
        /// Write the Markdown report here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write the JSON result (the shape of RecoveryDrill.status) here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Keep the scratch database after the drill.
        #[arg(long)]
        keep_target: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The installation's database: postgres://user:password@host:port/dbname
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database: String,
    /// The installation's object storage, checked by readiness: s3://bucket/prefix?… or file:///path
    #[arg(long)]
    object_store: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Name of the installation (in audit rows, metrics and `?installation=`).
    #[arg(long, default_value = "default")]
    installation: String,
    /// Tokens file for the admin API: lines `sha256:<hex of the token's SHA-256> <admin|viewer> <actor>`.
    #[arg(long, conflicts_with = "kubeconfig")]
    tokens_file: Option<PathBuf>,
    /// Decide admin access with Kubernetes TokenReview and SubjectAccessReview
    /// (get artifortresses/opssummary in --namespace), using this kubeconfig.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace whose RBAC decides who is admin (with --kubeconfig).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// SLO thresholds as YAML (the `slo` block of an Artifortress spec); default thresholds otherwise.
    #[arg(long)]
    slo_thresholds: Option<PathBuf>,
    /// Bound on each readiness check.
    #[arg(long, default_value = "2s")]
    check_timeout: String,
    /// How long a readiness result is reused.
    #[arg(long, default_value = "2s")]
    ready_cache: String,
    /// How often the ops-summary metrics are refreshed.
    #[arg(long, default_value = "30s")]
    refresh_interval: String,
}

#[derive(clap::Args)]
struct StoreArg {
    /// Where backups live: file:///path or s3://bucket/prefix?endpoint=…&region=…&path_style=true
    /// (S3 credentials from the AWS environment, never from the URL).
    #[arg(long)]
    store: String,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Tables to verify, as schema.table (repeat or comma-separate); default: all user tables.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    /// counts (exact row counts) or checksums (counts plus content digests).
    #[arg(long, value_enum, default_value = "counts")]
    verify: VerifyMode,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// Scratch database to restore into (dropped and recreated): postgres://…/scratch_db
    #[arg(long, env = "TARGET_DATABASE_URL", hide_env_values = true)]
    target: String,
    /// Parallel pg_restore jobs (default: CPU count).
    #[arg(long)]
    jobs: Option<u32>,
    /// Directory to stage the archive in (pg_restore -j needs a file); default: system temp.
    #[arg(long)]
    staging_dir: Option<PathBuf>,
}

impl RestoreArgs {
    fn request(&self, backup: String, verify: &VerifyArgs) -> RestoreRequest {
        RestoreRequest {
            backup,
            jobs: self.jobs,
            tables: verify.tables.clone(),
            verify: verify.verify,
            staging_dir: self.staging_dir.clone(),
        }
    }
}

fn duration_flag(flag: &str, value: &str) -> Result<std::time::Duration, Failure> {
    DurationString(value.to_string()).parse().map_err(|e| usage(format!("--{flag}: {e}")))
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    use artifortress_operator::server::{self, AppState, Installation, ServerConfig, auth};
    use std::sync::Arc;

    let database_url = DatabaseUrl::parse(&args.database).map_err(usage)?;
    let object_store = store::open(&args.object_store).await.map_err(usage)?;
    let config = ServerConfig {
        check_timeout: duration_flag("check-timeout", &args.check_timeout)?,
        ready_cache: duration_flag("ready-cache", &args.ready_cache)?,
    };
    let refresh = duration_flag("refresh-interval", &args.refresh_interval)?;
    let slo = match &args.slo_thresholds {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--slo-thresholds {}: {e}", path.display())))?;
            serde_yaml::from_str(&text).map_err(|e| usage(format!("--slo-thresholds {}: {e}", path.display())))?
        }
        None => Default::default(),
    };
    let (authenticator, kube) = match (&args.tokens_file, &args.kubeconfig) {
        (Some(path), None) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| usage(format!("--tokens-file {}: {e}", path.display())))?;
            (auth::Authenticator::TokensFile(auth::parse_tokens_file(path, &text).map_err(usage)?), None)
        }
        (None, Some(path)) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| usage(format!("--kubeconfig: {e}")))?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| usage(format!("--kubeconfig: {e}")))?;
            let client = kube::Client::try_from(config).map_err(|e| usage(format!("--kubeconfig: {e}")))?;
            (auth::Authenticator::Kubernetes { client: client.clone() }, Some(client))
        }
        _ => return Err(usage("choose how admins are recognised: --tokens-file FILE or --kubeconfig FILE")),
    };
    let installation = Arc::new(Installation {
        name: args.installation.clone(),
        namespace: args.namespace.clone(),
        pool: server::lazy_pool(&database_url, config.check_timeout),
        database_url,
        object_store,
        slo,
    });
    let metrics = Arc::new(artifortress_operator::metrics::Metrics::new());
    let state = Arc::new(AppState::new(vec![installation.clone()], authenticator, metrics.clone(), config, kube));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(refresh);
        loop {
            tick.tick().await;
            match db::ops_summary::read(&installation.pool, &installation.database_url).await {
                Ok(signals) => metrics.record_ops(&installation.name, &signals),
                Err(e) => tracing::warn!(error = %e, "refreshing ops-summary metrics failed"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| usage(format!("--listen {}: {e}", args.listen)))?;
    eprintln!("serve: listening on http://{}", listener.local_addr().map_err(failed)?);
    server::serve(listener, state, shutdown_signal()).await.map_err(failed)
}

/// Resolves on SIGTERM (kubelet) or Ctrl-C.
async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

fn engine_failure(e: EngineError) -> Failure {
    if e.is_usage() { usage(e) } else { failed(e) }
}

fn parse_objective(flag: &str, value: Option<String>) -> Result<Option<std::time::Duration>, Failure> {
    value.map(|v| DurationString(v).parse().map_err(|e| usage(format!("--{flag}: {e}")))).transpose()
}

/// Exit codes shared by every command: 0 success, 1 the operation failed,
/// 2 bad usage or configuration.
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    artifortress_operator::install_crypto_provider();
    telemetry::init(cli.log_format);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

struct Failure {
    code: u8,
    message: String,
}

fn usage(e: impl ToString) -> Failure {
    Failure { code: EXIT_USAGE, message: e.to_string() }
}

fn failed(e: impl ToString) -> Failure {
    Failure { code: EXIT_FAILED, message: e.to_string() }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Crd { out_dir: None } => {
            print!("{}", crdgen::all_crds_yaml());
            Ok(())
        }
        Command::Crd { out_dir: Some(dir) } => {
            for path in
                crdgen::write_crds(&dir).map_err(|e| failed(format!("writing CRDs to {}: {e}", dir.display())))?
            {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Migrate { database } => {
            let url = DatabaseUrl::parse(&database).map_err(usage)?;
            let pool = db::connect(&url, 1).await.map_err(failed)?;
            db::migrate(&pool, &url).await.map_err(failed)?;
            eprintln!(
                "migrate: {url} is at schema version {}",
                db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
            );
            Ok(())
        }
        Command::Seed { database, scale, reset } => {
            let url = DatabaseUrl::parse(&database).map_err(usage)?;
            let pool = db::connect(&url, 2).await.map_err(failed)?;
            eprintln!("seed: filling {url} at scale {scale:?}");
            let report = db::seed::seed(&pool, &url, scale, reset).await.map_err(failed)?;
            for (table, rows) in &report.rows {
                eprintln!("seed: {table:<18} {rows:>9} rows");
            }
            eprintln!(
                "seed: done in {:.1} s, database size {:.1} MiB",
                report.seconds,
                report.database_bytes as f64 / 1_048_576.0
            );
            Ok(())
        }
        Command::Backup { source, store, name, verify } => {
            let source = DatabaseUrl::parse(&source).map_err(usage)?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let request = BackupRequest {
                name: name.unwrap_or_else(|| engine::backup::default_name(chrono::Utc::now())),
                tables: verify.tables,
                verify: verify.verify,
            };
            let m = engine::backup::run(&source, store.as_ref(), &request, &Progress::new("backup"))
                .await
                .map_err(engine_failure)?;
            println!("backup     {}", m.backup_name);
            println!("location   {}", store.location(&format!("{}/", m.backup_name)));
            println!(
                "source     {} on server {} (PostgreSQL {})",
                m.source.database, m.source.system_identifier, m.source.server_version
            );
            println!("snapshot   {}", m.snapshot_time.to_rfc3339());
            println!(
                "duration   {}",
                human_duration((m.completed_at - m.started_at).num_milliseconds() as f64 / 1000.0)
            );
            println!(
                "dump       {} (archive {}), sha256 {}",
                human_bytes(m.dump.size_bytes),
                human_bytes(m.dump.archive_bytes),
                m.dump.sha256
            );
            println!("tables     {} ({} rows)", m.tables.len(), m.tables.iter().map(|t| t.rows).sum::<i64>());
            Ok(())
        }
        Command::Restore { store, backup, target, verify } => {
            let target_url = DatabaseUrl::parse(&target.target).map_err(usage)?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let outcome = engine::restore::run(
                store.as_ref(),
                &target_url,
                &target.request(backup, &verify),
                &Progress::new("restore"),
            )
            .await
            .map_err(engine_failure)?;
            for p in &outcome.parity {
                let restored = p.restored.map_or("missing".to_string(), |r| r.to_string());
                println!(
                    "{:<50} expected {:>10}  restored {:>10}  {}",
                    p.table,
                    p.expected,
                    restored,
                    if p.matches { "ok" } else { "MISMATCH" }
                );
            }
            println!(
                "timings    download+verify {:.3} s, recreate+pg_restore {:.3} s, parity {:.3} s",
                outcome.download_seconds, outcome.restore_seconds, outcome.parity_seconds
            );
            if outcome.failures.is_empty() {
                println!("restored {} into {target_url}: every table matches", outcome.manifest.backup_name);
                Ok(())
            } else {
                Err(failed(outcome.failures.join("\n")))
            }
        }
        Command::Serve(args) => serve(args).await,
        Command::Drill { source, store, backup, latest, target, verify, rpo, rto, report, json, keep_target } => {
            let source = source.map(|s| DatabaseUrl::parse(&s)).transpose().map_err(usage)?;
            let target_url = DatabaseUrl::parse(&target.target).map_err(usage)?;
            let rpo = parse_objective("rpo", rpo)?;
            let rto = parse_objective("rto", rto)?;
            let store = store::open(&store.store).await.map_err(usage)?;
            let choice = match (backup, latest) {
                (Some(name), _) => BackupChoice::Named(name),
                (None, true) => BackupChoice::Latest,
                (None, false) => BackupChoice::Fresh(BackupRequest {
                    name: engine::backup::default_name(chrono::Utc::now()),
                    tables: verify.tables.clone(),
                    verify: verify.verify,
                }),
            };
            let request = DrillRequest {
                source,
                target: target_url,
                backup: choice,
                restore: target.request(String::new(), &verify),
                rpo,
                rto,
                keep_target,
            };
            let outcome =
                engine::drill::run(store.as_ref(), &request, &Progress::new("drill")).await.map_err(engine_failure)?;
            if let Some(path) = &report {
                std::fs::write(path, &outcome.report_markdown)
                    .map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
                eprintln!("drill: report written to {}", path.display());
            }
            if let Some(path) = &json {
                let text = serde_json::to_string_pretty(&outcome.status).expect("status serialises");
                std::fs::write(path, text).map_err(|e| failed(format!("writing {}: {e}", path.display())))?;
            }
            if let Some(stored) = &outcome.status.report {
                eprintln!("drill: report stored at {stored}");
            }
            if outcome.passed() {
                Ok(())
            } else {
                Err(failed(format!("drill failed:\n  {}", outcome.status.failures.join("\n  "))))
            }
        }
    }
}
