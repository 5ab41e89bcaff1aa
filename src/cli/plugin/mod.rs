//! `kubectl artifortress`: the on-call engineer's view of the installations in
//! a cluster. It speaks only to the Kubernetes API, with the user's own
//! kubeconfig and RBAC — no credentials of its own, nothing read from a bucket:
//! the operator keeps the resources' status in sync with the backup store.
//! The binary answers as the plugin when kubectl runs it through a link named
//! `kubectl-artifortress` on the PATH, and as `artifortress-operator kubectl`.

mod access;
mod create;
mod lists;
mod render;
mod report;
mod view;

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use k8s_openapi::api::batch::v1::Job;

use artifortress_operator::api::artifortress::Artifortress;
use artifortress_operator::api::backup::Backup;
use artifortress_operator::api::recovery_drill::RecoveryDrill;

use super::failure::Failure;
use access::Cluster;

/// The plugin's name as kubectl shows it.
pub const NAME: &str = "kubectl artifortress";

#[derive(Args)]
pub struct PluginArgs {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// kubeconfig context to use (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// One screen per installation: dependencies, schema, SLO (worst first),
    /// newest good backup against the RPO objective, last drill with RPO/RTO
    /// and time to usable, WAL archiving, blob recoverability, active Jobs.
    Status {
        /// The installation (default: every one in the namespace).
        installation: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Create a Backup of an installation; with --wait, follow it to the end
    /// (exit code 1 when it fails).
    Backup(create::BackupArgs),
    /// Create a RecoveryDrill of an installation; with --wait, follow it to the
    /// verdict (exit code 1 when it fails).
    Drill(create::DrillArgs),
    /// An installation's backups, as its Backup resources' status records them.
    Backups {
        /// The Artifortress installation.
        installation: String,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Format,
    },
    /// An installation's drills, as its RecoveryDrill resources' status records them.
    Drills {
        /// The Artifortress installation.
        installation: String,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Format,
    },
    /// A drill's report in Markdown from its status, and where the operator
    /// stored its own report and history chart.
    Report {
        /// A RecoveryDrill name.
        drill: String,
    },
    /// The log of a Backup's or RecoveryDrill's Job (the newest step's).
    Logs {
        /// A Backup or RecoveryDrill name.
        name: String,
    },
    /// Shell completion for the plugin: `source <(kubectl artifortress completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The plugin as its own program (invoked as `kubectl-artifortress`).
#[derive(clap::Parser)]
#[command(name = "kubectl-artifortress", bin_name = NAME, version,
          about = "Are we recoverable right now, and how fast? Artifortress installations through your kubeconfig")]
pub struct PluginCli {
    #[command(flatten)]
    pub args: PluginArgs,
}

pub async fn run(args: PluginArgs) -> Result<(), Failure> {
    let PluginArgs { namespace, context, command } = args;
    if let PluginCommand::Completion { shell } = command {
        let mut command = <PluginCli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, NAME.replace(' ', "-"), &mut std::io::stdout());
        return Ok(());
    }
    let cluster = Cluster::connect(namespace, context).await?;
    match command {
        PluginCommand::Status { installation, output } => status(&cluster, installation, output).await,
        PluginCommand::Backup(args) => create::backup(&cluster, args).await,
        PluginCommand::Drill(args) => create::drill(&cluster, args).await,
        PluginCommand::Backups { installation, output } => lists::backups(&cluster, &installation, output).await,
        PluginCommand::Drills { installation, output } => lists::drills(&cluster, &installation, output).await,
        PluginCommand::Report { drill } => report::report(&cluster, &drill).await,
        PluginCommand::Logs { name } => create::logs(&cluster, &name).await,
        PluginCommand::Completion { .. } => unreachable!("answered above"),
    }
}

async fn status(cluster: &Cluster, installation: Option<String>, output: Format) -> Result<(), Failure> {
    let installations = match &installation {
        Some(name) => vec![cluster.installation(name).await?],
        None => cluster.list::<Artifortress>().await?,
    };
    let backups = cluster.list::<Backup>().await?;
    let drills = cluster.list::<RecoveryDrill>().await?;
    // Jobs are the operator's; a role that may read our resources but not
    // Jobs still gets the rest.
    let jobs = cluster.list::<Job>().await.unwrap_or_default();
    let now = chrono::Utc::now();
    let views: Vec<view::InstallationView> =
        installations.iter().map(|i| view::installation_view(i, &backups, &drills, &jobs, now)).collect();
    match (output, installation.is_some()) {
        (Format::Text, _) => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", render::status_text(&views, color));
        }
        (format, true) => print_structured(format, &views[0]),
        (format, false) => print_structured(format, &serde_json::json!({ "installations": views })),
    }
    Ok(())
}

/// A listing: a table for a person, or every row as JSON or YAML.
fn print_listing<T: serde::Serialize>(format: Format, rows: &[T], table: impl FnOnce(&[T]) -> String) {
    match format {
        Format::Text => print!("{}", table(rows)),
        format => print_structured(format, &rows),
    }
}

fn print_structured<T: serde::Serialize>(format: Format, value: &T) {
    match format {
        Format::Yaml => print!("{}", serde_saphyr::to_string(value).expect("views serialize")),
        _ => println!("{}", serde_json::to_string_pretty(value).expect("views serialize")),
    }
}

#[cfg(test)]
mod tests;
