//! The plan in the command line's words: the question asked before sending, and the skips with
//! the advice that names the flag to change them.

use rotation::Action;

/// One line per kind of skip, with the advice that names the flag to change it.
pub fn print_skips(skipped: &std::collections::BTreeMap<rotation::SkipKind, usize>) {
    for (kind, n) in skipped {
        println!("skipped {n} device(s): {kind}");
        if let Some(advice) = skip_advice(*kind) {
            println!("  {advice}");
        }
    }
}

/// What an admin can do about a kind of skip, in the command line's words.
fn skip_advice(kind: rotation::SkipKind) -> Option<&'static str> {
    use rotation::SkipKind;
    match kind {
        SkipKind::Unknown(_) => Some(
            "the source does not say what this rule needs: list the devices from Graph (--query, --group), add the column (Intune's export has it), or pass --eligibility lenient",
        ),
        SkipKind::UnknownKeyAge => Some(
            "without an Entra device id the last rotation cannot be read: --eligibility lenient sends them",
        ),
        SkipKind::Pending => Some("--no-skip-pending sends them again"),
        _ => None,
    }
}

/// What the admin is asked before anything is sent: the number that will be sent, and the
/// skips by reason, so the count matches the progress bar that follows.
pub fn confirmation(
    action: Action,
    source: &str,
    tenant: &str,
    rows: usize,
    plan: &rotation::PlanReport,
    to_send: usize,
) -> String {
    let mut what = format!(
        "About to run {} ({}) on {to_send} device(s) for tenant {tenant}, from {rows} row(s) of {source}.",
        action.graph_name(),
        action.platform(),
    );
    for (reason, n) in &plan.skipped {
        what.push_str(&format!("\n  skipped {n}: {reason}"));
    }
    if to_send < plan.planned {
        let rest = plan.planned - to_send;
        what.push_str(&format!(
            "\n  {rest} more stay pending for `resume` (--limit)"
        ));
    }
    what
}

/// Rows that named a device already listed, dropped from the plan.
pub fn warn_duplicates(plan: &rotation::PlanReport) {
    if plan.duplicate_count > 0 {
        let lines: Vec<String> = plan
            .duplicates
            .iter()
            .map(|(l, id)| format!("line {l} ({id})"))
            .collect();
        tracing::warn!(
            "{} duplicate row(s) dropped: {}",
            plan.duplicate_count,
            lines.join(", ")
        );
    }
}
