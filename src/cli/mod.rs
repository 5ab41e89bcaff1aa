//! The command line: one module per group of commands, each owning its flags
//! and its handler; the flag groups several commands share live in `flags`,
//! how a command fails (exit codes, messages) in `failure`.
//!
//! - `artifortress`: migrate, inspect, seed (an Artifortress database itself)
//! - `logical`, `drill`, `physical`: the engine on this machine (backups,
//!   restores, drills, WAL archiving, point-in-time drills)
//! - `catalog`: what a store holds
//! - `cluster`: `run`, the operator; `serve`: one installation's HTTP server
//! - `generate`: the CRDs, alert rules and dashboard made from the code
//! - `plugin`: `kubectl artifortress`, the on-call view through the user's kubeconfig

mod artifortress;
mod catalog;
mod cluster;
mod drill;
pub mod failure;
mod flags;
mod generate;
mod logical;
mod physical;
pub mod plugin;
mod serve;

use clap::{Parser, Subcommand};

use artifortress_operator::telemetry;

use failure::Failure;

#[derive(Parser)]
#[command(name = "artifortress-operator", version, about = "Provable disaster recovery for Artifortress")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "json", env = "ARTIFORTRESS_LOG_FORMAT")]
    pub log_format: telemetry::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD with --out-dir).
    Crd(generate::CrdArgs),
    /// Print the chart's PrometheusRule template, generated from the alert thresholds
    /// (`make alerts` writes it into the chart), or with --dashboard its Grafana dashboard.
    Alerts(generate::AlertsArgs),
    /// Apply our model of the Artifortress schema (migrations/, upstream's levels
    /// 0001–0015) to an empty demo or test database, recording each level in
    /// schema_migrations as upstream's db-migrate.sh does. A database that already
    /// has a schema is refused (one that is the complete model is left as it is).
    Migrate(artifortress::DatabaseArg),
    /// What an Artifortress database is: its schema level, what the operator's
    /// figures, audit and blob check need and it lacks, its tenants.
    Inspect(artifortress::DatabaseArg),
    /// Fill a migrated, empty database like a live Artifortress installation.
    Seed(artifortress::SeedArgs),
    /// Take one consistent backup of a database into a store.
    Backup(logical::BackupArgs),
    /// Restore a backup into a scratch database and verify it against the manifest.
    Restore(logical::RestoreCommandArgs),
    /// A physical base backup of the whole cluster over the replication protocol
    /// (pg_basebackup; the role needs REPLICATION), streamed into a store. A
    /// restore needs the WAL from it on: run `wal` against the source first.
    BaseBackup(physical::BaseBackupArgs),
    /// The WAL archiver: streams the source's WAL through a replication slot
    /// into the store, segment by segment and the growing one every few
    /// seconds, until SIGTERM or Ctrl-C. Exit code 1 when a bound stopped it.
    Wal(physical::WalArgs),
    /// Point-in-time restore of a base backup and its WAL into a scratch
    /// PostgreSQL instance started here, then a physical drill: pg_verifybackup,
    /// amcheck, the RPO achieved (from the heartbeat). Exit code 0 = passed.
    Pitr(physical::PitrArgs),
    /// The operator: the controllers (while this replica holds the leader lease)
    /// and the HTTP server (/health/live, /health/ready, /metrics) on every replica.
    Run(Box<cluster::RunArgs>),
    /// The HTTP server for one installation, without Kubernetes controllers:
    /// /health/live, /health/ready, /v1/admin/ops/summary, /metrics.
    Serve(serve::ServeArgs),
    /// A full recovery drill: backup (or existing), restore, parity, RPO/RTO, report.
    /// Exit code 0 = passed, 1 = drill failed, 2 = bad usage or configuration.
    Drill(drill::DrillCommandArgs),
    /// What a store holds: list, show or delete backups (no cluster needed).
    Backups {
        #[command(subcommand)]
        command: catalog::BackupsCommand,
    },
    /// The drills a store's verdicts record.
    Drills {
        #[command(subcommand)]
        command: catalog::DrillsCommand,
    },
    /// Which PostgreSQL majors can be backed up and restored into with the
    /// client tools installed here (ARTIFORTRESS_PG_BINDIR: a `:`-separated list
    /// of bin directories; default: /usr/lib/postgresql/*/bin and PATH).
    Tools,
    /// One step of a drill run by the operator's Jobs. `restore` restores the
    /// backup into the scratch database and stores a record of it; `verify`
    /// compares it with the manifest, measures RPO/RTO, cleans up and stores the
    /// verdict and report next to the backup. Exit code 0 = step passed.
    DrillStep(drill::DrillStepArgs),
    /// The kubectl plugin (`kubectl artifortress`, through a link named
    /// kubectl-artifortress on the PATH): status, backup, drill, backups, drills,
    /// logs, with your kubeconfig and RBAC.
    Kubectl(plugin::PluginArgs),
}

pub async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Crd(args) => generate::crd(args),
        Command::Alerts(args) => generate::alerts(args),
        Command::Migrate(args) => artifortress::migrate(args).await,
        Command::Inspect(args) => artifortress::inspect(args).await,
        Command::Seed(args) => artifortress::seed(args).await,
        Command::Backup(args) => logical::backup(args).await,
        Command::Restore(args) => logical::restore(args).await,
        Command::BaseBackup(args) => physical::base_backup(args).await,
        Command::Wal(args) => physical::wal(args).await,
        Command::Pitr(args) => physical::pitr(args).await,
        Command::Run(args) => cluster::run(*args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Drill(args) => drill::drill(args).await,
        Command::Backups { command } => catalog::backups(command).await,
        Command::Drills { command } => catalog::drills(command).await,
        Command::Tools => logical::tools().await,
        Command::DrillStep(args) => drill::drill_step(args).await,
        Command::Kubectl(args) => plugin::run(args).await,
    }
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
