//! What a store holds, without a cluster: its backups (list, show, delete)
//! and the drills its verdicts record (list, chart).

use std::path::PathBuf;

use artifortress_operator::engine::progress::human_bytes;
use artifortress_operator::engine::{catalog, history};

use super::failure::{Failure, engine_failure, failed};
use super::flags::{Output, StoreArg, print_as, write_file};

#[derive(clap::Subcommand)]
pub enum BackupsCommand {
    /// Every backup: snapshot time, source, size, verify mode, whether it is
    /// complete, and its last drill's verdict with RTO and RPO.
    List {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// One backup's manifest, tables and drills.
    Show {
        #[command(flatten)]
        store: StoreArg,
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Delete a backup: its manifest first, then its data. The newest complete
    /// backup is refused without --force.
    Delete {
        #[command(flatten)]
        store: StoreArg,
        name: String,
        /// Also delete the newest complete backup.
        #[arg(long)]
        force: bool,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

pub async fn backups(command: BackupsCommand) -> Result<(), Failure> {
    match command {
        BackupsCommand::List { store, output } => {
            let store = store.open().await?;
            let backups = catalog::backups(store.as_ref()).await.map_err(engine_failure)?;
            print_as(output, &backups, |b| catalog::backups_table(b));
        }
        BackupsCommand::Show { store, name, output } => {
            let store = store.open().await?;
            let backup = catalog::backup(store.as_ref(), &name).await.map_err(engine_failure)?;
            print_as(output, &backup, catalog::show_text);
        }
        BackupsCommand::Delete { store, name, force, output } => {
            let store = store.open().await?;
            let deleted = catalog::delete(store.as_ref(), &name, force).await.map_err(engine_failure)?;
            print_as(output, &deleted, |d| {
                let mut out = format!("deleted {}: {} objects, {}\n", d.name, d.objects, human_bytes(d.bytes));
                if let Some(wal) = &d.wal {
                    let bytes = human_bytes(wal.bytes);
                    out += &format!("WAL no remaining base backup needs: {} segments, {bytes}\n", wal.segments);
                    if let Some(until) = wal.locked_until {
                        out += &format!(
                            "and {} more locked until {until}: deleted by a deletion after then\n",
                            wal.locked
                        );
                    }
                }
                out
            });
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum DrillsCommand {
    /// Every stored drill verdict, oldest first.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// Only the drills of this backup.
        #[arg(long)]
        backup: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
    /// The RTO and RPO of the last 20 drills against their objectives, as SVG.
    Chart {
        #[command(flatten)]
        store: StoreArg,
        /// Only the drills of this backup.
        #[arg(long)]
        backup: Option<String>,
        /// Where to write the SVG.
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn drills(command: DrillsCommand) -> Result<(), Failure> {
    match command {
        DrillsCommand::List { store, backup, output } => {
            let store = store.open().await?;
            let drills = catalog::drills(store.as_ref(), backup.as_deref()).await.map_err(engine_failure)?;
            print_as(output, &drills, |d| catalog::drills_table(d));
        }
        DrillsCommand::Chart { store, backup, out } => {
            let store = store.open().await?;
            let drills = catalog::drills(store.as_ref(), backup.as_deref()).await.map_err(engine_failure)?;
            let svg = history::svg(&drills).ok_or_else(|| {
                failed(format!("no drill in {} measured an RTO or RPO: nothing to chart", store.url()))
            })?;
            write_file(&out, svg)?;
            let charted = drills.len().min(history::HISTORY_DRILLS);
            eprintln!("drills: chart of {charted} drills written to {}", out.display());
        }
    }
    Ok(())
}
