//! Where the listing leaves `deviceActionResults` out (graph-sim's default, as real tenants do), a
//! run that sends reads each device's results just before sending it, beside the sending, and
//! holds it to the plan's rules then; a dry run reads them all before its plan.

use crate::util::*;
use std::collections::BTreeSet;

/// Macs the simulator holds one of our FileVault rotations pending on (an earlier run's).
fn pending_macs(env: &Env) -> BTreeSet<String> {
    let t = env.sim.tenant();
    t.devices
        .iter()
        .filter(|d| {
            d.os == "macOS"
                && d.encrypted
                && !d.reports_unknown
                && d.owner == "company"
                && d.filevault_state == "success"
                && !sendable(d, "filevault")
        })
        .map(|d| d.id.clone())
        .collect()
}

fn rows(ledger: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn results_source(rows: &[serde_json::Value]) -> String {
    rows[0]["action_results"]["source"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn sent(env: &Env) -> BTreeSet<String> {
    env.sim
        .stats()
        .actions
        .get("rotateFileVaultKey")
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reads_each_macs_results_just_before_sending_it_and_skips_those_pending() {
    let env = Env::new(fast(600)).await;
    let pending = pending_macs(&env);
    assert!(
        !pending.is_empty(),
        "the tenant has Macs with an action pending"
    );
    let ledger = env.path("fv.jsonl");
    let o = env
        .run(&["rotate", "--query", "--ledger", &s(&ledger), "--yes"])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let all = rows(&ledger);
    assert_eq!(results_source(&all), "before-sending", "{}", all[0]);
    assert_eq!(
        all[0]["action_results"]["before_sending"]["skip_pending"], true,
        "the header keeps the rules for resume: {}",
        all[0]
    );
    let wanted: BTreeSet<String> = eligible_macs(&env).into_iter().collect();
    assert_eq!(sent(&env), wanted, "no pending Mac was sent");
    let plan_end = all.iter().position(|r| r["type"] == "plan_done").unwrap();
    let late = all[plan_end..]
        .iter()
        .filter(|r| r["type"] == "skipped")
        .count();
    assert!(late > 0, "pending Macs are skipped as they come up");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("skipped {} device(s): pending", pending.len())),
        "the plan's skips and the sending's are counted together: {out}"
    );
    let status = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["skip_reasons"]["pending"], pending.len(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reads_every_mac_before_its_plan() {
    let env = Env::new(fast(300)).await;
    let pending = pending_macs(&env);
    let ledger = env.path("dry.jsonl");
    let o = env
        .run(&["rotate", "--query", "--ledger", &s(&ledger), "--dry-run"])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let all = rows(&ledger);
    assert_eq!(results_source(&all), "per-device", "{}", all[0]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("skipped {} device(s): pending", pending.len())),
        "{out}"
    );
}

/// `rotate --query --limit N` on a fresh ledger: the rest of the plan stays pending (exit 1).
async fn canary(env: &Env, ledger: &std::path::Path, n: usize) -> std::process::Output {
    let (ledger, n) = (s(ledger), n.to_string());
    let o = env
        .run(&[
            "rotate", "--query", "--ledger", &ledger, "--yes", "--limit", &n,
        ])
        .await;
    assert_eq!(code(&o), 1, "the rest stay pending: {}", stderr(&o));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_sends_as_many_macs_as_asked_though_some_are_skipped_at_sending() {
    let env = Env::new(fast(600)).await;
    let ledger = env.path("canary.jsonl");
    let o = canary(&env, &ledger, 40).await;
    let sent = sent(&env);
    assert_eq!(sent.len(), 40, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(sent.is_disjoint(&pending_macs(&env)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_holds_the_devices_left_unsent_to_the_plans_rules() {
    let env = Env::new(fast(600)).await;
    let ledger = env.path("half.jsonl");
    canary(&env, &ledger, 10).await;
    let o = env.run(&["resume", "--ledger", &s(&ledger), "--yes"]).await;
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let wanted: BTreeSet<String> = eligible_macs(&env).into_iter().collect();
    assert_eq!(sent(&env), wanted, "resume sent no pending Mac");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("as they were about to be sent: pending"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
