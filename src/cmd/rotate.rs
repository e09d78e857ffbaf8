//! `intune-rotate rotate`: plan a source into a new ledger and send.

use super::source::Source;
use super::{Failure, interrupted_before_sending, options, stop_on_ctrl_c, summarize, usage};
use crate::cli::{ActionArg, EligibilityArg, PolicyArgs, RotateArgs};
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::progress::{Logs, reporter};
use rotation::{Action, InDoubt, Plan, Policy, RotateRequest, RunHeader};

pub fn action_of(a: ActionArg) -> Action {
    match a {
        ActionArg::Filevault => Action::FileVault,
        ActionArg::RecoveryLock => Action::RecoveryLock,
        ActionArg::Bitlocker => Action::BitLocker,
        ActionArg::Laps => Action::Laps,
    }
}

pub(super) fn policy(action: Action, a: &PolicyArgs) -> Result<Policy, Failure> {
    let mut p = Policy::for_action(action);
    if let Some(r) = a.require_encrypted {
        p.require_encrypted = r;
    }
    p.stale_after = a.stale_after.map(Into::into);
    p.rotated_within = a.skip_rotated_within.map(Into::into);
    p.skip_pending = !a.no_skip_pending;
    p.eligibility = match a.eligibility {
        EligibilityArg::Strict => rotation::Eligibility::Strict,
        EligibilityArg::Lenient => rotation::Eligibility::Lenient,
        EligibilityArg::Off => rotation::Eligibility::Off,
    };
    if let Some(path) = &a.exclude {
        p.exclude = std::sync::Arc::new(rotation::read_exclusions(path)?);
    }
    Ok(p)
}

pub async fn run(a: RotateArgs, logs: Logs) -> Result<ExitStatus, Failure> {
    if a.tenants.tenants.is_some() {
        return super::fleet::rotate(a, logs).await;
    }
    let ledger = a.ledger.clone().expect("clap: --ledger without --run-dir");
    // First of all: a Ctrl-C during the pre-flight or the plan is seen, not fatal.
    let stop = stop_on_ctrl_c();
    let action = action_of(a.action);
    // Bad input is found before any connection is made: nothing is sent.
    let source = Source::parse(&a.source)?;
    let mut policy = policy(action, &a.policy)?;
    let lists = source.lists_devices();
    let early = match &source {
        Source::File(csv) => Some(Plan::check_source(csv)?),
        _ => None,
    };
    let connection = if a.dry_run && !lists {
        None
    } else {
        let c = connect::client(
            &a.connection,
            None,
            None,
            &connect::delegated_scopes(action, source.scopes()),
        )?;
        connect::preflight(&c, action, lists).await?;
        Some(c)
    };
    let list = source
        .materialize(
            connection.as_ref().map(|c| &c.client),
            action,
            a.source.allow_partial_source,
        )
        .await?;
    if stop.requested() {
        return interrupted_before_sending();
    }
    let checked = match early {
        Some(rows) => Plan::checked(list, rows),
        None => Plan::check(list)?,
    };
    let mut results_read = None;
    if let Some(c) = &connection {
        let wanted = rotation::FactsWanted {
            rotated_within: policy.rotated_within,
            skip_pending: policy.skip_pending,
            result_names: a.dispatch.result_names.clone(),
            allow_partial: a.source.allow_partial_source,
            read_rate: None,
            // A dry run shows every skip in its plan; a run that sends reads them as it sends.
            timing: if a.dry_run {
                rotation::ResultsTiming::BeforePlan
            } else {
                rotation::ResultsTiming::BeforeSending
            },
        };
        let facts = rotation::read_facts(&c.client, checked.source(), &policy, &wanted).await?;
        for note in &facts.notes {
            eprintln!("{note}");
        }
        policy.facts = facts.devices;
        results_read = facts.results_read;
    }
    if stop.requested() {
        return interrupted_before_sending();
    }
    let tenant = connection
        .as_ref()
        .map(|c| c.tenant.clone())
        .or(a.connection.tenant.clone())
        .unwrap_or_default();
    let signed_in_as = match &connection {
        Some(c) => connect::signed_in_as(c).await,
        None => None,
    };
    let header = RunHeader {
        action_results: results_read,
        signed_in_as,
        client_id: connection
            .as_ref()
            .and_then(|c| c.client_id.clone())
            .or(a.connection.client_id.clone()),
        cloud: a
            .connection
            .cloud
            .parse()
            .map_err(|e: String| usage(anyhow::anyhow!(e)))?,
        via: a.via.clone(),
        result_names: a.dispatch.result_names.clone(),
        ..RunHeader::new(
            tenant.clone(),
            action,
            checked.source().display(),
            a.dispatch.rate,
        )
    };
    let confirm: Option<rotation::Confirm> = (connection.is_some() && !a.dry_run).then(|| {
        let (yes, source) = (a.dispatch.yes, checked.source().display().to_string());
        let (rows, tenant) = (checked.rows(), tenant.clone());
        Box::new(move |plan: &rotation::PlanReport, to_send: usize| {
            let what = confirmation(action, &source, &tenant, rows, plan, to_send);
            match connect::confirm(yes, &what) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("{e:#}");
                    false
                }
            }
        }) as rotation::Confirm
    });
    let (progress, span) = reporter(logs);
    let _enter = span.enter();
    let req = RotateRequest {
        header,
        source: checked,
        policy,
        ledger,
        options: options(&a.dispatch, InDoubt::Resend),
        dry_run: a.dry_run,
        confirm,
        max_devices: a.max_devices,
    };
    let outcome =
        rotation::rotate(connection.as_ref().map(|c| &c.client), req, progress, stop).await?;
    drop(_enter);
    if let Some(plan) = &outcome.plan {
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
        // The plan's skips and those found as devices were about to be sent, together.
        let mut skipped = plan.skipped.clone();
        for (reason, n) in &outcome.skipped_at_sending {
            *skipped.entry(reason.clone()).or_default() += n;
        }
        for (reason, n) in &skipped {
            println!("skipped {n} device(s): {reason}");
            if reason.starts_with("unknown-") {
                println!(
                    "  the source does not say what this rule needs: list the devices from Graph (--query, --group), add the column (Intune's export has it), or pass --eligibility lenient"
                );
            }
        }
        if a.dry_run {
            println!(
                "dry run: {} device(s) planned into {}; nothing was sent",
                plan.planned,
                outcome.ledger.display()
            );
            return Ok(ExitStatus::Success);
        }
    }
    let code = summarize(&outcome, a.dispatch.summary_json.as_deref())?;
    if let (Some(after), Some(c)) = (a.verify_after, &connection)
        && !outcome.interrupted
        && outcome.auth_stopped.is_none()
    {
        let o = rotation::VerifyOptions {
            watch: true,
            timeout: Some(after.into()),
            interval: (std::time::Duration::from(after) / 20).clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(30),
            ),
            ..rotation::VerifyOptions::default()
        };
        let report = super::verify::run_verify(&c.client, &outcome.ledger, &o).await?;
        let line: Vec<String> = report
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("verified: {}", line.join(", "));
        super::verify::print_unrecognised(&report);
        return Ok(code.max(ExitStatus::of_verify(&report.counts)));
    }
    Ok(code)
}

/// What the admin is asked before anything is sent: the number that will be sent, and the
/// skips by reason, so the count matches the progress bar that follows.
fn confirmation(
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
