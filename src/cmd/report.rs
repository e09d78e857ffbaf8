//! `intune-rotate report`: one self-contained HTML page of a run (or a JSON summary of its figures),
//! from a ledger or a run directory.

use super::{Failure, failed};
use crate::cli::{ReportArgs, TextOrJson};
use crate::exit_status::ExitStatus;

pub fn run(a: ReportArgs) -> Result<ExitStatus, Failure> {
    let version = env!("CARGO_PKG_VERSION");
    let (html, json) = match (&a.ledger, &a.run_dir) {
        (_, Some(dir)) => {
            let f = rotation::build_fleet_report(dir)?;
            let json = serde_json::json!({
                "run_dir": dir,
                "tenants": f.tenants.iter().map(|(t, r)| serde_json::json!({
                    "tenant_id": t.tenant.tenant_id,
                    "tenant_name": t.tenant.name,
                    "state": t.state.name(),
                    "reason": t.reason,
                    "report": r.as_ref().map(rotation::report_summary_json),
                })).collect::<Vec<_>>(),
            });
            (
                rotation::render_report(rotation::ReportPage::Fleet(&f), version),
                json,
            )
        }
        (Some(ledger), None) => {
            let r = rotation::build_report(ledger)?;
            let json = rotation::report_summary_json(&r);
            (
                rotation::render_report(rotation::ReportPage::One(&r), version),
                json,
            )
        }
        (None, None) => unreachable!("clap requires --ledger or --run-dir"),
    };
    if a.format == TextOrJson::Json {
        println!("{}", serde_json::to_string_pretty(&json).map_err(failed)?);
        if a.out.is_none() {
            return Ok(ExitStatus::Success);
        }
    }
    let out = a.out.clone().unwrap_or_else(|| "report.html".into());
    std::fs::write(&out, html).map_err(|e| failed(anyhow::anyhow!("{}: {e}", out.display())))?;
    eprintln!("wrote {}", out.display());
    Ok(ExitStatus::Success)
}
