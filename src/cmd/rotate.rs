//! `intune-rotate rotate`: plan a source into a new ledger and send.

use super::source::{Source, exclusions};
use super::{Failure, options, stop_on_ctrl_c, summarize, usage};
use crate::cli::{ActionArg, PolicyArgs, RotateArgs};
use crate::connect;
use crate::progress::{Logs, reporter};
use rotation::{Action, InDoubt, LEDGER_VERSION, Plan, Policy, RotateRequest, RunHeader};

pub fn action_of(a: ActionArg) -> Action {
    match a {
        ActionArg::Filevault => Action::FileVault,
        ActionArg::RecoveryLock => Action::RecoveryLock,
        ActionArg::Bitlocker => Action::BitLocker,
        ActionArg::Laps => Action::Laps,
    }
}

fn policy(action: Action, a: &PolicyArgs) -> Result<Policy, Failure> {
    let mut p = Policy::for_action(action);
    if let Some(r) = a.require_encrypted {
        p.require_encrypted = r;
    }
    p.stale_after = a.stale_after.map(Into::into);
    if let Some(path) = &a.exclude {
        p.exclude = exclusions(path)?;
    }
    Ok(p)
}

pub async fn run(a: RotateArgs, logs: Logs) -> Result<u8, Failure> {
    let action = action_of(a.action);
    // Bad input is found before any connection is made: nothing is sent.
    let source = Source::parse(&a.source)?;
    let policy = policy(action, &a.policy)?;
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
            &connect::delegated_scopes(action, lists),
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
    let checked = match early {
        Some(rows) => Plan::checked(list, rows),
        None => Plan::check(list)?,
    };
    let tenant = connection
        .as_ref()
        .map(|c| c.tenant.clone())
        .or(a.connection.tenant.clone())
        .unwrap_or_default();
    let header = RunHeader {
        version: LEDGER_VERSION,
        tenant: tenant.clone(),
        client_id: connection
            .as_ref()
            .and_then(|c| c.client_id.clone())
            .or(a.connection.client_id.clone()),
        cloud: a.connection.cloud.clone(),
        action: action.cli_name().into(),
        api_version: "beta".into(),
        via: a.via.clone(),
        source: checked.source().display().to_string(),
        rate: a.dispatch.rate.to_string(),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    if connection.is_some() && !a.dry_run {
        let what = format!(
            "About to run {} ({}) on {} device(s) from {} for tenant {tenant}.",
            action.graph_name(),
            action.platform(),
            checked.rows(),
            checked.source().display()
        );
        connect::confirm(a.dispatch.yes, &what).map_err(usage)?;
    }
    let (progress, span) = reporter(logs);
    let _enter = span.enter();
    let req = RotateRequest {
        header,
        source: checked,
        policy,
        ledger: a.ledger.clone(),
        options: options(&a.dispatch, InDoubt::Resend),
        dry_run: a.dry_run,
    };
    let outcome = rotation::rotate(
        connection.as_ref().map(|c| &c.client),
        req,
        progress,
        stop_on_ctrl_c(),
    )
    .await?;
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
        for (reason, n) in &plan.skipped {
            println!("skipped {n} device(s): {reason}");
        }
        if a.dry_run {
            println!(
                "dry run: {} device(s) planned into {}; nothing was sent",
                plan.planned,
                outcome.ledger.display()
            );
            return Ok(0);
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
        let counts = super::verify::run_verify(&c.client, &outcome.ledger, &o).await?;
        let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("verified: {}", line.join(", "));
        return Ok(code.max(super::verify::exit_code(&counts)));
    }
    Ok(code)
}
