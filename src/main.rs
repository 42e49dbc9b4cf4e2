//! The `insight` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = insight::cli::Cli::parse();
    insight::cli::run(cli)
}
