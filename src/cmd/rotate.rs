//! `intune-rotate rotate`: plan a source into a new ledger and send.

use super::{Failure, interrupted_before_sending, options, stop_on_signal, summarize};
use crate::cli::RotateArgs;
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::progress::{Logs, reporter};
use crate::settings::run_spec;
use rotation::InDoubt;

pub async fn run(a: RotateArgs, logs: Logs) -> Result<ExitStatus, Failure> {
    if a.tenants.tenants.is_some() {
        return super::tenants::rotate(a, logs).await;
    }
    // First of all: a Ctrl-C during the pre-flight or the plan is seen, not fatal.
    let stop = stop_on_signal(a.dispatch.grace.into());
    let spec = run_spec(&a)?;
    let targets = crate::notify::Targets::of(&a.dispatch)?;
    let action = spec.action;
    // A ledger directory is claimed before anything else: a run that finds another going in it
    // ends here (exit 5), and the claim holds until this run ends.
    let claim = match &a.ledger_dir {
        Some(dir) => Some(rotation::ClaimedDir::claim(
            dir,
            action,
            std::time::SystemTime::now(),
        )?),
        None => None,
    };
    let ledger = match &claim {
        Some(c) => c.ledger().to_path_buf(),
        None => a.ledger.clone().expect("clap: --ledger or --ledger-dir"),
    };
    // Bad input is found before any connection is made: nothing is sent.
    let source = rotation::OpenSource::open(&spec.source)?;
    let policy = spec.policy.policy(action)?;
    // A run over views reads the audit logs, even for a file, and even when it only plans.
    let lists = source.lists_devices() || spec.viewed.is_some();
    let early_rows = source.check_early()?;
    let connection = if a.dry_run && !lists {
        None
    } else {
        let mut scopes = connect::delegated_scopes(action, source.scopes());
        if spec.viewed.is_some() {
            scopes.extend_from_slice(rotation::views::scopes(action));
        }
        scopes.extend_from_slice(targets.scopes());
        let c = connect::client(&a.connection, None, None, &scopes)?;
        connect::preflight(&c, action, lists).await?;
        targets.check(&c).await?;
        Some(c)
    };
    let signed_in = rotation::SignedIn {
        tenant: connection
            .as_ref()
            .map(|c| c.tenant.clone())
            .or(a.connection.tenant.clone())
            .unwrap_or_default(),
        client_id: connection
            .as_ref()
            .and_then(|c| c.client_id.clone())
            .or(a.connection.client_id.clone()),
        cloud: a.connection.cloud,
        as_whom: match &connection {
            Some(c) => connect::signed_in_as(c).await,
            None => None,
        },
    };
    let job = rotation::Job {
        spec: &spec,
        source,
        early_rows,
        policy,
        signed_in: signed_in.clone(),
        rate: a.dispatch.rate,
        ledger,
        // A dry run shows every skip in its plan, and a cap on the devices sent counts them
        // exactly; a run that sends otherwise reads them as it sends.
        timing: if a.dry_run || a.max_devices.is_some() {
            rotation::ResultsTiming::BeforePlan
        } else {
            rotation::ResultsTiming::BeforeSending
        },
        limit: a.dispatch.limit,
        max_devices: a.max_devices,
    };
    let client = connection.as_ref().map(|c| &c.client);
    let planned = match job.plan(client, &stop).await {
        Err(rotation::RotationError::StoppedBeforeSending) => return interrupted_before_sending(),
        planned => planned?,
    };
    for note in &planned.notes {
        eprintln!("{note}");
    }
    let plan = planned.report.clone();
    super::plan_text::warn_duplicates(&plan);
    if a.dry_run {
        super::plan_text::print_skips(&plan.skipped);
        println!(
            "dry run: {} device(s) planned into {}; nothing was sent",
            plan.planned,
            planned.path().display()
        );
        return Ok(ExitStatus::Success);
    }
    let client = client.ok_or(rotation::RotationError::NoConnection)?;
    let what = super::plan_text::confirmation(
        action,
        &planned.source,
        &signed_in.tenant,
        planned.rows,
        &plan,
        planned.to_send,
    );
    if let Err(e) = connect::confirm(a.dispatch.yes, &what) {
        eprintln!("{e:#}");
        planned.discard();
        return Err(rotation::RotationError::Declined.into());
    }
    let (progress, span) = reporter(logs);
    let _enter = span.enter();
    let options = options(&a.dispatch, InDoubt::Resend);
    let outcome = planned.send(client, &options, progress, stop).await?;
    drop(_enter);
    // The plan's skips and those found as devices were about to be sent, together.
    let mut skipped = plan.skipped.clone();
    for (reason, n) in &outcome.skipped_at_sending {
        *skipped.entry(*reason).or_default() += n;
    }
    super::plan_text::print_skips(&skipped);
    let code = summarize(&outcome, a.dispatch.summary_json.as_deref())?;
    let code = match (a.verify_after, &connection) {
        (Some(after), Some(c)) if !outcome.interrupted() && outcome.auth_stopped().is_none() => {
            code.max(super::verify::verify_after(&c.client, &outcome.ledger, after.into()).await?)
        }
        _ => code,
    };
    let summary = a.dispatch.summary_json.as_deref();
    crate::notify::after_run(&targets, &outcome.ledger, code, Some(client), summary).await?;
    Ok(code)
}
