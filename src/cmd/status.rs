//! `intune-rotate status`: counts per state, read without locking (safe while a run is going).

use super::Failure;
use crate::cli::LedgerArg;
use crate::exit_status::ExitStatus;
use rotation::DeviceState;

pub fn run(a: LedgerArg) -> Result<ExitStatus, Failure> {
    let json = a.json || a.format == crate::cli::TextOrJson::Json;
    if let Some(dir) = &a.run_dir {
        return super::fleet_status::run(dir, json);
    }
    let ledger = a.ledger.clone().expect("clap: --ledger without --run-dir");
    let (state, _) = rotation::ledger_replay(&ledger)?;
    let states = [
        DeviceState::Rotated,
        DeviceState::Failed,
        DeviceState::Skipped,
        DeviceState::Pending,
        DeviceState::InDoubt,
    ];
    if json {
        let mut doc = serde_json::json!({"tenant": state.header.tenant, "action": state.header.action.to_string(), "total": state.ids().len(), "devices": state.ids().len(), "plan_done": state.plan_done});
        for s in states {
            doc[s.name()] = serde_json::json!(state.count(s));
        }
        doc["skip_reasons"] = serde_json::json!(state.skip_reasons);
        println!("{doc}");
    } else {
        println!("ledger   {}", ledger.display());
        println!("tenant   {}", state.header.tenant);
        println!("action   {}", state.header.action);
        println!("devices  {}", state.ids().len());
        for s in states {
            println!("  {:<9}{:>8}", s.name(), state.count(s));
            if s == DeviceState::Skipped {
                for (reason, n) in &state.skip_reasons {
                    println!("    {reason:<24}{n:>8}");
                }
            }
        }
        if !state.plan_done {
            println!(
                "(the plan was never finished and nothing was sent; the same `rotate` command plans it afresh)"
            );
        }
        if state.torn_tail {
            println!("(the last line is torn, as after a crash; resume will repair it)");
        }
    }
    Ok(ExitStatus::Success)
}
