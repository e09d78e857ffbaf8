//! Stopping when told: the first signal drains, a second exits at once.

use crate::exit_status::ExitStatus;
use rotation::StopSignal;

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
