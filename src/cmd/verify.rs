//! `intune-rotate verify`: which devices actually rotated, from Graph's deviceActionResults.

use super::{Failure, failed};
use crate::cli::{TextOrJson, VerifyArgs};
use crate::connect;
use crate::exit_status::ExitStatus;
use rotation::{VerifyOptions, VerifyReport};

pub async fn run(a: VerifyArgs) -> Result<ExitStatus, Failure> {
    let options = VerifyOptions {
        rate: a.rate,
        watch: a.watch,
        interval: a.interval.into(),
        timeout: Some(a.timeout.into()),
        result_names: a.result_names.clone(),
    };
    if let Some(dir) = &a.run_dir {
        return super::fleet_verify::run(dir, &a.connection, &options).await;
    }
    let ledger_path = a.ledger.clone().expect("clap: --ledger without --run-dir");
    let (ledger, state) = rotation::Ledger::open(&ledger_path)?;
    drop(ledger);
    let action = state.header.action;
    let c = connect::client(
        &a.connection,
        Some(&state.header.tenant),
        state.header.client_id.as_deref(),
        &[rotation::Permission::ManagedDevicesRead],
    )?;
    connect::preflight_read(&c).await?;
    drop(state);
    let report = run_verify(&c.client, &ledger_path, &options).await?;
    match a.format {
        TextOrJson::Json => {
            let doc = serde_json::json!({
                "ledger": ledger_path,
                "action": action.graph_name(),
                "counts": report.counts,
                "unrecognised": report.unrecognised,
                "notes": report.notes,
            });
            println!("{}", serde_json::to_string_pretty(&doc).map_err(failed)?);
        }
        TextOrJson::Text => {
            println!(
                "verified {} ({}):",
                ledger_path.display(),
                action.graph_name()
            );
            for (state, n) in &report.counts {
                println!("  {state:<12}{n:>8}");
            }
            print_unrecognised(&report);
            for note in &report.notes {
                println!("note: {note}");
            }
        }
    }
    Ok(ExitStatus::of_verify(&report.counts))
}

/// Result names seen after our requests that no rule placed: the admin can report them, or add
/// one with `--result-name` if it is ours.
pub fn print_unrecognised(report: &VerifyReport) {
    if report.unrecognised.is_empty() {
        return;
    }
    println!(
        "result names not recognised, on devices we sent to (report them, or add --result-name NAME if one is ours):"
    );
    for n in &report.unrecognised {
        let name = n.action_name.as_deref().unwrap_or("(no actionName)");
        let typed = n
            .odata_type
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        println!("  {name}{typed}: {} device(s)", n.devices);
    }
}

/// One verify run with a progress line per pass; shared with `rotate --verify-after`.
pub async fn run_verify(
    client: &graph_client::GraphClient,
    ledger: &std::path::Path,
    o: &VerifyOptions,
) -> Result<VerifyReport, Failure> {
    let progress = |c: &rotation::VerifyCounts| {
        let line: Vec<String> = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
        tracing::info!("verify pass: {}", line.join(", "));
    };
    Ok(rotation::verify(client, ledger, o, &progress).await?)
}

/// `--verify-after`: watch the devices' action results for a while, and say what they reached.
pub async fn verify_after(
    client: &graph_client::GraphClient,
    ledger: &std::path::Path,
    after: std::time::Duration,
) -> Result<ExitStatus, Failure> {
    let o = rotation::VerifyOptions {
        watch: true,
        timeout: Some(after),
        interval: (after / 20).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(30),
        ),
        ..rotation::VerifyOptions::default()
    };
    let report = run_verify(client, ledger, &o).await?;
    let line: Vec<String> = report
        .counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("verified: {}", line.join(", "));
    print_unrecognised(&report);
    Ok(ExitStatus::of_verify(&report.counts))
}
