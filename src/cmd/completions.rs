//! `intune-rotate completions SHELL` and `intune-rotate man`: generated from the clap definitions,
//! so they never fall behind the flags.

use super::{Failure, failed};
use crate::cli::{Cli, CompletionsArgs};
use crate::exit_status::ExitStatus;
use clap::CommandFactory;

pub fn completions(a: CompletionsArgs) -> Result<ExitStatus, Failure> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut Cli::command(), "intune-rotate", &mut out);
    Ok(ExitStatus::Success)
}

pub fn man() -> Result<ExitStatus, Failure> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(failed)?;
    Ok(ExitStatus::Success)
}
