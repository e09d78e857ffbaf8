//! One file per subcommand; each returns the process exit code.

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
mod report;
mod resume;
mod rotate;
pub(crate) mod source;
mod status;
mod tenants;
mod verify;
mod whoami;

use crate::cli::{Command, Dispatch};
use crate::exit_status::ExitStatus;
use crate::progress::Logs;
use rotation::{DispatchOptions, InDoubt, RotationError, RunOutcome, StopSignal};

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
            if let Some((targets, action)) = told {
                targets
                    .after_failure(action, &format!("{e:#}"), status)
                    .await;
            }
            status
        }
    }
}

/// An error with the exit status it ends the process with.
pub struct Failure(pub ExitStatus, pub anyhow::Error);

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        Failure(ExitStatus::of_error(&e), e.into())
    }
}

impl From<crate::connect::ConnectError> for Failure {
    fn from(e: crate::connect::ConnectError) -> Self {
        match e {
            crate::connect::ConnectError::Usage(e) => Failure(ExitStatus::Usage, e),
            crate::connect::ConnectError::Auth(e) => Failure(ExitStatus::Auth, e),
        }
    }
}

pub fn usage(e: anyhow::Error) -> Failure {
    Failure(ExitStatus::Usage, e)
}

/// An output or other local failure after the work was done.
pub fn failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure(ExitStatus::Incomplete, e.into())
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

/// How long past the grace period the process waits for the engine to end on its own.
const BACKSTOP: std::time::Duration = std::time::Duration::from_secs(5);

/// The first stop signal (Ctrl-C, SIGTERM, SIGHUP; Ctrl-Break or closing the console on Windows)
/// asks the run to stop sending: the engine awaits the answers in flight for up to `grace` (its
/// drain timeout) and ends as a stopped run, exit 130. A second signal exits at once, and so does
/// the process a little after the grace period, wherever it is waiting. Either way the ledger is
/// consistent: every request on the wire has its `sent` row, and `resume` looks up those left in
/// doubt. Installed first thing, before the pre-flight and the plan: a signal at any point is
/// seen, and one that comes before sending ends the command with nothing sent.
pub fn stop_on_signal(grace: std::time::Duration) -> StopSignal {
    let (tx, signal) = StopSignal::new();
    let mut signals = crate::signals::Signals::register();
    tokio::spawn(async move {
        let Some(first) = signals.next().await else {
            return;
        };
        eprintln!(
            "\n{first}: finishing requests in flight (up to {}), then stopping ({} again to quit now)",
            humantime::format_duration(grace),
            first.again()
        );
        let _ = tx.send(true);
        tokio::select! {
            _ = signals.next() => {}
            () = tokio::time::sleep(grace + BACKSTOP) => eprintln!(
                "the grace period ended with answers still awaited: those devices stay in doubt, and `resume` looks them up"
            ),
        }
        std::process::exit(i32::from(ExitStatus::Interrupted.code()));
    });
    signal
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

/// The final summary on stdout, and as JSON when asked.
pub fn summarize(
    outcome: &RunOutcome,
    summary_json: Option<&std::path::Path>,
) -> Result<ExitStatus, Failure> {
    let status = ExitStatus::of_run(outcome);
    let c = &outcome.counters;
    if outcome.plan.is_none() {
        // A resumed run has no plan of its own to print: its skips are those found at sending.
        for (kind, n) in &outcome.skipped_at_sending {
            println!("skipped {n} device(s) as they were about to be sent: {kind}");
        }
    }
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
    if let Some(why) = outcome.auth_stopped() {
        eprintln!(
            "error: stopped: {why}; the ledger is consistent, fix the credential and run `intune-rotate resume --ledger {}`",
            outcome.ledger.display()
        );
    }
    if outcome.interrupted() {
        eprintln!(
            "interrupted; continue with `intune-rotate resume --ledger {}`",
            outcome.ledger.display()
        );
    }
    if let Some(path) = summary_json {
        let doc = serde_json::json!({
            "counters": c,
            "exit_code": status.code(),
            "interrupted": outcome.interrupted(),
            "ledger": outcome.ledger,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    Ok(status)
}
