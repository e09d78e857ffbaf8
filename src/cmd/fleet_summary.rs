//! The end of a run over many tenants: a summary on stdout, `--summary-json`, and the exit status:
//! 0 when every tenant is done, 3 when every tenant is blocked by authentication, 130 after a
//! stop, 1 otherwise.

use super::{Failure, failed};
use crate::exit_status::ExitStatus;
use rotation::fleet::{FleetEnd, FleetOutcome};
use rotation::{Counters, TenantState};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use uuid::Uuid;

pub fn print(outcome: &FleetOutcome, summary_json: Option<&Path>) -> Result<ExitStatus, Failure> {
    let run = &outcome.run;
    let manifest = run.manifest();
    let mut total = Counters::default();
    for c in outcome.ends.iter().filter_map(|(_, e)| e.counters()) {
        total.add(c);
    }
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &manifest.tenants {
        *by_state.entry(t.state.name()).or_default() += 1;
    }
    println!(
        "summary of {} ({} tenants)",
        run.dir().display(),
        manifest.tenants.len()
    );
    let states: Vec<String> = by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  tenants   {}", states.join(", "));
    println!(
        "  devices   {} (rotated {}, failed {}, skipped {}, pending {}, in doubt {}) in this run",
        total.total, total.rotated, total.failed, total.skipped, total.pending, total.in_doubt
    );
    for t in manifest
        .tenants
        .iter()
        .filter(|t| t.state == TenantState::Blocked)
    {
        let (name, id, why) = (&t.tenant.name, t.tenant.tenant_id, t.reason.as_deref());
        println!("  blocked   {name} ({id}): {}", why.unwrap_or(""));
        if let Some(advice) = &t.advice {
            println!("            {advice}");
        }
    }
    let end = outcome.end();
    let status = match end {
        FleetEnd::Interrupted => ExitStatus::Interrupted,
        FleetEnd::AllBlockedByAuth => ExitStatus::Auth,
        FleetEnd::Done => ExitStatus::Success,
        FleetEnd::Incomplete => ExitStatus::Incomplete,
    };
    if end == FleetEnd::Interrupted {
        eprintln!(
            "interrupted; continue with `intune-rotate resume --run-dir {}`",
            run.dir().display()
        );
    }
    if let Some(path) = summary_json {
        let counters: HashMap<Uuid, &Counters> = outcome
            .ends
            .iter()
            .filter_map(|(t, e)| Some((t.tenant_id, e.counters()?)))
            .collect();
        let tenants: Vec<serde_json::Value> = manifest
            .tenants
            .iter()
            .map(|t| {
                serde_json::json!({
                    "tenant_id": t.tenant.tenant_id,
                    "tenant_name": t.tenant.name,
                    "state": t.state.name(),
                    "reason": t.reason,
                    "advice": t.advice,
                    "counters": counters.get(&t.tenant.tenant_id),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "counters": total,
            "exit_code": status.code(),
            "interrupted": end == FleetEnd::Interrupted,
            "run_dir": run.dir(),
            "tenants": tenants,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    Ok(status)
}

/// The fleet's summary, then its notice.
pub async fn notified(
    outcome: &rotation::fleet::FleetOutcome,
    dispatch: &crate::cli::Dispatch,
    mail: Option<&crate::connect::Connected>,
) -> Result<ExitStatus, Failure> {
    let summary = dispatch.summary_json.as_deref();
    let code = print(outcome, summary)?;
    let targets = crate::notify::Targets::of(dispatch)?;
    let dir = outcome.run.dir();
    let graph = mail.map(|c| &c.client);
    crate::notify::after_fleet(&targets, dir, code, graph, summary).await?;
    Ok(code)
}
