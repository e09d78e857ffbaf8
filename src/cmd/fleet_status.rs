//! `status --run-dir`: one line per tenant and the total, or JSON.

use super::Failure;
use crate::exit_status::ExitStatus;
use rotation::fleet::{COUNTED, Standing};
use std::path::Path;

pub fn run(dir: &Path, json: bool) -> Result<ExitStatus, Failure> {
    let standing = rotation::fleet::standing(dir)?;
    if json {
        println!("{}", as_json(dir, &standing));
    } else {
        print_table(dir, &standing);
    }
    Ok(ExitStatus::Success)
}

fn as_json(dir: &Path, s: &Standing) -> serde_json::Value {
    let tenants: Vec<serde_json::Value> = s
        .tenants
        .iter()
        .map(|t| {
            let r = &t.record;
            let mut v = serde_json::json!({
                "tenant_id": r.tenant.tenant_id,
                "tenant_name": r.tenant.name,
                "state": r.state.name(),
                "reason": r.reason,
                "advice": r.advice,
            });
            for st in COUNTED {
                v[st.name()] = serde_json::json!(t.count(st));
            }
            v
        })
        .collect();
    // `total` and `devices` are the same number: scripts of earlier releases read either.
    let mut doc = serde_json::json!({
        "run_dir": dir,
        "action": s.run.manifest().action,
        "tenants": tenants,
        "total": s.devices(),
        "devices": s.devices(),
    });
    for st in COUNTED {
        doc[st.name()] = serde_json::json!(s.count(st));
    }
    doc
}

fn print_table(dir: &Path, s: &Standing) {
    println!("run      {}", dir.display());
    println!("action   {}", s.run.manifest().action);
    println!(
        "{:<38} {:<24} {:<8} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "tenant", "name", "state", "rotated", "failed", "skipped", "pending", "in_doubt"
    );
    for t in &s.tenants {
        let r = &t.record;
        let n: Vec<usize> = COUNTED.iter().map(|st| t.count(*st)).collect();
        println!(
            "{:<38} {:<24} {:<8} {:>8} {:>7} {:>8} {:>8} {:>8}",
            r.tenant.tenant_id,
            truncate(&r.tenant.name, 24),
            r.state.name(),
            n[0],
            n[1],
            n[2],
            n[3],
            n[4]
        );
        if let Some(why) = &r.reason {
            println!("    {why}");
        }
    }
    let n: Vec<usize> = COUNTED.iter().map(|st| s.count(*st)).collect();
    println!(
        "{:<38} {:<24} {:<8} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "total",
        format!("{} tenants", s.tenants.len()),
        "",
        n[0],
        n[1],
        n[2],
        n[3],
        n[4]
    );
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
