//! `intune-rotate`: parse the command line, run the command, map the result to an exit code.

mod cli;
mod cmd;
mod connect;
mod env;
mod exit_status;
mod progress;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let logs = progress::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cmd::run(cli.command, logs)).into()
}
