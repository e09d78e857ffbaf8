//! The end of one tenant's run: the summary on stdout, `--summary-json`, and the exit status.

use super::{Failure, failed};
use crate::exit_status::ExitStatus;
use rotation::RunOutcome;

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
