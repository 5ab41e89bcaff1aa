//! `artifortress-operator`: one binary for the cluster and the laptop. The
//! commands, their flags and handlers are in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::failure::{Failure, write_termination_message};

#[tokio::main]
async fn main() -> ExitCode {
    artifortress_operator::install_crypto_provider();
    let outcome = if invoked_as_plugin() {
        cli::plugin::run(cli::plugin::PluginCli::parse().args).await
    } else {
        let cli = cli::Cli::parse();
        artifortress_operator::telemetry::init(cli.log_format);
        cli::run(cli.command).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            write_termination_message(&message);
            ExitCode::from(code)
        }
    }
}

/// Run through a link named `kubectl-artifortress` (how kubectl finds plugins).
fn invoked_as_plugin() -> bool {
    let program = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&program).file_name().unwrap_or_default().to_string_lossy().into_owned();
    name.starts_with("kubectl-artifortress")
}
