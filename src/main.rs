//! `artifortress-operator`: one binary for the cluster and the laptop.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use artifortress_operator::db::{self, DatabaseUrl, seed::Scale};
use artifortress_operator::{crdgen, telemetry};

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
    }
}
