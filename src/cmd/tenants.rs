//! `rotate --tenants FILE --run-dir DIR` and `resume --run-dir DIR`: the engine's run over many
//! tenants ([`rotation::fleet`]), with this binary's credentials, prompt and printing.

use super::{Failure, stop_on_signal, usage, with_global_gate};
use crate::cli::{Connection, Dispatch, InDoubtArg, RotateArgs};
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::progress::Logs;
use crate::progress::RunProgress;
use crate::settings::{action_of, run_spec, spec_of_argv};
use crate::tenant_connector::CliConnector;
use rotation::fleet::{self, Fleet, InputSplit};
use rotation::{InDoubt, Manifest, RunDir};
use std::path::Path;
use std::sync::Arc;
use tracing::Instrument;

/// `rotate --tenants FILE --run-dir DIR`.
pub async fn rotate(a: RotateArgs, logs: Logs) -> Result<ExitStatus, Failure> {
    let stop = stop_on_signal(a.dispatch.grace.into());
    let t = &a.tenants;
    let tenants_file = t
        .tenants
        .clone()
        .expect("clap: --run-dir requires --tenants");
    let run_dir = t
        .run_dir
        .clone()
        .expect("clap: --tenants requires --run-dir");
    let action = action_of(a.action);
    // Everything that can be checked before a connection is checked: nothing is sent on bad input.
    let tenants = rotation::read_tenants(&tenants_file)?;
    let spec = run_spec(&a)?;
    rotation::OpenSource::open(&spec.source)?;
    let policy = spec.policy.policy(action)?;
    if a.dry_run || a.verify_after.is_some() || a.max_devices.is_some() {
        return Err(usage(anyhow::anyhow!(
            "--dry-run, --verify-after and --max-devices apply to one tenant: run them per tenant with --tenant and --ledger"
        )));
    }
    let split = match spec.source.input() {
        Some(input) => Some(InputSplit::read(input, &tenants)?),
        None => None,
    };
    // The credentials must be usable at all before the run directory is made.
    let mut probe = a.connection.clone();
    probe.tenant = Some(tenants[0].tenant_id.to_string());
    connect::client(&probe, None, None, &[])?;
    let mail = crate::notify::Targets::of(&a.dispatch)?
        .mail_connection(&a.connection)
        .await?;
    connect::confirm(
        a.dispatch.yes,
        &format!(
            "About to rotate {} on the devices of {} tenant(s) ({}), each from {}.",
            action.graph_name(),
            tenants.len(),
            tenants_file.display(),
            a.source.shown()
        ),
    )
    .map_err(usage)?;
    let concurrency = crate::open_files::concurrency(t.tenant_concurrency, tenants.len());
    let recorded = serde_json::json!({
        "rate": a.dispatch.rate.to_string(),
        "global_rate": t.global_rate.to_string(),
        "tenant_concurrency": concurrency,
    });
    let manifest = Manifest::new(&spec, &tenants, a.source.shown(), recorded);
    let run = RunDir::create(&run_dir, manifest)?;
    if let Some(split) = split {
        split.write(&run)?;
    }
    let options = with_global_gate(t.global_rate, &a.dispatch, InDoubt::Verify);
    let connector = CliConnector {
        base: a.connection.clone(),
    };
    let progress = RunProgress::many(logs, tenants.len());
    let fleet = Fleet {
        spec: Arc::new(spec),
        policy,
        options,
        concurrency,
        connector: Arc::new(connector),
        reporter: progress.clone(),
        stop,
    };
    let span = progress.span().clone();
    let outcome = fleet.run(run, tenants).instrument(span).await;
    super::fleet_summary::notified(&outcome, &a.dispatch, mail.as_ref()).await
}

/// `resume --run-dir DIR`: every tenant not done goes on: resumed from its ledger, or planned with
/// the run's own spec if it never was (blocked tenants are tried again).
pub async fn resume(
    dir: &Path,
    connection: &Connection,
    dispatch: &Dispatch,
    in_doubt: InDoubtArg,
    concurrency: Option<usize>,
    logs: Logs,
) -> Result<ExitStatus, Failure> {
    let stop = stop_on_signal(dispatch.grace.into());
    let run = RunDir::open(dir)?;
    let spec = match &run.manifest().spec {
        Some(spec) => spec.clone(),
        None => spec_of_argv(dir, &run.manifest().options)?,
    };
    let open = fleet::open_tenants(&run);
    let concurrency = crate::open_files::concurrency(concurrency, open.len());
    let mail = crate::notify::Targets::of(dispatch)?
        .mail_connection(connection)
        .await?;
    connect::confirm(
        dispatch.yes,
        &format!(
            "About to resume {} in {} tenant(s) of {} ({} done already).",
            spec.action.graph_name(),
            open.len(),
            dir.display(),
            run.manifest().tenants.len() - open.len()
        ),
    )
    .map_err(usage)?;
    let global_rate: graph_batch::Quota = run.manifest().options["global_rate"]
        .as_str()
        .and_then(|q| q.parse().ok())
        .unwrap_or(crate::cli::GLOBAL_RATE);
    let connector = CliConnector {
        base: connection.clone(),
    };
    let progress = RunProgress::many(logs, run.manifest().tenants.len());
    let fleet = Fleet {
        policy: spec.policy.policy(spec.action)?,
        spec: Arc::new(spec),
        options: with_global_gate(global_rate, dispatch, in_doubt.into()),
        concurrency,
        connector: Arc::new(connector),
        reporter: progress.clone(),
        stop,
    };
    let span = progress.span().clone();
    let outcome = fleet.run(run, open).instrument(span).await;
    super::fleet_summary::notified(&outcome, dispatch, mail.as_ref()).await
}
