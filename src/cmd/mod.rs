//! One file per subcommand; each returns the process exit code.

mod demo;
mod devices;
mod export;
mod resume;
mod rotate;
mod source;
mod status;
mod verify;
mod whoami;

use crate::cli::{Command, Dispatch};
use crate::progress::Logs;
use rotation::{DispatchOptions, InDoubt, RotationError, RunOutcome, StopSignal};

pub async fn run(command: Command, logs: Logs) -> u8 {
    let result = match command {
        Command::Rotate(a) => rotate::run(a, logs).await,
        Command::Resume(a) => resume::run(a, logs).await,
        Command::Status(a) => status::run(a),
        Command::Export(a) => export::run(a),
        Command::Demo(a) => demo::run(a, logs).await,
        Command::Whoami(a) => whoami::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Devices(a) => devices::run(a).await,
    };
    match result {
        Ok(code) => code,
        Err(Failure(code, e)) => {
            eprintln!("error: {e:#}");
            code
        }
    }
}

/// An error with the exit code it maps to.
pub struct Failure(pub u8, pub anyhow::Error);

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        Failure(e.exit_code(), e.into())
    }
}

impl From<crate::connect::ConnectError> for Failure {
    fn from(e: crate::connect::ConnectError) -> Self {
        match e {
            crate::connect::ConnectError::Usage(e) => Failure(2, e),
            crate::connect::ConnectError::Auth(e) => Failure(3, e),
        }
    }
}

pub fn usage(e: anyhow::Error) -> Failure {
    Failure(2, e)
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
        ..DispatchOptions::default()
    }
}

/// Ctrl-C asks the run to stop sending; a second Ctrl-C exits at once (the ledger stays consistent).
pub fn stop_on_ctrl_c() -> StopSignal {
    let (tx, signal) = StopSignal::new();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: finishing requests in flight, then stopping (Ctrl-C again to quit now)"
            );
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    signal
}

/// The final summary on stdout, and as JSON when asked.
pub fn summarize(
    outcome: &RunOutcome,
    summary_json: Option<&std::path::Path>,
) -> Result<u8, Failure> {
    let c = &outcome.counters;
    println!("summary");
    println!("  devices   {:>8}", c.total);
    println!("  rotated   {:>8}", c.rotated);
    println!("  failed    {:>8}", c.failed);
    println!("  skipped   {:>8}", c.skipped);
    println!("  pending   {:>8}", c.pending);
    println!("  in doubt  {:>8}", c.in_doubt);
    println!(
        "  sent {} items in {} batches, {} retries, {} throttled (429), {} server errors, {} network errors, in {:.1} s",
        c.items_sent,
        c.batches_sent,
        c.retries,
        c.throttled,
        c.server_errors,
        c.network_errors,
        c.elapsed_secs
    );
    println!("  ledger    {}", outcome.ledger.display());
    if let Some(why) = &outcome.auth_stopped {
        eprintln!(
            "error: stopped: {why}; the ledger is consistent, fix the credential and run `intune-rotate resume --ledger {}`",
            outcome.ledger.display()
        );
    }
    if outcome.interrupted {
        eprintln!(
            "interrupted; continue with `intune-rotate resume --ledger {}`",
            outcome.ledger.display()
        );
    }
    if let Some(path) = summary_json {
        let doc = serde_json::json!({
            "counters": c,
            "exit_code": outcome.exit_code(),
            "interrupted": outcome.interrupted,
            "ledger": outcome.ledger,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| Failure(1, anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    Ok(outcome.exit_code())
}
