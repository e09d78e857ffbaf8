//! `intune-rotate verify`: which devices actually rotated, from Graph's deviceActionResults.

use super::Failure;
use crate::cli::VerifyArgs;
use crate::connect;
use crate::exit_status::ExitStatus;
use rotation::{VerifyCounts, VerifyOptions};

pub async fn run(a: VerifyArgs) -> Result<ExitStatus, Failure> {
    let (ledger, state) = rotation::Ledger::open(&a.ledger)?;
    drop(ledger);
    let action = state.header.action;
    let c = connect::client(
        &a.connection,
        Some(&state.header.tenant),
        state.header.client_id.as_deref(),
        &["DeviceManagementManagedDevices.Read.All"],
    )?;
    connect::preflight_read(&c).await?;
    drop(state);
    let options = VerifyOptions {
        rate: a.rate,
        watch: a.watch,
        interval: a.interval.into(),
        timeout: Some(a.timeout.into()),
    };
    let counts = run_verify(&c.client, &a.ledger, &options).await?;
    println!("verified {} ({}):", a.ledger.display(), action.graph_name());
    for (state, n) in &counts {
        println!("  {state:<12}{n:>8}");
    }
    Ok(ExitStatus::of_verify(&counts))
}

/// One verify run with a progress line per pass; shared with `rotate --verify-after`.
pub async fn run_verify(
    client: &graph_client::GraphClient,
    ledger: &std::path::Path,
    o: &VerifyOptions,
) -> Result<VerifyCounts, Failure> {
    let progress = |c: &VerifyCounts| {
        let line: Vec<String> = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
        tracing::info!("verify pass: {}", line.join(", "));
    };
    Ok(rotation::verify(client, ledger, o, &progress).await?)
}
