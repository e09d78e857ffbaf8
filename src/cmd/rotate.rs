//! `intune-rotate rotate`: plan a source into a new ledger and send.

use super::{Failure, options, stop_on_ctrl_c, summarize, usage};
use crate::cli::{ActionArg, RotateArgs};
use crate::connect;
use crate::progress::{Logs, reporter};
use rotation::{Action, CsvSource, InDoubt, LEDGER_VERSION, RotateRequest, RunHeader};

pub fn action_of(a: ActionArg) -> Action {
    match a {
        ActionArg::Filevault => Action::FileVault,
        ActionArg::RecoveryLock => Action::RecoveryLock,
        ActionArg::Bitlocker => Action::BitLocker,
        ActionArg::Laps => Action::Laps,
    }
}

pub async fn run(a: RotateArgs, logs: Logs) -> Result<u8, Failure> {
    let action = action_of(a.action);
    if a.query.is_some() {
        return Err(usage(anyhow::anyhow!(
            "--query is not built yet: export the devices to CSV and use --input"
        )));
    }
    let Some(input) = a.input.as_deref() else {
        return Err(usage(anyhow::anyhow!(
            "a device source is required: --input FILE (or - for stdin)"
        )));
    };
    // Bad input is found before any connection is made: nothing is sent.
    let source = rotation::Plan::check(CsvSource::open(input)?)?;
    let connection = if a.dry_run {
        None
    } else {
        let scopes = connect::delegated_scopes(action, false);
        Some(connect::client(&a.connection, None, None, &scopes)?)
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
        source: format!("csv:{}", source.source().display()),
        rate: a.dispatch.rate.to_string(),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    if let Some(c) = &connection {
        connect::preflight(c, action, false).await?;
        connect::confirm(
            a.dispatch.yes,
            &format!(
                "About to run {} ({}) on the devices in {} for tenant {}.",
                action.graph_name(),
                action.platform(),
                source.source().display(),
                c.tenant
            ),
        )
        .map_err(usage)?;
    }
    let (progress, span) = reporter(logs);
    let _enter = span.enter();
    let req = RotateRequest {
        header,
        source,
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
    summarize(&outcome, a.dispatch.summary_json.as_deref())
}
