//! `intune-rotate resume`: continue a run from its ledger; its parameters come from the ledger.

use super::{Failure, interrupted_before_sending, options, stop_on_signal, summarize, usage};
use crate::cli::ResumeArgs;
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::progress::{Logs, reporter};
use rotation::InDoubt;

pub async fn run(a: ResumeArgs, logs: Logs) -> Result<ExitStatus, Failure> {
    if let Some(dir) = &a.run_dir {
        return super::tenants::resume(
            dir,
            &a.connection,
            &a.dispatch,
            a.in_doubt,
            a.tenant_concurrency,
            logs,
        )
        .await;
    }
    let ledger_path = a.ledger.clone().expect("clap: --ledger without --run-dir");
    let stop = stop_on_signal(a.dispatch.grace.into());
    let in_doubt = InDoubt::from(a.in_doubt);
    // Opening takes the lock: a second process on the same ledger is refused here, before any connection.
    let (ledger, state) = rotation::Ledger::open(&ledger_path)?;
    drop(ledger);
    let header = state.header.clone();
    if let Some(t) = &a.connection.tenant
        && !t.eq_ignore_ascii_case(&header.tenant)
    {
        return Err(usage(anyhow::anyhow!(
            "the ledger {} belongs to tenant {}, not {t}; refusing to resume it against another tenant",
            ledger_path.display(),
            header.tenant
        )));
    }
    let action = header.action;
    let targets = crate::notify::Targets::of(&a.dispatch)?;
    let c = connect::client(
        &a.connection,
        Some(&header.tenant),
        header.client_id.as_deref(),
        &connect::delegated_scopes(action, targets.scopes()),
    )?;
    connect::preflight(&c, action, false).await?;
    targets.check(&c).await?;
    let tenant = &c.tenant;
    let open =
        state.count(rotation::DeviceState::Pending) + state.count(rotation::DeviceState::InDoubt);
    connect::confirm(
        a.dispatch.yes,
        &format!(
            "About to resume {} on {open} device(s) for tenant {tenant} from {}.",
            action.graph_name(),
            ledger_path.display()
        ),
    )
    .map_err(usage)?;
    if stop.requested() {
        return interrupted_before_sending();
    }
    drop(state);
    let (progress, span) = reporter(logs);
    let _enter = span.enter();
    let outcome = rotation::resume(
        &c.client,
        &ledger_path,
        &options(&a.dispatch, in_doubt),
        progress,
        stop,
    )
    .await?;
    drop(_enter);
    let summary = a.dispatch.summary_json.as_deref();
    let code = summarize(&outcome, summary)?;
    crate::notify::after_run(&targets, &outcome.ledger, code, Some(&c.client), summary).await?;
    Ok(code)
}
