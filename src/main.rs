//! `artifortress-operator`: one binary for the cluster and the laptop. The
//! commands, their flags and handlers are in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::failure::{Failure, write_termination_message};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    artifortress_operator::install_crypto_provider();
    artifortress_operator::telemetry::init(cli.log_format);
    match cli::run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            write_termination_message(&message);
            ExitCode::from(code)
        }
    }
}
