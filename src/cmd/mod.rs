//! One file per subcommand; each returns the process exit code.

mod capabilities;
mod completions;
#[cfg(feature = "demo")]
mod demo;
mod devices;
mod doctor;
mod export;
mod fleet_devices;
mod fleet_status;
mod fleet_summary;
mod fleet_verify;
mod plan_text;
mod report;
mod resume;
mod rotate;
mod status;
mod stop;
mod summary;
mod tenants;
mod verify;
mod whoami;

use crate::cli::{Command, Dispatch};
use crate::exit_status::ExitStatus;
pub use crate::failure::{Failure, failed, usage};
use crate::progress::Logs;
use rotation::{DispatchOptions, InDoubt};
pub use stop::stop_on_signal;
pub use summary::summarize;

pub async fn run(command: Command, logs: Logs) -> ExitStatus {
    // A run that ends in an error still tells whoever is told of its outcome.
    let told = match &command {
        Command::Rotate(a) => Some((&a.dispatch, Some(crate::settings::action_of(a.action)))),
        Command::Resume(a) => Some((&a.dispatch, None)),
        _ => None,
    }
    .and_then(|(d, action)| Some((crate::notify::Targets::of(d).ok()?, action)));
    let result = match command {
        Command::Rotate(a) => rotate::run(*a, logs).await,
        Command::Resume(a) => resume::run(a, logs).await,
        Command::Status(a) => status::run(a),
        Command::Export(a) => export::run(a),
        Command::Report(a) => report::run(a),
        Command::Completions(a) => completions::completions(a),
        Command::Man => completions::man(),
        Command::Config(_) => Ok(ExitStatus::Success),
        #[cfg(feature = "demo")]
        Command::Demo(a) => demo::run(a, logs).await,
        Command::Whoami(a) => whoami::run(a).await,
        Command::Doctor(a) => doctor::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Devices(a) => devices::run(a).await,
    };
    match result {
        Ok(status) => status,
        Err(Failure(status, e)) => {
            eprintln!("error: {e:#}");
            if let Some(advice) = crate::advice::for_chain(&e) {
                eprintln!("  {advice}");
            }
            if let Some((targets, action)) = told {
                targets
                    .after_failure(action, &format!("{e:#}"), status)
                    .await;
            }
            status
        }
    }
}

pub fn options(d: &Dispatch, in_doubt: InDoubt) -> DispatchOptions {
    DispatchOptions {
        batch_size: usize::from(d.batch_size),
        concurrency: d.concurrency.map(usize::from),
        rate: d.rate,
        max_attempts: d.max_attempts.max(1),
        time_budget: d.time_budget.map(Into::into),
        limit: d.limit,
        in_doubt,
        result_names: d.result_names.clone(),
        cold_start: d.cold_start(),
        tenant_rate: d.tenant_rate,
        strict_once: d.strict_once,
        lost_answer_recheck: d.lost_answer_recheck.into(),
        drain_timeout: d.grace.into(),
        ..DispatchOptions::default()
    }
}

/// Where `--out` points (created or truncated), or stdout without it. A file that cannot be
/// created is bad usage, found before any work.
pub fn open_output(path: Option<&std::path::Path>) -> Result<Box<dyn std::io::Write>, Failure> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| usage(anyhow::anyhow!("{}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    })
}

/// Ends a command interrupted before anything was sent.
pub fn interrupted_before_sending() -> Result<ExitStatus, Failure> {
    eprintln!("interrupted before anything was sent");
    Ok(ExitStatus::Interrupted)
}

/// The sending's options, with a gate across tenants that holds Graph's per-app limit: nobody
/// else counts in it, so its window is the run's from the start.
pub fn with_global_gate(q: graph_batch::Quota, d: &Dispatch, in_doubt: InDoubt) -> DispatchOptions {
    let gate = rotation::RateGate::new(q, 0.0, u32::from(d.batch_size));
    DispatchOptions {
        global_gate: Some(std::sync::Arc::new(gate)),
        ..options(d, in_doubt)
    }
}
