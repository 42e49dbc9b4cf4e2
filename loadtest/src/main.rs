//! `insight-loadtest`: a Goose load test of the insight service.
//!
//! `insight-loadtest keys --out DIR` writes a key pair for both sides of a run;
//! without a subcommand it runs a workload against a running service. See
//! `loadtest/README.md` and `loadtest/run` for the capacity command around it.

mod attack;
mod cli;
mod context;
mod download;
mod http;
mod keys;
mod pacer;
mod population;
mod report;
mod scenarios;
mod stats;
mod tokens;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();

    let outcome = match &cli.command {
        Some(Command::Keys(args)) => keys::write(args).map(|()| ExitCode::SUCCESS),
        None => attack::run(cli.load, cli.goose).await,
    };

    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
