//! `intune-rotate`: parse the command line, run the command, map the result to an exit code.

mod advice;
mod cli;
mod cmd;
mod config;
mod connect;
mod connect_error;
mod credential_choice;
mod env;
mod exit_status;
mod failure;
mod notify;
mod open_files;
mod progress;
mod settings;
mod signals;
mod source_args;
mod tenant_connector;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// mimalloc, not the system allocator: over 2,000 tenants glibc's took a fifth more CPU and
/// kept about twice the memory once the start had freed it (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for blocking work, where a ledger's sync hands its worker's tasks on. Thousands of
/// tenants syncing at once would otherwise start hundreds of threads, each holding memory of its
/// own; this many syncs at once keep up with every tenant's batches (docs/BENCHMARKS.md).
const BLOCKING_THREADS: usize = 32;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let mut cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // A profile fills what neither a flag nor the environment gave; a bad file is exit 2.
    let settings = match config::apply(&mut cli, &matches) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit_status::ExitStatus::Usage.into();
        }
    };
    if let cli::Command::Config(_) = &cli.command {
        config::show(&settings);
        return exit_status::ExitStatus::Success.into();
    }
    let logs = progress::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
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
